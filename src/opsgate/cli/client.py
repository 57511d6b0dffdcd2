"""The CLI's one way to call the running gateway's admin API (stdlib only, no event loop).

The key is `$OPSGATE_ADMIN_KEY`, else `$OPSGATE_MASTER_KEY`. On failure the gateway's own error
message is printed and the command exits 1.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Annotated, Any

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
    query = urllib.parse.urlencode([(k, v) for k, v in params if v is not None])
    target = f"{url.rstrip('/')}{path}" + (f"?{query}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(target, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    key = os.environ.get("OPSGATE_ADMIN_KEY") or os.environ.get("OPSGATE_MASTER_KEY")
    if key:
        req.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read() or b"{}")["error"]["message"]
        except (ValueError, KeyError, TypeError):
            detail = exc.reason
        err.print(f"[bold red]request failed[/] ({exc.code}): {detail}", highlight=False)
    except OSError as exc:  # URLError, refused, timed out
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        err.print(f"[bold red]cannot reach the gateway[/] at {url}: {reason}", highlight=False)
    raise typer.Exit(1)


def get_json(url: str, path: str, params: Sequence[tuple[str, str | None]] = ()) -> Any:
    return call(url, "GET", path, params=params)
