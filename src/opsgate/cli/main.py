"""The `opsgate` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from opsgate._version import __version__
from opsgate.cli.access import register as register_access_commands
from opsgate.cli.cache import register as register_cache_commands
from opsgate.cli.client import call
from opsgate.cli.compliance import register as register_compliance_commands
from opsgate.cli.datasets import register as register_dataset_commands
from opsgate.cli.distill import register as register_distill_commands
from opsgate.cli.drift import register as register_drift_commands
from opsgate.cli.evals import register as register_eval_commands
from opsgate.cli.experiments import register as register_experiment_commands
from opsgate.cli.feedback import register as register_feedback_commands
from opsgate.cli.guard import register as register_guard_commands
from opsgate.cli.knowledge import register as register_knowledge_commands
from opsgate.cli.local import register as register_local_commands
from opsgate.cli.prompts import register as register_prompt_commands
from opsgate.cli.review import register as register_review_commands
from opsgate.cli.traces import register as register_read_commands
from opsgate.cli.tuning import register as register_tuning_commands
from opsgate.cli.wait import register as register_wait_command
from opsgate.config.loader import ConfigError, load_config
from opsgate.config.schema import Config

app = typer.Typer(help="opsgate: an LLMOps gateway.", no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Check and reload the config.", no_args_is_help=True)
app.add_typer(config_app, name="config")
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (default: $OPSGATE_CONFIG or built-in)"),
]


def _load(path: Path | None) -> Config:
    """Load and fully check a config (providers too), or exit 2 listing every problem."""
    from opsgate.routing.build import check_providers

    try:
        config = load_config(path)
        check_providers(config, str(path) if path else "<built-in default>")
    except ConfigError as exc:
        err.print(f"[bold red]config error[/] in {exc.source}:")
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    return config


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="bind address (default from config)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8080 or $OPSGATE_PORT)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Start the gateway (uvicorn with uvloop and httptools)."""
    import uvicorn

    loaded = _load(config)
    if config is not None:
        os.environ["OPSGATE_CONFIG"] = str(config.resolve())
    if workers > 1:
        _share_metrics_across_workers()
    bind_host = host or loaded.server.host
    bind_port = port if port is not None else loaded.server.port
    names = ", ".join(m.name for m in loaded.models)
    err.print(f"opsgate {__version__} on http://{bind_host}:{bind_port}/v1  models: {names}")
    if any(d.provider == "simulator" for m in loaded.models for d in m.deployments):
        err.print("[yellow]the simulator provider is on: its answers are simulated[/]")
    uvicorn.run(
        "opsgate.app:app_from_env",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


def _share_metrics_across_workers() -> None:
    """Prometheus multiprocess mode: every worker writes to one folder, /metrics merges it."""
    import tempfile

    from opsgate.telemetry.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    path = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="opsgate-metrics-")
    os.environ[MULTIPROC_ENV] = path
    prepare_multiprocess_dir(path)


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate a config file and print each error with its path."""
    loaded = _load(config)
    table = Table("model", "kind", "deployments")
    for m in loaded.models:
        deps = ", ".join(f"{d.provider}:{d.model}" for d in m.deployments)
        table.add_row(m.name, m.kind, deps)
    out.print(table)
    out.print(f"[green]ok[/]: {len(loaded.models)} models, strategy {loaded.router.strategy}")


@config_app.command("reload")
def config_reload(
    config: ConfigOpt = None,
    url: Annotated[str, typer.Option(help="the running gateway")] = "http://127.0.0.1:8080",
) -> None:
    """Validate the config here, then ask the running gateway to reload it (or `kill -HUP`)."""
    if config is not None or os.environ.get("OPSGATE_CONFIG"):
        _load(config)
    body = call(url, "POST", "/admin/v1/config/reload")
    out.print(f"[green]reloaded[/] {body['source']}: models {', '.join(body['models'])}")


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"opsgate {__version__} (Python {sys.version.split()[0]})")


register_read_commands(app)  # traces, usage, db
register_access_commands(app)  # keys, teams, users
register_cache_commands(app)  # cache, models
register_compliance_commands(app)  # audit, gdpr, keys rotate-encryption
register_guard_commands(app)  # guard eval, guard scan
register_prompt_commands(app)  # prompts push, pull, list, show, diff, promote, rollback
register_eval_commands(app)  # eval hallucination, eval run
register_feedback_commands(app)  # feedback send, list
register_review_commands(app)  # review queues, create, show, fill, delete
register_dataset_commands(app)  # datasets create, list, show, add, remove, export, import
register_experiment_commands(app)  # experiments create, list, show, pause, resume, stop, promote
register_knowledge_commands(app)  # kb create, list, ingest, docs, search, delete
register_drift_commands(app)  # drift monitors, run, compare, proposals, accept, dismiss
register_tuning_commands(app)  # tuning create, jobs, show, cancel, resume, adapters, ...
register_distill_commands(app)  # tuning distill, distillation(s); tune distill
register_local_commands(app)  # local quantize
register_wait_command(app)  # wait


def main() -> None:
    app()
