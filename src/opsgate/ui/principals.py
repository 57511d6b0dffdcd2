"""Who is looking: a login key becomes a principal once, and a session becomes one again on every
request, through the same authentication the API uses.

Re-reading the key per request (one indexed read, joined with its team's) is what makes a revoked,
disabled or expired key end its dashboard sessions at the next click, on every replica.
"""

from __future__ import annotations

from opsgate.access.principal import ANONYMOUS, MASTER, Principal
from opsgate.errors import AuthenticationError
from opsgate.gateway import Gateway

MASTER_ID = "master"
ANONYMOUS_ID = "anonymous"


def master_key(gateway: Gateway) -> str | None:
    """The configured master key (the session secret derives from it), or None."""
    return gateway.master_key


async def login_principal(gateway: Gateway, key: str) -> Principal:
    """The principal for a key typed into the login form (empty: the open-laptop caller).

    Raises AuthenticationError (401) saying why a key is refused, exactly as the API would.
    Like the admin API, a key-less caller is trusted only while no master key is set; the
    caller then checks that it comes from this machine (`authorise`).
    """
    headers = {"authorization": f"Bearer {key}"} if key else {}
    trusted = master_key(gateway) is None
    return await gateway.authenticate(headers, trusted=trusted)


def session_key_id(principal: Principal) -> str:
    """What a session cookie records for this principal (never a secret)."""
    if principal.is_master:
        return MASTER_ID
    if principal is ANONYMOUS:
        return ANONYMOUS_ID
    return principal.key_id


async def session_principal(gateway: Gateway, key_id: str) -> Principal | None:
    """The principal a session stands for now, or None when its key no longer works."""
    if key_id == MASTER_ID:
        # The cookie's signature derives from the master key, so it is the current one.
        return MASTER if master_key(gateway) is not None else None
    if key_id == ANONYMOUS_ID:
        try:
            principal = await login_principal(gateway, "")
        except AuthenticationError:
            return None  # a master key was set since: key-less callers are no longer trusted
        return principal if principal is ANONYMOUS else None
    return await gateway.access.principal_of(key_id)
