"""What a provider reports of a hosted fine-tuning job (`tuning.hosted`): its events as the
job's loss per step, metrics and recent messages, and its final state as the job's outcome."""

from __future__ import annotations

from typing import Any

from opsgate.types import JSONObject

KEEP_EVENTS = 20
"""Provider messages kept on the job (`provider.events`), newest last."""
FINAL = ("succeeded", "failed", "cancelled")
"""The provider's final statuses (ours have the same names)."""


class Progress:
    """A hosted job's progress as the provider reports it: its state (`provider`), the loss
    per step, the metrics."""

    def __init__(self, job: dict[str, Any], state: JSONObject) -> None:
        self.job, self.state = job, state
        self.losses: list[float] = list(job.get("losses") or [])
        self.steps = int(job.get("steps") or 0)
        self.total: int | None = job.get("total_steps")
        self.metrics: dict[str, Any] = dict(job.get("metrics") or {})

    def reset(self) -> None:
        """A new provider job: a new curve."""
        self.losses, self.steps, self.total = [], 0, None
        self.state["events"] = []

    def take(self, event: JSONObject) -> None:
        self.state["last_event"] = event.get("id")
        data = event.get("data")
        step = data.get("step") if isinstance(data, dict) else None
        loss = data.get("train_loss") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(step, int) and isinstance(loss, int | float):
            del self.losses[max(step, 1) - 1 :]  # a step read twice counts once
            self.losses.append(float(loss))
            self.steps = step
            if isinstance(data.get("total_steps"), int):
                self.total = int(data["total_steps"])
            if _number(data.get("valid_loss")):
                self.metrics["validation_loss"] = float(data["valid_loss"])
            return
        kept = list(self.state.get("events") or [])
        kept.append(
            {
                "at": event.get("created_at"),
                "level": event.get("level"),
                "message": str(event.get("message") or "")[:500],
            }
        )
        self.state["events"] = kept[-KEEP_EVENTS:]

    def values(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "steps": self.steps,
            "losses": self.losses,
            "metrics": self.metrics,
            "provider": self.state,
            "updated_at": now,
            "heartbeat_at": now,
        }
        if self.total is not None:
            out["total_steps"] = self.total
        return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def outcome(remote: JSONObject) -> dict[str, Any]:
    status = remote.get("status")
    if status == "succeeded":
        model = remote.get("fine_tuned_model")
        if not isinstance(model, str) or not model:
            return {"status": "failed", "error": "the provider's job succeeded with no model"}
        return {
            "status": "succeeded",
            "model": model,
            "trained_tokens": remote.get("trained_tokens"),
        }
    if status == "failed":
        err = remote.get("error")
        err = err if isinstance(err, dict) else {}
        why = ": ".join(str(err[k]) for k in ("code", "message") if err.get(k)) or "no reason given"
        return {"status": "failed", "error": f"the provider's job {remote.get('id')} failed: {why}"}
    return {"status": "cancelled"}
