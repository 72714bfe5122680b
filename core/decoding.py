"""The decode loop: prefill (from a cached prefix when there is one), then one token at a time.

Written out instead of calling ``generate()`` because a follow-up continues from a KV cache kept
from the previous turn, and Qwen3-VL's 3-D rotary positions (M-RoPE) must then be computed for the
whole sequence and sliced, not inferred from state the model keeps between calls.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, PreTrainedModel

from core.decode_step import DecodeStep, GrowingCache
from core.engine import GenerationParams, StopFlag
from core.prefix_cache import ImageSpan, pixel_digest


@dataclass
class ModelInput:
    """A tokenized prompt with everything needed to run any suffix of it."""

    ids: list[int]
    position_ids: torch.Tensor  # (4, 1, L): text positions, then temporal/height/width M-RoPE
    rope_delta: int  # M-RoPE position minus sequence index for every token after the prompt
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    images: tuple[ImageSpan, ...]
    patch_rows: tuple[tuple[int, int], ...]  # each image's rows in pixel_values


def _image_spans(ids: list[int], image_token_id: int) -> list[tuple[int, int]]:
    spans = []
    start = None
    for index, token in enumerate([*ids, -1]):
        if token == image_token_id and start is None:
            start = index
        elif token != image_token_id and start is not None:
            spans.append((start, index))
            start = None
    return spans


def prepare_input(model: PreTrainedModel, inputs: Mapping[str, torch.Tensor]) -> ModelInput:
    """Positions for the whole prompt and an identity for each image, from processor output."""
    input_ids = inputs["input_ids"]
    grid = inputs.get("image_grid_thw")
    text_positions = torch.arange(input_ids.shape[1]).view(1, 1, -1)
    mrope, delta = model.model.get_rope_index(
        input_ids,
        mm_token_type_ids=inputs.get("mm_token_type_ids", torch.zeros_like(input_ids)),
        image_grid_thw=grid,
    )
    ids = input_ids[0].tolist()
    images: list[ImageSpan] = []
    rows: list[tuple[int, int]] = []
    if grid is not None:
        pixels = inputs["pixel_values"]
        spans = _image_spans(ids, model.config.image_token_id)
        first = 0
        for (start, end), thw in zip(spans, grid.tolist(), strict=True):
            count = thw[0] * thw[1] * thw[2]
            rows.append((first, first + count))
            images.append(ImageSpan(start, end, pixel_digest(pixels[first : first + count])))
            first += count
    return ModelInput(
        ids=ids,
        position_ids=torch.cat([text_positions, mrope]),
        rope_delta=int(delta.view(-1)[0]),
        pixel_values=inputs.get("pixel_values"),
        image_grid_thw=grid,
        images=tuple(images),
        patch_rows=tuple(rows),
    )


def nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest set of most likely tokens whose probability reaches ``top_p``: (probs, ids).

    The same set as transformers' top-p filter (a token stays when the tokens ranked above it
    hold less than ``top_p``), found with a growing top-k instead of sorting the whole
    151936-token vocabulary for every token, which costs tens of milliseconds on 2 cores.
    """
    k = min(256, probs.numel())
    while True:
        top, ids = torch.topk(probs, k)
        if float(top.sum()) >= top_p or k == probs.numel():
            break
        k = min(k * 8, probs.numel())
    above = top.cumsum(0) - top  # probability held by the tokens ranked above each one
    keep = above < top_p
    keep[0] = True
    return top[keep], ids[keep]


def choose_token(logits: torch.Tensor, params: GenerationParams) -> int:
    """Greedy, or sampling with temperature then nucleus (top-p) filtering as transformers does."""
    if not params.do_sample or params.temperature <= 0:
        return int(torch.argmax(logits))
    probs = (logits.float() / params.temperature).softmax(dim=-1)
    if params.top_p < 1.0:
        kept, ids = nucleus(probs, params.top_p)
        return int(ids[torch.multinomial(kept, num_samples=1)])
    # Exponential race: argmax(p / E) with E ~ Exp(1) picks token i with probability p_i,
    # without multinomial's cumulative sum over the whole vocabulary.
    return int(torch.argmax(probs / torch.empty_like(probs).exponential_()))


@dataclass
class Decoder:
    """Runs one answer; ``fed`` is exactly what ``cache`` holds once the loop stops cleanly."""

    model: PreTrainedModel
    prompt: ModelInput
    cache: DynamicCache
    start: int  # tokens of the prompt already in the cache
    eos_ids: Collection[int]
    fast_step: DecodeStep | None = None  # None: each token through transformers' forward
    fed: list[int] = field(default_factory=list)
    _growing: GrowingCache | None = field(default=None, init=False)

    def _prefill(self) -> torch.Tensor:
        prompt, start = self.prompt, self.start
        kwargs: dict[str, torch.Tensor] = {}
        fresh = [i for i, span in enumerate(prompt.images) if span.start >= start]
        if fresh and prompt.pixel_values is not None and prompt.image_grid_thw is not None:
            kwargs["pixel_values"] = torch.cat(
                [prompt.pixel_values[slice(*prompt.patch_rows[i])] for i in fresh]
            )
            kwargs["image_grid_thw"] = prompt.image_grid_thw[fresh]
        logits = self.model(
            input_ids=torch.tensor([prompt.ids[start:]]),
            position_ids=prompt.position_ids[..., start:],
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
            **kwargs,
        ).logits
        self.fed = list(prompt.ids)
        return logits[0, -1]

    def _step(self, token: int) -> torch.Tensor:
        index = len(self.fed)
        if self.fast_step is not None:
            if self._growing is None:
                self._growing = GrowingCache(self.cache)
            logits = self.fast_step(token, index + self.prompt.rope_delta, self._growing)
            self.fed.append(token)
            return logits
        text = torch.tensor([[[index]]])
        position = torch.cat([text, text.expand(3, 1, 1) + self.prompt.rope_delta])
        logits = self.model(
            input_ids=torch.tensor([[token]]),
            position_ids=position,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        self.fed.append(token)
        return logits[0, -1]

    def tokens(
        self,
        params: GenerationParams,
        should_stop: StopFlag | None = None,
        min_new_tokens: int = 0,
        script: Sequence[int] = (),
    ) -> Iterator[int]:
        """Yield new token ids until EOS, ``max_new_tokens`` or the stop flag.

        ``script`` tokens are fed in place of the first chosen ones (benchmarks: the same work
        per token as a chosen answer, with text that reads like a real model's).
        """
        eos = torch.tensor(sorted(self.eos_ids), dtype=torch.long)
        with torch.inference_mode():
            try:
                logits = self._prefill()
                for produced in range(params.max_new_tokens):
                    if should_stop is not None and should_stop.is_set():
                        return
                    if produced < min_new_tokens and len(eos):
                        logits = logits.index_fill(0, eos, float("-inf"))
                    if produced < len(script):
                        token = script[produced]
                    else:
                        token = choose_token(logits, params)
                    if token in self.eos_ids:
                        return
                    yield token
                    if produced + 1 < params.max_new_tokens:
                        logits = self._step(token)
            finally:
                if self._growing is not None:
                    self._growing.compact()
