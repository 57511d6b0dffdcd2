"""Which guard policy applies to a caller: the default, then their team's, then their key's.

Unlike cache policies (a key's replaces the default whole), guard layers merge field by field:
a team that only says `pii: block` keeps the default's injection setting. A merged policy is
computed once per (key, team) and kept, as config does not change under a runtime.
"""

from __future__ import annotations

from opsgate.access.principal import Principal
from opsgate.config.guard import GuardConfig, GuardPolicy


def merge(base: GuardPolicy, over: GuardPolicy) -> GuardPolicy:
    """`base` with the fields `over` sets explicitly."""
    if not over.model_fields_set:
        return base
    return base.model_copy(update={name: getattr(over, name) for name in over.model_fields_set})


class Policies:
    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self._merged: dict[tuple[str, str | None], GuardPolicy] = {}

    def for_principal(self, principal: Principal | None) -> GuardPolicy:
        config = self.config
        if principal is None:
            return config.default
        team = principal.team_id if principal.team_id in config.teams else None
        if team is None and principal.key_id not in config.keys:
            return config.default
        cache_key = (principal.key_id if principal.key_id in config.keys else "", team)
        policy = self._merged.get(cache_key)
        if policy is None:
            policy = config.default
            if team is not None:
                policy = merge(policy, config.teams[team])
            if principal.key_id in config.keys:
                policy = merge(policy, config.keys[principal.key_id])
            self._merged[cache_key] = policy
        return policy


def scans_input(policy: GuardPolicy) -> bool:
    """Whether the input guard has anything to scan for under `policy`."""
    return (
        policy.injection != "off"
        or policy.pii != "off"
        or policy.secrets != "off"
        or policy.moderation != "off"
        or bool(policy.sensitive_types)
        or checks_output(policy)
    )


def checks_output(policy: GuardPolicy) -> bool:
    return (
        policy.output_pii != "off"
        or policy.output_secrets != "off"
        or policy.output_moderation != "off"
        or policy.canary
    )


def pii_types_needed(policy: GuardPolicy) -> tuple[str, ...]:
    """PII types the input scan looks for: the policy's own, plus what makes a request
    sensitive, plus (for the output check) what the caller sent themselves."""
    wanted: set[str] = set(policy.sensitive_types)
    if policy.pii != "off" or policy.output_pii != "off":
        wanted.update(policy.pii_types)
    return tuple(sorted(wanted))


def secrets_needed(policy: GuardPolicy) -> bool:
    return policy.secrets != "off" or policy.output_secrets != "off"


def uses_moderation(config: GuardConfig) -> bool:
    return any(p.moderation != "off" or p.output_moderation != "off" for p in config.policies())


def uses_injection(config: GuardConfig) -> bool:
    return any(p.injection != "off" for p in config.policies())
