"""`Template`: a parsed template and its bounded renderer.

Rendering reads only JSON values (what a caller sent, or a declared default): dict keys, list
indexes, strings, numbers, booleans, null. Every value is inserted as text and never parsed
again, so a variable holding `{{ x }}` prints those characters. Three budgets bound the work
whatever the template and values: steps (nodes visited), loop iterations and output size; going
past one is a 400 (`TemplateLimitError`), never a hang or an exhausted process.

The output is a list of pieces, each flagged when it came from a variable: the serving stage
keeps those pieces visible to the input guard as untrusted text (prompts/render.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from opsgate.prompts.errors import TemplateLimitError, TemplateRenderError
from opsgate.prompts.syntax import (
    Compare,
    Condition,
    For,
    If,
    Literal_,
    Node,
    Not,
    Output,
    Path,
    Text,
    parse,
    variables_used,
)

MAX_STEPS = 100_000
MAX_ITERATIONS = 10_000
MAX_OUTPUT_CHARS = 1_000_000

Piece = tuple[str, bool]
"""(text, from a variable)."""

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Limits:
    steps: int = MAX_STEPS
    iterations: int = MAX_ITERATIONS
    output_chars: int = MAX_OUTPUT_CHARS


class Template:
    """A parsed template; `render` is safe to call from any number of requests at once."""

    __slots__ = ("nodes", "source", "static", "variables")

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes: tuple[Node, ...] = parse(source)
        self.variables: dict[str, Path] = variables_used(self.nodes)
        """The variables it reads, each with the first place it does."""
        only = self.nodes[0] if len(self.nodes) == 1 else None
        self.static: str | None = (
            only.text if isinstance(only, Text) else ("" if not self.nodes else None)
        )
        """The whole text when the template has no tags (the common system prompt)."""

    def render(self, values: Mapping[str, Any], limits: Limits = Limits()) -> list[Piece]:
        if self.static is not None:
            return [(self.static, False)] if self.static else []
        run = _Run(values, limits)
        run.nodes(self.nodes)
        return run.out

    def render_text(self, values: Mapping[str, Any], limits: Limits = Limits()) -> str:
        return "".join(text for text, _ in self.render(values, limits))


class _Loop:
    """The `loop` variable inside a `for`: index, index0, first, last, length."""

    __slots__ = ("index0", "length")

    def __init__(self, length: int) -> None:
        self.length = length
        self.index0 = 0

    def get(self, name: str) -> Any:
        match name:
            case "index":
                return self.index0 + 1
            case "index0":
                return self.index0
            case "first":
                return self.index0 == 0
            case "last":
                return self.index0 == self.length - 1
            case "length":
                return self.length
        return _MISSING


class _Run:
    __slots__ = ("iterations", "limits", "out", "scopes", "size", "steps", "values")

    def __init__(self, values: Mapping[str, Any], limits: Limits) -> None:
        self.values = values
        self.limits = limits
        self.scopes: list[tuple[str, Any, _Loop]] = []
        self.out: list[Piece] = []
        self.steps = 0
        self.iterations = 0
        self.size = 0

    def emit(self, text: str, variable: bool) -> None:
        self.size += len(text)
        if self.size > self.limits.output_chars:
            raise TemplateLimitError(
                f"the rendered prompt is over {self.limits.output_chars} characters"
            )
        if text:
            self.out.append((text, variable))

    def nodes(self, body: tuple[Node, ...]) -> None:
        for node in body:
            self.steps += 1
            if self.steps > self.limits.steps:
                raise TemplateLimitError(
                    f"rendering took over {self.limits.steps} steps; simplify the template"
                )
            if isinstance(node, Text):
                self.emit(node.text, False)
            elif isinstance(node, Output):
                self.emit(as_text(self.lookup(node.path, strict=True)), True)
            elif isinstance(node, If):
                self.branch(node)
            else:
                self.loop(node)

    def branch(self, node: If) -> None:
        for condition, body in node.branches:
            if truthy(self.test(condition)):
                self.nodes(body)
                return
        self.nodes(node.otherwise)

    def loop(self, node: For) -> None:
        items = self.lookup(node.items, strict=False)
        if items is None or items is _MISSING:
            return
        if not isinstance(items, list):
            raise TemplateRenderError(
                f"`{node.items.text}` is {_kind(items)}, not a list, so it cannot be looped over "
                f"(line {node.items.line}, column {node.items.column})",
                param=f"variables.{node.items.root}",
            )
        counter = _Loop(len(items))
        self.scopes.append((node.name, None, counter))
        try:
            for index, item in enumerate(items):
                self.iterations += 1
                if self.iterations > self.limits.iterations:
                    raise TemplateLimitError(
                        f"loops ran over {self.limits.iterations} iterations in all"
                    )
                counter.index0 = index
                self.scopes[-1] = (node.name, item, counter)
                self.nodes(node.body)
        finally:
            self.scopes.pop()

    def test(self, cond: Condition) -> Any:
        if isinstance(cond, Path):
            found = self.lookup(cond, strict=False)
            return None if found is _MISSING else found
        if isinstance(cond, Literal_):
            return cond.value
        if isinstance(cond, Compare):
            same = equal(self.test(cond.left), self.test(cond.right))
            return same if cond.op == "==" else not same
        if isinstance(cond, Not):
            return not truthy(self.test(cond.inner))
        if cond.op == "and":
            return all(truthy(self.test(p)) for p in cond.parts)
        return any(truthy(self.test(p)) for p in cond.parts)

    def lookup(self, path: Path, *, strict: bool) -> Any:
        """The value at `path`; a missing one is an error when printed (`strict`) and
        `_MISSING` (false) when tested."""
        root, rest = path.root, path.segments[1:]
        value: Any = _MISSING
        for name, item, counter in reversed(self.scopes):
            if root == name:
                value = item
                break
            if root == "loop":
                value = counter
                break
        else:
            value = self.values.get(root, _MISSING)
        for segment in rest:
            if isinstance(value, _Loop):
                value = value.get(str(segment))
            elif isinstance(value, dict):
                value = value.get(str(segment), _MISSING)
            elif isinstance(value, list) and isinstance(segment, int):
                value = value[segment] if segment < len(value) else _MISSING
            else:
                value = _MISSING
            if value is _MISSING:
                break
        if value is _MISSING and strict:
            raise TemplateRenderError(
                f"`{path.text}` has no value (line {path.line}, column {path.column})",
                param=f"variables.{root}",
            )
        if isinstance(value, _Loop):
            if strict:
                raise TemplateRenderError(
                    f"`{path.text}` is the loop itself; print loop.index, loop.first, ... "
                    f"(line {path.line}, column {path.column})"
                )
            return True
        return value


def as_text(value: Any) -> str:
    """A JSON value as the text a prompt shows: strings as they are, null as nothing, booleans
    as true/false, numbers and containers as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    return orjson.dumps(value).decode()


def truthy(value: Any) -> bool:
    if value is _MISSING or value is None:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return bool(value)


def equal(left: Any, right: Any) -> bool:
    """JSON equality: `true` is not `1`, `1` is `1.0`."""
    if left is _MISSING:
        left = None
    if right is _MISSING:
        right = None
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return bool(left == right)


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__
