"""Fuzzing the detectors, the redactor and the message walker: odd text (lone surrogates from
invalid UTF-8, oversized, adversarial repeats) and odd shapes (deeply nested content parts)
never crash, findings always point at their text, and redact → restore gives the text back."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from opsgate.config.guard import GuardConfig, GuardPolicy
from opsgate.guard.content import slots
from opsgate.guard.credentials import SecretsDetector
from opsgate.guard.inspection import inspect
from opsgate.guard.pii import Detector
from opsgate.guard.redact import PLACEHOLDER, Redaction, Redactor, StreamRestorer
from opsgate.guard.service import GuardService

DETECTOR = Detector(region="US", secrets=SecretsDetector())
REDACTOR = Redactor(DETECTOR, limit=20_000)
PIECES = [
    "ann@example.com", "+1 415-555-2671", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32",
    "123-45-6789", "AB123456C", "192.168.1.1", "2001:db8::1", "born on 3 May 1984",
    "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijkl",
    "-----BEGIN PRIVATE KEY-----", "<", ">", "<EMAIL_", "@", "::", " ", "\n", "é", "\udcff",
]  # fmt: skip
texts = st.one_of(
    st.text(max_size=400),
    st.binary(max_size=400).map(lambda b: b.decode("utf-8", errors="surrogateescape")),
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(texts)
def test_findings_point_at_their_text_and_do_not_overlap(text: str) -> None:
    found = DETECTOR.find(text)
    for f in found:
        assert 0 <= f.start < f.end <= len(text)
        assert text[f.start : f.end] == f.value
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))


@FUZZ
@given(texts)
def test_redact_then_restore_is_the_identity(text: str) -> None:
    assume(PLACEHOLDER.search(text) is None)
    redaction = Redaction()
    masked = REDACTOR.mask_text(text, redaction)
    assert redaction.restore(masked) == text
    assert len(redaction) == len({(f.kind, f.value) for f in DETECTOR.find(text)})


@FUZZ
@given(texts, st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=8))
def test_stream_restore_equals_whole_restore(text: str, sizes: list[int]) -> None:
    redaction = Redaction()
    masked = REDACTOR.mask_text(text, redaction)
    restorer = StreamRestorer(redaction)
    shown, i, k = [], 0, 0
    while i < len(masked):
        step = sizes[k % len(sizes)]
        shown.append(restorer.feed(masked[i : i + step]))
        i, k = i + step, k + 1
    assert "".join(shown) + restorer.flush() == redaction.restore(masked)


def nested(depth: int, leaf: str) -> Any:
    node: Any = leaf
    for i in range(depth):
        node = [{"type": "text", "content": node}] if i % 2 else {"text": node}
    return node


@FUZZ
@given(st.integers(min_value=0, max_value=3000), texts)
def test_deeply_nested_content_parts(depth: int, text: str) -> None:
    messages = [
        {"role": "user", "content": [nested(depth, "mail ann@example.com " + text)]},
        {"role": "tool", "content": nested(depth, text), "untrusted": True},
        {"role": "user", "content": {"weird": [1, None, 2.5]}},
        "not a message",
    ]
    found = slots(messages)  # type: ignore[arg-type]
    assert all(isinstance(s.text, str) for s in found)
    svc = GuardService(GuardConfig(default=GuardPolicy(pii="redact", secrets="redact")))
    policy = svc.policy_for(None)
    result = inspect(policy, messages, svc.tools(policy))  # type: ignore[arg-type]
    assert result.error is None
    masked = REDACTOR.mask_json({"model": "m", "messages": messages})
    assert masked["messages"][3] == "not a message"


def test_oversized_adversarial_inputs_finish() -> None:
    """Each repeats what a pattern starts on, without what would end it: bounded patterns make
    these linear (a backtracking pattern would take hours on them)."""
    size = 200_000
    for unit in ["a@", "a.", "1-", "1 ", "+1 (", "eyJ", ":", "::a", "<", "<EMAIL_1", "A" * 3 + "1",
                 "born on ", "password=", "GB82 ", "-----BEGIN PRIVATE KEY-----"]:  # fmt: skip
        text = unit * (size // len(unit))
        DETECTOR.find(text)
        REDACTOR.mask_text(text)
        svc = GuardService(GuardConfig(default=GuardPolicy(pii="redact", secrets="block")))
        policy = svc.policy_for(None)
        inspect(policy, [{"role": "user", "content": text}], svc.tools(policy))
