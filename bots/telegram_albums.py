"""Albums: Telegram sends each photo of an album as its own update; gather them into one turn.

Crash safety: the update ids of an album still being gathered are reported as *unconfirmed*, and
the intake does not acknowledge them to Telegram until the album has been stored. A crash while
gathering therefore loses nothing: Telegram delivers the parts again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from telegram import Message

log = logging.getLogger(__name__)


@dataclass
class Album:
    """The parts of one album received so far (one message per photo or file)."""

    chat_id: int
    media_group_id: str
    parts: dict[int, Message] = field(default_factory=dict)  # update id → message
    # True once stored (or answered with a refusal); False if dropped unstored at shutdown.
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def messages(self) -> list[Message]:
        return sorted(self.parts.values(), key=lambda message: message.message_id)

    @property
    def first_update_id(self) -> int:
        return min(self.parts)


AlbumHandler = Callable[[Album], Awaitable[None]]


class AlbumCollector:
    """Waits until no new part of an album arrived for ``wait_s``, then hands the album on."""

    def __init__(self, wait_s: float, complete: AlbumHandler) -> None:
        self.wait_s = wait_s
        self._complete = complete
        self._albums: dict[tuple[int, str], Album] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, update_id: int, message: Message) -> Album:
        key = (message.chat_id, str(message.media_group_id))
        album = self._albums.get(key)
        if album is None:
            album = Album(chat_id=message.chat_id, media_group_id=key[1])
            self._albums[key] = album
            task = asyncio.create_task(self._gather(key, album))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        album.parts[update_id] = message
        album.arrived.set()
        return album

    def album_of(self, update_id: int) -> Album | None:
        for album in self._albums.values():
            if update_id in album.parts:
                return album
        return None

    def oldest_unconfirmed(self) -> int | None:
        """The first update id that must not be acknowledged yet (an album still gathering)."""
        pending = [album.first_update_id for album in self._albums.values()]
        return min(pending) if pending else None

    async def _gather(self, key: tuple[int, str], album: Album) -> None:
        stored = False
        try:
            while True:
                album.arrived.clear()
                try:
                    await asyncio.wait_for(album.arrived.wait(), self.wait_s)
                except TimeoutError:
                    break
            await self._complete(album)
            stored = True
        except Exception:
            stored = True  # a poison album must not be redelivered forever
            log.exception("[telegram:%s] album %s could not be handled", *key)
        finally:
            # Only now may its updates be acknowledged: the album is stored (or was refused).
            self._albums.pop(key, None)
            if not album.done.done():
                album.done.set_result(stored)

    async def close(self) -> None:
        """Drop albums still gathering; Telegram delivers them again after a restart."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
