"""The written-out decode step must compute what transformers' forward computes for one token."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import DynamicCache, PreTrainedModel

from core.decode_step import DecodeStep, GrowingCache
from core.decoding import prepare_input
from core.engine import GenerationParams, PromptTurn
from core.transformers_engine import EngineOptions, TransformersEngine
from tests.core.conftest import picture

TURNS = [PromptTurn("user", "What is in the photo?", (picture((200, 30, 30)),))]


def transformers_step(
    model: PreTrainedModel, cache: DynamicCache, token: int, index: int, delta: int
) -> torch.Tensor:
    text = torch.tensor([[[index]]])
    position = torch.cat([text, text.expand(3, 1, 1) + delta])
    out = model(
        input_ids=torch.tensor([[token]]),
        position_ids=position,
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[0, -1]


@pytest.mark.parametrize("quantization", ["none", "int8-dynamic"])
def test_step_logits_match_transformers_after_a_photo(lively_model_dir: Path, quantization: str):
    engine = TransformersEngine(
        EngineOptions(str(lively_model_dir), threads=1, quantization=quantization)
    )
    model = engine.model
    assert DecodeStep.fits(model)
    prompt = prepare_input(model, engine.build_inputs(TURNS))
    assert prompt.rope_delta != 0  # the photo shifts M-RoPE positions: the step must follow
    caches = []
    with torch.inference_mode():
        for _ in range(2):
            cache = DynamicCache(config=model.config.get_text_config())
            model(
                input_ids=torch.tensor([prompt.ids]),
                pixel_values=prompt.pixel_values,
                image_grid_thw=prompt.image_grid_thw,
                position_ids=prompt.position_ids,
                cache=cache,
                use_cache=True,
            )
            caches.append(cache)
        reference_cache, step_cache = caches
        step, growing = DecodeStep(model), GrowingCache(step_cache)
        for offset, token in enumerate([17, 3, 250, 42, 99, 7]):
            index = len(prompt.ids) + offset
            expected = transformers_step(model, reference_cache, token, index, prompt.rope_delta)
            got = step(token, index + prompt.rope_delta, growing)
            scale = expected.abs().max()
            assert (got - expected).abs().max() <= 1e-4 * scale, f"token {offset} differs"
            assert int(got.argmax()) == int(expected.argmax())
        growing.compact()
    for ours, theirs in zip(step_cache.layers, reference_cache.layers, strict=True):
        assert torch.allclose(ours.keys, theirs.keys, atol=1e-4, rtol=1e-4)
        assert torch.allclose(ours.values, theirs.values, atol=1e-4, rtol=1e-4)


def test_growing_cache_holds_every_token_and_compacts_to_its_size():
    cache = DynamicCache()
    first_keys, first_values = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    cache.update(first_keys, first_values, 0)
    growing = GrowingCache(cache)
    added = [(torch.randn(2, 8), torch.randn(2, 8)) for _ in range(300)]  # past one growth
    for key, value in added:
        growing.append(0, key, value)
    keys, values = growing.layer(0)
    new_keys, new_values = (torch.stack(part, dim=1) for part in zip(*added, strict=True))
    assert torch.equal(keys, torch.cat([first_keys[0], new_keys], dim=1))
    assert torch.equal(values, torch.cat([first_values[0], new_values], dim=1))
    growing.compact()
    layer = cache.layers[0]
    assert layer.keys.shape == (1, 2, 305, 8)
    assert layer.keys.untyped_storage().nbytes() == layer.keys.numel() * 4
    cache.update(torch.randn(1, 2, 1, 8), torch.randn(1, 2, 1, 8), 0)  # still a DynamicCache
    assert cache.get_seq_length() == 306


def test_a_bfloat16_model_decodes_through_transformers(lively_model_dir: Path):
    engine = TransformersEngine(EngineOptions(str(lively_model_dir), threads=1, dtype="bfloat16"))
    assert not DecodeStep.fits(engine.model)
    tokens = list(engine.stream_tokens(TURNS, GenerationParams(max_new_tokens=4, do_sample=False)))
    assert len(tokens) >= 1
