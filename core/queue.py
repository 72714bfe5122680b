"""The serialized inference lock: one generation at a time, first come first served.

Waiting callers learn their position; the blocking model work runs in a worker thread so the event
loop (and with it every adapter) stays responsive.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator

from core.messages import Queued, Started


class QueueFull(Exception):
    """Too many requests are already waiting; the caller should try again later."""


_DONE = object()


class InferenceQueue:
    def __init__(self, max_waiting: int) -> None:
        self._max_waiting = max_waiting
        self._waiting: list[object] = []
        self._busy = False
        self._cond = asyncio.Condition()

    @property
    def depth(self) -> int:
        """Requests waiting or running."""
        return len(self._waiting) + (1 if self._busy else 0)

    @property
    def full(self) -> bool:
        """A new request would be refused now; lets callers refuse before storing anything."""
        return len(self._waiting) >= self._max_waiting

    async def _wait_turn(self, ticket: object) -> AsyncIterator[Queued]:
        last = 0
        while True:
            async with self._cond:
                if not self._busy and self._waiting[0] is ticket:
                    self._waiting.pop(0)
                    self._busy = True
                    return
                position = self._waiting.index(ticket) + 1
                if position == last:
                    await self._cond.wait()
                    continue
            last = position
            yield Queued(position)

    async def run(
        self, work: Callable[[threading.Event], Iterator[str]]
    ) -> AsyncIterator[Queued | Started | str]:
        """Wait for the model, then run ``work`` in a thread and yield its text pieces.

        ``work`` receives a stop flag that is set when the caller stops listening, so an abandoned
        generation ends early instead of holding the lock.
        """
        if len(self._waiting) >= self._max_waiting:
            raise QueueFull
        ticket = object()
        self._waiting.append(ticket)
        acquired = False
        try:
            async for event in self._wait_turn(ticket):
                yield event
            acquired = True
            yield Started()
            async for piece in self._run_in_thread(work):
                yield piece
        finally:
            async with self._cond:
                if acquired:
                    self._busy = False
                elif ticket in self._waiting:
                    self._waiting.remove(ticket)
                self._cond.notify_all()

    async def _run_in_thread(
        self, work: Callable[[threading.Event], Iterator[str]]
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def pump() -> None:
            try:
                for piece in work(stop):
                    loop.call_soon_threadsafe(pieces.put_nowait, piece)
                    if stop.is_set():
                        break
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, _DONE)

        worker = loop.run_in_executor(None, pump)
        try:
            while True:
                piece = await pieces.get()
                if piece is _DONE:
                    break
                yield piece  # type: ignore[misc]
            await worker  # re-raises the engine's exception, if any
        finally:
            stop.set()
            if not worker.done():
                # The lock is only released once the model has really stopped working.
                with contextlib.suppress(Exception):
                    await asyncio.shield(worker)
