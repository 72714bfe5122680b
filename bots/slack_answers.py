"""Answering in the background: stream each answer into its Slack reply, resume after a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack_events import PLATFORM, ReplyTarget
from bots.slack_reply import BUSY, SORRY, THINKING, SlackReply, waiting_text
from core.messages import Answer, AnswerEvent, Delta, Queued, Started
from core.queue import QueueFull
from core.service import ConversationService

log = logging.getLogger(__name__)


async def apologise(reply: SlackReply) -> bool:
    """Tell the user something went wrong; False if even that could not be sent."""
    try:
        await reply.say(SORRY)
    except (SlackApiError, aiohttp.ClientError) as error:
        log.error("[slack:%s] could not apologise: %s", reply.target.channel, error)
        return False
    return True


class SlackAnswers:
    """The answer tasks of one adapter: started after the acknowledgement, cancelled on stop."""

    def __init__(
        self, service: ConversationService, client: AsyncWebClient, interval_s: float
    ) -> None:
        self.service = service
        self.client = client
        self.interval_s = interval_s
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(
        self,
        events: AsyncIterator[AnswerEvent],
        reply: SlackReply,
        turn_id: int,
        where: str,
        base: str,
    ) -> None:
        task = asyncio.create_task(self._deliver(events, reply, turn_id, where, base))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        """Stop answering; unfinished turns stay stored and are resumed on the next start."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _deliver(
        self,
        events: AsyncIterator[AnswerEvent],
        reply: SlackReply,
        turn_id: int,
        where: str,
        base: str,
    ) -> None:
        try:
            async for event in events:
                if isinstance(event, Queued):
                    await reply.status(waiting_text(base, event.position))
                elif isinstance(event, Started):
                    await reply.status(base)
                elif isinstance(event, Delta):
                    await reply.progress(event.text)
                elif isinstance(event, Answer):
                    await reply.finish(event.text)
                    await self.service.delivered(event.turn_id)
        except QueueFull:
            log.warning("[%s] queue full; turn %d refused", where, turn_id)
            await reply.say(BUSY)
            await self.service.delivered(turn_id)  # told "try again": don't answer it at restart
        except SlackApiError as error:
            # The answer is stored; it is delivered again on the next start.
            log.error("[%s] delivery of turn %d failed: %s", where, turn_id, error)
        except Exception:
            log.exception("[%s] answering turn %d failed", where, turn_id)
            if await apologise(reply):
                await self.service.delivered(turn_id)

    async def resume_undelivered(self) -> None:
        """Answer (or deliver) turns stored before a stop or crash, into their placeholders."""
        for pending in await self.service.undelivered(PLATFORM):
            target = ReplyTarget.from_json(pending.reply_to)
            if target is None:
                log.warning("[%s] turn %d has no reply target", pending.chat.key, pending.turn_id)
                await self.service.delivered(pending.turn_id)
                continue
            log.info("[%s] resuming turn %d", pending.chat.key, pending.turn_id)
            reply = SlackReply(self.client, target, self.interval_s)
            events = self.service.resume(pending)
            self.spawn(events, reply, pending.turn_id, pending.chat.key, THINKING)
