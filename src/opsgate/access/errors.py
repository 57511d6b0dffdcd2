"""Access errors a client may see, beyond the shared hierarchy in `opsgate.errors`."""

from __future__ import annotations

from opsgate.errors import OpsgateError, ServiceUnavailableError


class ConflictError(OpsgateError):
    """The change clashes with what is stored (a duplicate name, a team still in use)."""

    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class AccessStoreUnavailableError(ServiceUnavailableError):
    """The access database cannot be reached, so a key that is not cached cannot be checked."""

    default_code = "access_store_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "the access database is unavailable, so this key cannot be checked; try again",
            headers={"retry-after": "1"},
        )
