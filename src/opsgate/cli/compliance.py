"""`opsgate audit`, `opsgate gdpr`, and `opsgate keys rotate-encryption | new-encryption-key`.

`audit verify` and `keys rotate-encryption` work on the database itself (like `db upgrade`):
verification must not trust the gateway whose log it checks, and re-sealing is maintenance. The
`gdpr` commands and `audit log` go through the running gateway's admin API, so the erasure also
reaches its cache and journal and is audited there.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from opsgate.cli.client import DEFAULT_URL, UrlOpt, call

audit_app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)
gdpr_app = typer.Typer(
    help="Export or erase everything kept about an end user.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)

UserOpt = Annotated[str, typer.Option("--user", help="the end user id (the `user` field)")]
DbOpt = Annotated[
    str | None,
    typer.Option(help="default: $OPSGATE_DATABASE_URL, else the config's database_url"),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")]


def register(app: typer.Typer) -> None:
    """Add `audit` and `gdpr`, and the encryption-key commands to `keys`."""
    from opsgate.cli.access import keys_app

    app.add_typer(audit_app, name="audit")
    app.add_typer(gdpr_app, name="gdpr")
    keys_app.command("rotate-encryption")(rotate_encryption)
    keys_app.command("new-encryption-key")(new_encryption_key)


def _config(database_url: str | None, config: Path | None) -> Any:
    """The config (for keys) with `database_url` applied; exit 2 on a config error."""
    from opsgate.config.loader import ConfigError, load_config

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        err.print(f"[bold red]config error[/] in {exc.source}: {'; '.join(exc.problems)}")
        raise typer.Exit(2) from None
    if database_url is not None:
        settings = loaded.settings.model_copy(update={"database_url": database_url})
        loaded = loaded.model_copy(update={"settings": settings})
    return loaded


async def _on_engine(url: str, work: Any) -> Any:
    from opsgate.store.db import dispose_engine, make_engine

    engine = make_engine(url)
    try:
        return await work(engine)
    finally:
        await dispose_engine(engine)


@audit_app.command("verify")
def audit_verify(
    database_url: DbOpt = None,
    config: ConfigOpt = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            help="SEQ:HASH of an entry kept elsewhere (the `head` an earlier run printed): "
            "also fails when the log was cut off before it or rewritten up to it"
        ),
    ] = None,
) -> None:
    """Walk the hash chain in the database; exit 1 and name the first broken entry."""
    from opsgate.audit import Anchor, AuditLog

    try:
        kept = Anchor.parse(anchor) if anchor is not None else None
    except ValueError as exc:
        err.print(f"[bold red]bad --anchor[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    url = _config(database_url, config).settings.database_url
    try:
        result = asyncio.run(_on_engine(url, lambda engine: AuditLog(engine).verify(anchor=kept)))
    except Exception as exc:  # any driver or URL error: report it, exit non-zero
        err.print(f"[bold red]cannot read the audit log[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if result.ok:
        out.print(f"[green]ok[/]: {result.checked} entries, head {result.head or '-'}")
        return
    out.print(
        f"[bold red]broken[/] at seq {result.first_broken_seq}: {result.reason} "
        f"({result.checked} entries before it hold)",
        highlight=False,
    )
    raise typer.Exit(1)


@audit_app.command("log")
def audit_log(
    url: UrlOpt = DEFAULT_URL,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    action: Annotated[str | None, typer.Option(help="only this action, e.g. keys.create")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw JSON answer")] = False,
) -> None:
    """The newest audit entries, from the running gateway."""
    params = [("limit", str(limit)), ("action", action)]
    body = call(url, "GET", "/admin/v1/audit", params=params)
    if as_json:
        out.print_json(data=body)
        return
    table = Table("seq", "at", "actor", "action", "target", "detail")
    for e in body["data"]:
        detail = json.dumps(e["detail"], sort_keys=True)
        table.add_row(str(e["seq"]), e["at_iso"], e["actor"], e["action"], e["target"], detail)
    out.print(table)


def _user_path(user: str, suffix: str = "") -> str:
    return f"/admin/v1/end-users/{urllib.parse.quote(user, safe='')}{suffix}"


@gdpr_app.command("export")
def gdpr_export(
    user: UserOpt,
    url: UrlOpt = DEFAULT_URL,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here")] = None,
) -> None:
    """Print (or write) everything the gateway keeps about an end user, as JSON."""
    body = call(url, "GET", _user_path(user, "/export"), timeout=300)
    text = json.dumps(body, indent=2, ensure_ascii=False)
    if output is None:
        print(text)
        return
    output.write_text(text + "\n", encoding="utf-8")
    err.print(f"written to {output}")


@gdpr_app.command("erase")
def gdpr_erase(
    user: UserOpt,
    url: UrlOpt = DEFAULT_URL,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Erase everything the gateway keeps about an end user; prints the receipt."""
    if not yes:
        typer.confirm(f"Erase every trace, body and usage row of end user {user!r}?", abort=True)
    receipt = call(url, "DELETE", _user_path(user), timeout=300)
    table = Table("table or store", "removed")
    for name, count in sorted(receipt["counts"].items()):
        table.add_row(name, str(count))
    out.print(table)
    out.print(f"[green]erased[/] {receipt['total']} items; audit entry {receipt['audit_seq']}")


def rotate_encryption(
    database_url: DbOpt = None,
    config: ConfigOpt = None,
    batch: Annotated[int, typer.Option(min=1, help="rows per transaction")] = 500,
) -> None:
    """Re-encrypt every stored body under the current (first) key; exit 1 if some cannot be."""
    from opsgate.compliance.encryption import configured_cipher
    from opsgate.compliance.rotation import reseal_all
    from opsgate.store.crypto import EncryptionConfigError

    loaded = _config(database_url, config)
    try:
        cipher = configured_cipher(loaded)
    except EncryptionConfigError as exc:
        err.print(f"[bold red]encryption keys unusable[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if cipher is None:
        err.print("[bold red]no encryption keys configured[/] (OPSGATE_ENCRYPTION_KEYS)")
        raise typer.Exit(2)
    url = loaded.settings.database_url
    try:
        report = asyncio.run(_on_engine(url, lambda e: reseal_all(e, cipher, batch=batch)))
    except Exception as exc:  # any driver or URL error: report it, exit non-zero
        err.print(f"[bold red]re-encryption stopped[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    out.print(
        f"key {report.key_id}: {report.bodies_resealed} bodies re-encrypted "
        f"({report.rows_checked} traces with bodies checked)"
    )
    for line in report.failures[:20]:
        err.print(f"  [red]cannot re-encrypt[/] {line}", highlight=False)
    if report.failures:
        err.print(f"[bold red]{len(report.failures)} bodies could not be opened[/]")
        raise typer.Exit(1)


def new_encryption_key(
    key_id: Annotated[str | None, typer.Option("--id", help="key id (default: random)")] = None,
) -> None:
    """Print a fresh `kid:base64` entry for OPSGATE_ENCRYPTION_KEYS or a key file."""
    from opsgate.store.crypto import EncryptionConfigError, Keyring

    try:
        keyring = Keyring.generate(key_id)
        Keyring.parse(keyring.dumps(), source="--id")  # same checks as loading it later
    except EncryptionConfigError as exc:
        err.print(f"[bold red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    print(keyring.dumps().strip())
