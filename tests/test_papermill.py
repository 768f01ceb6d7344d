"""Scheduled, parameterised runs with papermill: the translator in
papermill-runbook/ writes the injected parameters cell as %set lines, and every
shipped notebook has a `parameters` cell whose values its magics read as $NAME.
Runs go through papermill's own command and API, with the real kernel, in the
sandbox and on the AWS path (moto and the Security Hub server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

papermill = pytest.importorskip("papermill")

from aws_seed import aws_kernel_env, seed_account  # noqa: E402
from conftest import audit_records, find_kernelspec, kernel_env  # noqa: E402
from notebook_runs import NOTEBOOKS, cells_of, check_clean_run, copy_notebooks, results  # noqa: E402
from servers.config_service import ConfigServer  # noqa: E402
from servers.moto import MotoServer  # noqa: E402
from servers.securityhub import SecurityHubServer  # noqa: E402
from servers.ssm_automation import SsmAutomationServer  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

KERNEL = "security-runbook"


def translator():
    from papermill.translators import papermill_translators

    return papermill_translators.find_translator(KERNEL, "rust")


def test_the_translator_writes_set_lines_that_keep_each_value_whole():
    cell = translator().codify(
        {"control": "EC2.13", "severity": ["CRITICAL", "HIGH"], "note": "it's $5 each", "none": None, "on": True, "n": 3}
    )
    assert cell.splitlines() == [
        "# Parameters",
        "%set control=EC2.13",
        "%set severity=CRITICAL,HIGH",
        "%set 'note=it'\"'\"'s $$5 each'",
        "%set none=",
        "%set on=true",
        "%set n=3",
    ]
    with pytest.raises(ValueError, match="not a runbook variable name"):
        translator().codify({"bad-name": 1})
    nb = nbformat.read(NOTEBOOKS[1], as_version=4)
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert [p.name for p in translator().inspect(params)] == ["control"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_a_parameters_cell_its_magics_use(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].source.startswith("%set "), path.name
    names = [p.name for p in translator().inspect(tagged[0])]
    used = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and c is not tagged[0])
    for name in names:
        assert f"${name}" in used, f"{path.name}: parameter {name} is never used"


def run_papermill(path: Path, workdir: Path, out: Path, env: dict, parameters: dict) -> nbformat.NotebookNode:
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        papermill.execute_notebook(
            str(workdir / path.name), str(out), parameters=parameters, cwd=str(workdir),
            progress_bar=False, request_save_on_cell_execute=False, execution_timeout=120,
        )  # fmt: skip
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nbformat.read(out, as_version=4)


def listings(nb) -> list[dict]:
    return [r for c in cells_of(nb, "findings") for r in results(c) if "shown" in r]


# Parameters every notebook accepts, and the controls its listings may then show.
DEFAULT_PARAMETERS = ({"control": "EC2.13", "severity": "CRITICAL", "account": "222222222222"}, {"EC2.13"})
# 07 rolls a plan out, which only an account-wide setting allows; its first
# listing shows a control fixed by an AWS-owned runbook whatever the parameters.
SANDBOX_PARAMETERS = {
    "07-fleet.ipynb": (
        {"control": "EC2.7", "severity": "MEDIUM", "account": "333333333333", "accounts": "333333333333"},
        {"EC2.7", "CloudTrail.4"},
    ),
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_runs_every_notebook_in_the_sandbox_with_parameters(path, tmp_path):
    find_kernelspec()
    workdir = copy_notebooks(tmp_path)
    parameters, shown = SANDBOX_PARAMETERS.get(path.name, DEFAULT_PARAMETERS)
    nb = run_papermill(path, workdir, tmp_path / "out.ipynb", kernel_env(tmp_path), parameters)
    check_clean_run(nb)
    (injected,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert f"%set control={parameters['control']}" in injected.source
    for listing in listings(nb):
        controls = {r["control_id"] for r in listing["shown"]}
        severities = {r["severity"] for r in listing["shown"]}
        assert controls <= shown or severities <= {parameters["severity"]}, listing["filter"]
    for cell in cells_of(nb, "remediate"):
        for r in results(cell):
            if "plan" in r:
                assert r["plan"]["control_id"] == parameters["control"]


@pytest.mark.timeout(180)
def test_the_papermill_command_runs_a_notebook(tmp_path):
    """The command from the README, as a scheduler would run it."""
    find_kernelspec()
    workdir = copy_notebooks(tmp_path)
    out = tmp_path / "out.ipynb"
    papermill_cli = Path(sys.executable).with_name("papermill")
    done = subprocess.run(
        [str(papermill_cli), str(workdir / "01-summarize-and-remediate.ipynb"), str(out),
         "-p", "control", "EC2.13", "-p", "severity", "CRITICAL", "--cwd", str(workdir)],
        env=kernel_env(tmp_path), capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    nb = nbformat.read(out, as_version=4)
    check_clean_run(nb)
    (approve,) = cells_of(nb, "approve")
    plan_id = list(results(approve))[-1]["plan_id"]
    records = [r for r in audit_records(tmp_path / "audit.jsonl") if r["plan_id"] == plan_id]
    assert {"approved", "run_finished"} <= {r["event"] for r in records}


@pytest.mark.timeout(180)
def test_papermill_on_the_aws_path_acts_on_the_injected_control(tmp_path):
    """01 defaults to EC2.19; the parameter makes it fix GuardDuty.1 in moto instead."""
    find_kernelspec()
    with MotoServer() as moto, SecurityHubServer(rate=None) as hub:
        account = seed_account(moto, hub)
        workdir = copy_notebooks(tmp_path)
        env = kernel_env(tmp_path, **aws_kernel_env(moto, hub))
        path = next(p for p in NOTEBOOKS if p.name.startswith("01-"))
        nb = run_papermill(path, workdir, tmp_path / "out.ipynb", env, {"control": "GuardDuty.1"})
        check_clean_run(nb)
        assert hub.finding(account.finding_id("GuardDuty.1"))["Workflow"]["Status"] == "RESOLVED"
        assert hub.finding(account.finding_id("EC2.19"))["Workflow"]["Status"] == "NEW"
        import boto3

        detectors = boto3.client("guardduty", **moto.client_kwargs()).list_detectors()["DetectorIds"]
        assert detectors, "the GuardDuty.1 plan created a detector in moto"
        assert json.dumps(nb.cells[2].source) and "%set control=GuardDuty.1" in nb.cells[3].source


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_runs_every_notebook_on_the_aws_path(path, tmp_path):
    """With the catalog as advisor and each notebook's own seeding (as in
    test_notebooks_aws.py), and a parameter every notebook accepts."""
    import test_notebooks_aws as aws_runs

    find_kernelspec()
    spec = aws_runs.AWS_RUNS.get(path.name, aws_runs.AwsRun())
    with (
        MotoServer() as moto,
        SecurityHubServer(rate=None) as hub,
        SsmAutomationServer(moto.url) as ssm,
        ConfigServer(moto.url) as config,
    ):
        world = aws_runs.World(moto, hub, None, seed_account(moto, hub), copy_notebooks(tmp_path), tmp_path / "audit.jsonl")
        if spec.seed:
            spec.seed(world)
        endpoints = {"AWS_ENDPOINT_URL_SSM": ssm.url, "AWS_ENDPOINT_URL_CONFIG_SERVICE": config.url}
        env = kernel_env(tmp_path, **aws_kernel_env(moto, hub, **endpoints))  # the catalog advises
        nb = run_papermill(path, world.workdir, tmp_path / "out.ipynb", env, {"severity": "CRITICAL,HIGH"})
        check_clean_run(nb)
        for listing in listings(nb):
            assert listing["backend"]["kind"] == "aws"
