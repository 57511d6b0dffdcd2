"""The Security page on a real, seeded gateway: a burst of 401s from this machine shows up as a
credential-stuffing alert for an admin; viewers and members neither see the page in the
navigation nor open it (403)."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.ui.conftest import MASTER, Seeded
from tests.ui.helpers import Clients

pytestmark = pytest.mark.integration


def test_admins_see_security_alerts_others_get_403(seeded: Seeded, clients: Clients) -> None:
    with httpx.Client(base_url=seeded.base, timeout=20) as http:
        for _ in range(20):  # the default threshold: 20 failures from one address in 60 s
            bad = http.get("/v1/models", headers={"authorization": "Bearer og-" + "C" * 43})
            assert bad.status_code == 401
    admin, _ = clients.logged_in(MASTER)
    deadline = time.monotonic() + 15
    while True:
        page = admin.get("/ui/security")
        assert page.status_code == 200, page.text
        if "security.credential_stuffing" in page.text:
            break
        assert time.monotonic() < deadline, "the alert never reached the page"
        time.sleep(0.05)
    assert "127.0.0.1" in page.text and "severity-warning" in page.text
    assert 'id="audit-chain"' in page.text and "Not verified by this replica yet" in page.text
    nav = re.findall(r"<nav>(.*?)</nav>", page.text, re.S)[0]
    assert "Security" in nav

    for key in (seeded.viewer_key, seeded.member_key):
        http, _ = clients.logged_in(key)
        denied = http.get("/ui/security")
        assert denied.status_code == 403 and "audit:read" in denied.text
        assert "security.credential_stuffing" not in denied.text
        nav = re.findall(r"<nav>(.*?)</nav>", http.get("/ui/traces").text, re.S)[0]
        assert "Security" not in nav
