"""Where the fast path's time goes: vision encoder vs language model, and the top operators.

    python -m bench.profile [--model DIR] [--quantization none] [--tokens 16]

Runs one cold 448 px photo question through the production engine under torch.profiler and
prints (1) the prefill split into the vision encoder and the rest, (2) the operators that take
the most time in the prefill and in decoding.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench.workloads import FIRST_QUESTION, photo
from core.config import load_settings
from core.engine import GenerationParams, PromptTurn
from core.transformers_engine import EngineOptions, TransformersEngine

DEFAULT_MODEL = Path.home() / ".cache" / "visionbot-bench" / "qwen3-vl-2b-random"


def top_ops(prof: profile, rows: int = 8) -> str:
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--quantization", default=None, help="override [model] quantization")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--side", type=int, default=448, help="square photo side in pixels")
    args = parser.parse_args(argv)
    model = load_settings(args.config).model
    update: dict[str, object] = {"id": str(args.model)}
    if args.quantization:
        update["quantization"] = args.quantization
    if args.threads is not None:
        update["threads"] = args.threads
    engine = TransformersEngine(EngineOptions.from_settings(model.model_copy(update=update)))
    params = GenerationParams(max_new_tokens=args.tokens, do_sample=False)
    vision_s: list[float] = []
    visual = engine.model.model.visual
    visual.register_forward_pre_hook(lambda *_: vision_s.append(-time.perf_counter()))
    visual.register_forward_hook(lambda *_: vision_s.append(time.perf_counter()))

    warm = [PromptTurn("user", "Hi", (photo(64, 64),))]
    list(engine.stream_tokens(warm, GenerationParams(max_new_tokens=2, do_sample=False)))
    vision_s.clear()
    turns = [PromptTurn("user", FIRST_QUESTION, (photo(args.side, args.side),))]
    with profile(activities=[ProfilerActivity.CPU]) as prefill_prof:
        started = time.perf_counter()
        stream = engine.stream_tokens(turns, params, min_new_tokens=args.tokens)
        next(stream)
        ttft = time.perf_counter() - started
    with profile(activities=[ProfilerActivity.CPU]) as decode_prof:
        started = time.perf_counter()
        rest = sum(1 for _ in stream)
        decode_s = time.perf_counter() - started
    vision = sum(vision_s)
    print(f"threads {torch.get_num_threads()}, quantization {engine.options.quantization}")
    print(f"prompt {engine.last_prompt.prompt_tokens} tokens; time to first token {ttft:.2f} s")
    print(f"  vision encoder {vision:.2f} s, language model prefill + rest {ttft - vision:.2f} s")
    print(f"decode {rest} tokens in {decode_s:.2f} s = {rest / decode_s:.2f} tok/s")
    print("\nprefill, top operators (profiler overhead included):")
    print(top_ops(prefill_prof))
    print("decode, top operators:")
    print(top_ops(decode_prof))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
