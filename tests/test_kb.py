"""%kb and the organisation policy in plans: the real kernel over ZeroMQ, a local
folder of Markdown policies, and Bedrock Retrieve through the real AWS SDK
against the Bedrock test server's agent-runtime endpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import bedrock_env, final_displays, last_bundle
from servers import bedrock as br

RUNBOOK = "application/vnd.runbook+json"
REPO_POLICIES = Path(__file__).parent.parent / "notebooks" / "policies"

PASSWORD_EN = """---
title: Password policy
controls:
  IAM.7:
    MinimumPasswordLength: 64
---
# Password policy

## Minimum length

Every IAM user password has at least 64 characters.

## Rotation

Passwords expire after 90 days.
"""

PASSWORD_JA = """---
controls:
  IAM.7:
    MinimumPasswordLength: 64
---
# パスワードポリシー

## 最小文字数

IAM ユーザーのパスワードは 64 文字以上とする。
"""

NETWORK = """# Network access

## Administrative ports

SSH (22) and RDP (3389) from 0.0.0.0/0 are forbidden; use Session Manager.
"""


@pytest.fixture
def policies(tmp_path) -> Path:
    root = tmp_path / "policies"
    (root / "en").mkdir(parents=True)
    (root / "ja").mkdir()
    (root / "en" / "password.md").write_text(PASSWORD_EN, encoding="utf-8")
    (root / "ja" / "password.md").write_text(PASSWORD_JA, encoding="utf-8")
    (root / "en" / "network.md").write_text(NETWORK, encoding="utf-8")
    return root


def rb(res) -> dict:
    return last_bundle(res)[RUNBOOK]


def first_number(kernel, control: str) -> int:
    res = kernel.ok(f"%findings --control {control}")
    listing = next(d[RUNBOOK] for d in final_displays(res) if "shown" in d.get(RUNBOOK, {}))
    shown = listing["shown"]
    assert shown, f"no {control} finding in the sandbox"
    return shown[0]["number"]


def test_search_finds_english_and_japanese_sections_with_highlights(kernel_factory, policies):
    k = kernel_factory(RUNBOOK_BACKEND="sandbox", RUNBOOK_KB=str(policies))
    res = k.ok("%kb password minimum length --top 2")
    data = rb(res)
    assert data["kb"]["kind"] == "local"
    top = data["passages"][0]
    assert (top["source"], top["heading"]) == ("en/password.md", "Password policy › Minimum length")
    assert len(data["passages"]) <= 2
    html = last_bundle(res)["text/html"]
    assert "<mark>password</mark>" in html
    res = k.ok("%kb パスワードの最小文字数")
    top = rb(res)["passages"][0]
    assert (top["source"], top["heading"]) == ("ja/password.md", "パスワードポリシー › 最小文字数")
    assert "<mark>パスワード</mark>" in last_bundle(res)["text/html"]
    # No quoting needed for prose.
    top = rb(k.ok("%kb What's the rule for SSH?"))["passages"][0]
    assert top["source"] == "en/network.md"
    # Without a query: what the folder holds and the values plans follow.
    o = rb(k.ok("%kb"))
    assert o["documents"] == 3
    assert o["values"]["values"]["IAM.7"]["MinimumPasswordLength"]["value"] == 64


def test_files_changed_on_disk_are_reindexed(kernel_factory, policies):
    k = kernel_factory(RUNBOOK_BACKEND="sandbox", RUNBOOK_KB=str(policies))
    assert rb(k.ok("%kb cloudtrail retention"))["passages"] == []
    (policies / "en" / "logging.md").write_text("# Logging\n\n## Retention\n\nKeep CloudTrail logs 400 days.\n")
    # The folder is compared with the index at most once a second.
    time.sleep(1.2)
    assert rb(k.ok("%kb cloudtrail retention"))["passages"][0]["source"] == "en/logging.md"


def test_password_plan_takes_64_from_policy_and_cites_it(kernel_factory, policies):
    k = kernel_factory(RUNBOOK_BACKEND="sandbox", RUNBOOK_KB=str(policies))
    n = first_number(k, "IAM.15")
    res = k.ok(f"%remediate {n}")
    data = rb(res)
    action = data["plan"]["actions"][0]
    assert action["policy"]["minimum_password_length"] == 64
    cite = data["plan"]["policy_citations"][0]
    assert cite["source"] == "en/password.md"
    assert cite["heading"] == "Password policy › Minimum length"
    assert cite["applied"] is True
    assert data["policy"]["consulted"] is True
    html = last_bundle(res)["text/html"]
    assert "en/password.md" in html and "Minimum length" in html
    # And it runs: the account ends with the policy's length.
    k.ok("%approve last --yes")


def test_a_weaker_policy_is_flagged_not_applied(kernel_factory, tmp_path):
    root = tmp_path / "weak"
    root.mkdir()
    (root / "p.md").write_text(
        "---\ncontrols:\n  IAM.15:\n    MinimumPasswordLength: 10\n---\n# Passwords\n\nAt least 10 characters.\n"
    )
    k = kernel_factory(RUNBOOK_BACKEND="sandbox", RUNBOOK_KB=str(root))
    res = k.ok(f"%remediate {first_number(k, 'IAM.15')}")
    data = rb(res)
    assert data["plan"]["actions"][0]["policy"]["minimum_password_length"] == 14
    cite = data["plan"]["policy_citations"][0]
    assert cite["applied"] is False and "weaker than IAM.15" in cite["note"]
    assert "weaker than IAM.15" in last_bundle(res)["text/html"]


def test_without_a_knowledge_base_the_plan_says_so(kernel_factory):
    k = kernel_factory(RUNBOOK_BACKEND="sandbox")
    res = k.ok(f"%remediate {first_number(k, 'IAM.15')}")
    assert rb(res)["policy"] == {"consulted": False}
    assert "No knowledge base is configured" in last_bundle(res)["text/plain"]
    err = k.execute("%kb password").errors[0]["content"]
    assert err["ename"] == "ConfigError" and "%config kb=" in err["evalue"]


@pytest.mark.parametrize(
    "setting, ename, words",
    [
        ("/no/such/policies", "ConfigError", ["there is no folder /no/such/policies", "KB12345678"]),
        ("not-an-id", "ConfigError", ["there is no folder", "Bedrock Knowledge Base id"]),
    ],
)
def test_bad_settings_get_clear_errors(kernel_factory, setting, ename, words):
    k = kernel_factory(RUNBOOK_BACKEND="sandbox")
    k.ok(f"%config kb={setting}")
    err = k.execute("%kb password").errors[0]["content"]
    assert err["ename"] == ename, err
    for w in words:
        assert w in err["evalue"], err["evalue"]
    # The kernel carries on.
    k.ok("%version")


def test_bad_files_are_reported_and_block_plans(kernel_factory, policies):
    (policies / "en" / "binary.md").write_bytes(b"\xff\xfe\x00A")
    (policies / "en" / "broken.md").write_text("---\ncontrols: [\n---\n# Broken\n\npassword rules\n")
    k = kernel_factory(RUNBOOK_BACKEND="sandbox", RUNBOOK_KB=str(policies))
    res = k.ok("%kb password")
    problems = json.dumps(rb(res)["problems"])
    assert "en/binary.md" in problems and "not UTF-8" in problems
    assert "en/broken.md" in problems and "malformed front matter" in problems
    assert "Not indexed or not trusted" in last_bundle(res)["text/html"]
    err = k.execute(f"%remediate {first_number(k, 'IAM.15')}").errors[0]["content"]
    assert err["ename"] == "PolicyError"
    assert "could not be read completely" in err["evalue"] and "en/broken.md" in err["evalue"]


def test_bad_arguments(kernel_factory, policies):
    k = kernel_factory(RUNBOOK_BACKEND="sandbox", RUNBOOK_KB=str(policies))
    err = k.execute("%kb --top 0 password").errors[0]["content"]
    assert err["ename"] == "UsageError" and "--top" in err["evalue"], err
    err = k.execute("%kb ?!").errors[0]["content"]
    assert err["ename"] == "UsageError" and "no words" in err["evalue"]


def test_hostile_policy_text_is_escaped(kernel_factory, tmp_path):
    root = tmp_path / "hostile"
    root.mkdir()
    (root / "x.md").write_text("# <img src=x onerror=alert(1)>\n\npassword <script>alert(1)</script>\n")
    k = kernel_factory(RUNBOOK_BACKEND="sandbox", RUNBOOK_KB=str(root))
    html = last_bundle(k.ok("%kb password"))["text/html"]
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html


# --- Bedrock: Retrieve and a model that must follow the policy --------------------


@pytest.fixture
def bedrock():
    with br.BedrockServer(chunk_delay=0.0) as server:
        yield server


def test_retrieve_goes_through_the_sdk(kernel_factory, bedrock):
    bedrock.add_knowledge_base("KB12345678", [(PASSWORD_EN, "s3://corp-policies/password.md"), (NETWORK, "s3://corp-policies/network.md")])
    k = kernel_factory(**bedrock_env(bedrock, RUNBOOK_KB="KB12345678", RUNBOOK_MODEL="catalog"))
    data = rb(k.ok("%kb password minimum length --top 1"))
    assert data["kb"] == {"kind": "bedrock", "knowledge_base_id": "KB12345678", "region": "us-east-1"}
    assert len(data["passages"]) == 1
    assert data["passages"][0]["source"].startswith("s3://corp-policies/")
    retrieve = [r for r in bedrock.requests if r.operation == "Retrieve"]
    assert retrieve and retrieve[-1].knowledge_base_id == "KB12345678"
    assert retrieve[-1].body["retrievalQuery"]["text"] == "password minimum length"
    assert retrieve[-1].body["retrievalConfiguration"]["vectorSearchConfiguration"]["numberOfResults"] == 1
    # The front matter in the retrieved chunk drives the catalog's plan.
    plan = rb(k.ok(f"%remediate {first_number(k, 'IAM.15')}"))["plan"]
    assert plan["actions"][0]["policy"]["minimum_password_length"] == 64
    assert plan["policy_citations"][0]["source"] == "s3://corp-policies/password.md"


def test_unknown_knowledge_base_id(kernel_factory, bedrock):
    k = kernel_factory(**bedrock_env(bedrock, RUNBOOK_KB="KB00000000", RUNBOOK_MODEL="catalog"))
    err = k.execute("%kb password").errors[0]["content"]
    assert err["ename"] == "NotFound", err
    assert "KB00000000" in err["evalue"] and "check the id" in err["evalue"]


def test_model_gets_the_passages_and_a_plan_ignoring_the_policy_is_rejected(kernel_factory, bedrock, policies):
    k = kernel_factory(**bedrock_env(bedrock, RUNBOOK_KB=str(policies)))
    n = first_number(k, "IAM.15")
    bedrock.enqueue(br.tool_use("propose_remediation", {
        "actions": [{"action": "set_password_policy", "minimum_password_length": 14}],
        "rationale": "IAM.15 requires 14.",
    }))
    err = k.execute(f"%remediate {n}").errors[0]["content"]
    assert err["ename"] == "PlanRejected", err
    assert "contradicts the organisation policy" in err["evalue"] and "64" in err["evalue"]
    prompt = bedrock.last.last_user_text
    assert "<organisation_policy>" in prompt and "en/password.md" in prompt
    # Following it is accepted and cited.
    bedrock.enqueue(br.tool_use("propose_remediation", {
        "actions": [{"action": "set_password_policy", "minimum_password_length": 64}],
        "rationale": "Policy: 64.",
    }))
    plan = rb(k.ok(f"%remediate {n}"))["plan"]
    assert plan["policy_citations"][0]["applied"] is True


@pytest.mark.skipif(not REPO_POLICIES.is_dir(), reason="notebooks/policies not present")
def test_the_shipped_policies_set_64(kernel_factory):
    k = kernel_factory(RUNBOOK_BACKEND="sandbox", RUNBOOK_KB=str(REPO_POLICIES))
    o = rb(k.ok("%kb"))
    assert not o["problems"], o["problems"]
    assert o["values"]["values"]["IAM.7"]["MinimumPasswordLength"]["value"] == 64
    plan = rb(k.ok(f"%remediate {first_number(k, 'IAM.15')}"))["plan"]
    assert plan["actions"][0]["policy"]["minimum_password_length"] == 64
