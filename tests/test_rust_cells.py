"""Rust cells end to end: a cell with no magic is evaluated as Rust by evcxr in
the kernel, driven over ZeroMQ like every other test.

One kernel serves the module (evcxr's first crate takes a while to compile);
tests that stop or break its Rust process come last in the file and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import RUNBOOK_MIME, RUST_START_TIMEOUT, Kernel, open_rows, start_kernel, stop_kernel

# One kernel (one evcxr start) for the module, on one xdist worker; its first
# cell may take minutes on a loaded machine.
pytestmark = [pytest.mark.xdist_group("rust-cells"), pytest.mark.timeout(300)]

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A Rust cell after the first: compile and run (the first naming runbook_cells
# also compiles serde).
CELL_TIMEOUT = 150.0


@pytest.fixture(scope="module")
def rust(tmp_path_factory) -> Kernel:
    kernel = start_kernel(tmp_path_factory.mktemp("rust-cells"))
    res = kernel.execute("let started = 1;", timeout=RUST_START_TIMEOUT)
    assert res.status == "ok", res.describe() + kernel.stderr_tail()
    yield kernel
    stop_kernel(kernel)


def run(kernel: Kernel, code: str, timeout: float = CELL_TIMEOUT):
    return kernel.execute(code, timeout=timeout)


def ok(kernel: Kernel, code: str):
    """A cell that must succeed; the first to name runbook_cells compiles it."""
    return kernel.ok(code, timeout=CELL_TIMEOUT)


def value(res) -> str:
    """The cell's execute_result as text/plain."""
    results = res.of_type("execute_result")
    assert len(results) == 1, res.describe()
    return results[0]["content"]["data"]["text/plain"]


def streamed(res, name: str) -> str:
    return "".join(m["content"]["text"] for m in res.of_type("stream") if m["content"]["name"] == name)


def plain_traceback(error: dict) -> str:
    return ANSI.sub("", "\n".join(error["content"]["traceback"]))


def test_state_persists_across_cells(rust: Kernel):
    ok(rust, "let base = 40;")
    ok(rust, "fn double(x: i32) -> i32 { x * 2 }")
    ok(rust, "use std::collections::BTreeSet;")
    res = ok(rust, "let set: BTreeSet<i32> = [3, 1, 2].into_iter().collect();\ndouble(base + 1) + set.len() as i32")
    assert value(res) == "85"


def test_value_is_execute_result_with_the_cell_count(rust: Kernel):
    res = ok(rust, "\"text\".len() + 1")
    [result] = res.of_type("execute_result")
    assert result["content"]["data"]["text/plain"] == "5"
    assert result["content"]["execution_count"] == res.content["execution_count"]
    assert not res.displays or all(
        d["content"]["data"].get(RUNBOOK_MIME, {}).get("progress") is not None for d in res.displays
    ), res.describe()


def test_stdout_and_stderr_stream_in_order_before_the_result(rust: Kernel):
    code = 'for i in 0..3 { println!("out {i}"); }\neprintln!("err 1");\neprintln!("err 2");\nprintln!("out 3");\n7'
    res = ok(rust, code)
    assert streamed(res, "stdout") == "out 0\nout 1\nout 2\nout 3\n"
    assert streamed(res, "stderr") == "err 1\nerr 2\n"
    kinds = [m["msg_type"] for m in res.outputs]
    last_stream = max(i for i, k in enumerate(kinds) if k == "stream")
    assert kinds.index("execute_result") > last_stream, kinds
    assert value(res) == "7"


def test_output_arrives_while_the_cell_runs(rust: Kernel):
    code = 'println!("first");\nstd::thread::sleep(std::time::Duration::from_millis(1500));\nprintln!("second");'
    msg_id = rust.start_execute(code)
    first = rust.wait_iopub(msg_id, lambda m: m["msg_type"] == "stream", timeout=CELL_TIMEOUT)
    arrived = time.monotonic()
    res = rust.finish_execute(code, msg_id, CELL_TIMEOUT)
    assert res.status == "ok", res.describe()
    assert "first" in first["content"]["text"]
    assert time.monotonic() - arrived >= 1.0, "the first line waited for the end of the cell"
    assert streamed(res, "stdout").endswith("second\n")


def test_rich_display_convention(rust: Kernel):
    code = 'println!("EVCXR_BEGIN_CONTENT text/html\\n<b>bold</b>\\nEVCXR_END_CONTENT");'
    res = ok(rust, code)
    [result] = res.of_type("execute_result")
    assert result["content"]["data"]["text/html"] == "<b>bold</b>"


def test_compile_error_is_one_error_with_the_line_marked(rust: Kernel):
    code = 'let fine = 1;\nlet wrong: i32 = "text";'
    res = run(rust, code)
    assert res.status == "error", res.describe()
    [error] = res.errors
    assert error["content"]["ename"] == "CompileError"
    assert "mismatched types" in error["content"]["evalue"]
    text = plain_traceback(error)
    assert 'let wrong: i32 = "text";' in text, text
    assert re.search(r"cell:2", text) or "^" in text or "─" in text, text
    for leak in ("/tmp", "src/lib.rs", ".evcxr", "target/"):
        assert leak not in text, (leak, text)
    assert res.content["ename"] == "CompileError"


def test_several_compile_errors_still_make_one_error(rust: Kernel):
    res = run(rust, "let a: u8 = \"x\";\nlet b: u8 = \"y\";")
    assert len(res.errors) == 1, res.describe()
    assert "(and 1 more)" in res.errors[0]["content"]["evalue"]


