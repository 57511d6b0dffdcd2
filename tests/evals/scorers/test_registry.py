"""Custom scorers through the `opsgate.scorers` entry point group, found the way an installed
plugin package is found (a dist-info folder on the path)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from opsgate.evals.scorers import Sample, ScorerResources, apply
from opsgate.evals.scorers.registry import ScorerRegistry

PLUGIN = '''
from opsgate.evals.scorers import Scorer, ScoreResult


class Shouting(Scorer):
    """1 when the output is in capitals."""

    kind = "shouting"

    async def score(self, sample):
        return ScoreResult.boolean(sample.output.isupper())


def register(register_scorer):
    register_scorer("shouting", lambda params, resources: Shouting(**params))
'''


@pytest.fixture
def plugin_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "loud_scorers.py").write_text(PLUGIN)
    info = tmp_path / "loud_scorers-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: loud-scorers\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent("""
        [opsgate.scorers]
        loud = loud_scorers:register
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.usefixtures("plugin_on_path")
async def test_a_plugin_scorer_registers_beside_the_built_ins() -> None:
    registry = ScorerRegistry()
    kinds = registry.kinds()
    assert "shouting" in kinds and "exact" in kinds
    scorer = registry.build({"type": "shouting", "name": "caps"}, ScorerResources())
    assert scorer.name == "caps"
    assert (await apply(scorer, Sample(output="HELLO"))).value == 1.0
    assert (await apply(scorer, Sample(output="hello"))).value == 0.0


def test_the_built_ins() -> None:
    assert set(ScorerRegistry().kinds()) >= {
        "exact", "contains", "regex", "json_schema", "numeric", "embedding", "judge",
        "pairwise", "hallucination",
    }  # fmt: skip
