"""Showing one answer in a Telegram chat: queue position, typing, a growing message, splitting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from telegram import Bot, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError

from bots.telegram_render import markdown_to_html, split_message

log = logging.getLogger(__name__)

T = TypeVar("T")

TYPING_EVERY_S = 4.5  # Telegram shows "typing…" for about five seconds per action
INTERRUPTED = "⏸ Interrupted by a restart — the full answer follows when I'm back."
EMPTY_ANSWER = "I couldn't come up with an answer to that; please try asking differently."


@dataclass(frozen=True)
class ReplyTarget:
    """Where an answer goes; stored with the turn (``Incoming.reply_to``) to finish it later."""

    chat_id: int
    message_id: int | None = None
    thread_id: int | None = None

    def dumps(self) -> str:
        return json.dumps({"c": self.chat_id, "m": self.message_id, "t": self.thread_id})

    @classmethod
    def loads(cls, data: str) -> ReplyTarget:
        raw = json.loads(data)
        return cls(chat_id=int(raw["c"]), message_id=raw.get("m"), thread_id=raw.get("t"))


def _is_parse_error(error: BadRequest) -> bool:
    return "can't parse entities" in error.message.lower()


def _is_not_modified(error: BadRequest) -> bool:
    return "message is not modified" in error.message.lower()


class TelegramReply:
    """One answer's messages; edits come at most every ``edit_interval_s`` and only on change."""

    def __init__(self, bot: Bot, target: ReplyTarget, edit_interval_s: float) -> None:
        self.bot = bot
        self.target = target
        self.edit_interval_s = edit_interval_s
        self._messages: list[int] = []  # ids of the messages showing the answer, in order
        self._shown: list[str] = []  # the Markdown piece each of them shows
        self._status_message: int | None = None  # "you are number N", replaced by the answer
        self._last_edit = 0.0
        self._typing: asyncio.Task[None] | None = None

    # -- while waiting ----------------------------------------------------------------------

    def start_typing(self) -> None:
        if self._typing is None:
            self._typing = asyncio.create_task(self._keep_typing())

    async def _keep_typing(self) -> None:
        while True:
            with contextlib.suppress(TelegramError):
                await self.bot.send_chat_action(
                    self.target.chat_id, ChatAction.TYPING, message_thread_id=self.target.thread_id
                )
            await asyncio.sleep(TYPING_EVERY_S)

    async def stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._typing
            self._typing = None

    async def queued(self, position: int) -> None:
        text = f"⏳ You're number {position} in the queue — your answer will appear here."
        if self._status_message is None:
            self._status_message = await self._send(text, plain=True)
        else:
            await self._edit(self._status_message, text, plain=True)

    async def say(self, text: str) -> None:
        """A short plain message (an error or a notice) in place of an answer."""
        await self.stop_typing()
        if self._status_message is not None:
            await self._edit(self._status_message, text, plain=True)
            self._status_message = None
        else:
            await self._send(text, plain=True)

    async def interrupted(self) -> None:
        """Mark a half-shown answer as cut off (the bot is stopping; it resends it on restart)."""
        await self.stop_typing()
        if self._messages:
            last = len(self._messages) - 1
            await self._edit(self._messages[last], f"{self._shown[last]}\n\n_{INTERRUPTED}_")
        elif self._status_message is not None:
            await self._edit(self._status_message, INTERRUPTED, plain=True)

    # -- the answer -------------------------------------------------------------------------

    async def update(self, text: str) -> None:
        """Show the answer so far, unless the last edit was less than the interval ago."""
        if time.monotonic() - self._last_edit < self.edit_interval_s or not text.strip():
            return
        await self._show(text)

    async def finish(self, text: str) -> None:
        """Show the whole answer; every message is sent once this returns."""
        await self.stop_typing()
        await self._show(text.strip() or EMPTY_ANSWER)

    async def _show(self, text: str) -> None:
        # Telegram trims messages, so a piece differing only in outer spaces is no change.
        pieces = [piece.strip() for piece in split_message(text)]
        for index, piece in enumerate(pieces):
            if index < len(self._messages):
                if self._shown[index] != piece:
                    await self._edit(self._messages[index], piece)
                    self._shown[index] = piece
                continue
            if index == 0 and self._status_message is not None:
                message_id = self._status_message
                self._status_message = None
                await self._edit(message_id, piece)
            else:
                message_id = await self._send(piece)
            self._messages.append(message_id)
            self._shown.append(piece)
        self._last_edit = time.monotonic()

    # -- Telegram calls, with the plain-text fallback -----------------------------------------

    async def _send(self, text: str, plain: bool = False) -> int:
        reply = None
        if self.target.message_id is not None and not self._messages:
            reply = ReplyParameters(self.target.message_id, allow_sending_without_reply=True)
        kwargs: dict[str, Any] = {
            "chat_id": self.target.chat_id,
            "message_thread_id": self.target.thread_id,
            "reply_parameters": reply,
        }
        if not plain:
            try:
                sent = await self._retrying(
                    self.bot.send_message,
                    text=markdown_to_html(text),
                    parse_mode=ParseMode.HTML,
                    **kwargs,
                )
                return sent.message_id
            except BadRequest as error:
                if not _is_parse_error(error):
                    raise
                log.warning(
                    "[telegram:%s] HTML refused (%s); sending plain text",
                    self.target.chat_id,
                    error.message,
                )
        sent = await self._retrying(self.bot.send_message, text=text, **kwargs)
        return sent.message_id

    async def _edit(self, message_id: int, text: str, plain: bool = False) -> None:
        kwargs: dict[str, Any] = {"chat_id": self.target.chat_id, "message_id": message_id}
        try:
            if not plain:
                try:
                    await self._retrying(
                        self.bot.edit_message_text,
                        text=markdown_to_html(text),
                        parse_mode=ParseMode.HTML,
                        **kwargs,
                    )
                    return
                except BadRequest as error:
                    if not _is_parse_error(error):
                        raise
                    log.warning(
                        "[telegram:%s] HTML refused (%s); editing as plain text",
                        self.target.chat_id,
                        error.message,
                    )
            await self._retrying(self.bot.edit_message_text, text=text, **kwargs)
        except BadRequest as error:
            if not _is_not_modified(error):
                raise

    @staticmethod
    async def _retrying(call: Callable[..., Awaitable[T]], **kwargs: Any) -> T:
        """One retry after Telegram's flood control asks us to wait."""
        try:
            return await call(**kwargs)
        except RetryAfter as error:
            delay = error.retry_after
            seconds = delay.total_seconds() if hasattr(delay, "total_seconds") else float(delay)
            await asyncio.sleep(seconds)
            return await call(**kwargs)
