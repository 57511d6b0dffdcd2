"""JSON shapes of the prompt registry's API (admin and `/v1/prompts`): one function per object,
no I/O."""

from __future__ import annotations

from typing import Any

from opsgate.api.trace_json import iso
from opsgate.prompts.model import LabelMove, LabelState, PromptInfo, PromptVersion


def version_json(version: PromptVersion, *, labels: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "object": "prompt.version",
        "name": version.name,
        "team_id": version.team_id or None,
        "version": version.version,
        **version.spec.model_dump(mode="json", exclude_none=True),
        "content_hash": version.content_hash,
        "message": version.message,
        "author": version.author,
        "created_at": version.created_at,
        "created_at_iso": iso(version.created_at),
    }
    if labels is not None:
        data["labels"] = labels
    return data


def version_summary(version: PromptVersion, labels: list[str]) -> dict[str, Any]:
    """A version in a listing: who, when, why and its hash, without the templates."""
    return {
        "object": "prompt.version",
        "name": version.name,
        "version": version.version,
        "model": version.spec.model,
        "content_hash": version.content_hash,
        "message": version.message,
        "author": version.author,
        "created_at": version.created_at,
        "created_at_iso": iso(version.created_at),
        "labels": labels,
    }


def info_json(info: PromptInfo) -> dict[str, Any]:
    return {
        "object": "prompt",
        "name": info.name,
        "team_id": info.team_id or None,
        "latest_version": info.latest_version,
        "description": info.description,
        "labels": info.labels,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "updated_at_iso": iso(info.updated_at),
    }


def label_json(state: LabelState) -> dict[str, Any]:
    return {
        "object": "prompt.label",
        "label": state.label,
        "version": state.version,
        "updated_at": state.updated_at,
        "updated_at_iso": iso(state.updated_at),
        "updated_by": state.updated_by,
    }


def move_json(name: str, move: LabelMove) -> dict[str, Any]:
    return {
        "object": "prompt.label_move",
        "name": name,
        "label": move.label,
        "from_version": move.from_version,
        "to_version": move.to_version,
        "at": move.at,
        "at_iso": iso(move.at),
        "actor": move.actor,
        "seq": move.seq,
    }
