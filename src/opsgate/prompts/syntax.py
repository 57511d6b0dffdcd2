"""The template language, parsed: `{{ path }}`, `{% if %}`/`{% elif %}`/`{% else %}`,
`{% for x in path %}`, `{# comments #}` and `{% raw %}`, nothing else.

Why our own parser rather than a restricted jinja2 sandbox: the sandbox starts from a language
with attribute access, calls, filters, macros, `format` and imports and tries to take the
dangerous parts away (its escape CVEs are all ways around that); here there is nothing to take
away. An expression is a dotted path into the JSON values a caller sent (dict keys and list
indexes, never Python attributes), a literal, or a comparison of those; no name starting with
`_` parses at all. There are no calls, so no recursion, and the parse is one linear pass.

Whitespace: a block tag (`{% %}`, `{# #}`) alone on its line leaves no line behind (its
indentation and line break go with it); a tag among text keeps the text around it as it is;
`{%-`, `-%}`, `{{-`, `-}}` strip all whitespace on that side, as in jinja2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from opsgate.prompts.errors import TemplateSyntaxError
from opsgate.prompts.lexer import Lines, Tag, tokens

MAX_DEPTH = 16
"""Blocks nested deeper than this are refused (and so is a path with more segments)."""

Segment = str | int
Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Path:
    """`user.address.city`, `items.0`: a variable and the keys or indexes under it."""

    segments: tuple[Segment, ...]
    line: int
    column: int

    @property
    def root(self) -> str:
        return str(self.segments[0])

    @property
    def text(self) -> str:
        return ".".join(str(s) for s in self.segments)


@dataclass(frozen=True, slots=True)
class Literal_:
    value: Scalar


Operand = Path | Literal_


@dataclass(frozen=True, slots=True)
class Compare:
    op: Literal["==", "!="]
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class Not:
    inner: Condition


@dataclass(frozen=True, slots=True)
class Junction:
    op: Literal["and", "or"]
    parts: tuple[Condition, ...]


Condition = Operand | Compare | Not | Junction


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Output:
    path: Path


@dataclass(frozen=True, slots=True)
class If:
    branches: tuple[tuple[Condition, tuple[Node, ...]], ...]
    otherwise: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class For:
    name: str
    items: Path
    body: tuple[Node, ...]


Node = Text | Output | If | For

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>==|!=)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    {"if", "elif", "else", "endif", "for", "in", "endfor", "not", "and", "or", "raw", "endraw"}
)
_CONSTANTS: dict[str, Scalar] = {
    "true": True,
    "false": False,
    "none": None,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


@dataclass(slots=True)
class _Word:
    kind: Literal["string", "number", "op", "name", "bad"]
    text: str
    offset: int


class _TagParser:
    """The words of one `{{ }}` or `{% %}` tag, and the small grammar inside it."""

    def __init__(self, tag: Tag, lines: Lines) -> None:
        self.lines = lines
        self.words: list[_Word] = []
        self.i = 0
        self.end = tag.offset + len(tag.body)
        for m in _TOKEN.finditer(tag.body):
            kind = m.lastgroup
            if kind is not None:  # a bad character fails when the parser reaches it
                offset = tag.offset + m.start(kind)
                self.words.append(_Word(kind, m.group(kind), offset))  # type: ignore[arg-type]

    def fail(self, message: str, offset: int | None = None) -> None:
        line, column = self.lines.at(self.end if offset is None else offset)
        raise TemplateSyntaxError(message, line, column)

    def peek(self) -> _Word | None:
        word = self.words[self.i] if self.i < len(self.words) else None
        if word is not None and word.kind == "bad":
            self.fail(f"unexpected character {word.text!r}", word.offset)
        return word

    def take(self) -> _Word:
        word = self.peek()
        if word is None:
            self.fail("the tag ends too early")
            raise AssertionError  # unreachable: fail raises
        self.i += 1
        return word

    def keyword(self, *names: str) -> bool:
        word = self.peek()
        if word is not None and word.kind == "name" and word.text in names:
            self.i += 1
            return True
        return False

    def done(self) -> None:
        word = self.peek()
        if word is not None:
            self.fail(f"unexpected {word.text!r}", word.offset)

    def path(self) -> Path:
        word = self.take()
        if word.kind != "name" or word.text in _KEYWORDS or word.text in _CONSTANTS:
            self.fail(f"expected a variable name, got {word.text!r}", word.offset)
        parts = word.text.split(".")
        if len(parts) > MAX_DEPTH:
            self.fail(f"a path may have at most {MAX_DEPTH} parts", word.offset)
        segments: list[Segment] = []
        for part in parts:
            if part.startswith("_"):
                self.fail(f"names starting with '_' are not allowed: {part!r}", word.offset)
            segments.append(int(part) if part.isdigit() else part)
        if isinstance(segments[0], int):
            self.fail(f"expected a variable name, got {word.text!r}", word.offset)
        return Path(tuple(segments), *self.lines.at(word.offset))

    def operand(self) -> Operand:
        word = self.peek()
        if word is None:
            self.fail("expected a value")
            raise AssertionError
        if word.kind == "string":
            self.i += 1
            return Literal_(_unquote(word.text))
        if word.kind == "number":
            self.i += 1
            return Literal_(float(word.text) if "." in word.text else int(word.text))
        if word.kind == "name" and word.text in _CONSTANTS:
            self.i += 1
            return Literal_(_CONSTANTS[word.text])
        return self.path()

    def condition(self) -> Condition:
        parts = [self._and()]
        while self.keyword("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else Junction("or", tuple(parts))

    def _and(self) -> Condition:
        parts = [self._not()]
        while self.keyword("and"):
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else Junction("and", tuple(parts))

    def _not(self) -> Condition:
        if self.keyword("not"):
            return Not(self._not())
        left = self.operand()
        word = self.peek()
        if word is not None and word.kind == "op":
            self.i += 1
            op: Literal["==", "!="] = "==" if word.text == "==" else "!="
            return Compare(op, left, self.operand())
        return left


def _unquote(text: str) -> str:
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


@dataclass(slots=True)
class _Open:
    """A block being parsed: what opened it and the nodes collected so far."""

    kind: Literal["if", "for", "root"]
    line: int
    column: int
    nodes: list[Node]
    branches: list[tuple[Condition, tuple[Node, ...]]]
    condition: Condition | None = None
    otherwise: bool = False
    loop: tuple[str, Path] | None = None


def parse(source: str) -> tuple[Node, ...]:
    """The node tree of `source`, or `TemplateSyntaxError` with the line and column."""
    lines = Lines(source)
    stack = [_Open("root", 1, 1, [], [])]
    for token in tokens(source, lines):
        if isinstance(token, str):
            if token:
                stack[-1].nodes.append(Text(token))
            continue
        words = _TagParser(token, lines)
        if token.kind == "{{":
            path = words.path()
            words.done()
            stack[-1].nodes.append(Output(path))
            continue
        _block(words, stack, lines, token)
    if len(stack) > 1:
        top = stack[-1]
        raise TemplateSyntaxError(f"{{% {top.kind} %}} is never closed", top.line, top.column)
    return _merge(stack[0].nodes)


def _block(words: _TagParser, stack: list[_Open], lines: Lines, tag: Tag) -> None:
    first = words.take()
    name = first.text if first.kind == "name" else ""
    line, column = lines.at(first.offset)
    top = stack[-1]
    if name in ("if", "for"):
        if len(stack) > MAX_DEPTH:
            words.fail(f"blocks may nest at most {MAX_DEPTH} deep", first.offset)
        block = _Open(name, line, column, [], [])  # type: ignore[arg-type]
        if name == "if":
            block.condition = words.condition()
        else:
            var = words.path()
            if len(var.segments) != 1:
                words.fail("a loop variable is a plain name", first.offset)
            if not words.keyword("in"):
                words.fail("expected `in` after the loop variable")
            block.loop = (var.root, words.path())
        words.done()
        stack.append(block)
    elif name in ("elif", "else"):
        if top.kind != "if" or top.otherwise:
            words.fail(f"{{% {name} %}} outside an {{% if %}}", first.offset)
        assert top.condition is not None
        top.branches.append((top.condition, _merge(top.nodes)))
        top.nodes = []
        if name == "elif":
            top.condition = words.condition()
        else:
            top.otherwise = True
        words.done()
    elif name in ("endif", "endfor"):
        if top.kind != name[3:]:
            words.fail(f"{{% {name} %}} does not close the open block", first.offset)
        words.done()
        stack.pop()
        stack[-1].nodes.append(_close(top))
    else:
        known = "if, elif, else, endif, for, endfor, raw"
        words.fail(f"unknown tag {first.text!r} (known: {known})", first.offset)


def _close(block: _Open) -> Node:
    body = _merge(block.nodes)
    if block.kind == "for":
        assert block.loop is not None
        return For(block.loop[0], block.loop[1], body)
    if block.otherwise:
        return If(tuple(block.branches), body)
    assert block.condition is not None
    return If((*block.branches, (block.condition, body)), ())


def _merge(nodes: list[Node]) -> tuple[Node, ...]:
    """Adjacent text pieces as one (comments and raw blocks split them)."""
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, Text) and out and isinstance(out[-1], Text):
            out[-1] = Text(out[-1].text + node.text)
        else:
            out.append(node)
    return tuple(out)


def variables_used(nodes: tuple[Node, ...]) -> dict[str, Path]:
    """Every variable a template reads (loop variables and `loop` excepted), with the first
    place it is read, for checking against the declared variables when a version is pushed."""
    found: dict[str, Path] = {}

    def operand(op: Condition, bound: frozenset[str]) -> None:
        if isinstance(op, Path):
            if op.root not in bound:
                found.setdefault(op.root, op)
        elif isinstance(op, Compare):
            operand(op.left, bound)
            operand(op.right, bound)
        elif isinstance(op, Not):
            operand(op.inner, bound)
        elif isinstance(op, Junction):
            for part in op.parts:
                operand(part, bound)

    def walk(body: tuple[Node, ...], bound: frozenset[str]) -> None:
        for node in body:
            if isinstance(node, Output):
                operand(node.path, bound)
            elif isinstance(node, If):
                for cond, inner in node.branches:
                    operand(cond, bound)
                    walk(inner, bound)
                walk(node.otherwise, bound)
            elif isinstance(node, For):
                operand(node.items, bound)
                walk(node.body, bound | {node.name, "loop"})

    walk(nodes, frozenset())
    return found
