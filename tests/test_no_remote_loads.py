"""Model output must not leak data: a prompt-injected answer full of remote images,
raw HTML, CSS url() and autolinks, through %summarize, %ask, %remediate (the plan's
rationale and model advice) and a %kb passage, must leave nothing in any output
bundle that a browser would load when the cell shows.

Every display_data and update_display_data the kernel sends is checked, streaming
updates included: its text/html is parsed with html.parser, and its text/markdown
(which JupyterLab renders itself, images included) is rendered with mistune and
parsed the same way."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import (
    HOSTILE_GROUP,
    RUNBOOK_MIME,
    bedrock_env,
    ec2_19_hostile,
    final_displays,
    hostile_rule_ids,
    last_bundle,
    listing_number,
    revoke_input,
)
from hostile_answers import ATTACKER, HOSTILE, HOSTILE_POLICY
from servers import bedrock as br

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

# Elements that load something as soon as they are shown, and attributes that do.
LOADING_TAGS = {
    "img", "iframe", "frame", "frameset", "object", "embed", "video", "audio", "source", "track",
    "picture", "link", "style", "script", "svg", "image", "use", "meta", "base", "form", "input",
    "applet", "portal", "bgsound",
}
LOADING_ATTRS = {"src", "srcset", "data", "poster", "background", "action", "formaction", "xlink:href", "lowsrc", "dynsrc", "ping"}


class LoadFinder(HTMLParser):
    """Collects every element or attribute in an HTML fragment that could load a URL."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in LOADING_TAGS:
            self.problems.append(f"<{tag} {attrs}>")
        for name, value in attrs:
            value = value or ""
            if name in LOADING_ATTRS:
                self.problems.append(f"{name}= on <{tag}>")
            elif name == "style" and "url(" in value.replace(" ", "").lower():
                self.problems.append(f"style url() on <{tag}>")
            elif name == "href":
                if tag != "a":
                    self.problems.append(f"href on <{tag}>")
                elif not value.lower().startswith(("https://", "http://")):
                    self.problems.append(f"non-web link {value!r}")
                else:
                    self.links.append(value)
            elif name.startswith("on"):
                self.problems.append(f"{name}= on <{tag}>")

    handle_startendtag = handle_starttag


def loads_in_html(html: str) -> LoadFinder:
    finder = LoadFinder()
    finder.feed(html)
    finder.close()
    return finder


def markdown_as_html(markdown: str) -> str:
    mistune = pytest.importorskip("mistune")
    # GFM-like, with raw HTML passed through, as JupyterLab's renderer does before sanitising.
    return mistune.create_markdown(escape=False, plugins=["table", "strikethrough", "url"])(markdown)


def every_bundle(res) -> list[dict]:
    """Every MIME bundle a cell sent, streaming updates included."""
    return [
        m["content"]["data"]
        for m in res.iopub
        if m["msg_type"] in ("display_data", "update_display_data", "execute_result")
    ]


def assert_loads_nothing(res) -> list[str]:
    """No bundle of the cell can make the browser load anything. Returns the web links shown."""
    bundles = every_bundle(res)
    assert bundles, res.describe()
    links: list[str] = []
    for data in bundles:
        for mime, html in (("text/html", data.get("text/html")), ("text/markdown", data.get("text/markdown"))):
            if html is None:
                continue
            if mime == "text/markdown":
                html = markdown_as_html(html)
            found = loads_in_html(html)
            assert not found.problems, f"{mime} would load: {found.problems}\n{html[:3000]}"
            links += found.links
    return links


def assert_shows_targets(html: str) -> None:
    """The image's alt text and URL show as text, and the web link shows its target."""
    assert f"[image: status (https://{ATTACKER}/p.png?acct=222222222222)]" in html, html
    assert f"(https://{ATTACKER}/ref.png?acct=222222222222)" in html, html
    assert "&lt;iframe" in html, html
    assert '<a href="https://docs.aws.amazon.com/securityhub/">docs</a> (https://docs.aws.amazon.com/securityhub/)' in html, html
    assert "trap (javascript:fetch(" in html, "a javascript: target is shown as text, not linked"
    assert 'href="javascript' not in html


@pytest.fixture
def hostile_kb(tmp_path) -> Path:
    root = tmp_path / "hostile-kb"
    root.mkdir()
    (root / "password.md").write_text(HOSTILE_POLICY, encoding="utf-8")
    return root


