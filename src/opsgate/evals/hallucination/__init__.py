"""The local hallucination detector (support of an answer by its knowledge)."""

from opsgate.evals.hallucination.detector import HallucinationDetector, HallucinationResult
from opsgate.evals.hallucination.model import MODEL_PATH, ModelFileError, SupportModel

__all__ = [
    "MODEL_PATH",
    "HallucinationDetector",
    "HallucinationResult",
    "ModelFileError",
    "SupportModel",
]
