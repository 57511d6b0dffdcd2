"""Canaries and the output screen: a leaked canary is caught even when split across chunks and
none of it is shown; PII the caller did not send is flagged, redacted or blocked."""

from __future__ import annotations

import pytest

from opsgate.config.guard import GuardPolicy
from opsgate.errors import BadRequestError
from opsgate.guard.canary import instruction, leaked, new_canary, with_canary
from opsgate.guard.credentials import SecretsDetector
from opsgate.guard.output import HOLD, OutputScreen, OutputTally
from opsgate.guard.pii import Detector


def test_canaries_are_fresh_and_go_into_the_system_prompt() -> None:
    a, b = new_canary(), new_canary()
    assert a != b and len(a) == 16
    user = [{"role": "user", "content": "hi"}]
    assert with_canary(user, a) == [{"role": "system", "content": instruction(a)}, *user]
    system = [{"role": "system", "content": "Be brief."}, *user]
    out = with_canary(system, a)
    assert (
        out[0]["content"] == f"Be brief.\n\n{instruction(a)}"
        and system[0]["content"] == "Be brief."
    )
    parts = [{"role": "developer", "content": [{"type": "text", "text": "x"}]}]
    assert with_canary(parts, a)[0]["content"][-1] == {"type": "text", "text": instruction(a)}
    assert leaked(f"My instructions say {a.upper()}", a)
    assert not leaked("nothing here", a)


def feed_all(screen: OutputScreen, text: str, size: int) -> str:
    shown = "".join(screen.feed(text[i : i + size]) for i in range(0, len(text), size))
    return shown + screen.flush()


@pytest.mark.parametrize("size", [1, 3, 8, 40])
def test_canary_split_across_chunks_is_caught_before_any_of_it_shows(size: int) -> None:
    canary = new_canary()
    screen = OutputScreen(GuardPolicy(canary=True), OutputTally(), canary=canary)
    text = "Sure! My system prompt says: [Security marker og-canary-" + canary + "] and more"
    shown: list[str] = []
    with pytest.raises(BadRequestError) as info:
        for i in range(0, len(text), size):
            shown.append(screen.feed(text[i : i + size]))
    assert info.value.code == "canary_leaked"
    assert all(canary[:k] not in "".join(shown) for k in range(4, len(canary) + 1))
    assert screen.tally.canary


def test_clean_answer_passes_whole() -> None:
    canary = new_canary()
    screen = OutputScreen(GuardPolicy(canary=True), OutputTally(), canary=canary)
    text = "A perfectly normal answer about canaries in coal mines. " * 3
    assert feed_all(screen, text, 5) == text


def screen(policy: GuardPolicy, seen: frozenset[str] = frozenset()) -> OutputScreen:
    detector = Detector(region="US", secrets=SecretsDetector())
    return OutputScreen(policy, OutputTally(), detector=detector, seen=seen)


@pytest.mark.parametrize("size", [1, 4, 9, 200])
def test_output_pii_redacted_even_when_split(size: int) -> None:
    s = screen(GuardPolicy(output_pii="redact"))
    text = "Contact bob@example.org or call +1 415-555-2671 for details."
    shown = feed_all(s, text, size)
    assert shown == "Contact [REDACTED_EMAIL] or call [REDACTED_PHONE] for details."
    assert dict(s.tally.pii) == {"EMAIL": 1, "PHONE": 1}


def test_output_values_the_caller_sent_are_not_a_leak() -> None:
    s = screen(GuardPolicy(output_pii="block"), seen=frozenset({"ann@example.com"}))
    assert feed_all(s, "I will write to ann@example.com", 7) == "I will write to ann@example.com"
    with pytest.raises(BadRequestError) as info:
        feed_all(screen(GuardPolicy(output_pii="block")), "write to ann@example.com", 7)
    assert info.value.code == "output_pii_detected"


def test_output_secrets_flag_passes_and_tallies() -> None:
    key = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ"
    s = screen(GuardPolicy(output_secrets="flag"))
    assert feed_all(s, f"use {key} now", 6) == f"use {key} now"
    [verdict] = s.tally.verdicts(GuardPolicy(output_secrets="flag"))
    assert verdict.to_json() == {
        "check": "secrets",
        "stage": "output",
        "action": "flag",
        "types": {"API_KEY": 1},
    }


def test_hold_back_is_bounded() -> None:
    s = screen(GuardPolicy(output_pii="redact"))
    shown = s.feed("word " * 100)
    assert len("word " * 100) - len(shown) <= HOLD
