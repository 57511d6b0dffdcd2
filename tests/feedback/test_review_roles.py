"""Every role against every review-queue and dataset route: allowed roles get 200/201, the
others a 403 before anything is looked up (a member is granted on the queues it reviews, as the
grant requires). `LOOP_ROUTES` also feeds the access tests' check that every admin route has a
row in a role table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.access.helpers import MASTER
from tests.feedback.conftest import FbStarter
from tests.feedback.loop import Loop, expect, start_loop
from tests.fixtures.roles import Route, assert_role_matrix, role_callers
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration

Q = "/admin/v1/review/queues"
D = "/admin/v1/datasets"
REVIEWERS = frozenset({"admin", "team_admin", "member"})
MANAGERS = frozenset({"admin", "team_admin"})
ROW = {"messages": [{"role": "user", "content": "hi"}], "output": "hello"}
UPLOAD = b'{"messages": [{"role": "user", "content": "q"}], "output": "a"}\n'

LOOP_ROUTES: list[Route] = [
    ("GET", Q, REVIEWERS),
    ("POST", Q, MANAGERS),
    ("GET", Q + "/{queue}", REVIEWERS),
    ("PATCH", Q + "/{queue}", MANAGERS),
    ("DELETE", Q + "/{queue}", MANAGERS),
    ("POST", Q + "/{queue}/fill", MANAGERS),
    ("POST", Q + "/{queue}/next", REVIEWERS),
    ("GET", Q + "/{queue}/items", REVIEWERS),
    ("GET", Q + "/{queue}/items/{trace_id}", REVIEWERS),
    ("POST", Q + "/{queue}/items/{trace_id}/label", REVIEWERS),
    ("POST", Q + "/{queue}/items/{trace_id}/skip", REVIEWERS),
    ("POST", Q + "/{queue}/undo", REVIEWERS),
    ("GET", D, MANAGERS),
    ("POST", D, MANAGERS),
    ("GET", D + "/{dataset}", MANAGERS),
    ("DELETE", D + "/{dataset}", MANAGERS),
    ("POST", D + "/{dataset}/rows", MANAGERS),
    ("POST", D + "/{dataset}/rows/remove", MANAGERS),
    ("GET", D + "/{dataset}/rows", MANAGERS),
    ("POST", D + "/{dataset}/import", MANAGERS),
    ("GET", D + "/{dataset}/export", MANAGERS),
    ("GET", D + "/{dataset}/exports/{export_id}", MANAGERS),
]

Prepared = tuple[str, Any, bytes | None]
"""(path, JSON body, raw body) for one call."""


class World:
    """Fresh queues and datasets in team A for each call, so every call starts the same."""

    def __init__(self, loop: Loop, trace_id: str) -> None:
        self.loop, self.trace_id, self.n = loop, trace_id, 0
        self.admin = loop.as_(MASTER)

    def _name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    def queue(self) -> str:
        body = {
            "name": self._name("q"),
            "team_id": "team-a",
            "rule": {"since": "1h"},
            "reviewers": ["user-a"],
        }
        return str(expect(self.admin.call("POST", Q, body), 201)["id"])

    def dataset(self) -> str:
        body = {"name": self._name("d"), "team_id": "team-a", "rows": [ROW]}
        return str(expect(self.admin.call("POST", D, body), 201)["dataset"]["id"])

    def prepare(self, method: str, template: str, key: str) -> Prepared:
        values = {"trace_id": self.trace_id}
        if "{queue}" in template:
            values["queue"] = self.queue()
            if template.endswith("/undo"):  # something of the caller's own to undo
                skip = f"{Q}/{values['queue']}/items/{self.trace_id}/skip"
                expect(self.loop.as_(key).call("POST", skip), 200)
        if "{dataset}" in template:
            values["dataset"] = self.dataset()
        if "{export_id}" in template:
            done = self.admin.call("GET", f"{D}/{values['dataset']}/export")
            values["export_id"] = done.headers["x-opsgate-export-id"]
        path = template.format(**values)
        bodies: dict[tuple[str, str], Callable[[], Prepared]] = {
            ("POST", Q): lambda: (path, {"name": self._name("made"), "team_id": "team-a"}, None),
            ("PATCH", Q + "/{queue}"): lambda: (path, {"description": "x"}, None),
            ("POST", Q + "/{queue}/items/{trace_id}/label"): lambda: (
                path,
                {"scores": {"thumbs": True}},
                None,
            ),
            ("POST", D): lambda: (path, {"name": self._name("made"), "team_id": "team-a"}, None),
            ("POST", D + "/{dataset}/rows"): lambda: (path, {"rows": [ROW]}, None),
            ("POST", D + "/{dataset}/rows/remove"): lambda: (path, {"trace_ids": ["x"]}, None),
            ("POST", D + "/{dataset}/import"): lambda: (path, None, UPLOAD),
        }
        return bodies.get((method, template), lambda: (path, None, None))()


def test_every_role_against_every_review_and_dataset_route(
    db_url: str,
    feedback_gateway: FbStarter,
    upstreams: dict[str, FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = start_loop(db_url, feedback_gateway, upstreams, monkeypatch)
    trace_id = loop.ask("hello?", "hi", key=loop.key("service", "a"))
    loop.wait_traces([trace_id])
    world = World(loop, trace_id)
    callers = role_callers(MASTER, loop.fb.world.keys)

    def call(method: str, template: str, who: str, key: str, allowed: bool) -> httpx.Response:
        path, body, raw = (
            world.prepare(method, template, key)
            if allowed
            else (
                template.format(queue="q", dataset="d", trace_id=trace_id, export_id="x"),
                None,
                None,
            )
        )
        return loop.as_(key).call(method, path, body, **({"content": raw} if raw else {}))

    assert_role_matrix(LOOP_ROUTES, callers, call)
