"""Run All stops at the first error: JupyterLab sends every cell's execute_request
at once with stop_on_error=True, and the messaging spec (and ipykernel) abort the
requests queued behind a failed one: each gets {"status": "aborted"}, runs nothing,
publishes no input and takes no execution count."""

from __future__ import annotations

import time
from queue import Empty

from conftest import RUNBOOK_MIME, TIMEOUT, check_message, final_displays

RUN_ALL = ["%findings --control EC2.19", "%finding 999", "%version", "%remediate 1"]


def send_all(kernel, cells: list[str], stop_on_error: bool = True) -> list[str]:
    """Queues every cell at once, as JupyterLab's Run All does."""
    return [kernel.kc.execute(code, allow_stdin=False, stop_on_error=stop_on_error) for code in cells]


def shell_replies(kernel, msg_ids: list[str], timeout: float = TIMEOUT) -> list[dict]:
    """The execute_reply of each request, in the order they arrived.

    Read straight from the shell channel: jupyter_kernel_test's schema knows only
    the old spelling "abort", while the spec and ipykernel send "aborted"."""
    wanted = set(msg_ids)
    replies: list[dict] = []
    deadline = time.monotonic() + timeout
    while wanted:
        left = deadline - time.monotonic()
        assert left > 0, f"no reply to {wanted} within {timeout}s" + kernel.stderr_tail()
        try:
            msg = kernel.kc.get_shell_msg(timeout=min(left, 0.5))
        except Empty:
            continue
        parent = msg["parent_header"].get("msg_id")
        if parent in wanted:
            wanted.discard(parent)
            assert msg["msg_type"] == "execute_reply", msg
            replies.append(msg)
    return replies


def by_parent(replies: list[dict]) -> dict[str, dict]:
    return {r["parent_header"]["msg_id"]: r for r in replies}


def ran_nothing(kernel, msg_id: str) -> None:
    """An aborted request's iopub: busy, idle, and nothing in between."""
    iopub = kernel.wait_idle(msg_id)
    kinds = [m["msg_type"] for m in iopub]
    assert kinds == ["status", "status"], kinds


def test_queued_cells_after_an_error_are_aborted_and_run_nothing(kernel):
    ids = send_all(kernel, RUN_ALL)
    replies = shell_replies(kernel, ids)
    assert [r["parent_header"]["msg_id"] for r in replies] == ids, "replies come in request order"
    statuses = [r["content"]["status"] for r in replies]
    assert statuses == ["ok", "error", "aborted", "aborted"], [r["content"] for r in replies]
    assert replies[1]["content"]["ename"] == "NotFound" or "999" in replies[1]["content"]["evalue"]
    # ipykernel's shape: no execution count, nothing else.
    for aborted in replies[2:]:
        assert aborted["content"] == {"status": "aborted"}, aborted["content"]
    for r in replies[:2]:
        check_message(r)
    assert [r["content"]["execution_count"] for r in replies[:2]] == [1, 2]
    # Nothing ran: no input published, no output, no plan made.
    for msg_id in ids[2:]:
        ran_nothing(kernel, msg_id)
    assert any(m["msg_type"] == "error" for m in kernel.wait_idle(ids[1]))
    # A request sent after the queue drained runs normally and takes the next count.
    res = kernel.ok("%version")
    assert res.content["execution_count"] == 3
    assert [m["content"]["execution_count"] for m in res.of_type("execute_input")] == [3]
    history = kernel.history(hist_access_type="tail", n=10)["history"]
    assert [entry[2] for entry in history] == ["%findings --control EC2.19", "%finding 999", "%version"], history
    res = kernel.execute("%approve last")
    assert res.status == "error", "the aborted %remediate made no plan\n" + res.describe()


def test_without_stop_on_error_every_cell_runs(kernel):
    ids = send_all(kernel, RUN_ALL, stop_on_error=False)
    replies = by_parent(shell_replies(kernel, ids))
    assert [replies[i]["content"]["status"] for i in ids] == ["ok", "error", "ok", "ok"]
    assert [replies[i]["content"]["execution_count"] for i in ids] == [1, 2, 3, 4]
    res_iopub = kernel.wait_idle(ids[3])
    bundles = [m["content"]["data"] for m in res_iopub if m["msg_type"] in ("display_data", "update_display_data")]
    assert any("plan" in (b.get(RUNBOOK_MIME) or {}) or "executable" in (b.get(RUNBOOK_MIME) or {}) for b in bundles), (
        "the %remediate after the error ran"
    )


def test_a_silent_failure_aborts_nothing(kernel):
    """ipykernel aborts only after a failure the user sees."""
    ids = [
        kernel.kc.execute("%finding 999", silent=True, stop_on_error=True),
        kernel.kc.execute("%version", stop_on_error=True),
    ]
    replies = by_parent(shell_replies(kernel, ids))
    assert replies[ids[0]]["content"]["status"] == "error"
    assert replies[ids[1]]["content"]["status"] == "ok"


def test_each_run_all_aborts_only_its_own_queue(kernel):
    """After an aborted run, the next Run All starts afresh and stops at its own error."""
    first = shell_replies(kernel, send_all(kernel, ["%finding 999", "%version"]))
    assert [r["content"]["status"] for r in first] == ["error", "aborted"]
    second = shell_replies(kernel, send_all(kernel, ["%version", "%config nonsense=1", "%version", "%version"]))
    assert [r["content"]["status"] for r in second] == ["ok", "error", "aborted", "aborted"]
    # Other requests queued behind the error are still answered.
    ids = send_all(kernel, ["%finding 999"])
    info_id = kernel.kc.kernel_info()
    ids += send_all(kernel, ["%version"])
    replies = {}
    deadline = time.monotonic() + TIMEOUT
    while len(replies) < 3 and time.monotonic() < deadline:
        try:
            msg = kernel.kc.get_shell_msg(timeout=0.5)
        except Empty:
            continue
        replies[msg["parent_header"]["msg_id"]] = msg
    assert replies[info_id]["msg_type"] == "kernel_info_reply" and replies[info_id]["content"]["status"] == "ok"
    assert [replies[i]["content"]["status"] for i in ids] == ["error", "aborted"]
    assert final_displays(kernel.ok("%version")), "and the kernel carries on"
