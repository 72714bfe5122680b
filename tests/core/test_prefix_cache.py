"""The per-chat KV cache must change nothing but speed: same greedy answers, turn after turn."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.engine import GenerationParams, PromptTurn
from core.prefix_cache import PrefixCache
from core.transformers_engine import EngineOptions, PromptStats, TransformersEngine
from tests.core.conftest import picture

GREEDY = GenerationParams(max_new_tokens=10, do_sample=False)


@pytest.fixture(scope="module")
def cached_engine(lively_model_dir: Path) -> TransformersEngine:
    return TransformersEngine(
        EngineOptions(model_id=str(lively_model_dir), threads=1, prefix_cache_mb=64)
    )


@pytest.fixture(scope="module")
def plain_engine(lively_model_dir: Path) -> TransformersEngine:
    return TransformersEngine(EngineOptions(model_id=str(lively_model_dir), threads=1))


def answer(engine: TransformersEngine, turns: list[PromptTurn], key: str | None) -> list[int]:
    return list(engine.stream_tokens(turns, GREEDY, cache_key=key))


def text_of(engine: TransformersEngine, tokens: list[int]) -> str:
    return engine.processor.tokenizer.decode(tokens, skip_special_tokens=True)


def count_vision_runs(engine: TransformersEngine) -> list[int]:
    runs = [0]

    def hook(*_: object) -> None:
        runs[0] += 1

    engine.model.model.visual.register_forward_hook(hook)
    return runs


def test_follow_ups_match_uncached_answers_and_skip_the_image(
    cached_engine: TransformersEngine, plain_engine: TransformersEngine
):
    vision_runs = count_vision_runs(cached_engine)
    turns = [PromptTurn("user", "What is in the photo?", (picture((200, 30, 30)),))]
    questions = ["What colour is it?", "Is the sky blue?", "Describe the circuit."]
    for number, question in enumerate([None, *questions]):
        if question is not None:
            turns.append(PromptTurn("user", question))
        with_cache = answer(cached_engine, turns, "chat-a")
        without = answer(plain_engine, turns, None)
        assert with_cache == without, f"turn {number} differs"
        assert len(set(without)) > 1  # a varied answer, so the comparison means something
        turns.append(PromptTurn("assistant", text_of(plain_engine, without).strip()))
    assert vision_runs[0] == 1  # the photo was encoded once, for the first question only


def test_a_follow_up_runs_only_its_new_tokens(cached_engine: TransformersEngine):
    turns = [PromptTurn("user", "What is it?", (picture((20, 160, 40)),))]
    first = answer(cached_engine, turns, "chat-b")
    assert cached_engine.last_prompt.reused_tokens == 0
    # The cache holds the prompt and every answer token but the last (never fed back).
    held = cached_engine.build_inputs(turns)["input_ids"][0].tolist() + first[:-1]
    turns += [PromptTurn("assistant", text_of(cached_engine, first)), PromptTurn("user", "Why?")]
    follow_up = cached_engine.build_inputs(turns)["input_ids"][0].tolist()
    shared = 0
    while shared < len(held) and held[shared] == follow_up[shared]:
        shared += 1
    answer(cached_engine, turns, "chat-b")
    assert cached_engine.last_prompt == PromptStats(len(follow_up), shared)
    assert shared > len(held) - len(first)  # the photo and the question at least


def test_a_different_photo_of_the_same_size_is_not_taken_from_the_cache(
    cached_engine: TransformersEngine, plain_engine: TransformersEngine
):
    question = "What is in the photo?"
    answer(cached_engine, [PromptTurn("user", question, (picture((30, 30, 200)),))], "chat-c")
    other = [PromptTurn("user", question, (picture((250, 200, 0)),))]
    assert answer(cached_engine, other, "chat-c") == answer(plain_engine, other, None)


def test_eviction_keeps_answers_exact_and_memory_bounded(
    lively_model_dir: Path, plain_engine: TransformersEngine
):
    engine = TransformersEngine(
        EngineOptions(model_id=str(lively_model_dir), threads=1, prefix_cache_mb=1)
    )
    chats = {
        f"chat-{n}": [PromptTurn("user", f"Photo {n}: what is it?", (picture((40 * n, 90, 60)),))]
        for n in range(4)
    }
    for round_ in range(3):
        for key, turns in chats.items():
            got = answer(engine, turns, key)
            assert got == answer(plain_engine, turns, None), f"{key}, round {round_}"
            if engine.prefix_cache.budget_bytes == 2**20:
                # The tiny model's KV cache is ~0.5 kB a token: make room for about two chats.
                one_chat = engine.prefix_cache.used_bytes
                engine.prefix_cache = PrefixCache(int(2.5 * one_chat))
            assert engine.prefix_cache.used_bytes <= engine.prefix_cache.budget_bytes
            turns += [PromptTurn("assistant", text_of(engine, got)), PromptTurn("user", "More?")]
    assert 0 < len(engine.prefix_cache) < len(chats)
    assert "chat-3" in engine.prefix_cache and "chat-0" not in engine.prefix_cache


def test_a_stopped_answer_leaves_a_usable_cache(
    cached_engine: TransformersEngine, plain_engine: TransformersEngine
):
    turns = [PromptTurn("user", "Tell me about it.", (picture((120, 60, 160)),))]
    stream = cached_engine.stream_tokens(turns, GREEDY, cache_key="chat-d")
    partial = [next(stream), next(stream), next(stream)]
    stream.close()
    turns += [PromptTurn("assistant", text_of(cached_engine, partial)), PromptTurn("user", "Go on")]
    assert answer(cached_engine, turns, "chat-d") == answer(plain_engine, turns, None)


def test_budget_of_zero_keeps_nothing():
    cache = PrefixCache(0)
    assert not cache.enabled
