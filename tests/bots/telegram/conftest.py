"""Fixtures for the Telegram adapter: the fake Bot API server and a running adapter over it.

No ``__init__.py`` in this folder: it would make it a package named ``telegram`` that hides
python-telegram-bot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import SecretStr

from bots.telegram import TelegramAdapter
from core.config import Settings
from core.engine import Engine
from core.service import ConversationService
from storage.store import ConversationStore
from tests.fakes.engines import RecordingEngine
from tests.fakes.telegram_api import TOKEN, FakeTelegram


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def tg_settings(settings: Settings, fake_telegram: FakeTelegram) -> Settings:
    """The shared test settings, with Telegram pointed at the fake server and quick timings."""
    telegram = settings.telegram.model_copy(
        update={
            "token": SecretStr(TOKEN),
            "base_url": fake_telegram.base_url,
            "base_file_url": fake_telegram.base_file_url,
            "edit_interval_s": 0.0,
            "album_wait_s": 0.3,
            "poll_timeout_s": 1,
        }
    )
    return settings.model_copy(update={"telegram": telegram})


@pytest.fixture
def recording(tiny_engine: Engine) -> RecordingEngine:
    return RecordingEngine(tiny_engine)


RunBot = Callable[..., Any]


@pytest.fixture
def run_bot(tg_settings: Settings, recording: RecordingEngine) -> RunBot:
    """``async with run_bot(engine=…, settings=…) as adapter``: a started adapter, stopped after.

    Each call opens its own store over the same SQLite file, like a fresh bot process would.
    """

    @asynccontextmanager
    async def run(
        engine: Engine | None = None, settings: Settings | None = None
    ) -> AsyncIterator[TelegramAdapter]:
        chosen = settings or tg_settings
        store = ConversationStore(chosen.storage.url)
        service = ConversationService(chosen, store, engine or recording)
        adapter = TelegramAdapter(chosen, service)
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.stop()
            store.close()

    return run
