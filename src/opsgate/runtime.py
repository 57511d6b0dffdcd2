"""The runtime: the router and the chat and embedding pipelines built from one config.

`build_runtime` is where the request path is assembled: which stages, in which order, and
why (the comments at each stage). The gateway (`opsgate.gateway`) owns the process-wide parts
and swaps one runtime for the next on reload; requests in flight keep the one they started
with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsgate.access.admission import AdmissionService
from opsgate.access.budgets.cost import WorstCase
from opsgate.access.control import AccessService
from opsgate.cache.service import CacheService
from opsgate.config.schema import Config
from opsgate.evals.client import ChatClient
from opsgate.experiments.service import ExperimentService
from opsgate.feedback.service import FeedbackService
from opsgate.guard.service import GuardService
from opsgate.pipeline.context import (
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
)
from opsgate.pipeline.endpoints import RouteChat, RouteEmbedding
from opsgate.pipeline.pipeline import Pipeline
from opsgate.pipeline.publish import TracePublisher
from opsgate.pipeline.stages.admit import Admit
from opsgate.pipeline.stages.authenticate import Authenticate
from opsgate.pipeline.stages.best_of import best_of_stages
from opsgate.pipeline.stages.cache import Cache
from opsgate.pipeline.stages.experiment import ApplyVariant, AssignVariant
from opsgate.pipeline.stages.feedback import FeedbackToken
from opsgate.pipeline.stages.guard import EmbeddingSensitivity, InputGuard, OutputGuard
from opsgate.pipeline.stages.prompt import JoinPrompt, RenderPrompt
from opsgate.pipeline.stages.record import Record
from opsgate.pipeline.stages.retrieval import Retrieve
from opsgate.pipeline.stages.settle import Settle, SettleEmbedding
from opsgate.prompts.service import PromptService
from opsgate.providers.adapter_loading import AdapterLoading
from opsgate.providers.transport import HTTPClient
from opsgate.rag.grounding import GroundingScorer
from opsgate.rag.service import KnowledgeService
from opsgate.routing.build import build_router
from opsgate.routing.router import Router


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    router: Router
    auth: Authenticate
    admit: Admit | None
    chat_record: Record
    embedding_record: Record
    chat: Pipeline[ChatCall, ChatResult]
    embeddings: Pipeline[EmbeddingCall, EmbeddingResult]
    guard: GuardService | None = None


def build_runtime(
    config: Config,
    http: HTTPClient,
    *,
    source: str,
    previous: Runtime | None = None,
    publisher: TracePublisher | None = None,
    access: AccessService | None = None,
    admission: AdmissionService | None = None,
    cache: CacheService | None = None,
    prompts: PromptService | None = None,
    feedback: FeedbackService | None = None,
    experiments: ExperimentService | None = None,
    knowledge: KnowledgeService | None = None,
    grounding: GroundingScorer | None = None,
    judge: ChatClient | None = None,
    adapters: AdapterLoading | None = None,
) -> Runtime:
    router = build_router(
        config,
        http,
        source=source,
        previous=previous.router if previous else None,
        adapters=adapters,
    )
    master = config.settings.master_key
    auth = Authenticate(master.get_secret_value() if master else None, access)
    publisher = publisher or TracePublisher()
    guard = GuardService(
        config.guard,
        emit=admission.alerts.emit if admission is not None else None,
        previous=previous.guard if previous is not None else None,
        source=source,
    )
    masked = config.traces.store_bodies == "masked"
    chat_record = Record(publisher, "chat", guard, mask_all=masked)
    embedding_record = Record(publisher, "embeddings", guard, mask_all=masked)
    admit = None
    if admission is not None:
        admit = Admit(
            limiter=admission.limiter,
            ledger=admission.ledger,
            pricer=WorstCase(router, default_max_tokens=config.limits.default_max_tokens),
            fail_open=config.limits.fail_open,
        )
    admitting: list[Any] = [admit] if admit is not None else []
    if feedback is not None and config.feedback.enabled:
        admitting.append(FeedbackToken(feedback))  # admitted answers carry a feedback token
    caching = Cache(cache, config.cache)  # also validates cache directives when off
    # The input guard sits before the cache (blocked or redacted before any key is made; a
    # cached answer is restored per caller) and the output guard inside it (only checked
    # answers are stored; the per-request canary never reaches the key): docs/guard.md.
    # A prompt is rendered before admission (limits and budget price what is sent) and before
    # the input guard and the cache (the rendered prompt is scanned and cached); its variables
    # reach the guard as untrusted parts, joined again right after it: docs/prompts.md.
    render, join = ([RenderPrompt(prompts, guard)], [JoinPrompt()]) if prompts else ([], [])
    # The experiment's variant is chosen before the prompt is rendered (a prompt variant names
    # its version, rendered once) and applied right after it (its model and parameters reach
    # admission): docs/experiments.md.
    assign, apply = ([AssignVariant(experiments)], [ApplyVariant()]) if experiments else ([], [])
    # Retrieval sits after the input guard (which judges what the caller wrote; retrieved
    # chunks are scanned as untrusted by the stage itself) and before the cache (the key
    # includes the passages sent): docs/rag.md.
    retrieve = (
        [Retrieve(knowledge, config.rag, guard, grounding)]
        if knowledge is not None and config.rag.enabled
        else []
    )
    # Best-of-n is planned before admission (the hold covers every candidate) and run right
    # outside Settle (each candidate settled on its own): pipeline/stages/best_of.py.
    plan_best_of, run_best_of = best_of_stages(config, judge, source=source)
    chat: Pipeline[ChatCall, ChatResult] = Pipeline(
        [
            chat_record,
            auth,
            *assign,
            *render,
            *apply,
            plan_best_of,
            *admitting,
            InputGuard(guard),
            *join,
            *retrieve,
            caching,
            OutputGuard(guard),
            *run_best_of,
            Settle(),
        ],
        RouteChat(router),
    )
    embeddings: Pipeline[EmbeddingCall, EmbeddingResult] = Pipeline(
        [embedding_record, auth, *admitting, EmbeddingSensitivity(guard), SettleEmbedding()],
        RouteEmbedding(router),
    )
    return Runtime(
        config, router, auth, admit, chat_record, embedding_record, chat, embeddings, guard
    )
