"""The new Security Hub (OCSF, GetFindingsV2), counts before rows, and paging
in disjoint partitions: the real kernel over ZeroMQ, its real AWS SDK for Rust
against the local Security Hub server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import RUNBOOK_MIME, final_displays, last_bundle
from servers import securityhub_v2 as v2
from servers.securityhub import SecurityHubServer, make_findings
from test_findings import aws_env, listing_of, open_findings

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

FIXTURES = Path(__file__).parent / "fixtures" / "ocsf"
VEGA_LITE = "application/vnd.vegalite.v5+json"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def native_ocsf() -> list[dict]:
    return [fixture("cspm_control.json"), fixture("guardduty.json"), fixture("inspector.json")]


def test_auto_reads_the_new_security_hub_where_it_is_enabled_and_says_so(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(60), rate=None, v2_enabled=True) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        listing = listing_of(k.ok("%findings --all"))
        assert server.requests_for("DescribeSecurityHubV2") and not server.requests_for("GetFindings")
        result = listing[RUNBOOK_MIME]
        assert "GetFindingsV2" in result["backend"]["findings_api"]
        assert "enabled" in result["backend"]["findings_api"]
        assert "GetFindingsV2" in listing["text/plain"]
        # The same open findings as CSPM shows, named by the v2 metadata.uid.
        expected = {v2.metadata_uid(f) for f in open_findings(server)}
        assert {r["id"] for r in result["shown"]} == expected
        assert {r["source"] for r in result["shown"]} == {"ocsf"}


def test_auto_falls_back_to_cspm_and_says_why(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(20), rate=None, v2_enabled=False) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        result = listing_of(k.ok("%findings"))[RUNBOOK_MIME]
        assert server.requests_for("GetFindings") and not server.requests_for("GetFindingsV2")
        api = result["backend"]["findings_api"]
        assert "CSPM" in api and "not in use" in api and "ResourceNotFound" in api, api


def test_v2_when_it_is_not_enabled_is_a_clear_error(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(5), rate=None, v2_enabled=False) as server:
        k = kernel_factory(**aws_env(tmp_path, server, RUNBOOK_FINDINGS_API="v2"))
        res = k.execute("%findings", timeout=60)
        assert res.status == "error", res.describe()
        assert res.content["ename"] == "AccessDenied", res.describe()
        assert "GetFindingsV2" in res.content["evalue"] and "not enabled" in res.content["evalue"]


def test_bad_findings_api_value_names_what_is_accepted(kernel):
    res = kernel.execute("%config findings_api=v3")
    assert res.status == "error"
    assert "cspm, v2 or auto" in res.content["evalue"], res.content["evalue"]


def test_filters_become_ocsf_composite_filters(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(120), rate=None, v2_enabled=True) as server:
        k = kernel_factory(**aws_env(tmp_path, server, RUNBOOK_FINDINGS_API="v2"))
        res = k.ok("%findings --severity CRITICAL,HIGH --control EC2.19 --region us-east-1")
        (request,) = server.requests_for("GetFindingsV2")
        filters = request.body["Filters"]
        assert filters["CompositeOperator"] == "AND"
        by_field = {}
        for c in filters["CompositeFilters"]:
            assert c["Operator"] == "OR"
            for leaf in c.get("StringFilters", []) + c.get("NumberFilters", []):
                by_field.setdefault(leaf["FieldName"], []).append(leaf["Filter"])
        assert sorted(f["Eq"] for f in by_field["severity_id"]) == [4, 5, 6]
        assert by_field["compliance.control"] == [{"Value": "EC2.19", "Comparison": "EQUALS"}]
        assert [f["Eq"] for f in by_field["compliance.status_id"]] == [3]
        assert sorted(f["Eq"] for f in by_field["status_id"]) == [1, 2]
        assert by_field["cloud.region"] == [{"Value": "us-east-1", "Comparison": "EQUALS"}]
        assert request.body["MaxResults"] == 100
        assert request.body["SortCriteria"][0] == {"Field": "severity_id", "SortOrder": "desc"}
        expected = {
            v2.metadata_uid(f)
            for f in open_findings(server)
            if f["Compliance"]["SecurityControlId"] == "EC2.19" and f["Severity"]["Label"] in ("CRITICAL", "HIGH")
        }
        assert expected and {r["id"] for r in listing_of(res)[RUNBOOK_MIME]["shown"]} == expected


def test_guardduty_and_inspector_findings_are_listed_and_explained(kernel_factory, tmp_path):
    with SecurityHubServer(rate=None, v2_enabled=True, ocsf_findings=native_ocsf()) as server:
        k = kernel_factory(**aws_env(tmp_path, server, RUNBOOK_MODEL="catalog"))
        # By default only failed controls: the fixture's EC2.19.
        (control,) = listing_of(k.ok("%findings"))[RUNBOOK_MIME]["shown"]
        assert control["control_id"] == "EC2.19" and control["source"] == "ocsf"
        assert control["resource"] == "fixture-web-sg" and control["account"] == "222222222222"
        # --status ANY adds what checks no control: the threat and the CVE.
        every = listing_of(k.ok("%findings --status ANY"))[RUNBOOK_MIME]["shown"]
        assert len(every) == 3 and len(server.ocsf_finding(every[0]["id"]) or {}) > 0
        for product, words in [("GuardDuty", ["SSHBruteForce"]), ("Inspector", ["CVE-2023-38545"])]:
            (shown,) = listing_of(k.ok(f"%findings --product {product} --status ANY"))[RUNBOOK_MIME]["shown"]
            assert shown["control_id"] is None
            detail = k.ok("%finding 1").single_display()[RUNBOOK_MIME]
            for word in words:
                assert word in json.dumps(detail), (product, word)
            assert detail["raw"]["metadata"]["uid"] == shown["id"]
            explained = k.ok("%summarize 1")
            assert explained.text().strip(), explained.describe()
            # No catalog entry covers a threat or a CVE: advice, never an executable plan.
            remediate = k.execute("%remediate 1", timeout=60)
            plans = [d[RUNBOOK_MIME] for d in final_displays(remediate) if "plan" in (d.get(RUNBOOK_MIME) or {})]
            assert not plans, remediate.describe()


def test_resolving_a_v2_finding_uses_batch_update_findings_v2(kernel_factory, tmp_path):
    from aws_seed import aws_kernel_env, seed_account
    from servers.bedrock import BedrockServer
    from servers.moto import MotoServer

    with MotoServer() as moto, SecurityHubServer(rate=None, v2_enabled=True) as hub, BedrockServer() as bedrock:
        account = seed_account(moto, hub)
        env = {**aws_kernel_env(moto, hub, bedrock), "RUNBOOK_MODEL": "catalog", "RUNBOOK_FINDINGS_API": "auto"}
        k = kernel_factory(**env)
        k.ok("%findings --control EC2.19")
        plan_id = last_bundle(k.ok("%remediate 1"))[RUNBOOK_MIME]["plan"]["id"]
        k.ok(f"%approve {plan_id} --yes", timeout=120)
        (update,) = [r for r in hub.requests_for("BatchUpdateFindingsV2") if r.body.get("StatusId") == 4]
        stored = hub.finding(account.finding_id("EC2.19"))
        assert update.body["MetadataUids"] == [v2.metadata_uid(stored)]
        assert plan_id in update.body["Comment"] and len(update.body["Comment"]) <= 512
        assert not hub.requests_for("BatchUpdateFindings")
        shown = hub.ocsf_finding(v2.metadata_uid(stored))
        assert shown["status_id"] == 4 and plan_id in shown["comment"]


def test_counts_show_before_the_rows(kernel_factory, tmp_path):
    # Each page takes 0.3 s, like real Security Hub pages; the counts take one call.
    with SecurityHubServer(findings=make_findings(900), rate=None, latency=0.3, v2_enabled=True) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        res = k.ok("%findings --all", timeout=120)
        times = k.iopub_times(res.msg_id)
        kinds = [(m["msg_type"], m["content"].get("data", {})) for m in res.iopub]
        chart_at = next(i for i, (t, d) in enumerate(kinds) if t == "display_data" and VEGA_LITE in d)
        rows_at = [i for i, (t, d) in enumerate(kinds) if "shown" in (d.get(RUNBOOK_MIME) or {})]
        assert rows_at and chart_at < rows_at[0], "the chart comes before any row"
        assert len(rows_at) >= 2, "the table fills as pages arrive"
        stats = server.requests_for("GetFindingStatisticsV2")
        assert len(stats) == 1
        assert [r["GroupByField"] for r in stats[0].body["GroupByRules"]] == ["severity", "cloud.account.uid"]
        chart = next(d for t, d in kinds if VEGA_LITE in d)
        counted = sum(v["count"] for v in chart[RUNBOOK_MIME]["counts"])
        assert counted == len(open_findings(server)) == listing_of(res)[RUNBOOK_MIME]["total"]
        # From the cell's first display (after STS names the caller) to the chart:
        # DescribeSecurityHubV2 and one statistics call, 0.3 s each.
        first_display = next(i for i, (t, _) in enumerate(kinds) if t == "display_data")
        assert times[chart_at] - times[first_display] < 1.5


def test_counts_only_never_pages(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(300), rate=None, v2_enabled=True) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        counts = listing_counts = k.ok("%findings --counts --severity CRITICAL,HIGH")
        assert not server.requests_for("GetFindingsV2")
        bundle = next(d for d in final_displays(counts) if "by_account" in d.get(RUNBOOK_MIME, {}))[RUNBOOK_MIME]
        expected = [f for f in open_findings(server) if f["Severity"]["Label"] in ("CRITICAL", "HIGH")]
        assert bundle["total"] == len(expected) and bundle["method"] == "GetFindingStatisticsV2"
        assert sum(a["count"] for a in bundle["by_account"]) == len(expected)
        assert bundle["counts"]["MEDIUM"] == 0
        del listing_counts
        res = k.execute("%findings --counts --limit 5")
        assert res.status == "error" and "--counts" in res.content["evalue"]


def test_counts_on_cspm_come_from_one_insight_per_grouping_made_once(kernel_factory, tmp_path):
    with SecurityHubServer(findings=make_findings(200), rate=None) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        first = k.ok("%findings --counts")
        again = k.ok("%findings --counts")
        assert not server.requests_for("GetFindings")
        insights = server.insights
        assert sorted(i["GroupByAttribute"] for i in insights) == ["AwsAccountId", "SeverityLabel"]
        assert all(i["Name"].startswith("runbook-kernel ") for i in insights)
        assert len(server.requests_for("CreateInsight")) == 2, "made once, then reused"
        for res in (first, again):
            bundle = next(d for d in final_displays(res) if "by_account" in d.get(RUNBOOK_MIME, {}))[RUNBOOK_MIME]
            assert bundle["total"] == len(open_findings(server))
        # Another kernel finds the insights by name instead of making new ones.
        k2 = kernel_factory(**aws_env(tmp_path, server))
        k2.ok("%findings --counts")
        assert len(server.requests_for("CreateInsight")) == 2


def test_without_permission_for_counts_the_listing_still_comes(kernel_factory, tmp_path):
    from servers.securityhub import access_denied

    with SecurityHubServer(findings=make_findings(40), rate=None) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        server.fail_next("GetInsights", *access_denied("securityhub:GetInsights"), times=3)
        res = k.ok("%findings")
        assert "Counts are not available" in res.text() and "securityhub:GetInsights" in res.text()
        assert listing_of(res)[RUNBOOK_MIME]["total"] == min(50, len(open_findings(server)))


def test_partitions_are_paged_concurrently_under_the_quota(kernel_factory, tmp_path):
    # 0.3 s a page: one stream of 10 pages takes 3 s or more; five at once, well under.
    with SecurityHubServer(findings=make_findings(1000), rate=None, latency=0.3) as server:
        k = kernel_factory(**aws_env(tmp_path, server, RUNBOOK_FINDINGS_API="cspm"))
        res = k.ok("%findings --all", timeout=120)
        pages = server.requests_for("GetFindings")
        starts = sorted(r.time for r in pages)
        overlapping = sum(1 for a, b in zip(starts, starts[1:]) if b - a < 0.25)
        assert overlapping >= 3, "pages of different severities were in flight together"
        assert listing_of(res)[RUNBOOK_MIME]["total"] == len(open_findings(server))
        assert len({r["id"] for r in listing_of(res)[RUNBOOK_MIME]["shown"]}) == len(listing_of(res)[RUNBOOK_MIME]["shown"])
