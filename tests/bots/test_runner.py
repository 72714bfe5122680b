"""Several ways in at once: the runner builds every configured adapter over one service."""

from __future__ import annotations

import asyncio
import base64

import httpx
from pydantic import SecretStr

from bots.runner import configured_adapters
from core.config import Settings
from core.service import ConversationService
from core.transformers_engine import TransformersEngine
from storage.store import ConversationStore
from tests.conftest import image_bytes
from tests.fakes.engines import RecordingEngine
from tests.fakes.telegram_api import TOKEN, FakeTelegram
from tests.fakes.telegram_updates import private_chat, user


async def test_telegram_and_web_share_one_model_and_one_queue(
    settings: Settings, store: ConversationStore, tiny_engine: TransformersEngine
) -> None:
    fake = FakeTelegram()
    await fake.start()
    telegram = settings.telegram.model_copy(update={
        "token": SecretStr(TOKEN), "base_url": fake.base_url,
        "base_file_url": fake.base_file_url, "edit_interval_s": 0.0, "poll_timeout_s": 1,
    })  # fmt: skip
    web = settings.web.model_copy(update={"port": 0})
    both = settings.model_copy(update={"telegram": telegram, "web": web})
    recorder = RecordingEngine(tiny_engine)
    service = ConversationService(both, store, recorder)
    adapters = configured_adapters(both, service)
    assert sorted(a.name for a in adapters) == ["telegram", "web"]
    for adapter in adapters:
        await adapter.start()
    try:
        web_adapter = next(a for a in adapters if a.name == "web")
        photo = base64.b64encode(image_bytes("JPEG")).decode()
        for n in range(3):
            fake.send(
                private_chat(100 + n),
                user(100 + n),
                photo=image_bytes("PNG"),
                caption=f"telegram question {n}",
            )
        async with httpx.AsyncClient(timeout=120) as client:
            replies = await asyncio.gather(*[
                client.post(web_adapter.url + "chat",
                            json={"image": photo, "query": f"web question {n}"})
                for n in range(3)
            ])  # fmt: skip
        assert all(r.status_code == 200 and "response" in r.json() for r in replies)
        await fake.wait_for(lambda: len(recorder.prompts) == 6)
        for _ in range(600):  # the last Telegram answer may still be on its way out
            if not await service.undelivered("telegram"):
                break
            await asyncio.sleep(0.05)
        assert await service.undelivered("telegram") == []
        assert all(fake.sent_to(100 + n) for n in range(3))
    finally:
        for adapter in reversed(adapters):
            await adapter.stop()
        await fake.stop()
    asked = sorted(p[-1].text for p in recorder.prompts)
    assert asked == sorted(
        [f"telegram question {n}" for n in range(3)] + [f"web question {n}" for n in range(3)]
    )
    assert recorder.max_running == 1  # one model, one generation at a time, across platforms
