"""The CLI's one way to call the running gateway's admin API (stdlib only, no event loop).

The key is `$OPSGATE_ADMIN_KEY`, else `$OPSGATE_MASTER_KEY`. On failure the gateway's own error
message is printed and the command exits 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from http.client import HTTPResponse
from typing import Annotated, Any, BinaryIO

import typer
from rich.console import Console

err = Console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8080"
UrlOpt = Annotated[str, typer.Option(help="the running gateway", envvar="OPSGATE_URL")]
"""The `--url` option of every command that calls the running gateway."""


def call(
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    params: Sequence[tuple[str, str | None]] = (),
    timeout: float = 30,
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"} if data is not None else {}
    with stream(url, method, path, params=params, data=data, headers=headers, timeout=timeout) as r:
        try:
            return json.loads(r.read())
        except OSError as exc:  # the connection broke or timed out mid-answer
            err.print(f"[bold red]cannot read the answer[/] from {url}: {exc}", highlight=False)
            raise typer.Exit(1) from None


@contextlib.contextmanager
def stream(
    url: str,
    method: str,
    path: str,
    *,
    params: Sequence[tuple[str, str | None]] = (),
    data: bytes | BinaryIO | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Iterator[HTTPResponse]:
    """The open response, for bodies read (or sent) piece by piece: exports and uploads. A file
    sent as `data` needs its `content-length` in `headers`."""
    query = urllib.parse.urlencode([(k, v) for k, v in params if v is not None])
    target = f"{url.rstrip('/')}{path}" + (f"?{query}" if query else "")
    req = urllib.request.Request(target, data=data, method=method, headers=headers or {})
    key = os.environ.get("OPSGATE_ADMIN_KEY") or os.environ.get("OPSGATE_MASTER_KEY")
    if key:
        req.add_header("authorization", f"Bearer {key}")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read() or b"{}")["error"]["message"]
        except (ValueError, KeyError, TypeError):
            detail = exc.reason
        err.print(f"[bold red]request failed[/] ({exc.code}): {detail}", highlight=False)
        raise typer.Exit(1) from None
    except OSError as exc:  # URLError, refused, timed out
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        err.print(f"[bold red]cannot reach the gateway[/] at {url}: {reason}", highlight=False)
        raise typer.Exit(1) from None
    with resp:
        yield resp


def get_json(url: str, path: str, params: Sequence[tuple[str, str | None]] = ()) -> Any:
    return call(url, "GET", path, params=params)
