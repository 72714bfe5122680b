"""Per-chat KV caches kept between turns, so a follow-up question pays only for its new tokens.

An entry remembers exactly which tokens its cache holds: their ids and, for each image, where its
placeholder tokens sit and a digest of its pixels (two different photos of the same size have the
same placeholder ids). A new input reuses the longest prefix that matches in both, never splitting
an image, and the cache is cropped to it. Entries are evicted least recently used first to stay
within a memory budget.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSpan:
    """One image's placeholder tokens: ``input_ids[start:end]``, and what the image was."""

    start: int
    end: int
    digest: str


@dataclass
class CachedPrefix:
    """A KV cache and the exact tokens it holds."""

    cache: DynamicCache
    ids: list[int]
    images: tuple[ImageSpan, ...]

    @property
    def nbytes(self) -> int:
        return cache_nbytes(self.cache)


def cache_nbytes(cache: DynamicCache) -> int:
    total = 0
    for layer in cache.layers:
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def pixel_digest(pixels: torch.Tensor) -> str:
    return hashlib.blake2b(pixels.contiguous().numpy().tobytes(), digest_size=16).hexdigest()


def reusable_length(cached: CachedPrefix, ids: Sequence[int], images: Sequence[ImageSpan]) -> int:
    """How many leading tokens of ``ids`` the cached entry already holds, exactly."""
    limit = min(len(cached.ids), len(ids))
    common = 0
    while common < limit and cached.ids[common] == ids[common]:
        common += 1
    old = {(span.start, span.end): span.digest for span in cached.images}
    for span in images:
        if span.start >= common:
            break
        same_image = old.get((span.start, span.end)) == span.digest
        if not same_image or span.end > common:
            common = span.start  # the image must be encoded again, and everything after it
            break
    # At least one token must be run to get the next token's logits.
    return min(common, len(ids) - 1)


class PrefixCache:
    """Chat key → CachedPrefix, least recently used evicted first beyond ``budget_bytes``."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, CachedPrefix] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.budget_bytes > 0

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(entry.nbytes for entry in self._entries.values())

    def take(
        self, key: str, ids: Sequence[int], images: Sequence[ImageSpan]
    ) -> tuple[DynamicCache, int] | None:
        """Remove the chat's entry and return its cache cropped to the reusable prefix."""
        with self._lock:
            cached = self._entries.pop(key, None)
        if cached is None:
            return None
        length = reusable_length(cached, ids, images)
        if length <= 0:
            return None
        held = cached.cache.get_seq_length()
        if held > length:
            cached.cache.crop(length - held)
        return cached.cache, length

    def put(self, key: str, entry: CachedPrefix) -> None:
        """Keep ``entry`` for the chat, evicting the least recently used beyond the budget."""
        size = entry.nbytes
        if not self.enabled or size > self.budget_bytes:
            return
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = entry
            used = sum(e.nbytes for e in self._entries.values())
            while used > self.budget_bytes:
                evicted_key, evicted = self._entries.popitem(last=False)
                used -= evicted.nbytes
                log.info("[%s] prefix cache evicted (%.1f MB)", evicted_key, evicted.nbytes / 2**20)

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
