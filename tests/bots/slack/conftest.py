"""Slack fixtures: a fake Slack on 127.0.0.1 and the real adapter, driven by signed HTTP events."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest_asyncio

from bots.slack import SlackAdapter
from bots.slack_http import EVENTS_PATH
from core.config import Settings, SlackSettings
from core.engine import Engine
from core.service import ConversationService
from core.transformers_engine import TransformersEngine
from storage.store import ConversationStore
from tests.fakes.engines import RecordingEngine
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, BOT_USER_ID, TEAM_ID, FakeSlack, Message

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0GENERAL"
DM_CHANNEL = "D0ALICE"
USER = "U0ALICE"

_event_ids = itertools.count(1)


def signature(secret: str, timestamp: str, body: str) -> str:
    """Slack's v0 request signature: HMAC-SHA256 over "v0:<timestamp>:<body>"."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def envelope(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An Events API ``event_callback`` body around ``event``."""
    return {
        "token": "unused-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0VISION",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
    }


@dataclass
class SlackBot:
    """The running adapter plus what a test needs to talk to it and look inside."""

    adapter: SlackAdapter
    service: ConversationService
    engine: Engine
    fake: FakeSlack
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        assert self.adapter.server is not None
        return f"http://127.0.0.1:{self.adapter.server.port}{EVENTS_PATH}"

    async def post(
        self,
        body: dict[str, Any],
        *,
        retry: int | None = None,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
    ) -> aiohttp.ClientResponse:
        raw = json.dumps(body)
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature(secret, stamp, raw),
        }
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        async with self.http.post(self.url, data=raw, headers=headers) as response:
            await response.read()
            return response

    async def say(
        self,
        text: str,
        *,
        files: tuple[dict[str, Any], ...] = (),
        channel: str = CHANNEL,
        user: str = USER,
        thread_ts: str | None = None,
        event_id: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A user posts a message (Slack stores it) and Slack delivers the event; returns its ts.

        Channel messages are delivered as ``app_mention`` (only mentions reach the bot), DMs as
        ``message`` with channel_type "im". The body is returned for redelivery tests.
        """
        ts = self.fake.next_ts()
        self.fake.add_message(
            Message(channel, ts, text, user, thread_ts=thread_ts, files=list(files))
        )
        event: dict[str, Any] = {"user": user, "text": text, "ts": ts, "channel": channel}
        event["event_ts"] = ts
        if channel.startswith("D"):
            event.update(type="message", channel_type="im")
        else:
            event.update(type="app_mention")
        if files:
            event.update(files=list(files), upload=False)
            if event["type"] == "message":
                event["subtype"] = "file_share"
        if thread_ts:
            event["thread_ts"] = thread_ts
        body = envelope(event, event_id)
        response = await self.post(body)
        assert response.status == 200
        return ts, body

    def prompts(self) -> list[Any]:
        return self.engine.prompts  # type: ignore[attr-defined,no-any-return]


@pytest_asyncio.fixture(loop_scope="function")
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


def with_slack(settings: Settings, fake: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": BOT_TOKEN,
        "app_token": APP_TOKEN,
        "signing_secret": SIGNING_SECRET,
        "mode": "http",
        "http_port": 0,
        "api_base_url": fake.api_url,
        "update_interval_s": 0.0,
    }
    slack = SlackSettings(**(values | overrides))
    return settings.model_copy(update={"slack": slack})


MakeBot = Callable[..., Awaitable[SlackBot]]


@pytest_asyncio.fixture(loop_scope="function")
async def make_bot(
    fake_slack: FakeSlack, settings: Settings, tiny_engine: TransformersEngine
) -> AsyncIterator[MakeBot]:
    """Start an adapter (again, for restart tests) over the same SQLite file."""
    running: list[tuple[SlackAdapter, ConversationStore]] = []
    http = aiohttp.ClientSession()

    async def make(
        engine: Engine | None = None, max_waiting: int | None = None, **slack: Any
    ) -> SlackBot:
        configured = with_slack(settings, fake_slack, **slack)
        if max_waiting is not None:
            queue = configured.queue.model_copy(update={"max_waiting": max_waiting})
            configured = configured.model_copy(update={"queue": queue})
        store = ConversationStore(configured.storage.url)
        service = ConversationService(configured, store, engine or RecordingEngine(tiny_engine))
        adapter = SlackAdapter(configured, service)
        running.append((adapter, store))
        await adapter.start()
        return SlackBot(adapter, service, service.engine, fake_slack, http)

    yield make
    for adapter, store in running:
        await adapter.stop()
        store.close()
    await http.close()


@pytest_asyncio.fixture(loop_scope="function")
async def bot(make_bot: MakeBot) -> SlackBot:
    return await make_bot()
