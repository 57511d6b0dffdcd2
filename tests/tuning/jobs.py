"""What the tuning API tests share: the routes, the final statuses, and waiting on a job."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.access.helpers import Client

JOBS, ADAPTERS = "/admin/v1/tuning/jobs", "/admin/v1/adapters"
FINAL = ("succeeded", "failed", "cancelled")


def wait_job(
    client: Client, job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 100
) -> dict[str, Any]:
    """Poll the job until `until(job)` holds; fail with the job as last seen after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.ok("GET", f"{JOBS}/{job_id}")
        if until(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
