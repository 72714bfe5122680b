"""The Slack way in: mention the bot with images in a channel (answers go to the thread) or DM it.

Built on slack-bolt's ``AsyncApp``, in Socket Mode (default) or behind the HTTP Events API. Each
delivery is checked, downloaded and stored with the core *before* Bolt acknowledges it (Bolt runs
with ``process_before_response``), so an acknowledged message is never lost; the answer is then
generated in a background task and streamed into a placeholder reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack_answers import SlackAnswers, apologise
from bots.slack_events import ReplyTarget, SlackMessage, parse_event
from bots.slack_events import keyword_command as find_keyword
from bots.slack_files import DownloadError, SlackFiles
from bots.slack_http import SlackEventsServer
from bots.slack_mrkdwn import question_text
from bots.slack_reply import (
    LOOKING,
    REFUSAL,
    THINKING,
    SlackReply,
    not_images_text,
    skipped_files_text,
    waiting_text,
)
from core.config import ConfigError, Settings
from core.images import ImageError
from core.messages import Duplicate, Incoming
from core.service import ConversationService, UserInputError

log = logging.getLogger(__name__)

_RECENT_EVENTS = 2000


class SlackAdapter:
    """Connects to Slack, turns mentions and DMs into turns, and delivers streamed answers."""

    name = "slack"
    client: AsyncWebClient
    app: AsyncApp
    _files: SlackFiles

    def __init__(self, settings: Settings, service: ConversationService) -> None:
        slack = settings.slack
        if slack.bot_token is None:
            raise ConfigError("slack: [slack] bot_token (xoxb-…) is required")
        if slack.mode == "socket" and slack.app_token is None:
            raise ConfigError(
                "slack: Socket Mode needs [slack] app_token (xapp-…, with connections:write); "
                'or set mode = "http" with a signing_secret'
            )
        if slack.mode == "http" and slack.signing_secret is None:
            raise ConfigError("slack: HTTP mode needs [slack] signing_secret to verify requests")
        self.settings = slack
        self.service = service
        self._max_images = settings.images.max_images_per_message
        self._max_bytes = settings.images.max_file_bytes
        self._answers: SlackAnswers | None = None
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._accepting = False
        self._session: aiohttp.ClientSession | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self.server: SlackEventsServer | None = None
        self.bot_user_id = ""

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        token = self.settings.bot_token.get_secret_value()  # type: ignore[union-attr]
        # Bounded, so a stuck file download cannot hold a delivery (and its ack) forever.
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self.client = AsyncWebClient(
            token=token,
            base_url=self.settings.api_base_url,
            session=self._session,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
        )
        await self._sign_in()
        self._files = SlackFiles(self._session, self.client, token, self._max_bytes)
        self._answers = SlackAnswers(self.service, self.client, self.settings.update_interval_s)
        secret = self.settings.signing_secret
        self.app = AsyncApp(
            name="visionbot",
            client=self.client,
            signing_secret=secret.get_secret_value() if secret else "",
            process_before_response=True,  # store the turn first, acknowledge after
        )
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self._accepting = True
        if self.settings.mode == "socket":
            app_token = self.settings.app_token.get_secret_value()  # type: ignore[union-attr]
            self._socket = AsyncSocketModeHandler(self.app, app_token, web_client=self.client)
            # The SDK retries a refused connection forever; ask once here so a wrong app token
            # fails start-up with a clear message instead of hanging it.
            self._socket.client.wss_uri = await self._open_socket_url(app_token)
            await self._socket.connect_async()
            log.info("Slack: connected in Socket Mode")
        else:
            self.server = SlackEventsServer(
                self.app, self.settings.http_listen, self.settings.http_port
            )
            await self.server.start()
        await self._answers.resume_undelivered()

    async def _sign_in(self) -> None:
        try:
            identity = await self.client.auth_test()
        except (SlackApiError, aiohttp.ClientError) as error:
            await self._close_session()
            reason = error.response.get("error") if isinstance(error, SlackApiError) else error
            raise ConfigError(
                f"slack: auth.test failed ({reason}); check [slack] bot_token and api_base_url"
            ) from None
        self.bot_user_id = str(identity["user_id"])
        log.info(
            "Slack: signed in as @%s (user %s, bot %s) in workspace %s (%s)",
            identity.get("user"),
            self.bot_user_id,
            identity.get("bot_id"),
            identity.get("team"),
            identity.get("team_id"),
        )

    async def _open_socket_url(self, app_token: str) -> str:
        try:
            opened = await self.client.apps_connections_open(app_token=app_token)
        except SlackApiError as error:
            await self.stop()
            raise ConfigError(
                f"slack: apps.connections.open failed ({error.response.get('error')}); check "
                "[slack] app_token (xapp-…, connections:write) and that Socket Mode is enabled"
            ) from None
        return str(opened["url"])

    async def stop(self) -> None:
        """Stop taking events; answers still running are cancelled and resumed on the next start."""
        # Close the way in first: deliveries already inside finish (and are stored) normally.
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self.server is not None:
            await self.server.stop()
        self._accepting = False
        if self._answers is not None:
            await self._answers.cancel()
        await self._close_session()

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def drain(self) -> None:
        """Wait until every answer being generated or delivered is done."""
        if self._answers is not None:
            await self._answers.drain()

    # -- taking messages in -------------------------------------------------------------------

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        await self._handle(parse_event(body, event, mention=True))

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        await self._handle(parse_event(body, event, mention=False))

    def _first_delivery(self, event_id: str) -> bool:
        """Cheap in-process check, so a retry does not even post a placeholder.

        The core's persisted check (``receive``/``claim_event``) stays the authority across
        restarts.
        """
        if event_id in self._recent:
            return False
        self._recent[event_id] = None
        if len(self._recent) > _RECENT_EVENTS:
            self._recent.popitem(last=False)
        return True

    def _allowed(self, message: SlackMessage) -> bool:
        users, channels = self.settings.allowed_user_ids, self.settings.allowed_channel_ids
        if users and message.user not in users:
            return False
        # DMs are governed by the user list only: their D… ids are per person, not channels.
        return not (channels and not message.is_dm and message.channel not in channels)

    async def _handle(self, message: SlackMessage | None) -> None:
        if message is None or not self._accepting:
            return
        if not self._first_delivery(message.event_id):
            log.info("[%s] repeated delivery %s ignored", message.chat.key, message.event_id)
            return
        try:
            await self._take(message)
        except Exception:
            log.exception("[%s] could not handle event %s", message.chat.key, message.event_id)
            await apologise(SlackReply(self.client, self._target(message), 0.0))

    def _target(self, message: SlackMessage) -> ReplyTarget:
        return ReplyTarget(message.channel, message.reply_thread)

    async def _reply_once(self, message: SlackMessage, text: str) -> None:
        """Reply to a delivery that is not a turn, unless it was already replied to."""
        if await self.service.claim_event(message.event_id):
            await SlackReply(self.client, self._target(message), 0.0).say(text)

    async def _take(self, message: SlackMessage) -> None:
        chat = message.chat
        if not self._allowed(message):
            log.info("[%s] user %s not on the allow-lists; refused", chat.key, message.user)
            await self._reply_once(message, REFUSAL)
            return
        question = question_text(message.text, self.bot_user_id)
        keyword = None if message.files else find_keyword(question)
        if keyword is not None:
            await self._reply_once(message, await self.service.command(chat, keyword))
            return
        images = message.images
        if message.other_files:
            log.info("[%s] non-image files: %s", chat.key, [f.mimetype for f in message.files])
            if not images:
                await self._reply_once(message, not_images_text(message.other_files))
                return
            # The event id is kept for the turn itself, so this note is not claimed separately.
            await SlackReply(self.client, self._target(message), 0.0).say(
                skipped_files_text(message.other_files)
            )
        if not images and not message.is_dm:
            images = await self._files.unseen_thread_images(
                message, self.bot_user_id, self._max_images
            )
            if images:
                log.info("[%s] using %d earlier image(s) of the thread", chat.key, len(images))
        base = LOOKING if images else THINKING
        reply = SlackReply(self.client, self._target(message), self.settings.update_interval_s)
        target = await reply.post_placeholder(waiting_text(base, self.service.queue.depth))
        try:
            data = await asyncio.gather(*(self._files.download(f) for f in images))
            incoming = Incoming(
                chat=chat,
                user_id=message.user,
                text=question,
                images=tuple(data),
                event_id=message.event_id,
                reply_to=target.to_json(),
            )
            receipt = await self.service.receive(incoming)
        except (DownloadError, ImageError, UserInputError) as error:
            log.info("[%s] event %s refused: %s", chat.key, message.event_id, error)
            if await self.service.claim_event(message.event_id):
                await reply.say(str(error))
            else:
                await reply.withdraw()
            return
        if isinstance(receipt, Duplicate):
            log.info("[%s] event %s was handled before a restart", chat.key, message.event_id)
            await reply.withdraw()
            return
        assert self._answers is not None  # set by start(), before any event can arrive
        self._answers.spawn(self.service.answer(receipt), reply, receipt.turn_id, chat.key, base)
