"""Output checks: the canary, and PII or secrets the answer brings that the caller did not send.

`OutputScreen` is a `TextFilter` (see `guard.stream`): fed an answer piece by piece, it holds
back the last `HOLD` characters (and enough for the canary) so a value cut between two chunks
is still seen whole before any of it is shown. Values that the request itself carried are the
caller's own and pass; a redacted value becomes `[REDACTED_<TYPE>]` (not a `<TYPE_n>`
placeholder, which the input side would turn back into a real value).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from opsgate.config.guard import GuardPolicy
from opsgate.guard import errors
from opsgate.guard.canary import leaked
from opsgate.guard.pii import Detector
from opsgate.guard.verdicts import SECRET_TYPES, Finding, Verdict, is_moderation

HOLD = 64
"""Characters held back while streaming when PII/secrets are checked: longer than any phone
number, card or IBAN, so those are never shown half before being caught."""


@dataclass(slots=True)
class OutputTally:
    """What the output checks found over one answer (all its choices and chunks)."""

    pii: Counter[str] = field(default_factory=Counter)
    secrets: Counter[str] = field(default_factory=Counter)
    moderation: Counter[str] = field(default_factory=Counter)
    canary: bool = False

    def verdicts(self, policy: GuardPolicy) -> list[Verdict]:
        out: list[Verdict] = []
        if self.canary:
            out.append(Verdict("canary", "output", "block", (("canary", 1),)))
        if self.pii:
            out.append(Verdict("pii", "output", policy.output_pii, tuple(sorted(self.pii.items()))))
        if self.secrets:
            types = tuple(sorted(self.secrets.items()))
            out.append(Verdict("secrets", "output", policy.output_secrets, types))
        if self.moderation:
            types = tuple(sorted(self.moderation.items()))
            out.append(Verdict("moderation", "output", policy.output_moderation, types))
        return out


class OutputScreen:
    def __init__(
        self,
        policy: GuardPolicy,
        tally: OutputTally,
        *,
        canary: str | None = None,
        detector: Detector | None = None,
        seen: Collection[str] = (),
    ) -> None:
        self.policy = policy
        self.tally = tally
        self.canary = canary
        self.detector = detector
        self.seen = seen
        hold = HOLD if detector is not None else 0
        self.hold = max(hold, len(canary) - 1 if canary else 0)
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        if self.canary is not None and leaked(text, self.canary):
            self.tally.canary = True
            raise errors.canary_leaked()
        cut = max(0, len(text) - self.hold)
        findings = self._findings(text)
        for f in findings:
            if f.start < cut < f.end:  # still growing, perhaps: keep it whole for now
                cut = f.start
        self._held = text[cut:]
        return self._act(text[:cut], [f for f in findings if f.end <= cut])

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self._act(text, self._findings(text))

    def _findings(self, text: str) -> list[Finding]:
        if self.detector is None or not text:
            return []
        return [f for f in self.detector.find(text) if f.value not in self.seen]

    def _act(self, text: str, findings: list[Finding]) -> str:
        if not findings:
            return text
        policy = self.policy
        moderated = [f for f in findings if is_moderation(f.kind)]
        pii = [f for f in findings if f.kind not in SECRET_TYPES and not is_moderation(f.kind)]
        secrets = [f for f in findings if f.kind in SECRET_TYPES]
        if policy.output_pii == "off":
            pii = []
        if policy.output_secrets == "off":
            secrets = []
        if policy.output_moderation == "off":
            moderated = []
        self.tally.pii.update(f.kind for f in pii)
        self.tally.secrets.update(f.kind for f in secrets)
        self.tally.moderation.update(f.kind for f in moderated)
        if pii and policy.output_pii == "block":
            raise errors.output_blocked("pii", (f.kind for f in pii))
        if secrets and policy.output_secrets == "block":
            raise errors.output_blocked("secrets", (f.kind for f in secrets))
        if moderated and policy.output_moderation == "block":
            raise errors.moderation_blocked((f.kind for f in moderated), output=True)
        redact = [f for f in pii if policy.output_pii == "redact"]
        redact += [f for f in secrets if policy.output_secrets == "redact"]
        redact += [f for f in moderated if policy.output_moderation == "redact"]
        return _redacted(text, sorted(redact, key=lambda f: f.start))


def _redacted(text: str, findings: list[Finding]) -> str:
    if not findings:
        return text
    parts: list[str] = []
    last = 0
    for f in findings:
        parts += [text[last : f.start], f"[REDACTED_{f.kind}]"]
        last = f.end
    parts.append(text[last:])
    return "".join(parts)
