"""What a target sends for a row: a chat request body for the gateway's OpenAI-compatible API.

A model target sends the row's `messages` (or its input as one user turn, after the spec's
system message), and the row's `tools` when it has them. A prompt target names the version as
`model: prompt:<name>@<version|label>` with the row's `variables` (else `{"input": ...}`); the
gateway renders it, so the trace records the prompt version, and any row `messages` follow
the rendered ones.
"""

from __future__ import annotations

from typing import Any

from opsgate.evals.runs.dataset import DatasetRow
from opsgate.evals.runs.spec import EvalSpec, TargetSpec


def request_body(spec: EvalSpec, target: TargetSpec, row: DatasetRow) -> dict[str, Any]:
    params = {**spec.params, **target.params}
    if target.prompt is not None:
        prompt = target.prompt.removeprefix("prompt:")
        variables = row.variables if row.variables is not None else {"input": row.input or ""}
        body: dict[str, Any] = {"model": f"prompt:{prompt}", "variables": variables}
        if row.messages:
            body["messages"] = [m for m in row.messages if m.get("role") != "system"]
        else:
            body["messages"] = []
        return {**params, **body}
    if row.messages:
        messages = list(row.messages)
    else:
        messages = [{"role": "user", "content": row.input or ""}]
        if spec.system:
            messages.insert(0, {"role": "system", "content": spec.system})
    body = {**params, "model": target.model, "messages": messages}
    if isinstance(row.row.get("tools"), list) and row.row["tools"]:
        body["tools"] = row.row["tools"]
    return body
