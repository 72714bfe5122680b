"""Delivery guarantees end to end: signatures, acknowledgement before generation, retries and
restarts, and how answers are shown (streaming edits, splitting, no pings)."""

from __future__ import annotations

import asyncio
import json
import time

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack_events import ReplyTarget
from bots.slack_mrkdwn import MESSAGE_LIMIT, to_mrkdwn
from bots.slack_reply import BUSY, LOOKING
from core.messages import ChatRef, Incoming
from tests.bots.slack.conftest import CHANNEL, USER, MakeBot, SlackBot, envelope
from tests.conftest import image_bytes
from tests.fakes.engines import FixedTextEngine
from tests.fakes.slack_api import BOT_TOKEN, BOT_USER_ID


def mention(text: str = "what is this?", files: tuple = ()) -> dict:
    event = {"type": "app_mention", "user": USER, "channel": CHANNEL, "ts": "1699999999.000001"}
    event.update(text=f"<@{BOT_USER_ID}> {text}", event_ts=event["ts"])
    if files:
        event["files"] = list(files)
    return envelope(event)


async def test_forged_or_stale_signatures_are_rejected_and_nothing_happens(bot: SlackBot) -> None:
    photo = bot.fake.add_file("cat.jpg", image_bytes())
    forged = await bot.post(mention(files=(photo,)), secret="not-the-signing-secret")
    stale = await bot.post(mention(files=(photo,)), timestamp=int(time.time()) - 10 * 60)
    await bot.adapter.drain()

    assert (forged.status, stale.status) == (401, 401)
    assert bot.fake.bot_messages() == []
    assert bot.fake.downloads == []
    assert bot.prompts() == []
    assert bot.service.store.undelivered("slack") == []


