"""The Tuning page in real headless Chromium.

Most tests read rows inserted through `TuningStore` (its own engine on the gateway's SQLite
file; the gateway's runner is off, so a queued row stays queued): jobs in every state, an
adapter with metrics, an evaluation and lineage to a dataset made through the admin API and
to an experiment from the config, another team's job, and names built to break the HTML.
`test_a_real_job_is_followed_live_to_its_adapter` trains the tiny Llama for real (a worker
process, 30-50 s) and watches its page update itself until the adapter is registered.
The last test checks the page's own reading of experiments and evaluations, without a browser.
Screenshots: test-output/ui-screenshots/6x-*.png.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from opsgate.config.experiments import ExperimentConfig
from opsgate.experiments.model import Experiment
from opsgate.store import dispose_engine, make_engine
from opsgate.tuning.logs import JobLog
from opsgate.tuning.store import TuningStore
from opsgate.ui.tuning_views import evaluation, mentions
from tests.access.helpers import MASTER, Client, World, seed
from tests.experiments.helpers import METRICS
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.needs import import_or_need
from tests.ui.test_browser import _login, _page, browser, shot

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration
__all__ = ["browser"]

EVIL = '<img src=x onerror="window.__xss=1">'
EVIL_ERROR = "<script>window.__xss=2</script> out of memory"
LOSSES = [2.5, 2.1, 1.7, 1.2, 0.9, 0.7]
UPSTREAM = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"}
CONFIG: dict[str, Any] = {
    "models": [
        {"name": "colours-base", "deployments": [{**UPSTREAM, "model": "base"}]},
        {
            "name": "colours-bot",
            "deployments": [
                {**UPSTREAM, "model": "base", "team_adapters": {"team-a": "colours-a"}}
            ],
        },
    ],
    "traces": {"flush_interval": 0.05, "store_bodies": "full"},
    "feedback": {"metrics": METRICS, "flush_interval": 0.05},
    "experiments": [
        {
            "name": "colours-rollout",
            "traffic": {"model": "colours-base", "team_id": "team-a"},
            "unit": "end_user",
            "variants": [{"name": "base"}, {"name": "adapter", "model": "colours-bot"}],
            "metric": "thumbs",
        }
    ],
}
ROWS = [
    {"messages": [{"role": "user", "content": f"what colour is thing {i} ?"}], "output": "blue"}
    for i in range(6)
]


@dataclass(frozen=True, slots=True)
class Tuned:
    base: str
    keys: dict[str, str]
    dataset_id: str


def _job(job_id: str, status: str, team: str, **changes: Any) -> dict[str, Any]:
    now = time.time()
    row: dict[str, Any] = {
        "id": job_id,
        "team_id": team,
        "created_by": "key:lead",
        "created_at": now,
        "updated_at": now,
        "status": status,
        "cancel_requested": 0,
        "dataset_id": "ds_unknown",
        "dataset_version": 1,
        "base": "/models/tiny",
        "base_fingerprint": "f" * 16,
        "adapter": f"{job_id}-adapter",
        "settings": {"rank": 8, "epochs": 3},
        "examples": {"train": 20, "validation": 5},
        "steps": 0,
        "losses": [],
        "metrics": {},
        "tainted_subjects": 0,
    }
    return {**row, **changes}


async def _insert(db: Path, dataset_id: str) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    store = TuningStore(engine)
    evaluation = {
        "scorers": {"exact_match": {"base": 0.0, "adapter": 0.8, "n": 5}},
        "examples": [
            {
                "input": "what colour is the sky ?",
                "expected": "blue",
                "base": EVIL,
                "adapter": "blue",
            }
        ],
    }

    def row(role: str, name: str, quality: float, cost: float) -> dict[str, Any]:
        latency = {"median": 120.0, "p95": 250.0}
        return {"role": role, "name": name, "quality": {"exact": quality},
                "cost_per_1k_usd": cost, "latency_ms": latency}  # fmt: skip

    distilled = {  # the shape `opsgate tuning distill` leaves in a job's metrics
        "id": "dst_1",
        "teacher": EVIL,
        "held_out": 5,
        "reference": "teacher",
        "scorers": ["exact"],
        "rows": [row("teacher", EVIL, 1.0, 0.5), row("student", "colours-a", 0.6, 0.002)],
        "assumptions": {"cpu_hour_usd": 0.05},
    }
    metrics = {
        "validation_before": 2.4,
        "validation_after": 0.8,
        "cpu_seconds": 12.5,
        "evaluation": evaluation,
        "distillation": distilled,
    }
    try:
        done = _job(
            "tj_done",
            "succeeded",
            "team-a",
            dataset_id=dataset_id,
            adapter="colours-a",
            steps=len(LOSSES),
            total_steps=len(LOSSES),
            losses=LOSSES,
            metrics=metrics,
            started_at=time.time() - 60,
            finished_at=time.time(),
        )
        await store.insert_job(done, [])
        adapter = {
            "name": "colours-a",
            "team_id": "team-a",
            "base": "/models/tiny",
            "base_fingerprint": "f" * 16,
            "dataset_id": dataset_id,
            "dataset_version": 1,
            "job_id": "tj_done",
            "metrics": {**metrics, "steps": len(LOSSES), "train": 20, "validation": 5},
            "path": "/tmp/none/adapter",
            "created_by": "key:lead",
            "created_at": time.time(),
            "tainted_at": time.time(),
        }
        await store.insert_adapter(adapter)
        await store.insert_job(_job("tj_queued", "queued", "team-a"), [])
        evil = {"base": f"/models/{EVIL}", "adapter": EVIL, "error": EVIL_ERROR}
        await store.insert_job(_job("tj_evil", "failed", "team-a", **evil), [])
        await store.insert_job(_job("tj_theirs", "running", "team-b", adapter="b-secret"), [])
    finally:
        await dispose_engine(engine)


def _log(folder: Path, lines: list[tuple[str, str]]) -> None:
    """A job's log as the runner keeps it (`tuning.logs.JobLog`)."""
    folder.mkdir(parents=True)
    log = JobLog(folder)
    for stream, text in lines:
        log.add(stream, text, time.time())
    log.write(log.snapshot())


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuned]:
    tmp = tmp_path_factory.mktemp("tuning-ui")
    settings = {"database_url": f"sqlite+aiosqlite:///{tmp / 'gw.db'}", "master_key": MASTER}
    tuning = {"enabled": False, "folder": str(tmp / "tuning")}
    config = make_config({**CONFIG, "settings": settings, "tuning": tuning})
    with GatewayServer(config) as gw:
        admin = Client(gw.base, MASTER, gw)
        world: World = seed(admin)
        lead = admin.as_(world.keys["team_admin:a"])
        made = lead.ok("POST", "/admin/v1/datasets", {"name": "colour-facts", "rows": ROWS})
        dataset_id = str(made["dataset"]["id"])
        _log(tmp / "tuning" / "tj_evil", [("stdout", "loading the base"), ("stderr", EVIL)])
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs a loop in this thread
            pool.submit(asyncio.run, _insert(tmp / "gw.db", dataset_id)).result()
        yield Tuned(gw.base, world.keys, dataset_id)


