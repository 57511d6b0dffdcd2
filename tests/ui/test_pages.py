"""The dashboard over plain HTTP on a real, seeded gateway: sessions, CSRF, roles, bad input,
escaping and the audit trail. (tests/ui/test_browser.py drives the same pages in Chromium.)"""

from __future__ import annotations

import re

import pytest

from opsgate.ui.dashboard import CSP
from opsgate.ui.sessions import COOKIE
from tests.conftest import GatewayFactory
from tests.ui.conftest import CONFIG, MASTER, XSS_METADATA, XSS_PROMPT, Seeded
from tests.ui.helpers import Clients, csrf_of, text_of

pytestmark = pytest.mark.integration

PAGES = ("/ui/overview", "/ui/traces", "/ui/keys", "/ui/models")


def test_pages_need_a_session(seeded: Seeded, clients: Clients) -> None:
    with clients.new() as http:
        for path in PAGES:
            resp = http.get(path)
            assert resp.status_code == 303
            assert resp.headers["location"] == f"/ui/login?next={path}"
        resp = http.get("/ui/traces", headers={"hx-request": "true"})
        assert resp.headers["hx-redirect"] == "/ui/login?next=/ui/traces"
        assert http.get("/ui").status_code in (307, 308)  # to /ui/


def test_login_sets_a_safe_cookie_and_pages_render(seeded: Seeded, clients: Clients) -> None:
    http, resp = clients.login(MASTER)
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/"
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert MASTER not in cookie
    assert http.get("/ui/").headers["location"] == "/ui/overview"
    for path in PAGES:
        page = http.get(path)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert page.headers["cache-control"] == "no-store"
    overview = http.get("/ui/overview").text
    assert "chat-fast" in overview and 'id="overview-charts"' in overview
    assert 'hx-get="/ui/overview/end-users?range=24h"' in overview
    saved = re.search(r'Saved by the cache</span><span class="value">\$([0-9.]+)<', overview)
    assert saved and float(saved.group(1)) > 0, "the cache hit's saving is shown"
    panel = http.get("/ui/overview/end-users?range=24h", headers={"hx-request": "true"})
    assert panel.status_code == 200 and "<html" not in panel.text
    assert "alice" in panel.text and "mallory" in panel.text
    full = http.get("/ui/overview/end-users?range=7d")
    assert "<html" in full.text and "alice" in full.text


@pytest.mark.parametrize(
    ("key", "status", "says"),
    [
        ("", 401, "You didn't provide an API key"),
        ("not-a-key", 401, "Malformed API key"),
        ("og-" + "A" * 43, 401, "Incorrect API key"),
    ],
)
def test_bad_login_is_refused_on_the_form(
    seeded: Seeded, clients: Clients, key: str, status: int, says: str
) -> None:
    _, resp = clients.login(key)
    assert resp.status_code == status
    assert says in text_of(resp) and 'name="key"' in resp.text
    assert COOKIE not in resp.headers.get("set-cookie", "")


def test_login_form_needs_its_own_token(seeded: Seeded, clients: Clients) -> None:
    with clients.new() as http:
        resp = http.post("/ui/login", data={"key": MASTER, "csrf_token": "made-up"})
        assert resp.status_code == 403 and "<html" in resp.text


def test_login_never_redirects_off_site(seeded: Seeded, clients: Clients) -> None:
    for target, expected in [
        ("//evil.example/ui/", "/ui/"),
        ("https://evil.example/", "/ui/"),
        ("/ui/traces?status=error", "/ui/traces?status=error"),
    ]:
        http = clients.new()
        form = http.get("/ui/login")
        data = {"key": MASTER, "csrf_token": csrf_of(form.text), "next": target}
        resp = http.post("/ui/login", data=data)
        assert resp.headers["location"] == expected


def test_unknown_ids_and_paths_get_html_404(seeded: Seeded, clients: Clients) -> None:
    http, csrf = clients.logged_in(MASTER)
    for path in ("/ui/nope", "/ui/traces/0123456789abcdef0123456789abcdef", "/ui/traces/%3Cx%3E"):
        resp = http.get(path)
        assert resp.status_code == 404, path
        assert resp.headers["content-type"].startswith("text/html")
        assert "Not found" in resp.text
    resp = http.post("/ui/keys/key_missing/revoke", data={"csrf_token": csrf})
    assert resp.status_code == 404 and "no key with id" in resp.text
    resp = http.delete("/ui/keys")
    assert resp.status_code == 405 and resp.headers["content-type"].startswith("text/html")


