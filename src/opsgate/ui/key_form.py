"""The "create key" form to the admin API's `KeyCreate` body: same model, same validation, so
the dashboard cannot create a key the API would refuse (or the reverse)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from opsgate.access.models import KeyCreate
from opsgate.ui.forms import Form, field

FIELDS = ("alias", "role", "team_id", "user_id", "models", "expires_in", "budget_usd",
          "budget_period", "rpm", "tpm", "max_parallel")  # fmt: skip
"""The form's inputs, echoed back when it is shown again with errors."""
_LIMITS = ("rpm", "tpm", "max_parallel")
_SPLIT = re.compile(r"[\s,]+")


def form_body(form: Form) -> dict[str, Any]:
    """The JSON body the admin API would get for these inputs (blank inputs left out)."""
    body: dict[str, Any] = {}
    for name in ("alias", "role", "team_id", "user_id", "expires_in"):
        value = field(form, name)
        if value is not None:
            body[name] = value
    models = [m for m in _SPLIT.split(form.get("models") or "") if m]
    if models:
        body["models"] = models
    limits = {name: field(form, name) for name in _LIMITS if field(form, name) is not None}
    if limits:
        body["limits"] = limits
    budget = field(form, "budget_usd")
    if budget is not None:
        body["budget"] = {"max_usd": budget, "period": field(form, "budget_period") or "monthly"}
    return body


def parse_key_form(form: Form) -> tuple[KeyCreate | None, list[str]]:
    """(the validated body, None) or (None, one message per invalid input)."""
    try:
        return KeyCreate.model_validate(form_body(form)), []
    except ValidationError as exc:
        return None, [_message(e) for e in exc.errors(include_url=False)]


def _message(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "form"
    return f"{where}: {error['msg']}"
