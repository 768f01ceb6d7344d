"""`runbook-kernel exec`: a notebook run in-process by the kernel binary alone,
as a container on a schedule runs it. No Jupyter or Python takes part (the
process gets no PATH), yet the executed copy opens as nbformat 4, the JSON report
says what was read, planned and applied unattended, and a failing cell makes the
exit status non-zero."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from aws_seed import aws_kernel_env, seed_account
from conftest import audit_records, find_kernelspec
from notebook_runs import NOTEBOOKS, copy_notebooks
from servers.moto import MotoServer
from servers.securityhub import SecurityHubServer

pytestmark = pytest.mark.usefixtures("no_ambient_aws")


def kernel_bin() -> str:
    return find_kernelspec().argv[0]


def exec_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Only what the run needs: no PATH, no Python, no Jupyter."""
    env = {"HOME": str(tmp_path), "RUNBOOK_BACKEND": "sandbox", "RUNBOOK_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    env.update(extra)
    return env


def rust_toolchain_env() -> dict[str, str]:
    """What a run with Rust cells needs beyond that: cargo on PATH, its homes
    (HOME is the test's), and evcxr kept offline as in every test."""
    home = Path.home()
    cargo, cc = shutil.which("cargo"), shutil.which("cc")
    assert cargo and cc, "cargo and cc must be on PATH"
    return {
        "PATH": f"{Path(cargo).parent}:{Path(cc).parent}",
        "CARGO_HOME": os.environ.get("CARGO_HOME", str(home / ".cargo")),
        "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(home / ".rustup")),
        "EVCXR_CONFIG_DIR": str(Path(__file__).parent / "fixtures" / "evcxr"),
    }


def run_exec(tmp_path: Path, notebook: Path, *args: str, env: dict[str, str] | None = None):
    out = tmp_path / "out.ipynb"
    report = tmp_path / "report.json"
    done = subprocess.run(
        [kernel_bin(), "exec", str(notebook), "--output", str(out), "--json", str(report), *args],
        cwd=notebook.parent, env=env or exec_env(tmp_path), capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    return done, out, report


def approvals(nb) -> int:
    return sum(1 for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("%approve"))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_runs_unattended_with_approval_allowed(path, tmp_path):
    workdir = copy_notebooks(tmp_path)
    env = exec_env(tmp_path, **(rust_toolchain_env() if "rust" in path.name else {}))
    done, out, report_path = run_exec(tmp_path, workdir / path.name, "-p", "approval=allow-yes", env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs for c in code), [c.source for c in code if not c.outputs]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    report = json.loads(report_path.read_text())
    assert report["succeeded"] and not report["errors"]
    assert len(report["cells"]) == len(code)
    assert report["parameters"] == {"approval": "allow-yes"}
    assert len(report["plans_applied_unattended"]) == approvals(nb)
    assert set(report["plans_applied_unattended"]) <= set(report["plans_made"])
    for plan_id in report["plans_applied_unattended"]:
        events = {r["event"] for r in audit_records(tmp_path / "audit.jsonl") if r["plan_id"] == plan_id}
        assert {"approved", "run_finished"} <= events


@pytest.mark.timeout(120)
def test_without_allow_yes_approval_is_refused_and_the_exit_status_says_so(tmp_path):
    workdir = copy_notebooks(tmp_path)
    path = workdir / "01-summarize-and-remediate.ipynb"
    done, out, report_path = run_exec(tmp_path, path, "-p", "control=EC2.13")
    assert done.returncode == 1, done.stderr
    assert "NotApproved" in done.stderr and "-p approval=allow-yes" in done.stderr
    report = json.loads(report_path.read_text())
    assert not report["succeeded"] and report["plans_refused"] and not report["plans_applied_unattended"]
    assert report["cells"][-1]["ename"] == "NotApproved"
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    (injected,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected.source.splitlines()[1:] == ["%set control=EC2.13"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    failed = next(i for i, c in enumerate(code) if any(o.output_type == "error" for o in c.outputs))
    assert all(c.execution_count is None and not c.outputs for c in code[failed + 1 :])
    # The plan made was for the parameter's control.
    assert any("EC2.13" in json.dumps(o.get("data", {})) for c in code for o in c.outputs)


def test_bad_input_is_named(tmp_path):
    missing = tmp_path / "nope.ipynb"
    done, _, _ = run_exec(tmp_path, missing)
    assert done.returncode == 2 and "cannot read" in done.stderr and "nope.ipynb" in done.stderr
    junk = tmp_path / "junk.ipynb"
    junk.write_text('{"cells": 3}')
    done, _, _ = run_exec(tmp_path, junk)
    assert done.returncode == 2 and "nbformat 4" in done.stderr
    done = subprocess.run([kernel_bin(), "exec", str(junk), "-p", "oops"], capture_output=True, text=True, env=exec_env(tmp_path))
    assert done.returncode == 2 and "NAME=VALUE" in done.stderr


@pytest.mark.timeout(180)
def test_exec_on_the_aws_path(tmp_path):
    with MotoServer() as moto, SecurityHubServer(rate=None) as hub:
        account = seed_account(moto, hub)
        workdir = copy_notebooks(tmp_path)
        env = {**exec_env(tmp_path), **aws_kernel_env(moto, hub)}
        done, _, report_path = run_exec(
            tmp_path, workdir / "03-human-in-the-loop.ipynb", "-p", "approval=allow-yes", env=env
        )
        assert done.returncode == 0, done.stderr[-4000:]
        report = json.loads(report_path.read_text())
        assert len(report["plans_applied_unattended"]) == 1
        assert hub.finding(account.finding_id("GuardDuty.1"))["Workflow"]["Status"] == "RESOLVED"
