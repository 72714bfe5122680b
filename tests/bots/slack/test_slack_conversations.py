"""End to end: signed Events API requests in, the real adapter and core, a fake Slack API out."""

from __future__ import annotations

from bots.slack_mrkdwn import to_mrkdwn
from bots.slack_reply import EMPTY_ANSWER, LOOKING
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
    # The random tiny model may produce only special tokens, i.e. an empty answer.
    assert reply.text == (to_mrkdwn(history[1].text) if history[1].text else EMPTY_ANSWER)

    (question,) = user_turns(bot)
    assert question.text == "what is in this picture?"
    assert len(question.images) == 1
    assert bot.service.store.undelivered("slack") == []


async def test_follow_up_in_the_thread_continues_with_the_image(bot: SlackBot) -> None:
    photo = bot.fake.add_file("cat.jpg", image_bytes())
    ts, _ = await bot.say(f"<@{BOT_USER_ID}> what is this?", files=(photo,))
    await bot.adapter.drain()
    await bot.say(f"<@{BOT_USER_ID}> and what colour is it?", thread_ts=ts)
    await bot.adapter.drain()

    first_answer = bot.service.store.history(f"slack:{CHANNEL}:{ts}")[1].text
    prompt = bot.prompts()[-1]
    assert [t.role for t in prompt] == ["user", "assistant", "user"]
    assert prompt[0].text == "what is this?" and len(prompt[0].images) == 1
    assert prompt[1].text == first_answer
    assert prompt[2].text == "and what colour is it?" and prompt[2].images == ()
    # The image was taken from history, not downloaded again.
    assert len(bot.fake.downloads) == 1
    assert [m.thread_ts for m in bot.fake.bot_messages(CHANNEL)] == [ts, ts]


async def test_image_posted_in_the_thread_without_a_mention_is_picked_up(bot: SlackBot) -> None:
    photo = bot.fake.add_file("receipt.png", image_bytes("PNG", color=(10, 200, 10)))
    root = bot.fake.next_ts()
    bot.fake.add_message(Message(CHANNEL, root, "look at this", USER, files=[photo]))
    await bot.say(f"<@{BOT_USER_ID}> what does it show?", thread_ts=root)
    await bot.adapter.drain()

    assert bot.fake.calls_to("conversations.replies")
    (question,) = user_turns(bot)
    assert question.text == "what does it show?"
    assert len(question.images) == 1
    assert bot.fake.bot_messages(CHANNEL)[0].thread_ts == root


async def test_direct_messages_need_no_mention_and_keep_a_conversation(bot: SlackBot) -> None:
    photo = bot.fake.add_file("dog.jpg", image_bytes())
    await bot.say("", files=(photo,), channel=DM_CHANNEL)
    await bot.adapter.drain()
    await bot.say("is it outdoors?", channel=DM_CHANNEL)
    await bot.adapter.drain()

    replies = bot.fake.bot_messages(DM_CHANNEL)
    assert len(replies) == 2
    assert all(m.thread_ts is None for m in replies)  # a DM is answered in the DM itself
    first, second = bot.prompts()
    assert len(first) == 1 and len(first[0].images) == 1
    assert first[0].text == bot.service.settings.history.describe_prompt  # no question: describe
    assert [t.role for t in second] == ["user", "assistant", "user"]
    assert second[2].text == "is it outdoors?"
    assert [t.role for t in bot.service.store.history(f"slack:{DM_CHANNEL}")] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]


async def test_two_images_in_one_message_both_reach_the_model(bot: SlackBot) -> None:
    before = bot.fake.add_file("before.jpg", image_bytes(color=(250, 0, 0)))
    after = bot.fake.add_file("after.png", image_bytes("PNG", color=(0, 0, 250)))
    await bot.say(f"<@{BOT_USER_ID}> what changed?", files=(before, after))
    await bot.adapter.drain()

    (question,) = user_turns(bot)
    assert len(question.images) == 2
    assert question.images[0].getpixel((0, 0))[0] > 200  # order kept: the red one first
    assert question.images[1].getpixel((0, 0))[2] > 200
    assert len(bot.fake.downloads) == 2


async def test_a_file_that_is_not_an_image_gets_a_clear_reply(bot: SlackBot) -> None:
    report = bot.fake.add_file("report.pdf", b"%PDF-1.7 ...", mimetype="application/pdf")
    ts, _ = await bot.say(f"<@{BOT_USER_ID}> summarise this", files=(report,))
    await bot.adapter.drain()

    (reply,) = bot.fake.bot_messages(CHANNEL)
    assert reply.thread_ts == ts
    assert "report.pdf" in reply.text and "only look at images" in reply.text
    assert bot.prompts() == []
    assert bot.fake.downloads == []
    assert bot.service.store.history(f"slack:{CHANNEL}:{ts}") == []