def test_forged_or_missing_csrf_is_403(seeded: Seeded, clients: Clients) -> None:
    http, csrf = clients.logged_in(MASTER)
    before = len(http.get("/ui/keys").text)
    for data in ({"alias": "forged", "csrf_token": "x" + csrf[1:]}, {"alias": "forged"}):
        resp = http.post("/ui/keys", data=data)
        assert resp.status_code == 403 and "security token" in resp.text
    assert "forged" not in http.get("/ui/keys").text and before > 0
    _, other_csrf = clients.logged_in(MASTER)  # a token from another session
    resp = http.post("/ui/keys", data={"alias": "forged", "csrf_token": other_csrf})
    assert resp.status_code == 403


def test_a_non_ascii_csrf_token_is_403_not_a_500(seeded: Seeded, clients: Clients) -> None:
    http, csrf = clients.logged_in(MASTER)
    for token in ("é" + csrf[1:], "\u2603"):
        resp = http.post("/ui/keys", data={"alias": "forged", "csrf_token": token})
        assert resp.status_code == 403 and "security token" in resp.text
    header = http.post("/ui/keys", headers={b"x-csrf-token": b"\xe9" + csrf[1:].encode()})
    assert header.status_code == 403


def test_bad_input_gets_an_error_page_not_a_500(seeded: Seeded, clients: Clients) -> None:
    http, csrf = clients.logged_in(MASTER)
    cases = [
        ("/ui/overview?range=1y", 400, "range must be one of"),
        ("/ui/overview?model=" + "m" * 300, 400, "longer than"),
        ("/ui/traces?status=weird", 400, "status must be one of"),
        ("/ui/traces?cursor=garbage", 400, "invalid cursor"),
        ("/ui/traces?min_duration_ms=abc", 400, "must be a number"),
        ("/ui/traces?metadata=nocolon", 400, "key:value"),
        ("/ui/traces?since=yesterday-ish", 400, "since must be ISO-8601"),
        ("/ui/models?range=x", 400, "range must be one of"),
    ]
    for path, status, says in cases:
        resp = http.get(path)
        assert resp.status_code == status, path
        assert says in resp.text, path
    resp = http.post("/ui/keys", data={"csrf_token": csrf, "rpm": "abc", "expires_in": "soon"})
    assert resp.status_code == 422
    assert "limits.rpm" in resp.text and "expires_in" in resp.text
    resp = http.post("/ui/keys", data={"csrf_token": csrf, "team_id": "no-such-team"})
    assert resp.status_code == 404 and "no team with id" in resp.text
    resp = http.post(
        "/ui/keys", content=b"x" * 70_000, headers={"content-type": "multipart/form-data"}
    )
    assert resp.status_code == 413


def test_filters_narrow_the_trace_list(seeded: Seeded, clients: Clients) -> None:
    http, _ = clients.logged_in(MASTER)

    def rows(query: str) -> list[str]:
        resp = http.get(f"/ui/traces?{query}")
        assert resp.status_code == 200, resp.text
        return re.findall(r'href="/ui/traces/([0-9a-f]{32})"', resp.text)

    everything = rows("")
    assert len(everything) == seeded.traces
    assert len(rows("status=error")) == 2
    assert len(rows("model=chat-flaky&status=&cache=")) == 2  # blank selects mean "any"
    assert len(rows("end_user=alice")) == 4
    assert len(rows("metadata=app%3Aui-test")) == 8
    assert rows("cache=hit") and len(rows("cache=hit")) == 1
    first = http.get("/ui/traces?limit=5").text
    assert len(re.findall(r'href="/ui/traces/[0-9a-f]{32}"', first)) == 5
    older = re.search(r'href="/ui/traces\?([^"]*cursor=[^"]+)" rel="next"', first)
    assert older, "a next-page link"
    second = rows(older.group(1).replace("&amp;", "&"))
    assert len(second) == 5 and not set(second) & set(everything[:5])


