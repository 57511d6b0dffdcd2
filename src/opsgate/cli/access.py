"""`opsgate keys`, `opsgate teams`, `opsgate users`: manage access on a running gateway.

Everything goes through the admin API over HTTP (like `config reload`), authenticated with
`$OPSGATE_ADMIN_KEY` (any og- key with the right role) or else `$OPSGATE_MASTER_KEY`.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from opsgate.cli import policy as p
from opsgate.cli.client import DEFAULT_URL, UrlOpt, call
from opsgate.cli.tables import Column, print_table

keys_app = typer.Typer(
    help="Create, list, update, revoke and rotate virtual keys.", no_args_is_help=True
)
teams_app = typer.Typer(help="Create, list and update teams.", no_args_is_help=True)
users_app = typer.Typer(help="Create and list users.", no_args_is_help=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]
Opt = Annotated[str | None, typer.Option()]
Models = Annotated[
    list[str] | None, typer.Option("--models", help="allowed model glob (repeatable)")
]
Expires = Annotated[str | None, typer.Option(help="lifetime from now: 30d, 12h, 3600")]


def register(app: typer.Typer) -> None:
    """Add `keys`, `teams` and `users` to the main `opsgate` command."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(teams_app, name="teams")
    app.add_typer(users_app, name="users")


def _day(iso: str | None, default: str) -> str:
    """`2025-07-01 12:00` (UTC) from the API's ISO-8601."""
    if not iso:
        return default
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")


_STATUS_STYLE = {"active": "green", "revoked": "red", "expired": "yellow", "disabled": "yellow"}
_KEY_COLUMNS = (
    Column("id"),
    Column("alias", 2, wrap=True),
    Column("role", 1),
    Column("team", 1),
    Column("status", 1),
    Column("models", 3, wrap=True),
    Column("limits", 3, wrap=True),
    Column("budget", 3, wrap=True),
    Column("expires (UTC)", 4, wrap=True),
    Column("user", 5),
    Column("prefix", 6),
)


def _print_keys(keys: list[dict[str, Any]]) -> None:
    rows = [
        [
            k["id"],
            k["alias"] or "-",
            k["role"],
            k["team_id"] or "-",
            Text(k["status"], style=_STATUS_STYLE.get(k["status"], "")),
            ", ".join(k["models"]) or "*",
            p.describe_limits(k["limits"]),
            p.describe_budget(k["budget"]),
            _day(k["expires_at"], "never"),
            k["user_id"] or "-",
            k["prefix"] + "…",
        ]
        for k in keys
    ]
    print_table(out, _KEY_COLUMNS, rows)


