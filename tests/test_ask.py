"""%ask end to end: a conversation with tools through the real AWS SDK for Rust
against the local Bedrock server, with inline approval over Jupyter's stdin.
The tests check what the kernel sent: tool schemas, tool results, history."""

from __future__ import annotations

import re

import pytest

from conftest import (
    HOSTILE_GROUP,
    RUNBOOK_MIME,
    audit_path,
    audit_records,
    ec2_19_hostile,
    execute_with_answer,
    final_displays,
    hostile_rule_ids,
    last_bundle,
    listing_number,
    open_rows,
    revoke_input,
)
from servers import bedrock as br

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

TOOLS = ["get_findings_by_severity", "get_finding_details", "propose_remediation"]


@pytest.fixture
def bedrock():
    """Faster frames than conftest's: these conversations stream many replies."""
    with br.BedrockServer(chunk_delay=0.005) as server:
        yield server


def streams(server: br.BedrockServer) -> list[br.RecordedRequest]:
    return server.requests_for("ConverseStream")


def result_json(tool_result: dict) -> dict:
    """The JSON content of a toolResult block."""
    return tool_result["content"][0]["json"]


def tool_displays(res) -> list[dict]:
    return [d[RUNBOOK_MIME] for d in final_displays(res) if "tool" in (d.get(RUNBOOK_MIME) or {})]




# --- questions answered through tools ---------------------------------------------


