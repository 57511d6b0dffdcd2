"""Rule scorers: exact match, contains, regex, JSON-schema validity, numeric tolerance."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import jsonschema

from opsgate.evals.scorers.base import Sample, Scorer, ScoreResult
from opsgate.evals.scorers.errors import ScorerConfigError

MAX_SCANNED = 100_000
"""Characters of an output a regex or number search looks at (bounds a slow pattern's work)."""
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _folded(text: str, case_sensitive: bool) -> str:
    collapsed = " ".join(text.split())
    return collapsed if case_sensitive else collapsed.casefold()


class Exact(Scorer):
    """1 when the output equals the expected answer (whitespace collapsed, case folded
    unless `case_sensitive`)."""

    kind = "exact"
    needs = ("output", "expected")

    def __init__(self, name: str | None = None, *, case_sensitive: bool = False) -> None:
        super().__init__(name)
        self.case_sensitive = case_sensitive

    async def score(self, sample: Sample) -> ScoreResult:
        assert sample.output is not None and sample.expected is not None
        ok = _folded(sample.output, self.case_sensitive) == _folded(
            sample.expected, self.case_sensitive
        )
        return ScoreResult.boolean(ok)


class Contains(Scorer):
    """1 when the output contains the expected answer, or the configured `values` (all of
    them, or any with `mode: any`)."""

    kind = "contains"

    def __init__(
        self,
        name: str | None = None,
        *,
        values: Sequence[str] | str | None = None,
        mode: str = "all",
        case_sensitive: bool = False,
    ) -> None:
        super().__init__(name)
        if mode not in ("all", "any"):
            raise ScorerConfigError(f"contains: mode must be `all` or `any`, not {mode!r}")
        self.values = [values] if isinstance(values, str) else list(values or [])
        self.mode = mode
        self.case_sensitive = case_sensitive
        self.needs = ("output",) if self.values else ("output", "expected")

    async def score(self, sample: Sample) -> ScoreResult:
        assert sample.output is not None
        wanted = self.values or [str(sample.expected)]
        text = _folded(sample.output, self.case_sensitive)
        found = [v for v in wanted if _folded(v, self.case_sensitive) in text]
        ok = bool(found) if self.mode == "any" else len(found) == len(wanted)
        absent = [v for v in wanted if v not in found]
        return ScoreResult.boolean(ok, "" if ok else f"missing: {', '.join(absent)}")


class Regex(Scorer):
    """1 when `pattern` matches somewhere in the output (`full: true`: the whole output)."""

    kind = "regex"

    def __init__(
        self, name: str | None = None, *, pattern: str, full: bool = False, flags: str = ""
    ) -> None:
        super().__init__(name)
        bits = 0
        for flag in flags:
            if flag not in "imsx":
                raise ScorerConfigError(f"regex: unknown flag {flag!r} (use i, m, s, x)")
            bits |= getattr(re, flag.upper())
        try:
            self.pattern = re.compile(pattern, bits)
        except re.error as exc:
            raise ScorerConfigError(f"regex: bad pattern {pattern!r}: {exc}") from None
        self.full = full

    async def score(self, sample: Sample) -> ScoreResult:
        assert sample.output is not None
        text = sample.output[:MAX_SCANNED]
        found = self.pattern.fullmatch(text.strip()) if self.full else self.pattern.search(text)
        return ScoreResult.boolean(found is not None)


def parse_json(text: str) -> Any:
    """The JSON value in an answer, code fences allowed; raises ValueError."""
    stripped = text.strip()
    if fenced := _FENCE.match(stripped):
        stripped = fenced.group(1)
    return json.loads(stripped)


class JsonSchema(Scorer):
    """1 when the output is JSON that validates against `schema` (or the row's `schema`)."""

    kind = "json_schema"

    def __init__(self, name: str | None = None, *, schema: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self.validator: Any = None
        if schema is not None:
            self.validator = self._validator(schema)
        self.needs = ("output",) if schema is not None else ("output", "schema")

    @staticmethod
    def _validator(schema: Any) -> Any:
        if not isinstance(schema, dict):
            raise ScorerConfigError("json_schema: `schema` must be a JSON object")
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ScorerConfigError(f"json_schema: invalid schema: {exc.message}") from None
        return cls(schema)

    async def score(self, sample: Sample) -> ScoreResult:
        assert sample.output is not None
        try:
            validator = self.validator or self._validator(sample.get("schema"))
        except ScorerConfigError as exc:
            return ScoreResult.failure(str(exc))
        try:
            value = parse_json(sample.output)
        except ValueError as exc:
            return ScoreResult.boolean(False, f"not JSON: {exc}")
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return ScoreResult.boolean(True)
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return ScoreResult.boolean(False, f"{where}: {error.message}")


def first_number(text: str) -> float | None:
    match = _NUMBER.search(text[:MAX_SCANNED])
    if match is None:
        return None
    try:
        return float(match.group(0).replace(",", ""))
    except ValueError:
        return None


class Numeric(Scorer):
    """1 when the first number in the output is within `abs_tol` or `rel_tol` of the expected
    number (math.isclose; both 0 = exact)."""

    kind = "numeric"
    needs = ("output", "expected")

    def __init__(
        self, name: str | None = None, *, abs_tol: float = 0.0, rel_tol: float = 0.0
    ) -> None:
        super().__init__(name)
        if abs_tol < 0 or rel_tol < 0:
            raise ScorerConfigError("numeric: tolerances must be >= 0")
        self.abs_tol, self.rel_tol = abs_tol, rel_tol

    async def score(self, sample: Sample) -> ScoreResult:
        expected = first_number(str(sample.expected))
        if expected is None:
            return ScoreResult.failure(f"expected value {sample.expected!r} is not a number")
        got = first_number(str(sample.output))
        if got is None:
            return ScoreResult.boolean(False, "no number in the output")
        ok = math.isclose(got, expected, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
        return ScoreResult.boolean(ok, f"{got:g} vs {expected:g}")
