"""A small AWS Security Hub server for tests: GetFindings, BatchImportFindings, BatchUpdateFindings,
insights, and the new Security Hub's v2 findings API (securityhub_v2.py).

Why not moto: moto's Security Hub ignores GetFindings filters and has no
BatchUpdateFindings, and the kernel depends on both.

Wire protocol: restJson1, as described by botocore's service model
(botocore/data/securityhub/2018-10-26/service-2.json.gz):

    GetFindings          POST  /findings              -> {"Findings": [...], "NextToken"?}
    BatchImportFindings  POST  /findings/import       -> {"FailedCount", "SuccessCount", "FailedFindings"}
    BatchUpdateFindings  PATCH /findings/batchupdate  -> {"ProcessedFindings", "UnprocessedFindings"}

Errors are sent the way restJson1 services send them, with the code in the
`x-amzn-ErrorType` header and a JSON body shaped like the model's error
structures ({"Code", "Message"}).  The header matters: botocore reads the code
from the header first (then body `Code`/`code`/`__type`), and the AWS SDK for
Rust reads it from the header, else from body `code` or `__type`, never from
`Code`.  Both SDKs classify `TooManyRequestsException` and
`LimitExceededException` as throttling errors; a bare 429 is a throttle for
botocore's standard retries but not for the Rust SDK.

Point a client at it with an endpoint URL, for example
`AWS_ENDPOINT_URL_SECURITYHUB=http://127.0.0.1:PORT` (any SDK), or
`boto3.client("securityhub", endpoint_url=server.url, ...)`.

Standalone:  python -m tests.servers.securityhub --port 0 --findings 500
prints the URL as its first line of output and serves until killed.

The HTTP plumbing (threaded server, request recording, injected errors,
start/stop) is the shared `servers.http.LocalServer`.

Standard library only; binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import copy
import functools
import gzip
import hashlib
import importlib.util
import json
import os
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from urllib.parse import unquote, urlsplit

from . import securityhub_v2 as v2
from .http import Handler, LocalServer, RecordedRequest, ServiceError, parse_json, serve_until_signalled

__all__ = [
    "SecurityHubServer",
    "RecordedRequest",
    "ServiceError",
    "make_finding",
    "make_findings",
    "access_denied",
    "not_subscribed",
    "limit_exceeded",
    "internal_error",
    "THROTTLE_ERROR_TYPE",
    "THROTTLE_MESSAGE",
]

GET_FINDINGS = "GetFindings"
BATCH_IMPORT_FINDINGS = "BatchImportFindings"
BATCH_UPDATE_FINDINGS = "BatchUpdateFindings"
GET_FINDINGS_V2 = "GetFindingsV2"
BATCH_UPDATE_FINDINGS_V2 = "BatchUpdateFindingsV2"
GET_FINDING_STATISTICS_V2 = "GetFindingStatisticsV2"
DESCRIBE_SECURITY_HUB_V2 = "DescribeSecurityHubV2"
CREATE_INSIGHT = "CreateInsight"
GET_INSIGHTS = "GetInsights"
GET_INSIGHT_RESULTS = "GetInsightResults"
INSIGHT_RESULTS_PREFIX = "/insights/results/"

# (HTTP method, path) -> operation, from the service model's "http" traits.
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/findings"): GET_FINDINGS,
    ("POST", "/findings/import"): BATCH_IMPORT_FINDINGS,
    ("PATCH", "/findings/batchupdate"): BATCH_UPDATE_FINDINGS,
    ("POST", "/findingsv2"): GET_FINDINGS_V2,
    ("PATCH", "/findingsv2/batchupdatev2"): BATCH_UPDATE_FINDINGS_V2,
    ("POST", "/findingsv2/statistics"): GET_FINDING_STATISTICS_V2,
    ("GET", "/hubv2"): DESCRIBE_SECURITY_HUB_V2,
    ("POST", "/insights"): CREATE_INSIGHT,
    ("POST", "/insights/get"): GET_INSIGHTS,
}
OPERATIONS = frozenset(ROUTES.values()) | {GET_INSIGHT_RESULTS}
# Paged like GetFindings, and paced by the same documented quota (none is
# published for GetFindingsV2).
PAGED = frozenset({GET_FINDINGS, GET_FINDINGS_V2})

# Throttling.  TooManyRequestsException is not one of the model's modeled
# errors (the modeled 429 is LimitExceededException); it is what the service's
# front door answers when the API rate limit is hit, as seen by users, e.g.
# "An error occurred (TooManyRequestsException) when calling the GetFindings
# operation: Too Many Requests" (prowler-cloud/prowler#5004).  Both SDKs list it
# among their throttling error codes.
THROTTLE_STATUS = 429
THROTTLE_ERROR_TYPE = "TooManyRequestsException"
THROTTLE_MESSAGE = "Too Many Requests"

# Documented service limits (API reference, "Welcome"): GetFindings RateLimit 3/s, BurstLimit 6.
DEFAULT_RATE = 3.0
DEFAULT_BURST = 6

MAX_FILTER_FIELDS = 10  # "You can filter by up to 10 finding attributes."
MAX_FILTER_VALUES = 20  # "For each attribute, you can provide up to 20 filter values."
MAX_BATCH = 100  # BatchImportFindings (model: max 100) and BatchUpdateFindings (doc: up to 100)
MAX_NOTE_CHARS = 512  # Note.Text and Note.UpdatedBy

WORKFLOW_STATUSES = ("NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED")
SEVERITY_LABELS = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
VERIFICATION_STATES = ("UNKNOWN", "TRUE_POSITIVE", "FALSE_POSITIVE", "BENIGN_POSITIVE")
# Label -> Normalized as Security Hub's own control findings carry it.
LABEL_TO_NORMALIZED = {"INFORMATIONAL": 0, "LOW": 1, "MEDIUM": 40, "HIGH": 70, "CRITICAL": 90}

# Required members of AwsSecurityFinding (service model).
REQUIRED_FINDING_FIELDS = (
    "SchemaVersion",
    "Id",
    "ProductArn",
    "GeneratorId",
    "AwsAccountId",
    "CreatedAt",
    "UpdatedAt",
    "Title",
    "Description",
    "Resources",
)


# --------------------------------------------------------------------------- errors


def _invalid(message: str) -> ServiceError:
    return ServiceError(400, "InvalidInputException", message)


def access_denied(
    operation: str = GET_FINDINGS,
    principal: str = "arn:aws:iam::111111111111:user/x",
) -> tuple[int, str, str]:
    """(status, type, message) of an IAM denial, for `fail_next(op, *access_denied(op))`."""
    return (
        403,
        "AccessDeniedException",
        f"User: {principal} is not authorized to perform: securityhub:{operation}",
    )


def not_subscribed(account: str = "111111111111") -> tuple[int, str, str]:
    """What Security Hub answers when it is not enabled in the account/Region:
    InvalidAccessException, HTTP 401 (model: InvalidAccessException httpStatusCode 401)."""
    return (401, "InvalidAccessException", f"Account {account} is not subscribed to AWS Security Hub")


def limit_exceeded(message: str = "Rate exceeded") -> tuple[int, str, str]:
    """The model's own 429 error shape (a throttling code for both SDKs)."""
    return (429, "LimitExceededException", message)


