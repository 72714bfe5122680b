"""The local engine: a Qwen3-VL model loaded with Hugging Face transformers, run on the CPU.

Speed work (docs/speed.md): optional int8 weights loaded layer by layer (core.model_loading), a
hand-written decode loop (core.decoding) and a per-chat KV cache kept between turns
(core.prefix_cache), so a follow-up question about the same photo pays only for its new tokens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError
from transformers import AutoProcessor, DynamicCache
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from core.config import ModelSettings
from core.decode_step import DecodeStep
from core.decoding import Decoder, prepare_input
from core.engine import GenerationParams, ModelLoadError, PromptTurn, StopFlag
from core.model_loading import load_model
from core.prefix_cache import CachedPrefix, PrefixCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptStats:
    """How the last prompt was run: its length and how much of it came from the chat's cache."""

    prompt_tokens: int
    reused_tokens: int


@dataclass(frozen=True)
class EngineOptions:
    model_id: str
    dtype: str = "float32"
    threads: int = 0
    quantization: str = "none"  # "none" | "int8-dynamic"
    prefix_cache_mb: int = 0  # 0 = no KV cache kept between turns

    @classmethod
    def from_settings(cls, model: ModelSettings) -> EngineOptions:
        return cls(
            model_id=model.id,
            dtype=model.dtype,
            threads=model.threads,
            quantization=model.quantization,
            prefix_cache_mb=model.prefix_cache_mb,
        )


def to_chat_messages(turns: Sequence[PromptTurn]) -> list[dict[str, Any]]:
    """The processor's chat-template form: each image as its own content part before the text."""
    messages = []
    for turn in turns:
        content: list[dict[str, Any]] = [{"type": "image", "image": im} for im in turn.images]
        content.append({"type": "text", "text": turn.text})
        messages.append({"role": turn.role, "content": content})
    return messages


def _eos_ids(model: Any, processor: Any) -> frozenset[int]:
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(processor.tokenizer.eos_token_id)
    return frozenset(i for i in ids if i is not None)


def local_model_folder(model_id: str) -> str:
    """The model as a local folder: the configured folder, or the hub snapshot (downloaded once).

    One snapshot download instead of a lookup per file: without hub access it fails once, after
    one round of retries, rather than once per file; and a local folder lets the int8 path load
    layer by layer.
    """
    path = Path(model_id).expanduser()
    if path.is_dir():
        return str(path)
    if path.is_absolute() or model_id.startswith((".", "~")) or model_id.count("/") != 1:
        # Not of the hub's "owner/name" form: the user meant a folder, and it is not there.
        raise FileNotFoundError(f"there is no model folder at {path}")
    return snapshot_download(model_id)


class TransformersEngine:
    """Loads the processor and model once; streams answers, reusing each chat's cached prefix."""

    def __init__(self, options: EngineOptions) -> None:
        if options.threads > 0:
            torch.set_num_threads(options.threads)
        self.options = options
        started = time.perf_counter()
        try:
            folder = local_model_folder(options.model_id)
            self.processor = AutoProcessor.from_pretrained(folder)
            self.model = load_model(folder, dtype=options.dtype, quantization=options.quantization)
        except (OSError, HfHubHTTPError) as error:
            raise ModelLoadError(
                f"cannot load the model '{options.model_id}': {str(error).splitlines()[0]}\n"
                "Set [model] id in config.toml to a local folder holding the downloaded model "
                "(e.g. `huggingface-cli download Qwen/Qwen3-VL-2B-Instruct --local-dir "
                "models/qwen3-vl-2b`), or give this machine access to the Hugging Face hub."
            ) from None
        self.prefix_cache = PrefixCache(options.prefix_cache_mb * 2**20)
        self.last_prompt = PromptStats(0, 0)
        self._eos = _eos_ids(self.model, self.processor)
        self._fast_step = DecodeStep(self.model) if DecodeStep.fits(self.model) else None
        image_processor = self.processor.image_processor
        self._factor = image_processor.patch_size * image_processor.merge_size
        size = image_processor.size
        self._min_pixels = size.get("shortest_edge", 56 * 56)
        self._max_pixels = size.get("longest_edge", 28 * 28 * 1280)
        log.info(
            "model %s loaded in %.0f s (%s, quantization %s, %d threads, prefix cache %d MB)",
            options.model_id,
            time.perf_counter() - started,
            options.dtype,
            options.quantization,
            torch.get_num_threads(),
            options.prefix_cache_mb,
        )

    def token_cost(self, text: str, image_sizes: Sequence[tuple[int, int]]) -> int:
        tokens = len(self.processor.tokenizer(text)["input_ids"]) + 5  # role markers
        for width, height in image_sizes:
            h, w = smart_resize(
                height,
                width,
                factor=self._factor,
                min_pixels=self._min_pixels,
                max_pixels=self._max_pixels,
            )
            tokens += (h // self._factor) * (w // self._factor) + 2
        return tokens

    def build_inputs(self, turns: Sequence[PromptTurn]) -> dict[str, torch.Tensor]:
        return self.processor.apply_chat_template(
            to_chat_messages(turns),
            tokenize=True,
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        )

    def stream_tokens(
        self,
        turns: Sequence[PromptTurn],
        params: GenerationParams,
        *,
        cache_key: str | None = None,
        should_stop: StopFlag | None = None,
        min_new_tokens: int = 0,
        script: Sequence[int] = (),
    ) -> Iterator[int]:
        """Yield the answer's token ids.

        For benchmarks, ``min_new_tokens`` forces a length and ``script`` is fed as the answer's
        first tokens instead of chosen ones.
        """
        prompt = prepare_input(self.model, self.build_inputs(turns))
        keep = cache_key is not None and self.prefix_cache.enabled
        reused = self.prefix_cache.take(cache_key, prompt.ids, prompt.images) if keep else None
        cache, start = reused or (DynamicCache(config=self.model.config.get_text_config()), 0)
        self.last_prompt = PromptStats(len(prompt.ids), start)
        log.debug("[%s] prompt %d tokens, %d from cache", cache_key, len(prompt.ids), start)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        decoder = Decoder(self.model, prompt, cache, start, self._eos, self._fast_step)
        finished = False
        try:
            yield from decoder.tokens(params, should_stop, min_new_tokens, script)
            finished = True
        except GeneratorExit:
            finished = True  # the caller stopped listening between tokens: the cache is whole
            raise
        finally:
            # After an error inside the model the cache may hold half a step; drop it then.
            if keep and finished and decoder.fed:
                self.prefix_cache.put(cache_key, CachedPrefix(cache, decoder.fed, prompt.images))

    def stream(
        self,
        turns: Sequence[PromptTurn],
        params: GenerationParams,
        *,
        cache_key: str | None = None,
        should_stop: StopFlag | None = None,
    ) -> Iterator[str]:
        tokenizer = self.processor.tokenizer
        ids: list[int] = []
        sent = ""
        for token in self.stream_tokens(
            turns, params, cache_key=cache_key, should_stop=should_stop
        ):
            ids.append(token)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            # A character split across tokens decodes as U+FFFD until its last byte arrives.
            if len(text) > len(sent) and not text.endswith("\ufffd"):
                yield text[len(sent) :]
                sent = text
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if len(text) > len(sent):
            yield text[len(sent) :]