@pytest.fixture
def bk(kernel_factory, bedrock, hostile_kb):
    return kernel_factory(**bedrock_env(bedrock, RUNBOOK_KB=str(hostile_kb)))


def test_summarize_of_a_hostile_finding_loads_nothing(bk, bedrock):
    n = listing_number(bk, ec2_19_hostile)
    bedrock.enqueue(br.text(HOSTILE, chunks=40))
    res = bk.ok(f"%summarize {n}")
    assert len(res.of_type("update_display_data")) >= 5, "streamed in pieces, each one checked"
    links = assert_loads_nothing(res)
    final = last_bundle(res)
    assert_shows_targets(final["text/html"])
    assert final[RUNBOOK_MIME]["markdown"] == HOSTILE, "the record keeps the model's text as it was"
    # Only real http(s) links remain clickable, each showing its target.
    assert links and all(link.startswith("https://") for link in links)


def test_ask_answer_and_tool_results_load_nothing(bk, bedrock):
    n = listing_number(bk, ec2_19_hostile)
    bedrock.enqueue(
        br.tool_use("get_finding_details", {"finding": str(n)}, tool_use_id="t1", text_before=HOSTILE[:200]),
        br.text(HOSTILE, chunks=20),
    )
    res = bk.ok("%ask What is wrong with the CI runner group?")
    assert len(final_displays(res)) >= 2, res.describe()
    assert_loads_nothing(res)
    assert_shows_targets(last_bundle(res)["text/html"])


def test_plan_rationale_loads_nothing(bk, bedrock):
    n = listing_number(bk, ec2_19_hostile)
    rules = hostile_rule_ids(bk, n)
    bedrock.enqueue(br.tool_use("propose_remediation", revoke_input(HOSTILE_GROUP, rules, rationale=HOSTILE)))
    res = bk.ok(f"%remediate {n}")
    data = last_bundle(res)
    assert data[RUNBOOK_MIME]["plan"]["rationale"] == HOSTILE.strip()
    assert_loads_nothing(res)
    assert f"https://{ATTACKER}/p.png?acct=222222222222" in data["text/html"], "shown as text"


def test_model_advice_loads_nothing(bk, bedrock):
    n = listing_number(bk, lambda r: r["control_id"] == "Account.1")
    bedrock.enqueue(br.text(HOSTILE, chunks=10))
    res = bk.ok(f"%remediate {n}")
    assert last_bundle(res)[RUNBOOK_MIME]["executable"] is False
    assert_loads_nothing(res)
    assert_shows_targets(last_bundle(res)["text/html"])


def test_kb_passages_load_nothing(bk):
    res = bk.ok("%kb password length")
    data = last_bundle(res)
    assert data[RUNBOOK_MIME]["passages"], res.describe()
    assert_loads_nothing(res)
    assert f"https://{ATTACKER}/kb-raw.png" in data["text/html"], "shown as text"
    # The same passages inside an explanation ("organisation policy consulted").
    n = listing_number(bk, lambda r: r["control_id"] == "IAM.15")
    bk.ok("%config model=catalog")
    res = bk.ok(f"%summarize {n}")
    assert last_bundle(res)[RUNBOOK_MIME]["policy"]["consulted"] is True
    assert_loads_nothing(res)


def test_the_severity_chart_markdown_is_inert(bk):
    """The one text/markdown form the kernel sends is checked like the rest."""
    res = bk.ok("%findings")
    assert any("text/markdown" in d for d in every_bundle(res)), res.describe()
    assert_loads_nothing(res)


def test_the_checker_finds_what_it_must():
    """The checks above can fail: the old renderer's output and raw HTML are caught."""
    assert loads_in_html('<p><img src="https://a.example/p.png" alt="x"></p>').problems
    assert loads_in_html('<img srcset="https://a.example/p.png 2x">').problems
    assert loads_in_html('<div style="background: URL( https://a.example/x )">').problems
    assert loads_in_html('<link rel="stylesheet" href="https://a.example/s.css">').problems
    assert loads_in_html('<a href="javascript:alert(1)">x</a>').problems
    assert not loads_in_html('<a href="https://a.example/">https://a.example/</a> &lt;img src=x&gt;').problems
    assert loads_in_html(markdown_as_html("![x](https://a.example/p.png)")).problems
    assert loads_in_html(markdown_as_html("<img src=https://a.example/p.png>")).problems
    assert not loads_in_html(markdown_as_html("\\!\\[x\\]\\(https\\:\\/\\/a\\.example\\/p\\.png\\) \\<img\\>")).problems
