"""The engine's prefix cache behind the real service (real SQLite, stored and stripped answers)."""

from __future__ import annotations

from pathlib import Path

from core.config import load_settings
from core.messages import Answer, ChatRef, Incoming
from core.service import ConversationService
from core.transformers_engine import EngineOptions, TransformersEngine
from storage.store import ConversationStore
from tests.conftest import image_bytes


async def conversation(
    engine: TransformersEngine, model_dir: Path, db: Path, chat: ChatRef
) -> list[str]:
    settings = load_settings(
        None,
        model={"id": str(model_dir), "max_new_tokens": 8, "do_sample": False, "threads": 1},
        storage={"url": f"sqlite:///{db}"},
    )
    store = ConversationStore(settings.storage.url)
    service = ConversationService(settings, store, engine)
    messages = [
        Incoming(chat, "u1", "What is in the photo?", (image_bytes(color=(20, 90, 200)),)),
        Incoming(chat, "u1", "What colour is it?", ()),
        Incoming(chat, "u1", "Anything else?", ()),
    ]
    answers = []
    try:
        for message in messages:
            events = [event async for event in service.ask(message)]
            assert isinstance(events[-1], Answer)
            answers.append(events[-1].text)
    finally:
        store.close()
    return answers


async def test_service_follow_ups_with_cache_equal_those_without(
    tmp_path: Path, lively_model_dir: Path
):
    chat = ChatRef("test", "42")
    cached = TransformersEngine(EngineOptions(str(lively_model_dir), threads=1, prefix_cache_mb=8))
    plain = TransformersEngine(EngineOptions(str(lively_model_dir), threads=1))
    with_cache = await conversation(cached, lively_model_dir, tmp_path / "a.db", chat)
    without = await conversation(plain, lively_model_dir, tmp_path / "b.db", chat)
    assert with_cache == without
    # The photo and the first exchange came from the cache (the stored answer is stripped and
    # re-tokenized, so the reuse may stop inside it).
    assert cached.last_prompt.reused_tokens > 0.5 * cached.last_prompt.prompt_tokens
    assert chat.key in cached.prefix_cache


async def test_default_int8_engine_with_cache_equals_it_without(
    tmp_path: Path, lively_model_dir: Path
):
    settings = load_settings(None, model={"id": str(lively_model_dir), "threads": 1})
    assert settings.model.quantization == "int8-dynamic" and settings.model.prefix_cache_mb > 0
    chat = ChatRef("test", "7")
    fast = TransformersEngine(EngineOptions.from_settings(settings.model))
    uncached = TransformersEngine(
        EngineOptions(str(lively_model_dir), threads=1, quantization="int8-dynamic")
    )
    with_cache = await conversation(fast, lively_model_dir, tmp_path / "a.db", chat)
    without = await conversation(uncached, lively_model_dir, tmp_path / "b.db", chat)
    assert with_cache == without
    assert fast.last_prompt.reused_tokens > 0.5 * fast.last_prompt.prompt_tokens
