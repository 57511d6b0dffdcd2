"""The experiments' errors, each one HTTP status (opsgate.errors)."""

from __future__ import annotations

from opsgate.errors import NotFoundError, OpsgateError, ServiceUnavailableError


class ExperimentNotFoundError(NotFoundError):
    default_code = "experiment_not_found"


class ExperimentConflictError(OpsgateError):
    """The experiment's state forbids the action (promoting a stopped or losing variant,
    creating a name that exists): 409."""

    status = 409
    type = "invalid_request_error"
    default_code = "experiment_conflict"


class ExperimentStoreUnavailableError(ServiceUnavailableError):
    default_code = "experiment_store_unavailable"

    def __init__(self) -> None:
        super().__init__("the experiments' database is unavailable; try again")
