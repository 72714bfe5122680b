"""Getting updates from Telegram, acknowledging each one only after it has been handled.

python-telegram-bot's own ``Updater`` acknowledges an update as soon as it is queued (its next
``getUpdates`` runs at once, and ``stop()`` confirms everything fetched), so an update could be
lost if the process died before our handler stored it. These two small intakes instead await the
handler (which stores the turn) before confirming: polling by moving the ``offset`` forward,
webhook by answering the HTTP request with 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Bot, Update
from telegram.error import TelegramError

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
RETRY_AFTER_ERROR_S = 3.0
# While an album is gathering, getUpdates returns its parts again at once; poll gently meanwhile.
HELD_POLL_S = 0.2

Handle = Callable[[Update], Awaitable[None]]
OldestUnconfirmed = Callable[[], int | None]


class PollingIntake:
    """Long polling; ``offset`` never moves past an update that is not handled yet."""

    def __init__(
        self, bot: Bot, handle: Handle, oldest_unconfirmed: OldestUnconfirmed, timeout_s: int
    ) -> None:
        self.bot = bot
        self.handle = handle
        self.oldest_unconfirmed = oldest_unconfirmed
        self.timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # getUpdates is refused while a webhook is set (e.g. left over from webhook mode).
        await self.bot.delete_webhook(drop_pending_updates=False)
        self._task = asyncio.create_task(self._run(), name="telegram-polling")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        offset = 0
        handled: set[int] = set()  # seen in this process but not yet confirmed (albums)
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=self.timeout_s, allowed_updates=ALLOWED_UPDATES
                )
            except TelegramError as error:
                log.warning("getUpdates failed (%s); retrying in %.0fs", error, RETRY_AFTER_ERROR_S)
                await asyncio.sleep(RETRY_AFTER_ERROR_S)
                continue
            except Exception:
                # Polling must outlive anything odd Telegram (or a proxy) sends back.
                log.exception("getUpdates answer unusable; retrying in %.0fs", RETRY_AFTER_ERROR_S)
                await asyncio.sleep(RETRY_AFTER_ERROR_S)
                continue
            fresh = [update for update in updates if update.update_id not in handled]
            # Chats are taken in side by side; one chat's messages in order, so its history is.
            by_chat: dict[int, list[Update]] = {}
            for update in fresh:
                chat = update.effective_chat
                by_chat.setdefault(chat.id if chat else 0, []).append(update)
            await asyncio.gather(*(self._handle_in_order(batch) for batch in by_chat.values()))
            handled.update(update.update_id for update in fresh)
            if updates:
                offset = max(offset, updates[-1].update_id + 1)
            held = self.oldest_unconfirmed()
            confirm_below = offset if held is None else min(offset, held)
            handled = {update_id for update_id in handled if update_id >= confirm_below}
            if held is not None:
                offset = confirm_below
                if not fresh:
                    await asyncio.sleep(HELD_POLL_S)

    async def _handle_in_order(self, updates: list[Update]) -> None:
        for update in updates:
            try:
                await self.handle(update)
            except Exception:
                # One bad update must not stop the bot (nor be redelivered forever).
                log.exception("update %d could not be handled", update.update_id)


class WebhookIntake:
    """An HTTP endpoint for Telegram's webhook; checks the secret token, 200 once handled."""

    def __init__(
        self,
        bot: Bot,
        handle: Handle,
        wait_until_stored: Callable[[int], Awaitable[bool]],
        *,
        url: str,
        listen: str,
        port: int,
        secret: str,
    ) -> None:
        self.bot = bot
        self.handle = handle
        self.wait_until_stored = wait_until_stored
        self.url = url
        self.listen = listen
        self.port = port
        self.secret = secret
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(urlsplit(self.url).path or "/", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.listen, self.port)
        await site.start()
        server = site._server  # aiohttp offers no public accessor for the bound port
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        await self.bot.set_webhook(
            url=self.url, secret_token=self.secret, allowed_updates=ALLOWED_UPDATES
        )
        log.info("webhook listening on %s:%s for %s", self.listen, self.bound_port, self.url)

    async def stop(self) -> None:
        # The webhook stays registered: Telegram keeps updates until we are back.
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("webhook request from %s refused: wrong secret token", request.remote)
            return web.Response(status=403, text="forbidden")
        try:
            update = Update.de_json(await request.json(), self.bot)
        except Exception:
            log.warning("webhook request from %s refused: not an update", request.remote)
            return web.Response(status=400, text="not a Telegram update")
        try:
            await self.handle(update)
        except Exception:
            log.exception("update %d could not be handled", update.update_id)
        # A non-2xx answer makes Telegram deliver the update again later.
        stored = await self.wait_until_stored(update.update_id)
        return web.Response(status=200 if stored else 503)
