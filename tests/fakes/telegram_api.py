"""A fake Telegram Bot API server on 127.0.0.1 that speaks the real HTTP/JSON protocol.

Tests inject user messages as updates; the bot under test fetches them with getUpdates (with
Telegram's offset and long-polling semantics) or receives them as webhook POSTs, downloads files
through getFile and the file URL, and answers with sendMessage/editMessageText/…, which are
checked like Telegram checks them (HTML entities, 4096 characters, "message is not modified").
Every call is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image

from tests.fakes.telegram_protocol import ApiError, checked_text, error_response, read_params
from tests.fakes.telegram_updates import entities, user

TOKEN = "123456:TEST-fake-token"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class SentMessage:
    """A message the bot sent, in its latest state."""

    chat_id: int
    message_id: int
    text: str  # as the user sees it (HTML parsed)
    raw: str
    parse_mode: str | None
    reply_to: int | None
    thread_id: int | None
    edits: int = 0
    deleted: bool = False


class FakeTelegram:
    """The server and its state. ``base_url``/``base_file_url`` go into the bot's settings."""

    def __init__(self, bot_id: int = 777000, username: str = "vision_test_bot") -> None:
        self.bot_id = bot_id
        self.username = username
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], SentMessage] = {}
        self.downloads: list[str] = []  # file ids, in download order
        self.injected: dict[int, dict[str, Any]] = {}  # update id → the message it carried
        self.webhook: dict[str, Any] | None = None
        self.errors: list[tuple[str, str]] = []  # (method, description) of every refused call
        self.on_confirm: Callable[[dict[str, Any]], None] | None = None  # sees confirmed updates
        self.refuse_html = False  # reject every HTML message, as for a rule we did not foresee
        self._updates: list[dict[str, Any]] = []  # not yet confirmed by an offset
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._files: dict[str, tuple[bytes, str]] = {}  # file_id → (data, file_path)
        self._new_update = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- server lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # -- what tests inject --------------------------------------------------------------------

    def add_file(self, data: bytes, path_hint: str = "photos/file.jpg") -> dict[str, Any]:
        number = next(self._file_ids)
        file_id = f"FILE{number}"
        self._files[file_id] = (
            data,
            f"{path_hint.rsplit('.', 1)[0]}_{number}.{path_hint.rsplit('.', 1)[-1]}",
        )
        return {"file_id": file_id, "file_unique_id": f"U{file_id}", "file_size": len(data)}

    def photo_sizes(self, data: bytes) -> list[dict[str, Any]]:
        """Like Telegram: thumbnails first, the original size last."""
        image = Image.open(io.BytesIO(data))
        sizes = []
        for side in (90, 320):
            if max(image.size) <= side:
                continue
            small = image.copy()
            small.thumbnail((side, side))
            out = io.BytesIO()
            small.convert("RGB").save(out, format="JPEG")
            sizes.append(
                {**self.add_file(out.getvalue()), "width": small.width, "height": small.height}
            )
        sizes.append({**self.add_file(data), "width": image.width, "height": image.height})
        return sizes

    def user_message(
        self,
        chat: dict[str, Any],
        sender: dict[str, Any],
        text: str | None = None,
        *,
        photo: bytes | None = None,
        document: tuple[bytes, str, str] | None = None,  # data, mime type, file name
        caption: str | None = None,
        media_group_id: str | None = None,
        reply_to_message_id: int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """A message as Telegram would deliver it (entities filled in like a client would)."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
        }
        if text is not None:
            message["text"] = text
            message["entities"] = entities(text)
        if caption is not None:
            message["caption"] = caption
            message["caption_entities"] = entities(caption)
        if photo is not None:
            message["photo"] = self.photo_sizes(photo)
        if document is not None:
            data, mime, name = document
            message["document"] = {
                **self.add_file(data, f"documents/{name}"),
                "mime_type": mime,
                "file_name": name,
            }
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        if reply_to_message_id is not None:
            replied = self.messages.get((chat["id"], reply_to_message_id))
            author = self.bot_user() if replied is not None else user(1)
            message["reply_to_message"] = {
                "message_id": reply_to_message_id, "date": int(time.time()), "chat": chat,
                "from": author, "text": replied.text if replied else "earlier",
            }  # fmt: skip
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        return message

    def push(self, message: dict[str, Any]) -> int:
        """Queue a message update for getUpdates; returns its update id."""
        update = {"update_id": next(self._update_ids), "message": message}
        self.injected[update["update_id"]] = message
        self._updates.append(update)
        self._new_update.set()
        return update["update_id"]

    def redeliver(self, update_id: int) -> None:
        """Deliver an update again, as Telegram does when it was never confirmed (a crash)."""
        self._updates.append({"update_id": update_id, "message": self.injected[update_id]})
        self._updates.sort(key=lambda update: update["update_id"])
        self._new_update.set()

    def send(
        self, chat: dict[str, Any], sender: dict[str, Any], text: str | None = None, **kw: Any
    ) -> int:
        return self.push(self.user_message(chat, sender, text, **kw))

    # -- what tests inspect -------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def sent_to(self, chat_id: int) -> list[SentMessage]:
        """The bot's visible messages in a chat, oldest first."""
        found = [m for (chat, _), m in self.messages.items() if chat == chat_id and not m.deleted]
        return sorted(found, key=lambda m: m.message_id)

    async def wait_for(self, condition: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout}s; calls: {self.summary()}")
            await asyncio.sleep(0.02)

    def summary(self) -> list[str]:
        return [
            f"{c.method} {c.params.get('text', '')[:60]!r}"
            for c in self.calls
            if c.method != "getUpdates"
        ]

    def pending_update_ids(self) -> list[int]:
        return [u["update_id"] for u in self._updates]

    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Vision",
            "username": self.username,
        }

    # -- the Bot API ------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return error_response(401, "Unauthorized")
        method = request.match_info["method"]
        params = await read_params(request)
        self.calls.append(Call(method, params))
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return error_response(404, "Not Found: method not found")
        try:
            result = await handler(params)
        except ApiError as error:
            self.errors.append((method, error.description))
            return error_response(error.code, error.description)
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        for file_id, (data, file_path) in self._files.items():
            if file_path == path and request.match_info["token"] == TOKEN:
                self.downloads.append(file_id)
                return web.Response(body=data)
        return web.Response(status=404)

    async def _m_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self.bot_user(), "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}  # fmt: skip

    async def _m_setMyCommands(self, params: dict[str, Any]) -> bool:
        return True

    async def _m_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        return True

    async def _m_setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = params
        return True

    async def _m_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")  # fmt: skip
        offset = int(params.get("offset") or 0)
        if offset:  # confirms every update before it, as Telegram does
            for update in self._updates:
                if update["update_id"] < offset and self.on_confirm is not None:
                    self.on_confirm(update)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while True:
            ready = self._updates[: int(params.get("limit") or 100)]
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0:
                return ready
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), remaining)

    async def _m_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params["file_id"]
        if file_id not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        data, path = self._files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "file_size": len(data),
            "file_path": path,
        }

    async def _m_sendChatAction(self, params: dict[str, Any]) -> bool:
        return True

    async def _m_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        raw, parse_mode = params.get("text", ""), params.get("parse_mode")
        text = self._checked(raw, parse_mode)
        reply = params.get("reply_parameters") or {}
        message = SentMessage(
            chat_id=chat_id, message_id=next(self._message_ids), text=text, raw=raw,
            parse_mode=parse_mode, reply_to=reply.get("message_id"),
            thread_id=params.get("message_thread_id"),
        )  # fmt: skip
        self.messages[(chat_id, message.message_id)] = message
        return self._message_json(message)

    async def _m_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None or message.deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        raw, parse_mode = params.get("text", ""), params.get("parse_mode")
        text = self._checked(raw, parse_mode)
        if raw.strip() == message.raw.strip() and parse_mode == message.parse_mode:
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same as a current "
                                "content and reply markup of the message")  # fmt: skip
        message.text, message.raw, message.parse_mode = text, raw, parse_mode
        message.edits += 1
        return self._message_json(message)

    async def _m_deleteMessage(self, params: dict[str, Any]) -> bool:
        message = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if message is None or message.deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        message.deleted = True
        return True

    def _checked(self, raw: str, parse_mode: str | None) -> str:
        if self.refuse_html and parse_mode == "HTML":
            raise ApiError(400, "Bad Request: can't parse entities: unsupported rule for the test")
        return checked_text(raw, parse_mode)

    def _message_json(self, message: SentMessage) -> dict[str, Any]:
        chat_type = "private" if message.chat_id > 0 else "supergroup"
        return {
            "message_id": message.message_id, "date": int(time.time()),
            "chat": {"id": message.chat_id, "type": chat_type}, "from": self.bot_user(),
            "text": message.text,
        }  # fmt: skip
