"""CPU speed bench: the fp32 baseline against the configured fast path, each in its own process.

    python -m bench.speed                      # full-size Qwen3-VL-2B, random weights (skeleton)
    python -m bench.speed --model models/qwen3-vl-2b   # a real model folder
    python -m bench.speed --quick              # the tiny test model, a few tokens (CI)
    python -m bench.speed --quality --model models/qwen3-vl-2b   # answer accuracy (bench.quality)

Writes bench/results/latest.json (``baseline`` and ``fast`` objects, machine, versions, settings)
and prints a table with the fast/baseline ratios. See docs/speed.md for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.report import divergence, environment, table
from core.config import load_settings

HERE = Path(__file__).resolve().parent
DEFAULT_SKELETON = HERE.parent.parent / "shared" / "qwen3-vl-2b-skeleton"
DEFAULT_CACHE = Path.home() / ".cache" / "visionbot-bench"
METRICS = (
    "ttft_448_s",
    "ttft_1280_s",
    "decode_tok_s",
    "followup_ttft_s",
    "e2e_64_s",
    "peak_rss_gb",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.speed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", default="skeleton", help="model folder, or 'skeleton' (default)")
    parser.add_argument(
        "--skeleton",
        type=Path,
        default=DEFAULT_SKELETON,
        help="Qwen3-VL-2B config/tokenizer folder without weights",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help="where the random full-size model is saved once (~4.3 GB)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="visionbot config file for the fast path (default: config.toml)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny model, few tokens (for tests)")
    parser.add_argument("--quality", action="store_true", help="answer accuracy on bench cases")
    parser.add_argument("--tokens", type=int, default=None, help="forced answer length (64)")
    parser.add_argument("--paths", default="baseline,fast", help="which paths to run")
    parser.add_argument(
        "--ocr-pixels",
        type=int,
        default=896 * 896,
        help="the larger pixel budget measured for dense documents",
    )
    parser.add_argument(
        "--budget-sweep",
        default="",
        help="comma-separated pixel budgets to time a 1280×960 photo at",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    return parser.parse_args(argv)


def model_folder(args: argparse.Namespace, scratch: Path) -> Path:
    """The folder to load: the tiny model, the random full-size model, or the given folder."""
    if args.quick:
        from bench.tiny_model import build_tiny_qwen3_vl

        return build_tiny_qwen3_vl(scratch / "tiny-qwen3-vl")
    if args.model != "skeleton":
        return Path(args.model)
    folder = args.cache_dir / "qwen3-vl-2b-random"
    if not (args.skeleton / "config.json").exists() and not (folder / ".complete").exists():
        raise SystemExit(
            f"no model skeleton at {args.skeleton}: pass --skeleton DIR (the Qwen3-VL-2B config "
            "and tokenizer without weights) or --model DIR (a downloaded model)"
        )
    # Built in a child process so this one stays small; a finished copy is reused.
    code = (
        "import sys; from pathlib import Path; from bench.random_model import build_random_model;"
        "build_random_model(Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, str(args.skeleton), str(folder)], check=True)
    return folder


def run_path(kind: str, folder: Path, job: dict[str, Any], scratch: Path) -> dict[str, Any]:
    job_file = scratch / f"{kind}-job.json"
    result_file = scratch / f"{kind}-result.json"
    job_file.write_text(json.dumps(job))
    print(f"[bench] measuring {kind} …", file=sys.stderr, flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run_path",
            kind,
            str(folder),
            str(job_file),
            str(result_file),
        ],
        check=True,
        cwd=HERE.parent,
    )
    return json.loads(result_file.read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_settings(args.config)
    if args.quality:
        from bench.quality import run_quality

        return run_quality(args, settings)
    tokens = args.tokens or (8 if args.quick else 64)
    load_at_start = os.getloadavg()
    paths = [p for p in args.paths.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="visionbot-bench-") as tmp:
        scratch = Path(tmp)
        folder = model_folder(args, scratch)
        job = {
            "settings": {
                "model": settings.model.model_dump(),
                "images": settings.images.model_dump(),
            },
            "tokens": tokens,
            "logits_dir": str(scratch),
            "ocr_pixels": args.ocr_pixels,
            "budget_sweep": [int(b) for b in args.budget_sweep.split(",") if b],
        }
        results = {kind: run_path(kind, folder, job, scratch) for kind in paths}
        quality = divergence(scratch / "baseline.pt", scratch / "fast.pt")
    report = {
        **results,
        "logit_divergence": quality,
        "model": "random full-size Qwen3-VL-2B"
        if args.model == "skeleton" and not args.quick
        else ("tiny test model" if args.quick else str(args.model)),
        "model_folder": str(folder),
        "forced_answer_tokens": tokens,
        "decoding": (
            "a scripted 64-token answer fed token by token (logits computed each step, "
            "greedy otherwise); warm-up question first"
        ),
        "load_average_at_start": load_at_start,
        "settings": job["settings"],
        **environment(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results, quality, METRICS))
    print(f"[bench] wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
