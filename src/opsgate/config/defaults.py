"""The built-in config used when no file is given: the simulator, plus real providers whose
keys or URLs are present in the environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def default_config_data(env: Mapping[str, str]) -> dict[str, Any]:
    sim = {"provider": "simulator", "model": "opsgate-simulated", "id": "simulator"}
    models: list[dict[str, Any]] = [
        {
            "name": "chat-default",
            "description": "simulated model: no network, plausible text and token counts",
            "deployments": [sim],
        },
        {
            "name": "embed-default",
            "kind": "embedding",
            "description": "simulated embeddings (deterministic, lexical)",
            "deployments": [{**sim, "id": "simulator-embed"}],
        },
    ]
    if env.get("OPENAI_API_KEY"):
        for name in ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"):
            models.append(
                {
                    "name": name,
                    "deployments": [
                        {"provider": "openai", "model": name, "api_key": "${OPENAI_API_KEY}"}
                    ],
                }
            )
        models.append(
            {
                "name": "text-embedding-3-small",
                "kind": "embedding",
                "deployments": [
                    {
                        "provider": "openai",
                        "model": "text-embedding-3-small",
                        "api_key": "${OPENAI_API_KEY}",
                    }
                ],
            }
        )
    if env.get("ANTHROPIC_API_KEY"):
        for name in ("claude-sonnet-4-5", "claude-haiku-4-5"):
            models.append(
                {
                    "name": name,
                    "deployments": [
                        {"provider": "anthropic", "model": name, "api_key": "${ANTHROPIC_API_KEY}"}
                    ],
                }
            )
    for var, tag in (("OLLAMA_BASE_URL", "ollama"), ("VLLM_BASE_URL", "vllm")):
        if env.get(var):
            model = env.get(f"{var.removesuffix('_BASE_URL')}_MODEL", "default")
            models.append(
                {
                    "name": model,
                    "deployments": [
                        {
                            "provider": "openai",
                            "model": model,
                            "base_url": f"${{{var}}}",
                            "tags": ["private", "on-prem", tag],
                        }
                    ],
                }
            )
    return {"models": models}
