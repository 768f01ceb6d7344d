"""The audit trail is private to its owner and tamper-evident: `%audit` says
whether the hash chain is intact and `%audit --verify` names every edited,
removed, reordered or cut-off record by its line number."""

from __future__ import annotations

import json
import os
import stat

import pytest

from conftest import RUNBOOK_MIME, audit_path, ec2_19_hostile, last_bundle, open_rows

pytestmark = pytest.mark.usefixtures("no_ambient_aws")


def approved_trail(kernel) -> list[str]:
    """A sandbox run, approved twice (the second finds it already applied); returns the trail's lines."""
    n = next(r["number"] for r in open_rows(kernel) if ec2_19_hostile(r))
    plan = last_bundle(kernel.ok(f"%remediate {n}"))[RUNBOOK_MIME]["plan"]
    kernel.ok(f"%approve {plan['id']} --yes")
    kernel.ok(f"%approve {plan['id']} --yes")
    lines = audit_path(kernel).read_text().splitlines()
    assert len(lines) >= 6, lines
    return lines


def verify(kernel) -> dict:
    return last_bundle(kernel.ok("%audit --verify"))[RUNBOOK_MIME]


def rewrite(kernel, lines: list[str]) -> None:
    audit_path(kernel).write_text("\n".join(lines) + "\n")


@pytest.fixture
def allow_yes(kernel_factory, tmp_path):
    return kernel_factory(RUNBOOK_APPROVAL="allow-yes", RUNBOOK_AUDIT_LOG=str(tmp_path / "trail" / "audit.jsonl"))


def test_a_new_trail_is_private_and_intact(allow_yes):
    approved_trail(allow_yes)
    path = audit_path(allow_yes)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = verify(allow_yes)
    assert data["intact"] is True and data["chain"]["breaks"] == [], data
    assert len(data["chain"]["file_id"]) == 32
    shown = last_bundle(allow_yes.ok("%audit"))
    assert "Hash chain: intact" in shown["text/plain"]


def test_an_open_trail_is_tightened_and_said_so(allow_yes):
    approved_trail(allow_yes)
    path = audit_path(allow_yes)
    os.chmod(path, 0o644)
    shown = last_bundle(allow_yes.ok("%audit"))
    assert "was mode 0644" in shown["text/plain"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_edited_record_is_named_by_line(allow_yes):
    lines = approved_trail(allow_yes)
    record = json.loads(lines[3])
    record["actor"] = "someone-else"
    lines[3] = json.dumps(record)
    rewrite(allow_yes, lines)
    breaks = verify(allow_yes)["chain"]["breaks"]
    assert [(b["line"], b["kind"]) for b in breaks] == [(4, "edited")], breaks
    shown = last_bundle(allow_yes.ok("%audit"))["text/plain"]
    assert "BROKEN at line(s) 4" in shown


def test_a_removed_record_is_named_by_line(allow_yes):
    lines = approved_trail(allow_yes)
    del lines[2]
    rewrite(allow_yes, lines)
    breaks = verify(allow_yes)["chain"]["breaks"]
    assert [(b["line"], b["kind"]) for b in breaks] == [(3, "removed")], breaks


def test_reordered_records_are_named_by_line(allow_yes):
    lines = approved_trail(allow_yes)
    lines[4], lines[5] = lines[5], lines[4]
    rewrite(allow_yes, lines)
    breaks = verify(allow_yes)["chain"]["breaks"]
    assert breaks and {b["kind"] for b in breaks} == {"reordered"}, breaks
    assert breaks[0]["line"] == 5


def test_a_cut_off_tail_is_reported(allow_yes):
    approved_trail(allow_yes)
    path = audit_path(allow_yes)
    path.write_bytes(path.read_bytes()[:-15])
    breaks = verify(allow_yes)["chain"]["breaks"]
    assert [b["kind"] for b in breaks] == ["truncated"], breaks
