"""The prompt registry: named, team-scoped prompts with immutable versions and movable labels,
the sandboxed template language they are written in, and what serving one does to a request.

`PromptService` (one per process, `gateway.prompts`) resolves `PromptRef`s from an in-memory
cache kept honest across replicas, and pushes versions and moves labels (audited). The pipeline
stages that use it are in `opsgate.pipeline.stages.prompt`; the file format in `files`; the
language in `syntax` and `template`. See docs/prompts.md.
"""

from opsgate.prompts.cache import Resolved
from opsgate.prompts.model import (
    DEFAULT_LABEL,
    MODEL_PREFIX,
    NO_TEAM,
    PROTECTED_LABEL,
    LabelMove,
    LabelState,
    PromptInfo,
    PromptRef,
    PromptVersion,
    parse_reference,
)
from opsgate.prompts.request import PromptCall, PromptUse, apply, join_parts, read_call
from opsgate.prompts.service import PromptService, namespace
from opsgate.prompts.spec import PromptPush, PromptSpec
from opsgate.prompts.store import PromptStore, Pushed
from opsgate.prompts.template import Template
from opsgate.prompts.variables import Variable, bind

__all__ = [
    "DEFAULT_LABEL",
    "MODEL_PREFIX",
    "NO_TEAM",
    "PROTECTED_LABEL",
    "LabelMove",
    "LabelState",
    "PromptCall",
    "PromptInfo",
    "PromptPush",
    "PromptRef",
    "PromptService",
    "PromptSpec",
    "PromptStore",
    "PromptUse",
    "PromptVersion",
    "Pushed",
    "Resolved",
    "Template",
    "Variable",
    "apply",
    "bind",
    "join_parts",
    "namespace",
    "parse_reference",
    "read_call",
]
