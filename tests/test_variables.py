"""Runbook variables end to end: %set, $NAME / ${NAME} expansion in magic lines
($$ for a literal $), errors naming unknown variables, and completion after $."""

from __future__ import annotations

import pytest

from conftest import RUNBOOK_MIME, assert_fails_with, final_displays, last_bundle

pytestmark = pytest.mark.usefixtures("no_ambient_aws")


def rows(res) -> list[dict]:
    for data in final_displays(res):
        shown = (data.get(RUNBOOK_MIME) or {}).get("shown")
        if shown is not None:
            return shown
    raise AssertionError(res.describe())


def variables(kernel) -> dict:
    return last_bundle(kernel.ok("%set"))[RUNBOOK_MIME]["variables"]


def test_variables_expand_in_magic_lines(kernel):
    kernel.ok('%set control=EC2.13 severity=CRITICAL,HIGH note="two words" price=$$5')
    assert variables(kernel) == {"control": "EC2.13", "severity": "CRITICAL,HIGH", "note": "two words", "price": "$5"}
    shown = rows(kernel.ok("%findings --all --control $control"))
    assert shown and {r["control_id"] for r in shown} == {"EC2.13"}
    shown = rows(kernel.ok("%findings --all --control ${control} --severity $severity"))
    assert shown and all(r["severity"] in ("CRITICAL", "HIGH") for r in shown)
    # A value with spaces stays one argument.
    kernel.ok("%set copy=$note")
    assert variables(kernel)["copy"] == "two words"
    # Set and used in one cell.
    shown = rows(kernel.ok("%set c=KMS.4\n%findings --all --control $c"))
    assert shown and {r["control_id"] for r in shown} == {"KMS.4"}
    kernel.ok("%set --unset c,copy")
    assert "c" not in variables(kernel) and "copy" not in variables(kernel)


def test_unknown_and_bad_variables_are_named(kernel):
    kernel.ok("%set control=EC2.13")
    assert_fails_with(kernel, "%findings --control $nope", "UsageError", ["$nope is not defined", "control", "%set nope=VALUE"])
    assert_fails_with(kernel, "%findings --control ${control", "UsageError", ["not closed"])
    assert_fails_with(kernel, "%set 9lives=1", "UsageError", ["not a variable name"])
    assert_fails_with(kernel, "%set novalue", "UsageError", ["NAME=VALUE"])
    assert_fails_with(kernel, "%set --unset never", "UsageError", ["never is not set"])
    # A bad assignment sets none of the others on its line.
    kernel.execute("%set fine=1 9bad=2")
    assert "fine" not in variables(kernel)


def test_completion_offers_defined_names_after_a_dollar(kernel):
    kernel.ok("%set control=EC2.13 count=3 region_name=us-east-1")
    code = "%findings --control $co"
    reply = kernel.complete(code)
    assert sorted(reply["matches"]) == ["$control", "$count"], reply
    assert reply["cursor_start"] == code.index("$")
    code = "%findings --region ${reg"
    reply = kernel.complete(code)
    assert reply["matches"] == ["${region_name}"], reply
