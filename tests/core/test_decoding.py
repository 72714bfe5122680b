"""The hand-written decode loop must produce what transformers' generate() produces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.decoding import choose_token
from core.engine import GenerationParams, PromptTurn
from core.transformers_engine import EngineOptions, TransformersEngine
from tests.core.conftest import picture


@pytest.fixture(scope="module")
def engine(lively_model_dir: Path) -> TransformersEngine:
    return TransformersEngine(EngineOptions(model_id=str(lively_model_dir), threads=1))


def generate_reference(engine: TransformersEngine, turns: list[PromptTurn], **kwargs) -> list[int]:
    inputs = engine.build_inputs(turns)
    out = engine.model.generate(**inputs, **kwargs)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


TURNS = [
    PromptTurn("user", "What is in the photo?", (picture((200, 30, 30)),)),
    PromptTurn("assistant", "A red circle."),
    PromptTurn("user", "And this one?", (picture((30, 30, 200), (256, 320)),)),
]


def test_greedy_matches_generate(engine: TransformersEngine):
    params = GenerationParams(max_new_tokens=16, do_sample=False)
    ours = list(engine.stream_tokens(TURNS, params))
    theirs = generate_reference(
        engine, TURNS, max_new_tokens=16, do_sample=False, temperature=None, top_p=None, top_k=None
    )
    assert ours == theirs[: len(ours)]
    assert len(ours) == len(theirs) or theirs[len(ours)] in engine._eos


def test_seeded_sampling_matches_generate(engine: TransformersEngine):
    params = GenerationParams(max_new_tokens=16, do_sample=True, temperature=0.8, top_p=0.7, seed=7)
    ours = list(engine.stream_tokens(TURNS, params))
    torch.manual_seed(7)
    theirs = generate_reference(
        engine, TURNS, max_new_tokens=16, do_sample=True, temperature=0.8, top_p=0.7, top_k=0
    )
    assert ours == theirs[: len(ours)]


def test_forced_length_ignores_end_of_answer(engine: TransformersEngine):
    params = GenerationParams(max_new_tokens=40, do_sample=False)
    forced = list(engine.stream_tokens(TURNS, params, min_new_tokens=40))
    assert len(forced) == 40
    assert not set(forced) & engine._eos


def test_streamed_text_is_the_decoded_answer(engine: TransformersEngine):
    params = GenerationParams(max_new_tokens=12, do_sample=False)
    pieces = list(engine.stream(TURNS, params))
    tokens = list(engine.stream_tokens(TURNS, params))
    assert "".join(pieces) == engine.processor.tokenizer.decode(tokens, skip_special_tokens=True)
    assert all(pieces)


def test_stop_flag_ends_the_answer(engine: TransformersEngine):
    class StopAfter:
        def __init__(self, calls: int) -> None:
            self.calls = calls

        def is_set(self) -> bool:
            self.calls -= 1
            return self.calls < 0

    params = GenerationParams(max_new_tokens=30, do_sample=False)
    got = list(engine.stream_tokens(TURNS, params, should_stop=StopAfter(3), min_new_tokens=30))
    assert len(got) == 3


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    params = GenerationParams(do_sample=True, temperature=1.0, top_p=0.75)
    torch.manual_seed(0)
    drawn = {choose_token(logits, params) for _ in range(300)}
    assert drawn == {0, 1}
    assert choose_token(logits, GenerationParams(do_sample=False)) == 0
