"""Who the bot answers: commands, groups (mentions, replies, topics) and the allow-lists."""

from __future__ import annotations

import pytest

from bots.telegram import REFUSAL, UNSUPPORTED
from core.commands import HELP_TEXT, START_TEXT
from tests.bots.telegram.telegram_helpers import with_telegram
from tests.conftest import image_bytes
from tests.fakes.engines import RecordingEngine
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_updates import group_chat, private_chat, user

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADA, BOB = 501, 502
GROUP = -1001
FORUM = -1002


def texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [m.text for m in fake.sent_to(chat_id)]


async def idle(fake: FakeTelegram, adapter: object) -> None:
    """Every injected update was fetched and confirmed, and no answer is still being written."""
    await fake.wait_for(lambda: not fake.pending_update_ids())
    await fake.wait_for(lambda: not adapter._tasks)  # type: ignore[attr-defined]


async def test_start_help_and_unknown_commands(fake_telegram: FakeTelegram, run_bot, recording):
    async with run_bot() as bot:
        for command in ("/start", "/help", "/frobnicate now"):
            fake_telegram.send(private_chat(ADA), user(ADA), command)
        await fake_telegram.wait_for(lambda: len(texts(fake_telegram, ADA)) == 3)
        await idle(fake_telegram, bot)
    start, help_, unknown = texts(fake_telegram, ADA)
    assert start == START_TEXT
    assert help_ == HELP_TEXT
    assert "don't know the command 'frobnicate'" in unknown
    assert recording.prompts == []
    names = [c["command"] for c in fake_telegram.calls_of("setMyCommands")[0].params["commands"]]
    assert names == ["start", "help", "reset"]


async def test_group_message_without_mention_is_ignored_with_mention_answered(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    chat, name = group_chat(GROUP), f"@{fake_telegram.username}"
    async with run_bot() as bot:
        fake_telegram.send(chat, user(ADA), "what a nice photo everyone")
        fake_telegram.send(chat, user(ADA), photo=image_bytes(), caption="look at this")
        fake_telegram.send(chat, user(BOB), "@someone_else what is it?")
        await idle(fake_telegram, bot)
        assert recording.prompts == []
        assert texts(fake_telegram, GROUP) == []

        fake_telegram.send(chat, user(ADA), photo=image_bytes(), caption=f"{name} what is it?")
        await fake_telegram.wait_for(lambda: len(recording.prompts) == 1)
        await idle(fake_telegram, bot)
        [answer] = fake_telegram.sent_to(GROUP)
        # Replying to the bot's own message counts as addressing it.
        fake_telegram.send(
            chat, user(BOB), "and the colour?", reply_to_message_id=answer.message_id
        )
        await fake_telegram.wait_for(lambda: len(recording.prompts) == 2)
        await idle(fake_telegram, bot)
    first, follow_up = recording.prompts
    assert first[-1].text == "what is it?"  # the mention is not part of the question
    assert len(first[-1].images) == 1
    assert follow_up[-1].text == "and the colour?"
    assert follow_up[0].text == "what is it?"  # one conversation per group
    assert len(texts(fake_telegram, GROUP)) == 2


async def test_forum_topics_are_separate_conversations(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    chat, name = group_chat(FORUM, forum=True), f"@{fake_telegram.username}"
    async with run_bot() as bot:
        fake_telegram.send(
            chat, user(ADA), photo=image_bytes(), caption=f"{name} first?", thread_id=7
        )
        await fake_telegram.wait_for(lambda: len(recording.prompts) == 1)
        fake_telegram.send(chat, user(ADA), f"{name} second?", thread_id=9)
        await fake_telegram.wait_for(lambda: len(recording.prompts) == 2)
        await idle(fake_telegram, bot)
    assert [turn.text for turn in recording.prompts[1]] == ["second?"]
    assert sorted(m.thread_id for m in fake_telegram.sent_to(FORUM)) == [7, 9]
    actions = {c.params.get("message_thread_id") for c in fake_telegram.calls_of("sendChatAction")}
    assert actions == {7, 9}


async def test_users_not_on_the_allow_list_get_one_refusal_and_reach_nothing(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine, tg_settings
):
    settings = with_telegram(tg_settings, allowed_user_ids=[ADA])
    async with run_bot(settings=settings) as bot:
        fake_telegram.send(private_chat(BOB), user(BOB), photo=image_bytes(), caption="hi?")
        fake_telegram.send(private_chat(BOB), user(BOB), "/start")
        fake_telegram.send(private_chat(BOB), user(BOB), "hello??")
        fake_telegram.send(private_chat(ADA), user(ADA), "am I allowed?")
        await fake_telegram.wait_for(lambda: len(recording.prompts) == 1)
        await idle(fake_telegram, bot)
    assert texts(fake_telegram, BOB) == [REFUSAL]
    assert [turn.text for turn in recording.prompts[0]] == ["am I allowed?"]
    assert bot.service.store.history(f"telegram:{BOB}") == []
    assert len(texts(fake_telegram, ADA)) == 1


async def test_allowed_chat_lets_everyone_in_it_ask(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine, tg_settings
):
    settings = with_telegram(tg_settings, allowed_chat_ids=[GROUP])
    name = f"@{fake_telegram.username}"
    async with run_bot(settings=settings) as bot:
        fake_telegram.send(group_chat(GROUP), user(BOB), f"{name} hello?")
        fake_telegram.send(group_chat(FORUM), user(BOB), f"{name} and here?")
        await fake_telegram.wait_for(lambda: len(recording.prompts) == 1)
        await idle(fake_telegram, bot)
    assert texts(fake_telegram, FORUM) == [REFUSAL]
    assert len(texts(fake_telegram, GROUP)) == 1


async def test_message_without_text_or_image_gets_a_hint(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    location = fake_telegram.user_message(private_chat(ADA), user(ADA))
    location["location"] = {"latitude": 52.37, "longitude": 4.89}
    async with run_bot() as bot:
        fake_telegram.push(location)
        await fake_telegram.wait_for(lambda: texts(fake_telegram, ADA))
        await idle(fake_telegram, bot)
    assert texts(fake_telegram, ADA) == [UNSUPPORTED]
    assert recording.prompts == []


async def test_album_in_a_group_counts_when_its_caption_mentions_the_bot(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    chat, name = group_chat(GROUP), f"@{fake_telegram.username}"
    async with run_bot() as bot:
        for caption in (None, f"{name} which is sharper?"):
            fake_telegram.send(
                chat, user(ADA), photo=image_bytes(), caption=caption, media_group_id="a"
            )
        for _ in range(2):
            fake_telegram.send(chat, user(BOB), photo=image_bytes(), media_group_id="b")
        await fake_telegram.wait_for(lambda: recording.prompts)
        await idle(fake_telegram, bot)
    [prompt] = recording.prompts
    assert prompt[-1].text == "which is sharper?"
    assert len(prompt[-1].images) == 2
    assert len(texts(fake_telegram, GROUP)) == 1
