"""`models[].best_of_n` in the config: what the schema refuses, and a scorer the registry does
not know stops the runtime from being built."""

from __future__ import annotations

from typing import Any

import pytest

from opsgate.config import Config, ConfigError, parse_config
from opsgate.evals.scorers import ScorerResources
from opsgate.experiments.best_of import build_policies


def config(best_of: dict[str, Any], *, extra_models: tuple[str, ...] = ()) -> Config:
    dep = {"provider": "simulator", "model": "sim"}
    models = [{"name": "m", "deployments": [dep], "best_of_n": best_of}]
    models += [{"name": name, "deployments": [dep]} for name in extra_models]
    return parse_config({"models": models}, source="<test>", env={})


@pytest.mark.parametrize(
    ("best_of", "says"),
    [
        ({"n": 6, "max_n": 5, "scorer": "json"}, "above max_n"),
        ({"n": 2, "max_n": 17, "scorer": "json"}, "max_n"),
        ({"n": 2}, "scorer"),
        ({"n": 2, "scorer": "json", "variants": [{"params": {"stream": True}}]}, "stream"),
        ({"n": 2, "scorer": "json", "variants": [{"model": "nowhere"}]}, "unknown model"),
        ({"n": 2, "scorer": "json", "time_budget_ms": 0}, "time_budget_ms"),
        ({"n": 2, "scorer": "json", "typo": 1}, "typo"),
    ],
)
def test_the_schema_refuses(best_of: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        config(best_of)


def test_a_valid_section_and_an_unknown_scorer() -> None:
    good = config(
        {"n": 3, "scorer": "json", "variants": [{"model": "big"}, {"params": {"seed": 1}}]},
        extra_models=("big",),
    )
    section = good.models[0].best_of_n
    assert section is not None and section.max_n == 5
    policies = build_policies({"m": section}, ScorerResources())
    assert policies["m"].scorer.kind == "json"
    bad = config({"n": 2, "scorer": "no-such-scorer"})
    with pytest.raises(ConfigError, match=r"models\[m\].best_of_n.scorer: unknown scorer"):
        build_policies({"m": bad.models[0].best_of_n}, ScorerResources())
