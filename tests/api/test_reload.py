"""Config reload without a restart: validated first, swapped atomically, old config on error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from opsgate.config import load_config
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration


def cfg_text(fake: FakeUpstream, *names: str) -> str:
    models = "\n".join(
        f"  - name: {n}\n    deployments:\n      - {{provider: openai, base_url: '{fake.url}', "
        f"model: up, api_key: ${{UP_KEY:-k}}}}"
        for n in names
    )
    return f"models:\n{models}\n"


async def test_reload_endpoint_swaps_and_rejects_bad_config(
    monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    path = tmp_path / "opsgate.yaml"
    path.write_text(cfg_text(fake, "one"))
    monkeypatch.setenv("OPSGATE_DATABASE_URL", db_url)
    with GatewayServer(load_config(path), config_path=path) as gw:
        async with httpx.AsyncClient(base_url=gw.base, timeout=20) as http:
            fake.script(Reply(stream_chunks=20, chunk_delay=0.05))
            body = {"model": "one", "stream": True, "messages": [{"role": "user", "content": "x"}]}
            async with http.stream("POST", "/v1/chat/completions", json=body) as slow:
                path.write_text(cfg_text(fake, "one", "two"))
                resp = await http.post("/admin/v1/config/reload")
                assert resp.status_code == 200, resp.text
                assert resp.json()["models"] == ["one", "two"]
                lines = [line async for line in slow.aiter_lines() if line.startswith("data:")]
            assert lines[-1] == "data: [DONE]", "in-flight stream finished on the old config"

            models = (await http.get("/v1/models")).json()["data"]
            assert [m["id"] for m in models] == ["one", "two"]

            path.write_text("models: [{name: three, deployments: [{provider: nope, model: x}]}]")
            bad = await http.post("/admin/v1/config/reload")
            assert bad.status_code == 400
            assert (
                "models[0].deployments[0].provider: unknown provider 'nope'"
                in bad.json()["error"]["message"]
            )
            models = (await http.get("/v1/models")).json()["data"]
            assert [m["id"] for m in models] == ["one", "two"], "old config keeps serving"
            ok = await http.post(
                "/v1/chat/completions", json={**body, "stream": False, "model": "two"}
            )
            assert ok.status_code == 200
            await asyncio.sleep(0)
