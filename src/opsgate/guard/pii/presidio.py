"""Optional Presidio backend for the PII check (`guard.pii_backend: presidio | both`).

Presidio (`presidio-analyzer`, the `opsgate[presidio]` extra) brings its own recognizers and,
with a spaCy pipeline that has NER, person names and places (PERSON, LOCATION). It runs fully
offline: the spaCy pipeline is a local folder or an installed package (default: a blank
pipeline, so pattern recognizers only), nothing is downloaded, and the e-mail check reads
tldextract's bundled suffix list instead of fetching one. This module imports Presidio at
import time: import it only when the backend is configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

try:
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        EsNifRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UkNinoRecognizer,
        UsSsnRecognizer,
    )
    from spacy.language import Language
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "the Presidio PII backend needs the `presidio` extra "
        "(pip install 'opsgate[presidio]'): " + str(exc)
    ) from exc

from opsgate.guard.credentials import SecretsDetector
from opsgate.guard.pii import Detector, Finder, resolve
from opsgate.guard.verdicts import NER_TYPES, PII_TYPES, Finding

Mode = Literal["presidio", "both"]

TO_OURS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
    "UK_NINO": "UK_NINO",
    "ES_NIF": "ES_NIF",
    "IP_ADDRESS": "IP_ADDRESS",
    "PERSON": "PERSON",
    "LOCATION": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",
}
"""Presidio entity → our type. Presidio has no FR_NIR and no date of birth (its DATE_TIME is
every date), so those two stay with the built-in recognizers."""
FROM_OURS = {ours: theirs for theirs, ours in TO_OURS.items()}

NER_LABELS = {
    "PER": "PERSON",
    "PERSON": "PERSON",
    "LOC": "LOCATION",
    "LOCATION": "LOCATION",
    "GPE": "LOCATION",
    "FAC": "LOCATION",
    "ORG": "ORGANIZATION",
    "ORGANIZATION": "ORGANIZATION",
}
"""spaCy NER label → Presidio entity; other labels (DATE, NORP, ...) are ignored.
ORGANIZATION is found only for a policy that lists it (an employer can identify a person, but
most organisations in a prompt are not personal data)."""

WINDOW = 50_000
"""Characters per analyzer call: spaCy refuses texts past `nlp.max_length`, and NER needs
memory in proportion to the text."""
OVERLAP = 256

_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
"""The bundled Public Suffix List snapshot: no fetch, no cache file."""


class _OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
    """Presidio's e-mail recognizer, validated against the bundled suffix list (its own
    `tldextract.extract` fetches the list from the network on first use)."""

    def validate_result(self, pattern_text: str) -> bool:
        return bool(_TLD(pattern_text).fqdn)


class _LocalSpacyEngine(SpacyNlpEngine):  # type: ignore[misc]
    """Presidio's spaCy engine over a pipeline already loaded here: its own `load()` would
    download a model it does not find."""

    def __init__(self, nlp: Language, language: str, ner: NerModelConfiguration) -> None:
        super().__init__(
            models=[{"lang_code": language, "model_name": nlp.meta.get("name", "blank")}],
            ner_model_configuration=ner,
        )
        self._pipeline = nlp
        self._language = language

    def load(self) -> None:
        self.nlp = {self._language: self._pipeline}


def _lowercase_lemma(doc: Any) -> Any:
    """Lemmas for a pipeline without a lemmatizer, so Presidio's context words ("card",
    "phone", "ssn" near a match) still raise scores on a blank pipeline."""
    for token in doc:
        if not token.lemma_:
            token.lemma_ = token.lower_
    return doc


Language.component("opsgate_lowercase_lemma", func=_lowercase_lemma)


def load_pipeline(nlp_model: str | None, language: str) -> Language:
    """A spaCy pipeline from a local folder or an installed package; `None` is a blank one.
    Never downloads: a name that is neither is an error naming what was expected."""
    if nlp_model is None:
        try:
            nlp = spacy.blank(language)
        except (ImportError, KeyError) as exc:  # spaCy raises ImportError for unknown codes
            raise ValueError(f"spaCy has no language {language!r}") from exc
    else:
        path = Path(nlp_model).expanduser()
        if not path.exists() and not spacy.util.is_package(nlp_model):
            raise ValueError(
                f"nlp_model {nlp_model!r} is neither a local spaCy pipeline folder nor an "
                "installed spaCy package (models are never downloaded)"
            )
        try:
            nlp = spacy.load(path if path.exists() else nlp_model)
        except (OSError, ValueError, KeyError) as exc:
            detail = " ".join(str(exc).split())
            raise ValueError(f"nlp_model {nlp_model!r} is not a spaCy pipeline: {detail}") from exc
        if nlp.lang != language:
            raise ValueError(f"nlp_model {nlp_model!r} is {nlp.lang!r}, not {language!r}")
    if "lemmatizer" not in nlp.pipe_names:
        nlp.add_pipe("opsgate_lowercase_lemma")
    return nlp


def entity_labels(nlp: Language) -> set[str]:
    """The labels of the pipeline's components that set `doc.ents` (empty: no NER)."""
    labels: set[str] = set()
    for name in nlp.pipe_names:
        if "doc.ents" in nlp.get_pipe_meta(name).assigns:
            labels.update(getattr(nlp.get_pipe(name), "labels", ()))
    return labels


