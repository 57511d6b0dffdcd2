"""The parts of online evaluation without a server: rules and their draw, the config checks,
what a live request gives scorers, the hourly cap, the gauges' window, a full queue."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from opsgate.config import parse_config
from opsgate.config.evals import EvalsConfig, scorer_metric
from opsgate.config.feedback import FeedbackConfig, MetricConfig
from opsgate.config.loader import ConfigError
from opsgate.evals.client import GatewayClient
from opsgate.evals.online import (
    HourlyCap,
    OnlineEvaluator,
    RuleSet,
    ScoreWindow,
    compile_rules,
    sample_from,
)
from opsgate.evals.online.evaluator import flagged
from opsgate.evals.scorers import (
    Judge,
    ScorerConfigError,
    ScoreResult,
    ScorerResources,
    build_scorer,
)
from opsgate.feedback.service import FeedbackService
from opsgate.store import dispose_engine, make_engine
from opsgate.trace import TraceRecord

DECLARED = {
    "hallucination": MetricConfig(type="boolean", optimize="min"),
    "faithfulness": MetricConfig(type="float", min=0, max=1),
}


def trace(model: str = "bot", **fields: Any) -> TraceRecord:
    return TraceRecord("t" * 32, 0.0, 1.0, "chat", model, **fields)


def base_config(**evals: Any) -> dict[str, Any]:
    sim = {"provider": "simulator", "model": "s"}
    return {
        "models": [{"name": "bot", "deployments": [sim]}, {"name": "judge", "deployments": [sim]}],
        "feedback": {
            "metrics": {
                "hallucination": {"type": "boolean"},
                "faithfulness": {"type": "float", "min": 0, "max": 1},
                "stars": {"type": "float", "min": 1, "max": 5},
                "resolved": {"type": "boolean", "level": "session"},
                "issue": {"type": "category", "values": ["a"]},
            }
        },
        "evals": evals,
    }


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"model": "nope", "sample": 0.1, "scorers": ["hallucination"]}, "unknown model 'nope'"),
        ({"model": "bot", "sample": 0.1, "scorers": ["toxicity"]}, "metric 'toxicity' must be"),
        ({"model": "bot", "sample": 0.1, "scorers": [{"type": "regex", "name": "issue"}]},
         "metric 'issue' must be declared"),
        ({"model": "bot", "sample": 0.1, "scorers": [{"type": "judge", "name": "stars"}]},
         "must allow 0..1"),
        ({"model": "bot", "sample": 0.1, "scorers": [{"type": "exact", "name": "resolved"}]},
         "must be level inference"),
        ({"model": "bot", "sample": 0, "scorers": ["hallucination"]}, "greater than 0"),
        ({"model": "bot", "sample": 1.5, "scorers": ["hallucination"]}, "less than or equal"),
        ({"model": "bot", "sample": 0.1, "scorers": []}, "at least 1"),
        ({"model": "bot", "sample": 0.1, "scorers": ["hallucination", "hallucination"]},
         "two scorers write metric 'hallucination'"),
        ({"model": "bot", "sample": 0.1, "scorers": [{"template": "x"}]}, "with a `type`"),
        ({"model": "bot", "sample": 0.1, "scorers": ["hallucination"], "extra": 1},
         "extra"),
    ],
)  # fmt: skip
def test_bad_rules_stop_the_config_with_their_place(rule: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(base_config(online=[rule]), source="opsgate.yaml", env={})
    text = str(caught.value)
    assert problem in text and "evals" in text, text


def test_globs_and_prompt_models_are_accepted() -> None:
    rules = [
        {"model": "support-*", "sample": 0.5, "scorers": ["hallucination"]},
        {"model": "prompt:triage", "sample": 1, "scorers": [{"type": "judge", "template":
                                                             "faithfulness@1"}]},
    ]  # fmt: skip
    config = parse_config(base_config(online=rules), source="x", env={})
    assert [r.metrics for r in config.evals.online] == [["hallucination"], ["faithfulness"]]


def test_the_metric_a_scorer_writes() -> None:
    assert scorer_metric("faithfulness@1") == "faithfulness"
    assert scorer_metric({"type": "judge", "template": "relevance"}) == "relevance"
    assert scorer_metric({"type": "regex", "name": "polite", "pattern": "x"}) == "polite"
    assert scorer_metric({"type": "hallucination"}) == "hallucination"


def test_scorers_that_cannot_be_built_stop_start_up() -> None:
    config = EvalsConfig.model_validate(
        {"online": [{"model": "bot", "sample": 1, "scorers": ["faithfulness", "hallucination"]},
                    {"model": "bot", "sample": 1, "scorers": [{"type": "regex"}]}]}
    )  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        compile_rules(config, DECLARED, None, source="opsgate.yaml")
    problems = caught.value.problems
    assert problems[0].startswith("evals.online[0].scorers[0]: judge scorers need the gateway")
    assert problems[1].startswith("evals.online[1].scorers[0]: regex: bad parameters")


def ruleset(values: list[float], *rules: dict[str, Any]) -> RuleSet:
    config = EvalsConfig.model_validate({"online": list(rules)})
    draws = iter(values)
    return RuleSet(compile_rules(config, DECLARED, None), lambda: next(draws))


def test_one_draw_per_trace_serves_every_rule_at_its_own_rate() -> None:
    rules = ruleset(
        [0.05, 0.3, 0.9, 0.01],
        {"model": "bot", "sample": 0.5, "scorers": ["hallucination"]},
        {"model": "b*", "sample": 0.1, "scorers": ["hallucination"]},
    )
    picked = [rules.draw(trace()) for _ in range(4)]
    assert [len(d.rules) if d else 0 for d in picked] == [2, 1, 0, 2]
    assert rules.watches("bot") and rules.watches("b2") and not rules.watches("other")


def test_only_successful_chat_answers_and_never_the_judges_own() -> None:
    rules = ruleset([0.0] * 10, {"model": "*", "sample": 1.0, "scorers": ["hallucination"]})
    assert rules.draw(trace()) is not None
    assert rules.draw(trace(status="error")) is None
    assert rules.draw(TraceRecord("t", 0.0, 1.0, "embeddings", "bot")) is None
    assert rules.draw(trace(metadata={"source": "online_eval"})) is None


def test_a_live_request_gives_question_context_and_answer() -> None:
    request = {
        "messages": [
            {"role": "system", "content": "Doc one."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "tool", "content": [{"type": "text", "text": "Doc two."}]},
            {"role": "user", "content": [{"type": "text", "text": "the"},
                                         {"type": "image_url", "image_url": {}},
                                         {"type": "text", "text": "question"}]},
        ]
    }  # fmt: skip
    sample = sample_from(request, "the answer")
    assert (sample.input, sample.output, sample.expected) == ("the\nquestion", "the answer", None)
    assert sample.context == "Doc one.\n\nDoc two."
    bare = sample_from({"messages": [{"role": "user", "content": "q"}]}, "a")
    assert (bare.input, bare.context) == ("q", None)
    assert sample_from(None, "a").input is None


def test_what_counts_as_flagged() -> None:
    assert flagged(ScoreResult(0.9, "hallucinated"))
    assert not flagged(ScoreResult(0.1, "supported"))
    assert flagged(ScoreResult(0.0, "fail")) and not flagged(ScoreResult(1.0, "pass"))
    assert flagged(ScoreResult(0.25)) and not flagged(ScoreResult(0.5))


def test_the_cap_counts_per_clock_hour() -> None:
    now = [7200.0]
    cap = HourlyCap(0.001, lambda: now[0])
    assert cap.allows()
    cap.add(600)
    assert cap.allows()
    cap.add(600)
    assert not cap.allows() and cap.spent_micros == 1200
    now[0] = 10_799.0
    assert not cap.allows()
    now[0] = 10_800.0  # the next hour
    assert cap.allows() and cap.spent_micros == 0
    assert not HourlyCap(0).allows()


def test_the_window_forgets_old_scores() -> None:
    window = ScoreWindow(60)
    assert math.isnan(window.mean) and math.isnan(window.flagged)
    window.add(0, 1.0, False)
    window.add(30, 0.0, True)
    window.add(50, 0.5, True)
    assert (window.mean, window.flagged, len(window)) == (0.5, 2 / 3, 3)
    window.trim(85)
    assert (window.mean, window.flagged, len(window)) == (0.25, 1.0, 2)
    window.trim(1000)
    assert len(window) == 0 and math.isnan(window.mean)


async def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    config = EvalsConfig.model_validate(
        {"online": [{"model": "bot", "sample": 1, "scorers": ["hallucination"]}],
         "online_queue_size": 2}
    )  # fmt: skip
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    try:
        feedback = FeedbackService(FeedbackConfig(), engine)
        online = OnlineEvaluator(config, DECLARED, feedback, rng=lambda: 0.0)
        record = trace()
        draw = online.draw(record)
        assert draw is not None
        taken = [online.submit(record, draw, None, "a") for _ in range(5)]
        assert taken == [True, True, False, False, False]
        assert (online.stats.queued, online.stats.dropped, online.depth) == (2, 3, 2)
        await online.aclose()  # never started: what is queued is abandoned
        assert online.stats.abandoned == 2 and online.depth == 0
        assert not online.submit(record, draw, None, "a") and online.stats.abandoned == 3
    finally:
        await dispose_engine(engine)


def test_a_judge_template_name_is_a_scorer() -> None:
    client = GatewayClient("http://127.0.0.1:9/v1", "key")  # never called here
    resources = ScorerResources(client=client, judge_model="judge")
    judge = build_scorer("relevance@1", resources)
    assert isinstance(judge, Judge) and judge.name == "relevance" and judge.calls_models
    named = build_scorer({"type": "faithfulness", "name": "grounded"}, resources)
    assert named.name == "grounded" and named.version == "faithfulness@1"  # type: ignore[attr-defined]
    with pytest.raises(ScorerConfigError, match="unknown scorer type 'pairwise@1'"):
        build_scorer("pairwise@1", resources)
    assert not build_scorer("hallucination").calls_models
