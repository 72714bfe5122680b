"""The composition root: load the model once, open storage, start every configured adapter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from bots.base import Adapter
from core.config import Settings
from core.service import ConversationService
from storage.store import ConversationStore

log = logging.getLogger(__name__)

NOTHING_CONFIGURED = (
    "No way in is configured, so there is nothing to run. Fill in at least one of these in "
    "config.toml (see config.example.toml) or the environment:\n"
    "  [telegram] token            (VISIONBOT_TELEGRAM__TOKEN)\n"
    "  [slack] bot_token, app_token\n"
    "                              (VISIONBOT_SLACK__BOT_TOKEN, VISIONBOT_SLACK__APP_TOKEN)\n"
    "  [web] enabled = true        (VISIONBOT_WEB__ENABLED=true)\n"
    'Or try the model without any chat platform: visionbot chat --image photo.jpg "question"'
)


def configured_adapters(settings: Settings, service: ConversationService) -> list[Adapter]:
    """The adapters whose settings are filled in (imported lazily: each pulls in its SDK)."""
    adapters: list[Adapter] = []
    if settings.telegram.token is not None:
        from bots.telegram import TelegramAdapter

        adapters.append(TelegramAdapter(settings, service))
    if settings.slack.bot_token is not None:
        from bots.slack import SlackAdapter

        adapters.append(SlackAdapter(settings, service))
    if settings.web.enabled:
        from bots.web import WebAdapter

        adapters.append(WebAdapter(settings, service))
    return adapters


def any_adapter_configured(settings: Settings) -> bool:
    return (
        settings.telegram.token is not None
        or settings.slack.bot_token is not None
        or settings.web.enabled
    )


def build_service(settings: Settings) -> ConversationService:
    """Open storage and load the model (once); the slow part of start-up."""
    # Imported here so that config errors and "nothing configured" answer without loading torch.
    from core.transformers_engine import EngineOptions, TransformersEngine

    store = ConversationStore(settings.storage.url)
    engine = TransformersEngine(EngineOptions.from_settings(settings.model))
    return ConversationService(settings, store, engine)


async def serve(
    settings: Settings, service: ConversationService, stop_event: asyncio.Event | None = None
) -> None:
    """Run every configured adapter until SIGINT/SIGTERM (or ``stop_event``), then stop them."""
    stop_event = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not possible off the main thread (tests) or on some platforms: stop_event still works.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop_event.set)
    adapters = configured_adapters(settings, service)
    started: list[Adapter] = []
    try:
        for adapter in adapters:
            await adapter.start()
            started.append(adapter)
            log.info("%s adapter running", adapter.name)
        await stop_event.wait()
    finally:
        for adapter in reversed(started):
            try:
                await adapter.stop()
            except Exception:
                log.exception("%s adapter did not stop cleanly", adapter.name)
        service.store.close()
        log.info("stopped")
