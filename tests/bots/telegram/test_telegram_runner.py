"""``visionbot run`` with a Telegram token: the runner starts the adapter, which says who it is."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import SecretStr

from bots.runner import serve
from bots.telegram import TelegramAdapter
from core.config import ConfigError
from core.service import ConversationService
from storage.store import ConversationStore
from tests.bots.telegram.telegram_helpers import with_telegram
from tests.fakes.engines import RecordingEngine
from tests.fakes.telegram_api import FakeTelegram

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_runner_starts_polling_and_logs_the_bot_name(
    fake_telegram: FakeTelegram, tg_settings, recording: RecordingEngine, caplog
):
    settings = tg_settings.model_copy(
        update={"web": tg_settings.web.model_copy(update={"enabled": False})}
    )
    service = ConversationService(settings, ConversationStore(settings.storage.url), recording)
    stop = asyncio.Event()
    caplog.set_level(logging.INFO)
    running = asyncio.create_task(serve(settings, service, stop))
    await fake_telegram.wait_for(lambda: fake_telegram.calls_of("getUpdates"))
    stop.set()
    await asyncio.wait_for(running, 10)
    assert f"running as @{fake_telegram.username}" in caplog.text
    assert [c.method for c in fake_telegram.calls[:2]] == ["getMe", "setMyCommands"]


async def test_a_token_telegram_refuses_is_a_clear_config_error(
    fake_telegram: FakeTelegram, tg_settings, recording: RecordingEngine
):
    settings = with_telegram(tg_settings, token=SecretStr("999:not-the-token"))
    store = ConversationStore(settings.storage.url)
    adapter = TelegramAdapter(settings, ConversationService(settings, store, recording))
    with pytest.raises(ConfigError, match=r"refused 'telegram\.token'"):
        await adapter.start()
    store.close()
