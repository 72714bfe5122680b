"""The hand-written decode loop must produce what transformers' generate() produces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import TopPLogitsWarper

from core.decoding import choose_token, nucleus
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


def test_seeded_sampling_is_repeatable_and_varies_with_the_seed(engine: TransformersEngine):
    def sample(seed: int) -> list[int]:
        params = GenerationParams(
            max_new_tokens=16, do_sample=True, temperature=1.0, top_p=0.95, seed=seed
        )
        return list(engine.stream_tokens(TURNS, params, min_new_tokens=16))

    assert sample(7) == sample(7)
    assert len({tuple(sample(seed)) for seed in range(4)}) > 1


@pytest.mark.parametrize("top_p", [0.3, 0.8, 0.95, 0.999])
def test_nucleus_is_the_set_transformers_keeps(top_p: float):
    torch.manual_seed(3)
    logits = torch.randn(5000) * 4
    warped = TopPLogitsWarper(top_p=top_p)(None, logits.clone()[None])[0]
    expected = set(torch.nonzero(warped > float("-inf")).flatten().tolist())
    probs = logits.softmax(-1)
    kept_probs, kept_ids = nucleus(probs, top_p)
    differing = set(kept_ids.tolist()) ^ expected
    # Both sum float probabilities, in opposite orders: only the one token sitting exactly on
    # the top-p boundary may fall either way.
    assert len(differing) <= 1
    for token in differing:
        above = float(probs[probs > probs[token]].sum())
        assert abs(above - top_p) < 1e-4
    assert torch.allclose(kept_probs, probs[kept_ids])


def test_sampling_follows_the_distribution():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    torch.manual_seed(1)
    for top_p in (1.0, 0.99):
        params = GenerationParams(do_sample=True, temperature=1.0, top_p=top_p)
        counts = torch.bincount(
            torch.tensor([choose_token(logits, params) for _ in range(4000)]), minlength=4
        )
        assert torch.allclose(counts / 4000, logits.exp(), atol=0.03)


def test_forced_length_ignores_end_of_answer(engine: TransformersEngine):
    params = GenerationParams(max_new_tokens=40, do_sample=False)
    forced = list(engine.stream_tokens(TURNS, params, min_new_tokens=40))
    assert len(forced) == 40
    assert not set(forced) & engine._eos


def test_a_scripted_answer_is_fed_then_the_model_goes_on(engine: TransformersEngine):
    params = GenerationParams(max_new_tokens=10, do_sample=False)
    free = list(engine.stream_tokens(TURNS, params, min_new_tokens=10))
    script = engine.processor.tokenizer("a blue square, a red circle")["input_ids"][:4]
    assert len(script) == 4 and script != free[:4]
    scripted = list(engine.stream_tokens(TURNS, params, min_new_tokens=10, script=script))
    assert scripted[:4] == script
    # What follows is chosen after the scripted tokens: the same as generate() continuing them.
    inputs = engine.build_inputs(TURNS)
    prompt = torch.cat([inputs["input_ids"], torch.tensor([script])], dim=1)
    text_types = torch.zeros(1, len(script), dtype=inputs["mm_token_type_ids"].dtype)
    rest = engine.model.generate(
        **{
            **inputs,
            "input_ids": prompt,
            "attention_mask": torch.ones_like(prompt),
            "mm_token_type_ids": torch.cat([inputs["mm_token_type_ids"], text_types], dim=1),
        },
        max_new_tokens=6,
        min_new_tokens=6,
        do_sample=False,
    )[0, prompt.shape[1] :].tolist()
    assert scripted[4:] == rest


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
