"""A pipeline is a list of stages around an endpoint, built from config at start-up.

Each stage is an onion layer: it gets the call and `call_next`, and may answer early (raise or
return without calling on), change the call on the way in, or wrap the result on the way out
(for a stream, by wrapping the iterator rather than buffering it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from opsgate.pipeline.context import RequestContext

C = TypeVar("C", bound="HasContext")
R = TypeVar("R")
Next = Callable[[C], Awaitable[R]]


class HasContext(Protocol):
    @property
    def ctx(self) -> RequestContext: ...


class Stage(Protocol[C, R]):
    """One step of the request path with one job."""

    async def __call__(self, call: C, call_next: Next[C, R]) -> R: ...


class Pipeline(Generic[C, R]):
    def __init__(self, stages: Sequence[Stage[C, R]], endpoint: Next[C, R]) -> None:
        self.stages = tuple(stages)
        self.endpoint = endpoint
        handler: Next[C, R] = endpoint
        for stage in reversed(self.stages):
            handler = _bind(stage, handler)
        self._handler = handler

    async def __call__(self, call: C) -> R:
        return await self._handler(call)


def _bind(stage: Stage[C, R], call_next: Next[C, R]) -> Next[C, R]:
    async def handler(call: C) -> R:
        return await stage(call, call_next)

    return handler
