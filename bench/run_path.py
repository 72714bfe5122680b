"""Measure one path in its own process, so its peak RSS (load included) is its own.

``baseline``: what the reference service ran — transformers ``generate()`` in float32 with the
model's default image processor and no cache kept between turns.
``fast``: the production engine (core.transformers_engine) with the project's settings, images
prepared as the service prepares them (core.images with the configured pixel budget).

Usage (the bench runs this): python -m bench.run_path PATH MODEL_DIR SETTINGS_JSON RESULT_JSON
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from bench.workloads import (
    FIRST_QUESTION,
    FOLLOW_UP,
    REFERENCE_ANSWER,
    SCRIPTED_ANSWER,
    jpeg_bytes,
    photo,
)
from core.config import Settings
from core.engine import GenerationParams, PromptTurn
from core.images import ImageLimits, load_prepared, prepare_image
from core.transformers_engine import EngineOptions, TransformersEngine, to_chat_messages


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


class _TimingStreamer:
    """A generate() streamer noting when each new token arrives (the first put is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.times.extend([time.perf_counter()] * value.numel())

    def end(self) -> None:
        pass


def scripted_ids(engine: TransformersEngine) -> list[int]:
    return engine.processor.tokenizer(SCRIPTED_ANSWER)["input_ids"]


class _Script(LogitsProcessor):
    """Makes generate() pick the scripted answer's next token (one masked add per step)."""

    def __init__(self, script: list[int], prompt_length: int) -> None:
        self.script = script
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_length
        if step >= len(self.script):
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.script[step]] = 0.0
        return scores + forced


class BaselineRunner:
    def __init__(self, model_dir: str, settings: Settings) -> None:
        options = EngineOptions(model_id=model_dir, dtype="float32", threads=settings.model.threads)
        self.engine = TransformersEngine(options)  # loads with plain from_pretrained in fp32

    def image(self, data: bytes) -> Any:
        return load_prepared(data)  # decoded as sent: the default processor does the resizing

    def answer_times(
        self, turns: list[PromptTurn], params: GenerationParams, tokens: int, chat: str
    ) -> tuple[float, list[float], list[int]]:
        inputs = self.engine.build_inputs(turns)
        streamer = _TimingStreamer()
        sampling = (
            {"temperature": params.temperature, "top_p": params.top_p, "top_k": 0}
            if params.do_sample
            else {"temperature": None, "top_p": None, "top_k": None}
        )
        if params.seed is not None:
            torch.manual_seed(params.seed)
        script = _Script(scripted_ids(self.engine), inputs["input_ids"].shape[1])
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.engine.model.generate(
                **inputs,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=params.do_sample,
                streamer=streamer,
                logits_processor=LogitsProcessorList([script]),
                **sampling,
            )
        return start, streamer.times, out[0, inputs["input_ids"].shape[1] :].tolist()


class FastRunner:
    def __init__(self, model_dir: str, settings: Settings) -> None:
        options = EngineOptions.from_settings(settings.model.model_copy(update={"id": model_dir}))
        self.engine = TransformersEngine(options)
        self.limits = ImageLimits(
            max_pixels=settings.images.max_pixels,
            max_file_bytes=settings.images.max_file_bytes,
            max_decoded_pixels=settings.images.max_decoded_pixels,
        )

    def image(self, data: bytes) -> Any:
        return load_prepared(prepare_image(data, self.limits).data)

    def answer_times(
        self, turns: list[PromptTurn], params: GenerationParams, tokens: int, chat: str
    ) -> tuple[float, list[float], list[int]]:
        run = GenerationParams(**{**params.__dict__, "max_new_tokens": tokens})
        start = time.perf_counter()
        times: list[float] = []
        ids: list[int] = []
        stream: Iterator[int] = self.engine.stream_tokens(
            turns, run, cache_key=chat, min_new_tokens=tokens, script=scripted_ids(self.engine)
        )
        for token in stream:
            times.append(time.perf_counter())
            ids.append(token)
        return start, times, ids


def reference_logits(engine: TransformersEngine, image: Any) -> torch.Tensor:
    """Next-token logits over a fixed answer, teacher-forced, for the same input on every path."""
    turns = [
        PromptTurn("user", FIRST_QUESTION, (image,)),
        PromptTurn("assistant", REFERENCE_ANSWER),
    ]
    inputs = engine.processor.apply_chat_template(
        to_chat_messages(turns), tokenize=True, return_dict=True, return_tensors="pt"
    )
    answer_tokens = len(engine.processor.tokenizer(REFERENCE_ANSWER)["input_ids"])
    with torch.inference_mode():
        # The positions that predict the answer's tokens (and the end-of-turn after it).
        logits = engine.model(**inputs, logits_to_keep=answer_tokens + 2).logits[0]
    return logits.float()


