"""An AWS Systems Manager (SSM) Automation server for tests that really runs
the runbooks' steps against moto.

Why our own: moto stores SSM documents (CreateDocument, GetDocument,
DescribeDocument, ModifyDocumentPermission, ...) but implements no Automation
call, and the kernel's remediations are Automation runs: it starts an
AWS-owned runbook (AWSConfigRemediation-*, AWS-*) or a custom one, polls it,
may stop it, and may fan it out over accounts and Regions with
`TargetLocations`.  This server executes each step by calling moto through
boto3, so a run that reports Success has really changed moto's state, and a
step that AWS would fail (a missing instance, a key that cannot rotate) fails
here with the API's own error.

Wire protocol: awsJson1.1, as described by botocore's service model
(botocore/data/ssm/2014-11-06/service-2.json.gz): POST /, header
`X-Amz-Target: AmazonSSM.<Operation>`, JSON body, answers with
`Content-Type: application/x-amz-json-1.1`; timestamps are epoch seconds
(numbers).  Member names are the model's.

    StartAutomationExecution          {DocumentName, DocumentVersion?, Parameters?, Mode?, ClientToken?,
                                       TargetLocations?, Tags?} -> {AutomationExecutionId}
    GetAutomationExecution            {AutomationExecutionId} -> {AutomationExecution}
    DescribeAutomationStepExecutions  {AutomationExecutionId, Filters?, NextToken?, MaxResults?, ReverseOrder?}
                                      -> {StepExecutions, NextToken?}
    DescribeAutomationExecutions      {Filters?, MaxResults?, NextToken?} -> {AutomationExecutionMetadataList, NextToken?}
    StopAutomationExecution           {AutomationExecutionId, Type?} -> {}

Every other SSM operation (CreateDocument, GetDocument, DescribeDocument,
DeleteDocument, ModifyDocumentPermission, ListDocuments, ...) is forwarded to
moto unchanged, request bytes and headers as received, and moto's status,
headers and body are relayed: the kernel points AWS_ENDPOINT_URL_SSM here for
all its SSM calls.

Errors are HTTP 400 with the code in the `x-amzn-ErrorType` header and a body
{"__type": code, "message": ..., "Message": ...}.  The AWS SDK for Rust takes an
awsJson error's code from that header, else from `__type` (or `code`), and its
message from `message`, `Message` or `errorMessage` (aws-smithy-json,
protocol/aws_json_rpc.rs); botocore reads `__type` and `message`/`Message`.  The
model's error structures name their member `Message`.

Documents.  A name with an Amazon-reserved prefix (aws, amazon, amzn, any case:
AWS-*, AWSConfigRemediation-*, ...) is an AWS-owned runbook, read from
`fixtures/<DocumentName>.yaml` (written from AWS's public runbook reference for
these tests; version "1").  Any other name is a custom document, read from moto
with GetDocument in the caller's account.  Schema 0.3 only.

Parameters are checked against the document's `parameters` section as
Automation does before a run starts: unknown names, missing required ones (no
`default`), `allowedValues`, `allowedPattern` (re.fullmatch), minItems/maxItems,
minChars/maxChars, and conversion of the request's lists of strings to the
declared type (String, StringList, Integer, Boolean, MapList, StringMap).
`{{ global:ACCOUNT_ID }}` and `{{ global:REGION }}` in a value are resolved
first, per account and Region, so that
`arn:aws:iam::{{global:ACCOUNT_ID}}:role/...` works in a multi-account run as
AWS documents it.  The exact wording of AWS's messages is known for a missing
parameter and a value outside allowedValues; the others are this server's.

Whose credentials run the steps.  The caller's access key id is taken from the
SigV4 `Authorization` header (Credential=AKID/date/REGION/ssm/aws4_request) and
used with any secret: moto does not check signatures and maps an assumed-role
key to the role's account.  The Region is the credential scope's.  If the
document names a role (its `assumeRole`, normally "{{ AutomationAssumeRole }}",
else an `AutomationAssumeRole` parameter) and it resolves to a non-empty value,
moto's sts:AssumeRole(RoleArn, RoleSessionName="automation") is called with
the caller's credentials and the steps run with the role's (moto then acts in
the role's account; the role need not exist).  A role that cannot be assumed
fails the run with AWS's "The defined assume role is unable to be assumed."

Steps (mainSteps), each with name, action, inputs, outputs, onFailure (Abort,
Continue, step:<name>), nextStep, isEnd, isCritical, timeoutSeconds,
maxAttempts:

    aws:executeAwsApi               boto3 client for Service, method for Api (boto3's own
                                    method_to_api_mapping), the other inputs as its parameters;
                                    outputs by Selector ($.A.B[0].C) and Type
    aws:assertAwsResourceProperty   one call; fails unless the PropertySelector value (as str():
                                    booleans "True"/"False", compared case-insensitively) is
                                    one of DesiredValues
    aws:waitForAwsResourceProperty  polls every 0.1 s until it is, or timeoutSeconds (default
                                    3600) pass: TimedOut
    aws:executeScript               Python 3 Script run with exec; `import boto3` in it gets a
                                    shim whose client()/resource()/Session() talk to moto with the
                                    step's credentials and Region (botocore is the real one);
                                    handler(InputPayload, {}) and outputs from {"Payload": result}
    aws:branch                      Choices (StringEquals, EqualsIgnoreCase, StartsWith, EndsWith,
                                    Contains, BooleanEquals, Numeric*, And, Or, Not) and Default
    aws:executeAutomation           DocumentName, DocumentVersion?, RuntimeParameters: a child run,
                                    awaited; outputs ExecutionId, Status, Output
    aws:sleep                       Duration (ISO 8601, PT5S) or Timestamp
    anything else                   the step fails: "action X is not supported by the test server"

`{{ Name }}` references to parameters, `{{ automation:EXECUTION_ID }}`,
`{{ global:ACCOUNT_ID }}`, `{{ global:REGION }}`, `{{ global:AWS_PARTITION }}`,
`{{ global:DATE }}`, `{{ global:DATE_TIME }}` and step outputs
`{{ Step.Output }}` are substituted in every input string (not in Script).  A
string that is nothing but one reference takes the referenced value's type
(a StringList stays a list, a Boolean a bool); elsewhere the value is written
as text.

Runs.  StartAutomationExecution answers at once; the run goes on in a daemon
thread: Pending -> InProgress -> Success | Failed | Cancelled | TimedOut.
Every step of the document is listed from the start (StepStatus Pending) and
changes as it runs; steps not reached stay Pending.  `step_delay` seconds are
spent at the start of each step, as the step's own duration, so tests and
benchmarks can watch progress and stop a run in the middle of a step.
A failed step with onFailure Continue or step:<name> lets the run go on, and
the run ends Failed if that step isCritical (the default), as AWS reports it.
StopAutomationExecution (Type Cancel or Complete, treated alike) marks the run
and its running children Cancelling; the step in progress ends Cancelled, no
later step runs, and the run ends Cancelled.  A finished run cannot be stopped
(InvalidAutomationStatusUpdateException).

Multi-account and Region runs (TargetLocations).  Each location gives Accounts
(1-50 account ids, or OU ids resolved through moto's Organizations with the
caller's credentials, child OUs too when IncludeChildOrganizationUnits),
Regions (1-50), ExcludeAccounts, ExecutionRoleName (default
AWS-SystemsManager-AutomationExecutionRole), TargetLocationMaxConcurrency
("N" or "N%" of the location's targets, rounded up, at least 1; default "1")
and TargetLocationMaxErrors ("N" or "N%", rounded up; default "0").  The parent
runs in the caller's account and runs no document step itself: it starts one
child per (account, Region), at most MaxConcurrency at a time, each with the
credentials of sts:AssumeRole on arn:aws:iam::<account>:role/<ExecutionRoleName>
in that Region and the same parameters.  Once more than MaxErrors children have
failed no further child starts: the targets not started end Cancelled, running
children finish.  Locations run one after the other.  The parent's
StepExecutions hold one row per target, StepName "<account>-<region>", Action
aws:executeAutomation, TargetLocation {Accounts: [account], Regions: [region],
ExecutionRoleName, TargetLocationMaxConcurrency, TargetLocationMaxErrors},
StepStatus and times mirroring the child, Outputs {"ExecutionId": [child id]}.
Children have ParentAutomationExecutionId and AutomationType CrossAccount (the
parent too), and are found with GetAutomationExecution and with
DescribeAutomationExecutions filtered by ParentExecutionId.  The parent ends
Success only if every child succeeded, else Failed.  ProgressCounters (the
parent only) add up the children's steps.  Executions are kept in one store,
whatever the account or Region: any caller can read any execution.

Not supported, refused with a clear InvalidAutomationExecutionParametersException:
rate control (Targets, TargetMaps, TargetParameterName, MaxConcurrency,
MaxErrors), Interactive mode, TargetLocationsURL, AlarmConfiguration, Targets
inside a TargetLocation.  An Automation operation not listed above (e.g.
SendAutomationSignal) is a ValidationException.  timeoutSeconds is enforced for
aws:waitForAwsResourceProperty only.

Test helpers: `executions` (id -> Execution: status, steps, `step_seconds`
spent in steps -- for a TargetLocations parent, the sum of its children's --
`started`/`ended` monotonic clocks), `wait_finished(id, timeout)` (the
finished run as GetAutomationExecution shows it), `fail_next` for every
Automation operation and the common document operations, `requests` and
`counts` (each recorded request also carries `account` and `region`).

Standalone:  python -m tests.servers.ssm_automation --moto-url http://127.0.0.1:PORT --port 0
prints the URL as its first line and serves until killed.

Standard library, boto3 and PyYAML only; binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import builtins
import copy
import datetime as dt
import http.client
import json
import math
import re
import sys
import threading
import time
import traceback
import types
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
import yaml
from botocore.config import Config as BotoConfig

from .http import Handler, LocalServer, RecordedRequest as _RecordedRequest, ServiceError, parse_json, serve_until_signalled

__all__ = [
    "SsmAutomationServer",
    "Execution",
    "StepRun",
    "RecordedRequest",
    "ServiceError",
    "FIXTURES",
    "DEFAULT_EXECUTION_ROLE",
    "service_name_for",
]

TARGET_PREFIX = "AmazonSSM."
CONTENT_TYPE = "application/x-amz-json-1.1"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "automation"
DEFAULT_EXECUTION_ROLE = "AWS-SystemsManager-AutomationExecutionRole"

START = "StartAutomationExecution"
GET = "GetAutomationExecution"
DESCRIBE_STEPS = "DescribeAutomationStepExecutions"
DESCRIBE_EXECUTIONS = "DescribeAutomationExecutions"
STOP = "StopAutomationExecution"
AUTOMATION_OPERATIONS = frozenset({START, GET, DESCRIBE_STEPS, DESCRIBE_EXECUTIONS, STOP})
# Automation calls this server does not implement: answered here, never sent to moto.
UNSUPPORTED_OPERATIONS = frozenset({
    "SendAutomationSignal", "StartChangeRequestExecution", "StartExecutionPreview", "GetExecutionPreview",
})  # fmt: skip
# Forwarded to moto; listed so that fail_next can target them too.
DOCUMENT_OPERATIONS = frozenset({
    "CreateDocument", "GetDocument", "DescribeDocument", "DeleteDocument", "UpdateDocument",
    "UpdateDocumentDefaultVersion", "ListDocuments", "ListDocumentVersions", "ModifyDocumentPermission",
    "DescribeDocumentPermission",
})  # fmt: skip
OPERATIONS = AUTOMATION_OPERATIONS | DOCUMENT_OPERATIONS

FINISHED = frozenset({"Success", "Failed", "Cancelled", "TimedOut"})
POLL_SECONDS = 0.1  # aws:waitForAwsResourceProperty
DEFAULT_WAIT_TIMEOUT = 3600
MAX_STEP_RUNS = 1000  # nextStep loops end here
PAGE_SIZE = 50  # model: MaxResults 1..50

# "Credential=AKID/20240101/us-east-1/ssm/aws4_request"
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]+$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
OU_ID = re.compile(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$")
REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
# Model patterns (TargetLocation members).
EXECUTION_ROLE_NAME = re.compile(r"^[\w+=,.@/-]{1,64}$")
MAX_CONCURRENCY = re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
MAX_ERRORS = re.compile(r"^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$")
DOCUMENT_NAME = re.compile(r"^[a-zA-Z0-9_\-.:/]{3,128}$")
VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_:.\-]+)\s*\}\}")
DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
SELECTOR_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
PARAMETER_TYPES = frozenset({"String", "StringList", "Integer", "Boolean", "MapList", "StringMap"})
OUTPUT_TYPES = PARAMETER_TYPES
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host", "server", "date"})

# SSM documents name some services differently from boto3.
SERVICE_ALIASES = {
    "elasticloadbalancing": "elb",
    "elasticloadbalancingv2": "elbv2",
    "monitoring": "cloudwatch",
    "configservice": "config",
    "states": "stepfunctions",
    "email": "ses",
}


class RecordedRequest(_RecordedRequest):
    """A request as received, with the caller's account and Region (None until known)."""

    account: str | None = None
    region: str | None = None


