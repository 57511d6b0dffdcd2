"""Server-sent events, read line by line (the subset LLM APIs use: `event:` and `data:`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class SSEvent:
    event: str
    data: str


async def read_events(lines: AsyncIterator[bytes]) -> AsyncIterator[SSEvent]:
    """Group lines into events; an event ends at a blank line (or at end of stream)."""
    event = "message"
    data: list[str] = []
    async for raw in lines:
        if not raw:
            if data:
                yield SSEvent(event, "\n".join(data))
            event, data = "message", []
            continue
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield SSEvent(event, "\n".join(data))
