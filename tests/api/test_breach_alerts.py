"""Breach alerts from real causes through a real gateway, delivered to a loopback webhook: a
tampered audit row (found by the scheduled verification), a burst of 401s from one address, a
burst of body reads by one key, an erasure that fails part-way, a sealed body that no longer
opens, and a key removed from the keyring by a reload. Each cause alerts once per cooldown."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy.engine import make_url

from opsgate.alerts import SIGNATURE_HEADER, verify
from opsgate.config import load_config
from opsgate.identity import pseudonym
from tests.compliance.helpers import bodies_config, new_keys, wait_traces
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration
SECRET = "hook-secret"


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.received.append((self.headers.get(SIGNATURE_HEADER), body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Webhook:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    def alerts(self, kind: str | None = None) -> list[dict[str, Any]]:
        found = []
        for signature, body in list(self.server.received):  # type: ignore[attr-defined]
            assert verify(SECRET, body, signature), "every delivery is signed"
            alert = json.loads(body)
            if kind is None or alert["kind"] == kind:
                found.append(alert)
        return found

    def wait(self, kind: str, count: int = 1) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 20
        while len(self.alerts(kind)) < count:
            assert time.monotonic() < deadline, f"no {kind} alert; got {self.alerts()}"
            time.sleep(0.02)
        return self.alerts(kind)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Webhook(server)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def alerting(webhook: Webhook, **security: Any) -> dict[str, Any]:
    return {
        "webhooks": [{"url": webhook.url, "secret": SECRET}],
        "retry_base": 0.01,
        "security": security,
    }


def raised(gw: GatewayServer) -> int:
    """Alerts the gateway's monitor raised after de-duplication. It counts synchronously, as
    the cause is handled (before the answer that carried it went out), so reading it after a
    response needs no waiting."""
    count: int = gw.gateway.compliance.security.raised
    return count


def verified_after(gw: GatewayServer, since: float) -> Any:
    """The first scheduled audit verification that ended after `since` (epoch seconds): runs
    are sequential, so it began after every run that ended before `since`."""
    watch = gw.gateway.compliance.audit_watch
    deadline = time.monotonic() + 20
    while watch.last_at is None or watch.last_at <= since:
        assert time.monotonic() < deadline, "no scheduled verification ran"
        time.sleep(0.02)
    return watch.last


def _db(db_url: str) -> sqlite3.Connection:
    return sqlite3.connect(Path(make_url(db_url).database or ""), timeout=10, isolation_level=None)


def _ask(gw: GatewayServer, fake: FakeUpstream, user: str = "alice") -> str:
    fake.script(Reply(text="fine"))
    with openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hello"}], user=user
        )
    return raw.headers["x-opsgate-trace-id"]


def test_a_tampered_audit_row_is_found_by_the_scheduled_verification(
    gateway: GatewayFactory,
    upstreams: dict[str, FakeUpstream],
    webhook: Webhook,
    db_url: str,
    tmp_path: Path,
) -> None:
    config = bodies_config(upstreams["alpha"], tmp_path)
    config["alerts"] = alerting(webhook, audit_verify_interval=0.05)
    gw = gateway(config, env={"OPSGATE_ENCRYPTION_KEYS": new_keys("k1")})
    trace_id = _ask(gw, upstreams["alpha"])
    wait_traces(gw.base, 1)
    for _ in range(3):  # three audited body reads: entries 1..3
        resp = httpx.get(f"{gw.base}/admin/v1/traces/{trace_id}?include_bodies=true", timeout=20)
        assert resp.status_code == 200
    watch = gw.gateway.compliance.audit_watch
    deadline = time.monotonic() + 20
    while watch.last is None or watch.last.checked < 3:  # a scheduled run saw entries 1..3
        assert time.monotonic() < deadline, "no scheduled verification ran"
        time.sleep(0.02)
    assert watch.last.ok and raised(gw) == 0
    with _db(db_url) as db:
        db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2")
    [alert] = webhook.wait("security.audit_chain_broken")
    assert alert["severity"] == "critical"
    assert alert["labels"] == {"first_broken_seq": "2"}
    assert "altered" in alert["data"]["reason"] and alert["data"]["checked"] == 1
    # the next verifications find the same break: no second alert within the cooldown
    verified = httpx.post(f"{gw.base}/admin/v1/audit/verify", timeout=20).json()
    assert verified["ok"] is False and verified["first_broken_seq"] == 2
    again = verified_after(gw, time.time())
    assert not again.ok and again.first_broken_seq == 2
    assert raised(gw) == 1 and len(webhook.alerts("security.audit_chain_broken")) == 1


def test_a_burst_of_401s_from_one_address_is_credential_stuffing(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], webhook: Webhook
) -> None:
    config = {
        "models": [{"name": "m", "deployments": [{"provider": "simulator", "model": "s"}]}],
        "alerts": alerting(webhook, auth_failures={"threshold": 5, "window": 600}),
    }
    gw = gateway(config, env={"OPSGATE_MASTER_KEY": "mk-breach-test-0123456789"})
    with openai.OpenAI(base_url=gw.url, api_key="og-" + "B" * 43, max_retries=0) as client:
        for _ in range(4):
            with pytest.raises(openai.AuthenticationError):
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "x"}]
                )
        assert raised(gw) == 0, "four failures are under the threshold"
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    [alert] = webhook.wait("security.credential_stuffing")
    assert alert["severity"] == "warning" and alert["labels"] == {"source": "127.0.0.1"}
    assert alert["data"]["failures"] == 5
    for _ in range(10):  # the admin API's 401s count too, and alert no one again
        assert httpx.get(f"{gw.base}/admin/v1/keys", timeout=20).status_code == 401
    assert raised(gw) == 1 and len(webhook.alerts("security.credential_stuffing")) == 1


def test_a_burst_of_body_reads_by_one_key_alerts(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], webhook: Webhook, tmp_path: Path
) -> None:
    config = bodies_config(upstreams["alpha"], tmp_path)
    config["alerts"] = alerting(
        webhook, body_reads={"window": 3600, "factor": 3, "floor": 1, "min_count": 6}
    )
    gw = gateway(config, env={"OPSGATE_ENCRYPTION_KEYS": new_keys("k1")})
    trace_id = _ask(gw, upstreams["alpha"])
    wait_traces(gw.base, 1)
    with httpx.Client(base_url=gw.base, timeout=20) as http:
        for _ in range(6):  # at the minimum: not yet
            assert http.get(f"/admin/v1/traces/{trace_id}?include_bodies=true").status_code == 200
        assert raised(gw) == 0
        for _ in range(5):
            assert http.get(f"/admin/v1/traces/{trace_id}?include_bodies=true").status_code == 200
        # reading metadata only is not a body read
        assert http.get(f"/admin/v1/traces/{trace_id}").status_code == 200
    [alert] = webhook.wait("security.body_read_rate")
    assert alert["severity"] == "warning" and alert["data"]["count"] == 7
    assert alert["labels"]["actor"]
    assert raised(gw) == 1, "one alert per cause and window"


def test_an_erasure_that_fails_part_way_alerts_and_answers_503(
    gateway: GatewayFactory,
    upstreams: dict[str, FakeUpstream],
    webhook: Webhook,
    db_url: str,
    tmp_path: Path,
) -> None:
    config = bodies_config(upstreams["alpha"], tmp_path)
    config["alerts"] = alerting(webhook)
    gw = gateway(config, env={"OPSGATE_ENCRYPTION_KEYS": new_keys("k1")})
    _ask(gw, upstreams["alpha"], user="erin")
    wait_traces(gw.base, 1)
    with _db(db_url) as db:  # a table erasure must clear is gone (a botched manual migration)
        db.execute("DROP TABLE scores")
    resp = httpx.delete(f"{gw.base}/admin/v1/end-users/erin", timeout=30)
    assert resp.status_code == 503, resp.text
    error = resp.json()["error"]
    assert error["code"] == "erasure_failed" and "run it again" in error["message"]
    [alert] = webhook.wait("security.erasure_failed")
    assert alert["severity"] == "critical"
    assert alert["labels"] == {"end_user": pseudonym("end_user", "erin")}
    assert "erin" not in json.dumps(alert), "the end user is named by pseudonym only"


def test_key_problems_alert_a_body_that_does_not_open_and_a_removed_key(
    upstreams: dict[str, FakeUpstream],
    webhook: Webhook,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(new_keys("k1").replace(",", "\n") + "\n")
    key_file.chmod(0o600)
    config = bodies_config(upstreams["alpha"], tmp_path, encryption={"key_file": str(key_file)})
    config["alerts"] = alerting(webhook)
    path = tmp_path / "opsgate.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    monkeypatch.setenv("OPSGATE_DATABASE_URL", db_url)
    with GatewayServer(load_config(path), config_path=path) as gw:
        trace_id = _ask(gw, upstreams["alpha"])
        wait_traces(gw.base, 1)
        with _db(db_url) as db:  # one byte of the sealed request body flipped on disk
            [(blob,)] = db.execute("SELECT request_body FROM traces").fetchall()
            broken = bytes(blob[:-1]) + bytes([blob[-1] ^ 1])
            db.execute("UPDATE traces SET request_body = ?", (broken,))
        url = f"{gw.base}/admin/v1/traces/{trace_id}?include_bodies=true"
        resp = httpx.get(url, timeout=20)
        assert resp.json()["error"]["code"] == "body_undecryptable"
        [alert] = webhook.wait("security.encryption_key")
        assert alert["severity"] == "critical"
        assert alert["labels"] == {"key_id": "k1", "cause": "open"}
        httpx.get(url, timeout=20)
        assert raised(gw) == 1, "de-duplicated"

        # k1 replaced by k2 in the key file (no rotation first), and the config reloaded
        key_file.write_text(new_keys("k2").replace(",", "\n") + "\n")
        assert httpx.post(f"{gw.base}/admin/v1/config/reload", timeout=30).status_code == 200
        alerts = webhook.wait("security.encryption_key", 2)
        removed = [a for a in alerts if a["labels"]["cause"] == "removed"]
        assert [a["labels"]["key_id"] for a in removed] == ["k1"]
        assert "rotate-encryption" in removed[0]["message"]


def test_a_burst_of_exports_alerts(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], webhook: Webhook, tmp_path: Path
) -> None:
    config = bodies_config(upstreams["alpha"], tmp_path)
    config["alerts"] = alerting(
        webhook, exports={"window": 3600, "factor": 2, "floor": 1, "min_count": 3}
    )
    gw = gateway(config, env={"OPSGATE_ENCRYPTION_KEYS": new_keys("k1")})
    with httpx.Client(base_url=gw.base, timeout=30) as http:
        for user in ("u1", "u2", "u3"):
            assert http.get(f"/admin/v1/end-users/{user}/export").status_code == 200
        assert raised(gw) == 0
        assert http.get("/admin/v1/end-users/u4/export").status_code == 200
    [alert] = webhook.wait("security.export_rate")
    assert alert["severity"] == "warning" and alert["data"]["count"] == 4
    assert webhook.alerts("security.body_read_rate") == [], "exports are counted apart"
