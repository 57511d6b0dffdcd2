"""`opsgate keys`, `opsgate teams`, `opsgate users`: manage access on a running gateway.

Everything goes through the admin API over HTTP (like `config reload`), authenticated with
`$OPSGATE_ADMIN_KEY` (any og- key with the right role) or else `$OPSGATE_MASTER_KEY`.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from opsgate.cli.client import DEFAULT_URL, UrlOpt, call

keys_app = typer.Typer(help="Create, list, revoke and rotate virtual keys.", no_args_is_help=True)
teams_app = typer.Typer(help="Create and list teams.", no_args_is_help=True)
users_app = typer.Typer(help="Create and list users.", no_args_is_help=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]
Opt = Annotated[str | None, typer.Option()]


def register(app: typer.Typer) -> None:
    """Add `keys`, `teams` and `users` to the main `opsgate` command."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(teams_app, name="teams")
    app.add_typer(users_app, name="users")


def _keys_table(keys: list[dict[str, Any]]) -> Table:
    table = Table("id", "alias", "prefix", "role", "team", "user", "models", "status", "expires")
    for k in keys:
        table.add_row(
            k["id"],
            k["alias"] or "-",
            k["prefix"] + "…",
            k["role"],
            k["team_id"] or "-",
            k["user_id"] or "-",
            ", ".join(k["models"]) or "*",
            k["status"],
            k["expires_at"] or "never",
        )
    return table


def _show_secret(key: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(data=key)
        return
    out.print(_keys_table([key]))
    out.print("[bold]key[/] (shown once, store it now):", highlight=False)
    print(key["key"])  # plain stdout so it can be piped without markup


@keys_app.command("create")
def keys_create(
    alias: Opt = None,
    team: Annotated[str | None, typer.Option(help="team id")] = None,
    user: Annotated[str | None, typer.Option(help="user id")] = None,
    role: Annotated[str, typer.Option(help="admin, team_admin, member, viewer, service")] = (
        "member"
    ),
    models: Annotated[
        list[str] | None, typer.Option("--models", help="allowed model glob (repeatable)")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="lifetime: 30d, 12h, 3600")] = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Create a virtual key; its secret is printed once."""
    body: dict[str, Any] = {"alias": alias, "team_id": team, "user_id": user, "role": role}
    body["models"] = [m.strip() for raw in models or () for m in raw.split(",") if m.strip()]
    if expires:
        body["expires_in"] = expires
    _show_secret(call(url, "POST", "/admin/v1/keys", body), as_json)


@keys_app.command("list")
def keys_list(
    team: Annotated[str | None, typer.Option(help="only this team")] = None,
    user: Annotated[str | None, typer.Option(help="only this user")] = None,
    all_keys: Annotated[bool, typer.Option("--all", help="include revoked keys")] = False,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """List keys in your scope (never their secrets)."""
    revoked = "true" if all_keys else None
    params = [("team_id", team), ("user_id", user), ("include_revoked", revoked)]
    found = call(url, "GET", "/admin/v1/keys", params=params)
    if as_json:
        out.print_json(data=found)
        return
    out.print(_keys_table(found["data"]))


@keys_app.command("revoke")
def keys_revoke(key_id: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Revoke a key now, on every replica."""
    key = call(url, "POST", f"/admin/v1/keys/{urllib.parse.quote(key_id)}/revoke")
    out.print(f"[green]revoked[/] {key['id']} ({key['prefix']}…)", highlight=False)


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    grace: Annotated[str, typer.Option(help="how long the old key keeps working")] = "24h",
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Issue a new secret for a key; the old one keeps working for the grace period."""
    path = f"/admin/v1/keys/{urllib.parse.quote(key_id)}/rotate"
    new = call(url, "POST", path, {"grace": grace})
    if not as_json:
        old = new["replaces"]
        out.print(f"old key {old['id']} now expires at {old['expires_at']}", highlight=False)
    _show_secret(new, as_json)


@teams_app.command("create")
def teams_create(
    name: str,
    team_id: Annotated[str | None, typer.Option("--id", help="default: generated")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Create a team."""
    team = call(url, "POST", "/admin/v1/teams", {"name": name, "id": team_id})
    out.print(f"[green]created[/] team {team['id']} ({team['name']})", highlight=False)


@teams_app.command("list")
def teams_list(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """List teams in your scope, with their budgets."""
    found = call(url, "GET", "/admin/v1/teams")
    if as_json:
        out.print_json(data=found)
        return
    table = Table("id", "name", "budget", "rpm", "tpm", "created")
    for t in found["data"]:
        budget = t["budget"]
        spend = f"${budget['max_usd']}/{budget['period']}" if budget else "-"
        limits = t["limits"]
        rpm, tpm = limits["rpm"], limits["tpm"]
        table.add_row(t["id"], t["name"], spend, str(rpm or "-"), str(tpm or "-"), t["created_at"])
    out.print(table)


@users_app.command("create")
def users_create(
    user_id: Annotated[str | None, typer.Option("--id", help="default: generated")] = None,
    name: Opt = None,
    email: Opt = None,
    team: Annotated[str | None, typer.Option(help="team id")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Create a user."""
    body = {"id": user_id, "name": name, "email": email, "team_id": team}
    user = call(url, "POST", "/admin/v1/users", body)
    out.print(f"[green]created[/] user {user['id']}", highlight=False)


@users_app.command("list")
def users_list(
    team: Annotated[str | None, typer.Option(help="only this team")] = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """List users in your scope."""
    found = call(url, "GET", "/admin/v1/users", params=[("team_id", team)])
    if as_json:
        out.print_json(data=found)
        return
    table = Table("id", "name", "email", "team", "created")
    for u in found["data"]:
        table.add_row(
            u["id"], u["name"] or "-", u["email"] or "-", u["team_id"] or "-", u["created_at"]
        )
    out.print(table)
