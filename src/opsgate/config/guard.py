"""The `guard:` section of the config file.

Defaults are opt-in: every check is `off`, so a gateway without a `guard:` section scans
nothing and pays for nothing but a header look-up. What does always hold is sensitivity: a
request the caller marks `x-opsgate-sensitivity: sensitive` (or `private`) only ever goes to a
deployment tagged `private` or `on-prem`, and is refused with 403 when none serves its model.

A policy is layered: `default`, then the key's team (`teams`), then the key (`keys`, by key
id); each layer overrides only the fields it sets.
"""

from __future__ import annotations

from typing import Any, Literal

import jsonschema
import phonenumbers
import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Check = Literal[
    "injection", "pii", "secrets", "moderation", "canary", "size", "sensitivity", "schema"
]
Stage = Literal["input", "output"]
Action = Literal["off", "flag", "block", "redact", "sanitize", "mask_in_logs", "route"]
"""`route` is what sensitivity does: the request may only go to private deployments."""

InjectionAction = Literal["off", "flag", "block", "sanitize"]
DataAction = Literal["off", "flag", "block", "redact", "mask_in_logs"]
OutputAction = Literal["off", "flag", "block", "redact"]
OversizeAction = Literal["flag", "block"]

PII_TYPES = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "IBAN",
    "US_SSN",
    "UK_NINO",
    "ES_NIF",
    "FR_NIR",
    "IP_ADDRESS",
    "DATE_OF_BIRTH",
)
"""Entity types the built-in PII detectors report (also the placeholder names)."""

NER_TYPES = ("PERSON", "LOCATION", "ORGANIZATION")
"""Entity types only a named-entity model finds: `guard.pii_backend: presidio` (or `both`)
with a spaCy pipeline that has NER (`guard.presidio.nlp_model`). Never in the default
`pii_types`: a policy lists them to use them."""

SECRET_TYPES = ("API_KEY", "PRIVATE_KEY", "JWT", "SECRET")
"""Entity types the secrets detector reports; `SECRET` is the entropy fallback."""

MODERATION_TYPES = ("PROFANITY", "DENIED", "TOPIC")
"""What the moderation check reports: the classifier's offensive words, operator deny rules
(`DENIED_<RULE>`, by rule name) and banned topics (`TOPIC_<NAME>`)."""


def is_moderation(kind: str) -> bool:
    return kind == "PROFANITY" or kind.startswith(("DENIED", "TOPIC"))


