"""Export alt-profanity-check's model to the guard's numpy file:
`pip install alt-profanity-check==1.9.1 && python -m opsgate.tools.moderation.export`.

alt-profanity-check (MIT, Dimitrios Mistriotis, after Victor Zhou's profanity-check) is a TF-IDF
word model with five sigmoid-calibrated linear SVMs, trained on ~200k labelled comments. It
ships as scikit-learn pickles pinned to one scikit-learn release, and loading a pickle runs
code: so the gateway does not load it. This script reads the pickles once, offline, and writes
the numbers (vocabulary, idf, the five weight vectors, intercepts and calibrations) to
`guard/moderation/profanity.npz`, which `guard.moderation.profanity` scores with numpy alone,
to the same probabilities (a test compares them when the package is installed).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from opsgate.guard.moderation.profanity import MODEL_PATH


def export(out: Path) -> dict[str, object]:
    from profanity_check import profanity_check as source  # type: ignore[import-not-found]

    vectorizer, model = source.vectorizer, source.model
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
    folds = model.calibrated_classifiers_
    coef = np.stack([f.estimator.coef_[0] for f in folds]).astype(np.float32)
    intercept = np.array([f.estimator.intercept_[0] for f in folds], dtype=np.float64)
    slope = np.array([f.calibrators[0].a_ for f in folds], dtype=np.float64)
    offset = np.array([f.calibrators[0].b_ for f in folds], dtype=np.float64)
    meta = {
        "format": "opsgate-profanity/1",
        "source": "alt-profanity-check 1.9.1 (MIT)",
        "token_pattern": vectorizer.token_pattern,
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        vocabulary=np.frombuffer("\n".join(vocabulary).encode(), dtype=np.uint8),
        idf=vectorizer.idf_.astype(np.float32),
        coef=coef,
        intercept=intercept,
        slope=slope,
        offset=offset,
        meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
    )
    out.write_bytes(buffer.getvalue())
    return {"words": len(vocabulary), "folds": len(folds), "bytes": out.stat().st_size}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opsgate.tools.moderation.export", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    print(export(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
