"""`python -m bench [gateway|choices|all|profile|traces]` — see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

from rich.console import Console

from bench.docs import DOCS_PATH, machine_note, update_section
from bench.loadgen import tool_name
from bench.measure import Settings
from bench.servers import ASGI_SERVERS

console = Console()
if not console.is_terminal and console.width < 132:
    console = Console(width=132)  # piped output: keep the tables on one line each


def progress(message: str) -> None:
    console.print(f"[dim]… {message}[/]", highlight=False)


BENCHES = (
    "gateway",
    "choices",
    "all",
    "profile",
    "traces",
    "access",
    "hotpath",
    "stages",
    "cache",
    "ui",
    "guard-pii",
    "guard",
    "baseline",
    "evals",
    "feedback",
    "datasets",
    "prompts",
    "online",
    "experiments",
    "best-of",
    "drift",
    "drift-gateway",
    "local",
    "quant",
    "rag",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "which",
        nargs="?",
        default="gateway",
        choices=BENCHES,
        help="gateway (default): gateway vs direct upstream; choices: ASGI "
        "server, HTTP client, JSON; all: both; profile: py-spy the gateway; traces: trace "
        "writer throughput, tracing overhead, rollups over --rows traces; access: what auth, "
        "rate limits and budgets add per request (in-memory and Redis); hotpath: direct, bare "
        "forwarder, gateway and gateway with key + limits + budget + traces at c=1, c=32 and "
        "c=64 behind a 50 ms upstream, with CPU per request and event-loop lag; stages: each chat "
        "pipeline stage's own µs per request; ui: dashboard page "
        "render times over --rows traces; guard-pii: the PII detectors on the dev set; "
        "guard: the injection detector's held-out quality and scan() latency; evals: an eval "
        "run's rows/s through the gateway and the hallucination detector's latency; feedback: "
        "POST /v1/feedback scores/s and latency (SQLite, PostgreSQL), chat with feedback on/off; "
        "datasets: building datasets from --rows scored traces, a 100k-row export's memory; "
        "prompts: prompt resolution and rendering, prompt requests' throughput against plain; "
        "experiments: A/A, power and bandit simulations of the statistics, a real-gateway "
        "A/B with simulated users and feedback, stickiness across reload and replicas; "
        "best-of: best-of-n's valid-JSON rate, latency and cost on a 40%%-invalid upstream; "
        "online: c=32 throughput with online scoring of 5%% of answers against none; local: "
        "the local model's tokens/s and TTFT at c=1 and 4, direct vs through the gateway; "
        "quant: the local model requantised from Q4_1 to other llama.cpp types, each measured "
        "for size, memory, tokens/s and quality against Q4_1 (about 20 min); "
        "drift: the drift tests' false-alarm rate and power on the question sets; "
        "drift-gateway: a topic shift detected end to end through the gateway (about 2 min)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per target")
    parser.add_argument("--seconds", type=int, default=2, help="seconds per round (whole)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per target")
    parser.add_argument(
        "--server",
        choices=ASGI_SERVERS,
        default="uvicorn",
        help="ASGI server for the gateway benchmark",
    )
    parser.add_argument(
        "--load-client",
        choices=["aiohttp", "httpx"],
        default=None,
        help="use the Python load client even when wrk is installed",
    )
    parser.add_argument(
        "--no-bare", action="store_true", help="skip the bare Python proxy column (faster)"
    )
    parser.add_argument("--stream", action="store_true", help="profile: stream instead of JSON")
    parser.add_argument(
        "--ref", default="HEAD~1", help="baseline: the git commit to compare this tree with"
    )
    parser.add_argument(
        "--concurrency", default="1,32", help="baseline: concurrencies, comma-separated"
    )
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="baseline: the fake upstream's answer delay"
    )
    parser.add_argument("--no-docs", action="store_true", help=f"do not update {DOCS_PATH}")
    parser.add_argument("--profile-dir", type=Path, default=Path("/tmp/opsgate-profile"))
    parser.add_argument(
        "--rows",
        type=int,
        default=1_000_000,
        help="traces: synthetic traces for the rollups (0 skips)",
    )
    parser.add_argument(
        "--parts", default="writer,gateway,rollups", help="traces: which parts, comma-separated"
    )
    parser.add_argument(
        "--cache-parts", default="stage,http,ann,quality,quant", help="cache: parts"
    )
    parser.add_argument("--ann-sizes", default="10000,100000,1000000", help="cache: ANN entries")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/opsgate-bench-cache"))
    parser.add_argument("--writer-records", type=int, default=10_000, help="traces: per round")
    parser.add_argument("--no-pg", action="store_true", help="traces, feedback: SQLite only")
    parser.add_argument(
        "--transformer",
        type=Path,
        default=None,
        help="guard: also score this local Hugging Face model folder (transformer backend)",
    )
    parser.add_argument(
        "--rag-parts",
        default="embedded,minilm-ingest,embed,pgvector,request",
        help="rag: which parts, comma-separated (request also runs embedded)",
    )
    parser.add_argument("--eval-rows", type=int, default=1_000, help="evals: dataset rows")
    parser.add_argument(
        "--honest-limit",
        type=float,
        default=60.0,
        help="traces: load with write_batch while that takes at most this many s for all rows",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings(
        rounds=max(1, args.rounds),
        seconds=max(1, args.seconds),
        warmup=max(1, args.warmup),
        load_client=args.load_client,
    )
    note = machine_note(tool_name(args.load_client))
    console.print(note, highlight=False)
    started = time.monotonic()
    if args.which == "profile":
        from bench.pyspy import print_profile, run_profile

        print_profile(run_profile(args.profile_dir, stream=args.stream), console)
        return 0
    if args.which in ("gateway", "all"):
        from bench.gateway import run_gateway
        from bench.report import gateway_grids, gateway_markdown, print_grids

        run = run_gateway(settings, args.server, progress=progress, with_bare=not args.no_bare)
        print_grids(gateway_grids(run), console)
        if not args.no_docs:
            update_section(f"gateway-{args.server}", gateway_markdown(run, note))
    if args.which == "baseline":
        from bench.baseline import baseline_grid, run_baseline
        from bench.report import grids_markdown, print_grids

        concurrencies = tuple(int(c) for c in args.concurrency.split(","))
        rows = run_baseline(args.ref, settings, progress, concurrencies, args.delay_ms)
        grid = baseline_grid(args.ref, rows, args.delay_ms)
        print_grids([grid], console)
        if not args.no_docs:
            update_section("baseline", "\n".join([note, *grids_markdown([grid])]))
    if args.which == "traces":
        from bench.report import print_grids
        from bench.traces import PARTS, TracesOptions, run_traces
        from bench.traces_report import traces_grids, traces_markdown

        parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
        if unknown := set(parts) - set(PARTS):
            raise RuntimeError(f"unknown --parts {sorted(unknown)}; choose from {PARTS}")
        options = TracesOptions(
            settings,
            rows=max(0, args.rows),
            writer_records=max(1, args.writer_records),
            parts=parts,
            with_pg=not args.no_pg,
            server=args.server,
            honest_limit_s=args.honest_limit,
        )
        traced = run_traces(options, progress=progress)
        print_grids(traces_grids(traced), console)
        if not args.no_docs:
            update_section("traces", traces_markdown(traced, note))
    if args.which == "hotpath":
        from bench.hotpath import hotpath_grids, run_hotpath
        from bench.report import grids_markdown, print_grids

        grids = hotpath_grids(run_hotpath(settings, progress=progress))
        print_grids(grids, console)
        if not args.no_docs:
            update_section("hotpath", "\n".join([note, *grids_markdown(grids)]))
    if args.which == "stages":
        from bench.report import grids_markdown, print_grids
        from bench.stages import run_stages, stages_grid

        grid = stages_grid(run_stages(max(2.0, settings.rounds * settings.seconds * 2)))
        print_grids([grid], console)
        if not args.no_docs:
            update_section("stages", "\n".join([note, *grids_markdown([grid])]))
    if args.which == "access":
        from bench.access import access_grids, access_markdown, run_access
        from bench.report import print_grids

        access = run_access(settings.rounds, settings.seconds, progress)
        print_grids(access_grids(access), console)
        if not args.no_docs:
            update_section("access", access_markdown(access, note))
    if args.which == "ui":
        from bench.report import print_grids
        from bench.ui import run_ui, ui_grids, ui_markdown

        ui = run_ui(max(1, args.rows), max(3, settings.rounds * 2 + 1), progress)
        print_grids(ui_grids(ui), console)
        if not args.no_docs:
            update_section("ui", ui_markdown(ui, note))
    if args.which == "guard-pii":
        from bench.guard_pii import pii_grids, pii_markdown, run_guard_pii
        from bench.report import print_grids

        pii = run_guard_pii()
        print_grids(pii_grids(pii), console)
        if not args.no_docs:
            update_section("guard-pii", pii_markdown(pii, note))
        if importlib.util.find_spec("presidio_analyzer") is not None:
            from bench.guard_ner import ner_grids, ner_markdown, run_ner

            progress("guard-pii: Presidio with the NER model")
            ner = run_ner()
            print_grids(ner_grids(ner), console)
            if not args.no_docs:
                update_section("guard-ner", ner_markdown(ner, note))
    if args.which == "cache":
        from bench.cache import main_cache

        main_cache(args, note, console, progress)
    if args.which == "guard":
        from bench.guard import main_guard

        main_guard(args, note, console, progress)
    if args.which == "experiments":
        from bench.experiments import experiments_grids, experiments_markdown, run_experiments
        from bench.report import print_grids

        studied = run_experiments(progress)
        print_grids(experiments_grids(studied), console)
        if not args.no_docs:
            update_section("experiments", experiments_markdown(studied, note))
    if args.which == "best-of":
        from bench.best_of import main_best_of

        main_best_of(args, note, console, progress)
    if args.which == "drift":
        from bench.drift import drift_grids, drift_markdown, run_drift
        from bench.report import print_grids

        drifted = run_drift(progress)
        print_grids(drift_grids(drifted), console)
        if not args.no_docs:
            update_section("drift", drift_markdown(drifted, note))
    if args.which == "drift-gateway":
        from bench.drift_gateway import (
            drift_gateway_grids,
            drift_gateway_markdown,
            run_drift_gateway,
        )
        from bench.report import print_grids

        watched = run_drift_gateway(progress)
        print_grids(drift_gateway_grids(watched), console)
        if not args.no_docs:
            update_section("drift-gateway", drift_gateway_markdown(watched, note))
    if args.which == "prompts":
        from bench.prompts import prompts_grids, prompts_markdown, run_prompts
        from bench.report import print_grids

        prompted = run_prompts(settings, progress)
        print_grids(prompts_grids(prompted), console)
        if not args.no_docs:
            update_section("prompts", prompts_markdown(prompted, note))
    if args.which == "evals":
        from bench.evals import main_evals

        main_evals(args, note, console, progress)
    if args.which == "online":
        from bench.online import main_online

        main_online(args, note, console, progress)
    if args.which == "rag":
        from bench.rag import main_rag

        main_rag(args, note, console, progress)
    if args.which == "local":
        from bench.local import main_local

        main_local(args, note, console, progress)
    if args.which == "quant":
        from bench.quant import main_quant

        main_quant(args, note, console, progress)
    if args.which == "feedback":
        from bench.feedback import main_feedback

        main_feedback(args, note, console, progress)
    if args.which == "datasets":
        from bench.datasets import main_datasets

        main_datasets(args, note, console, progress)
    if args.which in ("choices", "all"):
        from bench.choices import run_choices
        from bench.report import choices_grids, choices_markdown, print_grids

        choices = run_choices(settings, progress=progress)
        print_grids(choices_grids(choices), console)
        if not args.no_docs:
            update_section("choices", choices_markdown(choices, note))
    console.print(
        f"done in {time.monotonic() - started:.0f} s"
        + ("" if args.no_docs else f"; figures written to {DOCS_PATH}")
    )
    return 0


def run() -> int:
    """`main` with the usual exits: 130 on Ctrl-C, 1 with a message when a server or load
    generator fails (every process it started is stopped either way)."""
    from bench.procs import ServerError

    try:
        return main()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]; servers stopped")
        return 130
    except (ServerError, RuntimeError) as exc:
        console.print(f"[bold red]benchmark failed:[/] {exc}", highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(run())
