"""Tuning and the right to be forgotten.

Weights cannot forget one person's rows. What the gateway can do, and does: a job records the
end users whose dataset rows it exported; erasing an end user marks every job trained on their
rows, and the adapters those jobs registered, as tainted (`tainted_at`, shown by the API and
the CLI: retrain without them and delete the tainted adapter), deletes the exported training
file of those jobs (a queued or cancelled one then fails with a clear message when it runs)
and forgets the end user's id in `tuning_subjects`; the example rows of those jobs'
evaluations (validation prompts and answers, base vs adapter) are emptied. Their rows left the
datasets with the same erasure, so no later job trains on them. An export lists the jobs and
adapters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsgate.config.tuning import TuningConfig
from opsgate.tuning.runner import DATA_FILE
from opsgate.tuning.store import TuningStore


class TrainedOn:
    """The GDPR holder of tuning (`PersonalData`)."""

    name = "tuning"

    def __init__(
        self,
        store: TuningStore,
        config: Callable[[], TuningConfig],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock

    async def export(self, end_user: str) -> list[dict[str, Any]]:
        return await self._store.trained_on(end_user)

    async def erase(self, end_user: str) -> dict[str, int]:
        jobs, adapters = await self._store.taint(end_user, self._clock())
        examples = await self._store.drop_examples(jobs) if jobs else 0
        folder = Path(self._config().folder)
        files = 0
        for job_id in jobs:
            data = folder / job_id / DATA_FILE
            if await asyncio.to_thread(data.is_file):
                await asyncio.to_thread(data.unlink, True)
                files += 1
        return {
            "tuning_jobs_tainted": len(jobs),
            "tuning_adapters_tainted": adapters,
            "tuning_data_files": files,
            "tuning_evaluation_examples": examples,
        }
