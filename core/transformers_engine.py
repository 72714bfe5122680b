"""The local engine: a Qwen3-VL model loaded with Hugging Face transformers, run on the CPU."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from core.config import ModelSettings
from core.engine import GenerationParams, ModelLoadError, PromptTurn, StopFlag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOptions:
    model_id: str
    dtype: str = "float32"
    threads: int = 0

    @classmethod
    def from_settings(cls, model: ModelSettings) -> EngineOptions:
        return cls(model_id=model.id, dtype=model.dtype, threads=model.threads)


class _StopWhenFlagged(StoppingCriteria):
    def __init__(self, flag: StopFlag) -> None:
        self._flag = flag

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self._flag.is_set(), dtype=torch.bool)


def to_chat_messages(turns: Sequence[PromptTurn]) -> list[dict[str, Any]]:
    """The processor's chat-template form: each image as its own content part before the text."""
    messages = []
    for turn in turns:
        content: list[dict[str, Any]] = [{"type": "image", "image": im} for im in turn.images]
        content.append({"type": "text", "text": turn.text})
        messages.append({"role": turn.role, "content": content})
    return messages


class TransformersEngine:
    """Loads the processor and model once; streams answers with ``generate``."""

    def __init__(self, options: EngineOptions) -> None:
        if options.threads > 0:
            torch.set_num_threads(options.threads)
        self.options = options
        try:
            self.processor = AutoProcessor.from_pretrained(options.model_id)
            self.model = AutoModelForImageTextToText.from_pretrained(
                options.model_id, dtype=getattr(torch, options.dtype)
            )
        except OSError as error:
            raise ModelLoadError(
                f"cannot load the model '{options.model_id}': {str(error).splitlines()[0]}\n"
                "Set [model] id in config.toml to a local folder holding the downloaded model "
                "(e.g. `huggingface-cli download Qwen/Qwen3-VL-2B-Instruct --local-dir "
                "models/qwen3-vl-2b`), or give this machine access to the Hugging Face hub."
            ) from None
        self.model.eval()
        image_processor = self.processor.image_processor
        self._factor = image_processor.patch_size * image_processor.merge_size
        size = image_processor.size
        self._min_pixels = size.get("shortest_edge", 56 * 56)
        self._max_pixels = size.get("longest_edge", 28 * 28 * 1280)
        log.info(
            "model %s loaded (%s, %d threads)",
            options.model_id,
            options.dtype,
            torch.get_num_threads(),
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

    def _generate_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": params.do_sample,
        }
        if params.do_sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            # The model's generation_config may carry sampling defaults; greedy must ignore them.
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def stream(
        self,
        turns: Sequence[PromptTurn],
        params: GenerationParams,
        *,
        cache_key: str | None = None,
        should_stop: StopFlag | None = None,
    ) -> Iterator[str]:
        inputs = self.build_inputs(turns)
        streamer = TextIteratorStreamer(
            self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        stopping = StoppingCriteriaList([_StopWhenFlagged(should_stop)] if should_stop else [])
        errors: list[BaseException] = []

        def run() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                with torch.inference_mode():
                    self.model.generate(
                        **inputs,
                        **self._generate_kwargs(params),
                        streamer=streamer,
                        stopping_criteria=stopping,
                    )
            except BaseException as error:  # surfaced to the caller below
                errors.append(error)
                streamer.end()

        worker = threading.Thread(target=run, name="generate", daemon=True)
        worker.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            worker.join()
        if errors:
            raise errors[0]
