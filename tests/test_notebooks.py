"""Every runbook in notebooks/ runs top to bottom in the sandbox with nothing
configured, headless through nbclient, and ends with no error output.

Each run works on a private copy of notebooks/ (its working directory, so that
relative paths such as `%config kb=policies` resolve as they do in JupyterLab)
and keeps its audit log in tmp_path.  The AWS path runs the same notebooks in
test_notebooks_aws.py; both run them with notebook_runs.py.
"""

from __future__ import annotations

import nbformat
import pytest

from conftest import audit_records, find_kernelspec, kernel_env
from notebook_runs import (
    NOTEBOOK_DIR,
    NOTEBOOKS,
    PLAN_ID,
    cells_of,
    check_approvals,
    check_clean_run,
    code_cells,
    copy_notebooks,
    results,
    run_notebook,
)

# --- what every runbook must be, read without running it ---------------------------


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_a_shareable_runbook(path):
    """Names the kernelspec exactly as 01 does, explains its steps, and holds no
    listing-independent ids that would break when a teammate re-runs it."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    reference = nbformat.read(NOTEBOOK_DIR / "01-summarize-and-remediate.ipynb", as_version=4)
    assert nb.metadata["kernelspec"] == reference.metadata["kernelspec"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert any(c.cell_type == "markdown" for c in nb.cells[1:]), "explain each step in Markdown"
    for cell in code_cells(nb):
        assert not cell.outputs and cell.execution_count is None, f"saved with outputs: {cell.source!r}"
        assert not PLAN_ID.search(cell.source), f"a hard-coded plan id breaks re-runs: {cell.source!r}"


# --- the sandbox run ---------------------------------------------------------------------


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_the_sandbox(path, tmp_path, no_ambient_aws):
    find_kernelspec()
    workdir = copy_notebooks(tmp_path)
    nb = run_notebook(path, workdir, kernel_env(tmp_path))
    check_clean_run(nb)
    plans = check_approvals(nb)
    events = audit_records(tmp_path / "audit.jsonl")
    for plan_id in plans:
        done = {e["event"] for e in events if e.get("plan_id") == plan_id}
        assert {"approved", "finding_updated", "run_finished"} <= done, (plan_id, done)
    for cell in cells_of(nb, "findings"):
        assert all(r["backend"]["kind"] == "sandbox" for r in results(cell) if "backend" in r)
    # With no model, %ask explains how to get one and names the equivalent magics.
    for cell in cells_of(nb, "ask"):
        if "--new" not in cell.source.split():
            answer = list(results(cell))[-1]
            assert answer.get("needs_model") is True and "%findings" in answer["equivalents"], answer
