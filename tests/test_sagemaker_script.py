"""sagemaker/on-start.sh, the notebook instance lifecycle script, run outside
SageMaker: a temporary HOME, Jupyter prefix and install directory stand in for
/home/ec2-user, the JupyterSystemEnv environment and /home/ec2-user/SageMaker,
and the notebook user is whoever runs the tests. No network and no build: the
kernel under test is installed ready-built (RUNBOOK_KERNEL_BIN), or the kept
binary is reused because it was built from the commit a local repository has."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from conftest import find_kernelspec

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "sagemaker" / "on-start.sh"
KERNEL_NAME = "security-runbook"


def kernel_binary() -> str:
    return os.environ.get("RUNBOOK_KERNEL_BIN") or find_kernelspec().argv[0]


def script_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The test's environment without RUNBOOK_* settings, a fresh HOME, and the
    script's locations inside tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    home = tmp_path / "home"
    prefix = tmp_path / "JupyterSystemEnv"
    for d in (home, prefix):
        d.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        RUNBOOK_NOTEBOOK_USER=subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip(),
        RUNBOOK_JUPYTER_PREFIX=str(prefix),
        RUNBOOK_INSTALL_DIR=str(tmp_path / "SageMaker" / ".security-runbook"),
        RUNBOOK_BUILD_DIR=str(home / ".cache" / "security-runbook"),
    )
    env.update(settings)
    return env


def run_script(env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout, cwd=env["HOME"]
    )


def kernel_json(env: dict[str, str]) -> Path:
    return Path(env["RUNBOOK_JUPYTER_PREFIX"]) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"


def assert_kernelspec_runs(env: dict[str, str], binary: str) -> None:
    path = kernel_json(env)
    assert path.is_file(), f"no {path}"
    spec = json.loads(path.read_text())
    assert os.path.samefile(spec["argv"][0], binary), spec
    assert spec["argv"][1:] == ["run", "{connection_file}"]
    # Jupyter finds it where SageMaker's JupyterLab looks: <prefix>/share/jupyter/kernels.
    ksm = KernelSpecManager(kernel_dirs=[str(path.parent.parent)])
    assert ksm.get_kernel_spec(KERNEL_NAME).display_name == "Security Runbook (Rust)"
    for logo in ("logo-32x32.png", "logo-64x64.png"):
        assert (path.parent / logo).is_file()


def test_script_is_valid_bash():
    res = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert SCRIPT.read_text().startswith("#!/bin/bash\n")
    assert os.access(SCRIPT, os.X_OK), "sagemaker/on-start.sh should be executable"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt-get install shellcheck)")
def test_shellcheck_is_clean():
    res = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_installs_a_ready_built_kernel(tmp_path):
    binary = kernel_binary()
    env = script_env(tmp_path, RUNBOOK_KERNEL_BIN=binary, RUNBOOK_FOREGROUND="1")
    for _ in range(2):  # a restart runs it again over the same install
        res = run_script(env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert_kernelspec_runs(env, binary)
    log = (Path(env["RUNBOOK_INSTALL_DIR"]) / "install.log").read_text()
    assert "kernel installed" in log and "done" in log, log
    # Nothing was fetched or built.
    assert not Path(env["RUNBOOK_BUILD_DIR"]).exists()


def test_dry_run_prints_the_steps_and_changes_nothing(tmp_path):
    env = script_env(tmp_path, RUNBOOK_REPO_URL="https://git.example.invalid/security-runbook.git", RUNBOOK_DRY_RUN="1")
    res = run_script(env)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    src = f"{env['RUNBOOK_BUILD_DIR']}/src"
    expected = [
        f"git -C {src} remote add origin https://git.example.invalid/security-runbook.git",
        f"git -C {src} fetch --quiet --depth 1 origin main",
        f"cargo build --release --locked -p runbook-kernel --manifest-path {src}/Cargo.toml",
        f"{env['RUNBOOK_INSTALL_DIR']}/bin/runbook-kernel install --prefix {env['RUNBOOK_JUPYTER_PREFIX']}",
    ]
    for line in expected:
        assert f"+ {line}" in out or line in out, f"{line!r} not in\n{out}"
    # A recent enough Rust is there, or rustup installs one (rustup itself too, if missing).
    assert any(s in out for s in ("using Rust", "rustup toolchain install stable", "https://sh.rustup.rs")), out
    assert list(Path(env["RUNBOOK_JUPYTER_PREFIX"]).iterdir()) == []
    assert not Path(env["RUNBOOK_INSTALL_DIR"]).exists()
    assert not Path(env["RUNBOOK_BUILD_DIR"]).exists()


def make_repo(path: Path) -> str:
    """A one-commit git repository; returns its commit id."""
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-C", str(path)]
    path.mkdir()
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(path)], check=True)
    (path / "Cargo.toml").write_text("[workspace]\n")
    subprocess.run([*git, "add", "Cargo.toml"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "kernel"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return False


def test_background_restart_reuses_the_kept_binary(tmp_path):
    """A restart: the binary kept from an earlier start is installed before the
    script returns; the background job fetches, sees the same commit, builds
    nothing and installs again."""
    binary = kernel_binary()
    commit = make_repo(tmp_path / "repo")
    env = script_env(tmp_path, RUNBOOK_REPO_URL=f"file://{tmp_path / 'repo'}")
    kept = Path(env["RUNBOOK_INSTALL_DIR"]) / "bin"
    kept.mkdir(parents=True)
    (kept / "runbook-kernel").symlink_to(binary)
    (kept / "COMMIT").write_text(commit + "\n")

    started = time.monotonic()
    res = run_script(env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert time.monotonic() - started < 20, "the lifecycle script itself must return quickly"
    m = re.search(r"in the background \(pid (\d+)\)", res.stdout)
    assert m, res.stdout
    pid = int(m.group(1))
    assert_kernelspec_runs(env, binary)  # installed before the script returned

    log_path = Path(env["RUNBOOK_INSTALL_DIR"]) / "install.log"
    try:
        assert wait_gone(pid, 30), "the background install did not finish"
    finally:
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, 15)
    log = log_path.read_text()
    assert f"source at commit {commit}" in log, log
    assert "no build needed" in log and "cargo build" not in log, log
    assert log.rstrip().endswith("done"), log
    assert_kernelspec_runs(env, binary)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "set RUNBOOK_REPO_URL"),
        ({"RUNBOOK_KERNEL_BIN": "/no/such/runbook-kernel"}, "is not an executable file"),
        ({"RUNBOOK_REPO_URL": "file:///x", "RUNBOOK_JUPYTER_PREFIX": "/no/such/env"}, "there is no Jupyter environment"),
        ({"RUNBOOK_REPO_URL": "file:///x", "RUNBOOK_NOTEBOOK_USER": "no-such-user-4711"}, "there is no user"),
    ],
)
def test_bad_settings_fail_at_once_with_a_clear_message(tmp_path, settings, message):
    env = script_env(tmp_path, **settings)
    res = run_script(env, timeout=10)
    assert res.returncode != 0
    assert message in res.stdout + res.stderr, res.stdout + res.stderr
    assert not Path(env["RUNBOOK_INSTALL_DIR"]).exists()
