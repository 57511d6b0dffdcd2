"""Load the injection detector of a backend: one place for the gateway's config
(`guard.service.load_injection`) and the `opsgate guard` commands."""

from __future__ import annotations

from pathlib import Path

from opsgate.guard.injection.detector import InjectionDetector
from opsgate.guard.injection.transformer import TransformerDetector


def load_detector(
    backend: str,
    model_path: str | Path | None,
    *,
    threshold: float | None = None,
    untrusted_threshold: float | None = None,
) -> InjectionDetector | TransformerDetector:
    """`linear` (the shipped n-gram model, or `model_path`) or `transformer` (the local model
    folder `model_path`). Raises ValueError or OSError for a bad model (`ModelFileError` is a
    ValueError) and ImportError when the transformer backend's extra is missing."""
    if backend == "transformer":
        if not model_path:
            raise ValueError("the transformer backend needs a local model folder")
        return TransformerDetector.load(
            model_path, threshold=threshold, untrusted_threshold=untrusted_threshold
        )
    return InjectionDetector.load(model_path, threshold, untrusted_threshold)
