"""Whether a variant may be promoted, and moving a prompt variant's label.

A variant a guardrail stopped, one that lost to a declared winner, or one the statistics find
worse than another is refused with 409; a name the experiment does not have is a 400.
"""

from __future__ import annotations

from opsgate.access.principal import Principal
from opsgate.config.experiments import VariantConfig
from opsgate.errors import BadRequestError
from opsgate.experiments.errors import ExperimentConflictError
from opsgate.experiments.model import Experiment
from opsgate.experiments.reading import ExperimentReader, worse
from opsgate.prompts.service import PromptService


async def promotable(exp: Experiment, variant: str, reader: ExperimentReader) -> VariantConfig:
    """The variant to promote, or the 400/409 saying why not."""
    chosen = exp.spec.variant(variant)
    if chosen is None:
        raise BadRequestError(
            f"experiment {exp.name!r} has no variant {variant!r}", param="variant"
        )
    if exp.status == "promoted":
        raise ExperimentConflictError(f"experiment {exp.name!r} already promoted {exp.promoted!r}")
    d = exp.decision
    if d is not None and d.outcome == "guardrail" and d.variant == variant:
        raise ExperimentConflictError(f"variant {variant!r} was stopped by a guardrail: {d.reason}")
    if d is not None and d.outcome == "winner" and d.variant != variant:
        raise ExperimentConflictError(f"variant {variant!r} lost: the winner is {d.variant!r}")
    assessment = await reader.assess(exp)
    _, maximize = reader.kind(exp)
    for row in assessment.variants:
        if row.name == variant and assessment.ready and worse(row, assessment, exp, maximize):
            raise ExperimentConflictError(f"variant {variant!r} is worse than another variant")
    return chosen


async def move_label(
    prompts: PromptService | None,
    exp: Experiment,
    chosen: VariantConfig,
    *,
    who: Principal,
    actor: str,
) -> None:
    """A prompt variant's version gets the experiment's `promote_label` (through the prompt
    registry, audited there too); other variants move no label."""
    if chosen.prompt_version is None:
        return
    if prompts is None:
        raise BadRequestError("the prompt registry is not available", param="variant")
    traffic = exp.spec.traffic
    assert traffic.prompt is not None
    await prompts.move(
        who,
        traffic.team_id,
        traffic.prompt,
        exp.spec.promote_label,
        chosen.prompt_version,
        actor=actor,
    )
