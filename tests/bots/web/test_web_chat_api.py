"""POST /chat: the reference service's request and response, sessions, and every refusal."""

from __future__ import annotations

import base64
import io
import json
import socket

import httpx
import pytest
from PIL import Image

from tests.bots.web.conftest import ServerFactory, eventually
from tests.conftest import image_bytes
from tests.fakes.engines import RecordingEngine


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_reference_request_is_answered(live_server: ServerFactory, jpeg: bytes):
    server = live_server()
    # Exactly what the reference service's clients send: two fields, bare base64 JPEG.
    reply = httpx.post(
        server.base + "/chat", json={"image": b64(jpeg), "query": "What is in the picture?"}
    )
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"response"}
    assert isinstance(body["response"], str)
    engine = server.service.engine
    assert isinstance(engine, RecordingEngine)
    (prompt,) = engine.prompts
    assert prompt[-1].text == "What is in the picture?"
    assert len(prompt[-1].images) == 1
    # The answer counts as delivered once sent (nothing to re-send after a restart).
    assert eventually(lambda: server.service.store.undelivered("web") == [])


def test_data_url_several_images_and_no_query_gets_a_description(
    live_server: ServerFactory, jpeg: bytes
):
    server = live_server()
    png = image_bytes("PNG", (64, 48))
    reply = httpx.post(
        server.base + "/chat",
        json={"images": ["data:image/jpeg;base64," + b64(jpeg), b64(png)]},
    )
    assert reply.status_code == 200, reply.text
    (prompt,) = server.service.engine.prompts
    assert prompt[-1].text == server.settings.history.describe_prompt
    assert len(prompt[-1].images) == 2


