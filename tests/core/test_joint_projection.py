"""Joined q/k/v and gate/up matmuls must give exactly what the separate int8 layers give."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, PreTrainedModel

from core.decode_step import DecodeStep
from core.joint_projection import JointProjection, ProjectionPart
from core.model_loading import load_model
from core.quantize import Int8Linear, quantize_model_in_place


def test_joint_output_is_the_parts_outputs_bit_for_bit():
    weights = [torch.randn(width, 64) for width in (48, 16, 16)]
    parts = [Int8Linear(weight, None) for weight in weights]
    joint = JointProjection(weights)
    for tokens in (torch.randn(1, 64), torch.randn(2, 7, 64) * 5):
        for part, out in zip(parts, joint(tokens), strict=True):
            assert torch.equal(out, part(tokens))


def test_parts_called_in_turn_share_one_matmul_and_keep_nothing_after():
    weights = [torch.randn(width, 32) for width in (8, 4)]
    parts = [Int8Linear(weight, None) for weight in weights]
    joint = JointProjection(weights)
    calls = []
    joint.linear.register_forward_hook(lambda *_: calls.append(1))
    first, second = joint.part(0), joint.part(1)
    hidden = torch.randn(3, 32)
    assert torch.equal(first(hidden), parts[0](hidden))
    assert torch.equal(second(hidden), parts[1](hidden))
    assert len(calls) == 1
    assert joint._pending is None  # no activations held between layer calls
    other = torch.randn(3, 32)
    assert torch.equal(second(other), parts[1](other))  # a new input is never served stale
    hidden.mul_(2)  # nor an input changed in place
    assert torch.equal(first(hidden), parts[0](hidden))


def test_joined_model_computes_what_the_unjoined_one_does(lively_model_dir: Path):
    def int8_model(join: bool) -> PreTrainedModel:
        model = AutoModelForImageTextToText.from_pretrained(lively_model_dir, dtype=torch.float32)
        return quantize_model_in_place(model, join=join).eval()

    separate, joined = int8_model(join=False), int8_model(join=True)
    layers = joined.config.text_config.num_hidden_layers
    assert sum(isinstance(m, JointProjection) for m in joined.modules()) == 2 * layers
    assert not any(isinstance(m, JointProjection) for m in separate.modules())
    ids = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 11]])
    with torch.inference_mode():
        assert torch.equal(separate(input_ids=ids).logits, joined(input_ids=ids).logits)


def test_the_int8_loader_joins_and_the_decode_step_uses_the_joints(lively_model_dir: Path):
    model = load_model(str(lively_model_dir), dtype="float32", quantization="int8-dynamic")
    parts = [m for m in model.modules() if isinstance(m, ProjectionPart)]
    assert len(parts) == 5 * model.config.text_config.num_hidden_layers
    step = DecodeStep(model)
    assert all(isinstance(layer.qkv, JointProjection) for layer in step.layers)
    assert all(isinstance(layer.gate_up, JointProjection) for layer in step.layers)
