"""Webhook mode: Telegram POSTs updates to us; only requests with the secret token count."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from pydantic import SecretStr

from tests.bots.telegram.telegram_helpers import with_telegram
from tests.conftest import image_bytes
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


async def test_webhook_album_parts_are_acknowledged_once_the_album_is_stored(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine, tg_settings
):
    settings = with_telegram(
        tg_settings,
        mode="webhook",
        webhook_url="https://bot.example.org/hook",
        webhook_port=0,
        webhook_secret=SecretStr(SECRET),
    )
    parts = [
        {
            "update_id": 9100 + number,
            "message": fake_telegram.user_message(
                private_chat(ADA), user(ADA), photo=image_bytes(), caption=caption,
                media_group_id="wh",
            ),
        }
        for number, caption in enumerate(("Same or different?", None))
    ]  # fmt: skip
    async with run_bot(settings=settings) as bot, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{bot.intake.bound_port}/hook"

        async def post(update: dict) -> int:
            async with http.post(url, json=update, headers={HEADER: SECRET}) as response:
                return response.status

        statuses = await asyncio.gather(*(post(part) for part in parts))
        assert statuses == [200, 200]
        [turn] = [t for t in bot.service.store.history(f"telegram:{ADA}") if t.role == "user"]
        assert len(turn.images) == 2  # stored before either part was acknowledged
        await fake_telegram.wait_for(lambda: fake_telegram.sent_to(ADA) and not bot._tasks)
    assert len(recording.prompts) == 1
