"""opsgate: an LLMOps gateway with an OpenAI-compatible API."""

from opsgate._version import __version__

__all__ = ["__version__"]
