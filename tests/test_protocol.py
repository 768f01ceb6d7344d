"""End-to-end protocol tests: the real kernel over ZeroMQ, driven by jupyter_client.

What the conformance suite (test_conformance.py) does not cover: the magics and their
output convention, settings and their sources, error kinds, execution counting,
silent runs, history filters, comms, interrupts, shutdown, message signing, the
heartbeat, hostile input, and a notebook run through nbclient.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
import zmq
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.session import Session
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import (
    ERROR_NAMES,
    KERNEL_NAME,
    MAGICS,
    RUNBOOK_MIME,
    SETTINGS_KEYS,
    ExecResult,
    Kernel,
    kernel_env,
)

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- helpers


def assert_error(res: ExecResult, ename: str, *must_mention: str) -> str:
    """A failed cell: one `error` on iopub, the reply says the same; returns evalue."""
    assert res.status == "error", res.describe()
    assert len(res.errors) == 1, f"expected exactly one error message\n{res.describe()}"
    err = res.errors[0]["content"]
    assert err["ename"] == ename, res.describe()
    assert res.content["ename"] == err["ename"], res.describe()
    assert res.content["evalue"] == err["evalue"], res.describe()
    assert isinstance(err["traceback"], list) and all(isinstance(t, str) for t in err["traceback"])
    assert err["evalue"].strip(), "empty evalue"
    for word in must_mention:
        assert word.lower() in err["evalue"].lower(), f"{word!r} not in evalue {err['evalue']!r}"
    return err["evalue"]


def assert_bundle(data: dict) -> None:
    """The output convention: text/plain + a rich form + the result as JSON."""
    assert isinstance(data.get("text/plain"), str) and data["text/plain"].strip(), data
    rich = [m for m in ("text/html", "text/markdown") if isinstance(data.get(m), str) and data[m].strip()]
    assert rich, f"no text/html or text/markdown in {sorted(data)}"
    assert RUNBOOK_MIME in data, f"no {RUNBOOK_MIME} in {sorted(data)}"
    # JSON mime types travel as JSON values, not as strings holding JSON.
    assert isinstance(data[RUNBOOK_MIME], (dict, list)), type(data[RUNBOOK_MIME])


def assert_no_raw_script(res: ExecResult) -> None:
    for m in res.iopub:
        if m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
            html = m["content"]["data"].get("text/html", "")
            assert "<script" not in html.lower(), f"unescaped <script> in text/html: {html[:500]!r}"


def setting_lines(text: str, key: str) -> list[str]:
    return [ln for ln in text.splitlines() if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", ln)]


def assert_setting(text: str, key: str, value: str, source: str) -> None:
    """Some line of a %config listing shows `key`, its `value` and its `source`."""
    lines = setting_lines(text, key)
    word = lambda w: rf"(?<![\w-]){re.escape(w)}(?![\w-])"  # noqa: E731
    good = [ln for ln in lines if re.search(word(value), ln) and re.search(word(source), ln)]
    assert good, f"no line shows {key}={value} ({source}) in:\n{text}"


def apply_completion(code: str, reply: dict, match: str) -> str:
    assert reply["status"] == "ok", reply
    assert match in reply["matches"], f"{match!r} not in {reply['matches']!r}"
    return code[: reply["cursor_start"]] + match + code[reply["cursor_end"] :]


def sent_at(msg: dict) -> float:
    """The kernel's send time (header date) in epoch seconds.  jupyter_client turns
    dates with up to 6 fractional digits into datetimes; parse any others here."""
    date = msg["header"]["date"]
    if isinstance(date, datetime):
        return date.timestamp()
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$", date)
    assert m, f"header date is not ISO 8601: {date!r}"
    frac = (m.group(2) or ".0")[:7]
    zone = m.group(3) or "+00:00"
    return datetime.fromisoformat(m.group(1) + frac + ("+00:00" if zone == "Z" else zone)).timestamp()


def cargo_version() -> str:
    text = (REPO / "Cargo.toml").read_text()
    m = re.search(r'^\s*version\s*=\s*"([^"]+)"', text, re.M)
    assert m, "no version in Cargo.toml"
    return m.group(1)


# ---------------------------------------------------------------- kernelspec + kernel_info


def test_installed_kernelspec():
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert spec.argv[1:] == ["run", "{connection_file}"]
    assert os.access(spec.argv[0], os.X_OK), spec.argv[0]
    if os.environ.get("RUNBOOK_KERNEL_BIN"):
        assert os.path.samefile(spec.argv[0], os.environ["RUNBOOK_KERNEL_BIN"])
    assert spec.display_name == "Security Runbook (Rust)"
    assert spec.language == "rust"
    assert spec.interrupt_mode == "message"


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_kernel_info(kernel: Kernel, channel):
    reply = kernel.request(channel, "kernel_info_request")
    c = reply["content"]
    assert reply["msg_type"] == "kernel_info_reply"
    assert c["status"] == "ok"
    major, minor = (int(x) for x in c["protocol_version"].split(".")[:2])
    assert (major, minor) >= (5, 3), c["protocol_version"]
    assert c["implementation"] == "runbook-kernel"
    if "implementation_version" in c:
        assert c["implementation_version"] == cargo_version()
    li = c["language_info"]
    assert li["name"] == "rust"
    assert li["file_extension"] == ".rs"
    assert li["pygments_lexer"] == "rust"
    assert li["codemirror_mode"] == "rust"
    assert "sandbox" in c["banner"].lower(), c["banner"]
    assert c["help_links"], "help_links is empty"
    for link in c["help_links"]:
        assert link["text"] and link["url"], link
    # busy/idle around the request, published on iopub with this parent
    states = [m["content"]["execution_state"] for m in kernel.wait_idle(reply["parent_header"]["msg_id"])]
    assert states == ["busy", "idle"], states


@pytest.mark.parametrize(
    "msg_type, content",
    [
        ("kernel_info_request", {}),
        ("complete_request", {"code": "%con", "cursor_pos": 4}),
        ("inspect_request", {"code": "%config", "cursor_pos": 3, "detail_level": 0}),
        ("is_complete_request", {"code": "%version"}),
        ("history_request", {"output": False, "raw": True, "hist_access_type": "tail", "n": 5}),
        ("comm_info_request", {}),
    ],
)
def test_busy_idle_around_shell_requests(kernel: Kernel, msg_type, content):
    msg_id = kernel.send("shell", msg_type, content)
    reply = kernel.reply(msg_id)
    assert reply["msg_type"] == msg_type.replace("_request", "_reply")
    msgs = kernel.wait_idle(msg_id)
    assert [m["msg_type"] for m in msgs] == ["status", "status"], [m["msg_type"] for m in msgs]
    assert [m["content"]["execution_state"] for m in msgs] == ["busy", "idle"]


# ---------------------------------------------------------------- execution basics


def test_execute_input_and_execution_count(kernel: Kernel):
    first = kernel.ok("%version")
    n = first.content["execution_count"]
    assert isinstance(n, int) and n >= 1
    ei = first.of_type("execute_input")
    assert len(ei) == 1
    assert ei[0]["content"]["code"] == "%version"
    assert ei[0]["content"]["execution_count"] == n
    assert first.iopub[0]["content"].get("execution_state") == "busy"
    assert first.iopub[-1]["content"].get("execution_state") == "idle"

    not_stored = kernel.ok("%version", store_history=False)
    assert not_stored.content["execution_count"] == n, "store_history=False must not count"

    second = kernel.ok("%version")
    assert second.content["execution_count"] == n + 1
    # a failed stored cell still counts, like any stored execution
    failed = kernel.execute("%nosuchmagic")
    assert failed.status == "error"
    assert kernel.ok("%version").content["execution_count"] == n + 3


def test_silent_ok_publishes_only_status(kernel: Kernel):
    before = kernel.ok("%version").content["execution_count"]
    res = kernel.execute("%version", silent=True)
    assert res.status == "ok", res.describe()
    assert [m["msg_type"] for m in res.iopub] == ["status", "status"], res.describe()
    assert kernel.ok("%version").content["execution_count"] == before + 1


def test_silent_error_publishes_only_status(kernel: Kernel):
    res = kernel.execute("%nosuchmagic", silent=True)
    assert res.status == "error", res.describe()
    assert res.content["ename"] == "UnknownMagic"
    assert [m["msg_type"] for m in res.iopub] == ["status", "status"], res.describe()


def test_empty_and_comment_only_cells(kernel: Kernel):
    for code in ("", "\n\n", "# only a comment\n\n# another"):
        res = kernel.ok(code)
        assert res.outputs == [], res.describe()


def test_several_line_magics_in_one_cell(kernel: Kernel):
    res = kernel.ok("%version\n\n# a comment\n%config lang\n")
    assert len(res.displays) == 2, res.describe()
    for d in res.displays:
        assert_bundle(d["content"]["data"])


# ---------------------------------------------------------------- magics


@pytest.mark.parametrize("code", ["%help", "%lsmagic"])
def test_help_lists_every_magic_with_summary(kernel: Kernel, code):
    data = kernel.ok(code).single_display()
    assert_bundle(data)
    text = data["text/plain"]
    as_json = json.dumps(data[RUNBOOK_MIME])
    for magic in MAGICS:
        lines = [ln for ln in text.splitlines() if re.search(rf"{magic}(?![\w-])", ln)]
        assert lines, f"{magic} missing from {code} output:\n{text}"
        # a summary follows the name on its line
        assert any(len(ln.split(magic, 1)[1].strip(" -:|\t")) >= 5 for ln in lines), lines
        assert magic.lstrip("%") in as_json, f"{magic} missing from {RUNBOOK_MIME}"


@pytest.mark.parametrize("magic", MAGICS)
def test_every_magic_accepts_help_flag(kernel: Kernel, magic):
    res = kernel.ok(f"{magic} --help")
    data = res.single_display()
    assert_bundle(data)
    assert "usage" in data["text/plain"].lower(), data["text/plain"]
    assert magic in data["text/plain"], data["text/plain"]


def test_version_shows_the_crate_version(kernel: Kernel):
    data = kernel.ok("%version").single_display()
    assert_bundle(data)
    assert cargo_version() in data["text/plain"]
    assert cargo_version() in json.dumps(data[RUNBOOK_MIME])


def test_config_shows_every_setting_with_its_source(kernel_factory, tmp_path):
    k = kernel_factory()
    data = k.ok("%config").single_display()
    assert_bundle(data)
    text = data["text/plain"]
    as_json = json.dumps(data[RUNBOOK_MIME])
    for key in SETTINGS_KEYS:
        assert setting_lines(text, key), f"{key} missing from %config:\n{text}"
        assert key in as_json, f"{key} missing from {RUNBOOK_MIME}"
    assert_setting(text, "backend", "sandbox", "env")
    assert_setting(text, "lang", "en", "default")
    (approval,) = setting_lines(text, "approval")
    assert re.search(r"\b(interactive|allow-yes)\b", approval) and "default" in approval, approval


def test_config_set_then_show(kernel: Kernel):
    kernel.ok("%config lang=ja region=eu-west-1")
    text = kernel.ok("%config").single_display()["text/plain"]
    assert_setting(text, "lang", "ja", "session")
    assert_setting(text, "region", "eu-west-1", "session")
    assert_setting(text, "backend", "sandbox", "env")

    one = kernel.ok("%config lang").single_display()
    assert_bundle(one)
    assert_setting(one["text/plain"], "lang", "ja", "session")
    for other in ("max_tool_rounds", "audit_log", "approval"):
        assert other not in one["text/plain"], f"%config lang shows more than lang:\n{one['text/plain']}"


def test_config_set_emits_one_bundle(kernel: Kernel):
    assert_bundle(kernel.ok("%config lang=ja").single_display())


def test_config_session_overrides_env(kernel_factory):
    k = kernel_factory(RUNBOOK_REGION="ap-northeast-1", RUNBOOK_LANG="ja", RUNBOOK_MAX_TOOL_ROUNDS="7")
    text = k.ok("%config").single_display()["text/plain"]
    assert_setting(text, "region", "ap-northeast-1", "env")
    assert_setting(text, "lang", "ja", "env")
    assert_setting(text, "max_tool_rounds", "7", "env")
    audit = str(Path(k.stderr_path).parent / "audit.jsonl")
    assert audit in text, f"audit_log from RUNBOOK_AUDIT_LOG not shown:\n{text}"
    assert_setting(text, "audit_log", audit, "env")

    k.ok("%config region=us-east-2")
    assert_setting(k.ok("%config region").text(), "region", "us-east-2", "session")


@pytest.mark.parametrize("value", ["1", "100"])
def test_config_max_tool_rounds_bounds_accepted(kernel: Kernel, value):
    kernel.ok(f"%config max_tool_rounds={value}")
    assert_setting(kernel.ok("%config max_tool_rounds").text(), "max_tool_rounds", value, "session")


@pytest.mark.parametrize(
    "code, mentions",
    [
        ("%config backend=bogus", ["bogus", "sandbox", "aws", "auto"]),
        ("%config lang=fr", ["fr", "en", "ja"]),
        ("%config approval=maybe", ["maybe", "interactive", "allow-yes"]),
        ("%config max_tool_rounds=0", ["0", "100"]),
        ("%config max_tool_rounds=101", ["101", "100"]),
        ("%config max_tool_rounds=many", ["many"]),
        ("%config nosuchkey=1", ["nosuchkey", "backend", "max_tool_rounds"]),
        ("%config nosuchkey", ["nosuchkey", "backend"]),
        ("%config --bogus", ["--bogus"]),
        ("%version --bogus", ["--bogus"]),
        ("%help --bogus", ["--bogus"]),
        ("%lsmagic --bogus", ["--bogus"]),
        ("%sleep --bogus", ["--bogus"]),
        ("%sleep abc", ["abc"]),
        ("%sleep 3601", ["3601", "3600"]),
        ("%sleep -1", ["-1"]),
        ("%sleep", []),
        ("%version extra-argument", ["extra-argument"]),
    ],
)
def test_usage_errors(kernel: Kernel, code, mentions):
    assert_error(kernel.execute(code), "UsageError", *mentions)
    assert kernel.alive()


def test_rejected_setting_leaves_the_old_value(kernel: Kernel):
    kernel.ok("%config lang=ja")
    assert_error(kernel.execute("%config lang=fr"), "UsageError")
    assert_error(kernel.execute("%config backend=bogus"), "UsageError")
    text = kernel.ok("%config").single_display()["text/plain"]
    assert_setting(text, "lang", "ja", "session")
    assert_setting(text, "backend", "sandbox", "env")


@pytest.mark.parametrize(
    "code, suggestion",
    [("%confg", "%config"), ("%slep 1", "%sleep"), ("%versoin", "%version"), ("%lsmagc", "%lsmagic")],
)
def test_unknown_magic_suggests_nearest(kernel: Kernel, code, suggestion):
    evalue = assert_error(kernel.execute(code), "UnknownMagic", suggestion)
    for magic in MAGICS:
        assert magic in evalue, f"known magic {magic} not listed in {evalue!r}"


def test_unknown_cell_magic(kernel: Kernel):
    assert_error(kernel.execute("%%nosuchmagic\nbody line"), "UnknownMagic", "nosuchmagic")


@pytest.mark.parametrize("code", ["%version\nlet x = 1;", "let x = 1;\n%config", "// note\n%help"])
def test_magics_and_rust_do_not_mix(kernel: Kernel, code):
    evalue = assert_error(kernel.execute(code), "UsageError", "mixes magics and Rust")
    assert "separate cells" in kernel.execute(code).errors[0]["content"]["traceback"][-1]
    assert "line" in evalue


# ---------------------------------------------------------------- %sleep, display updates, interrupts


@pytest.mark.slow
def test_sleep_updates_one_display_every_second(kernel: Kernel):
    res = kernel.ok("%sleep 3")
    assert 2.8 <= res.elapsed < 8, res.elapsed
    assert len(res.displays) == 1, res.describe()
    first = res.displays[0]["content"]
    display_id = first.get("transient", {}).get("display_id")
    assert display_id, f"display_data without transient.display_id: {first}"
    updates = res.of_type("update_display_data")
    assert len(updates) >= 2, f"expected an update per second\n{res.describe()}"
    for u in updates:
        assert u["content"]["transient"]["display_id"] == display_id
        assert "text/plain" in u["content"]["data"]
    assert_bundle(updates[-1]["content"]["data"])
    # the updates are spread over the sleep (about one a second), not sent at the end:
    # look at the kernel's own send times (header dates)
    shown = sent_at(res.displays[0])
    offsets = [sent_at(u) - shown for u in updates]
    assert any(0.5 <= off <= 2.5 for off in offsets), f"no update during the sleep: {offsets}"
    assert max(offsets) >= 1.8, offsets


def start_long_sleep(kernel: Kernel, seconds: int = 30) -> str:
    msg_id = kernel.start_execute(f"%sleep {seconds}")
    kernel.wait_iopub(msg_id, lambda m: m["msg_type"] == "display_data")
    return msg_id


def assert_interrupted(kernel: Kernel, msg_id: str, t_interrupt: float, code: str) -> None:
    res = kernel.finish_execute(code, msg_id, timeout=10)
    idle_at = kernel.iopub_times(msg_id)[-1]
    assert idle_at - t_interrupt < 1.0, f"idle {idle_at - t_interrupt:.2f}s after the interrupt"
    assert_error(res, "Interrupted")


@pytest.mark.slow
def test_interrupt_by_message_during_sleep(kernel: Kernel):
    kernel.ok("%config lang=ja")
    pid = kernel.pid
    msg_id = start_long_sleep(kernel)
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()  # interrupt_mode "message": interrupt_request on control
    assert_interrupted(kernel, msg_id, t0, "%sleep 30")
    assert kernel.pid == pid and kernel.alive()
    assert_setting(kernel.ok("%config lang").text(), "lang", "ja", "session")
    kernel.ok("%version")


@pytest.mark.slow
def test_interrupt_request_gets_a_reply_on_control(kernel: Kernel):
    msg_id = start_long_sleep(kernel)
    t0 = time.monotonic()
    reply = kernel.request("control", "interrupt_request", {}, timeout=5)
    assert reply["msg_type"] == "interrupt_reply"
    assert reply["content"]["status"] == "ok"
    assert_interrupted(kernel, msg_id, t0, "%sleep 30")


@pytest.mark.slow
def test_sigint_interrupts_like_the_message(kernel: Kernel):
    kernel.ok("%config lang=ja")
    pid = kernel.pid
    msg_id = start_long_sleep(kernel, 3600)  # the maximum is accepted
    t0 = time.monotonic()
    kernel.km.signal_kernel(signal.SIGINT)
    assert_interrupted(kernel, msg_id, t0, "%sleep 3600")
    assert kernel.pid == pid and kernel.alive()
    assert_setting(kernel.ok("%config lang").text(), "lang", "ja", "session")


@pytest.mark.slow
def test_interrupt_while_idle_does_not_cancel_the_next_cell(kernel: Kernel):
    kernel.km.interrupt_kernel()
    kernel.km.signal_kernel(signal.SIGINT)
    time.sleep(0.5)
    assert kernel.alive()
    res = kernel.ok("%sleep 1")
    assert res.elapsed >= 0.9


@pytest.mark.slow
def test_control_channel_answers_while_a_cell_runs(kernel: Kernel):
    msg_id = start_long_sleep(kernel, 10)
    t0 = time.monotonic()
    reply = kernel.request("control", "kernel_info_request", timeout=5)
    assert reply["content"]["status"] == "ok"
    assert time.monotonic() - t0 < 1.0
    kernel.km.interrupt_kernel()
    kernel.finish_execute("%sleep 10", msg_id, timeout=10)


# ---------------------------------------------------------------- completion / inspection / is_complete


@pytest.mark.parametrize(
    "code, match, expected",
    [
        ("%con", "%config", "%config"),
        ("%sleep --h", "--help", "%sleep --help"),
        ("%config ba", "backend=", "%config backend="),
        ("%config backend=s", "backend=sandbox", "%config backend=sandbox"),
        ("%config lang=j", "lang=ja", "%config lang=ja"),
        ("# 日本語のコメント\n%con", "%config", "# 日本語のコメント\n%config"),
        ("# 日本語 😀\n%config ba", "backend=", "# 日本語 😀\n%config backend="),
    ],
)
def test_complete(kernel: Kernel, code, match, expected):
    reply = kernel.complete(code)
    assert reply["cursor_end"] == len(code), f"cursor_end must count code points: {reply}"
    assert apply_completion(code, reply, match) == expected


def test_complete_cursor_in_the_middle(kernel: Kernel):
    code = "# 日本語\n%con\n%version"
    pos = code.index("%con") + 4
    reply = kernel.complete(code, pos)
    assert apply_completion(code, reply, "%config") == "# 日本語\n%config\n%version"


def test_complete_offers_nothing_foreign(kernel: Kernel):
    reply = kernel.complete("%zzz")
    assert reply["status"] == "ok" and reply["matches"] == []


def test_inspect_magic_help(kernel: Kernel):
    for code, pos in (("%config", 3), ("%sleep 5", 2), ("# 日本語\n%version", len("# 日本語\n%ver"))):
        reply = kernel.inspect(code, pos)
        assert reply["status"] == "ok", reply
        assert reply["found"] is True, (code, reply)
        assert "usage" in reply["data"]["text/plain"].lower(), reply["data"]


def test_inspect_unknown_word(kernel: Kernel):
    for code in ("%nosuchmagic", "hello"):
        reply = kernel.inspect(code)
        assert reply["status"] == "ok", reply
        assert reply["found"] is False, (code, reply)


@pytest.mark.parametrize(
    "code, status",
    [
        ("%version", "complete"),
        ("%config lang=ja region=eu-west-1", "complete"),
        ('%config region="eu-west-1"', "complete"),
        ('%config region="eu', "incomplete"),
        ("%config region='eu", "incomplete"),
        ("%config lang=ja \\", "incomplete"),
        ("%version\n%config lang=ja \\", "incomplete"),
        # Rust is compiled as sent: rustc, not is_complete, says what is wrong.
        ("let x = 1;", "complete"),
        ("x = 1", "complete"),
        ("%version\nlet x = 1;", "invalid"),
    ],
)
def test_is_complete(kernel: Kernel, code, status):
    assert kernel.is_complete(code)["status"] == status


# ---------------------------------------------------------------- history


def test_history_tail_and_range(kernel: Kernel):
    cells = ["%version", "%config lang=ja", "%config lang", "%version"]
    counts = [kernel.ok(c).content["execution_count"] for c in cells]
    kernel.ok("%help", store_history=False)
    kernel.ok("%lsmagic", silent=True)

    tail = kernel.history(hist_access_type="tail", n=10)
    assert tail["status"] == "ok"
    assert [h[2] for h in tail["history"]] == cells, tail["history"]
    assert [h[1] for h in tail["history"]] == counts, "history line numbers are the execution counts"

    last2 = kernel.history(hist_access_type="tail", n=2)["history"]
    assert [h[2] for h in last2] == cells[-2:]

    rng = kernel.history(hist_access_type="range", session=0, start=counts[1], stop=counts[3])["history"]
    assert [h[2] for h in rng] == cells[1:3], rng
    assert [h[1] for h in rng] == counts[1:3]


def test_history_search(kernel: Kernel):
    cells = ["%version", "%config lang=ja", "%config lang", "%version"]
    for c in cells:
        kernel.ok(c)
    kernel.ok("%help", store_history=False)

    # every optional field given, as some frontends send them
    def search(pattern, unique=False, n=100):
        return [h[2] for h in kernel.history(hist_access_type="search", pattern=pattern, unique=unique, n=n)["history"]]

    assert search("%config*") == ["%config lang=ja", "%config lang"]
    assert search("*lang=*") == ["%config lang=ja"]
    assert search("%help*") == [], "store_history=False cells must not be in history"
    assert search("%vers*") == ["%version", "%version"]
    assert search("%vers*", unique=True) == ["%version"]
    assert search("*", n=2) == cells[-2:]


def test_history_search_without_optional_fields(kernel: Kernel):
    """jupyter_client (and so JupyterLab's console) leaves out `unique` and `n`
    unless asked for; the request must still be answered."""
    kernel.ok("%version")
    kernel.ok("%config lang")
    found = kernel.history(hist_access_type="search", pattern="%conf*")["history"]
    assert [h[2] for h in found] == ["%config lang"], found
    found = kernel.history(hist_access_type="search", pattern="*", unique=True)["history"]
    assert [h[2] for h in found] == ["%version", "%config lang"], found


def test_history_with_output(kernel: Kernel):
    kernel.ok("%version")
    hist = kernel.history(hist_access_type="tail", n=1, output=True)["history"]
    assert len(hist) == 1
    session, line, pair = hist[0]
    inp, out = pair
    assert inp == "%version"
    assert out is None or isinstance(out, str), out


# ---------------------------------------------------------------- comms


def test_comm_info_is_empty(kernel: Kernel):
    reply = kernel.request("shell", "comm_info_request", {})
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["comms"] == {}


def test_comm_open_unknown_target_is_closed(kernel: Kernel):
    comm_id = "c0ffee00-test-comm"
    kernel.send("shell", "comm_open", {"comm_id": comm_id, "target_name": "no.such.target", "data": {}})
    kernel.wait_any_iopub(
        lambda m: m["msg_type"] == "comm_close" and m["content"].get("comm_id") == comm_id, timeout=5
    )
    assert kernel.request("shell", "comm_info_request", {})["content"]["comms"] == {}
    kernel.ok("%version")


# ---------------------------------------------------------------- shutdown


@pytest.mark.parametrize("restart", [False, True])
def test_shutdown_request_exits_cleanly(kernel: Kernel, restart):
    kernel.ok("%version")
    msg_id = kernel.kc.shutdown(restart=restart)
    reply = kernel.reply(msg_id, "control", timeout=10)
    assert reply["msg_type"] == "shutdown_reply"
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["restart"] is restart
    assert kernel.wait_exit(10) == 0, kernel.stderr_tail()


@pytest.mark.slow
def test_shutdown_while_a_cell_runs(kernel: Kernel):
    start_long_sleep(kernel)
    msg_id = kernel.kc.shutdown()
    reply = kernel.reply(msg_id, "control", timeout=5)
    assert reply["content"]["status"] == "ok"
    assert kernel.wait_exit(5) == 0, kernel.stderr_tail()


# ---------------------------------------------------------------- signing and heartbeat


def raw_shell_socket(kernel: Kernel) -> zmq.Socket:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"tcp://{kernel.km.ip}:{kernel.km.shell_port}")
    return sock


def test_wrong_key_gets_no_reply(kernel: Kernel):
    sock = raw_shell_socket(kernel)
    try:
        bad = Session(key=b"not-the-connection-key", signature_scheme="hmac-sha256")
        msg = bad.msg("kernel_info_request", {})
        bad.send(sock, msg)
        assert sock.poll(1000) == 0, "kernel answered a message signed with the wrong key"
        assert kernel.quiet_iopub(msg["header"]["msg_id"], 0.3) == [], "kernel went busy for it"

        # unsigned message
        unsigned = Session(key=b"", signature_scheme="hmac-sha256")
        msg2 = unsigned.msg("kernel_info_request", {})
        unsigned.send(sock, msg2)
        assert sock.poll(1000) == 0, "kernel answered an unsigned message"

        # correctly signed, then the content altered: the digest covers every frame
        good = Session(key=kernel.km.session.key, signature_scheme="hmac-sha256")
        msg3 = good.msg("execute_request", {"code": "%version", "silent": False, "store_history": True,
                                             "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
        frames = good.serialize(msg3)
        frames[-1] = json.dumps({"code": "%config lang=ja", "silent": False, "store_history": True,
                                 "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}).encode()
        sock.send_multipart(frames)
        assert sock.poll(1000) == 0, "kernel answered a tampered message"

        # the same socket with the right key works
        ok = good.msg("kernel_info_request", {})
        good.send(sock, ok)
        assert sock.poll(5000), "no reply to a correctly signed message"
        _, reply = good.recv(sock)
        assert reply["parent_header"]["msg_id"] == ok["header"]["msg_id"]
        assert reply["msg_type"] == "kernel_info_reply"
    finally:
        sock.close()
    assert_setting(kernel.ok("%config lang").text(), "lang", "en", "default")


def test_heartbeat_echoes_bytes(kernel: Kernel):
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.linger = 0
    sock.connect(f"tcp://{kernel.km.ip}:{kernel.km.hb_port}")
    try:
        for payload in (b"ping-123", b"\x00\xff binary \x01"):
            sock.send(payload)
            assert sock.poll(3000), "no heartbeat echo"
            assert sock.recv() == payload
    finally:
        sock.close()


# ---------------------------------------------------------------- hostile input

HOSTILE = [
    "%config region=<script>alert(1)</script>",
    "%<script>alert(1)</script>",
    "%config <script>alert(1)</script>=x",
    "%config region=" + "x" * 1_000_000,
    "%sleep " + "9" * 5000,
    "%" + "a" * 100_000,
    "%config " + " ".join(f"k{i}=v" for i in range(5000)),
    "%config lang=ja\x00",
    "\x00",
    "%\x00",
    "%",
    "%%",
    "%% ",
    "%%%",
    "% config",
    "%%config\nlang=ja",
    "%%sleep 1\nbody",
    "%%version\n" + "x\n" * 1000,
    '%config region="unterminated',
    "%config region=eu\\",
    "%config =",
    "%config =ja",
    "%config lang==ja",
    "%config lang=ja=en",
    "%sleep 1e309",
    "%sleep nan",
    "%sleep inf",
    "%sleep -0",
    "%sleep 0x10",
    "%sleep 99999999999999999999999999",
    "%sleep 0.0000001",
    "%config region=" + "日本語😀" * 2000,
    "%config region=\u202egnp.exe",
    "\ufeff%version",
    "%config\tlang=ja",
    "%version\r\n%config lang\r\n",
    "%version\n" * 50,
    "%version\nlet x = 1;",
    "%help %help %help",
    "%config --help --bogus",
    "%config region='a b' lang=ja",
]


@pytest.mark.parametrize("code", HOSTILE, ids=[f"h{i:02d}" for i in range(len(HOSTILE))])
def test_hostile_input_keeps_kernel_alive(kernel: Kernel, code):
    res = kernel.execute(code, timeout=30)
    assert res.status in ("ok", "error"), res.describe()
    if res.status == "error":
        assert res.content["ename"] in {"UsageError", "UnknownMagic", "NotSupported"}, res.describe()
        assert_error(res, res.content["ename"])
    else:
        assert not res.errors, res.describe()
    assert_no_raw_script(res)
    # the kernel carries on, and whatever got stored renders escaped
    assert kernel.alive()
    assert kernel.request("shell", "kernel_info_request")["content"]["status"] == "ok"
    assert_bundle(kernel.ok("%version").single_display())
    listing = kernel.ok("%config")
    assert_no_raw_script(listing)


def test_html_escapes_user_text(kernel: Kernel):
    payload = "<script>alert(1)</script>"
    res = kernel.execute(f"%config region={payload}")
    assert_no_raw_script(res)
    if res.status == "ok":
        listing = kernel.ok("%config")
        assert_no_raw_script(listing)
        html = listing.single_display().get("text/html", "")
        if html:
            assert "&lt;script&gt;" in html, "region value missing or not escaped in text/html"
    else:
        assert_error(res, "UsageError")


# ---------------------------------------------------------------- a notebook, as JupyterLab runs it


def run_notebook(cells, tmp_path, monkeypatch, allow_errors=False):
    for key, value in kernel_env(tmp_path).items():
        if key.startswith("RUNBOOK_"):
            monkeypatch.setenv(key, value)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Security Runbook (Rust)", "language": "rust"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    client = NotebookClient(
        nb, kernel_name=KERNEL_NAME, timeout=30, startup_timeout=30, allow_errors=allow_errors,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    nbformat.validate(nb)
    return nb, client


def test_notebook_runs_through_nbclient(tmp_path, monkeypatch):
    nb, client = run_notebook(
        ["%version", "%config lang=ja\n%config lang", "%sleep 1", "%lsmagic", "%nosuchmagic"],
        tmp_path, monkeypatch, allow_errors=True,
    )
    assert nb.metadata["language_info"]["name"] == "rust"
    version, config, sleep, lsmagic, bad = nb.cells
    assert [c.execution_count for c in nb.cells] == [1, 2, 3, 4, 5]
    for cell in (version, lsmagic):
        assert [o.output_type for o in cell.outputs] == ["display_data"], cell.outputs
        assert_bundle(cell.outputs[0].data)
    assert cargo_version() in version.outputs[0].data["text/plain"]
    assert [o.output_type for o in config.outputs] == ["display_data", "display_data"], config.outputs
    assert_setting(config.outputs[1].data["text/plain"], "lang", "ja", "session")
    # the progress display was updated in place: still one output
    assert [o.output_type for o in sleep.outputs] == ["display_data"], sleep.outputs
    assert [o.output_type for o in bad.outputs] == ["error"]
    assert bad.outputs[0].ename == "UnknownMagic"


def test_notebook_stops_at_the_first_error(tmp_path, monkeypatch):
    with pytest.raises(CellExecutionError) as info:
        run_notebook(["%version", "%confg lang=ja", "%version"], tmp_path, monkeypatch)
    assert "UnknownMagic" in str(info.value)
    assert "%config" in str(info.value)
