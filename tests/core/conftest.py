"""Fixtures for the engine's speed paths: a tiny model whose greedy answers vary token by token."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from bench.tiny_model import build_tiny_qwen3_vl


@pytest.fixture(scope="session")
def lively_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Large random weights make peaky logits: answers differ per token, so a wrong position or
    # a stale cache entry changes the output instead of hiding behind a repeated token.
    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("lively-qwen3-vl"), initializer_range=1.0)


def picture(color: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A real RGB image with a shape on it; different colours give different pixels."""
    image = Image.new("RGB", size, (240, 240, 235))
    ImageDraw.Draw(image).ellipse((40, 30, size[0] - 60, size[1] - 40), fill=color)
    return image