def _open(browser: Browser, tuned: Tuned, key: str, errors: list[str]) -> Page:
    page = _page(browser, errors)
    _login(page, tuned.base, key)
    return page


def test_jobs_adapters_curve_evaluation_and_lineage(browser: Browser, tuned: Tuned) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _open(browser, tuned, tuned.keys["team_admin:a"], errors)
    page.click("nav >> text=Tuning")
    jobs = page.locator("table.jobs")
    expect(jobs).to_contain_text("tj_done")
    expect(jobs).to_contain_text("tj_queued")
    assert "tj_theirs" not in jobs.inner_text()  # team B's job is out of scope
    done = page.locator("#job-tj_done")
    expect(done.locator(".job-progress")).to_contain_text(f"{len(LOSSES)} / {len(LOSSES)}")
    expect(done).to_contain_text("succeeded")
    expect(done).to_contain_text("12.50")  # CPU seconds
    expect(done).to_contain_text("2.4 → 0.8")
    expect(page.locator("#job-tj_queued")).to_contain_text("0 / ?")

    row = page.locator("#adapter-colours-a")
    expect(row).to_contain_text("tainted")
    lineage = row.locator(".lineage")
    expect(lineage).to_contain_text("colour-facts v1")
    expect(lineage.locator("a.experiment-link")).to_have_text("colours-rollout")
    shot(page, "60-tuning")

    lineage.locator("a.dataset-link").click()
    expect(page.locator("h1")).to_contain_text("colour-facts")
    page.go_back()
    page.locator("#adapter-colours-a a.job-link").click()
    expect(page.locator("#status")).to_have_text("succeeded")
    chart = page.locator("div.chart[data-chart=loss]")
    chart.locator("canvas").wait_for()
    # the training curve plus the two flat validation lines, one point per step each
    assert int(chart.get_attribute("data-points") or "0") == 3 * len(LOSSES)
    expect(page.locator("#val-before")).to_have_text("2.4")
    expect(page.locator("#scorer-exact_match")).to_contain_text("+0.800")
    expect(page.locator("#logs")).to_contain_text("No lines yet")
    student = page.locator("#distillation tr.distill-student")
    expect(student).to_contain_text("colours-a")
    expect(student).to_contain_text("0.600")
    expect(student).to_contain_text("$0.002")
    expect(page.locator("#distillation tr.distill-teacher")).to_contain_text(EVIL)
    expect(page.locator("#evaluation table.examples")).to_contain_text(EVIL)
    expect(page.locator("#job-adapter-card a.experiment-link")).to_have_text("colours-rollout")
    assert page.locator("#live[hx-trigger]").count() == 0  # a final job is not polled
    shot(page, "61-tuning-job")
    assert page.evaluate("window.__xss") is None
    assert errors == [], f"browser errors: {errors}"
    page.context.close()


