"""The admin audit layer never writes an end user's id: the erasure route takes the id as a path
(it may hold "/"), so the whole rest of the path is pseudonymised, also for requests the handler
refuses before writing its own entry (403, 400, 405)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsgate.api.audit_middleware import action_of, target_of
from opsgate.audit import pseudonym
from tests.access.conftest import GatewayStarter, access_gateway
from tests.access.helpers import seed

__all__ = ["access_gateway"]

PREFIX = "/admin/v1/end-users/"
TENANT, USER = "tenant-q9z", "alice-x7k2"
END_USER = f"{TENANT}/{USER}"


def _eu(end_user: str) -> str:
    return pseudonym("end_user", end_user)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("DELETE", f"{PREFIX}bob", f"{PREFIX}{_eu('bob')}"),
        ("DELETE", f"{PREFIX}acme/alice", f"{PREFIX}{_eu('acme/alice')}"),
        ("DELETE", f"{PREFIX}acme/alice/", f"{PREFIX}{_eu('acme/alice/')}"),
        # DELETE .../x/export erases the end user "x/export": that is the id
        ("DELETE", f"{PREFIX}acme/alice/export", f"{PREFIX}{_eu('acme/alice/export')}"),
        # any other method on .../export is the export route: its suffix stays
        ("POST", f"{PREFIX}acme/alice/export", f"{PREFIX}{_eu('acme/alice')}/export"),
        ("PUT", f"{PREFIX}export", f"{PREFIX}{_eu('export')}"),
        ("POST", f"{PREFIX}/export", f"{PREFIX}{_eu('/export')}"),
        ("POST", "/admin/v1/keys/k1/revoke", "/admin/v1/keys/k1/revoke"),
        ("DELETE", PREFIX, PREFIX),
    ],
)
def test_target_of_hides_the_whole_end_user_id(method: str, path: str, expected: str) -> None:
    assert target_of(method, path) == expected


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", f"{PREFIX}acme/alice", "end-users.create"),
        ("POST", f"{PREFIX}alice", "end-users.create"),
        ("POST", f"{PREFIX}acme/alice/export", "end-users.export"),
        ("DELETE", f"{PREFIX}acme/alice", "end-users.delete"),
        ("POST", "/admin/v1/keys/k1/revoke", "keys.revoke"),
    ],
)
def test_action_of_never_names_an_end_user(method: str, path: str, expected: str) -> None:
    assert action_of(method, path) == expected


@pytest.mark.integration
def test_refused_end_user_actions_leave_no_plain_id_in_the_log(
    access_gateway: GatewayStarter, tmp_path: Path
) -> None:
    master = access_gateway(f"sqlite:///{tmp_path / 'audit.db'}")
    world = seed(master)
    viewer = master.as_(world.keys["viewer:a"])
    refused = viewer.call("DELETE", PREFIX + END_USER)
    assert refused.status_code == 403, refused.text
    invalid = master.call("DELETE", f"{PREFIX}{END_USER}%09")  # a control character: 400
    assert invalid.status_code == 400, invalid.text
    wrong = master.call("POST", f"{PREFIX}{END_USER}/export")
    assert wrong.status_code == 405, wrong.text
    posted = master.call("POST", PREFIX + END_USER)
    assert posted.status_code == 405, posted.text

    entries = master.ok("GET", "/admin/v1/audit", params={"limit": "1000"})["data"]
    seen = [(e["actor"], e["action"], e["target"], e["detail"]["status"]) for e in entries[:4]]
    assert seen == [
        ("master", "end-users.create", PREFIX + _eu(END_USER), 405),
        ("master", "end-users.export", f"{PREFIX}{_eu(END_USER)}/export", 405),
        ("master", "end-users.delete", PREFIX + _eu(END_USER + "\t"), 400),
        (f"key:{world.key_ids['viewer:a']}", "end-users.delete", PREFIX + _eu(END_USER), 403),
    ]
    logged = str(entries)
    assert TENANT not in logged and USER not in logged, "no part of the id reaches the log"
