"""The guard's runtime: policies, detectors and the injection model, built once per config.

Detectors are compiled per set of entity types and kept; the injection model loads only when
some policy uses it (it is the one expensive part). The monitor is handed over from the
previous runtime on reload, so a config change does not reset the spike windows.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opsgate.access.principal import Principal
from opsgate.config.guard import GuardConfig, GuardPolicy
from opsgate.config.loader import ConfigError
from opsgate.guard.credentials import SecretsDetector
from opsgate.guard.inspection import Scanner, Tools
from opsgate.guard.moderation import Moderator, ProfanityModelError, TopicModelError
from opsgate.guard.monitor import Emit, GuardMonitor
from opsgate.guard.pii import Detector
from opsgate.guard.policy import (
    Policies,
    pii_types_needed,
    secrets_needed,
    uses_injection,
    uses_moderation,
)
from opsgate.guard.redact import Redactor
from opsgate.guard.schemas import InputSchemas
from opsgate.guard.verdicts import NER_TYPES, PII_TYPES

if TYPE_CHECKING:
    from opsgate.guard.pii.presidio import PresidioEngine

log = logging.getLogger("opsgate.guard")


class GuardService:
    def __init__(
        self,
        config: GuardConfig,
        *,
        emit: Emit | None = None,
        previous: GuardService | None = None,
        source: str = "<config>",
    ) -> None:
        self.config = config
        self.policies = Policies(config)
        self._detectors: dict[tuple[tuple[str, ...], bool, bool], Detector] = {}
        self.injection: Scanner | None = None
        if uses_injection(config):
            same = previous is not None and previous.config.injection == config.injection
            if same and previous is not None and previous.injection is not None:
                self.injection = previous.injection  # a reload does not load the model again
            else:
                self.injection = load_injection(config, source)
        self.moderator: Moderator | None = None
        """The moderation check (`guard.moderation`), built once when some policy uses it."""
        if uses_moderation(config):
            self.moderator = load_moderator(config, previous, source)
        self.presidio: PresidioEngine | None = None
        """The Presidio backend (`pii_backend: presidio | both`), loaded once like the model."""
        if config.pii_backend != "builtin":
            self.presidio = _presidio(config, previous, source)
        self.monitor: GuardMonitor
        if previous is not None:
            self.monitor = previous.monitor
            self.monitor.config, self.monitor.emit = config.monitor, emit
        else:
            self.monitor = GuardMonitor(config.monitor, emit)
        self.schemas = InputSchemas(config.models)
        """Per-model input schemas (`guard.models.<model>.input_schema`), compiled once."""
        masked = (*PII_TYPES, *ner_types(config))
        self.masker = Redactor(self.detector(masked, secrets=True), limit=config.max_scan_chars)
        """Masks stored bodies (`traces.store_bodies: masked`, `mask_in_logs`)."""

    def policy_for(self, principal: Principal | None) -> GuardPolicy:
        return self.policies.for_principal(principal)

    def detector(
        self, types: tuple[str, ...], *, secrets: bool, moderation: bool = False
    ) -> Detector:
        key = (types, secrets, moderation)
        found = self._detectors.get(key)
        if found is None:
            threshold = self.config.entropy_threshold
            scanner = SecretsDetector(entropy_threshold=threshold) if secrets else None
            moderator = self.moderator if moderation else None
            if self.presidio is not None:
                from opsgate.guard.pii.presidio import PresidioDetector

                found = PresidioDetector(
                    self.presidio,
                    types,
                    mode="both" if self.config.pii_backend == "both" else "presidio",
                    region=self.config.phone_region,
                    secrets=scanner,
                    moderator=moderator,
                )
            else:
                found = Detector(
                    types, region=self.config.phone_region, secrets=scanner, moderator=moderator
                )
            if moderator is not None and moderator.offload:
                found.offload = True  # topic bans embed sentences: off the event loop
            self._detectors[key] = found
        return found

    def tools(self, policy: GuardPolicy) -> Tools:
        types = pii_types_needed(policy)
        with_secrets = secrets_needed(policy)
        moderation = policy.moderation != "off"
        wanted = types or with_secrets or moderation
        detector = (
            self.detector(types, secrets=with_secrets, moderation=moderation) if wanted else None
        )
        injection = self.injection if policy.injection != "off" else None  # loaded for others
        return Tools(detector, injection, self.config.max_scan_chars)

    def output_detector(self, policy: GuardPolicy) -> Detector | None:
        types = policy.pii_types if policy.output_pii != "off" else ()
        with_secrets = policy.output_secrets != "off"
        moderation = policy.output_moderation != "off"
        if not types and not with_secrets and not moderation:
            return None
        return self.detector(tuple(types), secrets=with_secrets, moderation=moderation)

    def mask_text(self, text: str) -> str:
        return self.masker.mask_text(text)

    def mask_body(self, body: Any) -> Any:
        return self.masker.mask_json(body)


def load_injection(config: GuardConfig, source: str = "<config>") -> Scanner:
    """The injection detector (`guard.injection`), loaded once per runtime; a model that cannot
    be loaded, or a backend whose extra is not installed, is a config error (start-up or
    reload stops with the field), not a traceback."""
    from opsgate.guard.injection.backends import load_detector

    settings = config.injection
    try:
        return load_detector(
            settings.backend,
            settings.model_path,
            threshold=settings.threshold,
            untrusted_threshold=settings.untrusted_threshold,
        )
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(source, [f"guard.injection.model_path: {exc}"]) from exc


def load_moderator(
    config: GuardConfig, previous: GuardService | None = None, source: str = "<config>"
) -> Moderator:
    """The moderation check; a reload with the same settings keeps the loaded one."""
    kept = previous.moderator if previous is not None else None
    if kept is not None and kept.config == config.moderation:
        return kept
    try:
        return Moderator(config.moderation)
    except (ProfanityModelError, TopicModelError) as exc:
        raise ConfigError(source, [f"guard.moderation: {exc}"]) from exc


def ner_types(config: GuardConfig) -> tuple[str, ...]:
    """NER types (PERSON, LOCATION) that some policy asks for: they need Presidio with NER."""
    wanted = {t for p in config.policies() for t in (*p.pii_types, *p.sensitive_types)}
    return tuple(t for t in NER_TYPES if t in wanted)


def _presidio(config: GuardConfig, previous: GuardService | None, source: str) -> PresidioEngine:
    """A reload keeps the loaded engine when its settings did not change."""
    kept = previous.presidio if previous is not None else None
    if kept is not None and previous is not None:
        old = previous.config
        same = (old.presidio, old.phone_region) == (config.presidio, config.phone_region)
        if same and kept.covers.issuperset(ner_types(config)):
            return kept
    return load_presidio(config, source)


def load_presidio(config: GuardConfig, source: str = "<config>") -> PresidioEngine:
    """The Presidio backend, loaded once per runtime: a missing `presidio` extra or a spaCy
    pipeline that cannot be loaded (or lacks the NER some policy needs) is a config error."""
    settings = config.presidio
    try:
        from opsgate.guard.pii.presidio import PresidioEngine

        return PresidioEngine.load(
            nlp_model=settings.nlp_model,
            language=settings.language,
            score_threshold=settings.score_threshold,
            region=config.phone_region,
            need_ner=ner_types(config),
        )
    except ImportError as exc:
        raise ConfigError(source, [f"guard.pii_backend: {exc}"]) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(source, [f"guard.presidio.nlp_model: {exc}"]) from exc
