"""The page's streaming endpoint, the queue seen through HTTP, /healthz and start-up checks."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest

from bots.web import WebAdapter
from core.config import ConfigError
from core.messages import ChatRef, Incoming
from core.service import ConversationService
from storage.store import ConversationStore
from tests.bots.web.conftest import ServerFactory, eventually, web_settings
from tests.fakes.engines import GatedEngine, RecordingEngine


async def stream_events(
    client: httpx.AsyncClient, url: str, payload: dict
) -> list[tuple[str, dict]]:
    events = []
    async with client.stream("POST", url, json=payload) as reply:
        assert reply.status_code == 200, await reply.aread()
        name = "message"
        async for line in reply.aiter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line[5:])))
    return events


async def test_stream_reports_progress_and_continues_the_session(
    live_server: ServerFactory, jpeg: bytes
):
    server = live_server()
    url = server.base + "/chat/stream"
    image = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    async with httpx.AsyncClient(timeout=60) as client:
        first = await stream_events(
            client, url, {"query": "What is it?", "images": [image], "session": "new"}
        )
        names = [name for name, _ in first]
        assert names[0] == "session" and names[-1] == "done"
        assert "started" in names
        streamed = "".join(data["text"] for name, data in first if name == "delta")
        assert first[-1][1]["text"] == streamed.strip()
        session = first[0][1]["session"]

        second = await stream_events(client, url, {"query": "More?", "session": session})
        assert second[-1][0] == "done"
        history = (await client.get(f"{server.base}/chat/sessions/{session}")).json()
    assert [t["text"] for t in history["turns"]] == [
        "What is it?",
        first[-1][1]["text"],
        "More?",
        second[-1][1]["text"],
    ]
    assert len(history["turns"][0]["images"]) == 1
    assert server.service.store.undelivered("web") == []


async def test_twenty_concurrent_requests_are_answered_one_at_a_time_in_order(
    live_server: ServerFactory, tiny_engine
):
    gated = GatedEngine(tiny_engine)
    engine = RecordingEngine(gated)
    server = live_server(engine=engine)
    started_order: list[int] = []

    async def ask_streaming(client: httpx.AsyncClient, number: int, queued: asyncio.Event):
        positions = []
        async with client.stream(
            "POST", server.base + "/chat/stream", json={"query": f"question {number}"}
        ) as reply:
            assert reply.status_code == 200
            name = ""
            async for line in reply.aiter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    queued.set()
                    if name == "queued":
                        positions.append(json.loads(line[5:])["position"])
                    elif name == "started":
                        started_order.append(number)
        return positions

    async def ask_plain(client: httpx.AsyncClient, number: int) -> str:
        reply = await client.post(server.base + "/chat", json={"query": f"plain {number}"})
        assert reply.status_code == 200
        return reply.json()["response"]

    async with httpx.AsyncClient(timeout=120) as client:
        # While the model is held, the 20 line up one after another, so their order is known.
        streams = []
        for number in range(20):
            queued = asyncio.Event()
            streams.append(asyncio.create_task(ask_streaming(client, number, queued)))
            await asyncio.wait_for(queued.wait(), 30)
        gated.gate.set()
        positions = await asyncio.gather(*streams)
        # And 20 plain /chat calls all at once.
        answers = await asyncio.gather(*(ask_plain(client, n) for n in range(20)))

    assert len(answers) == 20 and all(isinstance(a, str) for a in answers)
    assert engine.max_running == 1
    assert started_order == list(range(20))
    assert positions[0] == []  # the first one ran at once
    for number, seen in enumerate(positions[1:], start=1):
        # Told its place in line on arrival, then only moving forward, down to 1.
        assert seen[0] == number and seen[-1] == 1
        assert seen == sorted(set(seen), reverse=True)
    assert [p[-1].text for p in engine.prompts[:20]] == [f"question {n}" for n in range(20)]
    assert sorted(p[-1].text for p in engine.prompts[20:]) == sorted(
        f"plain {n}" for n in range(20)
    )


async def test_a_full_queue_answers_503_with_retry_after(live_server: ServerFactory, tiny_engine):
    engine = GatedEngine(tiny_engine)
    server = live_server(engine=engine, queue={"max_waiting": 2})

    async def depth(client: httpx.AsyncClient) -> int:
        return (await client.get(server.base + "/healthz")).json()["queue_depth"]

    async def wait_for_depth(client: httpx.AsyncClient, wanted: int) -> None:
        for _ in range(500):
            if await depth(client) == wanted:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"queue depth never reached {wanted}")

    async with httpx.AsyncClient(timeout=60) as client:
        ask = lambda n: client.post(server.base + "/chat", json={"query": f"q{n}"})  # noqa: E731
        running = asyncio.create_task(ask(0))
        await wait_for_depth(client, 1)
        waiting = [asyncio.create_task(ask(n)) for n in (1, 2)]
        await wait_for_depth(client, 3)
        excess = await asyncio.gather(*(ask(n) for n in range(3, 8)))
        stream_excess = await client.post(server.base + "/chat/stream", json={"query": "s"})
        openai_excess = await client.post(
            server.base + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "o"}]},
        )
        engine.gate.set()
        accepted = [await running, *[await task for task in waiting]]

    assert [r.status_code for r in accepted] == [200, 200, 200]
    for reply in [*excess, stream_excess, openai_excess]:
        assert reply.status_code == 503
        assert reply.headers["Retry-After"].isdigit()
    assert "busy" in excess[0].json()["error"]
    assert "busy" in openai_excess.json()["error"]["message"]
    # Refused before storing: no unanswered turn lingers in any conversation.
    assert eventually(lambda: server.service.store.undelivered("web") == [])


def test_healthz_and_config(live_server: ServerFactory):
    server = live_server()
    health = httpx.get(server.base + "/healthz").json()
    assert health["status"] == "ok" and health["model_loaded"] is True
    assert health["queue_depth"] == 0 and health["uptime_s"] >= 0
    config = httpx.get(server.base + "/chat/config").json()
    assert config["max_pixels"] == server.settings.images.max_pixels
    assert config["auth_required"] is False


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "example.org", "192.168.1.5"])
def test_public_host_without_api_key_is_refused_before_start(host: str, tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match="api_keys"):
        web_settings(tmp_path, tiny_model_dir, web={"host": host})
    for allowed in ({"allow_public_without_key": True}, {"api_keys": ["k"]}, {"enabled": False}):
        web_settings(tmp_path, tiny_model_dir, web={"host": host, **allowed})


def test_loopback_hosts_need_no_key(tmp_path, tiny_model_dir):
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert web_settings(tmp_path, tiny_model_dir, web={"host": host}).web.host == host


async def test_busy_port_is_a_clear_error(
    live_server: ServerFactory, tmp_path, tiny_model_dir, service
):
    server = live_server()
    settings = web_settings(tmp_path, tiny_model_dir, web={"port": server.adapter.port})
    with pytest.raises(ConfigError, match="cannot listen"):
        await WebAdapter(settings, service).start()


async def test_start_logs_the_url_and_stop_closes_the_port(
    tmp_path, tiny_model_dir, service, caplog
):
    adapter = WebAdapter(web_settings(tmp_path, tiny_model_dir), service)
    with caplog.at_level("INFO", logger="bots.web"):
        await adapter.start()
    assert f"http://127.0.0.1:{adapter.port}/" in caplog.text
    async with httpx.AsyncClient() as client:
        assert (await client.get(adapter.url + "healthz")).status_code == 200
        await adapter.stop()
        with pytest.raises(httpx.ConnectError):
            await client.get(adapter.url + "healthz")


async def test_questions_left_unanswered_by_a_previous_run_are_finished(
    tmp_path, tiny_model_dir, tiny_engine, jpeg: bytes
):
    settings = web_settings(tmp_path, tiny_model_dir)
    store = ConversationStore(settings.storage.url)
    try:
        # The previous run stored these, then stopped before answering or delivering.
        before = ConversationService(settings, store, tiny_engine)
        session_chat = ChatRef("web", "S" * 32)
        await before.receive(Incoming(session_chat, "web", "Still there?", (jpeg,)))
        await before.receive(Incoming(ChatRef("web", "once-abcdefghijklmnopqrstuv"), "web", "q"))

        service = ConversationService(settings, store, RecordingEngine(tiny_engine))
        adapter = WebAdapter(settings, service)
        await adapter.start()
        try:
            for _ in range(500):
                if not store.undelivered("web"):
                    break
                await asyncio.sleep(0.01)
        finally:
            await adapter.stop()
        assert store.undelivered("web") == []
        # The page session's question was answered (its history shows it on reload) ...
        assert [t.role for t in store.history(session_chat.key)] == ["user", "assistant"]
        # ... while the one-shot call, whose caller is gone for good, was not run again.
        assert [p[-1].text for p in service.engine.prompts] == ["Still there?"]
    finally:
        store.close()
