"""The web way in: serves the /chat API, the OpenAI-compatible /v1 API and the chat page.

Runs uvicorn inside the shared event loop, beside the other adapters, over the same service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from bots.web_api import ONE_SHOT, PLATFORM
from bots.web_app import create_app
from core.config import ConfigError, Settings
from core.queue import QueueFull
from core.service import ConversationService

__all__ = ["WebAdapter", "create_app"]

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The runner owns SIGINT/SIGTERM and stops every adapter; uvicorn must not take them over.
        yield


class WebAdapter:
    """Serves HTTP on ``[web] host:port``; ``start`` returns once it accepts connections."""

    name = "web"

    def __init__(self, settings: Settings, service: ConversationService) -> None:
        # A public host without API keys is refused by the settings themselves (core.config).
        self.settings = settings
        self.service = service
        self.app = create_app(settings, service)
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        host = self.settings.web.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    def _bind(self) -> socket.socket:
        web = self.settings.web
        family = socket.AF_INET6 if ":" in web.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((web.host, web.port))
        except OSError as error:
            sock.close()
            raise ConfigError(
                f"config: cannot listen on {web.host}:{web.port} ({error.strerror}); "
                "set [web] port (VISIONBOT_WEB__PORT) to a free port."
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        # Binding here (not inside uvicorn) turns a busy port into a clear error instead of exit.
        sock = self._bind()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="web-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # surfaces the failure
                raise RuntimeError("the web server stopped during start-up")
            await asyncio.sleep(0.01)
        log.info("web chat page and API on %s", self.url)
        self._recovery = asyncio.create_task(self._recover(), name="web-recovery")

    async def _recover(self) -> None:
        """Finish what a previous run stored but never answered (it stopped or crashed).

        The HTTP client that asked is gone, but a page session shows its history on reload, so
        its unanswered question still gets an answer; one-shot calls cannot be continued by
        anyone, so they are only closed.
        """
        for pending in await self.service.undelivered(PLATFORM):
            key = pending.chat.key
            try:
                if pending.answer is None and not pending.chat.chat_id.startswith(ONE_SHOT):
                    log.info("[%s] answering turn %d left from the last run", key, pending.turn_id)
                    async for _event in self.service.resume(pending):
                        pass
                await self.service.delivered(pending.turn_id)
            except QueueFull:
                log.warning(
                    "[%s] queue full; turn %d is left for the next start", key, pending.turn_id
                )
                return
            except Exception:
                log.exception("[%s] could not finish turn %d", key, pending.turn_id)

    async def stop(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
            self._recovery = None
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = None
        self._task = None
