"""A restart of the bot process: history survives, nothing is answered twice, nothing is lost."""

from __future__ import annotations

import pytest

from bots.telegram_reply import INTERRUPTED
from storage.store import ConversationStore
from tests.bots.telegram.telegram_helpers import with_telegram
from tests.conftest import image_bytes
from tests.fakes.engines import FixedTextEngine, RecordingEngine
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_updates import private_chat, user

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADA = 501
CHAT, SENDER = private_chat(ADA), user(ADA)


def texts(fake: FakeTelegram) -> list[str]:
    return [m.text for m in fake.sent_to(ADA)]


async def idle(fake: FakeTelegram, adapter: object) -> None:
    await fake.wait_for(lambda: not fake.pending_update_ids())
    await fake.wait_for(lambda: not adapter._tasks)  # type: ignore[attr-defined]


async def test_restart_keeps_history_and_ignores_a_redelivered_update(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    async with run_bot() as bot:
        first = fake_telegram.send(CHAT, SENDER, photo=image_bytes(), caption="What is it?")
        await fake_telegram.wait_for(lambda: recording.prompts)
        await idle(fake_telegram, bot)
    assert len(texts(fake_telegram)) == 1

    fake_telegram.redeliver(first)  # as if the process died before confirming it
    async with run_bot() as bot:
        await idle(fake_telegram, bot)
        assert len(recording.prompts) == 1  # the old update was not answered again
        fake_telegram.send(CHAT, SENDER, "And what colour is it?")
        await fake_telegram.wait_for(lambda: len(recording.prompts) == 2)
        await idle(fake_telegram, bot)
    follow_up = recording.prompts[1]
    assert [turn.text for turn in follow_up if turn.role == "user"] == [
        "What is it?",
        "And what colour is it?",
    ]
    assert len(follow_up[0].images) == 1
    assert len(texts(fake_telegram)) == 2


async def test_a_turn_stored_before_a_crash_is_answered_once_after_the_restart(
    fake_telegram: FakeTelegram, run_bot
):
    stuck = FixedTextEngine("never finished " * 50, piece_chars=5, delay_s=0.2)
    async with run_bot(engine=stuck) as bot:
        question = fake_telegram.send(CHAT, SENDER, "Are you there?")
        await fake_telegram.wait_for(lambda: stuck.prompts)
        await fake_telegram.wait_for(lambda: texts(fake_telegram))
    # Stopped mid-answer: the turn was stored but never delivered, and the user was told.
    assert [t.turn_id for t in await bot.service.undelivered("telegram")] != []
    [partial] = texts(fake_telegram)
    assert partial.startswith("never") and partial.endswith(INTERRUPTED)

    fake_telegram.redeliver(question)
    engine = FixedTextEngine("Yes, here I am.")
    async with run_bot(engine=engine) as bot:
        await fake_telegram.wait_for(lambda: "Yes, here I am." in texts(fake_telegram))
        await idle(fake_telegram, bot)
        assert await bot.service.undelivered("telegram") == []
    assert len(engine.prompts) == 1
    final = [m for m in fake_telegram.sent_to(ADA) if m.text == "Yes, here I am."]
    assert [m.reply_to for m in final] == [fake_telegram.injected[question]["message_id"]]


async def test_album_interrupted_while_gathering_arrives_after_the_restart(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine, tg_settings
):
    slow = with_telegram(tg_settings, album_wait_s=30.0)
    async with run_bot(settings=slow):
        fake_telegram.send(CHAT, SENDER, photo=image_bytes(), caption="Compare", media_group_id="g")
        fake_telegram.send(CHAT, SENDER, photo=image_bytes(), media_group_id="g")
        await fake_telegram.wait_for(
            lambda: (
                len(fake_telegram.downloads) == 0 and len(fake_telegram.calls_of("getUpdates")) >= 3
            )
        )
    assert len(fake_telegram.pending_update_ids()) == 2  # never confirmed to Telegram

    async with run_bot() as bot:
        await fake_telegram.wait_for(lambda: recording.prompts)
        await idle(fake_telegram, bot)
    assert len(recording.prompts) == 1
    assert len(recording.prompts[0][-1].images) == 2
    assert len(texts(fake_telegram)) == 1


async def test_updates_are_confirmed_to_telegram_only_once_stored(
    fake_telegram: FakeTelegram, run_bot, tg_settings
):
    observer = ConversationStore(tg_settings.storage.url)
    stored_when_confirmed: list[list[str]] = []

    def check(update: dict) -> None:
        turns = observer.history(f"telegram:{ADA}")
        stored_when_confirmed.append([t.text for t in turns if t.role == "user"])

    fake_telegram.on_confirm = check
    engine = FixedTextEngine("Noted.", delay_s=0.05)
    async with run_bot(engine=engine) as bot:
        fake_telegram.send(CHAT, SENDER, photo=image_bytes(), caption="one")
        fake_telegram.send(CHAT, SENDER, photo=image_bytes(), caption="two")
        fake_telegram.send(CHAT, SENDER, "three")
        await idle(fake_telegram, bot)
    observer.close()
    assert len(stored_when_confirmed) == 3
    for number, texts_then in zip(("one", "two", "three"), stored_when_confirmed, strict=True):
        assert number in texts_then
