"""Prompt-injection and jailbreak detection: normalisation, rule families and a small
logistic-regression classifier on hashed n-grams (pure numpy at run time, model shipped in the
package). See docs/guard-injection.md."""

from opsgate.guard.injection.detector import InjectionDetector, InjectionResult
from opsgate.guard.injection.model import LinearModel, ModelFileError

__all__ = ["InjectionDetector", "InjectionResult", "LinearModel", "ModelFileError"]
