"""`opsgate wait`: block until a gateway is ready, so a script can start one and go on.

`opsgate serve &` returns at once; the next command would otherwise race the start-up (or
talk to another gateway still on the port). This polls `GET /readyz` (no key needed) until it
answers 200, and fails with the last reason when the time is up.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Annotated

import typer
from rich.console import Console

from opsgate.cli.client import DEFAULT_URL, UrlOpt

out = Console()
err = Console(stderr=True)
_INTERVAL = 0.2


def register(app: typer.Typer) -> None:
    """Add `wait` to the main `opsgate` command."""
    app.command("wait")(wait)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _probe(url: str) -> tuple[bool, str]:
    """(ready, what /readyz said or why it could not be asked)."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/readyz", timeout=2) as resp:
            body = json.loads(resp.read())
            models = body.get("available_deployments", {})
            deployments = _count(sum(models.values()), "deployment")
            return True, f"{_count(len(models), 'model')}, {deployments} available"
    except urllib.error.HTTPError as exc:
        return False, f"/readyz answered {exc.code}"
    except (OSError, ValueError) as exc:  # refused, timed out, not JSON
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return False, str(reason)


def wait(
    url: UrlOpt = DEFAULT_URL,
    timeout: Annotated[float, typer.Option(min=0, help="give up after this many seconds")] = 30,
) -> None:
    """Wait until the gateway at --url is ready (GET /readyz answers 200); exit 1 on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        ready, said = _probe(url)
        if ready:
            out.print(f"[green]ready[/]: {url} ({said})", highlight=False)
            return
        if time.monotonic() >= deadline:
            err.print(f"[bold red]not ready[/] after {timeout:g} s: {url}: {said}", highlight=False)
            raise typer.Exit(1)
        time.sleep(min(_INTERVAL, max(0.0, deadline - time.monotonic())))
