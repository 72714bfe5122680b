"""A real web adapter (uvicorn on 127.0.0.1, a free port) over a real service, per test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bots.web import WebAdapter
from core.config import Settings, load_settings
from core.engine import Engine
from core.service import ConversationService
from storage.store import ConversationStore
from tests.fakes.engines import RecordingEngine


class LiveServer:
    """Runs ``WebAdapter.start``/``stop`` in a thread with its own event loop.

    A separate loop keeps the server answering while a test blocks (sync clients, schemathesis).
    """

    def __init__(self, settings: Settings, service: ConversationService) -> None:
        self.settings = settings
        self.service = service
        self.adapter = WebAdapter(settings, service)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="web-test-server", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.adapter.start()
            self._ready.set()
            await self._stop.wait()
            await self.adapter.stop()

        try:
            asyncio.run(main())
        except BaseException as error:
            self._error = error
            self._ready.set()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.adapter.port}"

    def __enter__(self) -> LiveServer:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def web_settings(tmp_path: Path, model_dir: Path, **sections: Any) -> Settings:
    base: dict[str, Any] = {
        "model": {"id": str(model_dir), "max_new_tokens": 8, "do_sample": False, "threads": 1},
        "storage": {"url": f"sqlite:///{tmp_path / 'web.db'}"},
        "web": {"port": 0},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(None, **base)


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def live_server(
    tmp_path: Path, tiny_model_dir: Path, tiny_engine: Engine
) -> Iterator[ServerFactory]:
    """Start servers: ``live_server(engine=..., web={...}, queue={...})``; all stopped after."""
    started: list[tuple[LiveServer, ConversationStore]] = []

    def start(engine: Engine | None = None, **sections: Any) -> LiveServer:
        settings = web_settings(tmp_path, tiny_model_dir, **sections)
        store = ConversationStore(settings.storage.url)
        service = ConversationService(settings, store, engine or RecordingEngine(tiny_engine))
        server = LiveServer(settings, service).__enter__()
        started.append((server, store))
        return server

    yield start
    for server, store in started:
        server.__exit__()
        store.close()


def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``condition`` until true, for effects that follow a response (e.g. marking delivery)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
