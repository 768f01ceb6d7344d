"""Every runbook in notebooks/ runs top to bottom in the sandbox with nothing
configured, headless through nbclient, and ends with no error output."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import KERNEL_NAME, find_kernelspec, kernel_env

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_the_sandbox(path, tmp_path, monkeypatch):
    find_kernelspec()
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=120, allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=kernel_env(tmp_path))
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs, f"cell {cell.source!r} showed nothing"