# --------------------------------------------------------------------------- errors


def _invalid_parameters(message: str) -> ServiceError:
    return ServiceError(400, "InvalidAutomationExecutionParametersException", message)


def _validation(message: str) -> ServiceError:
    return ServiceError(400, "ValidationException", message)


def _not_found(execution_id: Any) -> ServiceError:
    return ServiceError(400, "AutomationExecutionNotFoundException", f"Execution {execution_id} not found")


class StepFailed(Exception):
    """A step's action failed (status Failed or TimedOut) with this message."""

    def __init__(self, message: str, status: str = "Failed"):
        super().__init__(message)
        self.message = message
        self.status = status


class StepCancelled(Exception):
    """The run was stopped while the step was in progress."""


# --------------------------------------------------------------------------- values


def _now() -> float:
    return round(time.time(), 3)


def _jsonable(value: Any) -> Any:
    """An API answer as JSON values: datetimes as ISO 8601, bytes as text (or base64)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "read"):  # a streaming body
        return _jsonable(value.read())
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # Decimal and friends


def _text(value: Any) -> str:
    """A value written inside a string (a reference that is not the whole string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _display(value: Any, type_: str | None = None) -> list[str]:
    """A typed value as the API's list of strings (Parameters and Outputs maps)."""
    if isinstance(value, list):
        return [json.dumps(v) if isinstance(v, (dict, list)) else _text(v) for v in value]
    return [_text(value)]


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{value!r} is not a Boolean")


def _select(data: Any, selector: Any) -> tuple[bool, Any]:
    """(found, value) at a JSONPath subset: `$`, `.Name`, `[N]`."""
    if not isinstance(selector, str) or not selector.startswith("$"):
        raise StepFailed(f"Invalid selector {selector!r}: it must start with $")
    rest, pos, current = selector[1:], 0, data
    while pos < len(rest):
        m = SELECTOR_PART.match(rest, pos)
        if not m:
            raise StepFailed(f"Invalid selector {selector!r}: only .Name and [N] are supported by the test server")
        pos = m.end()
        if m.group(1) is not None:
            if not isinstance(current, dict) or m.group(1) not in current:
                return False, None
            current = current[m.group(1)]
        else:
            index = int(m.group(2))
            if not isinstance(current, list) or index >= len(current):
                return False, None
            current = current[index]
    return True, current


def _typed_output(value: Any, type_: str, name: str) -> Any:
    """An output value converted to its declared Type (a mismatch fails the step)."""
    try:
        if type_ == "String":
            if isinstance(value, (dict, list)):
                return json.dumps(value)
            return str(value)  # booleans "True"/"False", as str() writes them
        if type_ == "Integer":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if type_ == "Boolean":
            return _to_bool(value)
        if type_ == "StringList":
            if not isinstance(value, list):
                raise ValueError
            return [v if isinstance(v, str) else _text(v) for v in value]
        if type_ == "MapList":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ValueError
            return value
        if type_ == "StringMap":
            if not isinstance(value, dict):
                raise ValueError
            return value
    except (TypeError, ValueError):
        pass
    raise StepFailed(f"Output {name}: value {_text(value)[:200]} is not of type {type_}")


def _parse_duration(text: Any) -> float:
    m = DURATION.match(text) if isinstance(text, str) else None
    if not m or text == "P" or text.endswith("T"):
        raise StepFailed(f"Invalid Duration {text!r}: expected ISO 8601 such as PT5S or PT1M")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def service_name_for(service: Any) -> str:
    """The boto3 service name for an SSM document's `Service` input."""
    if not isinstance(service, str) or not service.strip():
        raise StepFailed("The Service input is required")
    name = service.strip().lower()
    name = SERVICE_ALIASES.get(name, name)
    if name not in _available_services():
        raise StepFailed(f"Service {service!r} is not an AWS service known to boto3")
    return name


_SERVICES: list[str] = []


def _available_services() -> list[str]:
    if not _SERVICES:
        _SERVICES.extend(boto3.session.Session().get_available_services())
    return _SERVICES


def _method_for(client: Any, api: Any) -> str:
    """boto3's method for an API name (PascalCase as in the model; its snake form works too)."""
    if not isinstance(api, str) or not api:
        raise StepFailed("The Api input is required")
    mapping = client.meta.method_to_api_mapping  # snake_case -> OperationName
    if api in mapping:
        return api
    by_api = {op: method for method, op in mapping.items()}
    if api in by_api:
        return by_api[api]
    folded = {op.lower(): method for op, method in by_api.items()}
    if api.lower() in folded:
        return folded[api.lower()]
    raise StepFailed(f"Api {api!r} is not an operation of {client.meta.service_model.service_name}")


def _step_failure(message: str) -> str:
    """A step's FailureMessage, in Automation's words around the cause."""
    return (f"Step fails when it is Execute/Cancelling action. {message.rstrip('.')}. "
            "Please refer to Automation Service Troubleshooting Guide for more diagnosis details.")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Credentials:
    """Who acts: moto access key (+ token), the Region, and the account/ARN moto sees."""

    access_key: str
    secret_key: str
    session_token: str | None
    region: str
    account: str
    arn: str


@dataclass
class StepRun:
    """One row of StepExecutions."""

    name: str
    action: str
    inputs: dict
    on_failure: str = "Abort"
    is_end: bool = False
    next_step: str | None = None
    is_critical: bool = True
    timeout_seconds: int | None = None
    max_attempts: int = 1
    valid_next_steps: list[str] = field(default_factory=list)
    status: str = "Pending"
    start: float | None = None
    end: float | None = None
    outputs: dict[str, list[str]] = field(default_factory=dict)
    failure: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    target_location: dict | None = None  # TargetLocations rows
    child_id: str | None = None  # the child run of a TargetLocations row or aws:executeAutomation


@dataclass
class TargetPlan:
    """One TargetLocation, resolved: its (account, Region) rows and limits."""

    rows: list[tuple[str, str, StepRun]]
    concurrency: int
    max_errors: int
    role_name: str


@dataclass
class Execution:
    """One Automation run (a parent, a child, or a plain run)."""

    id: str
    document_name: str
    document_version: str
    doc: dict
    raw_parameters: dict[str, list[str]]  # as the caller gave them
    caller: Credentials  # whose credentials start the run (before any assumeRole)
    mode: str = "Auto"
    parent: "Execution | None" = None
    automation_type: str = "Local"
    target_locations: list | None = None
    plans: list[TargetPlan] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)  # typed
    parameters_display: dict[str, list[str]] = field(default_factory=dict)
    creds: Credentials | None = None  # the steps' credentials
    status: str = "Pending"
    start: float = field(default_factory=_now)
    end: float | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    failure: str | None = None
    steps: list[StepRun] = field(default_factory=list)
    outputs: dict[str, list[str]] = field(default_factory=dict)
    current_step: str | None = None
    current_action: str | None = None
    step_seconds: float = 0.0
    scope: dict[str, Any] = field(default_factory=dict)  # what {{ }} resolves to
    client_token: str | None = None
    request_key: str | None = None  # for ClientToken idempotency
    stop_event: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def account(self) -> str:
        return self.caller.account

    @property
    def region(self) -> str:
        return self.caller.region

    def should_stop(self) -> bool:
        e: Execution | None = self
        while e is not None:
            if e.stop_event.is_set():
                return True
            e = e.parent
        return False


