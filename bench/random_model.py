"""The full-size Qwen3-VL-2B architecture with random weights, saved like a downloaded model.

Speed does not depend on the weights' values, so this stands in for the real model on machines
that cannot download it. It is saved once (bfloat16 safetensors, ~4.3 GB, as the real model ships)
and then loaded through the production loader like any model folder.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

SKELETON_FILES = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)
DONE_MARKER = ".complete"


def build_random_model(skeleton: Path, folder: Path, *, seed: int = 0) -> Path:
    """Write the random full-size model into ``folder`` unless a complete copy is already there."""
    if (folder / DONE_MARKER).exists():
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    missing = [name for name in SKELETON_FILES if not (skeleton / name).exists()]
    if missing:
        raise FileNotFoundError(f"{skeleton} lacks {', '.join(missing)} (the model skeleton)")
    folder.mkdir(parents=True, exist_ok=True)
    log.info("building the random full-size model from %s into %s", skeleton, folder)
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(skeleton)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    del model
    for name in SKELETON_FILES:
        shutil.copyfile(skeleton / name, folder / name)
    (folder / DONE_MARKER).write_text("ok\n")
    return folder