def bomb_png() -> bytes:
    # A tiny file that claims a huge canvas: 20000×20000 of one colour compresses to almost nothing.
    out = io.BytesIO()
    Image.new("1", (20000, 20000)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"query": "hi", "image": "***not base64***"}, "not valid base64"),
        ({"query": "hi", "image": b64(b"just some text, not a picture\n")}, "not an image"),
        ({"query": "hi", "image": b64(image_bytes()[:300])}, "damaged"),
        ({"query": "hi", "image": "data:image/png,rawbytes"}, "base64 data: URL"),
        ({"query": "hi", "image": b64(bomb_png())}, "pixels"),
        ({"query": "hi", "session": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "Unknown session"),
        ({"query": "hi", "session": "../etc/passwd"}, "Unknown session"),
        ({"query": "hi", "extra": 1}, "Unknown field 'extra'"),
        ({"query": 5}, "'query'"),
        ({}, "Send me a photo"),
        ({"query": "x" * 5000}, "too long"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_requests_get_400_with_a_json_error(
    live_server: ServerFactory, payload: object, fragment: str
):
    server = live_server()
    reply = httpx.post(server.base + "/chat", json=payload)
    assert reply.status_code == 400
    assert fragment in reply.json()["error"]
    assert server.service.engine.prompts == []


def test_malformed_json_gets_400(live_server: ServerFactory):
    server = live_server()
    reply = httpx.post(
        server.base + "/chat",
        content=b'{"query": "hi",',
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 400
    assert "not valid JSON" in reply.json()["error"]


def test_unknown_paths_and_methods_answer_json(live_server: ServerFactory):
    server = live_server()
    missing = httpx.get(server.base + "/nope")
    assert missing.status_code == 404
    assert "error" in missing.json()
    wrong = httpx.get(server.base + "/chat")
    assert wrong.status_code == 405
    assert "error" in wrong.json()


def test_api_keys_are_required_when_configured(live_server: ServerFactory, jpeg: bytes):
    server = live_server(web={"api_keys": ["s3cret-key"]})
    payload = {"image": b64(jpeg), "query": "hi"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"}):
        reply = httpx.post(server.base + "/chat", json=payload, headers=headers)
        assert reply.status_code == 401
        assert "API key" in reply.json()["error"]
    good = httpx.post(
        server.base + "/chat", json=payload, headers={"Authorization": "Bearer s3cret-key"}
    )
    assert good.status_code == 200
    assert httpx.get(server.base + "/healthz").status_code == 200  # probes need no key


def test_body_over_the_limit_is_refused_by_content_length(live_server: ServerFactory):
    server = live_server(web={"max_body_bytes": 64 * 1024})
    reply = httpx.post(server.base + "/chat", content=b"x" * (65 * 1024))
    assert reply.status_code == 413
    assert "too large" in reply.json()["error"]


def test_chunked_body_is_refused_without_reading_it_all(live_server: ServerFactory):
    limit = 64 * 1024
    server = live_server(web={"max_body_bytes": limit})
    chunk = b"a" * 16 * 1024
    sent = 0
    with socket.create_connection(("127.0.0.1", server.adapter.port), timeout=10) as sock:
        sock.sendall(
            b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        # Offer up to 64 MB; the server must answer (and stop reading) soon after the limit.
        sock.settimeout(0.05)
        response = b""
        while sent < 64 * 1024 * 1024 and not response:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                response = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break  # the server closed the connection after answering
        sock.settimeout(10)
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            more = sock.recv(65536)
            if not more:
                break
            response += more
    assert sent < 8 * limit
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert "too large" in json.loads(body)["error"]


def test_session_continues_the_conversation_with_earlier_image_and_answer(
    live_server: ServerFactory, jpeg: bytes
):
    server = live_server()
    first = httpx.post(
        server.base + "/chat",
        json={"image": b64(jpeg), "query": "What colour is the car?", "session": "new"},
    ).json()
    session = first["session"]
    assert len(session) >= 32  # secrets.token_urlsafe(24)
    second = httpx.post(server.base + "/chat", json={"query": "And the sky?", "session": session})
    assert second.status_code == 200
    assert second.json()["session"] == session

    prompts = server.service.engine.prompts
    assert len(prompts) == 2
    follow_up = prompts[1]
    assert [t.role for t in follow_up] == ["user", "assistant", "user"]
    assert follow_up[0].text == "What colour is the car?"
    assert len(follow_up[0].images) == 1
    assert follow_up[1].text == first["response"]
    assert follow_up[2].text == "And the sky?"
    assert follow_up[2].images == ()

    history = httpx.get(f"{server.base}/chat/sessions/{session}").json()
    assert [t["role"] for t in history["turns"]] == ["user", "assistant", "user", "assistant"]
    assert history["turns"][0]["images"][0].startswith("data:image/jpeg;base64,")


def test_sessions_and_one_shot_calls_never_see_each_other(live_server: ServerFactory, jpeg: bytes):
    server = live_server()
    url = server.base + "/chat"
    alice = httpx.post(
        url, json={"image": b64(jpeg), "query": "Alice's secret photo", "session": "new"}
    )
    bob = httpx.post(url, json={"query": "Bob asks", "session": "new"}).json()["session"]
    httpx.post(url, json={"query": "one-shot question"})
    httpx.post(url, json={"query": "Bob again", "session": bob})
    httpx.post(url, json={"query": "another one-shot"})

    prompts = server.service.engine.prompts
    texts = [[t.text for t in prompt] for prompt in prompts]
    assert texts[2] == ["one-shot question"]
    assert texts[3][0] == "Bob asks" and "Alice's secret photo" not in texts[3]
    assert texts[4] == ["another one-shot"]
    assert all(not t.images for prompt in prompts[1:] for t in prompt)

    bob_history = httpx.get(f"{server.base}/chat/sessions/{bob}").json()["turns"]
    assert "Alice's secret photo" not in json.dumps(bob_history)
    assert alice.json()["session"] != bob
    assert httpx.get(f"{server.base}/chat/sessions/{'B' * 32}").status_code == 404


class BrokenEngine:
    """A model that fails mid-answer, as a real one can (out of memory, a bad weight file)."""

    def token_cost(self, text: str, image_sizes) -> int:
        return len(text) // 4 + 1

    def stream(self, turns, params, *, cache_key=None, should_stop=None):
        yield "Partial"
        raise RuntimeError("CUDA out of memory; secret internals /opt/model")


def test_a_failing_model_gets_500_json_without_internals(live_server: ServerFactory):
    server = live_server(engine=BrokenEngine())
    plain = httpx.post(server.base + "/chat", json={"query": "hi"})
    assert plain.status_code == 500
    assert set(plain.json()) == {"error"}
    assert "secret" not in plain.text and "Traceback" not in plain.text
    with httpx.stream("POST", server.base + "/chat/stream", json={"query": "hi"}) as reply:
        events = [line for line in reply.iter_lines() if line.startswith(("event:", "data:"))]
    assert events[-2:] == [
        "event: error",
        'data: {"error": "Sorry, answering failed. Please try again."}',
    ]
    openai_style = httpx.post(
        server.base + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
    )
    assert openai_style.status_code == 500
    assert openai_style.json()["error"]["type"] == "server_error"
    # The server is still fine for the next caller.
    assert httpx.get(server.base + "/healthz").json()["queue_depth"] == 0


def test_wrapped_and_unpadded_base64_is_accepted(live_server: ServerFactory):
    server = live_server()
    # base64.encodebytes wraps lines (as the `base64` tool does); some encoders drop the padding.
    width = next(w for w in range(321, 400) if len(image_bytes(size=(w, 240))) % 3)
    odd = image_bytes(size=(width, 240))  # a length that base64 pads
    wrapped = base64.encodebytes(odd).decode()
    unpadded = b64(odd).rstrip("=")
    assert wrapped.count("\n") > 10 and len(unpadded) % 4
    for image in (wrapped, unpadded, "data:image/jpeg;base64," + wrapped):
        reply = httpx.post(server.base + "/chat", json={"image": image, "query": "ok?"})
        assert reply.status_code == 200, reply.text
    assert all(p[-1].images[0].size == (width, 240) for p in server.service.engine.prompts)
