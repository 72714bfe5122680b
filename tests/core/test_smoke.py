from __future__ import annotations

from core.messages import Answer, ChatRef, Incoming
from core.service import ConversationService


async def test_photo_question_is_answered_and_stored(service: ConversationService, jpeg: bytes):
    chat = ChatRef("test", "1")
    events = [
        e
        async for e in service.ask(
            Incoming(chat=chat, user_id="u", text="What is it?", images=(jpeg,))
        )
    ]
    answer = events[-1]
    assert isinstance(answer, Answer)
    history = service.store.history(chat.key)
    assert [t.role for t in history] == ["user", "assistant"]
    assert history[1].text == answer.text
    assert len(history[0].images) == 1