def test_cancel_and_resume_through_the_page(browser: Browser, tuned: Tuned) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _open(browser, tuned, tuned.keys["team_admin:a"], errors)
    page.goto(f"{tuned.base}/ui/tuning/jobs/tj_queued")
    assert page.locator("#live[hx-trigger]").count() == 1  # a queued job is polled
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[name=cancel]")
    expect(page.locator("#done")).to_have_text("Done: cancel.")
    expect(page.locator("#status")).to_have_text("cancelled")
    page.click("button[name=resume]")
    expect(page.locator("#status")).to_have_text("queued")
    with httpx.Client(base_url=tuned.base, timeout=30) as c:
        auth = {"authorization": f"Bearer {MASTER}"}
        for action in ("tuning.job.cancel", "tuning.job.resume"):
            audit = c.get("/admin/v1/audit", params={"action": action}, headers=auth)
            assert audit.status_code == 200, audit.text
            targets = [e["target"] for e in audit.json()["data"]]
            assert targets == ["tuning_job:tj_queued"], (action, targets)
    # Resuming a queued job is the service's 409, shown as a page, not a 500.
    page.goto(f"{tuned.base}/ui/tuning/jobs/tj_queued")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(
        f"{tuned.base}/ui/tuning/jobs/tj_queued/resume", form={"csrf_token": csrf or ""}
    )
    assert answer.status == 409 and "only a cancelled or failed job" in answer.text()
    assert errors == [], f"browser errors: {errors}"
    page.context.close()