class PresidioEngine:
    """One Presidio `AnalyzerEngine` with the recognizers for our types, built once per config
    (loading spaCy and Presidio takes seconds; `find` takes milliseconds)."""

    def __init__(self, analyzer: Any, language: str, score_threshold: float) -> None:
        self.analyzer = analyzer
        self.language = language
        self.score_threshold = score_threshold
        self.covers = frozenset(
            TO_OURS[e] for e in analyzer.get_supported_entities(language) if e in TO_OURS
        )
        """Our types this engine detects (NER types only with an NER pipeline)."""

    @classmethod
    def load(
        cls,
        *,
        nlp_model: str | None = None,
        language: str = "en",
        score_threshold: float = 0.4,
        region: str = "US",
        need_ner: Iterable[str] = (),
    ) -> PresidioEngine:
        """Raises ValueError for a pipeline that cannot be loaded, or that has no NER when
        `need_ner` (types from NER_TYPES) asks for it."""
        nlp = load_pipeline(nlp_model, language)
        labels = entity_labels(nlp)
        ner_types = sorted({NER_LABELS[label] for label in labels if label in NER_LABELS})
        missing = sorted(set(need_ner) - {TO_OURS[t] for t in ner_types})
        if missing:
            where = nlp_model or f"blank {language!r} pipeline"
            raise ValueError(
                f"pii_types {missing} need a spaCy pipeline with NER that labels them; "
                f"nlp_model ({where}) has entity labels {sorted(labels) or 'none'}"
            )
        ner = NerModelConfiguration(
            model_to_presidio_entity_mapping=dict(NER_LABELS),
            labels_to_ignore=sorted(labels - set(NER_LABELS)),
        )
        engine = _LocalSpacyEngine(nlp, language, ner)
        registry = RecognizerRegistry(
            recognizers=_recognizers(language, region, ner_types),
            supported_languages=[language],
        )
        analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=engine, supported_languages=[language]
        )
        return cls(analyzer, language, score_threshold)

    def find(self, text: str, types: Iterable[str]) -> list[Finding]:
        """Findings of `types` (ours; those this engine does not cover are skipped), in order,
        possibly overlapping."""
        entities = [FROM_OURS[t] for t in types if t in self.covers]
        if not entities or not text.strip():
            return []
        found: list[Finding] = []
        for offset, piece in _windows(text):
            for r in self.analyzer.analyze(
                piece,
                language=self.language,
                entities=entities,
                score_threshold=self.score_threshold,
            ):
                start, end = offset + r.start, offset + r.end
                found.append(Finding(TO_OURS[r.entity_type], start, end, text[start:end], r.score))
        found.sort(key=lambda f: (f.start, -f.end))
        return found


def _recognizers(language: str, region: str, ner_types: list[str]) -> list[Any]:
    """Presidio's recognizers for the types we map, all in `language` (some ship for one
    language only, like ES_NIF for "es"; a gateway's text is in the language configured)."""
    regions = tuple(dict.fromkeys((region, *PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS)))
    out: list[Any] = [
        _OfflineEmailRecognizer(supported_language=language),
        PhoneRecognizer(supported_language=language, supported_regions=regions),
        CreditCardRecognizer(supported_language=language),
        IbanRecognizer(supported_language=language),
        UsSsnRecognizer(supported_language=language),
        UkNinoRecognizer(supported_language=language),
        EsNifRecognizer(supported_language=language),
        IpRecognizer(supported_language=language),
    ]
    if ner_types:
        out.append(SpacyRecognizer(supported_language=language, supported_entities=ner_types))
    return out


def _windows(text: str) -> Iterator[tuple[int, str]]:
    """(offset, piece) over `text` in WINDOW-sized pieces that overlap by OVERLAP characters,
    so a value on a boundary is whole in one of them (duplicates are resolved later)."""
    if len(text) <= WINDOW:
        yield 0, text
        return
    start = 0
    while start < len(text):
        yield start, text[start : start + WINDOW]
        if start + WINDOW >= len(text):
            return
        start += WINDOW - OVERLAP


class PresidioDetector(Detector):
    """A `Detector` whose PII types Presidio finds: with `mode="presidio"` the types Presidio
    has no recognizer for (FR_NIR, DATE_OF_BIRTH) and secrets stay built-in; with
    `mode="both"` every built-in recognizer runs too and the findings are merged, overlaps
    resolved as the built-in detector resolves its own."""

    offload = True  # tens of milliseconds per 1k tokens: spaCy, then phone parsing per region

    def __init__(
        self,
        engine: PresidioEngine,
        types: Iterable[str] = PII_TYPES,
        *,
        mode: Mode = "presidio",
        region: str = "US",
        secrets: SecretsDetector | None = None,
        moderator: Finder | None = None,
    ) -> None:
        wanted = tuple(dict.fromkeys(types))
        if unknown := set(wanted) - set(PII_TYPES) - set(NER_TYPES):
            raise ValueError(f"unknown PII types {sorted(unknown)}")
        if missing := [t for t in wanted if t in NER_TYPES and t not in engine.covers]:
            raise ValueError(f"{missing} need a spaCy pipeline with NER (guard.presidio)")
        builtin = [
            t for t in wanted if t in PII_TYPES and (mode == "both" or t not in engine.covers)
        ]
        super().__init__(builtin, region=region, secrets=secrets, moderator=moderator)
        self.engine = engine
        self.presidio_types = tuple(t for t in wanted if t in engine.covers)
        self.types = tuple(t for t in (*PII_TYPES, *NER_TYPES) if t in wanted)

    def find(self, text: str) -> list[Finding]:
        found = super().find(text)
        found.extend(self.engine.find(text, self.presidio_types))
        return resolve(found)


__all__ = ["FROM_OURS", "TO_OURS", "PresidioDetector", "PresidioEngine", "load_pipeline"]
