"""A GGUF model in-process through llama-cpp-python (the `local` extra).

llama.cpp's calls block for the whole generation, so each request runs in a worker thread of
the provider's own pool, never on the event loop; tokens come back to the loop through a queue.
`concurrency` model instances (one per worker thread) bound the parallel generations; a
request that would wait behind more than `max_waiting` others is turned away with a 429 so the
router can fail over. A cancelled request (client gone, timeout) stops its generation at the
next token, and its slot is freed only when the thread has really stopped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsgate.chat import ChatChunk, ChatRequest, ChatResponse, Usage
from opsgate.config.schema import DeploymentConfig
from opsgate.providers.base import CallContext, Capabilities, Provider
from opsgate.providers.errors import (
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from opsgate.types import JSONObject

GGUF_MAGIC = b"GGUF"
_SAMPLING = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")


class LlamaCppOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: str = Field(min_length=1, description="the GGUF file")
    n_ctx: int = Field(default=2048, ge=64, description="context window in tokens")
    n_threads: int | None = Field(default=None, ge=1, description="llama.cpp threads per call")
    concurrency: int = Field(default=1, ge=1, le=64, description="model instances in parallel")
    max_waiting: int = Field(default=16, ge=0, description="queued requests before 429")
    max_tokens: int = Field(default=256, ge=1, description="answer cap when the request has none")


def gguf_problem(path: str) -> str | None:
    """Why `path` is not a usable GGUF file, or None: checked at config time, not first use."""
    file = Path(path).expanduser()
    if not file.is_file():
        return f"options.model_path: {path} does not exist or is not a file"
    try:
        with file.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        return f"options.model_path: cannot read {path}: {exc.strerror}"
    if magic != GGUF_MAGIC:
        return f"options.model_path: {path} is not a GGUF file (it does not start with 'GGUF')"
    return None


class _Meter:
    """A llama.cpp stopping criterion: counts tokens and stops when the request is cancelled.

    llama-cpp-python reports no usage on streams; the first call sees the prompt's tokens, and
    every call after that one more sampled token. Completion tokens are the answer's text
    re-tokenised: exact for what was sent, without the end-of-turn token.
    """

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.sampled = 0

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        if not self.sampled:
            self.prompt_tokens = len(input_ids)
        self.sampled += 1
        return self.cancel.is_set()

    def usage(self) -> JSONObject:
        return Usage(self.prompt_tokens, self.completion_tokens).to_openai()


_DONE = object()


class LlamaCppProvider(Provider):
    dialect: ClassVar[str] = "llamacpp"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, deployment: DeploymentConfig, http: Any) -> None:
        super().__init__(deployment, http)
        self.options = LlamaCppOptions.model_validate(deployment.options)
        self._pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="llamacpp")
        self._local = threading.local()
        self._instances: list[Any] = []
        self._load_lock = threading.Lock()
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._waiting = 0
        self._active: set[_Meter] = set()
        self.cancelled = 0
        """Generations stopped early because their request went away (a figure for tests)."""

    @classmethod
    def check(cls, deployment: DeploymentConfig) -> list[str]:
        try:
            options = LlamaCppOptions.model_validate(deployment.options)
        except ValidationError as exc:
            return [
                f"options.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
        problems = []
        if importlib.util.find_spec("llama_cpp") is None:
            problems.append("llama-cpp-python is not installed: pip install 'opsgate[local]'")
        if (problem := gguf_problem(options.model_path)) is not None:
            problems.append(problem)
        return problems

    # -- the worker thread -----------------------------------------------------------------

    def _model(self) -> tuple[Any, Any]:
        """This worker thread's model instance and chat formatter, loaded on first request."""
        loaded = getattr(self._local, "loaded", None)
        if loaded is None:
            from llama_cpp import Llama  # the optional extra; imported in the worker, once
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            o = self.options
            with self._load_lock:
                llm = Llama(
                    model_path=str(Path(o.model_path).expanduser()),
                    n_ctx=o.n_ctx,
                    n_threads=o.n_threads,
                    # llama-cpp-python would take every core for the prompt otherwise
                    n_threads_batch=o.n_threads,
                    verbose=False,
                )
                self._instances.append(llm)
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise UpstreamStatusError(400, f"{o.model_path} has no chat template")
            special = {"special": True}
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm.detokenize([llm.token_eos()], **special).decode(),
                bos_token=llm.detokenize([llm.token_bos()], **special).decode(),
            )
            loaded = self._local.loaded = (llm, formatter)
        return loaded

    def _run(self, req: ChatRequest, meter: _Meter, emit: Callable[[object], None]) -> None:
        """In a worker thread: format the chat with the GGUF's own template, then complete it.

        `create_completion` rather than `create_chat_completion`: only the former takes a
        stopping criterion, which is how a cancelled request stops llama.cpp mid-answer."""
        try:
            from llama_cpp import StoppingCriteriaList

            llm, formatter = self._model()
            formatted = formatter(messages=req.messages)
            stop = _as_list(formatted.stop) + _as_list(req.params.get("stop"))
            kwargs = {k: req.params[k] for k in _SAMPLING if req.params.get(k) is not None}
            if isinstance(bias := req.params.get("logit_bias"), dict):
                kwargs["logit_bias"] = {int(k): float(v) for k, v in bias.items()}
            max_tokens = req.max_tokens or self.options.max_tokens
            chunks: Iterator[JSONObject] = llm.create_completion(
                prompt=formatted.prompt,
                stream=True,
                max_tokens=max_tokens,
                stop=stop,
                stopping_criteria=StoppingCriteriaList([meter]),
                **kwargs,
            )
            text: list[str] = []
            for chunk in chunks:
                if meter.cancel.is_set():
                    break
                choice = chunk["choices"][0]
                piece = choice.get("text") or ""
                delta: JSONObject = {"content": piece} if piece else {}
                if not text:
                    delta = {"role": "assistant", "content": piece}
                text.append(piece)
                emit({"choices": [{"delta": delta, "finish_reason": choice.get("finish_reason")}]})
            if meter.cancel.is_set() and meter.sampled < max_tokens:
                self.cancelled += 1
            answer = "".join(text).encode()
            if answer:
                meter.completion_tokens = len(llm.tokenize(answer, add_bos=False, special=True))
            emit(_DONE)
        except Exception as exc:  # handed to the waiting request, not lost
            emit(exc)

    # -- the event loop side ---------------------------------------------------------------

    async def _acquire(self, ctx: CallContext) -> None:
        if self._slots.locked() and self._waiting >= self.options.max_waiting:
            raise UpstreamStatusError(
                429,
                f"local model busy: {self.options.concurrency} running and {self._waiting} waiting",
                retry_after=1.0,
            )
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), ctx.timeout)
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"local model had no free slot within {ctx.timeout:g}s"
            ) from None
        finally:
            self._waiting -= 1

    async def _generate(
        self, req: ChatRequest, ctx: CallContext
    ) -> AsyncGenerator[JSONObject, None]:
        """llama.cpp's raw chunks, then one `{"usage": ...}` item."""
        if req.n != 1:
            raise UpstreamStatusError(400, "the local model answers with n=1 only")
        await self._acquire(ctx)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        meter = _Meter(threading.Event())

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        self._active.add(meter)
        work = loop.run_in_executor(self._pool, self._run, req, meter, emit)
        # The slot is the thread: it frees when the generation has really stopped.
        work.add_done_callback(lambda _: self._slots.release())
        wait = ctx.timeout
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    raise UpstreamTimeoutError(
                        f"local model gave no token within {wait:g}s"
                    ) from None
                wait = ctx.stream_idle_timeout
                if item is _DONE:
                    break
                if isinstance(item, Exception):
                    raise _as_upstream_error(item)
                assert isinstance(item, dict)
                yield item
            yield {"usage": meter.usage()}
        finally:
            meter.cancel.set()
            self._active.discard(meter)

    async def complete(self, req: ChatRequest, ctx: CallContext) -> ChatResponse:
        started = time.time()
        parts: list[str] = []
        finish = "stop"
        usage: JSONObject = {}
        gen = self._generate(req, ctx)
        try:
            async for item in gen:
                if "usage" in item:
                    usage = item["usage"]
                    continue
                for choice in item.get("choices") or ():
                    parts.append((choice.get("delta") or {}).get("content") or "")
                    finish = choice.get("finish_reason") or finish
        finally:
            await gen.aclose()
        text = "".join(parts)
        return ChatResponse(
            {
                "id": f"chatcmpl-local-{ctx.trace_id}",
                "object": "chat.completion",
                "created": int(started),
                "model": self.deployment.model,
                "system_fingerprint": "opsgate-llamacpp",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                        "logprobs": None,
                    }
                ],
                "usage": usage,
            }
        )

    async def stream(self, req: ChatRequest, ctx: CallContext) -> AsyncIterator[ChatChunk]:
        base: JSONObject = {
            "id": f"chatcmpl-local-{ctx.trace_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.deployment.model,
            "system_fingerprint": "opsgate-llamacpp",
        }
        gen = self._generate(req, ctx)
        try:
            async for item in gen:
                if "usage" in item:
                    yield ChatChunk({**base, "choices": [], "usage": item["usage"]})
                    continue
                choices = []
                for choice in item.get("choices") or ():
                    delta = dict(choice.get("delta") or {})
                    if "content" in delta and delta["content"] is None:
                        delta.pop("content")
                    choices.append(
                        {
                            "index": 0,
                            "delta": delta,
                            "finish_reason": choice.get("finish_reason"),
                        }
                    )
                yield ChatChunk({**base, "choices": choices})
        finally:
            await gen.aclose()

    async def aclose(self) -> None:
        """Stop running generations, wait for their threads, then free the models."""
        for meter in self._active:
            meter.cancel.set()
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        for llm in self._instances:
            llm.close()
        self._instances.clear()


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def _as_upstream_error(exc: Exception) -> UpstreamError:
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, ValueError) and "context window" in str(exc):
        # llama.cpp: "Requested tokens (N) exceed context window of M"
        return UpstreamStatusError(400, f"local model: {exc}")
    return UpstreamError(f"local model failed: {type(exc).__name__}: {exc}")
