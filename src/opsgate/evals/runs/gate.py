"""The CI gate: `--fail-under faithfulness=0.8` and the JUnit XML report CI systems read."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from opsgate.evals.runs.spec import EvalSpecError


def parse_thresholds(items: Sequence[str]) -> dict[str, float]:
    """`name=0.8` pairs; 400-style error for anything else."""
    found: dict[str, float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not sep or not name.strip() or math.isnan(value):
            raise EvalSpecError(f"--fail-under takes NAME=NUMBER, not {item!r}")
        found[name.strip()] = value
    return found


@dataclass(frozen=True, slots=True)
class GateResult:
    target: str
    scorer: str
    mean: float | None
    threshold: float | None

    @property
    def passed(self) -> bool:
        if self.threshold is None:
            return True
        return self.mean is not None and self.mean >= self.threshold


def check(summary: Mapping[str, Any], thresholds: Mapping[str, float]) -> list[GateResult]:
    """One result per (target, scorer); an unknown scorer name in `thresholds` is an error."""
    targets = summary.get("targets", {})
    known = {name for t in targets.values() for name in t["scorers"]}
    if unknown := sorted(set(thresholds) - known):
        raise EvalSpecError(f"--fail-under names no scorer of this run: {', '.join(unknown)}")
    return [
        GateResult(label, name, s["mean"], thresholds.get(name))
        for label, t in targets.items()
        for name, s in t["scorers"].items()
    ]


def junit(run_id: str, name: str, status: str, results: Sequence[GateResult]) -> bytes:
    """A JUnit XML document: a test suite per target, a test case per scorer."""
    suites = ET.Element("testsuites", name=f"opsgate eval {name}")
    by_target: dict[str, list[GateResult]] = {}
    for r in results:
        by_target.setdefault(r.target, []).append(r)
    for target, rows in by_target.items():
        failures = sum(not r.passed for r in rows)
        suite = ET.SubElement(
            suites, "testsuite", name=target, tests=str(len(rows)), failures=str(failures),
            errors="0" if status == "completed" else "1",
        )  # fmt: skip
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="run_id", value=run_id)
        for r in rows:
            case = ET.SubElement(suite, "testcase", classname=f"{name}.{target}", name=r.scorer)
            mean = "none" if r.mean is None else f"{r.mean:.4f}"
            if not r.passed:
                ET.SubElement(case, "failure", message=f"{r.scorer} {mean} < {r.threshold}")
            ET.SubElement(case, "system-out").text = f"mean {mean}"
        if status != "completed":
            ET.SubElement(suite, "error", message=f"run {run_id} ended {status}")
    document: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return document
