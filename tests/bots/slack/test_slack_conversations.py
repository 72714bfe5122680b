"""End to end: signed Events API requests in, the real adapter and core, a fake Slack Web API out."""

from __future__ import annotations

from bots.slack_mrkdwn import to_mrkdwn
from bots.slack_reply import LOOKING
from tests.bots.slack.conftest import CHANNEL, DM_CHANNEL, USER, MakeBot, SlackBot
from tests.conftest import image_bytes
from tests.fakes.slack_api import BOT_TOKEN, BOT_USER_ID, Message


def user_turns(bot: SlackBot, prompt_index: int = -1) -> list:
    return [t for t in bot.prompts()[prompt_index] if t.role == "user"]


async def test_mention_with_image_is_answered_in_its_thread(bot: SlackBot) -> None:
    photo = bot.fake.add_file("cat.jpg", image_bytes())
    ts, _ = await bot.say(f"<@{BOT_USER_ID}> what is in this picture?", files=(photo,))
    await bot.adapter.drain()

    # Signed in once at start-up, and the file fetched with the bot token.
    assert bot.fake.calls_to("auth.test")
    assert [d[1:] for d in bot.fake.downloads] == [(f"Bearer {BOT_TOKEN}", 200)]

    replies = bot.fake.bot_messages(CHANNEL)
    assert len(replies) == 1
    reply = replies[0]
    assert reply.thread_ts == ts
    assert reply.edits[0].startswith(LOOKING)

    key = f"slack:{CHANNEL}:{ts}"
    history = bot.service.store.history(key)
    assert [t.role for t in history] == ["user", "assistant"]
    assert history[0].text == "what is in this picture?"  # the mention is not part of the question
    assert len(history[0].images) == 1
    assert reply.text == to_mrkdwn(history[1].text) or (not history[1].text.strip())

    (question,) = user_turns(bot)
    assert question.text == "what is in this picture?"
    assert len(question.images) == 1
    assert bot.service.store.undelivered("slack") == []