def internal_error(message: str = "Internal service error") -> tuple[int, str, str]:
    return (500, "InternalException", message)


# --------------------------------------------------------------------------- finding paths

# A path is a tuple of keys; "[]" means "each element of this list".
Path = tuple[str, ...]


def _values(obj: Any, paths: Iterable[Path]) -> list[Any]:
    """All scalar values found at any of `paths` in `obj` (missing or null -> none)."""
    out: list[Any] = []
    for path in paths:
        current = [obj]
        for seg in path:
            nxt = []
            for v in current:
                if seg == "[]":
                    if isinstance(v, list):
                        nxt.extend(x for x in v if x is not None)
                elif isinstance(v, dict):
                    x = v.get(seg)
                    if x is not None:
                        nxt.append(x)
            current = nxt
        out.extend(current)
    return out


STRING_FIELDS: dict[str, tuple[Path, ...]] = {
    "Id": (("Id",),),
    "ProductArn": (("ProductArn",),),
    "ProductName": (("ProductName",), ("ProductFields", "aws/securityhub/ProductName")),
    "CompanyName": (("CompanyName",), ("ProductFields", "aws/securityhub/CompanyName")),
    "AwsAccountId": (("AwsAccountId",),),
    "AwsAccountName": (("AwsAccountName",),),
    "Region": (("Region",),),
    "GeneratorId": (("GeneratorId",),),
    "Type": (("Types", "[]"),),
    "SeverityLabel": (("Severity", "Label"),),
    "Title": (("Title",),),
    "Description": (("Description",),),
    "RecommendationText": (("Remediation", "Recommendation", "Text"),),
    "SourceUrl": (("SourceUrl",),),
    "ResourceType": (("Resources", "[]", "Type"),),
    "ResourceId": (("Resources", "[]", "Id"),),
    "ResourcePartition": (("Resources", "[]", "Partition"),),
    "ResourceRegion": (("Resources", "[]", "Region"),),
    "ComplianceStatus": (("Compliance", "Status"),),
    "ComplianceSecurityControlId": (("Compliance", "SecurityControlId"),),
    "ComplianceAssociatedStandardsId": (("Compliance", "AssociatedStandards", "[]", "StandardsId"),),
    "VerificationState": (("VerificationState",),),
    "WorkflowState": (("WorkflowState",),),
    "WorkflowStatus": (("Workflow", "Status"),),
    "RecordState": (("RecordState",),),
    "RelatedFindingsId": (("RelatedFindings", "[]", "Id"),),
    "RelatedFindingsProductArn": (("RelatedFindings", "[]", "ProductArn"),),
    "NoteText": (("Note", "Text"),),
    "NoteUpdatedBy": (("Note", "UpdatedBy"),),
    "FindingProviderFieldsSeverityLabel": (("FindingProviderFields", "Severity", "Label"),),
    "FindingProviderFieldsSeverityOriginal": (("FindingProviderFields", "Severity", "Original"),),
    "FindingProviderFieldsTypes": (("FindingProviderFields", "Types", "[]"),),
}
NUMBER_FIELDS: dict[str, tuple[Path, ...]] = {
    "SeverityNormalized": (("Severity", "Normalized"),),
    "SeverityProduct": (("Severity", "Product"),),
    "Confidence": (("Confidence",),),
    "Criticality": (("Criticality",),),
    "FindingProviderFieldsConfidence": (("FindingProviderFields", "Confidence"),),
    "FindingProviderFieldsCriticality": (("FindingProviderFields", "Criticality"),),
}
DATE_FIELDS: dict[str, tuple[Path, ...]] = {
    "CreatedAt": (("CreatedAt",),),
    "UpdatedAt": (("UpdatedAt",),),
    "FirstObservedAt": (("FirstObservedAt",),),
    "LastObservedAt": (("LastObservedAt",),),
    "NoteUpdatedAt": (("Note", "UpdatedAt"),),
}
MAP_FIELDS: dict[str, tuple[Path, ...]] = {
    "ProductFields": (("ProductFields",),),
    "UserDefinedFields": (("UserDefinedFields",),),
    "ResourceTags": (("Resources", "[]", "Tags"),),
}
BOOLEAN_FIELDS: dict[str, tuple[Path, ...]] = {
    "Sample": (("Sample",),),
}

# Sort fields: (paths, kind).  SeverityLabel sorts by the normalized score, as a
# severity order (CRITICAL > HIGH > ...) rather than alphabetically.
SORT_FIELDS: dict[str, tuple[tuple[Path, ...], str]] = {
    **{k: (v, "string") for k, v in STRING_FIELDS.items()},
    **{k: (v, "number") for k, v in NUMBER_FIELDS.items()},
    **{k: (v, "date") for k, v in DATE_FIELDS.items()},
    "SeverityLabel": (NUMBER_FIELDS["SeverityNormalized"], "number"),
}
DEFAULT_SORT = [{"Field": "UpdatedAt", "SortOrder": "desc"}]


@functools.lru_cache(maxsize=1)
def _model_filter_fields() -> frozenset[str]:
    """Filter names the real API knows (from botocore's model, when installed), so
    that an unimplemented-but-real field gets a clearer message than a typo."""
    try:
        spec = importlib.util.find_spec("botocore")
        if spec is None or not spec.submodule_search_locations:
            return frozenset()
        base = list(spec.submodule_search_locations)[0]
        path = os.path.join(base, "data", "securityhub", "2018-10-26", "service-2.json.gz")
        with gzip.open(path) as fh:
            model = json.load(fh)
        return frozenset(model["shapes"]["AwsSecurityFindingFilters"]["members"])
    except Exception:  # noqa: BLE001 - only improves an error message
        return frozenset()


# --------------------------------------------------------------------------- time


def _iso(dt: datetime) -> str:
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def now_iso() -> str:
    """Current time in the ISO 8601 form Security Hub uses (millisecond precision, Z)."""
    return _iso(datetime.now(timezone.utc))


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


# --------------------------------------------------------------------------- filters

Predicate = Callable[[dict], bool]
POSITIVE = {"EQUALS": "EQUALS", "PREFIX": "PREFIX", "CONTAINS": "CONTAINS"}
NEGATIVE = {"NOT_EQUALS": "EQUALS", "PREFIX_NOT_EQUALS": "PREFIX", "NOT_CONTAINS": "CONTAINS"}


def _str_match(op: str, expected: str, actual: str) -> bool:
    if op == "EQUALS":
        return actual == expected
    if op == "PREFIX":
        return actual.startswith(expected)
    return expected in actual  # CONTAINS


def _check_string_combination(name: str, comparisons: set[str]) -> None:
    """The combination rules of StringFilter (service model documentation)."""
    if "CONTAINS" in comparisons and comparisons != {"CONTAINS"}:
        raise _invalid(f"Filter {name}: CONTAINS filters can only be used with other CONTAINS filters")
    if "NOT_CONTAINS" in comparisons and comparisons != {"NOT_CONTAINS"}:
        raise _invalid(f"Filter {name}: NOT_CONTAINS filters can only be used with other NOT_CONTAINS filters")
    if "EQUALS" in comparisons and comparisons & {"NOT_EQUALS", "PREFIX_NOT_EQUALS"}:
        raise _invalid(
            f"Filter {name}: you can't combine an EQUALS filter with a NOT_EQUALS or PREFIX_NOT_EQUALS filter"
        )


