"""The registry's records: a prompt (team-scoped name), its immutable versions, its movable
labels and their history, and a reference to one of them (`support-triage@production`)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from opsgate.errors import BadRequestError
from opsgate.prompts.spec import LABEL_PATTERN, PROMPT_NAME_PATTERN, PromptSpec

DEFAULT_LABEL = "production"
"""What a reference without `@label` or `@version` serves."""
PROTECTED_LABEL = "production"
"""Moving this label needs the `prompts:promote` permission."""
MODEL_PREFIX = "prompt:"
"""`model: "prompt:<name>[@label|@version]"` names a prompt instead of a model."""

NO_TEAM = ""
"""The namespace of prompts owned by no team (pushed by an admin or the master key)."""

_NAME = re.compile(PROMPT_NAME_PATTERN)
_LABEL = re.compile(LABEL_PATTERN)


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One immutable version: its content, who made it, when, and the hash of its content."""

    prompt_id: str
    team_id: str
    name: str
    version: int
    spec: PromptSpec
    content_hash: str
    message: str | None
    author: str | None
    created_at: float

    @property
    def etag(self) -> str:
        return f'"{self.content_hash}"'


@dataclass(frozen=True, slots=True)
class LabelState:
    """Where a label points now."""

    label: str
    version: int
    updated_at: float
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class LabelMove:
    """One entry of a label's history (`from_version` None: the label was new)."""

    label: str
    from_version: int | None
    to_version: int
    at: float
    actor: str | None
    seq: int = 0
    """Its order among the prompt's moves (ascending), ties on `at` included; 0 for a move to
    where the label already pointed, which changes nothing and is not recorded."""

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version


@dataclass(frozen=True, slots=True)
class PromptInfo:
    """A prompt in a listing: its latest version and its labels."""

    prompt_id: str
    team_id: str
    name: str
    latest_version: int
    created_at: float
    updated_at: float
    description: str | None
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PromptRef:
    """Which version to serve: a name and a label or a version number (not both)."""

    name: str
    label: str | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        if self.label is None and self.version is None:
            object.__setattr__(self, "label", DEFAULT_LABEL)

    @property
    def text(self) -> str:
        return f"{self.name}@{self.version if self.version is not None else self.label}"


def check_name(name: Any, param: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequestError(
            f"prompt name {name!r}: 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
            code="invalid_prompt_name",
            param=param,
        )
    return name


def check_label(label: Any, param: str = "label") -> str:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise BadRequestError(
            f"label {label!r}: 1-64 lower-case letters, digits, '.', '_' or '-'",
            code="invalid_label",
            param=param,
        )
    return label


@functools.lru_cache(maxsize=1024)
def parse_reference(text: str, param: str = "model") -> PromptRef:
    """`support-triage`, `support-triage@production`, `support-triage@7` (remembered: the same
    few references arrive on every request)."""
    name, sep, selector = text.partition("@")
    check_name(name, param)
    if not sep:
        return PromptRef(name)
    if selector.isdigit():
        return PromptRef(name, version=int(selector))
    return PromptRef(name, label=check_label(selector, param))
