"""Answer accuracy of fp32 against the fast path on small drawn cases (needs the real weights).

Random weights cannot show answer quality, so ``python -m bench.speed --quality --model DIR``
asks a real model each case's question on both paths (greedy) and counts answers that contain an
expected keyword. Writes bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from core.config import Settings
from core.engine import GenerationParams, PromptTurn
from core.images import ImageLimits, load_prepared, prepare_image
from core.transformers_engine import EngineOptions, TransformersEngine


@dataclass(frozen=True)
class Case:
    name: str
    question: str
    expected: tuple[str, ...]  # the answer is right when it contains any of these (any case)
    draw: str  # what to draw; see ``render``


CASES = (
    Case("sign-text", "What does the sign say?", ("open 24",), "text:OPEN 24 HOURS"),
    Case(
        "invoice-total",
        "What is the total amount?",
        ("42.50", "42,50", "42.5"),
        "text:TOTAL: 42.50 EUR",
    ),
    Case("word", "What word is written in the image?", ("visionbot",), "text:visionbot"),
    Case(
        "circle-colour", "What colour is the circle? Answer with one word.", ("red",), "circle:red"
    ),
    Case(
        "square-shape",
        "What shape is drawn? Answer with one word.",
        ("square", "rectangle"),
        "square:blue",
    ),
    Case(
        "star-colour", "What colour is the star? Answer with one word.", ("yellow",), "star:yellow"
    ),
    Case(
        "count",
        "How many triangles are there? Answer with a number.",
        ("3", "three"),
        "triangles:3",
    ),
    Case("left-right", "Is the blue square on the left or on the right?", ("right",), "left-right"),
)

COLOURS = {
    "red": (220, 20, 20),
    "blue": (20, 50, 220),
    "yellow": (245, 210, 0),
    "green": (20, 160, 40),
}


def render(spec: str, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """Draw a case's picture: dark shapes or text on a white background."""
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    kind, _, arg = spec.partition(":")
    w, h = size
    if kind == "text":
        font = ImageFont.load_default(size=56)
        draw.text((w // 2, h // 2), arg, fill=(0, 0, 0), font=font, anchor="mm")
    elif kind == "circle":
        draw.ellipse((w // 4, h // 6, w * 3 // 4, h * 5 // 6), fill=COLOURS[arg])
    elif kind == "square":
        side = h * 2 // 3
        draw.rectangle(((w - side) // 2, h // 6, (w + side) // 2, h // 6 + side), fill=COLOURS[arg])
    elif kind == "star":
        import math

        points = [
            (
                w / 2 + (180 if i % 2 == 0 else 75) * math.sin(i * math.pi / 5),
                h / 2 - (180 if i % 2 == 0 else 75) * math.cos(i * math.pi / 5),
            )
            for i in range(10)
        ]
        draw.polygon(points, fill=COLOURS[arg])
    elif kind == "triangles":
        for i in range(int(arg)):
            x = w * (i + 1) // (int(arg) + 1)
            draw.polygon(
                [(x, h // 3), (x - 60, h * 2 // 3), (x + 60, h * 2 // 3)], fill=COLOURS["green"]
            )
    elif kind == "left-right":
        draw.ellipse((60, h // 3, 220, h // 3 + 160), fill=COLOURS["red"])
        draw.rectangle((w - 220, h // 3, w - 60, h // 3 + 160), fill=COLOURS["blue"])
    return image


def score(answer: str, case: Case) -> bool:
    lowered = answer.lower()
    return any(word.lower() in lowered for word in case.expected)


def answer_cases(engine: TransformersEngine, limits: ImageLimits | None) -> list[dict[str, Any]]:
    params = GenerationParams(max_new_tokens=32, do_sample=False)
    rows = []
    for case in CASES:
        image = render(case.draw)
        if limits is not None:  # the fast path sees images as the service prepares them
            from bench.workloads import jpeg_bytes

            image = load_prepared(prepare_image(jpeg_bytes(image, quality=95), limits).data)
        started = time.perf_counter()
        text = "".join(engine.stream([PromptTurn("user", case.question, (image,))], params))
        rows.append(
            {
                "case": case.name,
                "answer": text.strip(),
                "correct": score(text, case),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    return rows


def run_quality(args: argparse.Namespace, settings: Settings) -> int:
    with tempfile.TemporaryDirectory(prefix="visionbot-quality-") as tmp:
        if args.quick:
            from bench.tiny_model import build_tiny_qwen3_vl

            folder = str(build_tiny_qwen3_vl(Path(tmp) / "tiny"))
        elif args.model == "skeleton":
            print("--quality needs a real model folder: --model PATH", file=sys.stderr)
            return 2
        else:
            folder = str(args.model)
        report: dict[str, Any] = {"model": folder if not args.quick else "tiny test model"}
        fp32 = TransformersEngine(EngineOptions(folder, threads=settings.model.threads))
        report["baseline"] = answer_cases(fp32, None)
        del fp32
        gc.collect()
        options = EngineOptions.from_settings(settings.model.model_copy(update={"id": folder}))
        fast = TransformersEngine(options)
        limits = ImageLimits(
            settings.images.max_pixels,
            settings.images.max_file_bytes,
            settings.images.max_decoded_pixels,
        )
        report["fast"] = answer_cases(fast, limits)
    for path in ("baseline", "fast"):
        right = sum(row["correct"] for row in report[path])
        report[f"{path}_accuracy"] = right / len(CASES)
        print(f"{path}: {right}/{len(CASES)} correct")
        for row in report[path]:
            print(f"  {'✓' if row['correct'] else '✗'} {row['case']}: {row['answer']!r}")
    out = args.out.with_name("quality.json") if args.out.name == "latest.json" else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"[bench] wrote {out}", file=sys.stderr)
    return 0
