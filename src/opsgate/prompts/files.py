"""The prompt file (`prompts/support-triage.yaml`): what `opsgate prompts push` reads, `pull`
writes, and the diff compares, so a version read back from the gateway is the file that made it.

    name: support-triage            # optional: the file name without .yaml otherwise
    description: Routes a ticket    # optional
    model: gpt-4o-mini
    params: {temperature: 0.2, max_tokens: 400}
    overrides: [temperature]        # what a request may set to another value
    variables:
      ticket: {type: string, max_length: 8000}
      tier: {type: string, enum: [free, pro], default: free}
    messages:
      - role: system
        content: |
          You triage support tickets{% if tier == "pro" %} for a pro customer{% endif %}.
      - role: user
        content: "{{ ticket }}"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from opsgate.prompts.spec import PromptSpec

FILE_ONLY = ("name",)
"""Keys a file may hold that are not part of the version's content."""


class _Literal(str):
    """A string YAML writes as a `|` block (multi-line message templates)."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def read_file(path: Path) -> tuple[str, dict[str, Any]]:
    """(prompt name, the file's content fields) of one YAML file; ValueError naming the file
    when it is not a mapping."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a prompt file is a YAML mapping")
    name = data.pop("name", None) or path.stem
    return str(name), data


def to_file(name: str, spec: PromptSpec) -> str:
    """The YAML file for a version (message templates as `|` blocks where they hold lines)."""
    data: dict[str, Any] = {"name": name, **spec.model_dump(mode="json", exclude_none=True)}
    for key in ("params", "variables", "overrides"):
        if not data.get(key):
            data.pop(key, None)
    for message in data["messages"]:
        if "\n" in message["content"]:
            message["content"] = _Literal(message["content"])
    for var in data.get("variables", {}).values():
        if var.get("enum"):
            var["enum"] = list(var["enum"])
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
