"""Where scorer types are registered: built-ins register exactly as plugins do.

A plugin package exposes an entry point in the `opsgate.scorers` group pointing at a function
`register(register_scorer)`; it is called once, the first time a scorer is built. A factory
takes the spec's parameters and the shared `ScorerResources` and returns a `Scorer`.

A spec is a type name (`exact`) or a mapping `{type: ..., name: ..., <parameters>}`. A judge
template's name that is not a registered type (`faithfulness`, `relevance@1`) is shorthand for
`{type: judge, template: faithfulness}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from opsgate.cache.embed import Embedder, EmbedderUnavailableError, build_embedder
from opsgate.config.cache import EmbedderConfig
from opsgate.evals.client import ChatClient
from opsgate.evals.scorers import rules, shape
from opsgate.evals.scorers.base import Scorer
from opsgate.evals.scorers.errors import ScorerConfigError
from opsgate.evals.scorers.judge import TEMPLATES, Judge, Pairwise
from opsgate.evals.scorers.similarity import EmbeddingSimilarity
from opsgate.evals.scorers.support import Hallucination

GROUP = "opsgate.scorers"
ScorerSpec = str | Mapping[str, Any]


@dataclass(slots=True)
class ScorerResources:
    """What scorers share: the gateway client judges call through, the default judge model,
    and embedders (built once per type)."""

    client: ChatClient | None = None
    judge_model: str | None = None
    embedders: dict[str, Embedder] = field(default_factory=dict)

    def embedder(self, kind: str) -> Embedder:
        if kind not in self.embedders:
            try:
                config = EmbedderConfig(type=kind)
                self.embedders[kind] = build_embedder(config)
            except (EmbedderUnavailableError, ValueError) as exc:
                raise ScorerConfigError(
                    f"embedding: embedder {kind!r} unavailable: {exc}"
                ) from None
        return self.embedders[kind]

    def judge_client(self) -> ChatClient:
        if self.client is None:
            raise ScorerConfigError("judge scorers need the gateway (a URL and a key)")
        return self.client

    def model_for(self, params: dict[str, Any]) -> str:
        model = params.pop("model", None) or self.judge_model
        if not isinstance(model, str) or not model:
            raise ScorerConfigError("judge scorers need `model` (a gateway model name)")
        return model


Factory = Callable[[dict[str, Any], ScorerResources], Scorer]


def _plain(cls: Callable[..., Scorer]) -> Factory:
    """A factory for a scorer that needs no shared resources."""

    def factory(params: dict[str, Any], _resources: ScorerResources) -> Scorer:
        return cls(**params)

    return factory


def _builtin(register: Callable[[str, Factory], None]) -> None:
    for cls in (rules.Exact, rules.Contains, rules.Regex, rules.JsonSchema, rules.Numeric):
        register(cls.kind, _plain(cls))
    for kind in (shape.JsonValid, shape.Length, shape.Refusal):
        register(kind.kind, _plain(kind))
    register(
        "embedding", lambda p, r: EmbeddingSimilarity(r.embedder(p.pop("embedder", "local")), **p)
    )
    register("hallucination", _plain(Hallucination))
    register("judge", lambda p, r: Judge(r.judge_client(), model=r.model_for(p), **p))
    register("pairwise", lambda p, r: Pairwise(r.judge_client(), model=r.model_for(p), **p))


class ScorerRegistry:
    """Scorer types by name: the built-ins, then every `opsgate.scorers` entry point (loaded
    on first use)."""

    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}
        self._loaded = False

    def register(self, kind: str, factory: Factory) -> None:
        self._factories[kind] = factory

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        _builtin(self.register)
        for ep in entry_points(group=GROUP):
            hook: Callable[[Callable[[str, Factory], None]], None] = ep.load()
            hook(self.register)

    def kinds(self) -> list[str]:
        self._load()
        return sorted(self._factories)

    def build(self, spec: ScorerSpec, resources: ScorerResources | None = None) -> Scorer:
        """The scorer a spec describes; `ScorerConfigError` (400) for an unknown type or a
        bad parameter."""
        self._load()
        if not isinstance(spec, str | Mapping):
            raise ScorerConfigError(f"a scorer is a type name or a mapping, not {spec!r}")
        params: dict[str, Any] = {"type": spec} if isinstance(spec, str) else dict(spec)
        kind = params.pop("type", None)
        if isinstance(kind, str) and kind not in self._factories and _judge_shorthand(kind):
            params = {"template": kind, **params}
            kind = "judge"
        factory = self._factories.get(kind) if isinstance(kind, str) else None
        if factory is None:
            known = ", ".join(sorted(self._factories))
            raise ScorerConfigError(f"unknown scorer type {kind!r} (known: {known})")
        try:
            return factory(params, resources or ScorerResources())
        except TypeError as exc:
            raise ScorerConfigError(f"{kind}: bad parameters: {exc}") from None


def _judge_shorthand(kind: str) -> bool:
    """A scoring (not pairwise) template's name, with or without `@version`."""
    name = kind.split("@", 1)[0]
    versions = TEMPLATES.get(name, {})
    return bool(versions) and not any(t.pairwise for t in versions.values())


REGISTRY = ScorerRegistry()


def register_scorer(kind: str, factory: Factory) -> None:
    REGISTRY.register(kind, factory)


def scorer_kinds() -> list[str]:
    return REGISTRY.kinds()


def build_scorer(spec: ScorerSpec, resources: ScorerResources | None = None) -> Scorer:
    return REGISTRY.build(spec, resources)
