"""ConversationService.complete: answering a conversation the caller keeps, storing nothing."""

from __future__ import annotations

import pytest

from core.config import Settings
from core.images import ImageError
from core.messages import Completion, Delta
from core.service import ConversationService, GivenMessage, UserInputError
from storage.store import ConversationStore
from tests.fakes.engines import RecordingEngine


async def test_given_history_reaches_the_engine_and_nothing_is_stored(
    settings: Settings, store: ConversationStore, tiny_engine, jpeg: bytes
):
    engine = RecordingEngine(tiny_engine)
    service = ConversationService(settings, store, engine)
    messages = [
        GivenMessage("system", "Answer briefly."),
        GivenMessage("user", "What colour is it?", (jpeg,)),
        GivenMessage("assistant", "Red."),
        GivenMessage("user", "Are you sure?"),
    ]
    events = [e async for e in service.complete(messages)]

    done = events[-1]
    assert isinstance(done, Completion)
    deltas = [e for e in events if isinstance(e, Delta)]
    assert done.text == (deltas[-1].text.strip() if deltas else "")
    assert done.prompt_tokens > 64  # the image alone costs dozens of tokens
    assert 0 <= done.completion_tokens <= settings.model.max_new_tokens + 2
    (prompt,) = engine.prompts
    assert [(t.role, t.text) for t in prompt] == [
        ("system", "Answer briefly."),
        ("user", "What colour is it?"),
        ("assistant", "Red."),
        ("user", "Are you sure?"),
    ]
    assert len(prompt[1].images) == 1
    assert store.undelivered("given") == []


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([GivenMessage("assistant", "Hi")], UserInputError),
        (
            [GivenMessage("user", "a"), GivenMessage("tool", "x"), GivenMessage("user", "b")],
            UserInputError,
        ),
        ([GivenMessage("user", "what is this?", (b"not an image",))], ImageError),
    ],
)
async def test_unusable_conversations_are_refused(
    service: ConversationService, messages: list[GivenMessage], error: type[Exception]
):
    with pytest.raises(error):
        [e async for e in service.complete(messages)]
