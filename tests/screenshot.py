"""The README's screenshot: JupyterLab running notebook 01 in the sandbox.

    .venv/bin/python tests/screenshot.py [OUT.png]     # default docs/jupyterlab-notebook-01.png

Same machinery as the browser test (tests/jupyterlab_browser.py): JupyterLab
from .venv on 127.0.0.1 with a token, a private copy of notebooks/, the
`security-runbook` kernelspec installed in .venv (`make python-tests` installs
it), headless /usr/bin/chromium through Playwright, a 1400x1000 picture.  Every code
cell runs with Ctrl+Enter; the approval box gets the plan id typed in.  For
the picture the file browser is closed and the outputs of %finding and
%summarize are collapsed, so the findings table and the plan fit on one screen.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jupyterlab_browser import PLAN_ID, ROOT, Browser, JupyterLab, NotebookPage  # noqa: E402

NOTEBOOK = "01-summarize-and-remediate.ipynb"
DEFAULT_OUT = ROOT / "docs" / "jupyterlab-notebook-01.png"


def main(out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="runbook-screenshot-") as tmp, JupyterLab(Path(tmp)) as lab:
        # 1866x1333 CSS pixels at 0.75: a 1400x1000 picture with room for the table and the plan.
        with Browser(viewport=(1866, 1333), scale=0.75) as browser:
            nb = NotebookPage(browser.new_page(), lab)
            nb.open(NOTEBOOK)
            page = nb.page
            sources = nb.code_sources(NOTEBOOK)
            plan_id = None
            for i, src in enumerate(sources):
                nb.run_cell(i)
                if src.lstrip().startswith("%approve"):
                    nb.answer(i, plan_id)
                nb.wait_cell_done(i)
                if src.lstrip().startswith("%remediate"):
                    plan_id = PLAN_ID.search(nb.output_text(i)).group(0)
            if nb.errors():
                raise SystemExit(f"the notebook showed errors: {nb.errors()}")

            # Room for the picture: close the file browser, fold the long outputs.
            page.keyboard.press("Control+b")
            for cell in page.locator(".jp-MarkdownCell").all():
                heading = cell.locator(".jp-RenderedMarkdown h2")
                if heading.count() and re.match(r"\s*[23]\.", heading.first.text_content() or ""):
                    cell.scroll_into_view_if_needed()
                    cell.hover()
                    cell.locator(".jp-collapseHeadingButton").first.click()
            first = next(i for i, s in enumerate(sources) if s.lstrip().startswith("%findings"))
            nb.cell(first).locator(".jp-InputPrompt").click()  # select the listing, not a heading
            page.mouse.move(5, 600)  # no hover toolbar over a cell
            nb.cell(first).evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out))
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
