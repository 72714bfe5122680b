"""One answer's Slack messages: the placeholder, its throttled streaming edits, the final parts."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack_events import ReplyTarget, SlackFile
from bots.slack_mrkdwn import MESSAGE_LIMIT, escape, split_message, to_mrkdwn

log = logging.getLogger(__name__)

LOOKING = "Looking at your image…"
THINKING = "Thinking…"
EMPTY_ANSWER = "I couldn't come up with an answer to that; try asking in other words."
STREAMING_MARK = " …"
REFUSAL = (
    "Sorry, I'm not available to you here. Ask whoever runs this bot to add you (or this channel)."
)
BUSY = "I'm busy with too many requests right now; please try again in a few minutes."
SORRY = "Sorry, something went wrong while answering. Please try again."


def _names(files: tuple[SlackFile, ...]) -> str:
    return ", ".join(f.name for f in files)


def not_images_text(files: tuple[SlackFile, ...]) -> str:
    verb = "is" if len(files) == 1 else "are"
    return (
        f"I can only look at images (JPEG, PNG, WebP, GIF or BMP); {_names(files)} {verb} not "
        "one. Attach a photo and ask again."
    )


def skipped_files_text(files: tuple[SlackFile, ...]) -> str:
    return (
        f"I'll answer about the images; I can't read {_names(files)} (only JPEG, PNG, WebP, GIF "
        "or BMP)."
    )


# parse=none and link_names=false: Slack must never turn anything we send into a mention.
_SAFE = {"parse": "none", "link_names": False}
_NO_PREVIEWS = {"unfurl_links": False, "unfurl_media": False}


def waiting_text(base: str, ahead: int) -> str:
    if ahead <= 0:
        return base
    others = "request" if ahead == 1 else "requests"
    return f"{base} ({ahead} {others} ahead of you)"


class SlackReply:
    """Posts and edits the bot's messages for one turn in its thread (or DM)."""

    def __init__(self, client: AsyncWebClient, target: ReplyTarget, interval_s: float) -> None:
        self.client = client
        self.target = target
        self._interval_s = interval_s
        self._last_update = 0.0
        self._shown = ""

    async def _post(self, text: str) -> str:
        response = await self.client.chat_postMessage(
            channel=self.target.channel,
            thread_ts=self.target.thread_ts,
            text=text,
            **_SAFE,
            **_NO_PREVIEWS,
        )
        return str(response["ts"])

    async def _update(self, text: str) -> None:
        """Edit the placeholder; post anew if it is gone (deleted by a user, or never posted)."""
        if text == self._shown:
            return
        if self.target.placeholder_ts is not None:
            try:
                await self.client.chat_update(
                    channel=self.target.channel, ts=self.target.placeholder_ts, text=text, **_SAFE
                )
                self._shown = text
                return
            except SlackApiError as error:
                if error.response.get("error") not in ("message_not_found", "cant_update_message"):
                    raise
                log.info("[slack:%s] placeholder gone; posting anew", self.target.channel)
        self.target = replace(self.target, placeholder_ts=await self._post(text))
        self._shown = text

    async def post_placeholder(self, text: str) -> ReplyTarget:
        self.target = replace(self.target, placeholder_ts=await self._post(text))
        self._shown = text
        self._last_update = time.monotonic()
        return self.target

    async def status(self, text: str) -> None:
        """A short status line (queue position, "looking…") in place of the placeholder."""
        await self._update(text)

    async def progress(self, answer_so_far: str) -> None:
        """Show the answer as it grows, at most once per interval (Slack rate-limits edits)."""
        now = time.monotonic()
        if now - self._last_update < self._interval_s:
            return
        self._last_update = now
        shown = to_mrkdwn(answer_so_far)
        room = MESSAGE_LIMIT - len(STREAMING_MARK)
        if len(shown) > room:
            shown = split_message(shown, room)[0]  # the rest is posted when the answer is done
        await self._update(shown + STREAMING_MARK)

    async def finish(self, answer: str) -> None:
        """The final answer: the first part replaces the placeholder, the rest follow in order."""
        parts = split_message(to_mrkdwn(answer)) or [EMPTY_ANSWER]
        await self._update(parts[0])
        for part in parts[1:]:
            await self._post(part)

    async def say(self, plain_text: str) -> None:
        """A message of ours (errors, refusals) in place of the placeholder, or as a new reply."""
        await self._update(escape(plain_text))

    async def withdraw(self) -> None:
        """Remove the placeholder (the delivery turned out to be a duplicate)."""
        if self.target.placeholder_ts is None:
            return
        try:
            await self.client.chat_delete(
                channel=self.target.channel, ts=self.target.placeholder_ts
            )
        except SlackApiError as error:
            log.warning(
                "[slack:%s] could not delete placeholder: %s",
                self.target.channel,
                error.response.get("error"),
            )
        self.target = replace(self.target, placeholder_ts=None)
