"""Shared fixtures: the tiny random Qwen3-VL, settings, store and service over real SQLite."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from bench.tiny_model import build_tiny_qwen3_vl
from core.config import Settings, load_settings
from core.service import ConversationService
from core.transformers_engine import EngineOptions, TransformersEngine
from storage.store import ConversationStore


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Large random weights give peaky logits, so greedy answers are varied text rather than one
    # repeated whitespace token: adapters then handle real, non-empty (if meaningless) answers.
    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny-qwen3-vl"), initializer_range=1.0)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path) -> TransformersEngine:
    """The production engine over the tiny model, loaded once per test session."""
    return TransformersEngine(EngineOptions(model_id=str(tiny_model_dir), threads=1))


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path) -> Settings:
    return load_settings(
        None,
        model={"id": str(tiny_model_dir), "max_new_tokens": 8, "do_sample": False, "threads": 1},
        storage={"url": f"sqlite:///{tmp_path / 'visionbot.db'}"},
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[ConversationStore]:
    store = ConversationStore(settings.storage.url)
    yield store
    store.close()


@pytest.fixture
def service(
    settings: Settings, store: ConversationStore, tiny_engine: TransformersEngine
) -> ConversationService:
    return ConversationService(settings, store, tiny_engine)


def image_bytes(
    fmt: str = "JPEG",
    size: tuple[int, int] = (320, 240),
    color: tuple[int, int, int] = (200, 30, 30),
) -> bytes:
    """A real encoded image with some structure (a gradient band), so resizing is observable."""
    image = Image.new("RGB", size, color)
    for x in range(size[0]):
        image.putpixel((x, size[1] // 2), (x % 256, 255 - x % 256, 0))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def jpeg() -> bytes:
    return image_bytes()