def re2_compile(pattern: str) -> Any:
    """An RE2 program (linear-time matching); errors raise `re2.error`, never logged."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardPolicy(_Strict):
    """What to check and what to do about it, for one scope (default, team, key)."""

    injection: InjectionAction = Field(
        default="off",
        description="prompt injection in user turns and untrusted content: off, flag (traced, "
        "passed), block (400), sanitize (untrusted content wrapped in marked delimiters)",
    )
    pii: DataAction = Field(
        default="off",
        description="PII in the request: off, flag, block (400), redact (typed placeholders "
        "before the model), mask_in_logs (stored bodies masked, the model sees it)",
    )
    pii_types: tuple[str, ...] = Field(
        default=PII_TYPES, description="which entity types the PII check looks for"
    )
    restore: bool = Field(
        default=False,
        description="with pii/secrets: redact, put the caller's values back into the answer",
    )
    secrets: DataAction = Field(
        default="off", description="API keys, private keys, tokens, passwords: like pii"
    )
    output_pii: OutputAction = Field(
        default="off", description="PII in the answer that the caller did not send"
    )
    output_secrets: OutputAction = Field(default="off", description="secrets in the answer")
    moderation: OutputAction = Field(
        default="off",
        description="offensive language (the classifier) and operator deny rules in the "
        "request: off, flag, block (400), redact ([REDACTED_PROFANITY], never put back)",
    )
    output_moderation: OutputAction = Field(
        default="off", description="the same in the answer, streams included"
    )
    canary: bool = Field(
        default=False,
        description="put a random canary in the system prompt; an answer that repeats it "
        "(a leaked prompt) is blocked",
    )
    sensitive_types: tuple[str, ...] = Field(
        default=(),
        description="PII types that make a request sensitive (only private deployments)",
    )
    oversize: OversizeAction = Field(
        default="flag",
        description="when a request has more text than guard.max_scan_chars: flag (the rest "
        "is not scanned) or block (413)",
    )

    @field_validator("pii_types", "sensitive_types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = (*PII_TYPES, *NER_TYPES)
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown PII types {unknown}; expected some of {list(known)}")
        return value


class SensitivityConfig(_Strict):
    private_tags: tuple[str, ...] = Field(
        default=("private", "on-prem"),
        min_length=1,
        description="a sensitive request only goes to deployments with one of these tags",
    )
    metadata_key: str = Field(
        default="sensitivity",
        description="metadata label (body `metadata` or x-opsgate-metadata) that marks a "
        "request sensitive when it is `sensitive` or `private`",
    )


class InjectionConfig(_Strict):
    backend: Literal["linear", "transformer"] = Field(
        default="linear",
        description="linear: the n-gram classifier, numpy only (default); transformer: a "
        "sequence-classification model from `model_path` (needs the `guard-ml` extra)",
    )
    model_path: str | None = Field(
        default=None,
        description="linear: a model file from the training script (default built-in); "
        "transformer: a local Hugging Face model folder (required)",
    )
    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="score for an attack; default the detector's"
    )
    untrusted_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="score for an attack in untrusted content; default the detector's",
    )

    @model_validator(mode="after")
    def _transformer_needs_a_path(self) -> InjectionConfig:
        if self.backend == "transformer" and not self.model_path:
            raise ValueError("backend transformer needs model_path (a local model folder)")
        return self


class MonitorConfig(_Strict):
    """Spike alerts: a key whose share of blocked injections or PII findings jumps."""

    enabled: bool = True
    window: float = Field(default=300.0, gt=0, description="seconds of the sliding window")
    min_requests: int = Field(default=20, ge=1, description="fewer requests never alert")
    injection_rate: float = Field(
        default=0.2, gt=0, le=1, description="share of a key's requests blocked as injection"
    )
    pii_rate: float = Field(
        default=0.5, gt=0, le=1, description="share of a key's requests with PII found"
    )
    cooldown: float = Field(default=900.0, ge=0, description="seconds between two alerts")
    max_keys: int = Field(default=10_000, ge=1, description="keys tracked at once (LRU)")


class ContentRule(_Strict):
    """One operator deny rule: words, phrases (case-insensitive, whole words) and regular
    expressions (RE2 syntax: linear time, so no pattern can hang the gateway)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="reported as DENIED_<NAME>")
    words: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()

    @field_validator("regex")
    @classmethod
    def _re2(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re2_compile(pattern)
            except re2.error as exc:
                why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
                raise ValueError(f"regex {pattern!r} is not valid RE2 syntax: {why}") from None
        return value


class TopicBan(_Strict):
    """A banned topic: sentences close in meaning to one of its examples are reported as
    TOPIC_<NAME> (a sentence embedding's cosine similarity at or above `threshold`)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="reported as TOPIC_<NAME>")
    examples: tuple[str, ...] = Field(min_length=1, description="sentences on the topic")
    threshold: float = Field(
        default=0.45, ge=0.0, le=1.0, description="cosine similarity to the nearest example"
    )


class AllowList(_Strict):
    """Words and phrases never reported (a town named Scunthorpe, a product called Hell)."""

    words: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()


class ModerationConfig(_Strict):
    """The `moderation` check: a local offensive-language classifier and operator rules."""

    classifier: bool = Field(default=True, description="run the offensive-language classifier")
    threshold: float = Field(
        default=0.8, ge=0.0, le=1.0, description="classifier probability that flags a text"
    )
    min_word_weight: float = Field(
        default=3.0,
        description="a flagged text's words weighing at least this much are the findings "
        "(redacted); when none does, the whole text is",
    )
    deny: tuple[ContentRule, ...] = ()
    allow: AllowList = Field(default_factory=AllowList)
    topics: tuple[TopicBan, ...] = Field(
        default=(),
        description="banned topics, by example sentences (needs the `embed` extra's MiniLM, "
        "or `embedder_path`)",
    )
    embedder_path: str | None = Field(
        default=None,
        description="a local sentence-transformers model folder for `topics`; default the "
        "packaged all-MiniLM-L6-v2",
    )


class PresidioConfig(_Strict):
    """The Presidio backend (`pii_backend: presidio | both`; the `presidio` extra)."""

    nlp_model: str | None = Field(
        default=None,
        description="a local spaCy pipeline folder or an installed spaCy package (never "
        "downloaded); null: a blank pipeline, pattern recognizers only (no PERSON/LOCATION)",
    )
    language: str = Field(
        default="en", pattern=r"^[a-z]{2,3}$", description="language of the texts (spaCy code)"
    )
    score_threshold: float = Field(
        default=0.4, ge=0.0, le=1.0, description="Presidio findings scoring lower are dropped"
    )


class ModelGuardConfig(_Strict):
    """Guard settings of one public model name (`guard.models.<model>`)."""

    input_schema: dict[str, Any] = Field(
        description="a JSON Schema (draft 2020-12 unless `$schema` says otherwise) that the "
        "JSON in every user message of a request to this model must satisfy"
    )
    input_schema_action: Literal["flag", "block"] = Field(
        default="block",
        description="block: 400 `input_schema_violation` naming the failing path; flag: the "
        "request goes on, the violation is recorded on the trace and in metrics",
    )

    @field_validator("input_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.validators.validator_for(value).check_schema(value)
        except jsonschema.SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
        return value


class GuardConfig(_Strict):
    default: GuardPolicy = Field(default_factory=GuardPolicy)
    teams: dict[str, GuardPolicy] = Field(default_factory=dict)
    keys: dict[str, GuardPolicy] = Field(
        default_factory=dict, description="by key id; wins over the team's policy"
    )
    phone_region: str = Field(
        default="US",
        min_length=2,
        max_length=2,
        description="region for phone numbers written without a country code",
    )
    max_scan_chars: int = Field(
        default=200_000, gt=0, description="text scanned per request, newest first"
    )
    entropy_threshold: float | None = Field(
        default=4.3,
        ge=0,
        description="bits per character for the secrets check's random-token fallback; "
        "null switches the fallback off",
    )
    injection: InjectionConfig = Field(default_factory=InjectionConfig)
    pii_backend: Literal["builtin", "presidio", "both"] = Field(
        default="builtin",
        description="builtin: opsgate's recognizers; presidio: Microsoft Presidio's where it "
        "has one (FR_NIR, DATE_OF_BIRTH and secrets stay built-in); both: the union",
    )
    presidio: PresidioConfig = Field(default_factory=PresidioConfig)
    sensitivity: SensitivityConfig = Field(default_factory=SensitivityConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    moderation: ModerationConfig = Field(default_factory=ModerationConfig)
    models: dict[str, ModelGuardConfig] = Field(
        default_factory=dict,
        description="by public model name: checks that belong to the model, not the caller "
        "(an input schema for structured requests)",
    )

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r}; expected e.g. US, GB, DE")
        return value.upper()

    @model_validator(mode="after")
    def _ner_needs_presidio(self) -> GuardConfig:
        wanted = {t for p in self.policies() for t in (*p.pii_types, *p.sensitive_types)}
        if self.pii_backend == "builtin" and (ner := sorted(wanted & set(NER_TYPES))):
            raise ValueError(f"pii_types {ner} need pii_backend presidio or both (NER)")
        return self

    def policies(self) -> list[GuardPolicy]:
        return [self.default, *self.teams.values(), *self.keys.values()]
