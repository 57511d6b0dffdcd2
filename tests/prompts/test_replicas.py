"""A label move reaches every replica within one second, with no deploy.

Two real gateway processes (`python -m opsgate serve`) share one database (SQLite file or
PostgreSQL) and, in the Redis cases, one Redis key prefix: the fixture of the key revocation
test, since a label move travels the same way (a change counter in the database, announced on
Redis). Both replicas have the production version cached before the move, so what is measured
is the invalidation. The one-second bound is the issue's requirement; the wait is bounded at 5 s.
"""

from __future__ import annotations

import time

import pytest

from tests.access.test_revocation import BOUND_S, Serve, replicas
from tests.prompts.helpers import system_text

pytestmark = pytest.mark.integration
__all__ = ["replicas"]
VARIABLES = {"ticket": "printer"}


def test_a_label_move_is_served_by_the_other_replica_within_one_second(
    replicas: tuple[Serve, Serve],
) -> None:
    a, b = replicas
    for version in (1, 2):
        body = {"name": "triage", **system_text(version), "labels": ["production"] * (version == 1)}
        a.client.ok("POST", "/admin/v1/prompts", body)
    chat = {"model": "prompt:triage", "variables": VARIABLES}
    for replica in (a, b):  # both replicas now hold production → 1 in their cache
        for _ in range(3):
            assert replica.client.call("GET", "/v1/prompts/triage").json()["version"] == 1
        served = replica.client.call("POST", "/v1/chat/completions", chat)
        assert served.headers["x-opsgate-prompt"] == "triage@1", served.text

    start = time.monotonic()
    a.client.ok("POST", "/admin/v1/prompts/triage/labels/production", {"version": 2})
    took: dict[str, float] = {}
    while len(took) < 2 and time.monotonic() - start < 5.0:
        for name, replica in (("a", a), ("b", b)):
            if name not in took:
                resp = replica.client.call("GET", "/v1/prompts/triage")
                if resp.json()["version"] == 2:
                    took[name] = time.monotonic() - start
        time.sleep(0.005)
    assert set(took) == {"a", "b"}, f"still version 1 after 5s: {took}\n{b.log.read_text()}"
    print(f"time to the new version after the move: {took}")  # shown with -s / -rP
    assert max(took.values()) <= BOUND_S, f"the label move took {took}"
    for replica in (a, b):
        served = replica.client.call("POST", "/v1/chat/completions", chat)
        assert served.headers["x-opsgate-prompt"] == "triage@2", served.text
