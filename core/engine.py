"""The engine interface: what the conversation service needs from a vision-language model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from PIL import Image


class ModelLoadError(RuntimeError):
    """The configured model could not be loaded; the message says what to set."""


@dataclass(frozen=True)
class PromptTurn:
    """One message of the model input: a role, its text and the images that precede the text."""

    role: str  # "system", "user" or "assistant"
    text: str
    images: tuple[Image.Image, ...] = ()


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    do_sample: bool = True
    seed: int | None = None


class Engine(Protocol):
    """A model that streams an answer for a list of turns; one caller at a time."""

    def token_cost(self, text: str, image_sizes: Sequence[tuple[int, int]]) -> int:
        """How many input tokens a message with this text and images of these sizes takes."""
        ...

    def stream(
        self,
        turns: Sequence[PromptTurn],
        params: GenerationParams,
        *,
        cache_key: str | None = None,
        should_stop: StopFlag | None = None,
    ) -> Iterator[str]:
        """Yield the answer's text in pieces as it is generated (blocking; runs off the loop)."""
        ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...