async def test_url_verification_challenge_is_answered(bot: SlackBot) -> None:
    body = {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    body["type"] = "url_verification"
    response = await bot.post(body)
    assert response.status == 200


async def test_the_ack_comes_before_the_answer(make_bot: MakeBot) -> None:
    slow = FixedTextEngine("A tabby cat.", piece_chars=3, delay_s=0.5)
    bot = await make_bot(engine=slow)
    photo = bot.fake.add_file("cat.jpg", image_bytes())
    started = time.monotonic()
    await bot.say(f"<@{BOT_USER_ID}> what is this?", files=(photo,))

    assert time.monotonic() - started < 3.0  # Slack's acknowledgement deadline
    # At the acknowledgement the turn is stored and the placeholder is up, nothing answered yet.
    (placeholder,) = bot.fake.bot_messages(CHANNEL)
    assert placeholder.text == LOOKING
    assert len(bot.service.store.undelivered("slack")) == 1
    await bot.adapter.drain()
    assert placeholder.text == "A tabby cat."
    # Streamed: the placeholder was edited with the growing answer before the final text.
    growing = [t for t in placeholder.edits if t.endswith(" …")]
    assert growing == ["A t …", "A tabb …", "A tabby c …", "A tabby cat. …"]


async def test_streaming_edits_are_throttled(make_bot: MakeBot) -> None:
    engine = FixedTextEngine("word " * 40, piece_chars=5, delay_s=0.02)
    bot = await make_bot(engine=engine, update_interval_s=60.0)
    await bot.say(f"<@{BOT_USER_ID}> talk to me")
    await bot.adapter.drain()
    (reply,) = bot.fake.bot_messages(CHANNEL)
    # 40 pieces streamed, but within one interval only the final text is written.
    assert len(bot.fake.calls_to("chat.update")) == 1
    assert reply.text == ("word " * 40).strip()


async def test_a_retried_event_is_answered_once(bot: SlackBot) -> None:
    photo = bot.fake.add_file("cat.jpg", image_bytes())
    body = mention(files=(photo,))
    first, retry = await asyncio.gather(bot.post(body), bot.post(body, retry=1))
    again = await bot.post(body, retry=2)
    await bot.adapter.drain()

    assert (first.status, retry.status, again.status) == (200, 200, 200)
    assert len(bot.fake.bot_messages(CHANNEL)) == 1
    assert len(bot.prompts()) == 1
    assert len(bot.fake.calls_to("chat.postMessage")) == 1


async def test_a_redelivery_after_a_restart_is_not_answered_again(make_bot: MakeBot) -> None:
    bot = await make_bot()
    photo = bot.fake.add_file("cat.jpg", image_bytes())
    body = mention(files=(photo,))
    await bot.post(body)
    await bot.adapter.drain()
    await bot.adapter.stop()

    restarted = await make_bot()
    response = await restarted.post(body, retry=1)
    await restarted.adapter.drain()

    assert response.status == 200
    # The new process cannot know before asking the store: its placeholder is withdrawn.
    assert len(restarted.fake.calls_to("chat.delete")) == 1
    assert len(restarted.fake.bot_messages(CHANNEL)) == 1
    assert restarted.prompts() == []


async def test_an_answer_interrupted_by_a_restart_is_finished_in_its_placeholder(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot()
    await bot.adapter.stop()
    # What the adapter had done before the process died: placeholder posted, turn stored.
    slack = AsyncWebClient(token=BOT_TOKEN, base_url=bot.fake.api_url)
    posted = await slack.chat_postMessage(
        channel=CHANNEL, thread_ts="1699999999.000001", text=LOOKING
    )
    target = ReplyTarget(CHANNEL, "1699999999.000001", str(posted["ts"]))
    chat = ChatRef("slack", CHANNEL, "1699999999.000001")
    message = Incoming(chat, USER, "what is this?", (image_bytes(),), "Ev-crash", target.to_json())
    await bot.service.receive(message)

    restarted = await make_bot(engine=FixedTextEngine("A cat, resumed."))
    await restarted.adapter.drain()
    (reply,) = restarted.fake.bot_messages(CHANNEL)
    assert reply.ts == posted["ts"] and reply.text == "A cat, resumed."
    assert restarted.service.store.undelivered("slack") == []


async def test_a_long_answer_is_split_into_thread_replies(make_bot: MakeBot) -> None:
    paragraph = "The picture shows a long street with many small shops. " * 12
    text = "\n\n".join(f"{n}. {paragraph}" for n in range(1, 15))
    bot = await make_bot(engine=FixedTextEngine(text, piece_chars=500))
    ts, _ = await bot.say(f"<@{BOT_USER_ID}> describe everything")
    await bot.adapter.drain()

    replies = bot.fake.bot_messages(CHANNEL)
    fewest = -(-len(text) // MESSAGE_LIMIT)
    assert fewest <= len(replies) <= fewest + 1  # cut at paragraph breaks, not much more
    assert all(m.thread_ts == ts for m in replies)
    assert all(len(m.text) <= MESSAGE_LIMIT for m in replies)
    assert " ".join(m.text for m in replies).split() == to_mrkdwn(text).split()
    # Every intermediate (streamed) edit also stayed within one message.
    assert all(len(t) <= MESSAGE_LIMIT for m in replies for t in m.edits)


async def test_model_text_cannot_ping_anyone(make_bot: MakeBot) -> None:
    text = "Hey <!channel> and <@U123>, <!here|here> also @channel. **Bold** [docs](https://e.com)"
    bot = await make_bot(engine=FixedTextEngine(text))
    await bot.say(f"<@{BOT_USER_ID}> say hi")
    await bot.adapter.drain()

    (reply,) = bot.fake.bot_messages(CHANNEL)
    assert bot.fake.pings == []
    assert "&lt;!channel&gt;" in reply.text and "&lt;@U123&gt;" in reply.text
    assert "*Bold*" in reply.text and "<https://e.com|docs>" in reply.text
    assert "@channel" not in reply.text  # defused with a zero-width space
    for call in bot.fake.calls_to("chat.postMessage") + bot.fake.calls_to("chat.update"):
        assert call.args["parse"] == "none"
        assert json.dumps(call.args["link_names"]) == "false"


async def test_waiting_requests_show_their_place_in_the_queue(make_bot: MakeBot) -> None:
    bot = await make_bot(engine=FixedTextEngine("Done.", piece_chars=1, delay_s=0.2))
    await bot.say(f"<@{BOT_USER_ID}> first")
    await bot.say(f"<@{BOT_USER_ID}> second")
    await bot.adapter.drain()

    first, second = bot.fake.bot_messages(CHANNEL)
    assert "ahead of you" not in first.edits[0]
    assert "Thinking… (1 request ahead of you)" in second.edits, second.edits
    assert first.text == second.text == "Done."


async def test_a_full_queue_gets_a_busy_reply_and_is_not_answered_later(make_bot: MakeBot) -> None:
    # The first answer takes long enough for both others to arrive while it runs.
    bot = await make_bot(engine=FixedTextEngine("Done.", delay_s=1.5), max_waiting=1)
    for n in range(3):
        await bot.say(f"<@{BOT_USER_ID}> question {n}")
    await bot.adapter.drain()

    texts = [m.text for m in bot.fake.bot_messages(CHANNEL)]
    assert texts.count("Done.") == 2
    assert texts.count(BUSY) == 1
    assert bot.service.store.undelivered("slack") == []  # nothing left to answer at restart
