"""papermill support for the Security Runbook kernel (kernelspec `security-runbook`).

papermill writes a notebook's parameters as a cell in the kernel's language. For
this kernel that cell is `%set NAME=VALUE` lines, which the runbook's magics read
as `$NAME`:

    papermill notebooks/01-summarize-and-remediate.ipynb out.ipynb -p control EC2.13

Values are quoted so the kernel reads each as one argument, and `$` is doubled so
a value is never expanded again. Lists become comma-separated values (the form
`--severity` and `--control` take), dicts JSON, None an empty value.
"""

from __future__ import annotations

import json
import re
import shlex

from papermill.engines import NBClientEngine
from papermill.models import Parameter
from papermill.translators import Translator, papermill_translators

KERNEL_NAME = "security-runbook"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class RunbookTranslator(Translator):
    @classmethod
    def translate_str(cls, val):
        return str(val)

    @classmethod
    def translate_none(cls, val):
        return ""

    @classmethod
    def translate_bool(cls, val):
        return "true" if val else "false"

    @classmethod
    def translate_list(cls, val):
        return ",".join(cls.translate(v) for v in val)

    @classmethod
    def translate_dict(cls, val):
        return json.dumps(val, separators=(",", ":"))

    @classmethod
    def comment(cls, cmt_str):
        return f"# {cmt_str}".strip()

    @classmethod
    def assign(cls, name, str_val):
        if not NAME.match(name):
            raise ValueError(
                f"parameter name {name!r} is not a runbook variable name: "
                "a letter or _ then letters, digits or _ (at most 64)"
            )
        return "%set " + shlex.quote(f"{name}={str_val.replace('$', '$$')}")

    @classmethod
    def inspect(cls, parameters_cell):
        """The parameters a notebook's `parameters` cell defines (for --help-notebook)."""
        found = []
        for line in parameters_cell.source.splitlines():
            words = line.strip().split(None, 1)
            if len(words) < 2 or words[0] != "%set":
                continue
            for item in shlex.split(words[1]):
                name, sep, value = item.partition("=")
                if sep and NAME.match(name):
                    found.append(Parameter(name=name, inferred_type_name="str", default=value, help=""))
        return found


class RunbookEngine(NBClientEngine):
    """papermill's own nbclient engine, under this kernel's name: loading it is
    what registers the translator (see the module docstring)."""


papermill_translators.register(KERNEL_NAME, RunbookTranslator)
