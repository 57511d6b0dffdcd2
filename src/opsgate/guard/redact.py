"""Redaction: findings replaced by typed placeholders (`<EMAIL_1>`), and put back afterwards.

Within one request the same value always gets the same placeholder, and values are numbered in
message order, so a conversation resent with its history numbers them the same way each time
and the model can refer to "<EMAIL_1>" consistently. `restore()` swaps placeholders in the
answer back to the caller's values; `StreamRestorer` does that for a stream whose chunks may cut
a placeholder in two, by holding back the few characters after an unclosed `<`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from opsgate.guard.content import Slot, budget, rewrite, slots
from opsgate.guard.pii import Detector
from opsgate.guard.verdicts import Finding, is_moderation
from opsgate.types import JSONObject

PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]{1,23})_(\d{1,6})>")
MAX_PLACEHOLDER = 33
"""The longest placeholder: `<` + 23-letter type + `_` + 6 digits + `>` (and a little slack)."""
_PARTIAL = re.compile(r"<[A-Z_]{0,24}\d{0,6}")


class Redaction:
    """One request's value ↔ placeholder table."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_token: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._by_token)

    def __len__(self) -> int:
        return len(self._by_token)

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        token = self._by_value.get(key)
        if token is None:
            n = self._counts.get(kind, 0) + 1
            self._counts[kind] = n
            token = f"<{kind}_{n}>"
            self._by_value[key] = token
            self._by_token[token] = value
        return token

    def apply(self, text: str, findings: Sequence[Finding]) -> str:
        """`text` with each (non-overlapping, ordered) finding replaced by its placeholder."""
        if not findings:
            return text
        parts: list[str] = []
        last = 0
        for f in findings:
            parts.append(text[last : f.start])
            # moderation findings are removed, not swapped: nothing puts them back
            parts.append(
                f"[REDACTED_{f.kind}]"
                if is_moderation(f.kind)
                else self.placeholder(f.kind, f.value)
            )
            last = f.end
        parts.append(text[last:])
        return "".join(parts)

    def restore(self, text: str) -> str:
        """`text` with every placeholder this request made replaced by its value."""
        if not self._by_token or "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._by_token.get(m.group(), m.group()), text)

    def values(self) -> set[str]:
        return set(self._by_token.values())


class StreamRestorer:
    """`feed()` each text piece, get back what can be shown now; `flush()` at the end."""

    def __init__(self, redaction: Redaction) -> None:
        self.redaction = redaction
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        cut = text.rfind("<")
        waiting = cut >= 0 and len(text) - cut <= MAX_PLACEHOLDER and ">" not in text[cut:]
        if waiting and _PARTIAL.fullmatch(text, cut):  # could still become a placeholder
            self._held = text[cut:]
            return self.redaction.restore(text[:cut])
        self._held = ""
        return self.redaction.restore(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self.redaction.restore(text)


class Redactor:
    """Applies a detector to requests and bodies; `limit` caps the characters scanned."""

    def __init__(self, detector: Detector, *, limit: int | None = None) -> None:
        self.detector = detector
        self.limit = limit

    def scan(self, found: list[Slot]) -> tuple[list[tuple[Slot, list[Finding]]], bool]:
        """Findings per slot within `limit` (newest first); True when some went unscanned."""
        chosen, skipped = budget(found, self.limit)
        return [(slot, self.detector.find(text)) for slot, text in chosen], skipped

    def redact_messages(
        self, messages: list[JSONObject], redaction: Redaction | None = None
    ) -> tuple[list[JSONObject], list[Finding], Redaction]:
        """(new messages, findings, redaction): the caller's messages are not changed."""
        redaction = redaction if redaction is not None else Redaction()
        scanned, _ = self.scan(slots(messages))
        return (*apply(messages, scanned, redaction), redaction)

    def mask_text(self, text: str, redaction: Redaction | None = None) -> str:
        """`text` with PII replaced; past `limit` the text is dropped, not stored unscanned."""
        cut = text if self.limit is None else text[: self.limit]
        masked = (redaction if redaction is not None else Redaction()).apply(
            cut, self.detector.find(cut)
        )
        return masked if len(cut) == len(text) else masked + OMITTED

    def mask_json(self, value: Any) -> Any:
        """A stored request body with PII in its message texts replaced by placeholders; text
        beyond `limit` (oldest first) is replaced by a note rather than stored unscanned."""
        if not isinstance(value, dict):
            return value
        if not isinstance(value.get("messages"), list):
            return self._mask_input(value)
        messages = value["messages"]
        every = slots(messages)
        chosen, _ = budget(every, self.limit)
        kept = {(slot.index, slot.path): text for slot, text in chosen}
        redaction = Redaction()
        changes: dict[tuple[int, tuple[int | str, ...]], str] = {}
        for slot in every:
            key = (slot.index, slot.path)
            text = kept.get(key)
            if text is None:
                changes[key] = OMITTED
                continue
            masked = redaction.apply(text, self.detector.find(text))
            if len(text) < len(slot.text):
                masked += OMITTED
            if masked != slot.text:
                changes[key] = masked
        return {**value, "messages": rewrite(messages, changes)}

    def _mask_input(self, value: dict[str, Any]) -> dict[str, Any]:
        """An embeddings body: its `input` text(s)."""
        raw = value.get("input")
        redaction = Redaction()
        if isinstance(raw, str):
            return {**value, "input": self.mask_text(raw, redaction)}
        if isinstance(raw, list) and any(isinstance(x, str) for x in raw):
            masked = [self.mask_text(x, redaction) if isinstance(x, str) else x for x in raw]
            return {**value, "input": masked}
        return value


OMITTED = "[not stored: beyond the guard's scan limit]"


def apply(
    messages: list[JSONObject],
    scanned: list[tuple[Slot, list[Finding]]],
    redaction: Redaction,
) -> tuple[list[JSONObject], list[Finding]]:
    """Messages with the findings replaced (in message order), and all findings."""
    changes: dict[tuple[int, tuple[int | str, ...]], str] = {}
    every: list[Finding] = []
    for slot, findings in scanned:
        if findings:
            every.extend(findings)
            changes[(slot.index, slot.path)] = redaction.apply(slot.text, findings)
    return rewrite(messages, changes), every
