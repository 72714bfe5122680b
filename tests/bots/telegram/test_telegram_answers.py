"""How answers are shown: streaming edits, splitting at 4096, Markdown, queue position, fallback."""

from __future__ import annotations

import itertools

import pytest

from bots.telegram import BUSY
from bots.telegram_render import markdown_to_html, utf16_len
from tests.bots.telegram.telegram_helpers import MARKDOWN, with_telegram
from tests.conftest import image_bytes
from tests.fakes.engines import FixedTextEngine
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_html import visible_text
from tests.fakes.telegram_updates import private_chat, user

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADA, BOB = 501, 502


def texts(fake: FakeTelegram, chat_id: int = ADA) -> list[str]:
    return [m.text for m in fake.sent_to(chat_id)]


async def answered(fake: FakeTelegram, adapter: object, count: int, chat_id: int = ADA) -> None:
    await fake.wait_for(lambda: len(texts(fake, chat_id)) >= count)
    await fake.wait_for(lambda: not adapter._tasks)  # type: ignore[attr-defined]


async def test_long_answer_is_split_into_several_messages(fake_telegram: FakeTelegram, run_bot):
    paragraph = "The quick brown fox jumps over the lazy dog. " * 40 + "\n\n"
    long_answer = paragraph * 6  # about 10 800 characters
    engine = FixedTextEngine(long_answer, piece_chars=500)
    async with run_bot(engine=engine) as bot:
        fake_telegram.send(private_chat(ADA), user(ADA), photo=image_bytes(), caption="Tell me all")
        await answered(fake_telegram, bot, 3)
    shown = texts(fake_telegram)
    assert len(shown) == 3
    assert all(utf16_len(text) <= 4096 for text in shown)
    assert " ".join(shown).split() == long_answer.split()
    assert fake_telegram.errors == []


async def test_markdown_heavy_answer_is_accepted_and_streamed_without_repeats(
    fake_telegram: FakeTelegram, run_bot
):
    engine = FixedTextEngine(MARKDOWN, piece_chars=25)
    async with run_bot(engine=engine) as bot:
        fake_telegram.send(private_chat(ADA), user(ADA), "Summarise the invoice")
        await answered(fake_telegram, bot, 1)
    [message] = fake_telegram.sent_to(ADA)
    assert fake_telegram.errors == []  # no refused entities, no "message is not modified"
    assert message.parse_mode == "HTML"
    assert message.edits >= 3  # it grew in place
    assert message.text == visible_text(markdown_to_html(MARKDOWN))
    assert "**" not in message.text


async def test_edits_are_throttled(fake_telegram: FakeTelegram, run_bot, tg_settings):
    settings = with_telegram(tg_settings, edit_interval_s=0.5)
    engine = FixedTextEngine("word " * 200, piece_chars=5, delay_s=0.01)  # ~2 s of streaming
    async with run_bot(engine=engine, settings=settings) as bot:
        fake_telegram.send(private_chat(ADA), user(ADA), "Go")
        await answered(fake_telegram, bot, 1)
    writes = fake_telegram.calls_of("sendMessage") + fake_telegram.calls_of("editMessageText")
    moments = sorted(call.at for call in writes)
    assert 2 <= len(moments) <= 8  # not one edit per piece (200 pieces)
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments[:-1])]
    assert all(gap >= 0.45 for gap in gaps)  # the final edit may come sooner
    assert texts(fake_telegram) == [("word " * 200).strip()]


async def test_second_chat_learns_its_queue_position_which_becomes_the_answer(
    fake_telegram: FakeTelegram, run_bot
):
    engine = FixedTextEngine("A slow and careful answer.", piece_chars=3, delay_s=0.15)
    async with run_bot(engine=engine) as bot:
        fake_telegram.send(private_chat(ADA), user(ADA), "First?")
        await fake_telegram.wait_for(lambda: engine.prompts)
        fake_telegram.send(private_chat(BOB), user(BOB), "Second?")
        await fake_telegram.wait_for(
            lambda: any("number 1 in the queue" in t for t in texts(fake_telegram, BOB))
        )
        status = fake_telegram.sent_to(BOB)[0]
        assert len(engine.prompts) == 1  # received and told while the first one generates
        await answered(fake_telegram, bot, 1, BOB)
    [answer] = fake_telegram.sent_to(BOB)
    assert answer.message_id == status.message_id  # the position message was replaced
    assert answer.text == "A slow and careful answer."
    assert texts(fake_telegram, ADA) == ["A slow and careful answer."]


async def test_plain_text_is_sent_when_telegram_refuses_the_html(
    fake_telegram: FakeTelegram, run_bot
):
    fake_telegram.refuse_html = True
    async with run_bot(engine=FixedTextEngine("**Bold** <claim>")) as bot:
        fake_telegram.send(private_chat(ADA), user(ADA), "Go")
        await answered(fake_telegram, bot, 1)
    [message] = fake_telegram.sent_to(ADA)
    assert message.parse_mode is None
    assert message.text == "**Bold** <claim>"


async def test_a_full_queue_gets_a_busy_reply_and_is_not_answered_later(
    fake_telegram: FakeTelegram, run_bot, tg_settings
):
    settings = tg_settings.model_copy(
        update={"queue": tg_settings.queue.model_copy(update={"max_waiting": 1})}
    )
    engine = FixedTextEngine("Slowly but surely.", piece_chars=2, delay_s=0.1)
    carol = 503
    async with run_bot(engine=engine, settings=settings) as bot:
        fake_telegram.send(private_chat(ADA), user(ADA), "One")
        await fake_telegram.wait_for(lambda: engine.prompts)
        fake_telegram.send(private_chat(BOB), user(BOB), "Two")
        await fake_telegram.wait_for(lambda: texts(fake_telegram, BOB))
        fake_telegram.send(private_chat(carol), user(carol), "Three")
        await fake_telegram.wait_for(lambda: texts(fake_telegram, carol))
        await fake_telegram.wait_for(lambda: not bot._tasks, timeout=30)
        assert await bot.service.undelivered("telegram") == []
    assert texts(fake_telegram, carol) == [BUSY]
    assert texts(fake_telegram, BOB) == ["Slowly but surely."]
    assert len(engine.prompts) == 2