def _show_secret(key: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(data=key)
        return
    _print_keys([key])
    out.print("[bold]key[/] (shown once, store it now):", highlight=False)
    print(key["key"])  # plain stdout so it can be piped without markup


def _models(models: list[str] | None) -> list[str]:
    return [m.strip() for raw in models or () for m in raw.split(",") if m.strip()]


@keys_app.command("create")
@p.policy_options(removable=False)
def keys_create(
    alias: Opt = None,
    team: Annotated[str | None, typer.Option(help="team id")] = None,
    user: Annotated[str | None, typer.Option(help="user id")] = None,
    role: Annotated[str, typer.Option(help="admin, team_admin, member, viewer, service")] = (
        "member"
    ),
    models: Models = None,
    expires: Expires = None,
    flags: p.PolicyFlags = p.NO_FLAGS,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Create a virtual key, with its rate limits and budget; its secret is printed once."""
    body: dict[str, Any] = {"alias": alias, "team_id": team, "user_id": user, "role": role}
    body["models"] = _models(models)
    if expires:
        body["expires_in"] = expires
    body.update(flags.for_create())
    _show_secret(call(url, "POST", "/admin/v1/keys", body), as_json)


@keys_app.command("update")
@p.policy_options(removable=True)
def keys_update(
    key_id: str,
    alias: Opt = None,
    models: Models = None,
    expires: Expires = None,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="let the key call, or stop it")
    ] = None,
    flags: p.PolicyFlags = p.NO_FLAGS,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Change a key's alias, models, expiry, rate limits or budget; what is not given stays."""
    path = f"/admin/v1/keys/{urllib.parse.quote(key_id, safe='')}"
    body: dict[str, Any] = {}
    if flags.given:
        flags.check()  # before the GET: a contradiction is refused without a call
        body.update(flags.for_update(call(url, "GET", path)))
    if alias is not None:
        body["alias"] = alias
    if models is not None:
        body["models"] = _models(models)
    if expires is not None:
        body["expires_in"] = expires
    if enable is not None:
        body["enabled"] = enable
    if not body:
        raise typer.BadParameter("nothing to change: give at least one option (see --help)")
    key = call(url, "PATCH", path, body)
    if as_json:
        out.print_json(data=key)
        return
    _print_keys([key])


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
    _print_keys(found["data"])


@keys_app.command("revoke")
def keys_revoke(key_id: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Revoke a key now, on every replica."""
    key = call(url, "POST", f"/admin/v1/keys/{urllib.parse.quote(key_id, safe='')}/revoke")
    out.print(f"[green]revoked[/] {key['id']} ({key['prefix']}…)", highlight=False)


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    grace: Annotated[str, typer.Option(help="how long the old key keeps working")] = "24h",
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Issue a new secret for a key; the old one keeps working for the grace period."""
    path = f"/admin/v1/keys/{urllib.parse.quote(key_id, safe='')}/rotate"
    new = call(url, "POST", path, {"grace": grace})
    if not as_json:
        old = new["replaces"]
        out.print(f"old key {old['id']} now expires at {old['expires_at']}", highlight=False)
    _show_secret(new, as_json)


_TEAM_COLUMNS = (
    Column("id"),
    Column("name", 1, wrap=True),
    Column("budget", 1, wrap=True),
    Column("limits", 2, wrap=True),
    Column("created (UTC)", 3, wrap=True),
)


def _print_teams(teams: list[dict[str, Any]]) -> None:
    rows = [
        [
            t["id"],
            t["name"],
            p.describe_budget(t["budget"]),
            p.describe_limits(t["limits"]),
            _day(t["created_at"], "-"),
        ]
        for t in teams
    ]
    print_table(out, _TEAM_COLUMNS, rows)


@teams_app.command("create")
@p.policy_options(removable=False)
def teams_create(
    name: str,
    team_id: Annotated[str | None, typer.Option("--id", help="default: generated")] = None,
    flags: p.PolicyFlags = p.NO_FLAGS,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Create a team, with the rate limits and budget shared by all its keys."""
    body = {"name": name, "id": team_id, **flags.for_create()}
    team = call(url, "POST", "/admin/v1/teams", body)
    if as_json:
        out.print_json(data=team)
        return
    out.print(f"[green]created[/] team {team['id']} ({team['name']})", highlight=False)
    if flags.given:
        _print_teams([team])


@teams_app.command("update")
@p.policy_options(removable=True)
def teams_update(
    team_id: str,
    name: Opt = None,
    flags: p.PolicyFlags = p.NO_FLAGS,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Rename a team or change its rate limits and budget; what is not given stays."""
    flags.check()
    if name is None and not flags.given:
        raise typer.BadParameter("nothing to change: give at least one option (see --help)")
    path = f"/admin/v1/teams/{urllib.parse.quote(team_id, safe='')}"
    team = call(url, "GET", path)
    if name is not None:
        team = call(url, "PATCH", path, {"name": name})
    if flags.given:
        body = {**p.current_policy(team), **flags.for_update(team)}
        call(url, "PUT", f"{path}/budget", body)
        team = call(url, "GET", path)
    if as_json:
        out.print_json(data=team)
        return
    _print_teams([team])


@teams_app.command("list")
def teams_list(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """List teams in your scope, with their budgets and limits."""
    found = call(url, "GET", "/admin/v1/teams")
    if as_json:
        out.print_json(data=found)
        return
    _print_teams(found["data"])


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


_USER_COLUMNS = (
    Column("id"),
    Column("name", 1, wrap=True),
    Column("team", 1),
    Column("email", 2, wrap=True),
    Column("created (UTC)", 3, wrap=True),
)


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
    rows = [
        [
            u["id"],
            u["name"] or "-",
            u["team_id"] or "-",
            u["email"] or "-",
            _day(u["created_at"], "-"),
        ]
        for u in found["data"]
    ]
    print_table(out, _USER_COLUMNS, rows)
