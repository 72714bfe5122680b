"""The conversation service over the real tiny model and a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from core.images import ImageError, load_prepared
from core.messages import Answer, ChatRef, Delta, Duplicate, Incoming, Started
from core.service import ConversationService, UserInputError
from core.transformers_engine import TransformersEngine
from storage.store import ConversationStore
from tests.conftest import image_bytes
from tests.fakes.engines import RecordingEngine


@pytest.fixture
def recorder(tiny_engine: TransformersEngine) -> RecordingEngine:
    return RecordingEngine(tiny_engine)


@pytest.fixture
def recorded(
    settings: Settings, store: ConversationStore, recorder: RecordingEngine
) -> ConversationService:
    return ConversationService(settings, store, recorder)


async def ask(
    service: ConversationService,
    chat: ChatRef,
    text: str,
    images: tuple[bytes, ...] = (),
    event_id: str | None = None,
) -> list[object]:
    message = Incoming(chat=chat, user_id="u1", text=text, images=images, event_id=event_id)
    return [event async for event in service.ask(message)]


async def test_answer_streams_deltas_then_the_stored_answer(
    recorded: ConversationService, jpeg: bytes
) -> None:
    events = await ask(recorded, ChatRef("t", "1"), "What is this?", (jpeg,))
    assert isinstance(events[0], Started)
    deltas = [e for e in events if isinstance(e, Delta)]
    final = events[-1]
    assert isinstance(final, Answer)
    assert deltas, "the answer must arrive as a stream of pieces"
    assert "".join(d.chunk for d in deltas).strip() == final.text
    assert deltas[-1].text.strip() == final.text


async def test_follow_up_sees_first_turn_and_its_image(
    recorded: ConversationService, recorder: RecordingEngine
) -> None:
    chat = ChatRef("t", "chat-a")
    photo = image_bytes("PNG", size=(300, 200), color=(10, 200, 30))
    first = (await ask(recorded, chat, "What colour is it?", (photo,)))[-1]
    await ask(recorded, chat, "And what shape?")
    second_prompt = recorder.prompts[-1]
    assert [t.role for t in second_prompt] == ["user", "assistant", "user"]
    assert second_prompt[0].text == "What colour is it?"
    assert len(second_prompt[0].images) == 1
    assert second_prompt[0].images[0].getpixel((5, 5))[1] > 150  # the green photo itself
    assert second_prompt[1].text == first.text
    assert second_prompt[2].text == "And what shape?" and not second_prompt[2].images


async def test_other_chats_never_leak_in(
    recorded: ConversationService, recorder: RecordingEngine, jpeg: bytes
) -> None:
    await ask(recorded, ChatRef("t", "alice"), "Alice's secret question", (jpeg,))
    await ask(recorded, ChatRef("t", "bob"), "Bob asks")
    await ask(recorded, ChatRef("t", "alice", thread_id="topic-2"), "Another topic")
    for prompt in recorder.prompts[1:]:
        assert len(prompt) == 1
        assert "Alice" not in prompt[0].text


async def test_photo_without_question_asks_for_a_description(
    recorded: ConversationService, recorder: RecordingEngine, jpeg: bytes
) -> None:
    await ask(recorded, ChatRef("t", "1"), "", (jpeg,))
    assert recorder.prompts[-1][-1].text == "Describe this image."


async def test_reset_empties_the_history(
    recorded: ConversationService, recorder: RecordingEngine, jpeg: bytes
) -> None:
    chat = ChatRef("t", "r")
    await ask(recorded, chat, "First", (jpeg,))
    reply = await recorded.command(chat, "reset")
    assert "forgotten" in reply
    await ask(recorded, chat, "Fresh start")
    assert [t.text for t in recorder.prompts[-1]] == ["Fresh start"]


async def test_history_survives_reopening_the_database(
    settings: Settings, tiny_engine: TransformersEngine, jpeg: bytes
) -> None:
    chat = ChatRef("t", "persist")
    first_store = ConversationStore(settings.storage.url)
    await ask(ConversationService(settings, first_store, tiny_engine), chat, "Q1", (jpeg,))
    stored_bytes = first_store.history(chat.key)[0].images[0].data
    first_store.close()

    recorder = RecordingEngine(tiny_engine)
    reopened = ConversationStore(settings.storage.url)
    await ask(ConversationService(settings, reopened, recorder), chat, "Q2")
    assert reopened.history(chat.key)[0].images[0].data == stored_bytes  # byte for byte
    prompt = recorder.prompts[-1]
    assert [t.text for t in prompt][::2] == ["Q1", "Q2"]
    assert prompt[0].images[0].tobytes() == load_prepared(stored_bytes).tobytes()
    reopened.close()


async def test_turn_budget_drops_oldest_exchanges_first(
    settings: Settings, store: ConversationStore, tiny_engine: TransformersEngine
) -> None:
    settings.history.max_turns = 2
    recorder = RecordingEngine(tiny_engine)
    service = ConversationService(settings, store, recorder)
    chat = ChatRef("t", "budget")
    for n in range(1, 5):
        await ask(service, chat, f"Question {n}")
    assert [t.text for t in recorder.prompts[-1] if t.role == "user"] == [
        "Question 2",
        "Question 3",
        "Question 4",
    ]


async def test_token_budget_keeps_the_current_turn_even_if_alone_too_big(
    settings: Settings, store: ConversationStore, tiny_engine: TransformersEngine
) -> None:
    recorder = RecordingEngine(tiny_engine)
    service = ConversationService(settings, store, recorder)
    chat = ChatRef("t", "tokens")
    big = image_bytes("JPEG", size=(448, 448))  # ~200 visual tokens each
    await ask(service, chat, "Old photo", (big,))
    await ask(service, chat, "Newer photo", (big,))
    settings.history.max_tokens = 300
    service = ConversationService(settings, store, recorder)
    await ask(
        service,
        chat,
        "Latest photo",
        (big,),
    )
    prompt = recorder.prompts[-1]
    assert [t.text for t in prompt] == ["Latest photo"]
    assert tiny_engine.token_cost("Latest photo", [(448, 448)]) > 190


async def test_redelivered_event_is_not_answered_twice(
    recorded: ConversationService, recorder: RecordingEngine
) -> None:
    chat = ChatRef("t", "dup")
    await ask(recorded, chat, "Hello", event_id="upd-1")
    events = await ask(recorded, chat, "Hello", event_id="upd-1")
    assert events == [Duplicate("upd-1")]
    assert len(recorder.prompts) == 1


async def test_bad_input_is_refused_with_a_readable_reason(
    recorded: ConversationService, recorder: RecordingEngine
) -> None:
    chat = ChatRef("t", "bad")
    with pytest.raises(ImageError, match="not an image"):
        await ask(recorded, chat, "look", (b"plain text, not a picture",))
    with pytest.raises(UserInputError, match="too long"):
        await ask(recorded, chat, "x" * 10_000)
    with pytest.raises(UserInputError, match="photo"):
        await ask(recorded, chat, "   ")
    assert recorder.prompts == []
    assert recorded.store.history(chat.key) == []


async def test_unanswered_turn_is_finished_after_a_restart(
    settings: Settings, tiny_engine: TransformersEngine, tmp_path: Path, jpeg: bytes
) -> None:
    chat = ChatRef("tg", "42")
    store = ConversationStore(settings.storage.url)
    service = ConversationService(settings, store, tiny_engine)
    receipt = await service.receive(
        Incoming(
            chat=chat, user_id="u", text="Q", images=(jpeg,), event_id="e1", reply_to='{"m": 7}'
        )
    )
    store.close()  # the process "dies" before answering

    store = ConversationStore(settings.storage.url)
    service = ConversationService(settings, store, tiny_engine)
    pending = await service.undelivered("tg")
    assert [(p.turn_id, p.reply_to, p.answer) for p in pending] == [
        (receipt.turn_id, '{"m": 7}', None)
    ]
    final = [e async for e in service.resume(pending[0])][-1]
    assert isinstance(final, Answer)
    # Answered but not yet sent: a second restart re-sends the stored text without regenerating.
    again = await service.undelivered("tg")
    assert again[0].answer == final.text
    await service.delivered(receipt.turn_id)
    assert await service.undelivered("tg") == []
    assert await service.undelivered("other") == []
    store.close()


async def test_sampling_defaults_generate_through_the_real_model(
    settings: Settings, store: ConversationStore, tiny_engine: TransformersEngine, jpeg: bytes
) -> None:
    settings.model.do_sample = True
    service = ConversationService(settings, store, tiny_engine)
    assert service.default_params.temperature == 0.7 and service.default_params.top_p == 0.9
    final = (await ask(service, ChatRef("t", "s"), "Describe", (jpeg,)))[-1]
    assert isinstance(final, Answer)
