"""The review page's label form: one control per metric the queue labels, read back into typed
values (a boolean's radio, a float's number, a category's select), plus comment and correction.

The values are checked again by the score store's own rules when the label is written
(feedback/metrics.py); here only what a form can get wrong is caught, with the field named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsgate.config.feedback import MetricConfig
from opsgate.errors import BadRequestError
from opsgate.feedback.review.service import Labels
from opsgate.ui.forms import Form, field

PREFIX = "m."
"""Metric controls are named `m.<metric>`."""


@dataclass(frozen=True, slots=True)
class Control:
    """One metric's control on the page."""

    name: str
    metric: MetricConfig

    @property
    def field(self) -> str:
        return PREFIX + self.name


def controls(names: list[str], declared: Mapping[str, MetricConfig]) -> list[Control]:
    return [Control(name, declared[name]) for name in names if name in declared]


def parse_labels(form: Form, shown: list[Control]) -> Labels:
    """The labels a reviewer gave; 400 naming the field when a value cannot be read."""
    scores: dict[str, Any] = {}
    for control in shown:
        raw = field(form, control.field)
        if raw is None:
            continue
        scores[control.name] = _value(control, raw)
    if not scores:
        raise BadRequestError("Label at least one metric before saving.", param="scores")
    return Labels(scores, field(form, "comment"), field(form, "correction"))


def _value(control: Control, raw: str) -> bool | float | str:
    kind = control.metric.type
    if kind == "boolean":
        if raw not in ("true", "false"):
            raise BadRequestError(f"{control.name}: choose yes or no.", param=control.field)
        return raw == "true"
    if kind == "float":
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise BadRequestError(f"{control.name}: enter a number.", param=control.field)
        return value
    return raw
