"""The terminal way in: ask about a photo from the shell, one-shot or interactively."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TextIO

from core.images import ImageError
from core.messages import Answer, ChatRef, Delta, Duplicate, Incoming, Queued
from core.service import ConversationService, UserInputError

PROMPT = "you> "
INTERACTIVE_HELP = (
    "Type a question and press Enter. Commands: /image PATH [PATH…] (attach to your next "
    "question), /reset (new conversation), /help, /quit."
)


class TerminalChat:
    """Streams answers to ``out``; the conversation lives in storage under ``session``."""

    def __init__(
        self, service: ConversationService, session: str = "default", out: TextIO = sys.stdout
    ) -> None:
        self.service = service
        self.chat = ChatRef("terminal", session)
        self.out = out

    async def ask(self, question: str, image_paths: list[Path]) -> str | None:
        """Ask one question; print the answer as it streams. None if the input was refused."""
        try:
            images = tuple(path.read_bytes() for path in image_paths)
        except OSError as error:
            self.out.write(f"Cannot read image: {error}\n")
            return None
        message = Incoming(chat=self.chat, user_id="local", text=question, images=images)
        try:
            async for event in self.service.ask(message):
                if isinstance(event, Queued):
                    self.out.write(f"(waiting: position {event.position})\n")
                elif isinstance(event, Delta):
                    self.out.write(event.chunk)
                    self.out.flush()
                elif isinstance(event, Answer):
                    self.out.write("\n")
                    await self.service.delivered(event.turn_id)
                    return event.text
                elif isinstance(event, Duplicate):
                    return None
        except (ImageError, UserInputError) as error:
            self.out.write(f"{error}\n")
        return None

    async def command(self, name: str) -> None:
        self.out.write(await self.service.command(self.chat, name) + "\n")

    async def interactive(self, lines: TextIO = sys.stdin) -> None:
        """A multi-turn session: read questions line by line until /quit or end of input."""
        self.out.write(INTERACTIVE_HELP + "\n")
        attached: list[Path] = []
        while True:
            self.out.write(PROMPT)
            self.out.flush()
            line = lines.readline()
            if not line:
                self.out.write("\n")
                return
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                name, _, rest = line[1:].partition(" ")
                if name in ("quit", "exit"):
                    return
                if name == "describe" and attached:
                    await self.ask("", attached)
                    attached = []
                    continue
                if name == "image":
                    attached = [Path(p).expanduser() for p in shlex.split(rest)]
                    missing = [str(p) for p in attached if not p.is_file()]
                    if missing:
                        self.out.write(f"No such file: {', '.join(missing)}\n")
                        attached = []
                    else:
                        self.out.write(
                            f"Attached {len(attached)} image(s) to your next question "
                            "(or type /describe to get a description).\n"
                        )
                    continue
                await self.command(name)
                continue
            await self.ask(line, attached)
            attached = []
