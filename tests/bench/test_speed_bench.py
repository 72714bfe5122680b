"""The bench runs end to end on the tiny model, so it cannot rot between full-size runs."""

from __future__ import annotations

import json
from pathlib import Path

from bench.quality import CASES, render, score
from bench.speed import METRICS, main


def test_quick_bench_writes_both_paths_and_the_divergence(tmp_path: Path, capsys):
    out = tmp_path / "latest.json"
    assert main(["--quick", "--tokens", "4", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    for path in ("baseline", "fast"):
        for metric in METRICS:
            assert report[path][metric] > 0, (path, metric)
        assert report[path]["answer_tokens"] == 4
    fast = report["fast"]
    # The follow-up reused the first question's cached prefix (photo included).
    assert fast["followup_reused_tokens"] >= fast["prompt_tokens_448"]
    # The pixel budget shrinks the 1280×960 photo; the larger OCR budget costs more tokens.
    assert fast[f"prompt_tokens_at_{896 * 896}px"] > fast["prompt_tokens_448"]
    assert report["settings"]["model"]["quantization"] == "int8-dynamic"
    assert 0 <= report["logit_divergence"]["top1_agreement"] <= 1
    assert report["versions"]["torch"] and report["machine"]["logical_cpus"]
    printed = capsys.readouterr().out
    assert "| ttft_448_s |" in printed and "fast/baseline" in printed


def test_quality_mode_runs_on_the_tiny_model(tmp_path: Path):
    out = tmp_path / "quality.json"
    assert main(["--quality", "--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [row["case"] for row in report["fast"]] == [case.name for case in CASES]
    assert 0 <= report["fast_accuracy"] <= 1


def test_quality_cases_draw_distinct_pictures_and_score_keywords():
    pictures = {render(case.draw).tobytes() for case in CASES}
    assert len(pictures) == len(CASES)
    case = next(c for c in CASES if c.name == "invoice-total")
    assert score("The total is 42,50 euros.", case)
    assert not score("The total is 24 euros.", case)
