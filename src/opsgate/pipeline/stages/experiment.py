"""AssignVariant and ApplyVariant: the experiments' two places in the chat pipeline.

    record → authenticate → AssignVariant → RenderPrompt → ApplyVariant → admit → ...

- AssignVariant finds the experiment whose traffic the request is (its model, or the prompt
  and label it names in the caller's team), takes the unit (end user, session, key or the
  request itself) and gives it its variant by a hash (experiments/assign.py): the same unit gets
  the same variant on every replica and after a reload, with no shared state; a bandit's unit
  keeps the variant it got first. A prompt variant is chosen here, before rendering, by naming
  its version, so the prompt is rendered once and the version served is what the trace says.
  A request without the unit (no end user sent), outside the traffic share, or whose key may
  not use a variant's model, is served as if there were no experiment.
- ApplyVariant, right after the prompt is rendered, sets the variant's model and parameters on
  the request that goes on (so admission prices the model actually called) and puts the label
  the request named back on the trace's prompt columns.

Both say so in `x-opsgate-experiment` and `x-opsgate-variant` and on the trace
(`experiment`, `variant`).
"""

from __future__ import annotations

from dataclasses import replace

from opsgate.chat import ChatRequest
from opsgate.experiments.model import Experiment
from opsgate.experiments.registry import Assignment, admits, choose
from opsgate.experiments.service import ExperimentService
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.pipeline import Next
from opsgate.prompts.model import MODEL_PREFIX, NO_TEAM
from opsgate.prompts.request import read_call

EXPERIMENT_HEADER = "x-opsgate-experiment"
VARIANT_HEADER = "x-opsgate-variant"


def unit_of(ctx: RequestContext, unit: str) -> str | None:
    if unit == "end_user":
        return ctx.labels.end_user
    if unit == "session":
        return ctx.labels.session_id
    if unit == "key":
        return ctx.principal.key_id if ctx.principal is not None else None
    return ctx.trace_id


def traffic_of(ctx: RequestContext, req: ChatRequest) -> tuple[str, str | None]:
    """The traffic key of a request, and the label it named (prompt traffic only)."""
    found = read_call(req)
    if found is None:
        return f"model:{req.model}", None
    if found.ref.label is None:  # a pinned version is never experimented on
        return "", None
    principal = ctx.principal
    team = (principal.team_id if principal is not None else None) or NO_TEAM
    return f"prompt:{team}/{found.ref.name}@{found.ref.label}", found.ref.label


def pinned(req: ChatRequest, name: str, version: int) -> ChatRequest:
    """The same request naming prompt version `version` instead of a label."""
    if req.model.startswith(MODEL_PREFIX):
        return replace(req, model=f"{MODEL_PREFIX}{name}@{version}")
    obj = {k: v for k, v in dict(req.params["prompt"]).items() if k != "label"}
    return replace(req, params={**req.params, "prompt": {**obj, "version": version}})


class AssignVariant:
    def __init__(self, service: ExperimentService) -> None:
        self.service = service

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        registry = self.service.registry
        if not registry.by_traffic:  # the fast path: no experiment is running
            return await call_next(call)
        ctx, req = call.ctx, call.request
        traffic, label = traffic_of(ctx, req)
        for exp in registry.candidates(traffic):
            assignment = await self._assign(ctx, exp)
            if assignment is not None:
                return await call_next(ChatCall(ctx, self._served(ctx, req, assignment, label)))
        return await call_next(call)

    async def _assign(self, ctx: RequestContext, exp: Experiment) -> Assignment | None:
        unit = unit_of(ctx, exp.spec.unit)
        if unit is None or not admits(exp, unit):
            return None
        principal = ctx.principal
        if principal is not None and not all(
            principal.may_use(v.model) for v in exp.spec.variants if v.model is not None
        ):
            return None
        remembered = None
        if exp.spec.allocation == "thompson" and exp.status == "running":
            remembered = await self.service.recall(exp.name, unit)
        assignment = choose(exp, unit, remembered)
        if assignment.new:
            self.service.note_new(exp.name, unit, assignment.variant.name)
        return assignment

    @staticmethod
    def _served(
        ctx: RequestContext, req: ChatRequest, assignment: Assignment, label: str | None
    ) -> ChatRequest:
        ctx.experiment = assignment
        ctx.response_headers[EXPERIMENT_HEADER] = assignment.experiment.name
        ctx.response_headers[VARIANT_HEADER] = assignment.variant.name
        traffic = assignment.experiment.spec.traffic
        version = assignment.variant.prompt_version
        if version is not None and traffic.prompt is not None and label is not None:
            return pinned(req, traffic.prompt, version)
        return req


class ApplyVariant:
    """The variant's model and parameters on the rendered request (see the module doc)."""

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        ctx = call.ctx
        if ctx.experiment is None:
            return await call_next(call)
        variant = ctx.experiment.variant
        traffic = ctx.experiment.experiment.spec.traffic
        if ctx.prompt is not None and traffic.prompt is not None:
            ctx.prompt = replace(ctx.prompt, label=traffic.label)
        if variant.model is None and not variant.params:
            return await call_next(call)
        req = call.request
        model = variant.model or req.model
        if ctx.prompt is not None and variant.model is not None:
            ctx.prompt = replace(ctx.prompt, model=variant.model)
        request = replace(req, model=model, params={**req.params, **variant.params})
        return await call_next(ChatCall(ctx, request))
