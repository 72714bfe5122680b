"""The serialized inference lock under concurrent load, with the real tiny model."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core.config import Settings
from core.messages import Answer, ChatRef, Incoming, Queued, Started
from core.queue import InferenceQueue, QueueFull
from core.service import ConversationService
from core.transformers_engine import TransformersEngine
from storage.store import ConversationStore
from tests.fakes.engines import FixedTextEngine, RecordingEngine


async def test_concurrent_requests_run_one_at_a_time_and_all_get_answers(
    settings: Settings, store: ConversationStore, tiny_engine: TransformersEngine, jpeg: bytes
) -> None:
    recorder = RecordingEngine(tiny_engine)
    service = ConversationService(settings, store, recorder)
    positions: dict[int, list[int]] = {}
    answers: dict[int, str] = {}

    async def one(n: int) -> None:
        message = Incoming(chat=ChatRef("t", str(n)), user_id="u", text=f"Q{n}", images=(jpeg,))
        async for event in service.ask(message):
            if isinstance(event, Queued):
                positions.setdefault(n, []).append(event.position)
            elif isinstance(event, Answer):
                answers[n] = event.text

    # Hold the model with a blocker so all eight are waiting at once, then let them through.
    release = threading.Event()

    async def blocker() -> None:
        async for _ in service.queue.run(lambda stop: iter([release.wait(10) and "done"])):
            pass

    holding = asyncio.create_task(blocker())
    tasks = [asyncio.create_task(one(n)) for n in range(8)]
    while service.queue.depth < 9:
        await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(holding, *tasks)

    assert sorted(answers) == list(range(8))
    assert recorder.max_running == 1
    assert len(recorder.prompts) == 8
    # Each request first learned its place in line, then saw it count down to 1…
    entry_order = sorted(range(8), key=lambda n: positions[n][0])
    assert sorted(positions[n][0] for n in range(8)) == list(range(1, 9))
    for n, seen in positions.items():
        assert seen == sorted(seen, reverse=True) and seen[-1] == 1, (n, seen)
    # …and requests were served in the order they joined the line.
    assert [p[-1].text for p in recorder.prompts] == [f"Q{n}" for n in entry_order]
    assert service.queue.depth == 0


async def test_full_queue_refuses_new_requests() -> None:
    queue = InferenceQueue(max_waiting=1)
    engine = FixedTextEngine("slow answer", piece_chars=1, delay_s=0.05)

    async def consume() -> None:
        async for _ in queue.run(lambda stop: engine.stream([], None, should_stop=stop)):  # type: ignore[arg-type]
            pass

    running = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    with pytest.raises(QueueFull):
        async for _ in queue.run(lambda stop: iter(())):
            pass
    await asyncio.gather(running, waiting)


async def test_abandoned_generation_stops_and_frees_the_lock() -> None:
    queue = InferenceQueue(max_waiting=4)
    engine = FixedTextEngine("x" * 1000, piece_chars=1, delay_s=0.01)
    stream = queue.run(lambda stop: engine.stream([], None, should_stop=stop))  # type: ignore[arg-type]
    pieces = 0
    async for event in stream:
        if isinstance(event, str):
            pieces += 1
            if pieces == 3:
                break
    await stream.aclose()
    assert queue.depth == 0
    events = [e async for e in queue.run(lambda stop: iter(["next"]))]
    assert events == [Started(), "next"]


async def test_engine_failure_is_raised_and_releases_the_lock() -> None:
    queue = InferenceQueue(max_waiting=4)

    def broken(stop: object):
        yield "partial"
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        async for _ in queue.run(broken):  # type: ignore[arg-type]
            pass
    assert queue.depth == 0