def test_xss_payloads_are_escaped(seeded: Seeded, clients: Clients) -> None:
    http, _ = clients.logged_in(MASTER)
    page = http.get(f"/ui/traces/{seeded.xss_trace_id}?bodies=1")
    assert page.status_code == 200
    assert "<script>window.__xss" not in page.text
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text
    assert "&lt;img src=x onerror=" in page.text
    assert XSS_PROMPT and XSS_METADATA  # the payloads the gateway was sent


def test_viewer_cannot_create_keys_or_read_bodies(seeded: Seeded, clients: Clients) -> None:
    http, csrf = clients.logged_in(seeded.viewer_key)
    keys = http.get("/ui/keys")
    assert keys.status_code == 200
    assert 'id="create-key"' not in keys.text and "Budgets" in keys.text
    assert "Revoke" not in keys.text
    resp = http.post("/ui/keys", data={"csrf_token": csrf, "alias": "sneaky"})
    assert resp.status_code == 403 and "keys:create" in resp.text
    trace = http.get(f"/ui/traces/{seeded.xss_trace_id}")
    assert trace.status_code == 200  # the viewer's team sent it
    assert "?bodies=1" not in trace.text and "may not read prompts" in trace.text
    assert XSS_PROMPT.split()[0] not in trace.text.split("Bodies")[1]
    resp = http.get(f"/ui/traces/{seeded.xss_trace_id}?bodies=1")
    assert resp.status_code == 403 and "traces:read_bodies" in resp.text
    resp = http.get("/ui/overview?team_id=other-team")
    assert resp.status_code == 403 and "outside your scope" in resp.text
    nav = re.findall(r"<nav>(.*?)</nav>", http.get("/ui/overview").text, re.S)[0]
    assert "Overview" in nav and "Models" in nav


def test_body_reads_and_key_changes_are_audited(seeded: Seeded, clients: Clients) -> None:
    http, csrf = clients.logged_in(MASTER)
    assert http.get(f"/ui/traces/{seeded.xss_trace_id}").status_code == 200  # no bodies: no entry
    with seeded.admin() as admin:

        def entries(action: str) -> list[dict[str, object]]:
            resp = admin.get("/admin/v1/audit", params={"action": action})
            assert resp.status_code == 200, resp.text
            data: list[dict[str, object]] = resp.json()["data"]
            return data

        reads = len(entries("trace.read_bodies"))
        page = http.get(f"/ui/traces/{seeded.xss_trace_id}?bodies=1")
        assert page.status_code == 200 and "recorded in the audit log" in page.text
        found = entries("trace.read_bodies")
        assert len(found) == reads + 1
        assert found[0]["actor"] == "master"
        assert found[0]["target"] == f"trace:{seeded.xss_trace_id}"

        created = http.post("/ui/keys", data={"csrf_token": csrf, "alias": "audited-key"})
        assert created.status_code == 201, created.text
        key_id = re.search(r"(key_[A-Za-z0-9_-]+)", created.text)
        assert key_id
        resp = http.post(f"/ui/keys/{key_id.group(1)}/revoke", data={"csrf_token": csrf})
        assert resp.status_code == 303
        create_entry = entries("keys.create")[0]
        assert create_entry["actor"] == "master" and create_entry["target"] == "/ui/keys"
        assert create_entry["detail"] == {"method": "POST", "status": 201, "via": "dashboard"}
        assert entries("keys.revoke")[0]["target"] == f"/ui/keys/{key_id.group(1)}/revoke"


def test_created_key_is_shown_once_and_revocation_ends_its_session(
    seeded: Seeded, clients: Clients
) -> None:
    http, csrf = clients.logged_in(MASTER)
    created = http.post(
        "/ui/keys",
        data={"csrf_token": csrf, "alias": "short-lived", "role": "member", "team_id": "ml"},
    )
    assert created.status_code == 201
    secret = re.search(r'value="(og-[A-Za-z0-9_-]{43,})"', created.text)
    assert secret and "only time the key is shown" in created.text
    assert secret.group(1) not in http.get("/ui/keys").text
    key_id = re.search(r"(key_[A-Za-z0-9_-]+)", created.text)
    assert key_id

    member, _ = clients.logged_in(secret.group(1))
    assert member.get("/ui/traces").status_code == 200
    assert member.get("/ui/overview").status_code == 403  # a member has no usage:read
    resp = http.post(f"/ui/keys/{key_id.group(1)}/revoke", data={"csrf_token": csrf})
    assert resp.headers["location"] == f"/ui/keys?revoked={key_id.group(1)}"
    assert "revoked" in http.get("/ui/keys?all=1").text
    ended = member.get("/ui/traces")
    assert ended.status_code == 303 and ended.headers["location"].startswith("/ui/login")


