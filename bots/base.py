"""What every adapter offers the runner: an explicit start and stop."""

from __future__ import annotations

from typing import Protocol


class Adapter(Protocol):
    """One way in (Telegram, Slack, web). Built from settings and the conversation service."""

    name: str

    async def start(self) -> None:
        """Connect and begin handling messages; return once running (work goes on in tasks)."""
        ...

    async def stop(self) -> None:
        """Stop taking new messages and shut down cleanly."""
        ...
