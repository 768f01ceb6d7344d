"""The browser test: the runbook as a user runs it, in JupyterLab, in Chromium.

JupyterLab is started from the pinned requirements (the project's .venv) on
127.0.0.1 with a token, on a private copy of notebooks/ with the sandbox
backend.  Headless Debian Chromium, driven by Playwright, opens the
human-in-the-loop runbook, lets JupyterLab start the `security-runbook` kernel
named in the notebook's metadata, and runs the code cells one by one: click
into the cell, Ctrl+Enter, wait for its execution count.  When `%approve` opens
Jupyter's input box (a stdin input_request: JupyterLab allows stdin, so the
kernel asks even with `--yes` on the line), the plan id shown by `%remediate`
is typed into it, then Enter.  The test then reads the DOM: the findings
table, the plan (its id, AWS CLI and Python), the RESOLVED status, and the
verification cells after it.

Screenshots of every step go to tests/artifacts/<test name>/ (gitignored);
on failure also a failure screenshot, the page's HTML, the browser console and
the JupyterLab log.  A second test checks that the flow fails, naming the step,
when the plan never renders or the input box never appears.  Needs
/usr/bin/chromium: `make python-tests` installs it.  The machinery lives in
tests/jupyterlab_browser.py (tests/screenshot.py uses it for the README).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import KERNEL_NAME
from jupyterlab_browser import (
    ARTIFACTS,
    NOTEBOOKS,
    PLAN_ID,
    Browser,
    BrowserTestError,
    JupyterLab,
    NotebookPage,
)

# One worker runs both browser tests, one after the other, under `pytest -n`:
# each drives a JupyterLab server and a Chromium, the heaviest things the suite
# starts, and two at once on a small machine push page waits past their timeouts.
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

# Issue 8: the human-in-the-loop runbook (GuardDuty.1) is the one run in the browser.
NOTEBOOK = "03-human-in-the-loop.ipynb"
CONTROL = "GuardDuty.1"


def chosen_notebook() -> tuple[str, str]:
    if not (NOTEBOOKS / NOTEBOOK).exists():
        pytest.fail(f"{NOTEBOOK} is not in {NOTEBOOKS}", pytrace=False)
    return NOTEBOOK, CONTROL


@pytest.fixture
def artifacts(request) -> Path:
    out = ARTIFACTS / request.node.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@pytest.fixture
def lab(tmp_path, artifacts, request):
    server = JupyterLab(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        failed = getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed
        if failed and server.log_path.exists():
            shutil.copy(server.log_path, artifacts / "jupyterlab.log")


@pytest.fixture
def browser():
    chromium = Browser()
    try:
        chromium.start()
        yield chromium
    finally:
        chromium.stop()


@pytest.fixture
def notebook(lab, browser, artifacts, request):
    page = browser.new_page()
    nb = NotebookPage(page, lab, artifacts)
    try:
        yield nb
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            nb.screenshot("failure")
            try:
                (artifacts / "failure.html").write_text(page.content())
            except Exception:
                pass
            (artifacts / "console.log").write_text("\n".join(nb.console) + "\n")
        if browser.blocked:
            (artifacts / "blocked-requests.txt").write_text("\n".join(browser.blocked) + "\n")
        page.close()


def magic_of(source: str) -> str:
    """The first magic of a cell: '%approve last --yes' -> 'approve'."""
    for line in source.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            m = re.match(r"%%?([A-Za-z_]+)", line)
            return m.group(1) if m else ""
    return ""


def check_kernelspec(lab: JupyterLab) -> None:
    argv = lab.kernelspec_argv()
    assert Path(argv[0]).exists(), f"the kernelspec runs {argv[0]}, which does not exist"
    wanted = os.environ.get("RUNBOOK_KERNEL_BIN")
    assert not wanted or os.path.samefile(argv[0], wanted), (
        f"JupyterLab's {KERNEL_NAME!r} kernelspec runs {argv[0]}, but RUNBOOK_KERNEL_BIN is {wanted}"
    )


def run_runbook(notebook: NotebookPage, browser: Browser, name: str, control: str) -> None:
    """Run `name` cell by cell as a user would and check what the page shows;
    raises AssertionError (BrowserTestError for a step that did not happen)."""
    notebook.open(name)
    assert "Security Runbook" in notebook.kernel_name(), (
        f"the notebook opened with kernel {notebook.kernel_name()!r}, not the one in its metadata"
    )
    notebook.screenshot("opened")

    sources = notebook.code_sources(name)
    count = notebook.code_cells().count()
    assert count == len(sources), f"the page shows {count} code cells, {name} has {len(sources)}"
    magics = [magic_of(s) for s in sources]
    for needed in ("findings", "remediate", "approve"):
        assert needed in magics, f"{name} has no %{needed} cell: {sources}"
    approve_at = magics.index("approve")
    assert "findings" in magics[approve_at + 1:], f"{name} verifies nothing after %approve: {sources}"

    plan_id = None
    prompt = None
    outputs: dict[int, str] = {}
    for i, magic in enumerate(magics):
        notebook.run_cell(i)
        if magic == "approve":
            # The kernel asks before it changes anything: Jupyter's input box.
            box = notebook.wait_input_box(i)
            assert plan_id, "no plan id was shown before %approve"
            notebook.screenshot(f"cell{i}-{magic}-asks")
            assert box.is_visible()
            prompt = notebook.answer(i, plan_id)
        number = notebook.wait_cell_done(i)
        assert number >= 1
        outputs[i] = notebook.output_text(i)
        notebook.cell(i).scroll_into_view_if_needed()
        notebook.screenshot(f"cell{i}-{magic}")
        errors = notebook.errors()
        assert not errors, f"cell {i} ({sources[i]!r}) ended in an error: {errors}"
        if magic == "remediate":
            ids = PLAN_ID.findall(outputs[i])
            if not ids:
                raise BrowserTestError(
                    f"%remediate rendered no plan id (plan-xxxxxxxx); its output was {outputs[i][:1500]!r}"
                )
            plan_id = ids[0]

    # 1. The findings table: a real <table> with rows, naming the control.
    first = magics.index("findings")
    table = notebook.cell(first).locator(".jp-OutputArea-output table.runbook-findings")
    assert table.count() == 1, f"%findings rendered no findings table: {outputs[first][:1500]!r}"
    rows_before = notebook.findings_rows(first)
    assert rows_before >= 1, f"the findings table has no rows: {outputs[first][:1500]!r}"
    header = table.locator("thead").text_content()
    for column in ("Severity", "Control", "Title", "Resource"):
        assert column in header, f"the findings table has no {column} column: {header!r}"
    assert control in table.locator("tbody").text_content(), f"the findings table does not list {control}"

    # 2. The plan: its id, the AWS CLI and the Python that do the same.
    remediate = magics.index("remediate")
    plan_text = outputs[remediate]
    assert plan_id in plan_text
    summaries = [t.strip() for t in notebook.cell(remediate).locator(".jp-OutputArea-output details > summary").all_text_contents()]
    assert "AWS CLI" in summaries and any(t.startswith("Python") for t in summaries), (
        f"the plan has no AWS CLI / Python sections: {summaries}"
    )
    assert re.search(r"\baws [a-z0-9-]+ [a-z0-9-]+", plan_text), (
        f"the plan shows no AWS CLI: {plan_text[:2000]!r}"
    )
    assert "Python" in plan_text and "boto3" in plan_text, f"the plan shows no Python: {plan_text[:2000]!r}"

    # 3. The approval asked for exactly this plan, and the finding is resolved.
    assert prompt and plan_id in prompt, f"the input box asked {prompt!r}, not for {plan_id}"
    approved = outputs[approve_at]
    assert plan_id in approved
    assert "RESOLVED" in approved, f"%approve did not show the finding RESOLVED: {approved[:2000]!r}"
    assert "applied and verified" in approved, f"%approve did not verify its actions: {approved[:2000]!r}"

    # 4. Verification: the same listing after %approve has the finding no more,
    #    and the audit trail (if the notebook shows it) names the plan.
    verify = approve_at + 1 + magics[approve_at + 1:].index("findings")
    assert sources[verify].strip() == sources[first].strip(), (
        f"the verification listing {sources[verify]!r} is not the first listing {sources[first]!r}"
    )
    rows_after = notebook.findings_rows(verify)
    assert rows_after < rows_before, (
        f"the resolved finding is still listed: {rows_before} rows before %approve, {rows_after} after; "
        f"{outputs[verify][:1500]!r}"
    )
    assert "audit" in magics[approve_at + 1:], f"{name} does not show the audit trail after %approve"
    audit_at = approve_at + 1 + magics[approve_at + 1:].index("audit")
    audit = notebook.cell(audit_at).locator(".jp-OutputArea-output table.runbook-audit tbody tr")
    events = {}
    for row in audit.all():
        cols = [(c.text_content() or "").strip() for c in row.locator("td").all()]
        if len(cols) >= 8 and cols[3] == plan_id:
            events.setdefault(cols[2], cols[7])
    for event in ("plan_proposed", "approved", "action_finished", "finding_updated", "run_finished"):
        assert event in events, f"the audit trail has no {event} for {plan_id}: {outputs[audit_at][:2000]!r}"
    # Approved through the input box, not through --yes on the line.
    assert events["approved"].startswith("typed the plan id"), f"the approval was {events['approved']!r}"
    assert events["run_finished"] == "succeeded", f"the run ended {events['run_finished']!r}"

    notebook.cell(count - 1).scroll_into_view_if_needed()
    notebook.screenshot("done")
    assert not notebook.dialogs, f"finding text ran as script in the page: {notebook.dialogs}"
    assert not browser.blocked, f"the page tried to leave 127.0.0.1: {browser.blocked[:10]}"


@pytest.mark.timeout(300)
def test_runbook_in_jupyterlab(lab, notebook, browser):
    name, control = chosen_notebook()
    check_kernelspec(lab)
    run_runbook(notebook, browser, name, control)


def doctored(lab: JupyterLab, name: str, new_name: str, change) -> str:
    """A copy of notebook `name` in the server's folder with one code cell's
    source changed by `change(source)` (None keeps it)."""
    nb = nbformat.read(lab.notebook_dir / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            changed = change(cell.source)
            if changed is not None:
                cell.source = changed
    nbformat.write(nb, lab.notebook_dir / new_name)
    return new_name


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_browser_test_fails_when_a_step_is_missing(lab, browser, artifacts):
    """The flow above fails, with a message naming the step, when the plan never
    renders or when the kernel never opens the approval input box."""
    name, control = chosen_notebook()
    cases = [
        # %remediate shows its help instead of a plan.
        ("no-plan", lambda src: src.replace("%remediate 1", "%remediate --help") if src.startswith("%remediate") else None,
         r"%remediate rendered no plan id"),
        # A dry run changes nothing, so the kernel does not ask.
        ("no-input-box", lambda src: "%approve last --dry-run" if src.startswith("%approve") else None,
         r"the approval input box \(stdin input_request\) never appeared .*the cell finished without one"),
    ]
    for label, change, expected in cases:
        copy = doctored(lab, name, f"broken-{label}.ipynb", change)
        page = browser.new_page()
        notebook = NotebookPage(page, lab, artifacts / label)
        try:
            with pytest.raises(BrowserTestError, match=expected) as failure:
                run_runbook(notebook, browser, copy, control)
            (artifacts / label / "expected-failure.txt").write_text(str(failure.value) + "\n")
        finally:
            page.close()