Runner = BaselineRunner | FastRunner


def budget_costs(
    runner: FastRunner, params: GenerationParams, image: Any, budgets: list[int]
) -> dict[str, float]:
    """Time to first token of a 1280×960 photo under other pixel budgets (cost vs detail)."""
    chosen = runner.limits
    costs = {}
    try:
        for budget in budgets:
            runner.limits = ImageLimits(budget, chosen.max_file_bytes, chosen.max_decoded_pixels)
            turns = [PromptTurn("user", FIRST_QUESTION, (runner.image(jpeg_bytes(image)),))]
            start, times, _ = runner.answer_times(turns, params, 1, f"budget-{budget}")
            tokens = runner.engine.last_prompt.prompt_tokens
            costs[f"ttft_1280_at_{budget}px_s"] = times[0] - start
            costs[f"prompt_tokens_at_{budget}px"] = tokens
    finally:
        runner.limits = chosen
    return costs


def measure(
    runner: Runner, settings: Settings, tokens: int, load_s: float, extra_budgets: list[int]
) -> dict[str, Any]:
    """Cold 448 px question with a forced-length answer, its follow-up, a cold 1280×960 photo."""
    rss_after_load = peak_rss_gb()
    # Greedy on both paths: random weights give near-uniform distributions, where top-p keeps
    # ~90 % of the vocabulary and sampling would time the sampler, not the model (a real model's
    # nucleus is a handful of tokens; docs/speed.md has the sampler's own cost).
    params = GenerationParams(max_new_tokens=tokens, do_sample=False)
    small, square, big = photo(128, 96), photo(448, 448), photo(1280, 960)
    # Warm-up: thread pools and kernels' first-call set-up are not what a user waits for.
    runner.answer_times(
        [PromptTurn("user", "Hi", (runner.image(jpeg_bytes(small)),))], params, 2, "warm-up"
    )

    turns = [PromptTurn("user", FIRST_QUESTION, (runner.image(jpeg_bytes(square)),))]
    start, times, ids = runner.answer_times(turns, params, tokens, "chat-448")
    answer = runner.engine.processor.tokenizer.decode(ids, skip_special_tokens=True)
    turns += [PromptTurn("assistant", answer.strip()), PromptTurn("user", FOLLOW_UP)]
    f_start, f_times, _ = runner.answer_times(turns, params, 1, "chat-448")
    followup_stats = runner.engine.last_prompt
    b_start, b_times, _ = runner.answer_times(
        [PromptTurn("user", FIRST_QUESTION, (runner.image(jpeg_bytes(big)),))],
        params,
        1,
        "chat-1280",
    )
    result: dict[str, Any] = {
        "ttft_448_s": times[0] - start,
        "ttft_1280_s": b_times[0] - b_start,
        "decode_tok_s": (len(times) - 1) / (times[-1] - times[0]),
        "followup_ttft_s": f_times[0] - f_start,
        "e2e_64_s": times[-1] - start,
        "answer_tokens": len(ids),
        "load_s": load_s,
        "rss_after_load_gb": rss_after_load,
        "threads": torch.get_num_threads(),
        "prompt_tokens_448": len(runner.engine.build_inputs(turns[:1])["input_ids"][0]),
    }
    # Peak over load and the three user-facing measurements (GiB); the larger pixel budgets
    # below are extra detail with their own peak.
    result["peak_rss_gb"] = peak_rss_gb()
    if isinstance(runner, FastRunner):
        result["followup_prompt_tokens"] = followup_stats.prompt_tokens
        result["followup_reused_tokens"] = followup_stats.reused_tokens
        result["prefix_cache_mb_used"] = runner.engine.prefix_cache.used_bytes / 2**20
        result.update(budget_costs(runner, params, big, extra_budgets))
        result["peak_rss_with_budget_runs_gb"] = peak_rss_gb()
    return result


def main(argv: list[str]) -> None:
    kind, model_dir, settings_json, result_json = argv
    config = json.loads(Path(settings_json).read_text())
    settings = Settings(**config["settings"])
    started = time.perf_counter()
    runner = (BaselineRunner if kind == "baseline" else FastRunner)(model_dir, settings)
    budgets = [config["ocr_pixels"], *config["budget_sweep"]] if kind == "fast" else []
    load_s = time.perf_counter() - started
    result = measure(runner, settings, config["tokens"], load_s, budgets)
    if config.get("logits_dir"):
        logits = reference_logits(runner.engine, photo(448, 448))
        torch.save(logits, Path(config["logits_dir"]) / f"{kind}.pt")
    Path(result_json).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