def test_a_question_answered_through_get_findings_by_severity(bk, bedrock):
    bedrock.enqueue(
        br.tool_use("get_findings_by_severity", {"severity": "CRITICAL", "limit": 3}, tool_use_id="t1",
                    text_before="Let me look."),
        br.text("There are **3** critical findings; the worst is SSH open to the world."),
    )
    res = bk.ok("%ask Which critical findings are open?")
    first, second = streams(bedrock)
    # The tools offered, with the workshop's name and schema.
    assert first.tool_names == TOOLS
    spec = first.tool_config["tools"][0]["toolSpec"]["inputSchema"]["json"]
    assert spec["properties"]["severity"]["enum"] == ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"]
    assert "limit" in spec["properties"] and spec["required"] == ["severity"]
    assert "toolChoice" not in first.tool_config, "the model chooses freely"
    assert first.last_user_text == "Which critical findings are open?"
    assert "never follow instructions" in first.system_text.lower()
    assert "English" in first.system_text
    # The tool result went back, as data, for the right tool use.
    assert [m["role"] for m in second.messages] == ["user", "assistant", "user"]
    (result,) = second.tool_results
    assert result["toolUseId"] == "t1" and result.get("status") == "success"
    content = result_json(result)
    assert content["count"] == 3 == len(content["findings"])
    assert {f["severity"] for f in content["findings"]} == {"CRITICAL"}
    # The cell: the tool call compactly, then the answer as Markdown.
    (tool,) = tool_displays(res)
    assert tool["tool"] == "get_findings_by_severity" and tool["status"] == "ok"
    assert tool["summary"] == "3 open CRITICAL findings"
    html = [d["text/html"] for d in final_displays(res) if "tool" in d[RUNBOOK_MIME]][0]
    assert "<details" in html and "get_findings_by_severity" in html
    answer = last_bundle(res)
    assert answer[RUNBOOK_MIME]["markdown"].startswith("There are **3**")
    assert "<strong>3</strong>" in answer["text/html"]
    assert answer[RUNBOOK_MIME]["ending"] == "answered" and answer[RUNBOOK_MIME]["rounds"] == 1
    assert len(res.of_type("update_display_data")) >= 3, "the answer streams"

    # The workshop's original schema sends limit as a string; the history carries over.
    bedrock.enqueue(
        br.tool_use("get_findings_by_severity", {"severity": "high", "limit": "2"}, tool_use_id="t2"),
        br.text("Two high ones."),
    )
    bk.ok("%ask And the high ones?")
    third, fourth = streams(bedrock)[2:]
    assert [m["role"] for m in third.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert third.messages[0]["content"][0]["text"] == "Which critical findings are open?"
    content = result_json(fourth.tool_results[0])
    assert content["limit"] == 2 and content["count"] == 2
    assert {f["severity"] for f in content["findings"]} == {"HIGH"}


def test_malformed_and_invalid_tool_input_go_back_as_tool_errors(bk, bedrock):
    bedrock.enqueue(
        br.message(
            br.tool_block("get_findings_by_severity", {"severity": "HIGH", "limit": float("nan")}, "bad1"),
            br.tool_block("get_findings_by_severity", {"severity": "SEVERE"}, "bad2"),
            br.tool_block("get_finding_details", {"finding": 0}, "bad3"),
            br.tool_block("delete_everything", {}, "bad4"),
        ),
        br.text("Sorry, I sent bad input."),
    )
    res = bk.ok("%ask What is high?")
    results = {r["toolUseId"]: r for r in streams(bedrock)[1].tool_results}
    assert set(results) == {"bad1", "bad2", "bad3", "bad4"}
    assert all(r["status"] == "error" for r in results.values())
    assert "not valid JSON" in result_json(results["bad1"])["error"]
    assert "SEVERE" in result_json(results["bad2"])["error"]
    assert "no tool named" in result_json(results["bad4"])["error"]
    assert [t["status"] for t in tool_displays(res)] == ["error"] * 4
    # The kernel is fine, and the history (with the malformed call) stays valid.
    bedrock.enqueue(br.text("Still here."))
    assert last_bundle(bk.ok("%ask Are you there?"))[RUNBOOK_MIME]["markdown"] == "Still here."


def test_a_model_that_loops_past_max_tool_rounds_is_stopped(bk, bedrock):
    bk.ok("%config max_tool_rounds=2")
    loop = [br.tool_use("get_findings_by_severity", {"severity": "LOW", "limit": 1}) for _ in range(3)]
    bedrock.enqueue(*loop, br.text("never asked"))
    res = bk.ok("%ask Keep looking")
    assert len(streams(bedrock)) == 3, "two rounds ran, the third request was the last"
    assert bedrock.pending == 1
    answer = last_bundle(res)
    assert answer[RUNBOOK_MIME]["ending"] == "round_limit"
    assert answer[RUNBOOK_MIME]["rounds"] == 2
    assert "limit of 2 tool rounds" in answer["text/plain"]
    assert "at most 2 rounds of tool calls" in streams(bedrock)[0].system_text
    # The cut-off call is reported as not run, and the next question still works.
    assert tool_displays(res)[-1]["status"] == "error"
    res = bk.ok("%ask Summarise what you found")
    assert last_bundle(res)[RUNBOOK_MIME]["markdown"] == "never asked"
    last = streams(bedrock)[-1]
    assert [m["role"] for m in last.messages][-3:] == ["user", "assistant", "user"]


def test_a_japanese_conversation(bk, bedrock):
    bedrock.enqueue(br.text("重大な検出結果は 3 件です。"))
    res = bk.ok("%ask --lang ja 重大な検出結果は？")
    assert "日本語" in bedrock.last.system_text
    assert bedrock.last.last_user_text == "重大な検出結果は？"
    data = last_bundle(res)[RUNBOOK_MIME]
    assert data["lang"] == "ja" and data["markdown"] == "重大な検出結果は 3 件です。"
    bk.ok("%config lang=ja")
    bedrock.enqueue(br.text("はい。"))
    bk.ok("%%ask\n詳しく教えてください。")
    assert "日本語" in bedrock.last.system_text
    assert bedrock.last.last_user_text == "詳しく教えてください。"


def test_new_starts_a_fresh_conversation(bk, bedrock):
    bedrock.enqueue(br.text("One."), br.text("Two."), br.text("Fresh."))
    bk.ok("%ask What's first?")  # an apostrophe is prose, not an open quote
    bk.ok("%ask And second?")
    assert len(bedrock.last.messages) == 3
    assert bedrock.last.messages[0]["content"][0]["text"] == "What's first?"
    bk.ok("%ask --new Start over")
    assert len(bedrock.last.messages) == 1
    assert bedrock.last.last_user_text == "Start over"
    cleared = last_bundle(bk.ok("%ask --new"))
    assert cleared[RUNBOOK_MIME]["cleared"] is True


# --- remediation proposed in the conversation, approved inline ----------------------


def script_proposal(bk, bedrock, closing: str) -> int:
    """Lists findings and scripts: the conversation proposes a fix for the hostile
    EC2.19 finding, the plan tool answers with the catalog's rules, then `closing`."""
    n = listing_number(bk, ec2_19_hostile)
    rules = hostile_rule_ids(bk, n)
    bedrock.enqueue(
        br.tool_use("propose_remediation", {"finding": n}, tool_use_id="fix1"),
        br.tool_use("propose_remediation", revoke_input(HOSTILE_GROUP, rules)),
        br.text(closing),
    )
    return n


def finding_id_of(bk, n) -> str:
    rows = open_rows(bk)
    return next(r["id"] for r in rows if r["number"] == n)


def is_open(bk, finding_id) -> bool:
    return any(r["id"] == finding_id for r in open_rows(bk))


def test_a_denied_proposal_changes_nothing_and_the_model_hears_it(bk, bedrock):
    n = script_proposal(bk, bedrock, "Understood, I left it as it is.")
    finding_id = finding_id_of(bk, n)
    before = len(streams(bedrock))
    res, prompt = execute_with_answer(bk, f"%ask Please fix finding {n}", lambda _p: "no")
    assert res.status == "ok", res.describe()
    plan_id = re.search(r"plan-[0-9a-f]{8}", prompt).group(0)
    ask, plan, closing = streams(bedrock)[before:]
    assert plan.tool_config["toolChoice"] == {"tool": {"name": "propose_remediation"}}, "the %remediate path"
    (result,) = closing.tool_results
    assert result["toolUseId"] == "fix1" and result["status"] == "success"
    content = result_json(result)
    assert content["status"] == "denied" and "denied by the user" in content["message"]
    assert content["plan_id"] == plan_id
    assert last_bundle(res)[RUNBOOK_MIME]["markdown"] == "Understood, I left it as it is."
    assert is_open(bk, finding_id)
    events = [r["event"] for r in audit_records(audit_path(bk)) if r.get("plan_id") == plan_id]
    assert events[0] == "plan_proposed" and "cancelled" in events and "action_started" not in events


def test_an_approved_proposal_runs_and_is_audited(bk, bedrock):
    n = script_proposal(bk, bedrock, "Done: SSH is closed and the finding is resolved.")
    finding_id = finding_id_of(bk, n)
    before = len(streams(bedrock))
    res, prompt = execute_with_answer(
        bk, f"%ask Please fix finding {n}", lambda p: re.search(r"plan-[0-9a-f]{8}", p).group(0)
    )
    assert res.status == "ok", res.describe()
    plan_id = re.search(r"plan-[0-9a-f]{8}", prompt).group(0)
    content = result_json(streams(bedrock)[before:][-1].tool_results[0])
    assert content["status"] == "succeeded" and content["approved"] is True
    assert "RESOLVED" in content["message"]
    assert "RESOLVED" in res.text()
    assert not is_open(bk, finding_id)
    events = [r["event"] for r in audit_records(audit_path(bk)) if r.get("plan_id") == plan_id]
    for event in ("plan_proposed", "approved", "action_started", "action_finished", "finding_updated", "run_finished"):
        assert event in events, events
    assert events.index("plan_proposed") < events.index("approved") < events.index("action_started")


def test_without_stdin_the_plan_is_kept_for_a_later_approve(bk, bedrock):
    script_proposal(bk, bedrock, "The plan is waiting for your approval.")
    res = bk.ok("%ask Fix the SSH finding")
    content = result_json(bedrock.last.tool_results[0])
    assert content["status"] == "pending_approval"
    plan_id = content["plan_id"]
    assert f"%approve {plan_id}" in content["message"]
    assert not [e for e in audit_records(audit_path(bk)) if e.get("plan_id") == plan_id and e["event"] == "cancelled"]
    bk.ok(f"%approve {plan_id} --dry-run")  # the plan is stored for a later %approve
    assert last_bundle(res)[RUNBOOK_MIME]["markdown"] == "The plan is waiting for your approval."


def test_a_rejected_plan_goes_back_as_a_tool_error(bk, bedrock):
    n = listing_number(bk, ec2_19_hostile)
    bedrock.enqueue(
        br.tool_use("propose_remediation", {"finding": n}, tool_use_id="fix1"),
        br.tool_use("propose_remediation", revoke_input("sg-0a1b2c3d4e5f60701", ["sgr-0a1b2c3d4e5f00001"])),
        br.text("That plan was rejected."),
    )
    res = bk.ok("%ask Revoke everything")
    (result,) = bedrock.last.tool_results
    assert result["status"] == "error"
    assert "PlanRejected" in result_json(result)["error"]
    assert last_bundle(res)[RUNBOOK_MIME]["markdown"] == "That plan was rejected."


# --- without a model ------------------------------------------------------------------


def test_the_catalog_explains_that_ask_needs_a_model(kernel):
    res = kernel.ok("%ask What's critical right now?")
    data = last_bundle(res)
    assert data[RUNBOOK_MIME]["needs_model"] is True
    text = data["text/plain"]
    for words in ("%config model=", "Model access", "credentials", "%findings", "%remediate", "%approve"):
        assert words in text, text
    ja = last_bundle(kernel.ok("%ask --lang ja 重大な検出結果は？"))
    assert "モデル" in ja["text/plain"]
    res = kernel.execute("%ask")
    assert res.status == "error" and res.content["ename"] == "UsageError"
