"""What the bench reports: the comparison table, logit divergence, machine and versions."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOWER_IS_BETTER = {"ttft_448_s", "ttft_1280_s", "followup_ttft_s", "e2e_64_s", "peak_rss_gb"}
TARGETS = {  # the targets for the fast path on the 2-core machine
    "ttft_448_s": "≤ 4",
    "decode_tok_s": "≥ 8",
    "followup_ttft_s": "≤ 1.5",
    "e2e_64_s": "≥ 4× faster",
    "peak_rss_gb": "≤ 4",
}


def divergence(baseline_file: Path, fast_file: Path) -> dict[str, float] | None:
    """How far the fast path's next-token distributions are from fp32 on identical inputs."""
    if not (baseline_file.exists() and fast_file.exists()):
        return None
    import torch

    reference = torch.log_softmax(torch.load(baseline_file), dim=-1)
    candidate = torch.log_softmax(torch.load(fast_file), dim=-1)
    kl = (reference.exp() * (reference - candidate)).sum(dim=-1)  # KL(fp32 ‖ fast) per position
    top1 = reference.argmax(-1) == candidate.argmax(-1)
    top5 = [
        len(set(a.tolist()) & set(b.tolist())) / 5
        for a, b in zip(reference.topk(5).indices, candidate.topk(5).indices, strict=True)
    ]
    return {
        "positions": int(reference.shape[0]),
        "kl_mean": float(kl.mean()),
        "kl_max": float(kl.max()),
        "top1_agreement": float(top1.float().mean()),
        "top5_overlap": sum(top5) / len(top5),
        "fp32_entropy_mean": float(-(reference.exp() * reference).sum(-1).mean()),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []
    )
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile")
    return [f for f in wanted if f in flags]


def environment() -> dict[str, Any]:
    import psutil
    import torch
    import transformers

    return {
        "machine": {
            "cpu": _cpu_model(),
            "cpu_flags": _cpu_flags(),
            "logical_cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average": os.getloadavg(),
            "platform": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "quantized_engine": torch.backends.quantized.engine,
        },
    }


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else ("—" if value is None else str(value))


def table(
    results: dict[str, dict[str, Any]], quality: dict[str, float] | None, metrics: Sequence[str]
) -> str:
    base, fast = results.get("baseline", {}), results.get("fast", {})
    lines = [
        "| metric | baseline (fp32) | fast | fast/baseline | speed-up | target |",
        "|---|---|---|---|---|---|",
    ]
    for name in metrics:
        b, f = base.get(name), fast.get(name)
        ratio = f / b if isinstance(b, float) and isinstance(f, float) and b else None
        gain = None
        if ratio:
            gain = f"{1 / ratio:.1f}×" if name in LOWER_IS_BETTER else f"{ratio:.1f}×"
        lines.append(
            f"| {name} | {_fmt(b)} | {_fmt(f)} | {_fmt(ratio)} | {gain or '—'} "
            f"| {TARGETS.get(name, '')} |"
        )
    extras = [k for k in fast if k not in metrics]
    if extras:
        lines.append("")
        lines.append("fast path details: " + ", ".join(f"{k}={_fmt(fast[k])}" for k in extras))
    if quality:
        lines.append(
            "logit divergence fast vs fp32: "
            + ", ".join(f"{k}={_fmt(v)}" for k, v in quality.items())
        )
    return "\n".join(lines)
