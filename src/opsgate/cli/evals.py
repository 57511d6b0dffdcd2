"""`opsgate eval ...`: eval runs (cli/eval_runs.py) and the hallucination detector on a
labelled file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from opsgate.cli.eval_runs import register_runs

eval_app = typer.Typer(help="Evaluations: detectors, scorers and eval runs.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `eval` to the main `opsgate` command."""
    app.add_typer(eval_app, name="eval")


register_runs(eval_app)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


@eval_app.command("hallucination")
def hallucination(
    file: Annotated[
        Path,
        typer.Argument(help="JSONL: `knowledge`, `question`, `answer`, `label` (1 = hallucinated)"),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    threshold: Annotated[
        float | None, typer.Option(help="flag at this score (default: the model's own)")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="detector model file (default: the shipped one)")
    ] = None,
) -> None:
    """Score every row with the local hallucination detector: precision, recall, F1,
    accuracy, AUROC at the detector's threshold."""
    from opsgate.evals.hallucination import MODEL_PATH, HallucinationDetector, ModelFileError
    from opsgate.evals.hallucination.labelled import LabelledFileError, load_labelled
    from opsgate.evals.hallucination.measure import figures

    try:
        rows = load_labelled(file)
        detector = HallucinationDetector.load(model or MODEL_PATH, threshold)
    except (LabelledFileError, ModelFileError) as exc:
        err.print(f"[bold red]cannot evaluate[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    scores = [detector.score(r.knowledge, r.question, r.answer).score for r in rows]
    result = figures(scores, [r.label for r in rows], detector.threshold)
    if as_json:
        body = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in result.as_dict().items()}  # fmt: skip
        out.print_json(json.dumps(body))
        return
    table = Table("rows", "positives", "precision", "recall", "F1", "accuracy", "AUROC",
                  "threshold")  # fmt: skip
    table.add_row(
        str(result.rows),
        str(result.positives),
        *(_fmt(v) for v in (result.precision, result.recall, result.f1, result.accuracy)),
        _fmt(result.auroc),
        f"{result.threshold:.3f}",
    )
    out.print(table)
