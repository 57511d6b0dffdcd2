"""The guard's runtime: policies, detectors and the injection model, built once per config.

Detectors are compiled per set of entity types and kept; the injection model loads only when
some policy uses it (it is the one expensive part). The monitor is handed over from the
previous runtime on reload, so a config change does not reset the spike windows.
"""

from __future__ import annotations

import logging
from typing import Any

from opsgate.access.principal import Principal
from opsgate.config.loader import ConfigError
from opsgate.guard.config import GuardConfig, GuardPolicy
from opsgate.guard.inspect import Scanner, Tools
from opsgate.guard.monitor import Emit, GuardMonitor
from opsgate.guard.pii import Detector
from opsgate.guard.policy import Policies, pii_types_needed, secrets_needed, uses_injection
from opsgate.guard.redact import Redactor
from opsgate.guard.secrets import SecretsDetector
from opsgate.guard.types import PII_TYPES

log = logging.getLogger("opsgate.guard")


class GuardService:
    def __init__(
        self,
        config: GuardConfig,
        *,
        emit: Emit | None = None,
        previous: GuardService | None = None,
        injection: Scanner | None = None,
        source: str = "<config>",
    ) -> None:
        self.config = config
        self.policies = Policies(config)
        self._detectors: dict[tuple[tuple[str, ...], bool], Detector] = {}
        self.injection = injection
        if injection is None and uses_injection(config):
            same = previous is not None and previous.config.injection == config.injection
            if same and previous is not None and previous.injection is not None:
                self.injection = previous.injection  # a reload does not load the model again
            else:
                self.injection = load_injection(config, source)
        self.monitor: GuardMonitor
        if previous is not None:
            self.monitor = previous.monitor
            self.monitor.config, self.monitor.emit = config.monitor, emit
        else:
            self.monitor = GuardMonitor(config.monitor, emit)
        self.masker = Redactor(self.detector(PII_TYPES, secrets=True), limit=config.max_scan_chars)
        """Masks stored bodies (`traces.store_bodies: masked`, `mask_in_logs`)."""

    def policy_for(self, principal: Principal | None) -> GuardPolicy:
        return self.policies.for_principal(principal)

    def detector(self, types: tuple[str, ...], *, secrets: bool) -> Detector:
        key = (types, secrets)
        found = self._detectors.get(key)
        if found is None:
            threshold = self.config.entropy_threshold
            found = Detector(
                types,
                region=self.config.phone_region,
                secrets=SecretsDetector(entropy_threshold=threshold) if secrets else None,
            )
            self._detectors[key] = found
        return found

    def tools(self, policy: GuardPolicy) -> Tools:
        types = pii_types_needed(policy)
        with_secrets = secrets_needed(policy)
        detector = self.detector(types, secrets=with_secrets) if types or with_secrets else None
        return Tools(detector, self.injection, self.config.max_scan_chars)

    def output_detector(self, policy: GuardPolicy) -> Detector | None:
        types = policy.pii_types if policy.output_pii != "off" else ()
        with_secrets = policy.output_secrets != "off"
        if not types and not with_secrets:
            return None
        return self.detector(tuple(types), secrets=with_secrets)

    def mask_text(self, text: str) -> str:
        return self.masker.mask_text(text)

    def mask_body(self, body: Any) -> Any:
        return self.masker.mask_json(body)


def load_injection(config: GuardConfig, source: str = "<config>") -> Scanner:
    """The injection detector (`guard.injection`), loaded once per runtime; a model that cannot
    be loaded is a config error (start-up or reload stops with the field), not a traceback."""
    from opsgate.guard.injection import InjectionDetector

    try:
        detector: Scanner = InjectionDetector.load(
            model_path=config.injection.model_path, threshold=config.injection.threshold
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(source, [f"guard.injection.model_path: {exc}"]) from exc
    return detector
