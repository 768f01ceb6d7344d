"""lang=ja end to end: the words around results come in Japanese. Every message
of the kernel's two-language catalog (kernel/src/render/text.rs, which a Rust
test checks is fully translated) is read here, and a Japanese run of the whole
flow must show none of their English texts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import final_displays

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

TEXTS = Path(__file__).resolve().parent.parent / "kernel" / "src" / "render" / "text.rs"
MESSAGE = re.compile(r'^\s*(\w+) => "((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)";$', re.M)


def catalog() -> dict[str, tuple[str, str]]:
    found = {m.group(1): (m.group(2), m.group(3)) for m in MESSAGE.finditer(TEXTS.read_text(encoding="utf-8"))}
    assert len(found) >= 40, "the message catalog could not be read"
    return found


def english_fragments() -> dict[str, list[str]]:
    """Per message, the literal parts of its English text long enough to be
    telling (short words such as "Plan" also appear inside ids and AWS names)."""
    out = {}
    for name, (en, _ja) in catalog().items():
        parts = [p.strip(" .;:—") for p in re.split(r"\{\d\}", en)]
        telling = [p for p in parts if len(p) >= 12]
        if telling:
            out[name] = telling
    return out


def test_the_catalog_is_translated():
    for name, (en, ja) in catalog().items():
        assert en != ja, name
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", ja), f"{name}: {ja!r}"
        assert sorted(re.findall(r"\{\d\}", en)) == sorted(re.findall(r"\{\d\}", ja)), name


def test_a_japanese_run_shows_no_english_catalog_text(kernel):
    shown = []
    for code in (
        "%config lang=ja",
        "%findings --control EC2.13",
        "%finding 1",
        "%remediate 1",
        "%approve last --dry-run",
        "%approve last --yes",
        "%findings --control EC2.13",
        "%audit --last 5",
        "%accounts",
        "%set",
        "%set region_name=us-east-1",
        "%config lang",
        "%help",
        "%sleep 0",
    ):
        res = kernel.ok(code)
        shown.extend(d.get("text/plain", "") + d.get("text/html", "") for d in final_displays(res))
    text = "\n".join(shown)
    leaks = {name: f for name, fragments in english_fragments().items() for f in fragments if f in text}
    assert not leaks, f"English shown with lang=ja: {leaks}"
    # ... and the Japanese is really there.
    for name in ("StateDone", "OutcomeDone", "FindingsHint", "ColTime", "AccountsHeading", "NoVariables", "MagicsHeading", "ColRecordState"):
        ja = catalog()[name][1]
        first = re.split(r"\{\d\}", ja)[0].strip()
        assert first and first in text, (name, first)