def _string_predicate(name: str, paths: tuple[Path, ...], items: list) -> Predicate:
    positives: list[tuple[str, str]] = []
    negatives: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, dict):
            raise _invalid(f"Filter {name}: each StringFilter must be an object")
        value, comparison = item.get("Value"), item.get("Comparison")
        if not isinstance(value, str) or not value.strip():
            raise _invalid(f"Filter {name}: Value must be a non-empty string")
        if comparison in POSITIVE:
            positives.append((POSITIVE[comparison], value))
        elif comparison in NEGATIVE:
            negatives.append((NEGATIVE[comparison], value))
        elif comparison == "CONTAINS_WORD":
            raise _invalid(f"Filter {name}: CONTAINS_WORD is only supported by the V2 APIs, not GetFindings")
        else:
            raise _invalid(f"Filter {name}: invalid Comparison {comparison!r}")
    _check_string_combination(name, {i["Comparison"] for i in items})

    def pred(finding: dict) -> bool:
        values = [v for v in _values(finding, paths) if isinstance(v, str)]
        # Positive comparisons on one field are ORed: one matching value suffices.
        if positives and not any(_str_match(op, x, v) for op, x in positives for v in values):
            return False
        # Negative comparisons are ANDed: no value may match any of them.
        return not any(_str_match(op, x, v) for op, x in negatives for v in values)

    return pred


def _number_predicate(name: str, paths: tuple[Path, ...], items: list) -> Predicate:
    checks = []
    ops = {"Gte": lambda v, x: v >= x, "Lte": lambda v, x: v <= x, "Eq": lambda v, x: v == x,
           "Gt": lambda v, x: v > x, "Lt": lambda v, x: v < x}
    for item in items:
        if not isinstance(item, dict) or not item:
            raise _invalid(f"Filter {name}: each NumberFilter needs one of Gte, Lte, Eq, Gt, Lt")
        conds = []
        for k, x in item.items():
            if k not in ops or isinstance(x, bool) or not isinstance(x, (int, float)):
                raise _invalid(f"Filter {name}: invalid NumberFilter member {k}={x!r}")
            conds.append((ops[k], x))
        checks.append(conds)

    def pred(finding: dict) -> bool:
        values = [v for v in _values(finding, paths) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return any(all(f(v, x) for f, x in conds) for conds in checks for v in values)

    return pred


def _date_predicate(name: str, paths: tuple[Path, ...], items: list) -> Predicate:
    ranges: list[tuple[float | None, float | None]] = []
    now = time.time()
    for item in items:
        if not isinstance(item, dict):
            raise _invalid(f"Filter {name}: each DateFilter must be an object")
        start = end = None
        if "DateRange" in item:
            dr = item["DateRange"]
            if not isinstance(dr, dict) or dr.get("Unit") != "DAYS" or not isinstance(dr.get("Value"), int):
                raise _invalid(f"Filter {name}: DateRange needs an integer Value and Unit DAYS")
            start, end = now - dr["Value"] * 86400, now
        for key in ("Start", "End"):
            if key in item:
                t = _parse_time(item[key])
                if t is None:
                    raise _invalid(f"Filter {name}: {key} is not an ISO 8601 date-time: {item[key]!r}")
                if key == "Start":
                    start = t
                else:
                    end = t
        if start is None and end is None:
            raise _invalid(f"Filter {name}: a DateFilter needs Start, End or DateRange")
        ranges.append((start, end))

    def pred(finding: dict) -> bool:
        times = [t for t in (_parse_time(v) for v in _values(finding, paths)) if t is not None]
        return any((s is None or t >= s) and (e is None or t <= e) for s, e in ranges for t in times)

    return pred


def _map_predicate(name: str, paths: tuple[Path, ...], items: list) -> Predicate:
    positives, negatives = [], []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str) or not isinstance(item.get("Value"), str):
            raise _invalid(f"Filter {name}: a MapFilter needs string Key and Value")
        c = item.get("Comparison")
        if c in ("EQUALS", "CONTAINS"):
            positives.append((c, item["Key"], item["Value"]))
        elif c in ("NOT_EQUALS", "NOT_CONTAINS"):
            negatives.append((c.removeprefix("NOT_"), item["Key"], item["Value"]))
        else:
            raise _invalid(f"Filter {name}: invalid Comparison {c!r}")

    def pred(finding: dict) -> bool:
        maps = [m for m in _values(finding, paths) if isinstance(m, dict)]

        def hit(op: str, key: str, value: str) -> bool:
            return any(isinstance(m.get(key), str) and _str_match(op, value, m[key]) for m in maps)

        if positives and not any(hit(*p) for p in positives):
            return False
        return not any(hit(*n) for n in negatives)

    return pred


def _boolean_predicate(name: str, paths: tuple[Path, ...], items: list) -> Predicate:
    wanted = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Value"), bool):
            raise _invalid(f"Filter {name}: a BooleanFilter needs a boolean Value")
        wanted.append(item["Value"])

    def pred(finding: dict) -> bool:
        values = [v for v in _values(finding, paths) if isinstance(v, bool)] or [False]
        return any(v == w for v in values for w in wanted)

    return pred


_FIELD_KINDS = (
    (STRING_FIELDS, _string_predicate),
    (NUMBER_FIELDS, _number_predicate),
    (DATE_FIELDS, _date_predicate),
    (MAP_FIELDS, _map_predicate),
    (BOOLEAN_FIELDS, _boolean_predicate),
)


def compile_filters(filters: Any) -> list[Predicate]:
    """AwsSecurityFindingFilters -> predicates, all of which must hold (fields are ANDed)."""
    if filters is None:
        return []
    if not isinstance(filters, dict):
        raise _invalid("Filters must be an object")
    used = {k: v for k, v in filters.items() if v}
    if len(used) > MAX_FILTER_FIELDS:
        raise _invalid(f"You can filter by up to {MAX_FILTER_FIELDS} finding attributes; got {len(used)}")
    preds = []
    for name, items in filters.items():
        for table, build in _FIELD_KINDS:
            if name in table:
                break
        else:
            if name in _model_filter_fields():
                raise _invalid(f"Filter field {name} is valid for Security Hub but not supported by this test server")
            raise _invalid(f"Invalid filter field: {name}")
        if not isinstance(items, list):
            raise _invalid(f"Filter {name} must be a list")
        if not items:
            continue
        if len(items) > MAX_FILTER_VALUES:
            raise _invalid(f"Filter {name}: at most {MAX_FILTER_VALUES} filter values per attribute; got {len(items)}")
        preds.append(build(name, table[name], items))
    return preds


# --------------------------------------------------------------------------- sorting & paging


def _compile_sort(criteria: Any) -> list[tuple[tuple[Path, ...], str, str]]:
    if criteria is None or criteria == []:
        criteria = DEFAULT_SORT
    if not isinstance(criteria, list):
        raise _invalid("SortCriteria must be a list")
    out = []
    for c in criteria:
        if not isinstance(c, dict):
            raise _invalid("each SortCriterion must be an object")
        name = c.get("Field")
        order = c.get("SortOrder", "asc")
        if name not in SORT_FIELDS:
            raise _invalid(f"Invalid sort field: {name}")
        if order not in ("asc", "desc"):
            raise _invalid(f"Invalid SortOrder {order!r} for {name}: expected asc or desc")
        paths, kind = SORT_FIELDS[name]
        out.append((paths, kind, order))
    return out


