"""Another injection backend next to the shipped detector: `python -m bench guard --transformer
DIR` scores a local Hugging Face model folder (e.g. from `opsgate.tools.injection.finetune`) on
the same held-out rows and ~1k-token inputs. Its own section in docs/benchmarks.md
(`guard-transformer`), so the shipped detector's section stays comparable run to run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import Grid, grids_markdown, pct
from bench.stats import percentile
from opsgate.guard.inspection import Scanner
from opsgate.tools.injection.data import Example
from opsgate.tools.injection.evaluate import Scored, by, rates, recall_at_fpr, score_all
from opsgate.tools.injection.train import digest


@dataclass(frozen=True, slots=True)
class BackendRun:
    name: str
    scored: list[Scored]
    thresholds: tuple[float, float]
    split_matches: bool | None
    """Whether the model's training left out this held-out split (None: it does not say)."""
    latencies: list[tuple[str, float, float]]
    """(input kind, p50 ms, p99 ms) of whole scans."""


def run_transformer(
    folder: Path,
    heldout: Sequence[Example],
    inputs: dict[str, list[str]],
    timed: Callable[[Scanner, str, bool], float],
    progress: Callable[[str], None],
) -> BackendRun:
    from opsgate.guard.injection.transformer import TransformerDetector

    detector = TransformerDetector.load(folder)
    progress(f"guard: transformer backend {folder}, held-out and latency")
    kept = detector.meta.get("heldout_digest")
    matches = kept == digest(heldout) if kept is not None else None
    latencies = []
    for kind, texts in inputs.items():
        untrusted = kind == "documents"
        for text in texts[:3]:
            detector.scan(text, untrusted=untrusted)
        samples = sorted(timed(detector, text, untrusted) for text in texts)
        latencies.append((kind, percentile(samples, 50) * 1e3, percentile(samples, 99) * 1e3))
    return BackendRun(
        f"transformer ({folder.name})",
        score_all(detector, heldout),
        (detector.threshold, detector.untrusted_threshold),
        matches,
        latencies,
    )


def backend_grids(run: BackendRun, shipped: Sequence[Scored]) -> list[Grid]:
    """Held-out rates of both detectors side by side, per part and per source, and latency."""
    columns = ("TPR", "FPR", "R@1% FPR", "R@3% FPR", "R@5% FPR")
    overall = Grid(f"Held-out: shipped detector vs {run.name}", ("rows", "detector", *columns))
    for part, keep in (
        ("prompts", lambda s: not s.example.untrusted),
        ("documents", lambda s: s.example.untrusted),
        ("all", lambda s: True),
    ):
        for name, scored in (("shipped", shipped), (run.name, run.scored)):
            rows = [s for s in scored if keep(s)]
            r = rates(rows)
            labels, scores = [s.example.label for s in rows], [s.score for s in rows]
            at = [pct(recall_at_fpr(scores, labels, f)) for f in (0.01, 0.03, 0.05)]
            overall.rows.append((part, name, pct(r.tpr), pct(r.fpr), *at))
    source = Grid(f"Held-out per source: {run.name}", ("source", "rows", "TPR", "FPR"))
    for group, r in by(run.scored, lambda ex: ex.source).items():
        source.rows.append((group, str(r.positives + r.negatives), pct(r.tpr), pct(r.fpr)))
    latency = Grid(f"{run.name}: scan() latency on ~1k-token inputs, ms", ("input", "p50", "p99"))
    for kind, p50, p99 in run.latencies:
        latency.rows.append((kind, f"{p50:.1f}", f"{p99:.1f}"))
    latency.notes.append("One pass over the inputs after a warm-up, one scan at a time, on CPU.")
    return [overall, source, latency]


def backend_markdown(run: BackendRun, shipped: Sequence[Scored], note: str) -> str:
    split = {True: "matches", False: "DOES NOT match", None: "is not recorded for"}
    parts = [
        "## Prompt-injection detector: transformer backend (`python -m bench guard "
        "--transformer DIR`)",
        "",
        note,
        "",
        f"Thresholds {run.thresholds[0]:.3f} (prompts), {run.thresholds[1]:.3f} (documents), "
        f"from the model folder. The held-out split {split[run.split_matches]} the model's "
        "training. See docs/guard-injection.md.",
    ]
    parts += grids_markdown(backend_grids(run, shipped))
    return "\n".join(parts)
