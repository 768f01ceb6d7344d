"""Running the runbooks in notebooks/ headless through nbclient, and reading what
their cells showed: shared by the sandbox runs (test_notebooks.py) and the AWS
runs (test_notebooks_aws.py)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import nbformat
from nbclient import NotebookClient

from conftest import KERNEL_NAME, RUNBOOK_MIME

NOTEBOOK_DIR = Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# Seconds nbclient waits for one cell; pytest-timeout bounds the whole run.
CELL_TIMEOUT = 120
PLAN_ID = re.compile(r"\bplan-[0-9a-f]{8}\b")


def copy_notebooks(tmp_path: Path) -> Path:
    """A private copy of notebooks/ (with policies/ and anything else beside the
    runbooks), so that a run can neither change the repository nor see another's files."""
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.jsonl"))
    return work


def run_notebook(path: Path, workdir: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    """Runs the copy of `path` in `workdir` (its working directory) headless, as
    papermill or CI would: no stdin, so `%approve` needs `--yes`.  A cell that
    ends in an error fails the run (nbclient raises CellExecutionError)."""
    nb = nbformat.read(workdir / path.name, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    client = NotebookClient(
        nb, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT, allow_errors=False,
        resources={"metadata": {"path": str(workdir)}},
    )  # fmt: skip
    client.execute(env=env)
    return nb


def code_cells(nb: nbformat.NotebookNode) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def check_clean_run(nb: nbformat.NotebookNode) -> None:
    """No error output anywhere; every code cell showed something."""
    errors = [o for cell in code_cells(nb) for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    for cell in code_cells(nb):
        assert cell.outputs, f"cell {cell.source!r} showed nothing"


def first_magic(source: str) -> str:
    """'%approve last --yes' -> 'approve' (the first magic line of a cell)."""
    for line in source.splitlines():
        m = re.match(r"\s*%%?([A-Za-z_]+)", line)
        if m:
            return m.group(1)
    return ""


def results(cell: Any) -> Iterator[dict[str, Any]]:
    """The application/vnd.runbook+json part of each of a cell's outputs, as nbclient
    left them (display updates already applied)."""
    for out in cell.outputs:
        data = out.get("data") or {}
        if RUNBOOK_MIME in data:
            value = data[RUNBOOK_MIME]
            yield json.loads(value) if isinstance(value, str) else value


def cells_of(nb: nbformat.NotebookNode, magic: str) -> list[Any]:
    return [c for c in code_cells(nb) if first_magic(c.source) == magic]


def outputs_text(cell: Any) -> str:
    parts = []
    for out in cell.outputs:
        if "text" in out:
            parts.append(out["text"])
        parts.append(str((out.get("data") or {}).get("text/plain", "")))
    return "\n".join(parts)


def check_approvals(nb: nbformat.NotebookNode) -> list[str]:
    """Every `%approve` cell applied, and verified, a plan shown by a cell above it
    (so `last` found the plan the reader saw); returns the plan ids."""
    applied = []
    cells = code_cells(nb)
    for i, cell in enumerate(cells):
        if first_magic(cell.source) != "approve":
            continue
        final = list(results(cell))[-1]
        assert final["state"] == "succeeded", (cell.source, final)
        assert all(s["state"] in ("done", "no_op") for s in final["report"]["steps"]), final
        above = "\n".join(outputs_text(c) for c in cells[:i])
        assert final["plan_id"] in above, f"{final['plan_id']} was not shown before {cell.source!r}"
        applied.append(final["plan_id"])
    return applied
