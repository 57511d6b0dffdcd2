"""Drift: monitors that compare recent traffic, answers and quality with a reference, the
calibrated tests they run (`drift.stats`), and the proposals a detected drift leaves."""

from opsgate.drift.checks import STATES, Evaluation, State
from opsgate.drift.proposals import ProposalClosedError, Proposals
from opsgate.drift.sampler import DriftSampler
from opsgate.drift.service import DriftService, Monitor, MonitorExistsError
from opsgate.drift.store import DriftStore, Window

__all__ = [
    "STATES",
    "DriftSampler",
    "DriftService",
    "DriftStore",
    "Evaluation",
    "Monitor",
    "MonitorExistsError",
    "ProposalClosedError",
    "Proposals",
    "State",
    "Window",
]
