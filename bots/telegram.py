"""The Telegram way in: python-telegram-bot's Application, translating updates for the core."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from telegram import BotCommand, Message, Update
from telegram.error import BadRequest, InvalidToken, NetworkError
from telegram.ext import Application, ContextTypes, ExtBot, MessageHandler, filters

from bots import telegram_inbound as inbound
from bots.telegram_albums import Album, AlbumCollector
from bots.telegram_intake import PollingIntake, WebhookIntake
from bots.telegram_reply import ReplyTarget, TelegramReply
from core.config import ConfigError, Settings
from core.images import ImageError
from core.messages import Answer, AnswerEvent, Delta, Duplicate, Incoming, Queued
from core.queue import QueueFull
from core.service import ConversationService, UserInputError

log = logging.getLogger(__name__)

REFUSAL = "Sorry, this is a private bot and you are not on its list of allowed users."
UNSUPPORTED = "I can read photos, image files and text messages — please send one of those."
BUSY = "I'm very busy right now — please send that again in a minute."
APOLOGY = "Sorry, something went wrong while answering. Please try again."
INTERRUPT_NOTICE_S = 2.0
COMMANDS = [
    BotCommand("start", "What this bot does"),
    BotCommand("help", "How to use it"),
    BotCommand("reset", "Forget this conversation"),
]

Context = ContextTypes.DEFAULT_TYPE


class TelegramAdapter:
    """Receives photos and questions from Telegram and streams the core's answers back."""

    name = "telegram"

    def __init__(self, settings: Settings, service: ConversationService) -> None:
        config = settings.telegram
        if config.token is None:
            raise ConfigError("config: 'telegram.token' is needed for the Telegram adapter")
        if config.mode == "webhook" and (not config.webhook_url or config.webhook_secret is None):
            raise ConfigError(
                "config: telegram.mode = 'webhook' needs 'telegram.webhook_url' and "
                "'telegram.webhook_secret'"
            )
        self.settings = settings
        self.config = config
        self.service = service
        self.application = (
            Application.builder()
            .token(config.token.get_secret_value())
            .base_url(config.base_url)
            .base_file_url(config.base_file_url)
            .updater(None)  # see bots/telegram_intake.py for why we fetch updates ourselves
            .build()
        )
        self.application.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND, self._on_command)
        )
        self.application.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, self._on_message)
        )
        self.application.add_error_handler(self._on_error)
        self.albums = AlbumCollector(config.album_wait_s, self._on_album)
        self.intake: PollingIntake | WebhookIntake | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bot(self) -> ExtBot[None]:
        return self.application.bot

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.application.initialize()  # calls getMe: fails early on a wrong token
        except InvalidToken:
            with contextlib.suppress(Exception):
                await self.bot.shutdown()  # close its HTTP connections
            raise ConfigError(
                "config: Telegram refused 'telegram.token' (check it with @BotFather)"
            ) from None
        await self.application.start()
        log.info("telegram: running as @%s (id %s)", self.bot.username, self.bot.id)
        await self.bot.set_my_commands(COMMANDS)
        await self._resume_undelivered()
        if self.config.mode == "webhook":
            secret = self.config.webhook_secret
            assert secret is not None  # checked in __init__
            self.intake = WebhookIntake(
                self.bot,
                self.application.process_update,
                self._wait_until_stored,
                url=self.config.webhook_url,
                listen=self.config.webhook_listen,
                port=self.config.webhook_port,
                secret=secret.get_secret_value(),
            )
        else:
            self.intake = PollingIntake(
                self.bot,
                self.application.process_update,
                self.albums.oldest_unconfirmed,
                self.config.poll_timeout_s,
            )
        await self.intake.start()

    async def stop(self) -> None:
        if self.intake is not None:
            await self.intake.stop()
        await self.albums.close()
        # Answers still being written stay undelivered in storage and are finished on restart.
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.application.stop()
        await self.application.shutdown()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait_until_stored(self, update_id: int) -> bool:
        album = self.albums.album_of(update_id)
        return True if album is None else await asyncio.shield(album.done)

    async def _resume_undelivered(self) -> None:
        for pending in await self.service.undelivered(inbound.PLATFORM):
            try:
                target = ReplyTarget.loads(pending.reply_to or "")
            except (ValueError, KeyError, TypeError):
                log.error(
                    "[%s] turn %d has no usable reply target; skipped",
                    pending.chat.key,
                    pending.turn_id,
                )
                await self.service.delivered(pending.turn_id)
                continue
            log.info(
                "[%s] finishing turn %d from before the restart", pending.chat.key, pending.turn_id
            )
            self._spawn(
                self._deliver(
                    self.service.resume(pending), target, pending.chat.key, pending.turn_id
                )
            )

    # -- handlers -----------------------------------------------------------------------------

    def _allowed(self, message: Message) -> bool:
        return inbound.is_allowed(
            message, self.config.allowed_user_ids, self.config.allowed_chat_ids
        )

    async def _refuse(self, message: Message) -> None:
        """One polite refusal per person and chat, ever; later messages are dropped quietly."""
        who = inbound.sender_id(message)
        log.info("[telegram:%s] user %s is not allowed", message.chat_id, who)
        if await self.service.claim_event(f"telegram:refused:{message.chat_id}:{who}"):
            await TelegramReply(self.bot, inbound.reply_target(message), 0).say(REFUSAL)

    async def _say_once(self, update: Update, text: str) -> None:
        """Reply with a notice unless this update was already answered before a restart."""
        message = update.message
        assert message is not None
        if await self.service.claim_event(f"telegram:{update.update_id}"):
            await TelegramReply(self.bot, inbound.reply_target(message), 0).say(text)

    async def _on_command(self, update: Update, context: Context) -> None:
        message = update.message
        assert message is not None
        name = inbound.command_name(message, self.bot)
        if name is None:
            return
        if not self._allowed(message):
            await self._refuse(message)
            return
        if not await self.service.claim_event(f"telegram:{update.update_id}"):
            return
        reply = await self.service.command(inbound.chat_ref(message), name)
        await TelegramReply(self.bot, inbound.reply_target(message), 0).say(reply)

    async def _on_message(self, update: Update, context: Context) -> None:
        message = update.message
        assert message is not None
        if message.media_group_id is not None:
            self.albums.add(update.update_id, message)  # addressing is decided for the whole album
            return
        if not inbound.is_addressed(message, self.bot):
            return
        if not self._allowed(message):
            await self._refuse(message)
            return
        if not inbound.has_content(message):
            if not inbound.is_group(message):
                await self._say_once(update, UNSUPPORTED)
            return
        await self._take_in([message], f"telegram:{update.update_id}")

    async def _on_album(self, album: Album) -> None:
        messages = album.messages
        if not any(inbound.is_addressed(m, self.bot) for m in messages):
            return
        if not self._allowed(messages[0]):
            await self._refuse(messages[0])
            return
        event_id = f"telegram:album:{album.chat_id}:{album.media_group_id}"
        await self._take_in(messages, event_id)

    async def _take_in(self, messages: list[Message], event_id: str) -> None:
        """Download, check and store the user's turn, then answer it in the background."""
        first = messages[0]
        target = inbound.reply_target(first)
        chat = inbound.chat_ref(first)
        text = " ".join(t for t in (inbound.user_text(m, self.bot) for m in messages) if t)
        try:
            images: list[bytes] = []
            for message in messages:
                images += await inbound.download_images(
                    message, self.bot, self.settings.images.max_file_bytes
                )
            incoming = Incoming(
                chat=chat,
                user_id=str(inbound.sender_id(first)),
                text=text,
                images=tuple(images),
                event_id=event_id,
                reply_to=target.dumps(),
            )
            receipt = await self.service.receive(incoming)
        except (inbound.InboundError, ImageError, UserInputError) as error:
            log.info("[%s] message refused: %s", chat.key, error)
            if await self.service.claim_event(f"{event_id}:refused"):
                await TelegramReply(self.bot, target, 0).say(str(error))
            return
        if isinstance(receipt, Duplicate):
            return  # answered (or being answered) already; Telegram delivered it again
        self._spawn(self._deliver(self.service.answer(receipt), target, chat.key, receipt.turn_id))

    async def _deliver(
        self,
        events: AsyncIterator[AnswerEvent],
        target: ReplyTarget,
        chat_key: str,
        turn_id: int,
    ) -> None:
        """Stream the answer into the chat; mark it delivered once every message is sent."""
        reply = TelegramReply(self.bot, target, self.config.edit_interval_s)
        reply.start_typing()
        try:
            async for event in events:
                if isinstance(event, Queued):
                    await reply.queued(event.position)
                elif isinstance(event, Delta):
                    await reply.update(event.text)
                elif isinstance(event, Answer):
                    await reply.finish(event.text)
                    await self.service.delivered(event.turn_id)
        except asyncio.CancelledError:
            # Stopping: the turn stays undelivered and is answered in full after the restart.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reply.interrupted(), INTERRUPT_NOTICE_S)
            raise
        except QueueFull:
            log.warning("[%s] queue full; turn %s refused", chat_key, turn_id)
            await reply.say(BUSY)
            await self.service.delivered(turn_id)  # not to be answered out of the blue later
        except Exception as error:
            if isinstance(error, NetworkError) and not isinstance(error, BadRequest):
                log.warning(
                    "[%s] Telegram unreachable (%s); turn %d is finished after a restart",
                    chat_key,
                    error,
                    turn_id,
                )
                return
            log.exception("[%s] answering turn %d failed", chat_key, turn_id)
            with contextlib.suppress(Exception):
                await reply.say(APOLOGY)
            await self.service.delivered(turn_id)  # a failing turn must not be retried forever
        finally:
            await reply.stop_typing()

    async def _on_error(self, update: object, context: Context) -> None:
        where = update.message.chat_id if isinstance(update, Update) and update.message else "?"
        log.error("[telegram:%s] error handling update", where, exc_info=context.error)
        if isinstance(update, Update) and update.message is not None:
            with contextlib.suppress(Exception):
                await TelegramReply(self.bot, inbound.reply_target(update.message), 0).say(APOLOGY)
