"""Thread count vs speed on one full-size decoder layer (int8), for choosing ``[model] threads``.

    python -m bench.threads [--skeleton DIR] [--threads 1,2,4]

Times one Qwen3-VL-2B text decoder layer (random weights, int8 as the fast path runs it) for a
216-token prefill and for one decode step, at each thread count. Each count runs in a fresh
process, because OpenMP fixes its thread pool at first use.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.speed import DEFAULT_SKELETON


def time_layer(skeleton: Path, threads: int) -> dict[str, float]:
    import torch
    from transformers import AutoConfig
    from transformers.models.qwen3_vl.modeling_qwen3_vl import (
        Qwen3VLTextDecoderLayer,
        Qwen3VLTextRotaryEmbedding,
    )

    from core.quantize import quantize_model_in_place

    torch.set_num_threads(threads)
    config = AutoConfig.from_pretrained(skeleton).text_config
    config._attn_implementation = "sdpa"
    layer = quantize_model_in_place(Qwen3VLTextDecoderLayer(config, 0)).eval()
    rotary = Qwen3VLTextRotaryEmbedding(config)

    def run(tokens: int, repeats: int) -> float:
        hidden = torch.randn(1, tokens, config.hidden_size)
        positions = torch.arange(tokens).view(1, 1, -1).expand(3, 1, -1)
        embeddings = rotary(hidden, positions)
        with torch.inference_mode():
            layer(hidden, position_embeddings=embeddings)
            started = time.perf_counter()
            for _ in range(repeats):
                layer(hidden, position_embeddings=embeddings)
        return (time.perf_counter() - started) / repeats

    return {"threads": threads, "prefill_216_ms": run(216, 5) * 1e3, "step_ms": run(1, 50) * 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.threads")
    parser.add_argument("--skeleton", type=Path, default=DEFAULT_SKELETON)
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(time_layer(args.skeleton, args.one)))
        return 0
    print("| threads | one decoder layer, 216-token prefill | one decode step |")
    print("|---|---|---|")
    for count in (int(t) for t in args.threads.split(",")):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.threads",
                "--skeleton",
                str(args.skeleton),
                "--one",
                str(count),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(f"| {count} | {row['prefill_216_ms']:.1f} ms | {row['step_ms']:.2f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
