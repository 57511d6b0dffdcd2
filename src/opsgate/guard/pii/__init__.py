"""PII and secrets detection over plain text: `Detector(types, region).find(text)`.

Each entity type has one recognizer (a bounded regex and a validator); findings that overlap
are resolved by how specific their check is (a Luhn-valid card beats a phone-shaped number
over the same digits).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from opsgate.guard.credentials import SecretsDetector
from opsgate.guard.pii import recognizers as rec
from opsgate.guard.pii.dates import dates_of_birth
from opsgate.guard.pii.phones import PhoneRecognizer
from opsgate.guard.verdicts import PII_TYPES, SECRET_TYPES, Finding

RANK = {
    kind: i
    for i, kind in enumerate(
        (
            "PRIVATE_KEY", "API_KEY", "JWT", "IBAN", "CREDIT_CARD", "US_SSN", "UK_NINO",
            "ES_NIF", "FR_NIR", "EMAIL", "IP_ADDRESS", "DATE_OF_BIRTH", "PHONE", "SECRET",
        )
    )
}  # fmt: skip
"""Lower wins when two findings overlap."""

_NEEDS_DIGIT = frozenset(
    {"PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "UK_NINO", "ES_NIF", "FR_NIR", "IP_ADDRESS"}
)


class Finder(Protocol):
    """A check that reports spans of its own kinds (the moderation check)."""

    def find(self, text: str) -> list[Finding]: ...


class Detector:
    """Finds the selected PII types (and, with `secrets`, secrets; with `moderator`, offensive
    language and operator deny rules) in text."""

    offload = False
    """True for a backend whose scan costs milliseconds (Presidio): the input and output
    checks then always run in a worker thread, off the event loop (body masking always does)."""

    def __init__(
        self,
        types: Iterable[str] = PII_TYPES,
        *,
        region: str = "US",
        secrets: SecretsDetector | None = None,
        moderator: Finder | None = None,
    ) -> None:
        wanted = set(types)
        if unknown := wanted - set(PII_TYPES):
            raise ValueError(f"unknown PII types {sorted(unknown)}; expected {list(PII_TYPES)}")
        table: dict[str, rec.Recognizer] = {
            "EMAIL": rec.emails,
            "PHONE": PhoneRecognizer(region),
            "CREDIT_CARD": rec.cards,
            "IBAN": rec.ibans,
            "US_SSN": rec.ssns,
            "UK_NINO": rec.ninos,
            "ES_NIF": rec.es_nifs,
            "FR_NIR": rec.fr_nirs,
            "IP_ADDRESS": rec.ips,
            "DATE_OF_BIRTH": dates_of_birth,
        }
        self.types = tuple(t for t in PII_TYPES if t in wanted)
        self._plain = [table[t] for t in self.types if t not in _NEEDS_DIGIT]
        self._numeric = [table[t] for t in self.types if t in _NEEDS_DIGIT]
        self.secrets = secrets
        self.moderator = moderator

    @property
    def empty(self) -> bool:
        return not self.types and self.secrets is None and self.moderator is None

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in `text`, in order."""
        found: list[Finding] = []
        for recognizer in self._plain:
            found.extend(recognizer(text))
        if self._numeric and rec.has_digit(text):
            for recognizer in self._numeric:
                found.extend(recognizer(text))
        if self.secrets is not None:
            found.extend(self.secrets(text))
        if self.moderator is not None:
            found.extend(self.moderator.find(text))
        return resolve(found)


def resolve(found: Sequence[Finding]) -> list[Finding]:
    """Keep the best of each group of overlapping findings (by RANK, then length)."""
    out: list[Finding] = []
    for f in sorted(found, key=lambda f: (f.start, -f.end)):
        if out and out[-1].overlaps(f):
            if _better(f, out[-1]):
                out[-1] = f
            continue
        out.append(f)
    return out


def _better(a: Finding, b: Finding) -> bool:
    ra, rb = RANK.get(a.kind, 99), RANK.get(b.kind, 99)
    return ra < rb or (ra == rb and a.end - a.start > b.end - b.start)


__all__ = ["PII_TYPES", "RANK", "SECRET_TYPES", "Detector", "Finding", "resolve"]