def _sort_value(finding: dict, paths: tuple[Path, ...], kind: str) -> Any:
    for v in _values(finding, paths):
        if kind == "string" and isinstance(v, str):
            return v
        if kind == "number" and isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
        if kind == "date":
            t = _parse_time(v)
            if t is not None:
                return t
    return None


def _compare(a: list, b: list, orders: tuple[str, ...]) -> int:
    """Order of two sort keys; a missing value sorts last whatever the direction."""
    for x, y, order in zip(a, b, orders):
        if x == y:
            continue
        if x is None:
            return 1
        if y is None:
            return -1
        c = -1 if x < y else 1
        return c if order == "asc" else -c
    return 0


def _encode_token(query: str, key: list) -> str:
    raw = json.dumps({"v": 1, "q": query, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: Any, query: str, width: int) -> list:
    if not isinstance(token, str):
        raise _invalid("NextToken must be a string")
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        key = data["k"]
        ok = data.get("v") == 1 and isinstance(key, list) and len(key) == width
    except Exception:  # noqa: BLE001 - any malformed token is the same error
        ok = False
    if not ok:
        raise _invalid("The NextToken value is not valid")
    if data.get("q") != query:
        raise _invalid("The NextToken value does not match these Filters and SortCriteria")
    return key


# --------------------------------------------------------------------------- throttling


class TokenBucket:
    """`rate` tokens/second refill, `burst` capacity, starts full.  rate=None: unlimited."""

    def __init__(self, rate: float | None, burst: int):
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self.rate is None:
            return True
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def refill(self) -> None:
        with self._lock:
            self._tokens = float(self.burst)
            self._last = time.monotonic()


# --------------------------------------------------------------------------- the server


def _key(finding: dict) -> tuple[str, str]:
    return (finding.get("Id"), finding.get("ProductArn"))


class SecurityHubServer(LocalServer):
    """In-memory Security Hub on 127.0.0.1.

    SecurityHubServer(findings=None, rate=3.0, burst=6, page_size_limit=100, *, port=0, latency=0.0)

    findings         initial ASFF findings (list of dicts), or an int N for make_findings(N)
    rate, burst      GetFindings token bucket (requests/second, capacity); rate=None disables throttling
    page_size_limit  largest MaxResults accepted, and the page size when MaxResults is absent
    port             0 = a free port
    latency          seconds added to every answer (a real page takes 0.3-1 s)
    v2_enabled       whether the new Security Hub is enabled (DescribeSecurityHubV2 answers);
                     when not, the v2 calls are refused with AccessDeniedException
    ocsf_findings    native OCSF findings (GuardDuty, Inspector) shown only through v2
    """

    name = "securityhub"
    server_version = "SecurityHubTestServer/1.0"
    OPERATIONS = OPERATIONS

    def __init__(
        self,
        findings: Iterable[dict] | int | None = None,
        rate: float | None = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        page_size_limit: int = 100,
        *,
        port: int = 0,
        latency: float = 0.0,
        v2_enabled: bool = False,
        ocsf_findings: Iterable[dict] = (),
        account: str = "111111111111",
        region: str = "us-east-1",
    ):
        super().__init__(port=port, latency=latency)
        self.v2_enabled = v2_enabled
        self.account = account
        self.region = region
        self._ocsf: dict[str, dict] = {f["metadata"]["uid"]: copy.deepcopy(f) for f in ocsf_findings}
        self._v2_status: dict[str, int] = {}
        self._v2_cache: tuple | None = None
        self._v2_sorted: dict[str, tuple] = {}
        self._insights: dict[str, dict] = {}

        if isinstance(findings, int):
            findings = make_findings(findings)
        self._store: dict[tuple[str, str], dict] = {}
        self._version = 0
        self._sorted_cache: dict[str, tuple] = {}
        for f in findings or ():
            self._store[_key(f)] = copy.deepcopy(f)
        self.bucket = TokenBucket(rate, burst)
        if v2_enabled:
            # Build the OCSF view now, as the service has it ready, not on the first call.
            with self._lock:
                self._v2_view()
        self.page_size_limit = page_size_limit
        self.throttled = 0
        self._rejections: dict[str, tuple[str, str]] = {}

    # ---- test helpers

    @property
    def findings(self) -> list[dict]:
        """A copy of every stored finding, in insertion order."""
        with self._lock:
            return copy.deepcopy(list(self._store.values()))

    def finding(self, finding_id: str, product_arn: str | None = None) -> dict | None:
        """A copy of one stored finding, by Id (and ProductArn when several share the Id)."""
        with self._lock:
            for (fid, parn), f in self._store.items():
                if fid == finding_id and (product_arn is None or parn == product_arn):
                    return copy.deepcopy(f)
        return None

    def add_findings(self, findings: Iterable[dict]) -> None:
        with self._lock:
            for f in findings:
                self._store[_key(f)] = copy.deepcopy(f)
            self._touch()

    def add_ocsf_findings(self, findings: Iterable[dict]) -> None:
        """Native OCSF findings, shown only through the v2 API."""
        with self._lock:
            for f in findings:
                self._ocsf[f["metadata"]["uid"]] = copy.deepcopy(f)
            self._touch()

    def ocsf_finding(self, uid: str) -> dict | None:
        """A copy of one finding as GetFindingsV2 shows it, by metadata.uid."""
        with self._lock:
            for f in self._v2_view():
                if f["metadata"]["uid"] == uid:
                    return copy.deepcopy(f)
        return None

    @property
    def insights(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._insights.values()))

    def requests_for(self, operation: str) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.operation == operation]

    def clear_requests(self) -> None:
        with self._lock:
            super().clear_requests()
            self.throttled = 0

    def set_throttle(self, rate: float | None, burst: int | None = None) -> None:
        """Change the GetFindings limit at run time; the bucket starts full again."""
        self.bucket.rate = rate
        if burst is not None:
            self.bucket.burst = burst
        self.bucket.refill()

    def reject_update(
        self, finding_id: str, error_code: str = "ConcurrentUpdateError",
        message: str = "Concurrent finding updates detected",
    ) -> None:
        """Make BatchUpdateFindings report this finding as unprocessed (until clear_rejections)."""
        with self._lock:
            self._rejections[finding_id] = (error_code, message)

    def clear_rejections(self) -> None:
        with self._lock:
            self._rejections.clear()

    # ---- request handling (called from handler threads)

    def _touch(self) -> None:
        self._version += 1
        self._sorted_cache = {}
        self._v2_sorted = {}

    def serve(self, handler: Handler, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> None:
        status, payload, extra = self.handle(method, raw_path, headers, raw)
        try:
            handler.send_json(status, payload, extra)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, dict]:
        """(status, JSON body, extra headers) answering one request."""
        path = urlsplit(raw_path).path
        operation = ROUTES.get((method, path))
        if operation is None and method == "GET" and path.startswith(INSIGHT_RESULTS_PREFIX):
            operation = GET_INSIGHT_RESULTS
        body, bad_json = parse_json(raw)
        rec = RecordedRequest(method, raw_path, headers, body, raw, operation)
        self.record(rec)
        try:
            if operation is None:
                raise ServiceError(404, "UnknownOperationException", f"No Security Hub operation at {method} {path}")
            self.take_fault(operation)
            if operation in PAGED and not self.bucket.take():
                with self._lock:
                    self.throttled += 1
                raise ServiceError(THROTTLE_STATUS, THROTTLE_ERROR_TYPE, THROTTLE_MESSAGE)
            if bad_json:
                raise _invalid("The request body is not valid JSON")
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise _invalid("The request body must be a JSON object")
            if operation in (GET_FINDINGS_V2, BATCH_UPDATE_FINDINGS_V2, GET_FINDING_STATISTICS_V2) and not self.v2_enabled:
                raise ServiceError(403, "AccessDeniedException",
                                   "The new Security Hub is not enabled in this account and region")
            if operation == GET_INSIGHT_RESULTS:
                body = {"InsightArn": unquote(path[len(INSIGHT_RESULTS_PREFIX):])}
            handler = {
                GET_FINDINGS: self._get_findings,
                BATCH_IMPORT_FINDINGS: self._batch_import_findings,
                BATCH_UPDATE_FINDINGS: self._batch_update_findings,
                GET_FINDINGS_V2: self._get_findings_v2,
                BATCH_UPDATE_FINDINGS_V2: self._batch_update_findings_v2,
                GET_FINDING_STATISTICS_V2: self._get_finding_statistics_v2,
                DESCRIBE_SECURITY_HUB_V2: self._describe_security_hub_v2,
                CREATE_INSIGHT: self._create_insight,
                GET_INSIGHTS: self._get_insights,
                GET_INSIGHT_RESULTS: self._get_insight_results,
            }[operation]
            status, payload, extra = 200, handler(body), {}
        except ServiceError as e:
            status, payload = e.status, {"Code": e.error_type, "Message": e.message}
            extra = {"x-amzn-ErrorType": e.error_type}
            rec.error_type = e.error_type
        except Exception as e:  # noqa: BLE001 - a bug here must reach the test as a 500, not a hang
            traceback.print_exc()
            status, payload = 500, {"Code": "InternalException", "Message": f"test server bug: {e!r}"}
            extra = {"x-amzn-ErrorType": "InternalException"}
            rec.error_type = "InternalException"
        rec.status = status
        rec.served_in = time.time() - rec.time
        if self.latency:
            time.sleep(self.latency)
        return status, payload, extra

    # ---- operations

    def _get_findings(self, body: dict) -> dict:
        max_results = body.get("MaxResults", self.page_size_limit)
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= self.page_size_limit:
            raise _invalid(f"MaxResults must be between 1 and {self.page_size_limit}; got {max_results!r}")
        filters = body.get("Filters")
        sort_criteria = body.get("SortCriteria")
        preds = compile_filters(filters)
        sort = _compile_sort(sort_criteria)
        orders = tuple(o for _, _, o in sort) + ("asc", "asc")
        query = hashlib.sha256(
            json.dumps({"f": filters, "s": sort_criteria}, sort_keys=True).encode()
        ).hexdigest()[:16]
        token = body.get("NextToken")
        cursor = _decode_token(token, query, len(orders)) if token else None
        cmp_key = functools.cmp_to_key(functools.partial(_compare, orders=orders))

        with self._lock:
            # One sorted result per query, so streams paged side by side (one per
            # severity) each keep theirs.
            cache = self._sorted_cache.get(query)
            if cache is None or cache[1] != self._version:
                rows = []
                for f in self._store.values():
                    if all(p(f) for p in preds):
                        key = [_sort_value(f, paths, kind) for paths, kind, _ in sort] + list(_key(f))
                        rows.append((cmp_key(key), key, f))
                rows.sort(key=lambda r: r[0])
                cache = (query, self._version, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
                self._sorted_cache[query] = cache
            _, _, ckeys, keys, items = cache
            start = bisect.bisect_right(ckeys, cmp_key(cursor)) if cursor is not None else 0
            page = items[start:start + max_results]
            out: dict[str, Any] = {"Findings": copy.deepcopy(page)}
            if start + max_results < len(items):
                out["NextToken"] = _encode_token(query, keys[start + max_results - 1])
        return out

    def _batch_import_findings(self, body: dict) -> dict:
        findings = body.get("Findings")
        if not isinstance(findings, list) or not 1 <= len(findings) <= MAX_BATCH:
            raise _invalid(f"Findings must be a list of 1 to {MAX_BATCH} findings")
        failed = []
        with self._lock:
            for f in findings:
                missing = [k for k in REQUIRED_FINDING_FIELDS if not isinstance(f, dict) or f.get(k) in (None, "", [])]
                if missing:
                    fid = f.get("Id") if isinstance(f, dict) and isinstance(f.get("Id"), str) and f["Id"] else "(no Id)"
                    failed.append({
                        "Id": fid,
                        "ErrorCode": "InvalidInput",
                        "ErrorMessage": "Finding does not adhere to the AWS Security Finding Format: "
                                        f"missing required field(s) {', '.join(missing)}",
                    })
                    continue
                new = copy.deepcopy(f)
                old = self._store.get(_key(new))
                if old is not None:
                    # BatchImportFindings can't change what customers own (model documentation).
                    for k in ("Note", "UserDefinedFields", "VerificationState", "Workflow"):
                        if k in old:
                            new[k] = copy.deepcopy(old[k])
                        else:
                            new.pop(k, None)
                else:
                    new.setdefault("Workflow", {"Status": "NEW"})
                    new.setdefault("RecordState", "ACTIVE")
                self._store[_key(new)] = new
            self._touch()
        return {"FailedCount": len(failed), "SuccessCount": len(findings) - len(failed), "FailedFindings": failed}

    def _batch_update_findings(self, body: dict) -> dict:
        idents = body.get("FindingIdentifiers")
        if not isinstance(idents, list) or not 1 <= len(idents) <= MAX_BATCH:
            raise _invalid(f"FindingIdentifiers must be a list of 1 to {MAX_BATCH} identifiers")
        for ident in idents:
            if not (isinstance(ident, dict) and isinstance(ident.get("Id"), str) and ident["Id"]
                    and isinstance(ident.get("ProductArn"), str) and ident["ProductArn"]):
                raise _invalid("Each FindingIdentifier needs a non-empty Id and ProductArn")
        updates = _validate_update(body)
        processed, unprocessed, seen = [], [], set()
        stamp = now_iso()
        with self._lock:
            for ident in idents:
                ref = {"Id": ident["Id"], "ProductArn": ident["ProductArn"]}
                k = (ref["Id"], ref["ProductArn"])
                if k in seen:
                    unprocessed.append({"FindingIdentifier": ref, "ErrorCode": "DuplicatedFindingIdentifier",
                                        "ErrorMessage": "Finding Identifier is duplicated"})
                    continue
                seen.add(k)
                finding = self._store.get(k)
                if finding is None:
                    unprocessed.append({"FindingIdentifier": ref, "ErrorCode": "FindingNotFound",
                                        "ErrorMessage": "Finding Not Found"})
                    continue
                if ref["Id"] in self._rejections:
                    code, msg = self._rejections[ref["Id"]]
                    unprocessed.append({"FindingIdentifier": ref, "ErrorCode": code, "ErrorMessage": msg})
                    continue
                _apply_update(finding, updates, stamp)
                processed.append(ref)
            if processed:
                self._touch()
        return {"ProcessedFindings": processed, "UnprocessedFindings": unprocessed}


    # ---- the new Security Hub (v2) and insights

    def _v2_view(self) -> list[dict]:
        """Every finding as GetFindingsV2 shows it (call with the lock held)."""
        if self._v2_cache is None or self._v2_cache[0] != self._version:
            view = [v2.asff_to_ocsf(f, self._v2_status.get(v2.metadata_uid(f))) for f in self._store.values()]
            view.extend(self._ocsf.values())
            self._v2_cache = (self._version, view)
        return self._v2_cache[1]

    def _describe_security_hub_v2(self, body: dict) -> dict:
        if not self.v2_enabled:
            raise ServiceError(404, "ResourceNotFoundException", "Security Hub V2 is not enabled for this account")
        return {"HubV2Arn": f"arn:aws:securityhub:{self.region}:{self.account}:hubv2/default",
                "SubscribedAt": "2025-12-02T00:00:00.000Z"}

    def _get_findings_v2(self, body: dict) -> dict:
        max_results = body.get("MaxResults", self.page_size_limit)
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= self.page_size_limit:
            raise v2.invalid(f"MaxResults must be between 1 and {self.page_size_limit}; got {max_results!r}")
        if body.get("Scopes"):
            raise ServiceError(403, "AccessDeniedException", "Scopes are for the organization's delegated administrator")
        pred = v2.compile_filters(body.get("Filters"))
        key = v2.sort_key(body.get("SortCriteria"))
        query = v2.query_digest(body)
        start = v2.decode_token(body["NextToken"], query) if body.get("NextToken") else 0
        with self._lock:
            cached = self._v2_sorted.get(query)
            if cached is None or cached[0] != self._version:
                cached = (self._version, sorted((f for f in self._v2_view() if pred(f)), key=key))
                self._v2_sorted[query] = cached
            items = cached[1]
            page = copy.deepcopy(items[start:start + max_results])
        out: dict[str, Any] = {"Findings": page}
        if start + max_results < len(items):
            out["NextToken"] = v2.encode_token(query, start + max_results)
        return out

    def _get_finding_statistics_v2(self, body: dict) -> dict:
        rules = body.get("GroupByRules")
        if not isinstance(rules, list) or not 1 <= len(rules) <= v2.MAX_GROUP_BY_RULES:
            raise v2.invalid(f"GroupByRules must be a list of 1 to {v2.MAX_GROUP_BY_RULES} rules")
        results = []
        matched: dict[str, list[dict]] = {}  # rules usually share their filters
        with self._lock:
            view = self._v2_view()
            for rule in rules:
                field = (rule or {}).get("GroupByField")
                if field not in v2.GROUP_BY_FIELDS:
                    raise v2.invalid(f"Invalid GroupByField: {field!r}")
                key = json.dumps(rule.get("Filters"), sort_keys=True)
                if key not in matched:
                    pred = v2.compile_filters(rule.get("Filters"))
                    matched[key] = [f for f in view if pred(f)]
                results.append({"GroupByField": field, "GroupByValues": v2.group_counts(matched[key], field)})
        return {"GroupByResults": results}

    def _batch_update_findings_v2(self, body: dict) -> dict:
        uids, idents = body.get("MetadataUids"), body.get("FindingIdentifiers")
        if (uids is None) == (idents is None):
            raise v2.invalid("Give either MetadataUids or FindingIdentifiers, not both")
        refs = uids if uids is not None else idents
        if not isinstance(refs, list) or not 1 <= len(refs) <= v2.MAX_BATCH:
            raise v2.invalid(f"MetadataUids/FindingIdentifiers must be a list of 1 to {v2.MAX_BATCH}")
        comment, status_id, severity_id = body.get("Comment"), body.get("StatusId"), body.get("SeverityId")
        if comment is not None and (not isinstance(comment, str) or not 1 <= len(comment) <= v2.MAX_COMMENT):
            raise v2.invalid(f"Comment must be 1 to {v2.MAX_COMMENT} characters")
        if status_id is not None and status_id not in v2.STATUS_IDS:
            raise v2.invalid(f"StatusId must be one of {sorted(v2.STATUS_IDS)}")
        if severity_id is not None and severity_id not in v2.SEVERITY_IDS:
            raise v2.invalid(f"SeverityId must be one of {sorted(v2.SEVERITY_IDS)}")
        if comment is None and status_id is None and severity_id is None:
            raise v2.invalid("Nothing to update: give Comment, StatusId or SeverityId")
        processed, unprocessed = [], []
        stamp = now_iso()
        with self._lock:
            by_uid = {v2.metadata_uid(f): f for f in self._store.values()}
            for ref in refs:
                if isinstance(ref, dict):
                    uid = next((f["metadata"]["uid"] for f in self._v2_view()
                                if f.get("finding_info", {}).get("uid") == ref.get("FindingInfoUid")
                                and f["cloud"]["account"]["uid"] == ref.get("CloudAccountUid")), None)
                    out_ref = {"FindingIdentifier": ref}
                else:
                    uid, out_ref = ref, {"MetadataUid": ref}
                asff, ocsf = by_uid.get(uid), self._ocsf.get(uid)
                if asff is None and ocsf is None:
                    unprocessed.append({**out_ref, "ErrorCode": "ResourceNotFoundException",
                                        "ErrorMessage": "Finding not found"})
                    continue
                if asff is not None:
                    update: dict[str, Any] = {}
                    if status_id in v2.WORKFLOW_OF_STATUS:
                        update["Workflow"] = {"Status": v2.WORKFLOW_OF_STATUS[status_id]}
                        self._v2_status.pop(uid, None)
                    elif status_id is not None:
                        self._v2_status[uid] = status_id
                    if comment is not None:
                        update["Note"] = {"Text": comment, "UpdatedBy": "securityhub-v2"}
                    _apply_update(asff, update, stamp)
                else:
                    if status_id is not None:
                        ocsf["status_id"], ocsf["status"] = status_id, v2.STATUS_CAPTION.get(status_id, "Other")
                    if severity_id is not None:
                        ocsf["severity_id"], ocsf["severity"] = severity_id, v2.SEVERITY_CAPTION[severity_id]
                    if comment is not None:
                        ocsf["comment"] = comment
                processed.append(out_ref)
            self._touch()
        return {"ProcessedFindings": processed, "UnprocessedFindings": unprocessed}

    def _create_insight(self, body: dict) -> dict:
        name, filters, group_by = body.get("Name"), body.get("Filters"), body.get("GroupByAttribute")
        if not isinstance(name, str) or not name:
            raise _invalid("Name is required")
        if not isinstance(group_by, str) or group_by not in STRING_FIELDS:
            raise _invalid(f"Invalid GroupByAttribute: {group_by!r}")
        compile_filters(filters)
        with self._lock:
            if len(self._insights) >= v2.MAX_INSIGHTS:
                raise ServiceError(429, "LimitExceededException",
                                   f"The account already has {v2.MAX_INSIGHTS} custom insights")
            arn = f"arn:aws:securityhub:{self.region}:{self.account}:insight/{self.account}/custom/{uuid.uuid4()}"
            self._insights[arn] = {"InsightArn": arn, "Name": name, "Filters": filters or {}, "GroupByAttribute": group_by}
        return {"InsightArn": arn}

    def _get_insights(self, body: dict) -> dict:
        max_results = body.get("MaxResults", 100)
        if not isinstance(max_results, int) or not 1 <= max_results <= 100:
            raise _invalid("MaxResults must be between 1 and 100")
        with self._lock:
            insights = list(self._insights.values())
        wanted = body.get("InsightArns")
        if wanted:
            insights = [i for i in insights if i["InsightArn"] in wanted]
        start = int(body["NextToken"]) if str(body.get("NextToken", "")).isdigit() else 0
        out: dict[str, Any] = {"Insights": copy.deepcopy(insights[start:start + max_results])}
        if start + max_results < len(insights):
            out["NextToken"] = str(start + max_results)
        return out

    def _get_insight_results(self, body: dict) -> dict:
        with self._lock:
            insight = self._insights.get(body["InsightArn"])
            if insight is None:
                raise ServiceError(404, "ResourceNotFoundException", f"Insight {body['InsightArn']} not found")
            preds = compile_filters(insight["Filters"])
            paths = STRING_FIELDS[insight["GroupByAttribute"]]
            counts: dict[str, int] = {}
            for f in self._store.values():
                if all(p(f) for p in preds):
                    for v in {str(x) for x in _values(f, paths)}:
                        counts[v] = counts.get(v, 0) + 1
        values = [{"GroupByAttributeValue": v, "Count": n}
                  for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:100]
        return {"InsightResults": {"InsightArn": insight["InsightArn"],
                                   "GroupByAttribute": insight["GroupByAttribute"], "ResultValues": values}}


def _validate_update(body: dict) -> dict:
    """Check the update members of BatchUpdateFindings; return the ones present."""
    up: dict[str, Any] = {}
    note = body.get("Note")
    if note is not None:
        if not isinstance(note, dict):
            raise _invalid("Note must be an object")
        for k in ("Text", "UpdatedBy"):
            v = note.get(k)
            if not isinstance(v, str) or not v.strip():
                raise _invalid(f"Note.{k} is required and must be a non-empty string")
            if len(v) > MAX_NOTE_CHARS:
                raise _invalid(f"Note.{k} must be at most {MAX_NOTE_CHARS} characters; got {len(v)}")
        up["Note"] = {"Text": note["Text"], "UpdatedBy": note["UpdatedBy"]}
    wf = body.get("Workflow")
    if wf is not None:
        if not isinstance(wf, dict):
            raise _invalid("Workflow must be an object")
        if "Status" in wf and wf["Status"] not in WORKFLOW_STATUSES:
            raise _invalid(f"Workflow.Status must be one of {', '.join(WORKFLOW_STATUSES)}; got {wf['Status']!r}")
        up["Workflow"] = dict(wf)
    sev = body.get("Severity")
    if sev is not None:
        if not isinstance(sev, dict):
            raise _invalid("Severity must be an object")
        if "Label" in sev and sev["Label"] not in SEVERITY_LABELS:
            raise _invalid(f"Severity.Label must be one of {', '.join(SEVERITY_LABELS)}; got {sev['Label']!r}")
        for k in ("Normalized", "Product"):
            if k in sev and (isinstance(sev[k], bool) or not isinstance(sev[k], (int, float))):
                raise _invalid(f"Severity.{k} must be a number")
        if "Normalized" in sev and not 0 <= sev["Normalized"] <= 100:
            raise _invalid("Severity.Normalized must be between 0 and 100")
        up["Severity"] = dict(sev)
    if "VerificationState" in body:
        if body["VerificationState"] not in VERIFICATION_STATES:
            raise _invalid(f"VerificationState must be one of {', '.join(VERIFICATION_STATES)}")
        up["VerificationState"] = body["VerificationState"]
    for k in ("Confidence", "Criticality"):
        if k in body:
            v = body[k]
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100:
                raise _invalid(f"{k} must be an integer between 0 and 100")
            up[k] = v
    if "Types" in body:
        if not isinstance(body["Types"], list) or not all(isinstance(t, str) for t in body["Types"]):
            raise _invalid("Types must be a list of strings")
        up["Types"] = list(body["Types"])
    if "UserDefinedFields" in body:
        udf = body["UserDefinedFields"]
        if not isinstance(udf, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in udf.items()):
            raise _invalid("UserDefinedFields must map strings to strings")
        up["UserDefinedFields"] = dict(udf)
    if "RelatedFindings" in body:
        rf = body["RelatedFindings"]
        if not isinstance(rf, list) or not all(isinstance(r, dict) and r.get("Id") and r.get("ProductArn") for r in rf):
            raise _invalid("RelatedFindings must be a list of {Id, ProductArn}")
        up["RelatedFindings"] = copy.deepcopy(rf)
    return up


def _label_for(normalized: float) -> str:
    if normalized <= 0:
        return "INFORMATIONAL"
    if normalized < 40:
        return "LOW"
    if normalized < 70:
        return "MEDIUM"
    if normalized < 90:
        return "HIGH"
    return "CRITICAL"


def _apply_update(finding: dict, up: dict, stamp: str) -> None:
    # Per the model documentation, BatchUpdateFindings does not change the
    # finding's UpdatedAt; the note carries its own UpdatedAt.
    if "Note" in up:
        finding["Note"] = {**up["Note"], "UpdatedAt": stamp}
    if "Workflow" in up:
        finding["Workflow"] = {**finding.get("Workflow", {}), **up["Workflow"]}
    if "Severity" in up:
        sev = {**finding.get("Severity", {}), **up["Severity"]}
        if "Label" in up["Severity"] and "Normalized" not in up["Severity"]:
            sev["Normalized"] = LABEL_TO_NORMALIZED[sev["Label"]]
        elif "Normalized" in up["Severity"] and "Label" not in up["Severity"]:
            sev["Label"] = _label_for(sev["Normalized"])
        finding["Severity"] = sev
    if "UserDefinedFields" in up:
        finding["UserDefinedFields"] = {**finding.get("UserDefinedFields", {}), **up["UserDefinedFields"]}
    for k in ("VerificationState", "Confidence", "Criticality", "Types", "RelatedFindings"):
        if k in up:
            finding[k] = copy.deepcopy(up[k])


# --------------------------------------------------------------------------- findings factory

# (control id, title, severity label as failed, resource type), Security Hub controls
# the runbook catalog covers plus a few others so labels and types vary.
CONTROLS = (
    ("EC2.19", "Security groups should not allow unrestricted access to ports with high risk", "CRITICAL", "AwsEc2SecurityGroup"),
    ("IAM.7", "Password policies for IAM users should have strong configurations", "MEDIUM", "AwsAccount"),
    ("S3.1", "S3 general purpose buckets should have block public access settings enabled", "MEDIUM", "AwsAccount"),
    ("GuardDuty.1", "GuardDuty should be enabled", "HIGH", "AwsAccount"),
    ("EC2.7", "EBS default encryption should be enabled", "MEDIUM", "AwsAccount"),
    ("KMS.4", "AWS KMS key rotation should be enabled", "MEDIUM", "AwsKmsKey"),
    ("EC2.2", "VPC default security groups should not allow inbound or outbound traffic", "HIGH", "AwsEc2SecurityGroup"),
    ("S3.8", "S3 general purpose buckets should block public access", "HIGH", "AwsS3Bucket"),
    ("CloudTrail.5", "CloudTrail trails should be integrated with Amazon CloudWatch Logs", "LOW", "AwsCloudTrailTrail"),
    ("IAM.6", "Hardware MFA should be enabled for the root user", "CRITICAL", "AwsAccount"),
)
_CONTROL_BY_ID = {c[0]: c for c in CONTROLS}
_BASE_TIME = datetime(2024, 5, 1, tzinfo=timezone.utc)
_FSBP = "standards/aws-foundational-security-best-practices/v/1.0.0"


def _resource(kind: str, i: int, account: str, region: str) -> dict:
    res: dict[str, Any] = {"Type": kind, "Id": "", "Partition": "aws", "Region": region}
    if kind == "AwsEc2SecurityGroup":
        sg = f"sg-{i:017x}"
        res["Id"] = f"arn:aws:ec2:{region}:{account}:security-group/{sg}"
        res["Details"] = {"AwsEc2SecurityGroup": {"GroupId": sg, "GroupName": f"web-{i}", "VpcId": f"vpc-{i:017x}"}}
    elif kind == "AwsKmsKey":
        res["Id"] = f"arn:aws:kms:{region}:{account}:key/{uuid.uuid5(uuid.NAMESPACE_URL, f'kms/{i}')}"
    elif kind == "AwsS3Bucket":
        res["Id"] = f"arn:aws:s3:::example-bucket-{i}"
    elif kind == "AwsCloudTrailTrail":
        res["Id"] = f"arn:aws:cloudtrail:{region}:{account}:trail/trail-{i}"
    else:
        res["Type"] = "AwsAccount"
        res["Id"] = f"AWS::::Account:{account}"
    return res


def make_finding(
    i: int,
    *,
    account: str = "123456789012",
    region: str = "us-east-1",
    control_id: str | None = None,
    severity: str | None = None,
    compliance_status: str | None = None,
    workflow_status: str | None = None,
    record_state: str | None = None,
    **overrides: Any,
) -> dict:
    """A realistic, deterministic Security Hub control finding (consolidated control view).

    Finding i uses control CONTROLS[i % 10]; every 10th finding (i % 10 == 9) has
    PASSED (label INFORMATIONAL, workflow RESOLVED); i % 20 == 13 is ARCHIVED.
    The lower-case keywords adjust a field consistently (Id, GeneratorId,
    resources...); any other keyword must be an ASFF top-level key (e.g.
    Title=..., Resources=[...]) and replaces that key last.
    """
    bad = [k for k in overrides if not k[:1].isupper()]
    if bad:
        raise TypeError(f"make_finding: unknown keyword(s) {bad}; ASFF overrides are capitalised")
    if control_id is None:
        cid, title, label, rtype = CONTROLS[i % len(CONTROLS)]
    else:
        cid, title, label, rtype = _CONTROL_BY_ID.get(
            control_id, (control_id, f"Control {control_id} check", "MEDIUM", "AwsAccount")
        )
    passed = i % 10 == 9
    status = compliance_status or ("PASSED" if passed else "FAILED")
    original = severity or label
    shown = original if status != "PASSED" or severity else "INFORMATIONAL"
    created = _BASE_TIME + timedelta(minutes=i)
    updated = created + timedelta(seconds=3600 + (i * 7919) % 86400)
    fid = uuid.uuid5(uuid.NAMESPACE_URL, f"securityhub/{account}/{region}/{cid}/{i}")
    product_arn = f"arn:aws:securityhub:{region}::product/aws/securityhub"
    resource = _resource(rtype, i, account, region)
    types = ["Software and Configuration Checks/Industry and Regulatory Standards"]
    finding = {
        "SchemaVersion": "2018-10-08",
        "Id": f"arn:aws:securityhub:{region}:{account}:security-control/{cid}/finding/{fid}",
        "ProductArn": product_arn,
        "ProductName": "Security Hub",
        "CompanyName": "AWS",
        "Region": region,
        "GeneratorId": f"security-control/{cid}",
        "AwsAccountId": account,
        "Types": types,
        "FirstObservedAt": _iso(created),
        "LastObservedAt": _iso(updated),
        "CreatedAt": _iso(created),
        "UpdatedAt": _iso(updated),
        "Severity": {"Label": shown, "Normalized": LABEL_TO_NORMALIZED[shown], "Original": original},
        "Title": title,
        "Description": f"This control checks the requirement: {title}. "
        + (f"Resource {resource['Id']} passes." if status == "PASSED" else f"Resource {resource['Id']} fails."),
        "Remediation": {
            "Recommendation": {
                "Text": "For information on how to correct this issue, consult the AWS Security Hub controls documentation.",
                "Url": f"https://docs.aws.amazon.com/console/securityhub/{cid}/remediation",
            }
        },
        "ProductFields": {
            "aws/securityhub/ProductName": "Security Hub",
            "aws/securityhub/CompanyName": "AWS",
            "aws/securityhub/FindingId": f"{product_arn}/{fid}",
        },
        "Resources": [resource],
        "Compliance": {
            "Status": status,
            "SecurityControlId": cid,
            "AssociatedStandards": [{"StandardsId": _FSBP}],
        },
        "WorkflowState": "NEW",
        "Workflow": {"Status": workflow_status or ("RESOLVED" if status == "PASSED" else "NEW")},
        "RecordState": record_state or ("ARCHIVED" if i % 20 == 13 else "ACTIVE"),
        "FindingProviderFields": {"Severity": {"Label": original, "Original": original}, "Types": types},
        "ProcessedAt": _iso(updated),
    }
    finding.update(overrides)
    return finding


def make_findings(n: int, start: int = 0, **kw: Any) -> list[dict]:
    """make_finding(i, **kw) for i in start .. start+n-1."""
    return [make_finding(i, **kw) for i in range(start, start + n)]


# --------------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Local Security Hub test server (127.0.0.1 only).")
    p.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (0 = a free port)")
    p.add_argument("--findings", type=int, default=0, help="generate N findings with make_finding")
    p.add_argument("--findings-file", help="JSON file: a list of findings, or {\"Findings\": [...]}")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE, help="GetFindings requests/second (default 3)")
    p.add_argument("--burst", type=int, default=DEFAULT_BURST, help="GetFindings burst (default 6)")
    p.add_argument("--no-throttle", action="store_true", help="never throttle")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer (real pages: 0.3-1 s)")
    p.add_argument("--v2", action="store_true", help="the new Security Hub is enabled (GetFindingsV2 and friends)")
    args = p.parse_args(argv)

    findings = make_findings(args.findings)
    if args.findings_file:
        with open(args.findings_file, encoding="utf-8") as fh:
            loaded = json.load(fh)
        findings += loaded["Findings"] if isinstance(loaded, dict) else loaded
    server = SecurityHubServer(findings, rate=None if args.no_throttle else args.rate, burst=args.burst, port=args.port,
                               latency=args.latency, v2_enabled=args.v2)
    return serve_until_signalled(server)


if __name__ == "__main__":
    sys.exit(main())
