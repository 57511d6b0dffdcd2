"""The runner against a real HTTP fake upstream: cancel keeps results and resumes, a scorer
that raises fails its score only, outputs are sealed (never plain text), concurrency holds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from opsgate.evals.client import ClientOptions, GatewayClient
from opsgate.evals.runs import (
    EvalRunner,
    EvalSpec,
    EvalStore,
    ResultRow,
    open_dataset,
    parse_spec,
)
from opsgate.evals.runs.runner import seal_id
from opsgate.evals.scorers import Sample, Scorer, ScoreResult, build_scorer
from opsgate.store import dispose_engine, make_engine
from opsgate.store.crypto import BodyCipher, Keyring
from opsgate.store.migrate import upgrade
from tests.fixtures.upstream import FakeUpstream, Reply


class Broken(Scorer):
    kind = "broken"

    async def score(self, sample: Sample) -> ScoreResult:
        raise ZeroDivisionError("bug in a plugin")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream("up") as upstream:
        yield upstream


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EvalStore]:
    url = f"sqlite:///{tmp_path}/evals.db"
    await upgrade(url)
    engine = make_engine(url)
    yield EvalStore(engine)
    await dispose_engine(engine)


def spec_for(tmp_path: Path, rows: int, **extra: object) -> EvalSpec:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"input": f"q{i}", "expected": "hello from up"}) + "\n"
                            for i in range(rows)))  # fmt: skip
    return parse_spec({"name": "t", "dataset": str(path), "targets": [{"model": "m"}],
                       "scorers": ["exact"], **extra})  # fmt: skip


async def test_cancel_keeps_results_and_resume_finishes(
    fake: FakeUpstream, store: EvalStore, tmp_path: Path
) -> None:
    fake.reset()
    spec = spec_for(tmp_path, 30, concurrency=2)
    client = GatewayClient(fake.url, "k", ClientOptions(concurrency=2))
    runner = EvalRunner(spec, open_dataset(spec.dataset), [build_scorer("exact")],
                        client, store)  # fmt: skip
    seen: list[ResultRow] = []

    def stop_after_five(result: ResultRow) -> None:
        seen.append(result)
        if len(seen) == 5:
            runner.cancel()

    runner.on_result = stop_after_five
    run = await runner.create()
    stopped = await runner.run(run)
    assert stopped.status == "cancelled"
    assert 5 <= stopped.rows_done <= 7  # the calls in flight when it stopped finish
    asked = len(fake.requests)
    runner.on_result = None
    finished = await runner.run(stopped)
    assert finished.status == "completed" and finished.rows_done == 30
    assert len(fake.requests) == 30 and asked == stopped.rows_done
    assert finished.summary is not None
    assert finished.summary["targets"]["m"]["scorers"]["exact"]["mean"] == 1.0
    await client.aclose()


async def test_a_raising_scorer_fails_its_score_and_outputs_are_sealed(
    fake: FakeUpstream, store: EvalStore, tmp_path: Path
) -> None:
    fake.reset()
    fake.default = Reply("secret answer")
    spec = spec_for(tmp_path, 3)
    client = GatewayClient(fake.url, "k")
    cipher = BodyCipher(Keyring.generate())
    runner = EvalRunner(spec, open_dataset(spec.dataset), [build_scorer("exact"), Broken()],
                        client, store, cipher=cipher)  # fmt: skip
    run = await runner.run(await runner.create())
    assert run.status == "completed"
    rows = [r async for page in store.results(run.id) for r in page]
    assert [r.scores["broken"]["error"] for r in rows] == [
        "broken raised ZeroDivisionError: bug in a plugin"] * 3  # fmt: skip
    assert all(r.scores["exact"]["value"] == 0.0 for r in rows)
    body = rows[0].body
    assert body is not None and b"secret answer" not in body
    opened = cipher.open(body, seal_id(run.id, "m", 0), "response_body")
    assert json.loads(opened) == {"output": "secret answer"}
    without_key = EvalRunner(spec, open_dataset(spec.dataset), [build_scorer("exact")],
                             client, store)  # fmt: skip
    plain = await without_key.run(await without_key.create())
    assert all(r.body is None for page in [p async for p in store.results(plain.id)] for r in page)
    await client.aclose()
