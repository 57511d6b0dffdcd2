"""`opsgate guard ...`: check the injection detector on a labelled file, or scan one text."""

from __future__ import annotations

import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # numpy and the model load only when a guard command runs
    from opsgate.guard.injection import InjectionDetector
    from opsgate.guard.injection.transformer import TransformerDetector

guard_app = typer.Typer(help="Guardrail detectors: evaluate and try them.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


class Backend(StrEnum):
    linear = "linear"
    transformer = "transformer"


ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help="injection model file (default: the shipped one); a local Hugging Face model "
        "folder with --backend transformer",
    ),
]
BackendOpt = Annotated[
    Backend,
    typer.Option(
        help="linear: the n-gram detector; transformer: the classifier in --model (needs the "
        "guard-ml extra)"
    ),
]
ThresholdOpt = Annotated[
    float | None, typer.Option(help="flag at this score (default: the model's own)")
]


def register(app: typer.Typer) -> None:
    """Add `guard` to the main `opsgate` command."""
    app.add_typer(guard_app, name="guard")


def _detector(
    model: Path | None,
    threshold: float | None,
    untrusted: float | None,
    backend: Backend = Backend.linear,
) -> InjectionDetector | TransformerDetector:
    if backend is Backend.transformer and model is None:
        err.print("[bold red]--backend transformer needs --model[/] (a local model folder)")
        raise typer.Exit(2)
    from opsgate.guard.injection.backends import load_detector

    try:
        return load_detector(backend, model, threshold=threshold, untrusted_threshold=untrusted)
    except (OSError, ValueError, ImportError) as exc:
        err.print(f"[bold red]bad model[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


@guard_app.command("eval")
def eval_file(
    file: Annotated[Path, typer.Argument(help="JSONL: `text` (or `prompt`/`document`), `label`")],
    model: ModelOpt = None,
    backend: BackendOpt = Backend.linear,
    threshold: ThresholdOpt = None,
    untrusted_threshold: ThresholdOpt = None,
    untrusted: Annotated[
        bool, typer.Option(help="every row is a retrieved document / tool result")
    ] = False,
) -> None:
    """Score every row with the injection detector: TPR, FPR, precision, and per source."""
    from opsgate.tools.injection.evaluate import EvalFileError, by, load_labelled, rates, score_all

    try:
        examples = load_labelled(file, untrusted=untrusted)
    except EvalFileError as exc:
        err.print(f"[bold red]cannot evaluate[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    detector = _detector(model, threshold, untrusted_threshold, backend)
    scored = score_all(detector, examples)
    total = rates(scored)
    summary = Table("rows", "attacks", "benign", "TPR", "FPR", "precision", "threshold")
    summary.add_row(
        str(len(scored)),
        str(total.positives),
        str(total.negatives),
        _pct(total.tpr),
        _pct(total.fpr),
        _pct(total.precision),
        f"{detector.threshold:.3f} (untrusted {detector.untrusted_threshold:.3f})",
    )
    out.print(summary)
    per_source = Table("source", "attacks", "benign", "TPR", "FPR", "precision", title="per source")
    for source, r in by(scored, lambda ex: ex.source).items():
        per_source.add_row(
            source,
            str(r.positives),
            str(r.negatives),
            _pct(r.tpr),
            _pct(r.fpr),
            _pct(r.precision),
        )
    out.print(per_source)


@guard_app.command("scan")
def scan(
    text: Annotated[str | None, typer.Argument(help="the text (default: read stdin)")] = None,
    untrusted: Annotated[bool, typer.Option(help="scan as a retrieved document")] = False,
    system_prompt: Annotated[
        str | None, typer.Option(help="the system prompt the text is sent under")
    ] = None,
    model: ModelOpt = None,
    backend: BackendOpt = Backend.linear,
    threshold: ThresholdOpt = None,
) -> None:
    """Scan one text for prompt injection; prints the result as JSON."""
    detector = _detector(model, threshold, None, backend)
    text = sys.stdin.read() if text is None else text
    result = detector.scan(text, untrusted=untrusted, system_prompt=system_prompt)
    body = {"score": round(result.score, 4), "is_attack": result.is_attack}
    out.print_json(json.dumps({**body, "reasons": list(result.reasons)}))
