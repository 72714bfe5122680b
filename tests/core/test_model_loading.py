"""Int8 loading: layer by layer from the safetensors files, the same model as converting after."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForImageTextToText

from core.engine import GenerationParams, PromptTurn
from core.model_loading import load_model
from core.quantize import (
    Int8Embedding,
    Int8Linear,
    int8_module_count,
    quantize_model_in_place,
)
from core.transformers_engine import EngineOptions, TransformersEngine
from tests.core.conftest import picture


def test_layer_by_layer_load_equals_converting_a_loaded_model(lively_model_dir: Path):
    streamed = load_model(str(lively_model_dir), dtype="float32", quantization="int8-dynamic")
    converted = quantize_model_in_place(
        AutoModelForImageTextToText.from_pretrained(lively_model_dir, dtype=torch.float32)
    ).eval()
    assert not any(isinstance(m, nn.Linear) for m in streamed.modules())
    assert int8_module_count(streamed) == int8_module_count(converted) > 20
    assert isinstance(streamed.get_input_embeddings(), Int8Embedding)
    assert not any(p.device.type == "meta" for p in streamed.parameters())
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    with torch.inference_mode():
        assert torch.equal(streamed(input_ids=ids).logits, converted(input_ids=ids).logits)


def test_int8_engine_answers_close_to_float(lively_model_dir: Path):
    turns = [PromptTurn("user", "What is it?", (picture((200, 30, 30)),))]
    int8 = TransformersEngine(
        EngineOptions(str(lively_model_dir), threads=1, quantization="int8-dynamic")
    )
    fp32 = TransformersEngine(EngineOptions(str(lively_model_dir), threads=1))
    inputs = fp32.build_inputs(turns)
    with torch.inference_mode():
        a = torch.log_softmax(fp32.model(**inputs).logits[0, -1], -1)
        b = torch.log_softmax(int8.model(**inputs).logits[0, -1], -1)
    kl = torch.sum(a.exp() * (a - b))
    assert kl < 0.1
    answer = "".join(int8.stream(turns, GenerationParams(max_new_tokens=6, do_sample=False)))
    assert answer


def test_int8_embedding_rows_are_close():
    table = torch.randn(1000, 64)
    embedding = Int8Embedding(table.to(torch.bfloat16))
    ids = torch.tensor([[0, 5, 999]])
    error = (embedding(ids) - table[ids]).abs().max()
    assert error < 0.05 * table.abs().max()


def test_wide_layer_quantized_in_blocks_gives_the_same_output():
    weight = torch.randn(1000, 64).to(torch.bfloat16)
    whole = Int8Linear(weight, None, block_rows=1000)
    blocks = Int8Linear(weight, None, block_rows=300)
    hidden = torch.randn(1, 3, 64)
    assert len(blocks.blocks) == 4
    assert torch.equal(blocks(hidden), whole(hidden))


def test_each_token_is_quantized_on_its_own():
    # A token's output must not depend on the other tokens in the call: that is what makes a
    # follow-up run from a cached prefix equal to a full run on the int8 path.
    layer = Int8Linear(torch.randn(96, 64), torch.randn(96))
    tokens = torch.randn(1, 7, 64) * torch.logspace(-2, 2, 7).view(1, 7, 1)
    together = layer(tokens)
    alone = torch.cat([layer(tokens[:, i : i + 1]) for i in range(7)], dim=1)
    assert torch.equal(together, alone)
    reference = tokens @ layer_weight(layer).T + layer.bias
    assert (together - reference).abs().max() < 0.05 * reference.abs().max()


def layer_weight(layer: Int8Linear) -> torch.Tensor:
    return torch.cat([block.weight().dequantize() for block in layer.blocks])


def test_fixed_activation_range_is_what_fbgemm_picks_for_unit_rows():
    # The int8 matmul is handed the range [-1, 1] instead of measuring each call's activations;
    # fbgemm's own dynamic path, given rows spanning exactly that range, must agree bit for bit.
    layer = Int8Linear(torch.randn(300, 64), None)
    packed = layer.blocks[0]._packed_params._packed_params
    tokens = torch.randn(5, 64) * 3
    unit = tokens / tokens.abs().amax(dim=1, keepdim=True)
    anchored = torch.cat([unit, torch.tensor([[1.0] + [0.0] * 62 + [-1.0]])])
    measured = torch.ops.quantized.linear_dynamic(anchored, packed, reduce_range=True)[:-1]
    assert torch.equal(layer(tokens), measured * tokens.abs().amax(dim=1, keepdim=True))
