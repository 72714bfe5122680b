"""The OpenAI-compatible API, driven by the official ``openai`` client over real HTTP."""

from __future__ import annotations

import base64
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest

from tests.bots.web.conftest import ServerFactory


def image_message(jpeg: bytes, question: str) -> dict:
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": question},
            {"type": "image_url", "image_url": {"url": url}},
        ],
    }


def test_official_client_gets_an_answer(live_server: ServerFactory, jpeg: bytes):
    server = live_server()
    client = openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0)
    (model,) = client.models.list().data
    completion = client.chat.completions.create(
        model=model.id, messages=[image_message(jpeg, "What is this?")], max_tokens=5
    )
    answer = completion.choices[0].message.content
    assert isinstance(answer, str)
    assert completion.choices[0].finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 10
    assert 0 <= usage.completion_tokens <= 5 + 2
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    (prompt,) = server.service.engine.prompts
    assert prompt[-1].text == "What is this?" and len(prompt[-1].images) == 1
    # Stateless: nothing of it was stored.
    assert server.service.store.undelivered("web") == []


def test_official_client_streams_with_history_and_usage(live_server: ServerFactory, jpeg: bytes):
    server = live_server()
    client = openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="anything",
        messages=[
            {"role": "system", "content": "Be brief."},
            image_message(jpeg, "What is this?"),
            {"role": "assistant", "content": "A red square."},
            {"role": "user", "content": "Are you sure?"},
        ],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and all(f is None for f in finishes[:-1])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 0
    (prompt,) = server.service.engine.prompts
    assert [(t.role, t.text) for t in prompt] == [
        ("system", "Be brief."),
        ("user", "What is this?"),
        ("assistant", "A red square."),
        ("user", "Are you sure?"),
    ]
    assert len(prompt[1].images) == 1
    assert isinstance(text, str)


def test_raw_stream_ends_with_done(live_server: ServerFactory):
    server = live_server()
    with httpx.stream(
        "POST",
        server.base + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hello"}], "stream": True},
    ) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in reply.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"


def test_limits_are_applied(live_server: ServerFactory):
    server = live_server()
    url = server.base + "/v1/chat/completions"
    messages = [{"role": "user", "content": "hello"}]
    reply = httpx.post(url, json={"messages": messages, "max_tokens": 100000, "top_p": 0.5})
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] <= server.settings.model.max_new_tokens + 2
    for bad in ({"temperature": 3}, {"top_p": 0}, {"max_tokens": 0}, {"n": 2}):
        refused = httpx.post(url, json={"messages": messages, **bad})
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.jpg"}}
                    ],
                }
            ],
            "not fetched",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}],
                }
            ],
            "data: URL",
        ),
        ([{"role": "assistant", "content": "hi"}], "last message"),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,aGVsbG8="},
                        }
                    ],
                }
            ],
            "not an image",
        ),
    ],
)
def test_unusable_requests_are_refused_in_openai_shape(
    live_server: ServerFactory, messages: list, fragment: str
):
    server = live_server()
    client = openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=messages)
    assert fragment in caught.value.body["message"]
    assert server.service.engine.prompts == []


def test_remote_image_urls_are_fetched_only_when_allowed(
    live_server: ServerFactory, jpeg: bytes, tmp_path: Path
):
    (tmp_path / "photo.jpg").write_bytes(jpeg)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    # A local file server stands in for "an image somewhere on the web".
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as files:
        threading.Thread(target=files.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{files.server_address[1]}/photo.jpg"
        server = live_server(web={"allow_remote_image_urls": True})
        message = {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is it?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
        reply = httpx.post(server.base + "/v1/chat/completions", json={"messages": [message]})
        missing = {**message, "content": [{"type": "image_url", "image_url": {"url": url + "x"}}]}
        refused = httpx.post(server.base + "/v1/chat/completions", json={"messages": [missing]})
        files.shutdown()
    assert reply.status_code == 200, reply.text
    (prompt,) = server.service.engine.prompts
    assert prompt[-1].images[0].size == (320, 240)
    assert refused.status_code == 400
    assert "HTTP 404" in refused.json()["error"]["message"]


def test_api_key_is_checked_for_the_official_client(live_server: ServerFactory):
    server = live_server(web={"api_keys": ["k1", "k2"]})
    wrong = openai.OpenAI(base_url=server.base + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    right = openai.OpenAI(base_url=server.base + "/v1", api_key="k2", max_retries=0)
    assert len(right.models.list().data) == 1
