"""Photos in a private chat: questions, descriptions, follow-ups, documents, albums, bad files."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.conftest import image_bytes
from tests.fakes.engines import RecordingEngine
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_updates import private_chat, user

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADA = 501
CHAT = private_chat(ADA)
SENDER = user(ADA)


def texts(fake: FakeTelegram, chat_id: int = ADA) -> list[str]:
    return [m.text for m in fake.sent_to(chat_id)]


def image_size(prompt_image: Image.Image) -> tuple[int, int]:
    return prompt_image.size


async def settled(
    fake: FakeTelegram, adapter: object, prompts: int, engine: RecordingEngine
) -> None:
    """Wait until the engine ran ``prompts`` times and every answer is sent and delivered."""
    await fake.wait_for(lambda: len(engine.prompts) >= prompts)
    await fake.wait_for(lambda: not adapter._tasks)  # type: ignore[attr-defined]


async def test_photo_with_caption_is_answered_from_the_largest_size(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    async with run_bot() as bot:
        update_id = fake_telegram.send(
            CHAT, SENDER, photo=image_bytes(size=(800, 600)), caption="What is it?"
        )
        await settled(fake_telegram, bot, 1, recording)
        pending = await bot.service.undelivered("telegram")
    question = recording.prompts[0][-1]
    assert question.text == "What is it?"
    assert len(question.images) == 1
    # The core downscales to max_pixels keeping the aspect ratio; a thumbnail would be smaller.
    width, height = image_size(question.images[0])
    assert width / height == pytest.approx(800 / 600, rel=0.02)
    assert width * height > 320 * 240
    sent = fake_telegram.injected[update_id]
    assert len(sent["photo"]) == 3
    assert fake_telegram.downloads == [sent["photo"][-1]["file_id"]]  # not a thumbnail
    [answer] = fake_telegram.sent_to(ADA)
    assert answer.reply_to == sent["message_id"]
    assert fake_telegram.calls_of("sendChatAction")[0].params["action"] == "typing"
    assert pending == []  # delivered, so nothing to resend after a restart


async def test_photo_without_caption_asks_for_a_description(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine, tg_settings
):
    async with run_bot() as bot:
        fake_telegram.send(CHAT, SENDER, photo=image_bytes())
        await settled(fake_telegram, bot, 1, recording)
    question = recording.prompts[0][-1]
    assert question.text == tg_settings.history.describe_prompt
    assert len(question.images) == 1
    assert len(texts(fake_telegram)) == 1


async def test_follow_up_question_sees_the_earlier_photo_and_question(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    async with run_bot() as bot:
        fake_telegram.send(CHAT, SENDER, photo=image_bytes(), caption="What colour is the wall?")
        await settled(fake_telegram, bot, 1, recording)
        fake_telegram.send(CHAT, SENDER, "And is it bright?")
        await settled(fake_telegram, bot, 2, recording)
    follow_up = recording.prompts[1]
    assert [turn.role for turn in follow_up] == ["user", "assistant", "user"]
    assert follow_up[0].text == "What colour is the wall?"
    assert len(follow_up[0].images) == 1
    assert follow_up[-1].text == "And is it bright?"
    assert follow_up[-1].images == ()
    assert len(texts(fake_telegram)) == 2


async def test_reset_forgets_the_conversation(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    async with run_bot() as bot:
        fake_telegram.send(CHAT, SENDER, photo=image_bytes(), caption="What is it?")
        await settled(fake_telegram, bot, 1, recording)
        fake_telegram.send(CHAT, SENDER, "/reset")
        await fake_telegram.wait_for(lambda: "forgotten" in " ".join(texts(fake_telegram)))
        fake_telegram.send(CHAT, SENDER, "What did I send you?")
        await settled(fake_telegram, bot, 2, recording)
    assert [turn.text for turn in recording.prompts[1]] == ["What did I send you?"]


async def test_album_of_two_photos_is_one_turn(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    async with run_bot() as bot:
        first = fake_telegram.send(
            CHAT, SENDER, photo=image_bytes(color=(200, 0, 0)), caption="What changed?",
            media_group_id="album-1",
        )  # fmt: skip
        fake_telegram.send(
            CHAT, SENDER, photo=image_bytes(color=(0, 0, 200)), media_group_id="album-1"
        )
        await settled(fake_telegram, bot, 1, recording)
    assert len(recording.prompts) == 1
    question = recording.prompts[0][-1]
    assert question.text == "What changed?"
    assert len(question.images) == 2
    red, blue = (image.getpixel((5, 5)) for image in question.images)
    assert red[0] > 150 > red[2] and blue[2] > 150 > blue[0]  # in the order they were sent
    assert len(texts(fake_telegram)) == 1
    # While the album was gathering, Telegram was never told the first part had arrived.
    offsets = [call.params.get("offset", 0) for call in fake_telegram.calls_of("getUpdates")]
    assert first in offsets


async def test_image_sent_as_a_file_is_treated_like_a_photo(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    png = image_bytes("PNG", size=(300, 200))
    async with run_bot() as bot:
        fake_telegram.send(
            CHAT, SENDER, document=(png, "image/png", "diagram.png"), caption="Read it"
        )
        await settled(fake_telegram, bot, 1, recording)
    question = recording.prompts[0][-1]
    assert question.text == "Read it"
    assert [image.size for image in question.images] == [(300, 200)]


async def test_non_image_file_gets_a_polite_reply_and_the_bot_keeps_going(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine
):
    async with run_bot() as bot:
        fake_telegram.send(
            CHAT, SENDER, document=(b"%PDF-1.4 fake", "application/pdf", "report.pdf")
        )
        await fake_telegram.wait_for(lambda: texts(fake_telegram))
        assert "report.pdf isn't an image" in texts(fake_telegram)[0]
        fake_telegram.send(
            CHAT, SENDER, document=(b"\x89PNG broken", "image/png", "broken.png"), caption="?"
        )
        await fake_telegram.wait_for(lambda: len(texts(fake_telegram)) == 2)
        assert "not an image I can read" in texts(fake_telegram)[1]
        fake_telegram.send(CHAT, SENDER, "x" * 5000)
        await fake_telegram.wait_for(lambda: len(texts(fake_telegram)) == 3)
        assert "too long" in texts(fake_telegram)[2]
        fake_telegram.send(CHAT, SENDER, photo=image_bytes(), caption="still there?")
        await settled(fake_telegram, bot, 1, recording)
    assert len(recording.prompts) == 1  # nothing of the bad input reached the model
    assert len(texts(fake_telegram)) == 4


async def test_too_large_image_file_is_refused_before_downloading(
    fake_telegram: FakeTelegram, run_bot, recording: RecordingEngine, tg_settings
):
    settings = tg_settings.model_copy(
        update={"images": tg_settings.images.model_copy(update={"max_file_bytes": 2048})}
    )
    big = image_bytes("BMP", size=(100, 100))  # uncompressed: 30 kB
    assert len(big) > 2048
    async with run_bot(settings=settings):
        fake_telegram.send(CHAT, SENDER, document=(big, "image/bmp", "big.bmp"))
        await fake_telegram.wait_for(lambda: texts(fake_telegram))
    assert "too large (29 kB); the limit is 2 kB" in texts(fake_telegram)[0]
    assert fake_telegram.downloads == []
    assert recording.prompts == []