def test_logout_and_tampering_end_the_session(seeded: Seeded, clients: Clients) -> None:
    http, csrf = clients.logged_in(MASTER)
    cookie = http.cookies[COOKIE]
    payload, mac = cookie.split(".")
    forged = clients.new(cookies={COOKIE: payload + "." + mac[::-1]})
    assert forged.get("/ui/traces").status_code == 303
    resp = http.post("/ui/logout", data={"csrf_token": csrf})
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/login"
    replay = clients.new(cookies={COOKIE: cookie})
    assert replay.get("/ui/traces").status_code == 303, "a logged-out session stays out"


def test_static_assets_are_vendored(seeded: Seeded, clients: Clients) -> None:
    with clients.new() as http:
        for path in (
            "vendor/htmx-2.0.11.min.js",
            "vendor/uPlot-1.6.32.iife.min.js",
            "vendor/uPlot-1.6.32.min.css",
            "dashboard.js",
            "dashboard.css",
        ):
            resp = http.get(f"/ui/static/{path}")
            assert resp.status_code == 200 and len(resp.content) > 500, path
            assert "max-age" in resp.headers["cache-control"]
        assert http.get("/ui/static/nope.js").status_code == 404


def test_without_a_master_key_this_machine_logs_in_without_a_key(gateway: GatewayFactory) -> None:
    server = gateway({"models": CONFIG["models"]})
    clients = Clients(server.base)
    try:
        form = clients.new().get("/ui/login")
        assert "you may log in without a key" in form.text
        http, resp = clients.login("")
        assert resp.status_code == 303
        page = http.get("/ui/overview")
        assert page.status_code == 200 and "anonymous" in page.text and "everything" in page.text
    finally:
        clients.close()


def _budget_rows(page: str) -> list[tuple[str, ...]]:
    """(scope, id, team, period, alerts) of each row of the Budgets table."""
    table = re.search(r'<table class="data budgets">(.*?)</table>', page, re.S)
    assert table, "no budgets table"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1).split("<tbody>")[1], re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    return [(c[0], c[1], c[2], c[3], c[5]) for c in cells]


def test_budgets_list_teams_by_name_then_unrevoked_keys(seeded: Seeded, clients: Clients) -> None:
    with seeded.admin() as admin:
        budget = {"max_usd": "20", "period": "weekly", "alert_at": [1.0, 0.25]}
        for team_id, name in (("zeta-team", "Zeta"), ("alpha-team", "Alpha"), ("no-b", "Beta")):
            body = {"id": team_id, "name": name, "budget": None if team_id == "no-b" else budget}
            made = admin.post("/admin/v1/teams", json=body)
            assert made.status_code == 201, made.text
        ids = []
        for alias in ("kept-budget", "revoked-budget"):
            body = {"alias": alias, "team_id": "zeta-team", "role": "member"}
            made = admin.post("/admin/v1/keys", json={**body, "budget": {"max_usd": "3"}})
            assert made.status_code == 201, made.text
            ids.append(made.json()["id"])
        assert admin.post(f"/admin/v1/keys/{ids[1]}/revoke").status_code == 200
        member = admin.get("/admin/v1/keys", params={"team_id": "ml"}).json()["data"]
        member_id = next(k["id"] for k in member if k["alias"] == "ml-app")

    http, _ = clients.logged_in(MASTER)
    expected = [
        ("team", "alpha-team", "alpha-team", "weekly", "25%, 100%"),
        ("team", "zeta-team", "zeta-team", "weekly", "25%, 100%"),
        ("key", member_id, "ml", "monthly", "50%, 80%, 100%"),
        ("key", ids[0], "zeta-team", "monthly", "50%, 80%, 100%"),
    ]
    for path in ("/ui/keys", "/ui/keys?all=1"):
        page = http.get(path)
        assert page.status_code == 200, page.text
        assert _budget_rows(page.text) == expected, path
    assert ids[1] in http.get("/ui/keys?all=1").text, "listed as a key, not as a budget"
    assert ids[1] not in http.get("/ui/keys").text