def test_a_cell_is_magics_or_rust(rust: Kernel):
    res = run(rust, "%version\nlet x = 1;")
    [error] = res.errors
    assert error["content"]["ename"] == "UsageError"
    assert "mixes magics and Rust" in error["content"]["evalue"]
    assert "line 1" in error["content"]["evalue"] and "line 2" in error["content"]["evalue"]


def test_evcxr_commands_work(rust: Kernel):
    ok(rust, "let listed_variable = 3u8;")
    res = ok(rust, ":vars")
    assert "listed_variable" in value(res)


def test_dep_on_a_path_crate(rust: Kernel, tmp_path: Path):
    crate = tmp_path / "answer"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text('[package]\nname = "answer"\nversion = "0.1.0"\nedition = "2021"\n')
    (crate / "src" / "lib.rs").write_text("pub fn answer() -> u32 { 42 }\n")
    ok(rust, f":dep answer = {{ path = {json.dumps(str(crate))} }}")
    assert value(ok(rust, "answer::answer()")) == "42"


def test_inspection_comes_from_rust_analyzer(rust: Kernel):
    code = "let v: Vec<u8> = Vec::new();"
    # the cursor just after the name, where Shift+Tab leaves it
    reply = rust.inspect(code, code.index("Vec::new") + len("Vec::new"))
    assert reply["status"] == "ok" and reply["found"], reply
    assert "Vec" in reply["data"]["text/plain"], reply
    assert "text/html" not in reply["data"], "hover HTML may load images"


def test_completion_comes_from_rust_analyzer(rust: Kernel):
    ok(rust, "let findings_counted = 3;")
    code = "findings_cou"
    reply = rust.complete(code)
    assert reply["status"] == "ok"
    assert "findings_counted" in reply["matches"], reply
    assert (reply["cursor_start"], reply["cursor_end"]) == (0, len(code))
    reply = rust.complete("std::collections::HashM")
    assert "HashMap" in reply["matches"], reply
    # magics complete as before
    assert "%findings" in rust.complete("%findi")["matches"]


def test_findings_match_the_listing(rust: Kernel):
    shown = open_rows(rust)
    assert shown
    code = (
        "let rows: Vec<runbook_cells::Finding> = runbook_cells::findings().into_iter()"
        ".map(|mut f| { f.raw = Default::default(); f }).collect();\n"
        'println!("{}", runbook_cells::serde_json::to_string(&rows).unwrap());'
    )
    res = run(rust, code, timeout=RUST_START_TIMEOUT)
    assert res.status == "ok", res.describe() + rust.stderr_tail()
    rows = json.loads(streamed(res, "stdout"))
    assert rows == shown
    # the raw finding is there too, as Security Hub sent it
    res = ok(rust, 'let first = runbook_cells::findings().remove(0);\nprintln!("{}", first.raw["Id"].as_str() == Some(first.id.as_str()));')
    assert streamed(res, "stdout") == "true\n", res.describe()


def test_plans_and_audit_follow_the_magics(rust: Kernel):
    ok(rust, "%findings --control EC2.19")
    ok(rust, "%remediate 1")
    res = ok(rust, 
        "let plans = runbook_cells::plans();\n"
        "let audit = runbook_cells::audit();\n"
        'println!("{} {}", plans.len(), audit.iter().any(|r| r.event == "plan_proposed" && r.plan_id == plans[0].id));'
    )
    count, proposed = streamed(res, "stdout").split()
    assert int(count) >= 1 and proposed == "true", res.describe()


def test_a_nul_character_is_refused_without_compiling(rust: Kernel):
    res = run(rust, "let x = 1;\x00")
    assert res.errors[0]["content"]["ename"] == "UsageError"
    assert "NUL" in res.errors[0]["content"]["evalue"]


# --- these stop or break the module kernel's Rust process: keep them last ---------------


def test_panic_is_an_error_and_says_what_survived(rust: Kernel):
    ok(rust, "let survivor = 11;")
    res = run(rust, 'let doomed = 2;\npanic!("boom {}", 3);')
    assert res.status == "error", res.describe()
    [error] = res.errors
    assert error["content"]["ename"] == "Panic"
    assert "boom 3" in error["content"]["evalue"]
    text = plain_traceback(error)
    assert "survivor" in text and "doomed" not in text.split("kept:")[-1].split(".")[0], text
    assert value(ok(rust, "survivor")) == "11"


def test_interrupt_stops_a_loop_and_the_next_cell_says_what_was_lost(rust: Kernel):
    ok(rust, "fn triple(x: i32) -> i32 { x * 3 }")
    ok(rust, "let precious = 5;")
    msg_id = rust.start_execute("loop { std::hint::spin_loop(); }")
    time.sleep(4)  # compiled and spinning
    rust.km.interrupt_kernel()
    res = rust.finish_execute("loop", msg_id, CELL_TIMEOUT)
    assert res.status == "error", res.describe()
    assert res.errors[0]["content"]["ename"] == "Interrupted"
    assert "precious" in plain_traceback(res.errors[0])
    res = ok(rust, "1 + 1")
    assert value(res) == "2"
    note = streamed(res, "stderr")
    assert "interrupted" in note and "precious" in note, res.describe()
    # functions survive a restart of the Rust process
    assert value(ok(rust, "triple(2)")) == "6"


def test_without_cargo_rust_cells_say_what_to_install(kernel_factory, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    # nothing in ~/.cargo/bin either, where the kernel also looks
    kernel = kernel_factory(PATH=str(bare), HOME=str(tmp_path), CARGO_HOME=str(tmp_path / "cargo"))
    res = kernel.execute("let x = 1;")
    [error] = res.errors
    assert error["content"]["ename"] == "NoRustToolchain"
    text = plain_traceback(error)
    assert "cargo" in text and "rustup" in text, text
    kernel.ok("%version")
