"""Moderation findings in a text: operator deny rules, then the offensive-language classifier.

Allowed words and phrases are blanked out first (same length, so offsets hold), so neither a
deny rule nor the classifier sees them. Deny rules are one RE2 program per rule (words and
phrases as case-insensitive whole-word alternatives, plus the rule's regexes): RE2 runs in
time linear in the text, whatever the pattern, so an operator's `(a+)+$` cannot hang a request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from opsgate.config.guard import ContentRule, ModerationConfig, re2_compile
from opsgate.guard.moderation.profanity import ProfanityModel
from opsgate.guard.moderation.topics import TopicBans
from opsgate.guard.verdicts import Finding

MAX_RULE_MATCHES = 1_000
"""Findings per rule and text: a text made of one denied word repeated stays cheap."""


def _literal(words: tuple[str, ...], phrases: tuple[str, ...]) -> str | None:
    items = [re.escape(w) for w in (*words, *phrases) if w.strip()]
    if not items:
        return None
    return r"(?i)\b(?:" + "|".join(sorted(items, key=len, reverse=True)) + r")\b"


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    programs: tuple[Any, ...]


def _compile(rule: ContentRule) -> _Rule:
    patterns = [p for p in (_literal(rule.words, rule.phrases), *rule.regex) if p]
    return _Rule(f"DENIED_{rule.name.upper()}", tuple(re2_compile(p) for p in patterns))


class Moderator:
    """`find(text)`: findings of kind `PROFANITY`, `DENIED_<RULE>` and `TOPIC_<NAME>`."""

    def __init__(self, config: ModerationConfig, model: ProfanityModel | None = None) -> None:
        self.config = config
        self.model = model if model is not None or not config.classifier else ProfanityModel.load()
        self.topics = TopicBans(config.topics, config.embedder_path) if config.topics else None
        self.offload = self.topics is not None
        """Topic bans embed every sentence (milliseconds): the checks then leave the loop."""
        self._rules = [_compile(rule) for rule in config.deny]
        allowed = _literal(config.allow.words, config.allow.phrases)
        self._allow = re2_compile(allowed) if allowed else None

    def find(self, text: str) -> list[Finding]:
        if not text.strip():
            return []
        text = self._blank_allowed(text)
        found: list[Finding] = []
        for rule in self._rules:
            for program in rule.programs:
                for n, m in enumerate(program.finditer(text)):
                    if n >= MAX_RULE_MATCHES:
                        break
                    if m.end() > m.start():
                        found.append(Finding(rule.kind, m.start(), m.end(), m.group(), 1.0))
        if self.model is not None:
            probability = self.model.probability(text)
            if probability >= self.config.threshold:
                spans = self.model.offending(text, self.config.min_word_weight)
                if not spans:  # offensive as a whole, no single word to blame
                    stripped = text.strip()
                    start = text.index(stripped)
                    spans = [(start, start + len(stripped))]
                found += [Finding("PROFANITY", a, b, text[a:b], probability) for a, b in spans]
        if self.topics is not None:
            found += self.topics.find(text)
        found.sort(key=lambda f: (f.start, -f.end))
        return found

    def _blank_allowed(self, text: str) -> str:
        if self._allow is None:
            return text
        return str(self._allow.sub(lambda m: " " * len(m.group()), text))
