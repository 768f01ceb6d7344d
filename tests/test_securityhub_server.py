"""Tests of the local Security Hub server itself, driven by boto3 (a real client of the same API).

If these pass, the server speaks restJson1 the way botocore's service model says, so
the AWS SDK for Rust (generated from the same model) can be pointed at it too.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

try:  # tests/ is on sys.path when pytest imports this file (no tests/__init__.py)
    from servers.securityhub import (
        SecurityHubServer, access_denied, internal_error, make_finding, make_findings, not_subscribed,
    )
    from servers.http import standalone, unsigned_request
except ImportError:  # run from the repository root as a package
    from tests.servers.securityhub import (  # type: ignore[no-redef]
        SecurityHubServer, access_denied, internal_error, make_finding, make_findings, not_subscribed,
    )
    from tests.servers.http import standalone, unsigned_request  # type: ignore[no-redef]

N = 250
SESSION = boto3.session.Session()  # clients from one session share the loaded service model


def make_client(server: SecurityHubServer, **retries) -> "boto3.client":
    return SESSION.client(
        "securityhub",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        # botocore's retries "max_attempts" counts retries *after* the first call;
        # total_max_attempts=1 really means one attempt.
        config=Config(retries=retries or {"mode": "standard", "total_max_attempts": 1},
                      connect_timeout=5, read_timeout=10),
    )


@pytest.fixture
def hub():
    # Throttling off unless a test is about throttling.
    with SecurityHubServer(findings=make_findings(N), rate=None) as server:
        yield server


@pytest.fixture
def sh(hub):
    return make_client(hub)


def raw(server: SecurityHubServer, method: str, path: str, body: object | bytes | None = None):
    """An unsigned HTTP request, for what boto3 would refuse to send; the body JSON-decoded."""
    status, headers, payload = unsigned_request(server, method, path, body)
    return status, headers, json.loads(payload) if payload else None


def fetch_all(client, **kwargs) -> list[dict]:
    pages = client.get_paginator("get_findings").paginate(**kwargs)
    return [f for page in pages for f in page["Findings"]]


def ids(findings) -> list[str]:
    return [f["Id"] for f in findings]


def error_of(excinfo) -> tuple[str, int, str]:
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]


def sf(value: str, comparison: str = "EQUALS") -> dict:
    return {"Value": value, "Comparison": comparison}


# ------------------------------------------------------------------ lifecycle, protocol


def test_binds_loopback_on_a_free_port_and_stops():
    with SecurityHubServer() as a, SecurityHubServer() as b:
        assert a.url.startswith("http://127.0.0.1:") and a.port != b.port
        client = make_client(a)
        assert client.get_findings()["Findings"] == []  # leaves a kept-alive connection in the pool
    with pytest.raises(Exception):  # neither the pooled connection nor a new one gets an answer
        client.get_findings()
    assert len(a.requests) == 1


def test_records_what_the_client_sent(hub, sh):
    sh.get_findings(Filters={"SeverityLabel": [sf("HIGH")]}, MaxResults=5)
    f = hub.findings[0]
    sh.batch_update_findings(FindingIdentifiers=[{"Id": f["Id"], "ProductArn": f["ProductArn"]}],
                             Workflow={"Status": "NOTIFIED"})
    get, upd = hub.requests
    assert (get.method, get.path, get.operation, get.status) == ("POST", "/findings", "GetFindings", 200)
    assert get.body == {"Filters": {"SeverityLabel": [sf("HIGH")]}, "MaxResults": 5}
    assert "Credential=testing/" in get.headers["authorization"]
    assert "/us-east-1/securityhub/aws4_request" in get.headers["authorization"]
    assert (upd.method, upd.path, upd.operation) == ("PATCH", "/findings/batchupdate", "BatchUpdateFindings")
    assert hub.counts == {"GetFindings": 1, "BatchUpdateFindings": 1}


def test_unknown_route_is_404(hub):
    status, headers, body = raw(hub, "GET", "/nope")
    assert status == 404 and headers["x-amzn-errortype"] == "UnknownOperationException"
    assert body["Code"] == "UnknownOperationException"


# ------------------------------------------------------------------ filters

ALL = make_findings(N)

# (Filters, the same condition written directly in Python over the generated findings)
FILTER_CASES = {
    "equals": ({"SeverityLabel": [sf("CRITICAL")]}, lambda f: f["Severity"]["Label"] == "CRITICAL"),
    "equals values are ORed": (
        {"SeverityLabel": [sf("CRITICAL"), sf("HIGH")]},
        lambda f: f["Severity"]["Label"] in ("CRITICAL", "HIGH"),
    ),
    "not_equals values are ANDed": (
        {"WorkflowStatus": [sf("RESOLVED", "NOT_EQUALS"), sf("SUPPRESSED", "NOT_EQUALS")]},
        lambda f: f["Workflow"]["Status"] not in ("RESOLVED", "SUPPRESSED"),
    ),
    "prefix ORed, then not_equals": (
        {"ComplianceSecurityControlId": [sf("EC2.", "PREFIX"), sf("S3.", "PREFIX"), sf("EC2.7", "NOT_EQUALS")]},
        lambda f: f["Compliance"]["SecurityControlId"] in ("EC2.19", "EC2.2", "S3.1", "S3.8"),
    ),
    "prefix_not_equals": (
        {"GeneratorId": [sf("security-control/EC2", "PREFIX_NOT_EQUALS"),
                         sf("security-control/IAM", "PREFIX_NOT_EQUALS")]},
        lambda f: not f["GeneratorId"].startswith(("security-control/EC2", "security-control/IAM")),
    ),
    "different fields are ANDed": (
        {
            "SeverityLabel": [sf("HIGH"), sf("CRITICAL")],
            "RecordState": [sf("ACTIVE")],
            "ComplianceStatus": [sf("FAILED")],
            "AwsAccountId": [sf("123456789012")],
            "Region": [sf("us-east-1")],
        },
        lambda f: f["Severity"]["Label"] in ("HIGH", "CRITICAL") and f["RecordState"] == "ACTIVE"
        and f["Compliance"]["Status"] == "FAILED",
    ),
    "contains ORed": (
        {"Title": [sf("MFA", "CONTAINS"), sf("KMS", "CONTAINS")]},
        lambda f: "MFA" in f["Title"] or "KMS" in f["Title"],
    ),
    "not_contains ANDed": (
        {"Title": [sf("Security groups", "NOT_CONTAINS"), sf("S3", "NOT_CONTAINS")]},
        lambda f: "Security groups" not in f["Title"] and "S3" not in f["Title"],
    ),
    "resource type over Resources[]": (
        {"ResourceType": [sf("AwsEc2SecurityGroup"), sf("AwsKmsKey")]},
        lambda f: f["Resources"][0]["Type"] in ("AwsEc2SecurityGroup", "AwsKmsKey"),
    ),
    "resource id prefix": (
        {"ResourceId": [sf("arn:aws:s3:::", "PREFIX")]},
        lambda f: f["Resources"][0]["Id"].startswith("arn:aws:s3:::"),
    ),
    "id, product arn, product name": (
        {"Id": [sf("arn:aws:securityhub:us-east-1:123456789012:security-control/IAM.", "PREFIX")],
         "ProductArn": [sf("arn:aws:securityhub:us-east-1::product/aws/securityhub")],
         "ProductName": [sf("Security Hub")]},
        lambda f: f["Compliance"]["SecurityControlId"].startswith("IAM."),
    ),
    "no match": ({"AwsAccountId": [sf("999999999999")]}, lambda f: False),
    "number filter": ({"SeverityNormalized": [{"Gte": 70}]}, lambda f: f["Severity"]["Normalized"] >= 70),
    "date filter": (
        {"CreatedAt": [{"Start": "2024-05-01T01:00:00Z", "End": "2024-05-01T02:00:00.000Z"}]},
        lambda f: "2024-05-01T01:00:00.000Z" <= f["CreatedAt"] <= "2024-05-01T02:00:00.000Z",
    ),
}


@pytest.mark.parametrize("name", FILTER_CASES)
def test_filter_semantics(sh, name):
    filters, expected = FILTER_CASES[name]
    want = sorted(f["Id"] for f in ALL if expected(f))
    got = fetch_all(sh, Filters=filters)
    assert sorted(ids(got)) == want
    assert len(set(ids(got))) == len(got)
    if name != "no match":
        assert 0 < len(want) < N, "a case that keeps all or nothing tests little"


def test_array_fields_and_product_name_fallback(hub, sh):
    two = make_finding(1000, control_id="EC2.19", Resources=[
        {"Type": "AwsIamPolicy", "Id": "arn:aws:iam::123456789012:policy/p"},
        {"Type": "AwsEc2NetworkInterface", "Id": "eni-1"},
    ])
    third_party = make_finding(1001, ProductArn="arn:aws:securityhub:us-east-1::product/acme/scanner",
                               CompanyName="Acme", ProductFields={"aws/securityhub/ProductName": "Acme Scanner"})
    del third_party["ProductName"]
    hub.add_findings([two, third_party])
    only = lambda filters: ids(fetch_all(sh, Filters=filters))  # noqa: E731
    # Positive: any resource may match.  Negative: no resource may match.
    assert only({"ResourceType": [sf("AwsEc2NetworkInterface")]}) == [two["Id"]]
    assert two["Id"] not in only({"ResourceType": [sf("AwsIamPolicy", "NOT_EQUALS")]})
    # The documented example: PREFIX AwsIam / AwsEc2 minus two exact types.
    got = only({"ResourceType": [sf("AwsIam", "PREFIX"), sf("AwsEc2", "PREFIX"),
                                 sf("AwsIamPolicy", "NOT_EQUALS"), sf("AwsEc2NetworkInterface", "NOT_EQUALS")]})
    assert two["Id"] not in got and len(got) == sum(f["Resources"][0]["Type"] == "AwsEc2SecurityGroup" for f in ALL)
    # ProductName is read from ProductFields when the top-level member is absent.
    assert only({"ProductName": [sf("Acme Scanner")]}) == [third_party["Id"]]
    assert only({"CompanyName": [sf("AWS")], "ProductName": [sf("Acme", "PREFIX")]}) == []


@pytest.mark.parametrize("filters, fragment", [
    ({"Title": [sf("a", "CONTAINS"), sf("b", "PREFIX")]}, "CONTAINS"),
    ({"Title": [sf("a", "NOT_CONTAINS"), sf("b", "NOT_EQUALS")]}, "NOT_CONTAINS"),
    ({"Title": [sf("a", "EQUALS"), sf("b", "NOT_EQUALS")]}, "EQUALS"),
    ({"Title": [sf("a", "CONTAINS_WORD")]}, "CONTAINS_WORD"),
    ({"MalwareName": [sf("x")]}, "MalwareName"),  # real field, not implemented here: never silently ignored
    ({"SeverityLabel": [sf(str(i)) for i in range(21)]}, "20"),
])
def test_invalid_filters_are_rejected(sh, filters, fragment):
    with pytest.raises(ClientError) as e:
        sh.get_findings(Filters=filters)
    code, status, message = error_of(e)
    assert (code, status) == ("InvalidInputException", 400) and fragment in message


def test_unknown_filter_field_names_the_field(hub):
    # botocore refuses unknown members client-side, so send it raw.
    status, headers, body = raw(hub, "POST", "/findings", {"Filters": {"Severity": [sf("HIGH")]}})
    assert status == 400
    assert headers["x-amzn-errortype"] == "InvalidInputException"
    assert body == {"Code": "InvalidInputException", "Message": "Invalid filter field: Severity"}


# ------------------------------------------------------------------ sorting


@pytest.mark.parametrize("field, key", [
    ("SeverityNormalized", lambda f: f["Severity"]["Normalized"]),
    ("SeverityLabel", lambda f: f["Severity"]["Normalized"]),
    ("UpdatedAt", lambda f: f["UpdatedAt"]),
    ("CreatedAt", lambda f: f["CreatedAt"]),
    ("Title", lambda f: f["Title"]),
])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sorting(sh, field, key, order):
    got = fetch_all(sh, SortCriteria=[{"Field": field, "SortOrder": order}], PaginationConfig={"PageSize": 40})
    values = [key(f) for f in got]
    assert values == sorted(values, reverse=order == "desc")
    assert len(got) == N and len(set(ids(got))) == N


def test_secondary_sort_and_label_order(sh):
    got = fetch_all(sh, Filters={"RecordState": [sf("ACTIVE")]},
                    SortCriteria=[{"Field": "SeverityLabel", "SortOrder": "desc"},
                                  {"Field": "Title", "SortOrder": "asc"}])
    pairs = [(-f["Severity"]["Normalized"], f["Title"]) for f in got]
    assert pairs == sorted(pairs)
    labels = list(dict.fromkeys(f["Severity"]["Label"] for f in got))
    assert labels == ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"]


def test_invalid_sort(sh):
    for criteria in ([{"Field": "Colour", "SortOrder": "asc"}], [{"Field": "Title", "SortOrder": "up"}]):
        with pytest.raises(ClientError) as e:
            sh.get_findings(SortCriteria=criteria)
        assert error_of(e)[:2] == ("InvalidInputException", 400)


# ------------------------------------------------------------------ paging


def test_paging_250_in_three_pages(hub, sh):
    pages, token = [], None
    while True:
        kwargs = {"MaxResults": 100, **({"NextToken": token} if token else {})}
        resp = sh.get_findings(**kwargs)
        pages.append(resp["Findings"])
        token = resp.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [100, 100, 50]
    every = [f["Id"] for p in pages for f in p]
    assert len(set(every)) == N and set(every) == {f["Id"] for f in ALL}
    assert "NextToken" not in hub.requests[0].body and hub.requests[1].body["NextToken"]


def test_pages_concatenate_to_the_single_page_order(hub, sh):
    query = {"Filters": {"RecordState": [sf("ACTIVE")]}, "SortCriteria": [{"Field": "SeverityLabel", "SortOrder": "desc"}]}
    one = sh.get_findings(MaxResults=100, **query)["Findings"]
    paged = fetch_all(sh, PaginationConfig={"PageSize": 7}, **query)
    assert ids(paged)[:100] == ids(one)
    assert len(paged) == sum(f["RecordState"] == "ACTIVE" for f in ALL)


def test_paging_is_stable_when_findings_arrive_between_pages(hub, sh):
    # The token is a cursor (the last key returned), not an offset: findings added
    # before it don't shift the next page, findings added after it are still reached.
    by_created = [{"Field": "CreatedAt", "SortOrder": "asc"}]
    resp = sh.get_findings(MaxResults=100, SortCriteria=by_created)
    seen = ids(resp["Findings"])
    hub.add_findings([make_finding(5000 + i) for i in range(10)])  # created later than all: sort last
    hub.add_findings([make_finding(-1 - i) for i in range(10)])  # created earlier: before the cursor
    while resp.get("NextToken"):
        resp = sh.get_findings(MaxResults=100, SortCriteria=by_created, NextToken=resp["NextToken"])
        seen += ids(resp["Findings"])
    assert len(seen) == len(set(seen)) == N + 10


def test_bad_tokens_and_page_sizes(hub, sh):
    token = sh.get_findings(MaxResults=10)["NextToken"]
    for kwargs in (
        {"NextToken": "not-a-token"},
        {"NextToken": token, "Filters": {"SeverityLabel": [sf("LOW")]}},  # token of another query
        {"MaxResults": 101},
    ):
        with pytest.raises(ClientError) as e:
            sh.get_findings(**kwargs)
        assert error_of(e)[:2] == ("InvalidInputException", 400), kwargs
    status, _, body = raw(hub, "POST", "/findings", {"MaxResults": 0})  # botocore checks min itself
    assert status == 400 and "MaxResults" in body["Message"]


# ------------------------------------------------------------------ throttling


def test_throttle_is_a_429_too_many_requests_botocore_recognises():
    with SecurityHubServer(findings=make_findings(5), rate=0.001, burst=2) as hub:
        sh = make_client(hub)  # retries off
        sh.get_findings()
        sh.get_findings()
        with pytest.raises(ClientError) as e:
            sh.get_findings()
        code, status, message = error_of(e)
        assert (code, status) == ("TooManyRequestsException", 429) and message
        assert ThrottledRetryableChecker().is_retryable(RetryContext(attempt_number=1, parsed_response=e.value.response))
        assert hub.throttled == 1
        # On the wire: the code in x-amzn-ErrorType (what the Rust SDK reads) and a {"Code","Message"} body.
        status, headers, body = raw(hub, "POST", "/findings", {})
        assert status == 429 and headers["x-amzn-errortype"] == "TooManyRequestsException"
        assert body == {"Code": "TooManyRequestsException", "Message": message}
        assert hub.throttled == 2
        # Only GetFindings is rate limited here.
        f = hub.findings[0]
        sh.batch_update_findings(FindingIdentifiers=[{"Id": f["Id"], "ProductArn": f["ProductArn"]}],
                                 Workflow={"Status": "NOTIFIED"})


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
def test_paginator_with_retries_absorbs_throttling(mode):
    with SecurityHubServer(findings=make_findings(600), rate=20.0, burst=3) as hub:
        sh = make_client(hub, mode=mode, total_max_attempts=10)
        start = time.monotonic()
        got = fetch_all(sh, PaginationConfig={"PageSize": 100})
        assert len(set(ids(got))) == 600
        ok = [r for r in hub.requests_for("GetFindings") if r.status == 200]
        assert len(ok) == 6 and hub.throttled == len(hub.requests) - 6
        assert time.monotonic() - start >= (6 - 3) / 20.0 * 0.9  # the bucket really limited it


# ------------------------------------------------------------------ BatchImportFindings


def test_batch_import_inserts_upserts_and_reports_failures(hub, sh):
    existing = hub.findings[0]
    sh.batch_update_findings(FindingIdentifiers=[{"Id": existing["Id"], "ProductArn": existing["ProductArn"]}],
                             Workflow={"Status": "SUPPRESSED"})
    changed = {**existing, "Title": "Re-imported title", "Workflow": {"Status": "NEW"}}
    new = make_finding(9000, control_id="KMS.4")
    broken = make_finding(9001, Resources=[])  # ASFF needs at least one resource
    resp = sh.batch_import_findings(Findings=[changed, new, broken])
    assert (resp["SuccessCount"], resp["FailedCount"]) == (2, 1)
    [failure] = resp["FailedFindings"]
    assert failure["Id"] == broken["Id"] and failure["ErrorCode"] == "InvalidInput" and "Resources" in failure["ErrorMessage"]
    assert len(hub.findings) == N + 1
    stored = hub.finding(existing["Id"])
    assert stored["Title"] == "Re-imported title"
    assert stored["Workflow"] == {"Status": "SUPPRESSED"}  # import can't change the customer's workflow
    assert ids(fetch_all(sh, Filters={"Id": [sf(new["Id"])]})) == [new["Id"]]


def test_batch_import_limits(sh):
    for findings in ([], make_findings(101)):
        status = None
        try:
            sh.batch_import_findings(Findings=findings)
        except ClientError as e:
            status = e.response["Error"]["Code"]
        except Exception as e:  # botocore may refuse an empty list itself
            status = type(e).__name__
        assert status in ("InvalidInputException", "ParamValidationError")


# ------------------------------------------------------------------ BatchUpdateFindings


def ident(f: dict) -> dict:
    return {"Id": f["Id"], "ProductArn": f["ProductArn"]}


def test_batch_update_stores_workflow_and_note(hub, sh):
    a, b = hub.findings[0], hub.findings[1]
    missing = {"Id": "arn:aws:securityhub:us-east-1:123456789012:security-control/EC2.19/finding/nope",
               "ProductArn": a["ProductArn"]}
    before = time.time()
    resp = sh.batch_update_findings(
        FindingIdentifiers=[ident(a), missing, ident(b), ident(a)],
        Workflow={"Status": "RESOLVED"},
        Note={"Text": "Revoked 0.0.0.0/0 on port 22 (plan-3f9a1c2b)", "UpdatedBy": "runbook-kernel"},
    )
    assert resp["ProcessedFindings"] == [ident(a), ident(b)]
    assert resp["UnprocessedFindings"] == [
        {"FindingIdentifier": missing, "ErrorCode": "FindingNotFound", "ErrorMessage": "Finding Not Found"},
        {"FindingIdentifier": ident(a), "ErrorCode": "DuplicatedFindingIdentifier",
         "ErrorMessage": "Finding Identifier is duplicated"},
    ]
    [got] = sh.get_findings(Filters={"Id": [sf(a["Id"])]})["Findings"]
    assert got["Workflow"]["Status"] == "RESOLVED"
    assert got["Note"]["Text"] == "Revoked 0.0.0.0/0 on port 22 (plan-3f9a1c2b)"
    assert got["Note"]["UpdatedBy"] == "runbook-kernel"
    assert got["Note"]["UpdatedAt"].endswith("Z") and got["Note"]["UpdatedAt"] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before - 1))
    assert got["UpdatedAt"] == a["UpdatedAt"]  # the model: BatchUpdateFindings leaves UpdatedAt alone
    resolved = fetch_all(sh, Filters={"WorkflowStatus": [sf("RESOLVED")], "NoteText": [sf("plan-3f9a1c2b", "CONTAINS")]})
    assert sorted(ids(resolved)) == sorted([a["Id"], b["Id"]])


def test_note_length_is_counted_in_characters(hub, sh):
    f = hub.findings[2]
    with pytest.raises(ClientError) as e:
        sh.batch_update_findings(FindingIdentifiers=[ident(f)], Note={"Text": "x" * 513, "UpdatedBy": "me"})
    code, status, message = error_of(e)
    assert (code, status) == ("InvalidInputException", 400) and "512" in message
    assert "Note" not in hub.finding(f["Id"])  # rejected requests change nothing
    japanese = ("検出結果を修正しました。" * 50)[:512]
    assert len(japanese) == 512 and len(japanese.encode()) == 1536
    resp = sh.batch_update_findings(FindingIdentifiers=[ident(f)], Note={"Text": japanese, "UpdatedBy": "担当者"})
    assert resp["ProcessedFindings"] == [ident(f)]
    assert hub.finding(f["Id"])["Note"]["Text"] == japanese
    [got] = sh.get_findings(Filters={"Id": [sf(f["Id"])]})["Findings"]
    assert got["Note"]["Text"] == japanese and got["Note"]["UpdatedBy"] == "担当者"


def test_batch_update_validation(hub, sh):
    f = hub.findings[3]
    for kwargs, fragment in (
        ({"Workflow": {"Status": "DONE"}}, "Workflow.Status"),
        ({"Severity": {"Label": "URGENT"}}, "Severity.Label"),
        ({"VerificationState": "MAYBE"}, "VerificationState"),
    ):
        with pytest.raises(ClientError) as e:
            sh.batch_update_findings(FindingIdentifiers=[ident(f)], **kwargs)
        code, status, message = error_of(e)
        assert (code, status) == ("InvalidInputException", 400) and fragment in message
    assert hub.finding(f["Id"]) == f


def test_batch_update_severity_and_rejection_hook(hub, sh):
    a, b = hub.findings[4], hub.findings[5]
    hub.reject_update(b["Id"])
    resp = sh.batch_update_findings(FindingIdentifiers=[ident(a), ident(b)], Severity={"Label": "LOW"})
    assert resp["ProcessedFindings"] == [ident(a)]
    assert resp["UnprocessedFindings"][0]["ErrorCode"] == "ConcurrentUpdateError"
    assert hub.finding(a["Id"])["Severity"]["Label"] == "LOW" and hub.finding(a["Id"])["Severity"]["Normalized"] == 1


# ------------------------------------------------------------------ fault injection


def test_fail_next_access_denied_then_recovers(hub, sh):
    hub.fail_next("GetFindings", *access_denied())
    with pytest.raises(ClientError) as e:
        sh.get_findings()
    assert error_of(e) == (
        "AccessDeniedException", 403,
        "User: arn:aws:iam::111111111111:user/x is not authorized to perform: securityhub:GetFindings",
    )
    assert len(sh.get_findings(MaxResults=1)["Findings"]) == 1


def test_fail_next_not_subscribed_is_the_modeled_invalid_access_exception(hub, sh):
    hub.fail_next("BatchUpdateFindings", *not_subscribed("111111111111"))
    with pytest.raises(sh.exceptions.InvalidAccessException) as e:
        f = hub.findings[0]
        sh.batch_update_findings(FindingIdentifiers=[ident(f)], Workflow={"Status": "NOTIFIED"})
    assert error_of(e) == ("InvalidAccessException", 401, "Account 111111111111 is not subscribed to AWS Security Hub")
    assert e.value.response["Code"] == "InvalidAccessException"  # the modeled member, parsed from the body


def test_fail_next_times_and_retries(hub):
    hub.fail_next("GetFindings", *internal_error(), times=2)
    sh = make_client(hub, mode="standard", total_max_attempts=3)
    assert len(sh.get_findings(MaxResults=2)["Findings"]) == 2  # two 500s retried, third call succeeds
    assert [r.status for r in hub.requests] == [500, 500, 200]
    with pytest.raises(ValueError):
        hub.fail_next("GetFinding", *access_denied())


# ------------------------------------------------------------------ standalone


def test_runs_standalone_and_prints_its_url():
    with standalone("tests.servers.securityhub", "--port", "0", "--findings", "7", "--no-throttle") as url:
        assert url.startswith("http://127.0.0.1:")
        client = SESSION.client("securityhub", endpoint_url=url, region_name="us-east-1",
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        assert len(fetch_all(client)) == 7


# --- the new Security Hub (v2) and insights, through botocore's service model ---------


def test_v2_is_refused_until_enabled_and_describe_says_so():
    with SecurityHubServer(make_findings(3), rate=None) as server:
        client = make_client(server)
        with pytest.raises(ClientError) as e:
            client.describe_security_hub_v2()
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
        with pytest.raises(ClientError) as e:
            client.get_findings_v2()
        assert e.value.response["Error"]["Code"] == "AccessDeniedException"
        server.v2_enabled = True
        assert client.describe_security_hub_v2()["HubV2Arn"].startswith("arn:aws:securityhub:")


def test_v2_composite_filters_paging_and_statistics():
    from servers import securityhub_v2 as v2

    with SecurityHubServer(make_findings(250), rate=None, v2_enabled=True) as server:
        client = make_client(server)
        critical = {"CompositeFilters": [
            {"NumberFilters": [{"FieldName": "severity_id", "Filter": {"Eq": 5}}], "Operator": "OR"},
            {"StringFilters": [{"FieldName": "compliance.status", "Filter": {"Value": "Fail", "Comparison": "EQUALS"}}]},
        ], "CompositeOperator": "AND"}  # fmt: skip
        pages = client.get_paginator("get_findings_v2").paginate(Filters=critical, PaginationConfig={"PageSize": 20})
        found = [f for page in pages for f in page["Findings"]]
        expected = [f for f in server.findings if f["Severity"]["Label"] == "CRITICAL" and f["Compliance"]["Status"] == "FAILED"]
        assert len(found) == len(expected) > 20
        assert {f["metadata"]["uid"] for f in found} == {v2.metadata_uid(f) for f in expected}
        assert all(f["class_uid"] == 2003 and f["severity"] == "Critical" for f in found)
        stats = client.get_finding_statistics_v2(GroupByRules=[
            {"GroupByField": "severity", "Filters": critical}, {"GroupByField": "cloud.account.uid"},
        ])["GroupByResults"]  # fmt: skip
        assert stats[0]["GroupByValues"] == [{"FieldValue": "Critical", "Count": len(expected)}]
        assert sum(v["Count"] for v in stats[1]["GroupByValues"]) == 250
        with pytest.raises(ClientError) as e:
            client.get_findings_v2(Filters={"CompositeFilters": [
                {"StringFilters": [{"FieldName": "nonsense", "Filter": {"Value": "x", "Comparison": "EQUALS"}}]}]})
        assert e.value.response["Error"]["Code"] == "ValidationException"


def test_v2_updates_show_in_both_apis_and_unknown_uids_are_unprocessed():
    from servers import securityhub_v2 as v2

    with SecurityHubServer(make_findings(5), rate=None, v2_enabled=True) as server:
        client = make_client(server)
        target = server.findings[0]
        uid = v2.metadata_uid(target)
        out = client.batch_update_findings_v2(MetadataUids=[uid, "0" * 64], StatusId=4, Comment="Remediated by plan-0000abcd")
        assert [p["MetadataUid"] for p in out["ProcessedFindings"]] == [uid]
        assert out["UnprocessedFindings"][0]["ErrorCode"] == "ResourceNotFoundException"
        assert server.finding(target["Id"])["Workflow"]["Status"] == "RESOLVED"
        shown = server.ocsf_finding(uid)
        assert shown["status_id"] == 4 and shown["comment"] == "Remediated by plan-0000abcd"
        with pytest.raises(ClientError) as e:
            client.batch_update_findings_v2(MetadataUids=[uid], StatusId=6)
        assert e.value.response["Error"]["Code"] == "ValidationException"


def test_insights_group_the_filtered_findings():
    with SecurityHubServer(make_findings(100), rate=None) as server:
        client = make_client(server)
        arn = client.create_insight(
            Name="by severity", GroupByAttribute="SeverityLabel",
            Filters={"ComplianceStatus": [{"Value": "FAILED", "Comparison": "EQUALS"}]},
        )["InsightArn"]  # fmt: skip
        listed = client.get_insights()["Insights"]
        assert [i["InsightArn"] for i in listed] == [arn]
        results = client.get_insight_results(InsightArn=arn)["InsightResults"]["ResultValues"]
        failed = [f for f in server.findings if f["Compliance"]["Status"] == "FAILED"]
        assert sum(v["Count"] for v in results) == len(failed)
        with pytest.raises(ClientError) as e:
            client.get_insight_results(InsightArn=arn + "x")
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
