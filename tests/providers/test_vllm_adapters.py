"""vLLM's dynamic LoRA loading (`adapter_loading: vllm`) against a real fake vLLM server:
the gateway loads a registered adapter on first use, once per upstream (concurrent first uses
share the load call), loads it again when the server answers 404 (restarted), streamed and not,
through the official `openai` SDK; an unknown adapter is a 404, one on another base a 409
(nothing loaded), a load the server refuses a 502; deployments without it never load."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from opsgate.config import ConfigError
from opsgate.config.schema import DeploymentConfig
from opsgate.providers.adapter_loading import AdapterLoading
from opsgate.providers.transport import HTTPClient
from tests.access.helpers import MASTER
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.vllm import FakeVLLM, fake_base, register_adapter

pytestmark = pytest.mark.integration
LOAD = "/v1/load_lora_adapter"
MSG: list[Any] = [{"role": "user", "content": "hello"}]


def _dep(vllm: FakeVLLM, base: Path, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "base_url": vllm.url,
        "model": vllm.base_model,
        "base": str(base),
        "adapter_loading": "vllm",
        **extra,
    }


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FakeVLLM, GatewayServer, Path]]:
    base, other = fake_base(tmp_path / "base"), fake_base(tmp_path / "other", hidden=64)
    with FakeVLLM("llama-base", load_delay=0.2) as vllm:
        url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"

        def group(name: str, **extra: Any) -> dict[str, Any]:
            return {"name": name, "deployments": [_dep(vllm, base, **extra)]}

        data = {
            "models": [
                group("support-bot", adapter="support-a"),
                group("other-base", adapter="other-a"),
                group("unknown", adapter="nobody"),
                group("gone", adapter="gone-a"),
                {"name": "plain", "deployments": [{**_dep(vllm, base), "adapter_loading": "off"}]},
            ],
            "router": {"retries": 0},
            "settings": {"database_url": url, "master_key": MASTER},
        }
        with GatewayServer(make_config(data)) as gw:
            register_adapter(url, tmp_path / "adapters", "support-a", base)
            register_adapter(url, tmp_path / "adapters", "other-a", other)
            gone = register_adapter(url, tmp_path / "adapters", "gone-a", base)
            (gone / "adapter_config.json").unlink()  # the server finds nothing to load there
            yield vllm, gw, tmp_path


def _client(gw: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=MASTER, max_retries=0)


def test_first_uses_load_once_and_a_restarted_server_gets_it_again(
    served: tuple[FakeVLLM, GatewayServer, Path],
) -> None:
    vllm, gw, _ = served
    with _client(gw) as client, ThreadPoolExecutor(6) as pool:
        ask = lambda _: client.chat.completions.create(model="support-bot", messages=MSG)  # noqa: E731
        answers = list(pool.map(ask, range(6)))
        assert all(a.choices[0].message.content.startswith("[support-a]") for a in answers)
        loads = vllm.calls_to(LOAD)
        assert len(loads) == 1
        assert loads[0].body == {"lora_name": "support-a", "lora_path": vllm.adapters["support-a"]}

        vllm.restart()  # the server forgot it: 404, loaded again, asked again
        again = client.chat.completions.create(model="support-bot", messages=MSG)
        assert again.choices[0].message.content.startswith("[support-a]")
        vllm.restart()
        chunks = list(
            client.chat.completions.create(model="support-bot", messages=MSG, stream=True)
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("[support-a]")
        assert len(vllm.calls_to(LOAD)) == 3

        plain = client.chat.completions.create(model="plain", messages=MSG)
        assert plain.choices[0].message.content.startswith("[base]")
        assert len(vllm.calls_to(LOAD)) == 3  # a deployment without adapter_loading loads nothing

    shown = httpx.get(
        f"{gw.base}/admin/v1/deployments", headers={"authorization": f"Bearer {MASTER}"}
    ).json()["data"]
    loaded = {d["model"]: d.get("adapters_loaded") for d in shown}
    assert loaded["support-bot"] == ["support-a"] and loaded["plain"] is None


def test_unknown_adapter_other_base_and_a_refused_load_are_clear_errors(
    served: tuple[FakeVLLM, GatewayServer, Path],
) -> None:
    vllm, gw, _ = served
    with _client(gw) as client:
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="unknown", messages=MSG)
        assert missing.value.code == "adapter_not_found"
        assert "'nobody'" in missing.value.message
        with pytest.raises(openai.ConflictError) as mismatch:
            client.chat.completions.create(model="other-base", messages=MSG, stream=True)
        assert mismatch.value.code == "adapter_base_mismatch"
        assert vllm.calls_to(LOAD) == []  # refused before the server was asked
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model="gone", messages=MSG)
        assert refused.value.status_code == 502
        assert "could not load adapter 'gone-a'" in refused.value.message
        assert "No adapter found" in refused.value.message
    assert "gone-a" not in vllm.adapters


async def test_concurrent_first_uses_share_one_load_call(tmp_path: Path) -> None:
    """Straight on the loader: five callers at once, one POST; each later call none."""
    seen: list[str] = []

    async def lookup(name: str, dep: DeploymentConfig) -> str:
        seen.append(name)
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        (folder / "adapter_config.json").write_text("{}")
        return str(folder)

    with FakeVLLM("llama-base", load_delay=0.2) as vllm:
        http = HTTPClient()
        try:
            dep = DeploymentConfig.model_validate(
                {"provider": "openai", "model": "llama-base", "base_url": vllm.url,
                 "adapter_loading": "vllm"}
            )  # fmt: skip
            loading = AdapterLoading(http, lookup)
            upstream = loading.for_deployment(dep)
            assert upstream is not None and loading.for_deployment(dep) is upstream
            await asyncio.gather(*(upstream.ensure("a", dep, {}, 10) for _ in range(5)))
            await upstream.ensure("a", dep, {}, 10)
            assert len(vllm.calls_to(LOAD)) == upstream.loads == 1 and seen == ["a"]
            off = dep.model_copy(update={"adapter_loading": "off"})
            assert loading.for_deployment(off) is None
        finally:
            await http.aclose()


def test_adapter_loading_on_a_provider_without_adapters_is_a_config_error() -> None:
    data = {
        "models": [
            {
                "name": "m",
                "deployments": [
                    {
                        "provider": "anthropic",
                        "model": "claude",
                        "api_key": "k",
                        "adapter_loading": "vllm",
                    }
                ],
            }
        ]
    }
    with pytest.raises(ConfigError, match=r"deployments\[0\]\.adapter_loading: 'anthropic'"):
        GatewayServer(make_config(data))
