"""`python -m bench experiments`: the experiments' statistics and assignment, proved by simulation.

Two kinds of runs, said apart in every table:

- **In-process simulations of the statistics** (the same `opsgate.experiments.stats` functions
  and decision rule the gateway uses, fed simulated Bernoulli units; thousands of experiments
  in seconds):
  1. A/A: `AA_RUNS` experiments with true rates 0.5 and 0.5, looked at after every `PEEK`
     units per arm up to `AA_HORIZON`: the share that ever declares a winner (must be at most
     alpha), with its Wilson 95% interval; beside it, a fixed-horizon z-test looked at as often.
  2. A/B: true rates 0.50 vs 0.55 and 0.50 vs 0.60: power (the right winner within the
     horizon), the wrong winner's share (at most alpha/2), median units per arm to a decision.
  3. Thompson sampling (floor 0.05, re-allocated every `BANDIT_BATCH` units) against a fixed
     50/50 split on the same populations: cumulative regret and the share of traffic on the
     better variant over time (a PNG plot, docs/img/experiments-bandit.png).
- **The real gateway** (`opsgate serve` subprocesses, the fake upstream, feedback posted through
  `POST /v1/feedback` by simulated users whose true satisfaction per variant is known):
  4. one A/B experiment (true rates 0.45 vs 0.65) run until the gateway's own decision, read
     from `GET /admin/v1/experiments/{name}` as users arrive; and one A/A run to its horizon;
  5. stickiness: the variant of 300 end users before and after a config reload, and on a
     second replica: the number of units that switched.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.report import Grid
from bench.servers import MODEL, fake_upstream, gateway
from bench.stats import median
from opsgate.experiments.stats import Summary, difference, thompson_weights

Progress = Callable[[str], None]
ALPHA = 0.05
TAU = 0.05  # the default mixture scale of a boolean metric (decide.default_tau)
MIN_UNITS = 100
PEEK = 50
AA_RUNS = 500
AA_HORIZON = 5_000
AB_RUNS = 300
AB_HORIZON = 10_000
BANDIT_UNITS = 20_000
BANDIT_BATCH = 500
BANDIT_REPS = 40
E2E_MAX_USERS = 3_000
STICKY_USERS = 300
PLOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "experiments-bandit.png"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Sequential:
    """One simulated experiment: when (units per arm) and what it decided; None: nothing."""

    at: int | None
    winner: str | None


def run_sequential(a: np.ndarray, b: np.ndarray) -> tuple[Sequential, bool]:
    """Peek every `PEEK` units per arm with the gateway's rule (min units, then p <= alpha);
    also whether a naive fixed-horizon z-test would ever have said |z| > 1.96."""
    ca, cb = np.cumsum(a), np.cumsum(b)
    naive = False
    for n in range(PEEK, len(a) + 1, PEEK):
        sa, sb = Summary.of_counts(int(ca[n - 1]), n), Summary.of_counts(int(cb[n - 1]), n)
        found = difference(sa, sb, TAU, ALPHA)
        if abs(found.estimate) > 1.96 * math.sqrt(sa.se2 + sb.se2):
            naive = True
        if n >= MIN_UNITS and found.p_value <= ALPHA:
            return Sequential(n, "b" if found.estimate > 0 else "a"), True
    return Sequential(None, None), naive


@dataclass(slots=True)
class SimResult:
    name: str
    p_a: float
    p_b: float
    runs: int
    decided: list[Sequential]
    naive_hits: int = 0

    def share(self, winner: str | None) -> float:
        return sum(d.winner == winner for d in self.decided) / self.runs

    def any_winner(self) -> int:
        return sum(d.winner is not None for d in self.decided)


def simulate(name: str, p_a: float, p_b: float, runs: int, horizon: int, seed: int) -> SimResult:
    rng = np.random.default_rng(seed)
    out = SimResult(name, p_a, p_b, runs, [])
    for _ in range(runs):
        a = rng.random(horizon) < p_a
        b = rng.random(horizon) < p_b
        found, naive = run_sequential(a, b)
        out.decided.append(found)
        out.naive_hits += naive
    return out


@dataclass(slots=True)
class BanditResult:
    p: tuple[float, float]
    steps: list[int]
    regret: dict[str, list[float]]
    """policy -> mean cumulative regret after each step."""
    better_share: dict[str, list[float]]
    """policy -> mean share of units on the better variant in each batch."""


def simulate_bandit(p: tuple[float, float], seed: int) -> BanditResult:
    """Thompson (floor 0.05) vs 50/50 on the same arrivals: expected regret per unit is the
    gap between the best rate and the assigned variant's rate."""
    rng = np.random.default_rng(seed)
    best = int(np.argmax(p))
    gap = abs(p[0] - p[1])
    steps = list(range(BANDIT_BATCH, BANDIT_UNITS + 1, BANDIT_BATCH))
    regret = {"thompson": np.zeros(len(steps)), "fixed 50/50": np.zeros(len(steps))}
    share = {"thompson": np.zeros(len(steps)), "fixed 50/50": np.zeros(len(steps))}
    for rep in range(BANDIT_REPS):
        for policy in regret:
            x, n = [0, 0], [0, 0]
            weights = [0.5, 0.5]
            total = 0.0
            for i, _ in enumerate(steps):
                arms = (rng.random(BANDIT_BATCH) >= weights[0]).astype(int)
                outcomes = rng.random(BANDIT_BATCH) < np.where(arms == 1, p[1], p[0])
                for arm in (0, 1):
                    n[arm] += int((arms == arm).sum())
                    x[arm] += int(outcomes[arms == arm].sum())
                on_best = float((arms == best).mean())
                total += gap * (1 - on_best) * BANDIT_BATCH
                regret[policy][i] += total
                share[policy][i] += on_best
                if policy == "thompson":
                    summaries = [Summary.of_counts(x[0], n[0]), Summary.of_counts(x[1], n[1])]
                    weights = thompson_weights(
                        summaries, boolean=True, floor=0.05, draws=2000, seed=rep * 1000 + i
                    )
    return BanditResult(
        p,
        steps,
        {k: list(v / BANDIT_REPS) for k, v in regret.items()},
        {k: list(v / BANDIT_REPS) for k, v in share.items()},
    )