def test_roles_and_team_scope(browser: Browser, tuned: Tuned) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    viewer = _open(browser, tuned, tuned.keys["viewer:a"], errors)
    expect(viewer.locator("header nav")).to_contain_text("Tuning")
    viewer.goto(f"{tuned.base}/ui/tuning/jobs/tj_queued")
    expect(viewer.locator("#status")).to_be_visible()
    assert viewer.locator("button[name=cancel]").count() == 0  # tuning:read only
    # A viewer lacks datasets:read: the dataset is named by id, unlinked.
    viewer.goto(f"{tuned.base}/ui/tuning")
    lineage = viewer.locator("#adapter-colours-a .lineage")
    expect(lineage).to_contain_text(tuned.dataset_id)
    assert lineage.locator("a.dataset-link").count() == 0
    csrf = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    other = viewer.goto(f"{tuned.base}/ui/tuning/jobs/tj_theirs")
    assert other is not None and other.status == 404  # another team's job, as if unknown
    refused = viewer.request.post(
        f"{tuned.base}/ui/tuning/jobs/tj_queued/cancel", form={"csrf_token": csrf or ""}
    )
    assert refused.status == 403
    viewer.context.close()

    member = _open(browser, tuned, tuned.keys["member:a"], errors)
    assert "Tuning" not in member.locator("header nav").inner_text()
    answer = member.goto(f"{tuned.base}/ui/tuning")
    assert answer is not None and answer.status == 403
    member.context.close()

    other_lead = _open(browser, tuned, tuned.keys["team_admin:b"], errors)
    other_lead.goto(f"{tuned.base}/ui/tuning")
    expect(other_lead.locator("table.jobs")).to_contain_text("tj_theirs")
    assert "colours-a" not in other_lead.locator("main").inner_text()
    other_lead.context.close()
    assert errors == [], f"browser errors: {errors}"


def test_names_and_errors_are_escaped(browser: Browser, tuned: Tuned) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _open(browser, tuned, tuned.keys["team_admin:a"], errors)
    page.goto(f"{tuned.base}/ui/tuning")
    expect(page.locator("#job-tj_evil .job-adapter")).to_have_text(EVIL)
    page.goto(f"{tuned.base}/ui/tuning/jobs/tj_evil")
    expect(page.locator("#job-adapter")).to_have_text(EVIL)
    expect(page.locator("#job-base")).to_have_text(f"/models/{EVIL}")
    expect(page.locator("#job-error")).to_have_text(EVIL_ERROR)
    expect(page.locator("#logs .log-stderr")).to_have_text(EVIL)
    expect(page.locator("#logs .log-stdout")).to_have_text("loading the base")
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    assert page.evaluate("window.__xss") is None
    shot(page, "62-tuning-escaped")
    assert errors == [], f"browser errors: {errors}"
    page.context.close()