# --------------------------------------------------------------------------- server


class SsmAutomationServer(LocalServer):
    """SSM Automation on 127.0.0.1, running documents against moto; other SSM calls go to moto."""

    name = "ssm-automation"
    server_version = "LocalSsmAutomation/1.0"
    OPERATIONS = OPERATIONS

    def __init__(self, moto_url: str, *, fixtures: Path = FIXTURES, step_delay: float = 0.0,
                 port: int = 0, latency: float = 0.0):
        super().__init__(port=port, latency=latency)
        self.moto_url = moto_url.rstrip("/")
        self._moto = urlsplit(self.moto_url)
        self.fixtures = Path(fixtures)
        self.step_delay = step_delay
        self.executions: dict[str, Execution] = {}
        self._tokens: dict[str, str] = {}  # ClientToken -> execution id
        self._identities: dict[str, tuple[str, str]] = {}  # access key -> (account, ARN)
        self._clients: dict[tuple, Any] = {}
        self._clients_lock = threading.Lock()
        self._session = boto3.session.Session()

    # ---- lifecycle and test helpers

    def stop(self) -> None:
        with self._lock:
            runs = list(self.executions.values())
        for e in runs:  # running threads end at their next check
            e.stop_event.set()
        super().stop()

    def wait_finished(self, execution_id: str, timeout: float = 30.0) -> dict:
        """Wait for a run to end; returns it as GetAutomationExecution's AutomationExecution."""
        with self._lock:
            e = self.executions.get(execution_id)
        if e is None:
            raise KeyError(f"no execution {execution_id}")
        if not e.done.wait(timeout):
            raise TimeoutError(f"execution {execution_id} still {e.status} after {timeout} s")
        with self._lock:
            return self._describe(e)

    # ---- moto access

    def _client(self, service: str, creds: Credentials, region: str | None = None, config: BotoConfig | None = None) -> Any:
        region = region or creds.region
        base = BotoConfig(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=5, read_timeout=60,
                          s3={"addressing_style": "path"})
        key = (service, creds.access_key, creds.session_token, region)
        with self._clients_lock:  # boto3 client creation is not thread-safe
            client = self._clients.get(key) if config is None else None
            if client is None:
                client = self._session.client(
                    service, endpoint_url=self.moto_url, region_name=region,
                    aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                    aws_session_token=creds.session_token, config=config.merge(base) if config else base,
                )  # fmt: skip
                if service == "s3control":
                    # botocore puts the account id in front of the host, which does not resolve.
                    def to_moto(request: Any, **_: Any) -> None:
                        request.url = re.sub(r"://\d{12}\.", "://", request.url, count=1)

                    client.meta.events.register("before-sign.s3-control.*", to_moto)
                if config is None:
                    self._clients[key] = client
            return client

    def _caller(self, headers: dict[str, str]) -> Credentials:
        found = CREDENTIAL.search(headers.get("authorization", ""))
        if not found:
            raise ServiceError(400, "MissingAuthenticationTokenException", "Missing Authentication Token")
        access_key, region = found.group(1), found.group(3)
        token = headers.get("x-amz-security-token")
        with self._lock:
            known = self._identities.get(access_key)
        if known is None:
            probe = Credentials(access_key, "ssm-automation-stand-in", token, region, "", "")
            answer = self._client("sts", probe).get_caller_identity()
            known = (answer["Account"], answer["Arn"])
            with self._lock:
                self._identities[access_key] = known
        return Credentials(access_key, "ssm-automation-stand-in", token, region, known[0], known[1])

    def _assume(self, base: Credentials, role_arn: str, region: str) -> Credentials:
        """Credentials of `role_arn` (moto's sts:AssumeRole), acting in `region`."""
        m = ROLE_ARN.match(role_arn) if isinstance(role_arn, str) else None
        if not m:
            raise StepFailed(f"The defined assume role is unable to be assumed. {role_arn!r} is not an IAM role ARN")
        try:
            answer = self._client("sts", base).assume_role(RoleArn=role_arn, RoleSessionName="automation")
        except botocore.exceptions.ClientError as e:
            raise StepFailed(f"The defined assume role is unable to be assumed. {e}") from e
        c = answer["Credentials"]
        return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c.get("SessionToken"), region, m.group(1),
                           answer.get("AssumedRoleUser", {}).get("Arn", role_arn))

    # ---- HTTP

    def serve(self, handler: Handler, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> None:
        target = headers.get("x-amz-target", "")
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else None
        if operation not in AUTOMATION_OPERATIONS and operation not in UNSUPPORTED_OPERATIONS:
            self._proxy(handler, method, raw_path, headers, raw, operation)
            return
        status, payload, extra = self.handle(method, raw_path, headers, raw, operation)
        if self.latency and not self.wait(self.latency):
            handler.close_connection = True
            return
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", CONTENT_TYPE)
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            for k, v in extra.items():
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes,
               operation: str | None) -> tuple[int, dict, dict]:
        """(status, JSON body, extra headers) answering one Automation request."""
        body, bad_json = parse_json(raw)
        rec = RecordedRequest(method, raw_path, headers, body, raw, operation)
        self.record(rec)
        try:
            if operation in UNSUPPORTED_OPERATIONS:
                raise _validation(f"{operation} is not implemented by the SSM Automation test server")
            if method != "POST" or raw_path.split("?")[0] != "/":
                raise ServiceError(400, "UnknownOperationException", f"Unknown operation {method} {raw_path}")
            self.take_fault(operation)
            caller = self._caller(headers)
            rec.account, rec.region = caller.account, caller.region
            if bad_json:
                raise ServiceError(400, "SerializationException", "The request body is not valid JSON")
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise ServiceError(400, "SerializationException", "The request body must be a JSON object")
            answer = {
                START: self._start,
                GET: self._get,
                DESCRIBE_STEPS: self._describe_steps,
                DESCRIBE_EXECUTIONS: self._describe_executions,
                STOP: self._stop,
            }[operation](caller, body)
            status, payload, extra = 200, answer, {}
        except ServiceError as e:
            status = e.status
            payload = {"__type": e.error_type, "message": e.message, "Message": e.message, **e.extra}
            extra = {"x-amzn-ErrorType": e.error_type}
            rec.error_type = e.error_type
        except Exception as e:  # noqa: BLE001 - a bug (or moto failing) must reach the test as a 500, not a hang
            traceback.print_exc()
            status, payload = 500, {"__type": "InternalServerError", "message": f"SSM Automation test server: {e!r}"}
            extra = {"x-amzn-ErrorType": "InternalServerError"}
            rec.error_type = "InternalServerError"
        rec.status = status
        rec.served_in = time.time() - rec.time
        return status, payload, extra

    def _proxy(self, handler: Handler, method: str, raw_path: str, headers: dict[str, str], raw: bytes,
               operation: str | None) -> None:
        """Forward a non-Automation request to moto as received and relay moto's answer."""
        body, _ = parse_json(raw)
        rec = RecordedRequest(method, raw_path, headers, body, raw, operation)
        found = CREDENTIAL.search(headers.get("authorization", ""))
        rec.region = found.group(3) if found else None
        self.record(rec)
        try:
            if operation in self.OPERATIONS:
                self.take_fault(operation)
        except ServiceError as e:
            rec.status, rec.error_type = e.status, e.error_type
            payload = {"__type": e.error_type, "message": e.message, "Message": e.message}
            data = json.dumps(payload).encode("utf-8")
            reply: list[tuple[str, str]] = [("Content-Type", CONTENT_TYPE), ("x-amzn-ErrorType", e.error_type)]
            self._relay(handler, e.status, reply, data)
            return
        forward = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}
        forward["Host"] = self._moto.netloc
        forward["Content-Length"] = str(len(raw))
        conn = http.client.HTTPConnection(self._moto.hostname, self._moto.port, timeout=60)
        try:
            conn.request(method, raw_path, body=raw, headers=forward)
            answer = conn.getresponse()
            data = answer.read()
            status, reply = answer.status, answer.getheaders()
        except OSError as e:
            status, reply = 502, [("Content-Type", CONTENT_TYPE), ("x-amzn-ErrorType", "InternalServerError")]
            data = json.dumps({"__type": "InternalServerError", "message": f"moto did not answer: {e}"}).encode()
        finally:
            conn.close()
        rec.status = status
        if status >= 400:
            rec.error_type = dict((k.lower(), v) for k, v in reply).get("x-amzn-errortype")
            if not rec.error_type:
                parsed, _ = parse_json(data)
                rec.error_type = parsed.get("__type") if isinstance(parsed, dict) else None
        rec.served_in = time.time() - rec.time
        self._relay(handler, status, reply, data)

    @staticmethod
    def _relay(handler: Handler, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        try:
            handler.send_response(status)
            for k, v in headers:
                if k.lower() not in HOP_BY_HOP:
                    handler.send_header(k, v)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    # ---- documents and parameters

    @staticmethod
    def _aws_owned(name: str) -> bool:
        return name.lower().startswith(("aws", "amazon", "amzn"))

    def _load_document(self, caller: Credentials, name: str, version: str | None) -> tuple[dict, str]:
        """(parsed document, its version) for DocumentName/DocumentVersion."""
        if self._aws_owned(name):
            path = self.fixtures / f"{name}.yaml"
            if not path.is_file():
                raise ServiceError(400, "AutomationDefinitionNotFoundException",
                                   f"Document {name} does not exist (the SSM Automation test server has no "
                                   f"fixture {path.name} for this AWS-owned document)")
            if version not in (None, "", "1", "$DEFAULT", "$LATEST"):
                raise ServiceError(400, "AutomationDefinitionVersionNotFoundException",
                                   f"Document {name} has no version {version}")
            content, version = path.read_text(encoding="utf-8"), "1"
        else:
            kwargs: dict[str, Any] = {"Name": name}
            if version not in (None, "", "$DEFAULT", "$LATEST"):
                kwargs["DocumentVersion"] = version
            try:
                doc = self._client("ssm", caller).get_document(**kwargs)
            except botocore.exceptions.ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code == "InvalidDocumentVersion":
                    raise ServiceError(400, "AutomationDefinitionVersionNotFoundException",
                                       f"Document {name} has no version {version}") from e
                raise ServiceError(400, "AutomationDefinitionNotFoundException", f"Document {name} does not exist") from e
            if doc.get("DocumentType") not in (None, "Automation"):
                raise ServiceError(400, "AutomationDefinitionNotFoundException",
                                   f"Document {name} is a {doc.get('DocumentType')} document, not an Automation document")
            content, version = doc.get("Content", ""), str(doc.get("DocumentVersion") or version or "1")
        try:
            parsed = yaml.safe_load(content)  # JSON is YAML too
        except yaml.YAMLError as e:
            raise ServiceError(400, "InvalidDocumentContent", f"Document {name} is neither JSON nor YAML: {e}") from e
        self._check_document(name, parsed)
        return parsed, version

    @staticmethod
    def _check_document(name: str, doc: Any) -> None:
        def bad(why: str) -> ServiceError:
            return ServiceError(400, "InvalidDocumentContent", f"Document {name}: {why}")

        if not isinstance(doc, dict):
            raise bad("the content is not an object")
        if str(doc.get("schemaVersion")) != "0.3":
            raise bad(f"schemaVersion {doc.get('schemaVersion')!r} is not 0.3 (the only Automation schema supported)")
        steps = doc.get("mainSteps")
        if not isinstance(steps, list) or not steps:
            raise bad("mainSteps must be a non-empty list")
        names = set()
        for s in steps:
            if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not isinstance(s.get("action"), str):
                raise bad("every step needs a name and an action")
            if s["name"] in names:
                raise bad(f"step name {s['name']} is used twice")
            names.add(s["name"])
        params = doc.get("parameters") or {}
        if not isinstance(params, dict):
            raise bad("parameters must be an object")
        for pname, decl in params.items():
            if not isinstance(decl, dict) or decl.get("type") not in PARAMETER_TYPES:
                raise bad(f"parameter {pname} has no valid type (one of {', '.join(sorted(PARAMETER_TYPES))})")

    @staticmethod
    def _globals(e: Execution) -> dict[str, Any]:
        now = dt.datetime.now(dt.timezone.utc)
        return {
            "automation:EXECUTION_ID": e.id,
            "global:ACCOUNT_ID": e.account,
            "global:REGION": e.region,
            "global:AWS_PARTITION": "aws",
            "global:URL_SUFFIX": "amazonaws.com",
            "global:DATE": now.strftime("%Y-%m-%d"),
            "global:DATE_TIME": now.strftime("%Y-%m-%d_%H.%M.%S"),
        }

    @staticmethod
    def _resolve_globals(value: str, scope: dict[str, Any]) -> str:
        return VARIABLE.sub(lambda m: _text(scope[m.group(1)]) if m.group(1) in scope else m.group(0), value)

    def _resolve_parameters(self, e: Execution) -> None:
        """Checks and converts the caller's parameters; fills e.parameters and its display."""
        declared: dict = e.doc.get("parameters") or {}
        given = e.raw_parameters
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise _invalid_parameters(f"Parameter \"{unknown[0]}\" is not defined in document {e.document_name}.")
        scope = self._globals(e)
        typed: dict[str, Any] = {}
        for name, decl in declared.items():
            type_ = decl["type"]
            values = given.get(name)
            if values:  # an empty list counts as not given
                values = [self._resolve_globals(v, scope) for v in values]
                value = self._convert_parameter(name, type_, values)
            elif "default" in decl:
                value = decl["default"]
                if isinstance(value, str):
                    value = self._resolve_globals(value, scope)
                value = self._convert_default(name, type_, value)
            else:
                raise _invalid_parameters(f"Missing required parameter: {name} in user inputs.")
            self._check_constraints(name, type_, decl, value, given=bool(values))
            typed[name] = value
        e.parameters = typed
        e.parameters_display = {k: _display(v) for k, v in typed.items()}

    @staticmethod
    def _convert_parameter(name: str, type_: str, values: list[str]) -> Any:
        def bad(why: str) -> ServiceError:
            return _invalid_parameters(f"Parameter \"{name}\" of type {type_} {why}.")

        if type_ == "StringList":
            return list(values)
        if type_ == "MapList":
            out = []
            for v in values:
                try:
                    item = json.loads(v)
                except ValueError:
                    raise bad(f"has value {v!r}, which is not a JSON object") from None
                items = item if isinstance(item, list) else [item]
                if not all(isinstance(i, dict) for i in items):
                    raise bad(f"has value {v!r}, which is not a JSON object")
                out.extend(items)
            return out
        if len(values) != 1:
            raise bad(f"takes one value, not {len(values)}")
        v = values[0]
        if type_ == "String":
            return v
        if type_ == "Integer":
            if not re.fullmatch(r"-?\d+", v.strip()):
                raise bad(f"has value \"{v}\", which is not an integer")
            return int(v)
        if type_ == "Boolean":
            try:
                return _to_bool(v)
            except ValueError:
                raise bad(f"has value \"{v}\", which is not true or false") from None
        try:  # StringMap
            item = json.loads(v)
        except ValueError:
            item = None
        if not isinstance(item, dict):
            raise bad(f"has value {v!r}, which is not a JSON object")
        return item

    def _convert_default(self, name: str, type_: str, value: Any) -> Any:
        if type_ == "String":
            return value if isinstance(value, str) else _text(value)
        if type_ == "StringList":
            return [v if isinstance(v, str) else _text(v) for v in value] if isinstance(value, list) else [_text(value)]
        if type_ == "Integer" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if type_ == "Boolean" and isinstance(value, bool):
            return value
        if type_ in ("MapList", "StringMap") and not isinstance(value, str):
            return value
        return self._convert_parameter(name, type_, [value] if isinstance(value, str) else [_text(value)])

    @staticmethod
    def _check_constraints(name: str, type_: str, decl: dict, value: Any, *, given: bool) -> None:
        items = value if isinstance(value, list) else [value]
        allowed = decl.get("allowedValues")
        if isinstance(allowed, list) and type_ in ("String", "StringList", "Integer"):
            texts = [str(a) for a in allowed]
            for v in items:
                if _text(v) not in texts:
                    raise _invalid_parameters(f"Parameter \"{name}\" has value \"{_text(v)}\" not found in "
                                              f"[{', '.join(texts)}].")
        pattern = decl.get("allowedPattern")
        if isinstance(pattern, str) and type_ in ("String", "StringList") and (given or items != [""]):
            for v in items:
                if re.fullmatch(pattern, v) is None:
                    raise _invalid_parameters(f"Parameter \"{name}\" has value \"{v}\" not matching the allowed "
                                              f"pattern {pattern}.")
        if type_ in ("StringList", "MapList"):
            low, high = decl.get("minItems"), decl.get("maxItems")
            if isinstance(low, int) and len(items) < low or isinstance(high, int) and len(items) > high:
                raise _invalid_parameters(f"Parameter \"{name}\" has {len(items)} items, outside "
                                          f"minItems {low} / maxItems {high}.")
        if type_ == "String":
            low, high = decl.get("minChars"), decl.get("maxChars")
            if isinstance(low, int) and len(value) < low or isinstance(high, int) and len(value) > high:
                raise _invalid_parameters(f"Parameter \"{name}\" has {len(value)} characters, outside "
                                          f"minChars {low} / maxChars {high}.")

    # ---- substitution

    def _substitute(self, value: Any, e: Execution, skip: frozenset[str] = frozenset()) -> Any:
        """`value` with every {{ reference }} resolved (a whole-string reference keeps its type)."""
        if isinstance(value, dict):
            return {k: v if k in skip else self._substitute(v, e) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute(v, e) for v in value]
        if not isinstance(value, str):
            return value
        whole = VARIABLE.fullmatch(value)
        if whole:
            return copy.deepcopy(self._lookup(whole.group(1), e))
        return VARIABLE.sub(lambda m: _text(self._lookup(m.group(1), e)), value)

    def _lookup(self, name: str, e: Execution) -> Any:
        with self._lock:
            if name in e.scope:
                return e.scope[name]
        if name in ("global:DATE", "global:DATE_TIME"):
            return self._globals(e)[name]
        raise StepFailed(f"Unable to resolve the variable {{{{ {name} }}}}: it is neither a parameter, "
                         f"a system variable nor an output of a step that has run")

    # ---- operations

    def _start(self, caller: Credentials, body: dict) -> dict:
        name = body.get("DocumentName")
        if not isinstance(name, str) or not DOCUMENT_NAME.match(name):
            raise _validation("1 validation error detected: Value at 'documentName' failed to satisfy constraint: "
                              "Member must satisfy regular expression pattern: ^[a-zA-Z0-9_\\-.:/]{3,128}$")
        for unsupported in ("Targets", "TargetMaps", "TargetParameterName", "MaxConcurrency", "MaxErrors",
                            "TargetLocationsURL", "AlarmConfiguration"):
            if body.get(unsupported):
                raise _invalid_parameters(f"{unsupported} is not supported by the SSM Automation test server "
                                          "(no rate control, alarms or TargetLocationsURL)")
        mode = body.get("Mode") or "Auto"
        if mode not in ("Auto", "Interactive"):
            raise _validation(f"1 validation error detected: Value '{mode}' at 'mode' failed to satisfy constraint: "
                              "Member must satisfy enum value set: [Auto, Interactive]")
        if mode == "Interactive":
            raise _invalid_parameters("Interactive mode is not supported by the SSM Automation test server")
        params = body.get("Parameters") or {}
        if not isinstance(params, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v) for k, v in params.items()):
            raise ServiceError(400, "SerializationException", "Parameters must map names to lists of strings")
        token = body.get("ClientToken")
        request_key = json.dumps([name, body.get("DocumentVersion"), params, body.get("TargetLocations")], sort_keys=True)
        if isinstance(token, str) and token:
            with self._lock:
                known = self._tokens.get(token)
                if known is not None:
                    if self.executions[known].request_key != request_key:
                        raise ServiceError(400, "IdempotentParameterMismatch",
                                           f"ClientToken {token} was used with different parameters")
                    return {"AutomationExecutionId": known}

        doc, version = self._load_document(caller, name, body.get("DocumentVersion"))
        e = Execution(id=str(uuid.uuid4()), document_name=name, document_version=version, doc=doc,
                      raw_parameters={k: list(v) for k, v in params.items()}, caller=caller, mode=mode,
                      client_token=token, request_key=request_key)
        self._resolve_parameters(e)  # raises before anything runs, as Automation does
        locations = body.get("TargetLocations")
        if locations:
            e.target_locations = locations
            e.automation_type = "CrossAccount"
            e.plans = self._plan_targets(caller, locations)
            for plan in e.plans:
                e.steps.extend(row for _, _, row in plan.rows)
        else:
            e.steps = self._step_rows(doc)
        with self._lock:
            self.executions[e.id] = e
            if isinstance(token, str) and token:
                self._tokens[token] = e.id
        threading.Thread(target=self._run, args=(e,), name=f"automation-{e.id[:8]}", daemon=True).start()
        return {"AutomationExecutionId": e.id}

    @staticmethod
    def _step_rows(doc: dict) -> list[StepRun]:
        rows = []
        for s in doc["mainSteps"]:
            nxt = s.get("nextStep")
            valid = [c.get("NextStep") for c in (s.get("inputs") or {}).get("Choices", []) if isinstance(c, dict)]
            rows.append(StepRun(
                name=s["name"], action=s["action"], inputs=copy.deepcopy(s.get("inputs") or {}),
                on_failure=str(s.get("onFailure") or "Abort"), is_end=bool(s.get("isEnd", False)),
                next_step=nxt if isinstance(nxt, str) else None,
                is_critical=_to_bool(s.get("isCritical", True)),
                timeout_seconds=int(s["timeoutSeconds"]) if s.get("timeoutSeconds") is not None else None,
                max_attempts=max(1, int(s.get("maxAttempts") or 1)),
                valid_next_steps=[v for v in valid if isinstance(v, str)],
            ))  # fmt: skip
        return rows

    def _plan_targets(self, caller: Credentials, locations: Any) -> list[TargetPlan]:
        if not isinstance(locations, list) or not 1 <= len(locations) <= 100:
            raise _validation("1 validation error detected: Value at 'targetLocations' failed to satisfy constraint: "
                              "Member must have length between 1 and 100")
        plans = []
        for n, loc in enumerate(locations, start=1):
            where = f"targetLocations.{n}.member"
            if not isinstance(loc, dict):
                raise ServiceError(400, "SerializationException", "Each TargetLocation must be an object")
            if loc.get("Targets") or loc.get("TargetLocationAlarmConfiguration"):
                raise _invalid_parameters("Targets and alarms inside a TargetLocation are not supported by the "
                                          "SSM Automation test server")
            accounts, regions = loc.get("Accounts"), loc.get("Regions")
            for member, values in (("accounts", accounts), ("regions", regions)):
                if not isinstance(values, list) or not 1 <= len(values) <= 50 or not all(isinstance(v, str) for v in values):
                    raise _validation(f"1 validation error detected: Value at '{where}.{member}' failed to satisfy "
                                      "constraint: Member must have length between 1 and 50")
            role = loc.get("ExecutionRoleName") or DEFAULT_EXECUTION_ROLE
            if not EXECUTION_ROLE_NAME.match(role):
                raise _validation(f"1 validation error detected: Value '{role}' at '{where}.executionRoleName' failed "
                                  "to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@/-]+")
            concurrency = loc.get("TargetLocationMaxConcurrency") or "1"
            errors = loc.get("TargetLocationMaxErrors") or "0"
            if not MAX_CONCURRENCY.match(concurrency):
                raise _validation(f"1 validation error detected: Value '{concurrency}' at "
                                  f"'{where}.targetLocationMaxConcurrency' failed to satisfy constraint: Member must "
                                  "satisfy regular expression pattern: ^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
            if not MAX_ERRORS.match(errors):
                raise _validation(f"1 validation error detected: Value '{errors}' at '{where}.targetLocationMaxErrors' "
                                  "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                                  "^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$")
            for region in regions:
                if not REGION_NAME.match(region):
                    raise _invalid_parameters(f"Region {region} is not a valid AWS Region")
            resolved = self._resolve_accounts(caller, accounts, bool(loc.get("IncludeChildOrganizationUnits")))
            excluded = set(loc.get("ExcludeAccounts") or [])
            resolved = [a for a in resolved if a not in excluded]
            if not resolved:
                raise _invalid_parameters(f"TargetLocation {n} leaves no account to run in")
            total = len(resolved) * len(regions)
            location = {"ExecutionRoleName": role, "TargetLocationMaxConcurrency": concurrency,
                        "TargetLocationMaxErrors": errors}
            rows = []
            for account in resolved:
                for region in regions:
                    rows.append((account, region, StepRun(
                        name=f"{account}-{region}", action="aws:executeAutomation", inputs={}, is_end=False,
                        target_location={"Accounts": [account], "Regions": [region], **location},
                    )))  # fmt: skip
            plans.append(TargetPlan(rows, self._limit(concurrency, total, minimum=1), self._limit(errors, total, 0), role))
        return plans

    @staticmethod
    def _limit(spec: str, total: int, minimum: int) -> int:
        if spec.endswith("%"):
            return max(minimum, math.ceil(total * int(spec[:-1]) / 100))
        return max(minimum, int(spec))

    def _resolve_accounts(self, caller: Credentials, entries: list[str], children: bool) -> list[str]:
        out: list[str] = []
        for entry in entries:
            if ACCOUNT_ID.match(entry):
                accounts = [entry]
            elif OU_ID.match(entry):
                accounts = self._ou_accounts(caller, entry, children)
            else:
                raise _invalid_parameters(f"Account {entry} is neither a 12-digit account id nor an organizational "
                                          "unit id (ou-...)")
            out.extend(a for a in accounts if a not in out)
        return out

    def _ou_accounts(self, caller: Credentials, ou: str, children: bool) -> list[str]:
        org = self._client("organizations", caller)
        try:
            accounts = [a["Id"] for page in org.get_paginator("list_accounts_for_parent").paginate(ParentId=ou)
                        for a in page["Accounts"]]
            if children:
                for page in org.get_paginator("list_organizational_units_for_parent").paginate(ParentId=ou):
                    for child in page["OrganizationalUnits"]:
                        accounts.extend(self._ou_accounts(caller, child["Id"], True))
        except botocore.exceptions.ClientError as e:
            raise _invalid_parameters(f"Organizational unit {ou} could not be resolved: {e}") from e
        return accounts

    def _find(self, body: dict) -> Execution:
        execution_id = body.get("AutomationExecutionId")
        if not isinstance(execution_id, str) or not execution_id:
            raise _validation("1 validation error detected: Value null at 'automationExecutionId' failed to satisfy "
                              "constraint: Member must not be null")
        e = self.executions.get(execution_id)
        if e is None:
            raise _not_found(execution_id)
        return e

    def _get(self, caller: Credentials, body: dict) -> dict:
        with self._lock:
            return {"AutomationExecution": self._describe(self._find(body))}

    def _stop(self, caller: Credentials, body: dict) -> dict:
        stop_type = body.get("Type") or "Cancel"
        if stop_type not in ("Cancel", "Complete"):
            raise _validation(f"1 validation error detected: Value '{stop_type}' at 'type' failed to satisfy "
                              "constraint: Member must satisfy enum value set: [Complete, Cancel]")
        with self._lock:
            e = self._find(body)
            if e.status in FINISHED:
                raise ServiceError(400, "InvalidAutomationStatusUpdateException",
                                   f"Execution {e.id} has already finished with status {e.status}; "
                                   "only a running execution can be stopped")
            for run in self.executions.values():  # the run and its unfinished descendants
                if run.status not in FINISHED and (run is e or self._descends(run, e)):
                    run.stop_event.set()
                    run.status = "Cancelling"
        return {}

    @staticmethod
    def _descends(run: Execution, ancestor: Execution) -> bool:
        p = run.parent
        while p is not None:
            if p is ancestor:
                return True
            p = p.parent
        return False

    def _describe_steps(self, caller: Credentials, body: dict) -> dict:
        with self._lock:
            e = self._find(body)
            rows = [self._step_dict(r) for r in e.steps]
        for f in self._filters(body, {"StartTimeBefore", "StartTimeAfter", "StepExecutionStatus", "StepExecutionId",
                                      "StepName", "Action"}, 6):
            key, values = f
            if key == "StepExecutionStatus":
                rows = [r for r in rows if r["StepStatus"] in values]
            elif key == "StepExecutionId":
                rows = [r for r in rows if r["StepExecutionId"] in values]
            elif key == "StepName":
                rows = [r for r in rows if r["StepName"] in values]
            elif key == "Action":
                rows = [r for r in rows if r["Action"] in values]
            else:
                rows = self._time_filter(rows, key, values)
        if body.get("ReverseOrder"):
            rows.reverse()
        page, token = self._page(rows, body)
        out: dict[str, Any] = {"StepExecutions": page}
        if token:
            out["NextToken"] = token
        return out

    def _describe_executions(self, caller: Credentials, body: dict) -> dict:
        with self._lock:
            runs = sorted(self.executions.values(), key=lambda r: r.start, reverse=True)  # newest first
            items = [self._metadata(r) for r in runs]
        supported = {"ExecutionId", "ParentExecutionId", "DocumentNamePrefix", "ExecutionStatus", "AutomationType",
                     "CurrentAction", "StartTimeBefore", "StartTimeAfter"}
        for key, values in self._filters(body, supported, 10, all_keys=True):
            if key == "ExecutionId":
                items = [i for i in items if i["AutomationExecutionId"] in values]
            elif key == "ParentExecutionId":
                items = [i for i in items if i.get("ParentAutomationExecutionId") in values]
            elif key == "DocumentNamePrefix":
                items = [i for i in items if any(i["DocumentName"].startswith(v) for v in values)]
            elif key == "ExecutionStatus":
                items = [i for i in items if i["AutomationExecutionStatus"] in values]
            elif key == "AutomationType":
                items = [i for i in items if i["AutomationType"] in values]
            elif key == "CurrentAction":
                items = [i for i in items if i.get("CurrentAction") in values]
            else:
                items = self._time_filter(items, key, values)
        page, token = self._page(items, body)
        out: dict[str, Any] = {"AutomationExecutionMetadataList": page}
        if token:
            out["NextToken"] = token
        return out

    @staticmethod
    def _filters(body: dict, supported: set[str], most: int, all_keys: bool = False) -> list[tuple[str, list[str]]]:
        filters = body.get("Filters") or []
        if not isinstance(filters, list) or len(filters) > most:
            raise _validation(f"1 validation error detected: Value at 'filters' failed to satisfy constraint: "
                              f"Member must have length less than or equal to {most}")
        out = []
        known = {"DocumentNamePrefix", "ExecutionStatus", "ExecutionId", "ParentExecutionId", "CurrentAction",
                 "StartTimeBefore", "StartTimeAfter", "AutomationType", "TagKey", "TargetResourceGroup",
                 "AutomationSubtype", "OpsItemId"} if all_keys else supported
        for f in filters:
            key = f.get("Key") if isinstance(f, dict) else None
            values = f.get("Values") if isinstance(f, dict) else None
            if key not in known and key not in supported:
                raise ServiceError(400, "InvalidFilterKey", f"Filter key {key!r} is not valid")
            if key not in supported:
                raise ServiceError(400, "InvalidFilterValue", f"Filter key {key} is not supported by the SSM "
                                                              "Automation test server")
            if not isinstance(values, list) or not 1 <= len(values) <= 10 or not all(isinstance(v, str) for v in values):
                raise ServiceError(400, "InvalidFilterValue", f"Filter {key} needs 1 to 10 string values")
            out.append((key, values))
        return out

    @staticmethod
    def _time_filter(items: list[dict], key: str, values: list[str]) -> list[dict]:
        try:
            when = dt.datetime.fromisoformat(values[0].replace("Z", "+00:00"))
        except ValueError:
            raise ServiceError(400, "InvalidFilterValue", f"{key} needs an ISO 8601 time, not {values[0]!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        t = when.timestamp()
        if key == "StartTimeBefore":
            return [i for i in items if i.get("ExecutionStartTime") is not None and i["ExecutionStartTime"] <= t]
        return [i for i in items if i.get("ExecutionStartTime") is not None and i["ExecutionStartTime"] >= t]

    @staticmethod
    def _page(items: list, body: dict) -> tuple[list, str | None]:
        size = body.get("MaxResults") or PAGE_SIZE
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= PAGE_SIZE:
            raise _validation(f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy "
                              f"constraint: Member must have value between 1 and {PAGE_SIZE}")
        token = body.get("NextToken")
        offset = 0
        if token:
            try:
                offset = int(base64.b64decode(token).decode())
            except (ValueError, TypeError):
                raise ServiceError(400, "InvalidNextToken", "The NextToken is not valid") from None
        page = items[offset:offset + size]
        more = offset + size < len(items)
        return page, base64.b64encode(str(offset + size).encode()).decode() if more else None

    # ---- answers (called with self._lock held)

    def _row_view(self, r: StepRun) -> tuple[str, float | None, float | None, str | None]:
        """(status, start, end, failure) of a row; a TargetLocations row mirrors its child."""
        if r.target_location is not None and r.child_id:
            child = self.executions.get(r.child_id)
            if child is not None:
                return child.status, child.start, child.end, child.failure
        return r.status, r.start, r.end, r.failure

    def _step_dict(self, r: StepRun) -> dict:
        status, start, end, failure = self._row_view(r)
        out: dict[str, Any] = {
            "StepName": r.name,
            "Action": r.action,
            "OnFailure": r.on_failure,
            "MaxAttempts": r.max_attempts,
            "StepStatus": status,
            "Inputs": {k: json.dumps(v) for k, v in r.inputs.items()},  # each value as JSON text
            "StepExecutionId": r.id,
            "IsEnd": r.is_end,
            "IsCritical": r.is_critical,
        }
        if r.timeout_seconds is not None:
            out["TimeoutSeconds"] = r.timeout_seconds
        if start is not None:
            out["ExecutionStartTime"] = start
        if end is not None:
            out["ExecutionEndTime"] = end
        if r.outputs:
            out["Outputs"] = copy.deepcopy(r.outputs)
        if failure:
            out["FailureMessage"] = failure
        if r.next_step:
            out["NextStep"] = r.next_step
        if r.valid_next_steps:
            out["ValidNextSteps"] = list(r.valid_next_steps)
        if r.target_location is not None:
            out["TargetLocation"] = copy.deepcopy(r.target_location)
        return out

    def _counters(self, e: Execution) -> dict[str, int]:
        counts = {"TotalSteps": 0, "SuccessSteps": 0, "FailedSteps": 0, "CancelledSteps": 0, "TimedOutSteps": 0}
        if e.plans:
            for r in e.steps:
                child = self.executions.get(r.child_id) if r.child_id else None
                if child is not None:
                    for k, v in self._counters(child).items():
                        counts[k] += v
            return counts
        for r in e.steps:
            status = self._row_view(r)[0]
            if status == "Pending":
                continue
            counts["TotalSteps"] += 1
            key = {"Success": "SuccessSteps", "Failed": "FailedSteps", "Cancelled": "CancelledSteps",
                   "TimedOut": "TimedOutSteps"}.get(status)
            if key:
                counts[key] += 1
        return counts

    def _describe(self, e: Execution) -> dict:
        out: dict[str, Any] = {
            "AutomationExecutionId": e.id,
            "DocumentName": e.document_name,
            "DocumentVersion": e.document_version,
            "ExecutionStartTime": e.start,
            "AutomationExecutionStatus": e.status,
            "StepExecutions": [self._step_dict(r) for r in e.steps],
            "StepExecutionsTruncated": False,
            "Parameters": copy.deepcopy(e.parameters_display),
            "Outputs": copy.deepcopy(e.outputs),
            "Mode": e.mode,
            "ExecutedBy": e.caller.arn,
        }
        if e.end is not None:
            out["ExecutionEndTime"] = e.end
        if e.failure:
            out["FailureMessage"] = e.failure
        if e.parent is not None:
            out["ParentAutomationExecutionId"] = e.parent.id
        if e.current_step and e.status not in FINISHED:
            out["CurrentStepName"] = e.current_step
            out["CurrentAction"] = e.current_action
        if e.target_locations:
            out["TargetLocations"] = copy.deepcopy(e.target_locations)
            out["ProgressCounters"] = self._counters(e)
        return out

    def _metadata(self, e: Execution) -> dict:
        out: dict[str, Any] = {
            "AutomationExecutionId": e.id,
            "DocumentName": e.document_name,
            "DocumentVersion": e.document_version,
            "AutomationExecutionStatus": e.status,
            "ExecutionStartTime": e.start,
            "ExecutedBy": e.caller.arn,
            "Outputs": copy.deepcopy(e.outputs),
            "Mode": e.mode,
            "AutomationType": e.automation_type,
        }
        if e.end is not None:
            out["ExecutionEndTime"] = e.end
        if e.parent is not None:
            out["ParentAutomationExecutionId"] = e.parent.id
        if e.current_step and e.status not in FINISHED:
            out["CurrentStepName"] = e.current_step
            out["CurrentAction"] = e.current_action
        if e.failure:
            out["FailureMessage"] = e.failure
        return out

    # ---- running

    def _run(self, e: Execution) -> None:
        try:
            with self._lock:
                if e.status == "Pending":
                    e.status = "InProgress"
            if e.plans:
                self._run_targets(e)
            else:
                self._run_steps(e)
        except Exception as ex:  # noqa: BLE001 - a server bug ends the run, visibly
            traceback.print_exc()
            self._finish(e, "Failed", f"SSM Automation test server bug: {ex!r}")
        finally:
            e.done.set()

    def _finish(self, e: Execution, status: str, failure: str | None = None) -> None:
        with self._lock:
            if e.status in FINISHED:
                return
            if e.should_stop() and status != "Failed":
                status = "Cancelled"
            e.status, e.failure, e.end, e.ended = status, failure, _now(), time.monotonic()
            e.current_step = e.current_action = None
            declared = e.doc.get("outputs") or []
            e.outputs = {n: _display(e.scope[n]) for n in declared if isinstance(n, str) and n in e.scope}

    def _sleep(self, e: Execution, seconds: float) -> bool:
        """Wait `seconds`; True if the run was stopped meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            if e.should_stop() or self._stopping.is_set():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            e.stop_event.wait(min(left, 0.02))

    def _run_steps(self, e: Execution) -> None:
        with self._lock:
            e.scope = {**self._globals(e), **e.parameters}
        role = self._role_of(e)
        try:
            e.creds = self._assume(e.caller, role, e.region) if role else e.caller
        except StepFailed as f:
            self._finish(e, "Failed", f.message)
            return
        steps = e.doc["mainSteps"]
        index = {s["name"]: i for i, s in enumerate(steps)}
        i, runs, critical_failure = 0, 0, None
        while i < len(steps):
            if e.should_stop():
                self._finish(e, "Cancelled")
                return
            runs += 1
            if runs > MAX_STEP_RUNS:
                self._finish(e, "Failed", f"More than {MAX_STEP_RUNS} steps ran: the document loops")
                return
            step, row = steps[i], e.steps[i]
            status, next_step, message = self._run_step(e, step, row)
            if status == "Cancelled":
                self._finish(e, "Cancelled")
                return
            if status == "Success":
                if row.is_end:
                    break
                target = next_step or row.next_step
            else:
                on_failure = row.on_failure
                if on_failure == "Continue":
                    target = row.next_step
                elif on_failure.startswith("step:"):
                    target = on_failure[len("step:"):]
                else:  # Abort (and anything unknown)
                    self._finish(e, "TimedOut" if status == "TimedOut" else "Failed", message)
                    return
                if row.is_critical and critical_failure is None:
                    critical_failure = message
                if on_failure == "Continue" and row.is_end:
                    break
            if target:
                if target not in index:
                    self._finish(e, "Failed", f"Step {row.name} names next step {target}, which the document lacks")
                    return
                i = index[target]
            else:
                i += 1
        self._finish(e, "Failed" if critical_failure else "Success", critical_failure)

    def _role_of(self, e: Execution) -> str | None:
        """The role the document runs as: its assumeRole, else an AutomationAssumeRole parameter."""
        role = e.doc.get("assumeRole")
        if role is None:
            role = e.parameters.get("AutomationAssumeRole")
        if not role:
            return None
        try:
            value = self._substitute(role, e)
        except StepFailed:
            return None
        return value if isinstance(value, str) and value.strip() else None

    def _run_step(self, e: Execution, step: dict, row: StepRun) -> tuple[str, str | None, str | None]:
        """Runs one step; (status, branch target, failure message)."""
        with self._lock:
            row.status, row.start, row.end, row.failure, row.outputs = "InProgress", _now(), None, None, {}
            e.current_step, e.current_action = row.name, row.action
        started = time.monotonic()
        status, next_step, message, outputs = "Success", None, None, {}
        try:
            if self.step_delay and self._sleep(e, self.step_delay):
                raise StepCancelled
            inputs = self._substitute(step.get("inputs") or {}, e, skip=frozenset({"Script"}))
            with self._lock:
                row.inputs = inputs
            action = self._actions().get(row.action)
            if action is None:
                raise StepFailed(f"action {row.action} is not supported by the test server")
            for attempt in range(row.max_attempts):
                try:
                    result = action(e, step, row, inputs)
                    break
                except StepFailed as f:
                    if attempt + 1 >= row.max_attempts or f.status != "Failed" or e.should_stop():
                        raise
            source, next_step, extra = result
            outputs = dict(extra)
            for out in step.get("outputs") or []:
                name, selector, type_ = out.get("Name"), out.get("Selector"), out.get("Type", "String")
                if type_ not in OUTPUT_TYPES:
                    raise StepFailed(f"Output {name} has an unknown Type {type_}")
                found, value = _select(source, selector)
                if not found:
                    continue  # Automation leaves an output out when its selector matches nothing
                value = _typed_output(value, type_, name)
                with self._lock:
                    e.scope[f"{row.name}.{name}"] = value
                outputs[name] = _display(value)
        except StepCancelled:
            status = "Cancelled"
        except StepFailed as f:
            status, message = f.status, _step_failure(f.message)
        except Exception as ex:  # noqa: BLE001 - a script or server bug fails the step, not the thread
            traceback.print_exc()
            status, message = "Failed", _step_failure(f"{type(ex).__name__}: {ex}")
        with self._lock:
            # A failed aws:executeAutomation keeps the ExecutionId it recorded.
            row.status, row.end, row.failure, row.outputs = status, _now(), message, outputs or row.outputs
            e.step_seconds += time.monotonic() - started
        return status, next_step, message

    def _actions(self) -> dict[str, Callable]:
        return {
            "aws:executeAwsApi": self._execute_aws_api,
            "aws:assertAwsResourceProperty": self._assert_property,
            "aws:waitForAwsResourceProperty": self._wait_for_property,
            "aws:executeScript": self._execute_script,
            "aws:branch": self._branch,
            "aws:executeAutomation": self._execute_automation,
            "aws:sleep": self._sleep_action,
        }

    # ---- actions: each returns (selector source, branch target, extra outputs)

    def _call_api(self, e: Execution, inputs: dict, skip: tuple[str, ...] = ()) -> dict:
        assert e.creds is not None
        client = self._client(service_name_for(inputs.get("Service")), e.creds)
        method = _method_for(client, inputs.get("Api"))
        params = {k: v for k, v in inputs.items() if k not in ("Service", "Api", *skip)}
        try:
            answer = getattr(client, method)(**params)
        except (botocore.exceptions.ClientError, botocore.exceptions.ParamValidationError) as ex:
            raise StepFailed(str(ex)) from ex
        except botocore.exceptions.BotoCoreError as ex:
            raise StepFailed(f"{type(ex).__name__}: {ex}") from ex
        answer.pop("ResponseMetadata", None)
        return _jsonable(answer)

    def _execute_aws_api(self, e: Execution, step: dict, row: StepRun, inputs: dict) -> tuple:
        return self._call_api(e, inputs), None, {}

    def _property_check(self, e: Execution, inputs: dict) -> tuple[bool, str]:
        selector, desired = inputs.get("PropertySelector"), inputs.get("DesiredValues")
        if not isinstance(desired, list) or not desired:
            raise StepFailed("DesiredValues must be a non-empty list")
        answer = self._call_api(e, inputs, skip=("PropertySelector", "DesiredValues"))
        found, value = _select(answer, selector)
        if not found:
            return False, f"The property selector {selector} matches nothing in the {inputs.get('Api')} response"
        text = value if isinstance(value, str) else (json.dumps(value) if isinstance(value, (dict, list)) else str(value))
        wanted = [str(d) for d in desired]
        ok = text in wanted or (isinstance(value, bool) and text.lower() in (w.lower() for w in wanted))
        return ok, f"Current value of property {selector} is {text}, which is not one of the desired values {wanted}"

    def _assert_property(self, e: Execution, step: dict, row: StepRun, inputs: dict) -> tuple:
        ok, why = self._property_check(e, inputs)
        if not ok:
            raise StepFailed(why)
        return {}, None, {}

    def _wait_for_property(self, e: Execution, step: dict, row: StepRun, inputs: dict) -> tuple:
        timeout = row.timeout_seconds if row.timeout_seconds is not None else DEFAULT_WAIT_TIMEOUT
        deadline = time.monotonic() + timeout
        while True:
            ok, why = self._property_check(e, inputs)
            if ok:
                return {}, None, {}
            if time.monotonic() >= deadline:
                raise StepFailed(f"Step timed out after {timeout} seconds while waiting for the resource property. "
                                 f"{why}", status="TimedOut")
            if self._sleep(e, min(POLL_SECONDS, max(0.0, deadline - time.monotonic()))):
                raise StepCancelled

    def _sleep_action(self, e: Execution, step: dict, row: StepRun, inputs: dict) -> tuple:
        if "Duration" in inputs:
            seconds = _parse_duration(inputs["Duration"])
        elif "Timestamp" in inputs:
            try:
                when = dt.datetime.fromisoformat(str(inputs["Timestamp"]).replace("Z", "+00:00"))
            except ValueError:
                raise StepFailed(f"Invalid Timestamp {inputs['Timestamp']!r}") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            seconds = max(0.0, when.timestamp() - time.time())
        else:
            raise StepFailed("aws:sleep needs Duration or Timestamp")
        if self._sleep(e, seconds):
            raise StepCancelled
        return {}, None, {}

    def _branch(self, e: Execution, step: dict, row: StepRun, inputs: dict) -> tuple:
        choices = inputs.get("Choices")
        if not isinstance(choices, list) or not choices:
            raise StepFailed("aws:branch needs a non-empty Choices list")
        for choice in choices:
            if not isinstance(choice, dict) or not isinstance(choice.get("NextStep"), str):
                raise StepFailed("Every choice needs a NextStep")
            if self._choice_matches(choice):
                return {}, choice["NextStep"], {}
        default = inputs.get("Default")
        if isinstance(default, str) and default:
            return {}, default, {}
        raise StepFailed("No choice matched and the step has no Default")

    def _choice_matches(self, choice: dict) -> bool:
        if "And" in choice:
            return all(self._choice_matches(c) for c in choice["And"])
        if "Or" in choice:
            return any(self._choice_matches(c) for c in choice["Or"])
        if "Not" in choice:
            return not self._choice_matches(choice["Not"])
        if "Variable" not in choice:
            raise StepFailed("A choice needs a Variable (or And, Or, Not)")
        var = choice["Variable"]

        def num(x: Any) -> float:
            try:
                return float(x)
            except (TypeError, ValueError):
                raise StepFailed(f"{x!r} is not a number") from None

        ops: dict[str, Callable[[Any], bool]] = {
            "StringEquals": lambda x: _text(var) == _text(x),
            "EqualsIgnoreCase": lambda x: _text(var).lower() == _text(x).lower(),
            "StartsWith": lambda x: _text(var).startswith(_text(x)),
            "EndsWith": lambda x: _text(var).endswith(_text(x)),
            "Contains": lambda x: (x in var) if isinstance(var, list) else _text(x) in _text(var),
            "BooleanEquals": lambda x: _to_bool(var) == _to_bool(x),
            "NumericEquals": lambda x: num(var) == num(x),
            "NumericGreater": lambda x: num(var) > num(x),
            "NumericLesser": lambda x: num(var) < num(x),
            "NumericGreaterOrEquals": lambda x: num(var) >= num(x),
            "NumericLesserOrEquals": lambda x: num(var) <= num(x),
        }
        for op, fn in ops.items():
            if op in choice:
                try:
                    return fn(choice[op])
                except ValueError as ex:
                    raise StepFailed(str(ex)) from ex
        raise StepFailed(f"The choice has no operator (one of {', '.join(ops)})")

    def _execute_script(self, e: Execution, step: dict, row: StepRun, inputs: dict) -> tuple:
        runtime = str(inputs.get("Runtime") or "")
        if not runtime.startswith("python3"):
            raise StepFailed(f"Runtime {runtime or '(none)'} is not supported by the test server (python3.x only)")
        if inputs.get("Attachment"):
            raise StepFailed("Script attachments are not supported by the test server")
        script, handler_name = inputs.get("Script"), inputs.get("Handler")
        if not isinstance(script, str) or not isinstance(handler_name, str):
            raise StepFailed("aws:executeScript needs Script and Handler")
        shim = self._boto3_shim(e)
        real_import = builtins.__import__

        def scoped_import(name: str, globals_: Any = None, locals_: Any = None, fromlist: Any = (), level: int = 0) -> Any:
            if level == 0 and (name == "boto3" or name.startswith("boto3.")):
                return shim.session if (fromlist and name == "boto3.session") else shim
            return real_import(name, globals_, locals_, fromlist, level)

        namespace: dict[str, Any] = {"__builtins__": {**builtins.__dict__, "__import__": scoped_import},
                                     "__name__": f"automation_{row.name}"}
        try:
            exec(compile(script, f"<{row.name} script>", "exec"), namespace)  # noqa: S102 - the document's own script
            fn = namespace.get(handler_name)
            if not callable(fn):
                raise StepFailed(f"The script defines no function {handler_name}")
            result = fn(copy.deepcopy(inputs.get("InputPayload") or {}), {})
        except StepFailed:
            raise
        except Exception as ex:  # noqa: BLE001 - the script's exception fails the step
            raise StepFailed(f"{type(ex).__name__}: {ex}") from ex
        source = {"Payload": _jsonable(result)}
        return source, None, {"OutputPayload": [json.dumps(source)]}

    def _boto3_shim(self, e: Execution) -> types.ModuleType:
        """What `import boto3` gives a script: clients, resources and sessions on moto, as the step."""
        server, creds = self, e.creds
        assert creds is not None

        def client(service_name: str, region_name: str | None = None, *_: Any, config: Any = None, **__: Any) -> Any:
            return server._client(service_name, creds, region_name, config)

        def resource(service_name: str, region_name: str | None = None, *_: Any, config: Any = None, **__: Any) -> Any:
            with server._clients_lock:
                session = boto3.session.Session(aws_access_key_id=creds.access_key,
                                                 aws_secret_access_key=creds.secret_key,
                                                 aws_session_token=creds.session_token,
                                                 region_name=region_name or creds.region)
                return session.resource(service_name, endpoint_url=server.moto_url, config=config)

        class Session:
            def __init__(self, *_: Any, region_name: str | None = None, **__: Any):
                self.region_name = region_name or creds.region

            def client(self, service_name: str, region_name: str | None = None, *a: Any, **kw: Any) -> Any:
                return client(service_name, region_name or self.region_name, *a, **kw)

            def resource(self, service_name: str, region_name: str | None = None, *a: Any, **kw: Any) -> Any:
                return resource(service_name, region_name or self.region_name, *a, **kw)

        shim = types.ModuleType("boto3")
        shim.client, shim.resource, shim.Session = client, resource, Session  # type: ignore[attr-defined]
        shim.session = types.SimpleNamespace(Session=Session)  # type: ignore[attr-defined]
        shim.__version__ = boto3.__version__  # type: ignore[attr-defined]
        return shim

    def _execute_automation(self, e: Execution, step: dict, row: StepRun, inputs: dict) -> tuple:
        name = inputs.get("DocumentName")
        if not isinstance(name, str) or not name:
            raise StepFailed("aws:executeAutomation needs DocumentName")
        if inputs.get("TargetLocations") or inputs.get("Targets"):
            raise StepFailed("TargetLocations and Targets in aws:executeAutomation are not supported by the test server")
        runtime = inputs.get("RuntimeParameters") or {}
        if not isinstance(runtime, dict):
            raise StepFailed("RuntimeParameters must be an object")
        params = {k: [_text(x) for x in v] if isinstance(v, list) else [_text(v)] for k, v in runtime.items()}
        assert e.creds is not None
        try:
            doc, version = self._load_document(e.creds, name, inputs.get("DocumentVersion"))
            child = Execution(id=str(uuid.uuid4()), document_name=name, document_version=version, doc=doc,
                              raw_parameters=params, caller=e.creds, parent=e)
            self._resolve_parameters(child)
        except ServiceError as ex:
            raise StepFailed(f"{ex.error_type}: {ex.message}") from ex
        child.steps = self._step_rows(doc)
        with self._lock:
            self.executions[child.id] = child
            row.child_id = child.id
        self._run(child)  # awaited, in this thread
        with self._lock:
            extra = {"ExecutionId": [child.id], "Status": [child.status],
                     "Output": [json.dumps(child.outputs)]}
            row.outputs = extra
        if child.status == "Cancelled" and e.should_stop():
            raise StepCancelled
        if child.status != "Success":
            raise StepFailed(f"Automation execution {child.id} ({name}) ended {child.status}: {child.failure or ''}")
        return {"ExecutionId": child.id, "Status": child.status, "Output": child.outputs}, None, extra

    # ---- TargetLocations

    def _run_targets(self, e: Execution) -> None:
        failed_total = 0
        for plan in e.plans:
            pending = deque(plan.rows)
            running: list[tuple[Execution, StepRun]] = []
            failed, halted = 0, False
            while pending or running:
                while pending and not halted and len(running) < plan.concurrency and not e.should_stop():
                    account, region, row = pending.popleft()
                    child = self._start_child(e, account, region, plan.role_name, row)
                    if child is None:
                        failed += 1
                    else:
                        running.append((child, row))
                    if failed > plan.max_errors:
                        halted = True
                if e.should_stop():
                    halted = True
                if not running:
                    if halted or not pending:
                        break
                    continue
                time.sleep(0.01)
                for child, row in [x for x in running if x[0].done.is_set()]:
                    running.remove((child, row))
                    with self._lock:
                        e.step_seconds += child.step_seconds
                    if child.status != "Success":
                        failed += 1
                if failed > plan.max_errors:
                    halted = True
            with self._lock:
                for _, _, row in pending:  # never started
                    row.status, row.end = "Cancelled", _now()
                    row.failure = ("The run was stopped before this target started" if e.should_stop() else
                                   f"Not started: more than TargetLocationMaxErrors ({plan.max_errors}) "
                                   "target executions failed")
            failed_total += failed
            if e.should_stop():
                break
        total = sum(len(p.rows) for p in e.plans)
        if e.should_stop():
            self._finish(e, "Cancelled")
        elif failed_total or any(self._row_view(r)[0] != "Success" for r in e.steps):
            with self._lock:
                bad = sum(1 for r in e.steps if self._row_view(r)[0] != "Success")
            self._finish(e, "Failed", f"{bad} of {total} target executions did not succeed")
        else:
            self._finish(e, "Success")

    def _start_child(self, e: Execution, account: str, region: str, role_name: str, row: StepRun) -> Execution | None:
        """Starts the child run for one target; None (the row Failed) if it cannot start."""
        with self._lock:
            row.status, row.start = "InProgress", _now()
        try:
            creds = self._assume(e.caller, f"arn:aws:iam::{account}:role/{role_name}", region)
        except StepFailed as f:
            with self._lock:
                row.status, row.end, row.failure = "Failed", _now(), _step_failure(f.message)
            return None
        child = Execution(id=str(uuid.uuid4()), document_name=e.document_name, document_version=e.document_version,
                          doc=e.doc, raw_parameters=copy.deepcopy(e.raw_parameters), caller=creds, mode=e.mode,
                          parent=e, automation_type="CrossAccount")
        child.steps = self._step_rows(e.doc)
        try:
            self._resolve_parameters(child)  # global:ACCOUNT_ID and global:REGION are the target's
        except ServiceError as ex:
            child.status, child.failure, child.end = "Failed", ex.message, _now()
            child.done.set()
        with self._lock:
            self.executions[child.id] = child
            row.child_id = child.id
            row.outputs = {"ExecutionId": [child.id]}
        if not child.done.is_set():
            threading.Thread(target=self._run, args=(child,), name=f"automation-{child.id[:8]}", daemon=True).start()
        return child


# --------------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Local SSM Automation test server running documents on moto (127.0.0.1 only).")
    p.add_argument("--moto-url", required=True, help="moto server URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (0 = a free port)")
    p.add_argument("--step-delay", type=float, default=0.0, help="seconds each step takes before its action")
    p.add_argument("--fixtures", type=Path, default=FIXTURES, help="directory of AWS-owned documents (<Name>.yaml)")
    args = p.parse_args(argv)
    return serve_until_signalled(SsmAutomationServer(args.moto_url, fixtures=args.fixtures,
                                                     step_delay=args.step_delay, port=args.port))


if __name__ == "__main__":
    sys.exit(main())
