"""Findings that name only their standard's own control id (CIS 1.2.0, 1.4.0,
3.0.0, PCI DSS 3.2.1, from accounts without consolidated control findings) are
read as their consolidated control, listed with the original id beside it, found
by `--control`, and planned for: the real kernel and SDK against the local
Security Hub server (and moto for the plan's account)."""

from __future__ import annotations

import pytest

from aws_seed import aws_kernel_env, seed_account
from conftest import RUNBOOK_MIME, last_bundle
from legacy_findings import TITLES, WORKSHOP_CONTROLS, as_legacy, standard_ids
from servers.bedrock import BedrockServer
from servers.moto import MotoServer
from servers.securityhub import SecurityHubServer, make_finding
from test_findings import aws_env, listing_of

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

# (consolidated, standard, standard id) for every workshop control the table maps.
CASES = [(c, s, i) for c in WORKSHOP_CONTROLS for s, i in standard_ids(c)]


def legacy_fixtures() -> list[dict]:
    return [
        as_legacy(make_finding(n, control_id=control, compliance_status="FAILED", workflow_status="NEW",
                               record_state="ACTIVE"), standard, sid)
        for n, (control, standard, sid) in enumerate(CASES)
    ]  # fmt: skip


def test_there_is_a_cis_120_cis_140_and_pci_fixture_wherever_aws_maps_one():
    standards = {s for _, s, _ in CASES}
    assert {"cis-1.2.0", "cis-1.4.0", "cis-3.0.0", "pci-dss-3.2.1"} <= standards
    assert ("IAM.15", "cis-1.2.0", "1.9") in CASES and ("EC2.13", "cis-1.2.0", "4.1") in CASES
    assert len(CASES) >= 20


def test_every_legacy_fixture_lists_as_its_consolidated_control(kernel_factory, tmp_path):
    fixtures = legacy_fixtures()
    with SecurityHubServer(findings=fixtures, rate=None) as server:
        k = kernel_factory(**aws_env(tmp_path, server))
        shown = listing_of(k.ok("%findings --all"))[RUNBOOK_MIME]["shown"]
        by_id = {r["id"]: r for r in shown}
        assert len(by_id) == len(fixtures)
        for (control, standard, sid), f in zip(CASES, fixtures):
            row = by_id[f["Id"]]
            assert row["control_id"] == control, (standard, sid, row)
            assert row["standard_control"] == f"{TITLES[standard]} {sid}", row


def test_control_filter_finds_the_standard_specific_findings_too(kernel_factory, tmp_path):
    fixtures = legacy_fixtures()
    with SecurityHubServer(findings=fixtures + [make_finding(900, control_id="IAM.15", compliance_status="FAILED",
                                                             workflow_status="NEW", record_state="ACTIVE")],
                           rate=None) as server:  # fmt: skip
        k = kernel_factory(**aws_env(tmp_path, server))
        res = k.ok("%findings --control IAM.15")
        shown = listing_of(res)[RUNBOOK_MIME]["shown"]
        assert sorted(r["standard_control"] or "consolidated" for r in shown) == sorted(
            ["consolidated"] + [f"{TITLES[s]} {i}" for c, s, i in CASES if c == "IAM.15"]
        )
        assert "IAM.15 (CIS 1.2.0 1.9)" in res.text()
        # One query by the consolidated id, one by the standards' GeneratorIds.
        generator_queries = [r.body["Filters"].get("GeneratorId") for r in server.requests_for("GetFindings")]
        wanted = {g["Value"] for q in generator_queries if q for g in q}
        assert "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0/rule/1.9" in wanted
        assert "cis-aws-foundations-benchmark/v/1.4.0/1.8" in wanted


@pytest.mark.timeout(180)
@pytest.mark.parametrize("control, standard, sid", [("IAM.15", "cis-1.2.0", "1.9"), ("IAM.15", "cis-1.4.0", "1.8"),
                                                    ("GuardDuty.1", "pci-dss-3.2.1", "PCI.GuardDuty.1")])  # fmt: skip
def test_remediate_plans_for_a_standard_specific_finding(kernel_factory, control, standard, sid):
    with MotoServer() as moto, SecurityHubServer(rate=None) as hub, BedrockServer() as bedrock:
        account = seed_account(moto, hub)
        consolidated = account.findings[control]
        legacy = as_legacy(consolidated, standard, sid)
        # The account sends the standard's finding instead of the consolidated one.
        hub.add_findings([{**consolidated, "RecordState": "ARCHIVED"}, legacy])
        k = kernel_factory(**{**aws_kernel_env(moto, hub, bedrock), "RUNBOOK_MODEL": "catalog"})
        (row,) = listing_of(k.ok(f"%findings --control {control}"))[RUNBOOK_MIME]["shown"]
        assert row["id"] == legacy["Id"] and row["standard_control"] == f"{TITLES[standard]} {sid}"
        plan = last_bundle(k.ok("%remediate 1"))[RUNBOOK_MIME]["plan"]
        assert plan["findings"][0]["id"] == legacy["Id"], plan["findings"]
        k.ok(f"%approve {plan['id']} --yes", timeout=120)
        stored = hub.finding(legacy["Id"])
        assert stored["Workflow"]["Status"] == "RESOLVED" and plan["id"] in stored["Note"]["Text"]
