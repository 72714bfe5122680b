"""A fake Slack on 127.0.0.1: the Web API methods the adapter uses, private files, Socket Mode.

It speaks Slack's wire protocol (``/api/<method>`` with a bearer token, ``{"ok": …}`` replies,
private files that need ``Authorization: Bearer <bot token>``, the Socket Mode WebSocket with its
``hello`` and envelope acknowledgements) and records every call so tests can assert on them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-test-app-token"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T0TEST"
MAX_TEXT = 40_000  # Slack refuses longer `text` with msg_too_long

# What Slack would turn into a notification: broadcasts, user, group and channel mentions.
PING = re.compile(r"<(?:!(?:channel|here|everyone|subteam)|@[UW][A-Z0-9]*|#C)")


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    user: str
    thread_ts: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    bot_id: str | None = None
    deleted: bool = False
    edits: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text}
        data["ts"] = self.ts
        if self.thread_ts:
            data["thread_ts"] = self.thread_ts
        if self.files:
            data["files"] = self.files
        if self.bot_id:
            data["bot_id"] = self.bot_id
        return data


@dataclass
class StoredFile:
    data: bytes
    mimetype: str
    name: str
    token: str  # the only token that may download it


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: list[Message] = []
        self.files: dict[str, StoredFile] = {}
        self.downloads: list[tuple[str, str | None, int]] = []  # path, Authorization, status
        self.socket_received: list[dict[str, Any]] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._clock = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._changed = asyncio.Event()

    # -- lifecycle and helpers for tests ------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.base_url + "api/"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files-pri/{file}/download/{name}", self._file)
        app.router.add_get("/signin", self._signin)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def next_ts(self) -> str:
        return f"1700000000.{next(self._clock):06d}"

    def add_file(
        self, name: str, data: bytes, mimetype: str = "image/jpeg", token: str = BOT_TOKEN
    ) -> dict[str, Any]:
        """Store a private file; returns its object as Slack puts it in message events."""
        file_id = f"F{len(self.files) + 1:04d}"
        self.files[file_id] = StoredFile(data, mimetype, name, token)
        return {**self._describe(file_id), "title": name, "filetype": name.rsplit(".", 1)[-1]}

    def add_message(self, message: Message) -> None:
        """A message users posted (conversations.replies shows it)."""
        self.messages.append(message)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def bot_messages(self, channel: str | None = None) -> list[Message]:
        """The bot's messages as they stand now (deleted ones left out), oldest first."""
        return [
            m
            for m in self.messages
            if m.user == BOT_USER_ID and not m.deleted and channel in (None, m.channel)
        ]

    def sent_texts(self) -> list[str]:
        """Every text the bot ever sent, in posts and edits."""
        return [text for m in self.messages if m.user == BOT_USER_ID for text in m.edits]

    @property
    def pings(self) -> list[str]:
        return [hit for text in self.sent_texts() for hit in PING.findall(text)]

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def _touch(self) -> None:
        self._changed.set()

    # -- Web API ------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(await request.post())
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        self.calls.append(Call(method, args, token))
        self._touch()
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(args))

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://visionbot-test.slack.com/",
            "team": "Visionbot Test",
            "user": "visionbot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _find(self, channel: str, ts: str) -> Message | None:
        for m in self.messages:
            if m.channel == channel and m.ts == ts and not m.deleted:
                return m
        return None

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        text = str(args.get("text") or "")
        if not text:
            return {"ok": False, "error": "no_text"}
        if len(text) > MAX_TEXT:
            return {"ok": False, "error": "msg_too_long"}
        message = Message(
            channel=str(args["channel"]),
            ts=self.next_ts(),
            text=text,
            user=BOT_USER_ID,
            thread_ts=args.get("thread_ts") or None,
            bot_id=BOT_ID,
            edits=[text],
        )
        self.messages.append(message)
        return {"ok": True, "channel": message.channel, "ts": message.ts, **message.payload()}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.user != BOT_USER_ID:
            return {"ok": False, "error": "cant_update_message"}
        text = str(args.get("text") or "")
        if len(text) > MAX_TEXT:
            return {"ok": False, "error": "msg_too_long"}
        message.text = text
        message.edits.append(text)
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": text}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.deleted = True
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, root = str(args.get("channel")), str(args.get("ts"))
        thread = [
            m
            for m in self.messages
            if m.channel == channel and not m.deleted and root in (m.ts, m.thread_ts)
        ]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        thread.sort(key=lambda m: m.ts)
        return {"ok": True, "messages": [m.payload() for m in thread], "has_more": False}

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        stored = self.files.get(str(args.get("file")))
        if stored is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": self._describe(str(args["file"]))}

    def _describe(self, file_id: str) -> dict[str, Any]:
        stored = self.files[file_id]
        url = f"{self.base_url}files-pri/{TEAM_ID}-{file_id}/download/{stored.name}"
        return {
            "id": file_id,
            "name": stored.name,
            "mimetype": stored.mimetype,
            "size": len(stored.data),
            "url_private": url,
            "url_private_download": url,
        }

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.base_url.replace("http", "ws", 1) + "link/?ticket=t1"}

    # -- private files ------------------------------------------------------------------------

    async def _file(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file"].removeprefix(f"{TEAM_ID}-")
        auth = request.headers.get("Authorization")
        stored = self.files.get(file_id)
        self._touch()
        if stored is None:
            self.downloads.append((request.path, auth, 404))
            return web.Response(status=404, text="file not found")
        if auth != f"Bearer {stored.token}":
            # Like Slack: no error status, a redirect to the sign-in page.
            self.downloads.append((request.path, auth, 302))
            raise web.HTTPFound(f"/signin?redir={request.path}")
        self.downloads.append((request.path, auth, 200))
        return web.Response(body=stored.data, content_type=stored.mimetype)

    async def _signin(self, request: web.Request) -> web.Response:
        page = "<html><body>Sign in to Slack</body></html>"
        return web.Response(text=page, content_type="text/html")

    # -- Socket Mode --------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self._touch()
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {}})
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self.socket_received.append(json.loads(frame.data))
                    self._touch()
        finally:
            self._sockets.remove(ws)
            self._touch()
        return ws

    async def send_envelope(self, payload: dict[str, Any], retry_attempt: int = 0) -> str:
        """Deliver an Events API payload over Socket Mode; returns the envelope id to ack."""
        envelope_id = f"env-{next(self._clock)}"
        await self.wait_until(lambda: bool(self._sockets))
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": "events_api",
                "payload": payload,
                "accepts_response_payload": False,
                "retry_attempt": retry_attempt,
                "retry_reason": "timeout" if retry_attempt else "",
            }
        )
        return envelope_id

    def acked(self, envelope_id: str) -> bool:
        return any(m.get("envelope_id") == envelope_id for m in self.socket_received)
