"""Logging in to the dashboard over plain HTTP (httpx), the way a browser's form post does."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "no csrf_token field in the page"
    return found.group(1)


def text_of(resp: httpx.Response) -> str:
    """The page with HTML entities decoded, to look for messages as a person reads them."""
    return html.unescape(resp.text)


class Clients:
    """httpx clients for one test, all closed at its end."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._open: list[httpx.Client] = []

    def new(self, **options: object) -> httpx.Client:
        client = httpx.Client(base_url=self.base, timeout=20, **options)  # type: ignore[arg-type]
        self._open.append(client)
        return client

    def login(self, key: str) -> tuple[httpx.Client, httpx.Response]:
        """A client that posted the login form with `key`, and the answer to that post."""
        http = self.new()
        form = http.get("/ui/login")
        assert form.status_code == 200, form.text
        data = {"key": key, "csrf_token": csrf_of(form.text), "next": ""}
        return http, http.post("/ui/login", data=data)

    def logged_in(self, key: str) -> tuple[httpx.Client, str]:
        """A logged-in client and its session's CSRF token."""
        http, resp = self.login(key)
        assert resp.status_code == 303, resp.text
        page = http.get("/ui/traces")
        assert page.status_code == 200, page.text
        return http, csrf_of(page.text)

    def close(self) -> None:
        for client in self._open:
            client.close()


def open_clients(base: str) -> Iterator[Clients]:
    clients = Clients(base)
    try:
        yield clients
    finally:
        clients.close()
