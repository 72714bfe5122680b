"""Test engines: one that records what the real engine got, one that streams a fixed text, one held
back by a gate (to fill the queue on purpose)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from core.engine import Engine, GenerationParams, PromptTurn, StopFlag


@dataclass
class RecordingEngine:
    """Wraps a real engine and keeps every prompt it received, and counts concurrent runs."""

    inner: Engine
    prompts: list[list[PromptTurn]] = field(default_factory=list)
    running: int = 0
    max_running: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def token_cost(self, text: str, image_sizes: Sequence[tuple[int, int]]) -> int:
        return self.inner.token_cost(text, image_sizes)

    def stream(
        self,
        turns: Sequence[PromptTurn],
        params: GenerationParams,
        *,
        cache_key: str | None = None,
        should_stop: StopFlag | None = None,
    ) -> Iterator[str]:
        with self._lock:
            self.prompts.append(list(turns))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            yield from self.inner.stream(
                turns, params, cache_key=cache_key, should_stop=should_stop
            )
        finally:
            with self._lock:
                self.running -= 1


@dataclass
class FixedTextEngine:
    """Streams a known answer in small pieces, for tests about how answers are shown."""

    text: str
    piece_chars: int = 40
    delay_s: float = 0.0
    prompts: list[list[PromptTurn]] = field(default_factory=list)

    def token_cost(self, text: str, image_sizes: Sequence[tuple[int, int]]) -> int:
        return len(text) // 4 + 1 + 64 * len(image_sizes)

    def stream(
        self,
        turns: Sequence[PromptTurn],
        params: GenerationParams,
        *,
        cache_key: str | None = None,
        should_stop: StopFlag | None = None,
    ) -> Iterator[str]:
        self.prompts.append(list(turns))
        for start in range(0, len(self.text), self.piece_chars):
            if should_stop is not None and should_stop.is_set():
                return
            if self.delay_s:
                time.sleep(self.delay_s)
            yield self.text[start : start + self.piece_chars]


@dataclass
class GatedEngine:
    """The real engine, held back until the test opens the gate (to fill the queue on purpose)."""

    inner: Engine
    gate: threading.Event = field(default_factory=threading.Event)

    def token_cost(self, text: str, image_sizes: Sequence[tuple[int, int]]) -> int:
        return self.inner.token_cost(text, image_sizes)

    def stream(
        self,
        turns: Sequence[PromptTurn],
        params: GenerationParams,
        *,
        cache_key: str | None = None,
        should_stop: StopFlag | None = None,
    ) -> Iterator[str]:
        self.gate.wait(30)
        yield from self.inner.stream(turns, params, cache_key=cache_key, should_stop=should_stop)
