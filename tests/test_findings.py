"""%findings and %finding end to end: the real kernel over ZeroMQ, on the sandbox
and on the AWS path (the real AWS SDK for Rust against the local Security Hub server)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from conftest import RUNBOOK_MIME, final_displays
from servers.securityhub import SecurityHubServer, access_denied, make_findings, not_subscribed

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

VEGA_LITE = "application/vnd.vegalite.v5+json"
SEVERITY_ORDER = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"]


def listing_of(res) -> dict[str, Any]:
    """The listing bundle (the one whose JSON has `shown`)."""
    for data in final_displays(res):
        if isinstance(data.get(RUNBOOK_MIME), dict) and "shown" in data[RUNBOOK_MIME]:
            return data
    raise AssertionError("no listing display\n" + res.describe())


def assert_inert(markup: str) -> None:
    lowered = markup.lower()
    assert "<script" not in lowered, markup[:2000]
    assert "<img" not in lowered, markup[:2000]


# --- sandbox ---------------------------------------------------------------


def test_listing_is_numbered_sorted_and_says_its_defaults(kernel):
    res = kernel.ok("%findings")
    data = listing_of(res)
    result = data[RUNBOOK_MIME]
    shown = result["shown"]
    assert shown, res.describe()
    assert [row["number"] for row in shown] == list(range(1, len(shown) + 1))
    ranks = [SEVERITY_ORDER.index(row["severity"]) for row in shown]
    assert ranks == sorted(ranks), "most severe first"
    assert result["total"] == len(shown) <= 50
    assert "compliance FAILED (default)" in result["filter"]
    assert "workflow NEW or NOTIFIED (default)" in result["filter"]
    assert sum(result["counts"].values()) == result["total"]
    assert "<table" in data["text/html"]
    # The chart is its own display, drawn by JupyterLab's Vega-Lite renderer.
    charts = [d for d in final_displays(res) if VEGA_LITE in d]
    assert len(charts) == 1
    values = charts[0][VEGA_LITE]["data"]["values"]
    assert {v["severity"]: v["count"] for v in values} == result["counts"]


def test_progress_updates_one_display_then_shows_the_result(kernel):
    res = kernel.ok("%findings --all")
    updates = res.of_type("update_display_data")
    assert updates, "paging is reported while it happens"
    first = res.displays[0]["content"]["transient"]["display_id"]
    assert all(u["content"]["transient"]["display_id"] == first for u in updates)
    assert "shown" in updates[-1]["content"]["data"][RUNBOOK_MIME]


def test_filters(kernel):
    res = kernel.ok("%findings --severity critical,HIGH --region us-east-1 --all")
    shown = listing_of(res)[RUNBOOK_MIME]["shown"]
    assert shown
    assert {r["severity"] for r in shown} <= {"CRITICAL", "HIGH"}
    assert {r["region"] for r in shown} == {"us-east-1"}

    shown = listing_of(kernel.ok("%findings --control EC2.19 --account 222222222222"))[RUNBOOK_MIME]["shown"]
    assert shown and all(r["control_id"] == "EC2.19" and r["account"] == "222222222222" for r in shown)

    shown = listing_of(kernel.ok("%findings --status PASSED --workflow RESOLVED --all"))[RUNBOOK_MIME]["shown"]
    assert shown and all(r["workflow"] == "RESOLVED" for r in shown)

    res = kernel.ok("%findings --title 'no such title anywhere'")
    assert listing_of(res)[RUNBOOK_MIME]["total"] == 0
    assert "No findings match" in listing_of(res)["text/plain"]


def test_hostile_finding_text_is_escaped(kernel):
    res = kernel.ok("%findings --all")
    listing = listing_of(res)
    rows = listing[RUNBOOK_MIME]["shown"]
    hostile = [r["number"] for r in rows if "<img" in r["resource"] or "<script" in r["resource"]]
    assert hostile, "the sandbox carries attacker-chosen resource names"
    assert_inert(listing["text/html"])
    assert "&lt;img src=x onerror=alert(1)&gt;" in listing["text/html"]

    detail = kernel.ok(f"%finding {hostile[0]}").single_display()
    assert_inert(detail["text/html"])
    assert "&lt;/td&gt;&lt;script&gt;" in detail["text/html"]
    # The JSON part keeps the text as it is: escaping is for HTML only.
    assert "<img src=x onerror=alert(1)>" in str(detail[RUNBOOK_MIME]["raw"])


def test_finding_detail_by_number_and_by_id(kernel):
    rows = listing_of(kernel.ok("%findings"))[RUNBOOK_MIME]["shown"]
    detail = kernel.ok("%finding 1").single_display()
    assert detail[RUNBOOK_MIME]["id"] == rows[0]["id"]
    assert "Full finding (ASFF JSON)" in detail["text/html"]
    assert "<details>" in detail["text/html"]
    by_id = kernel.ok(f"%finding '{rows[0]['id']}'").single_display()
    assert by_id[RUNBOOK_MIME]["id"] == rows[0]["id"]


@pytest.mark.parametrize(
    "code, ename, words",
    [
        ("%finding 1", "UsageError", ["run %findings first"]),
        ("%findings --severity SEVERE", "UsageError", ["SEVERE", "CRITICAL", "INFORMATIONAL"]),
        ("%findings --account 12345", "UsageError", ["12 digits"]),
        ("%findings --control port-22", "UsageError", ["EC2.19"]),
        ("%findings --region moon-1", "UsageError", ["us-east-1"]),
        ("%findings --limit 0", "UsageError", ["--limit"]),
        ("%findings --limit 5 --all", "UsageError", ["--all"]),
        ("%findings --workflow DONE", "UsageError", ["NEW", "SUPPRESSED"]),
        ("%finding arn:aws:securityhub:us-east-1:111111111111:nope", "NotFound", ["no finding"]),
    ],
)
def test_bad_input_gets_a_clear_error(kernel, code, ename, words):
    res = kernel.execute(code)
    assert res.status == "error", res.describe()
    assert len(res.errors) == 1
    assert res.content["ename"] == ename, res.describe()
    text = res.content["evalue"] + "\n".join(res.content["traceback"])
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


def test_number_outside_the_listing(kernel):
    kernel.ok("%findings --limit 2")
    res = kernel.execute("%finding 3")
    assert res.content["ename"] == "UsageError"
    assert "1 to 2" in res.content["evalue"]


def test_completion_knows_severities_and_listing_numbers(kernel):
    assert kernel.complete("%findings --severity CR")["matches"] == ["CRITICAL"]
    assert kernel.complete("%findings --severity CRITICAL,HI")["matches"] == ["CRITICAL,HIGH"]
    kernel.ok("%findings --limit 3")
    assert kernel.complete("%finding ")["matches"] == ["1", "2", "3"]
    assert kernel.complete("%remediate ")["matches"] == ["1", "2", "3"]
    assert kernel.complete("%approve ")["matches"] == ["last"]
    kernel.ok("%findings --control EC2.19")
    plan_id = final_displays(kernel.ok("%remediate 1"))[-1][RUNBOOK_MIME]["plan"]["id"]
    assert kernel.complete("%approve pl")["matches"] == [plan_id]
    assert kernel.complete("%rollback ")["matches"] == [plan_id]
    controls = kernel.complete("%findings --control ")["matches"]
    assert controls and all(re.fullmatch(r"[A-Za-z0-9]+\.\d+", c) for c in controls)


# --- AWS path: the real SDK against the local Security Hub server -------------


def aws_env(tmp_path: Path, server: SecurityHubServer, **extra: str) -> dict[str, str]:
    """Kernel environment for the aws backend, isolated from any real AWS config."""
    env = {
        "RUNBOOK_BACKEND": "aws",
        "RUNBOOK_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SECURITYHUB": server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    env.update(extra)
    return env


def open_findings(server: SecurityHubServer) -> list[dict]:
    return [
        f
        for f in server.findings
        if f["Compliance"]["Status"] == "FAILED"
        and f["Workflow"]["Status"] in ("NEW", "NOTIFIED")
        and f["RecordState"] == "ACTIVE"
    ]


def test_aws_filters_are_sent_to_security_hub(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(120), rate=None) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        res = k.ok("%findings --severity CRITICAL,HIGH --control EC2.19 --region us-east-1")
        # EC2.19 has no standard-specific id, and 50 rows are one stream: one query.
        (request,) = server.requests_for("GetFindings")
        filters = request.body["Filters"]
        assert filters["SeverityLabel"] == [
            {"Value": "CRITICAL", "Comparison": "EQUALS"},
            {"Value": "HIGH", "Comparison": "EQUALS"},
        ]
        assert filters["ComplianceSecurityControlId"] == [{"Value": "EC2.19", "Comparison": "EQUALS"}]
        assert filters["ComplianceStatus"] == [{"Value": "FAILED", "Comparison": "EQUALS"}]
        assert {f["Value"] for f in filters["WorkflowStatus"]} == {"NEW", "NOTIFIED"}
        assert filters["RecordState"] == [{"Value": "ACTIVE", "Comparison": "EQUALS"}]
        assert filters["Region"] == [{"Value": "us-east-1", "Comparison": "EQUALS"}]
        assert request.body["MaxResults"] == 100
        assert "/securityhub/aws4_request" in request.headers["authorization"]
        expected = {
            f["Id"]
            for f in open_findings(server)
            if f["Compliance"]["SecurityControlId"] == "EC2.19" and f["Severity"]["Label"] in ("CRITICAL", "HIGH")
        }
        shown = listing_of(res)[RUNBOOK_MIME]["shown"]
        assert expected and {r["id"] for r in shown} == expected
        assert listing_of(res)[RUNBOOK_MIME]["backend"]["kind"] == "aws"


def test_aws_paging_reads_every_page(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(700), rate=None) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        res = k.ok("%findings --all", timeout=60)
        requests = server.requests_for("GetFindings")
        assert len(requests) >= 3
        # Every severity is its own stream, paged through NextToken.
        first_pages = [r for r in requests if "NextToken" not in r.body]
        assert sorted(tuple(v["Value"] for v in r.body["Filters"]["SeverityLabel"]) for r in first_pages) == sorted(
            [("CRITICAL",), ("HIGH",), ("MEDIUM",), ("LOW", "INFORMATIONAL")]
        )
        assert len(requests) > len(first_pages), "some stream needed a second page"
        result = listing_of(res)[RUNBOOK_MIME]
        assert result["total"] == len(open_findings(server))
        # The raw ASFF JSON is kept exactly as Security Hub sent it.
        detail = k.ok("%finding 1").single_display()[RUNBOOK_MIME]
        sent = next(f for f in server.findings if f["Id"] == detail["id"])
        assert detail["raw"] == sent


def test_aws_limit_stops_paging_early(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(400), rate=None) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        res = k.ok("%findings --limit 10")
        assert listing_of(res)[RUNBOOK_MIME]["total"] == 10
        assert len(server.requests_for("GetFindings")) == 1


def test_aws_throttling_is_absorbed_by_retries(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(900), rate=4.0, burst=2) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        res = k.ok("%findings --all", timeout=90)
        assert server.throttled > 0, "the test must actually hit the throttle"
        assert listing_of(res)[RUNBOOK_MIME]["total"] == len(open_findings(server))


@pytest.mark.parametrize(
    "error, ename, words",
    [
        (access_denied(), "AccessDenied", ["securityhub:GetFindings", "not authorized"]),
        (not_subscribed(), "NotEnabled", ["Security Hub", "us-east-1", "not subscribed"]),
        ((429, "TooManyRequestsException", "Too Many Requests"), "Throttled", ["securityhub:GetFindings"]),
        ((400, "InvalidInputException", "Invalid filter"), "InvalidInput", ["Invalid filter"]),
    ],
)
def test_aws_errors_become_clear_messages(kernel_factory, tmp_path, error, ename, words):
    with SecurityHubServer(findings=make_findings(10), rate=None) as server:
        # Two attempts, so a persistent throttle ends quickly instead of after backoff.
        k = kernel_factory(**aws_env(tmp_path, server, AWS_MAX_ATTEMPTS="2"))
        server.fail_next("GetFindings", *error, times=5)
        res = k.execute("%findings", timeout=60)
        assert res.status == "error", res.describe()
        assert res.content["ename"] == ename, res.describe()
        for word in words:
            assert word in res.content["evalue"], res.content["evalue"]


def test_aws_without_credentials_says_so(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(5), rate=None) as server:
        env = aws_env(tmp_path, server)
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        k = kernel_factory(**env)
        res = k.execute("%findings", timeout=60)
        assert res.content["ename"] == "NoCredentials", res.describe()
        assert not server.requests_for("GetFindings")


def test_auto_backend_without_credentials_uses_the_sandbox(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(5), rate=None) as server:
        env = aws_env(tmp_path, server, RUNBOOK_BACKEND="auto")
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        k = kernel_factory(**env)
        res = k.ok("%findings", timeout=60)
        backend = listing_of(res)[RUNBOOK_MIME]["backend"]
        assert backend["kind"] == "sandbox"
        assert "no AWS credentials" in backend["reason"]
        config = k.ok("%config").single_display()[RUNBOOK_MIME]
        assert any("sandbox" in n for n in config["notes"])


def test_auto_backend_with_credentials_uses_aws(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(30), rate=None) as server:
        k = kernel_factory(**aws_env(tmp_path, server, RUNBOOK_BACKEND="auto"))
        res = k.ok("%findings")
        backend = listing_of(res)[RUNBOOK_MIME]["backend"]
        assert backend["kind"] == "aws" and "credentials" in backend["reason"]
        assert server.requests_for("GetFindings")
        banner = k.request("shell", "kernel_info_request")["content"]["banner"]
        assert "AWS is used" in banner
