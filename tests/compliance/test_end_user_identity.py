"""Issue 12 item 2: an end-user id the gateway refuses is a 400 naming the field and is stored
nowhere; every id it accepts can be exported and erased, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.compliance.helpers import bodies_config, find_everywhere, new_keys, wait_traces
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration

ACCEPTED = [
    "u" * 256,  # the longest id accepted
    "tenant/42",
    "ünïcödé 用户",
    "a b?c#d%e&f",
    "..",
]
REFUSED = [
    ({"user": "v" * 300}, {}, "user"),
    ({"user": "bad\x01id"}, {}, "user"),
    ({"user": 12345}, {}, "user"),
    ({}, {"x-opsgate-end-user": "tab\tinside"}, "x-opsgate-end-user"),
    ({}, {"x-opsgate-session-id": "s" * 300}, "x-opsgate-session-id"),
]


def _chat(gw: GatewayServer, body: dict[str, object], headers: dict[str, str]) -> httpx.Response:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(f"{gw.url}/chat/completions", json=payload, headers=headers, timeout=30)


def _scenario(gw: GatewayServer, url: str) -> None:
    for body, headers, param in REFUSED:
        resp = _chat(gw, body, headers)
        assert resp.status_code == 400, (param, resp.text)
        error = resp.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error", error
    for user in ACCEPTED:
        assert _chat(gw, {"user": user}, {}).status_code == 200
    wait_traces(gw.base, len(ACCEPTED) + len(REFUSED))
    for needle in ("v" * 300, "bad\x01id", "tab\tinside"):
        assert asyncio.run(find_everywhere(url, needle)) == {}, "a refused id is stored nowhere"

    base = f"{gw.base}/admin/v1/end-users"
    for user in ACCEPTED:
        path = quote(user, safe="").replace(".", "%2E")  # ".." must not be a path step
        export = httpx.get(f"{base}/{path}/export", timeout=30)
        assert export.status_code == 200, (user, export.text)
        assert [t["end_user"] for t in export.json()["data"]["traces"]] == [user]
        erased = httpx.delete(f"{base}/{path}", timeout=60)
        assert erased.status_code == 200, (user, erased.text)
        assert erased.json()["end_user"] == user and erased.json()["counts"]["traces"] == 1
    for user in ACCEPTED:
        assert asyncio.run(find_everywhere(url, user)) == {}, user


def test_end_user_ids_on_sqlite(
    db_url: str, gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    _scenario(gateway(bodies_config(upstreams["alpha"], tmp_path)), db_url)


def test_end_user_ids_on_postgresql(
    pg_url: str,
    gateway: GatewayFactory,
    upstreams: dict[str, FakeUpstream],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSGATE_ENCRYPTION_KEYS", new_keys("k1"))
    gw = gateway(bodies_config(upstreams["alpha"], tmp_path), {"OPSGATE_DATABASE_URL": pg_url})
    _scenario(gw, pg_url)
