"""Webhook mode: Telegram POSTs updates to us; only requests with the secret token count."""

from __future__ import annotations

import aiohttp
import pytest
from pydantic import SecretStr

from tests.bots.telegram.telegram_helpers import with_telegram
from tests.fakes.engines import RecordingEngine
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_updates import private_chat, user

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADA = 501
SECRET = "s3cret-token_value"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def test_webhook_refuses_requests_without_the_secret_and_answers_the_right_one(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine, tg_settings
):
    settings = with_telegram(
        tg_settings,
        mode="webhook",
        webhook_url="https://bot.example.org/telegram/hook",
        webhook_listen="127.0.0.1",
        webhook_port=0,
        webhook_secret=SecretStr(SECRET),
    )
    message = fake_telegram.user_message(private_chat(ADA), user(ADA), "Hello over the webhook")
    update = {"update_id": 9001, "message": message}
    async with run_bot(settings=settings) as bot, aiohttp.ClientSession() as http:
        registered = fake_telegram.webhook
        assert registered is not None
        assert registered["url"] == "https://bot.example.org/telegram/hook"
        assert registered["secret_token"] == SECRET
        url = f"http://127.0.0.1:{bot.intake.bound_port}/telegram/hook"
        for headers in ({}, {HEADER: "wrong"}):
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 403
        assert recording.prompts == []
        async with http.post(url, json=update, headers={HEADER: SECRET}) as response:
            assert response.status == 200
        # Acknowledged only after it was stored: the turn is already in the history.
        assert [t.text for t in bot.service.store.history(f"telegram:{ADA}")][:1] == [
            "Hello over the webhook"
        ]
        await fake_telegram.wait_for(lambda: fake_telegram.sent_to(ADA))
        async with http.post(url, json=update, headers={HEADER: SECRET}) as response:
            assert response.status == 200  # a repeated delivery is accepted, not answered
        await fake_telegram.wait_for(lambda: not bot._tasks)
    assert len(recording.prompts) == 1
    assert len(fake_telegram.sent_to(ADA)) == 1
    assert fake_telegram.calls_of("getUpdates") == []
