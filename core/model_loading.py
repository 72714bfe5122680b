"""Loading the vision-language model, in float or as int8 with bounded peak memory.

The int8 path never holds the whole model in float: the module tree is built with its parameters
on the meta device, then each layer's weights are read from the safetensors files, quantized and
their float copy dropped before the next layer is read. Peak memory is the int8 model plus one
layer (the largest being the 151936×2048 embedding table, read in bfloat16).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModelForImageTextToText, GenerationConfig, PreTrainedModel

from core.joint_projection import join_linears
from core.quantize import (
    Int8Embedding,
    quantize_model_in_place,
    quantize_weight,
    replace_module,
)

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "int8-dynamic")


class _NotStreamable(Exception):
    """The checkpoint's tensor names do not match the model; use the ordinary loader instead."""


class _Checkpoint:
    """Tensor name → safetensors file, read one tensor at a time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        index = folder / "model.safetensors.index.json"
        if index.exists():
            self.files: dict[str, str] = json.loads(index.read_text())["weight_map"]
        elif (folder / "model.safetensors").exists():
            with safe_open(folder / "model.safetensors", framework="pt") as f:
                self.files = dict.fromkeys(f.keys(), "model.safetensors")
        else:
            raise _NotStreamable(f"no safetensors files in {folder}")

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def read(self, name: str) -> torch.Tensor:
        # Opened per tensor so that no mapping of the whole multi-GB file stays resident.
        with safe_open(self.folder / self.files[name], framework="pt") as f:
            return f.get_tensor(name)

    def rows(self, name: str) -> _StoredRows:
        return _StoredRows(self, name)


class _StoredRows:
    """A matrix in the checkpoint read a block of rows at a time (the 151936-row tables)."""

    def __init__(self, checkpoint: _Checkpoint, name: str) -> None:
        self._checkpoint = checkpoint
        self._name = name
        with safe_open(checkpoint.folder / checkpoint.files[name], framework="pt") as f:
            self.shape = tuple(f.get_slice(name).get_shape())

    def __getitem__(self, rows: slice) -> torch.Tensor:
        with safe_open(
            self._checkpoint.folder / self._checkpoint.files[self._name], framework="pt"
        ) as f:
            return f.get_slice(self._name)[rows]


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them), so peak RSS tracks live data."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Build modules without allocating their weights; buffers (rotary tables) stay real."""
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=False)

    nn.Module.register_parameter = on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]


def _source_names(model: PreTrainedModel, checkpoint: _Checkpoint) -> dict[str, str]:
    """Each parameter's tensor name in the checkpoint (tied output heads read the embedding)."""
    tied = getattr(model, "_tied_weights_keys", None) or {}
    names = {}
    for name, _ in model.named_parameters(remove_duplicate=False):
        source = name if name in checkpoint else tied.get(name)
        if source is None or source not in checkpoint:
            raise _NotStreamable(f"checkpoint has no tensor for {name}")
        names[name] = source
    return names


def _stored_weight(
    checkpoint: _Checkpoint, sources: dict[str, str], prefix: str, name: str, _: nn.Linear
) -> _StoredRows:
    return checkpoint.rows(sources[f"{prefix}{name}.weight"])


def _load_int8_streaming(folder: Path) -> PreTrainedModel:
    config = AutoConfig.from_pretrained(folder)
    with _parameters_on_meta():
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    checkpoint = _Checkpoint(folder)
    sources = _source_names(model, checkpoint)
    embeddings = model.get_input_embeddings()
    for name, module in list(model.named_modules()):
        prefix = f"{name}." if name else ""
        if join_linears(module, partial(_stored_weight, checkpoint, sources, prefix)):
            _release_freed_memory()
        # A Linear already replaced by a joined projection above is still in the listing.
        if isinstance(module, nn.Linear) and model.get_submodule(name) is module:
            weight = checkpoint.rows(sources[prefix + "weight"])
            bias = checkpoint.read(sources[prefix + "bias"]) if module.bias is not None else None
            replace_module(model, name, quantize_weight(weight, bias))
            _release_freed_memory()
        elif module is embeddings and isinstance(module, nn.Embedding):
            table = checkpoint.rows(sources[prefix + "weight"])
            replace_module(model, name, Int8Embedding(table, module.padding_idx))
            _release_freed_memory()
    for name, param in list(model.named_parameters()):
        if param.device.type == "meta":
            owner, _, attr = name.rpartition(".")
            tensor = checkpoint.read(sources[name]).float()
            setattr(model.get_submodule(owner), attr, nn.Parameter(tensor, requires_grad=False))
    _release_freed_memory()
    with contextlib.suppress(OSError):
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model


def load_model(model_id: str, *, dtype: str, quantization: str) -> PreTrainedModel:
    """The model ready for inference; raises OSError when ``model_id`` cannot be found."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r} (one of {QUANTIZATIONS})")
    if quantization == "none":
        model = AutoModelForImageTextToText.from_pretrained(model_id, dtype=getattr(torch, dtype))
        return model.eval()
    folder = Path(model_id)
    if folder.is_dir():
        try:
            return _load_int8_streaming(folder).eval()
        except _NotStreamable as reason:
            log.warning("int8 layer-by-layer load not possible (%s); loading in bf16 first", reason)
    # A hub id or an unusual checkpoint layout: load in bfloat16 (half of fp32), then convert.
    model = AutoModelForImageTextToText.from_pretrained(model_id, dtype=torch.bfloat16)
    return quantize_model_in_place(model).float().eval()
