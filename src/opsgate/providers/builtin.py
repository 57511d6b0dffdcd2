"""Registers the built-in dialects, through the same hook plugins use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def register(register_provider: Callable[..., Any]) -> None:
    from opsgate.providers.anthropic import AnthropicProvider
    from opsgate.providers.llamacpp import LlamaCppProvider
    from opsgate.providers.openai import AzureOpenAIProvider, OpenAIProvider
    from opsgate.providers.simulator import SimulatorProvider

    for cls in (
        OpenAIProvider,
        AzureOpenAIProvider,
        AnthropicProvider,
        SimulatorProvider,
        LlamaCppProvider,
    ):
        register_provider(cls)