async def test_an_image_with_another_file_is_answered_with_a_note(bot: SlackBot) -> None:
    photo = bot.fake.add_file("cat.jpg", image_bytes())
    notes = bot.fake.add_file("notes.txt", b"just text", mimetype="text/plain")
    ts, _ = await bot.say(f"<@{BOT_USER_ID}> what is this?", files=(notes, photo))
    await bot.adapter.drain()

    note, answer = bot.fake.bot_messages(CHANNEL)
    assert "can't read notes.txt" in note.text and note.thread_ts == ts
    assert answer.edits[0] == LOOKING and answer.thread_ts == ts
    (question,) = user_turns(bot)
    assert len(question.images) == 1


async def test_a_mention_with_nothing_to_answer_gets_a_hint(bot: SlackBot) -> None:
    await bot.say(f"<@{BOT_USER_ID}>")
    await bot.adapter.drain()
    (reply,) = bot.fake.bot_messages(CHANNEL)
    assert reply.text == "Send me a photo, or ask a question about one."
    assert bot.prompts() == []


async def test_a_broken_image_is_refused_politely(bot: SlackBot) -> None:
    broken = bot.fake.add_file("photo.jpg", image_bytes()[:200])
    await bot.say(f"<@{BOT_USER_ID}> what is it?", files=(broken,))
    await bot.adapter.drain()

    (reply,) = bot.fake.bot_messages(CHANNEL)
    assert "damaged" in reply.text or "not an image" in reply.text
    assert bot.prompts() == []


async def test_a_file_slack_will_not_serve_is_reported(bot: SlackBot) -> None:
    # Readable only with another token: the fake sends the bot to the sign-in page, as Slack does.
    photo = bot.fake.add_file("cat.jpg", image_bytes(), token="xoxb-someone-else")
    await bot.say(f"<@{BOT_USER_ID}> what is it?", files=(photo,))
    await bot.adapter.drain()

    assert [d[2] for d in bot.fake.downloads] == [302]
    (reply,) = bot.fake.bot_messages(CHANNEL)
    assert "would not let me download cat.jpg" in reply.text
    assert bot.prompts() == []


async def test_private_files_need_the_bearer_token(bot: SlackBot) -> None:
    photo = bot.fake.add_file("cat.jpg", image_bytes())
    url = photo["url_private_download"]
    async with bot.http.get(url) as anonymous:
        assert anonymous.content_type == "text/html"  # the sign-in page, not the file
    async with bot.http.get(url, headers={"Authorization": f"Bearer {BOT_TOKEN}"}) as allowed:
        assert allowed.content_type == "image/jpeg"
        assert await allowed.read() == image_bytes()


async def test_reset_forgets_the_thread(bot: SlackBot) -> None:
    photo = bot.fake.add_file("cat.jpg", image_bytes())
    ts, _ = await bot.say(f"<@{BOT_USER_ID}> what is this?", files=(photo,))
    await bot.adapter.drain()
    await bot.say(f"<@{BOT_USER_ID}> reset", thread_ts=ts)
    await bot.adapter.drain()
    assert "forgotten this conversation" in bot.fake.bot_messages(CHANNEL)[-1].text

    await bot.say(f"<@{BOT_USER_ID}> what was in the picture?", thread_ts=ts)
    await bot.adapter.drain()
    prompt = bot.prompts()[-1]
    assert [t.role for t in prompt] == ["user"]
    assert prompt[0].text == "what was in the picture?"
    assert prompt[0].images == ()  # the image before the reset is not fetched again either
    assert len(bot.prompts()) == 2  # "reset" itself never reached the model


async def test_allow_lists_refuse_others_politely(make_bot: MakeBot) -> None:
    bot = await make_bot(allowed_user_ids=["U0BOSS"], allowed_channel_ids=[CHANNEL])
    photo = bot.fake.add_file("cat.jpg", image_bytes())
    ts, _ = await bot.say(f"<@{BOT_USER_ID}> what is this?", files=(photo,))
    await bot.say(f"<@{BOT_USER_ID}> and here?", user="U0BOSS", channel="C0OTHER")
    await bot.adapter.drain()

    refusals = bot.fake.bot_messages()
    assert len(refusals) == 2
    assert all("not available to you here" in m.text for m in refusals)
    assert refusals[0].thread_ts == ts
    assert bot.prompts() == [] and bot.fake.downloads == []

    await bot.say(f"<@{BOT_USER_ID}> hello?", user="U0BOSS")
    await bot.adapter.drain()
    assert len(bot.prompts()) == 1