def test_a_real_job_is_followed_live_to_its_adapter(browser: Browser, tmp_path: Path) -> None:
    """A LoRA job on the tiny Llama, trained for real by the gateway's worker: its page, opened
    while the job waits for the worker, updates itself (htmx polling) until it succeeded."""
    from playwright.sync_api import expect

    import_or_need("torch", "torch's CPU build (scripts/ensure-ml-extras.sh)")
    import_or_need("peft", "the tune extra (peft)")
    from tests.tuning.tiny import ALL_LINEAR, COLOURS, tiny_base

    settings = {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", "master_key": MASTER}
    tuning = {"folder": str(tmp_path / "tuning"), "poll": 0.1, "threads": 1}
    traces = {"flush_interval": 0.05, "store_bodies": "full"}
    config = make_config({"settings": settings, "tuning": tuning, "traces": traces})
    rows = [
        {
            "messages": [{"role": "user", "content": f"what colour is the {thing} {'? ' * n}"}],
            "output": f"the {thing} is {colour}",
        }
        for n in range(1, 5)
        for thing, colour in COLOURS.items()
    ]
    with GatewayServer(config) as gw:
        admin = Client(gw.base, MASTER, gw)
        lead = admin.as_(seed(admin).keys["team_admin:a"])
        lead.ok("POST", "/admin/v1/datasets", {"name": "colours", "rows": rows})
        lora = {"epochs": 5, "batch_size": 4, "learning_rate": 1e-2}
        body = {
            "dataset": "colours",
            "base": str(tiny_base(tmp_path / "base")),
            "adapter": "colours-live",
            "settings": {**lora, "target_modules": list(ALL_LINEAR)},
        }
        job = lead.ok("POST", "/admin/v1/tuning/jobs", body)

        errors: list[str] = []
        page = _page(browser, errors)
        _login(page, gw.base, lead.key or "")
        page.goto(f"{gw.base}/ui/tuning/jobs/{job['id']}")
        assert page.locator("#live[hx-trigger]").count() == 1  # queued or running: polled
        expect(page.locator("#status")).to_have_text("succeeded", timeout=150_000)
        done = lead.ok("GET", f"/admin/v1/tuning/jobs/{job['id']}")
        steps = done["steps"]
        assert steps == done["total_steps"] > 0
        expect(page.locator("#progress")).to_have_text(f"{steps} / {steps}")
        chart = page.locator("div.chart[data-chart=loss]")
        chart.locator("canvas").wait_for()
        assert int(chart.get_attribute("data-points") or "0") == 3 * steps  # curve + 2 lines
        before = done["metrics"]["validation_before"]
        expect(page.locator("#val-before")).to_have_text(f"{before:.4g}")
        card = page.locator("#job-adapter-card")
        expect(card).to_contain_text("colours-live")
        expect(card.locator("a.dataset-link")).to_have_text("colours")
        scorers = done["metrics"]["evaluation"]["scorers"]  # the job's own base vs adapter
        assert scorers, done["metrics"]
        for name, figures in scorers.items():
            expect(page.locator(f"#scorer-{name}")).to_contain_text(f"{figures['adapter']:.3f}")
        page.reload()  # the log as saved when the worker ended
        expect(page.locator("#logs")).to_contain_text('"event":"start"')
        expect(page.locator("#card summary")).to_contain_text("Data card")
        shot(page, "63-tuning-real-job")
        page.goto(f"{gw.base}/ui/tuning")
        expect(page.locator("#adapter-colours-live")).to_contain_text(job["id"])
        assert errors == [], f"browser errors: {errors}"
        page.context.close()


def _experiment(*variants: dict[str, Any]) -> Experiment:
    spec = ExperimentConfig.model_validate(
        {
            "name": "e1",
            "traffic": {"model": "base-model"},
            "variants": [{"name": "control"}, *variants],
            "metric": "thumbs",
        }
    )
    return Experiment(spec, "team-a", "config", "running", 0.0, 0.0, 0.0)


def test_which_experiments_mention_an_adapter_and_what_an_evaluation_shows() -> None:
    by_model = _experiment({"name": "tuned", "model": "colours-a"})
    by_param = _experiment({"name": "tuned", "params": {"adapter": "colours-a"}})
    other = _experiment({"name": "tuned", "model": "colours-b", "params": {"x": "colours-ab"}})
    assert [mentions(e, "colours-a", {}) for e in (by_model, by_param, other)] == [
        True,
        True,
        False,
    ]
    # A job's evaluation *settings* (which scorers to run) are no results: nothing to show.
    assert evaluation({"evaluation": {"scorers": [{"name": "exact"}]}}) is None
    assert evaluation({}) is None and evaluation(None) is None
    shown = evaluation(
        {"evaluation": {"n": 4, "scorers": {"exact": {"base": 0.25, "adapter": 1.0, "scored": 4}}}}
    )
    assert shown is not None and shown["n"] == 4
    failing = evaluation({"evaluation": {"scorers": {"judge": {"scored": 0, "failed": 8}}}})
    assert failing is not None and failing["scorers"][0]["failed"] == 8
    assert shown["scorers"] == [
        {"name": "exact", "base": 0.25, "adapter": 1.0, "delta": 0.75, "n": 4, "failed": None}
    ]
