"""In JupyterLab, in Chromium: a prompt-injected model answer full of remote images
and raw HTML renders without the browser requesting anything off 127.0.0.1, and
Run All stops at the first failing cell.

The machinery (private JupyterLab on 127.0.0.1, headless Chromium whose every
non-loopback request is aborted and recorded) is tests/jupyterlab_browser.py.
The model is the Bedrock test server, scripted with the hostile answer of
tests/test_no_remote_loads.py; the notebooks are written by the tests."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import KERNEL_NAME, bedrock_env
from jupyterlab_browser import ARTIFACTS, CODE_CELLS, Browser, JupyterLab, NotebookPage
from servers import bedrock as br
from hostile_answers import ATTACKER, HOSTILE, HOSTILE_POLICY

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

LEAK_NOTEBOOK = "leak.ipynb"
RUN_ALL_NOTEBOOK = "run-all.ipynb"
# What a remote load would have carried out: the account id in the image URL.
SECRET = "acct=222222222222"


class LabWithModel(JupyterLab):
    """JupyterLab whose kernels may reach the local Bedrock server: the helper drops
    every AWS_* variable, so the test's own (fake keys, local endpoint) go back in."""

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.update({k: v for k, v in self.env_extra.items() if k.startswith("AWS_")})
        return env


def write_notebook(folder: Path, name: str, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Security Runbook", "language": "rust"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, folder / name)


@pytest.fixture
def artifacts(request) -> Path:
    out = ARTIFACTS / request.node.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@pytest.fixture
def bedrock():
    with br.BedrockServer(chunk_delay=0.005) as server:
        yield server


@pytest.fixture
def lab(tmp_path, bedrock, artifacts, request):
    kb = tmp_path / "hostile-kb"
    kb.mkdir()
    (kb / "password.md").write_text(HOSTILE_POLICY, encoding="utf-8")
    server = LabWithModel(tmp_path, **bedrock_env(bedrock, RUNBOOK_KB=str(kb)))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        rep = getattr(request.node, "rep_call", None)
        if (rep is None or rep.failed) and server.log_path.exists():
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


# Elements in outputs that name a URL to load, found by the page itself.
REMOTE_IN_OUTPUTS = """(sel) => {
  const found = [];
  for (const el of document.querySelectorAll(sel + ' .jp-OutputArea *')) {
    for (const attr of ['src', 'srcset', 'poster', 'data', 'background']) {
      const v = el.getAttribute(attr);
      if (v && /^\\s*(https?:)?\\/\\//i.test(v) && !/127\\.0\\.0\\.1/.test(v)) found.push(el.tagName + ' ' + attr + '=' + v);
    }
    const style = el.getAttribute('style') || '';
    if (/url\\(/i.test(style)) found.push(el.tagName + ' style=' + style);
    if (el.tagName === 'LINK' || el.tagName === 'STYLE' || el.tagName === 'IFRAME') found.push(el.tagName);
  }
  return found;
}"""


def test_a_hostile_answer_renders_without_a_request_off_the_machine(lab, browser, notebook, bedrock):
    write_notebook(
        lab.notebook_dir,
        LEAK_NOTEBOOK,
        ["%findings --control EC2.19", "%summarize 1", "%ask What should I do about it?", "%kb password length"],
    )
    bedrock.enqueue(br.text(HOSTILE, chunks=12), br.text(HOSTILE, chunks=12))
    notebook.open(LEAK_NOTEBOOK)
    for i in range(4):
        notebook.run_cell(i)
        notebook.wait_cell_done(i)
    notebook.screenshot("rendered")
    assert not notebook.errors(), notebook.errors()
    assert bedrock.pending == 0, "both answers were asked for"
    # Nothing was requested off the machine, and nothing in the outputs names a URL to load ...
    notebook.page.wait_for_timeout(1500)  # give any lazy load its chance
    assert browser.blocked == [], f"requests off the machine: {browser.blocked}"
    remote = notebook.page.evaluate(REMOTE_IN_OUTPUTS, CODE_CELLS)
    assert remote == [], remote
    assert not notebook.dialogs, notebook.dialogs
    # ... while the answers rendered, the image shown as text naming its target.
    for i in (1, 2):
        text = notebook.output_text(i)
        assert f"[image: status (https://{ATTACKER}/p.png?{SECRET})]" in text, text[:2000]
        assert "<iframe" in text, "raw HTML is shown as text"
    assert f"https://{ATTACKER}/kb-raw.png" in notebook.output_text(3)
    # The recorder is live: an image that does load is caught.
    notebook.page.evaluate(
        "(url) => { const i = document.createElement('img'); i.src = url; document.body.appendChild(i); }",
        f"https://{ATTACKER}/control.png",
    )
    notebook.page.wait_for_timeout(1500)
    assert browser.blocked == [f"https://{ATTACKER}/control.png"], browser.blocked


def run_all(notebook: NotebookPage) -> None:
    """Run > Run All Cells, as a user does."""
    notebook.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    notebook.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def prompts(notebook: NotebookPage, n: int) -> list[str]:
    return [notebook.prompt(i) for i in range(n)]


def test_run_all_stops_at_the_failing_cell(lab, notebook):
    cells = ["%findings", "%finding 999", "%version", "%remediate 1"]
    write_notebook(lab.notebook_dir, RUN_ALL_NOTEBOOK, cells)
    notebook.open(RUN_ALL_NOTEBOOK)
    run_all(notebook)
    notebook.wait_cell_done(1)
    # Wait until no cell is still queued ([*]) and the kernel is idle.
    notebook.page.wait_for_function(
        "(sel) => Array.from(document.querySelectorAll(sel + ' .jp-InputArea-prompt'))"
        ".every(p => !p.textContent.includes('*'))",
        arg=CODE_CELLS,
        timeout=60_000,
    )
    notebook.wait_kernel_idle("Security Runbook")
    notebook.page.wait_for_timeout(1000)
    notebook.screenshot("after-run-all")
    shown = prompts(notebook, 4)
    assert re.search(r"\[1\]", shown[0]) and re.search(r"\[2\]", shown[1]), shown
    assert not re.search(r"\d", shown[2]) and not re.search(r"\d", shown[3]), f"aborted cells took no count: {shown}"
    assert "999" in notebook.output_text(1), notebook.output_text(1)
    assert notebook.output_text(2).strip() == "" and notebook.output_text(3).strip() == "", (
        notebook.output_text(2)[:500],
        notebook.output_text(3)[:500],
    )
    # Run again by hand, the cell after the error runs normally.
    notebook.run_cell(2)
    assert notebook.wait_cell_done(2) == 3
    assert "runbook-kernel" in notebook.output_text(2), notebook.output_text(2)[:500]