def plot_bandits(results: list[BanditResult], path: Path) -> Path | None:
    """Cumulative regret and traffic on the better variant; None without matplotlib (the
    `bench` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(2, len(results), figsize=(5.5 * len(results), 7), squeeze=False)
    for col, r in enumerate(results):
        title = f"true rates {r.p[0]:.2f} vs {r.p[1]:.2f}"
        for policy, values in r.regret.items():
            axes[0][col].plot(r.steps, values, label=policy)
        axes[0][col].set_title(f"cumulative regret, {title}")
        axes[0][col].set_xlabel("units")
        axes[0][col].legend()
        for policy, values in r.better_share.items():
            axes[1][col].plot(r.steps, values, label=policy)
        axes[1][col].set_title("share of units on the better variant")
        axes[1][col].set_xlabel("units")
        axes[1][col].set_ylim(0, 1)
        axes[1][col].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --- the real gateway ------------------------------------------------------------------------


def _config(name: str, database: Path, extra: str = "") -> str:
    return (
        f"settings: {{database_url: 'sqlite:///{database}'}}\n"
        "traces: {flush_interval: 0.05}\n"
        "feedback:\n  metrics: {thumbs: {type: boolean}}\n  flush_interval: 0.05\n"
        "experiments:\n"
        f"  - name: {name}\n"
        f"    traffic: {{model: {MODEL}}}\n"
        "    unit: end_user\n"
        "    variants: [{name: a}, {name: b, params: {temperature: 0.3}}]\n"
        "    metric: thumbs\n"
        f"    min_units: {MIN_UNITS}\n" + extra
    )


@dataclass(slots=True)
class E2E:
    name: str
    rates: dict[str, float]
    users: int = 0
    decision: str = "running"
    decided_at_units: int | None = None
    seconds: float = 0.0
    per_variant: dict[str, int] = field(default_factory=dict)


async def _user(
    client: httpx.AsyncClient, user: str, rates: dict[str, float], rng: np.random.Generator
) -> str:
    body = {"model": MODEL, "user": user, "messages": [{"role": "user", "content": "hi"}]}
    resp = await client.post("/v1/chat/completions", json=body)
    resp.raise_for_status()
    variant = resp.headers["x-opsgate-variant"]
    satisfied = bool(rng.random() < rates[variant])
    feedback = {"trace_id": resp.headers["x-opsgate-trace-id"], "metric": "thumbs"}
    sent = await client.post("/v1/feedback", json={**feedback, "value": satisfied})
    sent.raise_for_status()
    return variant


async def drive(base: str, run: E2E, seed: int, max_users: int) -> E2E:
    """Simulated users, 16 at a time, until the gateway decides or `max_users` have come."""
    rng = np.random.default_rng(seed)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        while run.users < max_users:
            batch = [f"{run.name}-user-{run.users + i}" for i in range(100)]
            for chunk in range(0, len(batch), 16):
                got = await asyncio.gather(
                    *(_user(client, u, run.rates, rng) for u in batch[chunk : chunk + 16])
                )
                for v in got:
                    run.per_variant[v] = run.per_variant.get(v, 0) + 1
            run.users += len(batch)
            await asyncio.sleep(0.3)  # traces and scores reach the database in the background
            report = (await client.get(f"/admin/v1/experiments/{run.name}")).json()
            if report["decision"] != "running":
                run.decision = report["decision"]
                run.decided_at_units = min(v["scored_units"] for v in report["stats"]["variants"])
                break
    run.seconds = time.monotonic() - started
    return run


async def _variants(base: str, users: list[str]) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        out: dict[str, str] = {}
        for chunk in range(0, len(users), 16):
            part = users[chunk : chunk + 16]
            resps = await asyncio.gather(
                *(
                    client.post(
                        "/v1/chat/completions",
                        json={
                            "model": MODEL,
                            "user": u,
                            "messages": [{"role": "user", "content": "x"}],
                        },
                    )
                    for u in part
                )
            )
            out |= {
                u: r.headers.get("x-opsgate-variant", "") for u, r in zip(part, resps, strict=True)
            }
        return out


@dataclass(slots=True)
class Sticky:
    users: int
    after_reload: int
    other_replica: int
    split: dict[str, int]


@contextlib.contextmanager
def _gateways(config: str, count: int) -> Iterator[list[str]]:
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(fake_upstream())
        bases = [
            stack.enter_context(gateway(upstream, extra_config=config, name=f"replica {i + 1}")).url
            for i in range(count)
        ]
        yield bases


def run_gateway_runs(progress: Progress) -> tuple[list[E2E], Sticky]:
    with tempfile.TemporaryDirectory(prefix="bench-experiments-") as tmp:
        database = Path(tmp) / "shared.db"
        runs = []
        with _gateways(_config("e2e-ab", database), 2) as (one, two):
            progress("real gateway: A/B 0.45 vs 0.65 until the gateway decides")
            runs.append(
                asyncio.run(drive(one, E2E("e2e-ab", {"a": 0.45, "b": 0.65}), 1, E2E_MAX_USERS))
            )
            progress("real gateway: stickiness across a reload and a second replica")
            users = [f"sticky-{i}" for i in range(STICKY_USERS)]
            before = asyncio.run(_variants(one, users))
            with httpx.Client(base_url=one, timeout=60) as c:
                c.post("/admin/v1/config/reload").raise_for_status()
            after = asyncio.run(_variants(one, users))
            other = asyncio.run(_variants(two, users))
            split: dict[str, int] = {}
            for v in before.values():
                split[v] = split.get(v, 0) + 1
            sticky = Sticky(
                len(users),
                sum(before[u] != after[u] for u in users),
                sum(before[u] != other[u] for u in users),
                split,
            )
    with (
        tempfile.TemporaryDirectory(prefix="bench-experiments-aa-") as tmp,
        _gateways(_config("e2e-aa", Path(tmp) / "aa.db"), 1) as (one,),
    ):
        progress("real gateway: A/A 0.5 vs 0.5 to 1,000 users")
        runs.append(asyncio.run(drive(one, E2E("e2e-aa", {"a": 0.5, "b": 0.5}), 2, 1_000)))
    return runs, sticky


# --- the whole bench -------------------------------------------------------------------------


@dataclass(slots=True)
class ExperimentsRun:
    aa: SimResult
    ab: list[SimResult]
    bandits: list[BanditResult]
    plot: Path | None
    e2e: list[E2E]
    sticky: Sticky
    seconds: dict[str, float]


def run_experiments(progress: Progress) -> ExperimentsRun:
    seconds: dict[str, float] = {}
    t = time.monotonic()
    progress(f"A/A: {AA_RUNS} simulated experiments, a look every {PEEK} units per arm")
    aa = simulate("A/A", 0.5, 0.5, AA_RUNS, AA_HORIZON, seed=7)
    seconds["aa"] = time.monotonic() - t
    t = time.monotonic()
    ab = []
    for p_b, seed in ((0.55, 11), (0.60, 13)):
        progress(f"A/B 0.50 vs {p_b:.2f}: {AB_RUNS} simulated experiments")
        ab.append(simulate(f"A/B 0.50 vs {p_b:.2f}", 0.5, p_b, AB_RUNS, AB_HORIZON, seed))
    seconds["ab"] = time.monotonic() - t
    t = time.monotonic()
    progress(f"Thompson vs 50/50: {BANDIT_REPS} repetitions of {BANDIT_UNITS:,} units")
    bandits = [simulate_bandit((0.5, 0.55), 21), simulate_bandit((0.5, 0.6), 23)]
    plot = plot_bandits(bandits, PLOT)
    seconds["bandit"] = time.monotonic() - t
    t = time.monotonic()
    e2e, sticky = run_gateway_runs(progress)
    seconds["gateway"] = time.monotonic() - t
    return ExperimentsRun(aa, ab, bandits, plot, e2e, sticky, seconds)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def experiments_grids(run: ExperimentsRun) -> list[Grid]:
    aa = run.aa
    k = aa.any_winner()
    low, high = wilson(k, aa.runs)
    naive_low, naive_high = wilson(aa.naive_hits, aa.runs)
    grids = [
        Grid(
            "Simulated (in-process statistics): A/A with continuous peeking",
            ("test", "experiments", "declared a winner", "rate", "95% interval (Wilson)"),
            [
                (
                    f"mSPRT, alpha {ALPHA}, min {MIN_UNITS} units",
                    str(aa.runs),
                    str(k),
                    _pct(k / aa.runs),
                    f"{_pct(low)} to {_pct(high)}",
                ),
                (
                    "fixed-horizon z-test, same looks",
                    str(aa.runs),
                    str(aa.naive_hits),
                    _pct(aa.naive_hits / aa.runs),
                    f"{_pct(naive_low)} to {_pct(naive_high)}",
                ),
            ],
            [f"a look every {PEEK} units per arm up to {AA_HORIZON:,}; true rates 0.5 and 0.5"],
        ),
    ]
    rows: list[tuple[str, ...]] = []
    for r in run.ab:
        times = [d.at for d in r.decided if d.at is not None and d.winner == "b"]
        rows.append(
            (
                r.name,
                str(r.runs),
                _pct(r.share("b")),
                _pct(r.share("a")),
                f"{median(times):,.0f}" if times else "-",
                _pct(1 - r.share("b") - r.share("a")),
            )
        )
    grids.append(
        Grid(
            "Simulated (in-process statistics): A/B power",
            (
                "true rates",
                "experiments",
                "power (b wins)",
                "wrong winner",
                "median units/arm",
                "undecided",
            ),
            rows,
            [
                f"horizon {AB_HORIZON:,} units per arm; the wrong winner must stay at or below "
                f"alpha/2 = {ALPHA / 2}"
            ],
        )
    )
    rows = []
    for b in run.bandits:
        for policy in b.regret:
            rows.append(
                (
                    f"{b.p[0]:.2f} vs {b.p[1]:.2f}",
                    policy,
                    f"{b.regret[policy][-1]:,.0f}",
                    _pct(b.better_share[policy][len(b.steps) // 2]),
                    _pct(b.better_share[policy][-1]),
                )
            )
    grids.append(
        Grid(
            "Simulated: Thompson sampling (floor 0.05) vs fixed 50/50",
            (
                "true rates",
                "policy",
                f"regret after {BANDIT_UNITS:,}",
                "on better, midway",
                "on better, end",
            ),
            rows,
            [f"mean of {BANDIT_REPS} repetitions; re-allocated every {BANDIT_BATCH} units"]
            + (
                ["plot: docs/img/experiments-bandit.png"]
                if run.plot
                else ["plot: matplotlib missing (the bench extra)"]
            ),
        )
    )
    rows = [
        (
            e.name,
            " vs ".join(f"{v}={p}" for v, p in e.rates.items()),
            str(e.users),
            ", ".join(f"{v}: {n}" for v, n in sorted(e.per_variant.items())),
            e.decision,
            str(e.decided_at_units or "-"),
            f"{e.seconds:.0f}",
        )
        for e in run.e2e
    ]
    grids.append(
        Grid(
            "Real gateway: simulated users, feedback through POST /v1/feedback",
            (
                "experiment",
                "true rates",
                "users",
                "per variant",
                "gateway's decision",
                "scored units/arm at decision",
                "s",
            ),
            rows,
        )
    )
    s = run.sticky
    grids.append(
        Grid(
            "Real gateway: stickiness",
            ("end users", "split", "switched after reload", "switched on replica 2"),
            [
                (
                    str(s.users),
                    ", ".join(f"{k}: {v}" for k, v in sorted(s.split.items())),
                    str(s.after_reload),
                    str(s.other_replica),
                )
            ],
        )
    )
    return grids


def experiments_markdown(run: ExperimentsRun, note: str) -> str:
    from bench.report import grids_markdown

    parts = [note, *grids_markdown(experiments_grids(run))]
    if run.plot is not None:
        parts.append(
            "![Thompson sampling vs 50/50: regret and traffic on the better variant]"
            "(img/experiments-bandit.png)"
        )
    return "\n\n".join(parts)
