"""JupyterLab in a real browser: the machinery behind tests/test_browser.py and
tests/screenshot.py.

`JupyterLab` starts the server from the project's virtual environment (the
pinned requirements.txt), bound to 127.0.0.1 on a free port with a random
token, on a private copy of notebooks/ (outputs cleared), with the sandbox
backend and a private audit log, and with every Jupyter config/data/runtime
directory private too, so nothing from the user's own setup leaks in.
`Browser` is headless Debian Chromium (/usr/bin/chromium) driven by
Playwright, which is kept off the internet twice over: the host resolver maps
every name except 127.0.0.1 to nothing, and every request to another host is
aborted (and recorded, so a test can assert there were none).

`NotebookPage` does what a user does: open a notebook, wait for its kernel,
click into a cell, press Ctrl+Enter, and answer the input box the kernel opens
(stdin input_request).  Both classes are context managers whose exits always
stop what they started.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat

from conftest import KERNEL_NAME, kernel_env

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("RUNBOOK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Belt and braces: no name but the loopback address resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# Generous on a 2-core machine, but bounded: the test's own timeout is larger.
SERVER_START_TIMEOUT = 120.0
KERNEL_READY_TIMEOUT = 90.0
CELL_TIMEOUT = 60.0
INPUT_BOX_TIMEOUT = 30.0

# User settings for the private JupyterLab: no news or update check (both would
# try the internet and pop a notification over the notebook).
LAB_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

PLAN_ID = re.compile(r"\bplan-[0-9a-f]{8}\b")


class BrowserTestError(AssertionError):
    """A step of the browser flow did not happen; the message says which."""


def copy_notebooks(dest: Path) -> Path:
    """notebooks/ (policies and all) copied to `dest`, every output cleared so
    that whatever the page shows was produced by this run."""
    shutil.copytree(NOTEBOOKS, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for path in dest.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        nbformat.write(nb, path)
    return dest


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 serving a private copy of notebooks/."""

    def __init__(self, workdir: Path, **env_extra: str):
        self.workdir = workdir
        self.port = 0  # known once the server has bound it (see _wait_ready)
        self.token = secrets.token_hex(24)
        self.notebook_dir = copy_notebooks(workdir / "notebooks")
        self.log_path = workdir / "jupyterlab.log"
        self.audit_log = workdir / "audit.jsonl"
        self.env_extra = env_extra
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ----------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = kernel_env(self.workdir, **self.env_extra)  # sandbox backend, private audit log
        for key in [k for k in env if k.startswith("AWS_")]:
            del env[key]
        private = self.workdir / "jupyter"
        settings = private / "lab-settings"
        for rel, value in LAB_USER_SETTINGS.items():
            path = settings / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env.update(
            # The kernelspec then comes from the venv (sys.prefix) only: a
            # user-level "security-runbook" cannot shadow it.
            JUPYTER_CONFIG_DIR=str(private / "config"),
            JUPYTER_DATA_DIR=str(private / "data"),
            JUPYTER_RUNTIME_DIR=str(private / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(private / "workspaces"),
            JUPYTER_PLATFORM_DIRS="1",
        )
        return env

    def start(self) -> "JupyterLab":
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            # Port 0: the OS picks a port no other process holds (parallel test
            # workers each run their own JupyterLab); the log names it.
            "--ServerApp.port=0",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--notebook-dir={self.notebook_dir}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.log_level=INFO",
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")  # as the Makefile does: Jupyter refuses root otherwise
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserTestError(
                    f"JupyterLab exited with {self.proc.returncode} while starting" + self.log_tail()
                )
            if not self.port:
                self.port = self._bound_port()
                if not self.port:
                    time.sleep(0.2)
                    continue
            try:
                status = self.api("/api/status")
                # The lab page itself must be served too (its assets are built).
                with urllib.request.urlopen(f"{self.base_url}/lab?token={self.token}", timeout=10) as r:
                    if r.status == 200:
                        self.status = status
                        return
            except (OSError, urllib.error.URLError, ValueError) as e:
                last = repr(e)
            time.sleep(0.5)
        raise BrowserTestError(
            f"JupyterLab did not answer on {self.base_url} within {SERVER_START_TIMEOUT:.0f}s "
            f"(last error {last})" + self.log_tail()
        )

    def _bound_port(self) -> int:
        """The port of the lab URL the server logs once it listens, or 0 before that."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        found = re.search(r"http://127\.0\.0\.1:(\d+)/lab\?token=", text)
        return int(found.group(1)) if found else 0

    def stop(self) -> None:
        """Shut the server down (it shuts its kernels down); kill what is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.api("/api/shutdown", method="POST", timeout=5)
            except (OSError, urllib.error.URLError, ValueError):
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        # Kernels run in the server's session (start_new_session above); any
        # still alive are ours, and go now.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc = None

    def __enter__(self) -> "JupyterLab":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- helpers ------------------------------------------------------------------

    def api(self, path: str, method: str = "GET", timeout: float = 10) -> Any:
        req = urllib.request.Request(
            f"{self.base_url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def kernelspec_argv(self) -> list[str]:
        specs = self.api("/api/kernelspecs")["kernelspecs"]
        if KERNEL_NAME not in specs:
            raise BrowserTestError(
                f"JupyterLab does not know the {KERNEL_NAME!r} kernelspec (it has {sorted(specs)}); "
                "run `make python-tests`, which installs it into .venv"
            )
        return specs[KERNEL_NAME]["spec"]["argv"]

    def notebook_url(self, name: str) -> str:
        return f"{self.base_url}/lab/tree/{name}?token={self.token}&reset"

    def log_tail(self, limit: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()[-limit:]
        except OSError:
            return ""
        return "\n--- JupyterLab log (tail) ---\n" + data.decode("utf-8", "replace")


class Browser:
    """Headless Debian Chromium through Playwright, kept on 127.0.0.1."""

    def __init__(self, viewport: tuple[int, int] = (1400, 1000), scale: float = 1.0):
        self.viewport = viewport  # CSS pixels; screenshots are viewport * scale
        self.scale = scale
        self.blocked: list[str] = []
        self._pw = None
        self.browser = None
        self.context = None

    def start(self) -> "Browser":
        if not os.access(CHROMIUM, os.X_OK):
            raise BrowserTestError(
                f"{CHROMIUM} is missing: `make python-tests` installs it (apt-get install chromium)"
            )
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        # Playwright gives every launch a fresh temporary profile (user data dir).
        self.browser = self._pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        self.context = self.browser.new_context(
            viewport={"width": self.viewport[0], "height": self.viewport[1]},
            device_scale_factor=self.scale,
            locale="en-US",
            timezone_id="UTC",
            service_workers="block",
        )
        self.context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]|wss?://127\.0\.0\.1[:/]|data:|blob:)"), self._block)
        return self

    def _block(self, route) -> None:
        self.blocked.append(route.request.url)
        route.abort("blockedbyclient")

    def new_page(self):
        return self.context.new_page()

    def stop(self) -> None:
        for closer in (self.context, self.browser):
            if closer is not None:
                try:
                    closer.close()
                except Exception:
                    pass
        if self._pw is not None:
            try:
                self._pw.stop()
            except Exception:
                pass
        self.context = self.browser = self._pw = None

    def __enter__(self) -> "Browser":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()


CODE_CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell.jp-CodeCell"


class NotebookPage:
    """One notebook open in JupyterLab, driven through the keyboard."""

    def __init__(self, page, lab: JupyterLab, artifacts: Path | None = None):
        self.page = page
        self.lab = lab
        self.artifacts = artifacts
        self.console: list[str] = []
        self.shots: list[Path] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        # Findings carry attacker-chosen text (the sandbox has an
        # `<img src=x onerror=alert(1)>` group name): a dialog means it ran.
        self.dialogs: list[str] = []
        page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        if dialog.type == "beforeunload":  # JupyterLab's "unsaved changes" on leaving
            dialog.accept()
            return
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    # -- screenshots ----------------------------------------------------------------

    def screenshot(self, name: str) -> Path | None:
        if self.artifacts is None:
            return None
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{len(self.shots):02d}-{name}.png"
        try:
            self.page.screenshot(path=str(path), timeout=15_000)
        except Exception as e:  # a screenshot must never hide the real failure
            sys.stderr.write(f"screenshot {path.name} failed: {e}\n")
            return None
        self.shots.append(path)
        return path

    # -- opening ------------------------------------------------------------------

    def open(self, name: str, kernel_display: str = "Security Runbook") -> None:
        """Open a notebook; JupyterLab starts the kernel its metadata names (no
        kernel dialog). Returns once that kernel is connected and idle."""
        self.page.goto(self.lab.notebook_url(name), wait_until="domcontentloaded", timeout=60_000)
        self.page.locator(CODE_CELLS).first.wait_for(state="visible", timeout=KERNEL_READY_TIMEOUT * 1000)
        self.wait_kernel_idle(kernel_display)

    def kernel_name(self) -> str:
        try:
            return self.page.locator(
                ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar .jp-KernelName"
            ).first.inner_text(timeout=2_000).strip()
        except Exception:
            return ""

    def kernel_status(self) -> str:
        try:
            return self.page.locator(
                ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator"
            ).first.get_attribute("data-status", timeout=2_000) or ""
        except Exception:
            return ""

    def wait_kernel_idle(self, kernel_display: str, timeout: float = KERNEL_READY_TIMEOUT) -> None:
        """The toolbar names the kernel (`kernel_display`) and its execution
        indicator says idle. Before the kernel connects the toolbar shows
        "No Kernel" with an idle indicator, hence both checks."""
        deadline = time.monotonic() + timeout
        name = status = ""
        while time.monotonic() < deadline:
            name, status = self.kernel_name(), self.kernel_status()
            if kernel_display in name and status == "idle":
                return
            self.page.wait_for_timeout(250)
        raise BrowserTestError(
            f"the notebook's kernel {kernel_display!r} never became idle within {timeout:.0f}s "
            f"(toolbar shows kernel {name!r}, status {status!r}); " + self.diagnostics()
        )

    # -- cells ----------------------------------------------------------------------

    def code_cells(self):
        return self.page.locator(CODE_CELLS)

    def cell(self, index: int):
        return self.code_cells().nth(index)

    def code_sources(self, name: str) -> list[str]:
        """The code cells' sources, read from the server (the DOM may not
        hold the text of cells far outside the viewport)."""
        nb = self.lab.api(f"/api/contents/{name}?content=1")["content"]
        return [
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"]
            if c["cell_type"] == "code"
        ]

    def cell_source(self, index: int) -> str:
        return (self.cell(index).locator(".jp-InputArea-editor .cm-content").text_content() or "").strip()

    def prompt(self, index: int) -> str:
        return (self.cell(index).locator(".jp-InputArea-prompt").text_content() or "").strip()

    def output_text(self, index: int) -> str:
        # textContent, not innerText: JupyterLab's notebook windowing hides
        # cells outside the viewport (content-visibility), and innerText of a
        # hidden cell is empty.
        return self.cell(index).locator(".jp-OutputArea").text_content() or ""

    def run_cell(self, index: int) -> None:
        """Click into the cell's editor and press Ctrl+Enter, as a user would."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed(timeout=10_000)
        editor = cell.locator(".jp-InputArea-editor .cm-content")
        editor.click(timeout=10_000)
        self.page.keyboard.press("Control+Enter")
        # Ctrl+Enter leaves the notebook in command mode on the same cell; the
        # prompt turns to [*] at once (or to [n] if the kernel was very quick).
        try:
            self.page.wait_for_function(
                "([sel, i]) => { const p = document.querySelectorAll(sel)[i]"
                "?.querySelector('.jp-InputArea-prompt'); return p && /\\[(\\*|\\d+)\\]/.test(p.textContent); }",
                arg=[CODE_CELLS, index],
                timeout=10_000,
            )
        except Exception:
            raise BrowserTestError(
                f"Ctrl+Enter in cell {index} ({self.cell_source(index)!r}) did not start it; "
                + self.diagnostics()
            ) from None

    def wait_cell_done(self, index: int, timeout: float = CELL_TIMEOUT) -> int:
        """Wait until the cell's prompt shows an execution count; return it."""
        try:
            self.page.wait_for_function(
                "([sel, i]) => { const p = document.querySelectorAll(sel)[i]"
                "?.querySelector('.jp-InputArea-prompt'); return p && /\\[\\d+\\]/.test(p.textContent); }",
                arg=[CODE_CELLS, index],
                timeout=timeout * 1000,
            )
        except Exception:
            raise BrowserTestError(
                f"cell {index} ({self.cell_source(index)!r}) did not finish within {timeout:.0f}s "
                f"(prompt {self.prompt(index)!r}); " + self.diagnostics()
            ) from None
        return int(re.search(r"\[(\d+)\]", self.prompt(index)).group(1))

    def input_box(self, index: int):
        return self.cell(index).locator(".jp-Stdin input.jp-Stdin-input")

    def wait_input_box(self, index: int, timeout: float = INPUT_BOX_TIMEOUT):
        """The input box the kernel opens in the cell (stdin input_request).
        Fails at once if the cell finishes without one."""
        box = self.input_box(index)
        deadline = time.monotonic() + timeout
        while True:
            if box.count() and box.first.is_visible():
                return box.first
            done = re.search(r"\[\d+\]", self.prompt(index))
            if done or time.monotonic() > deadline:
                why = "the cell finished without one" if done else f"none within {timeout:.0f}s"
                raise BrowserTestError(
                    f"the approval input box (stdin input_request) never appeared in cell {index} "
                    f"({self.cell_source(index)!r}): {why}; its output was: "
                    f"{self.output_text(index)[:1500]!r}; " + self.diagnostics()
                )
            self.page.wait_for_timeout(200)

    def answer(self, index: int, text: str) -> str:
        """Type `text` into the cell's input box and press Enter; return the prompt shown."""
        box = self.wait_input_box(index)
        prompt = (self.cell(index).locator(".jp-Stdin .jp-Stdin-prompt").first.text_content() or "").strip()
        box.click()
        box.press_sequentially(text, delay=20)
        self.page.keyboard.press("Enter")
        return prompt

    def findings_rows(self, index: int) -> int:
        """Rows of the findings table in a %findings cell (0 if it shows none)."""
        table = self.cell(index).locator(".jp-OutputArea-output table.runbook-findings")
        return table.first.locator("tbody tr").count() if table.count() else 0

    def errors(self) -> list[str]:
        """Text of every error output in the notebook (JupyterLab renders the
        error message type as application/vnd.jupyter.stderr)."""
        return [
            e.text_content() or ""
            for e in self.page.locator(
                f"{CODE_CELLS} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
            ).all()
        ]

    def diagnostics(self) -> str:
        parts = []
        if self.console:
            parts.append("browser console (tail):\n  " + "\n  ".join(self.console[-15:]))
        return "\n".join(parts) + self.lab.log_tail(2500)
