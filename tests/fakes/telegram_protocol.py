"""The Bot API's wire rules the fake server enforces: how parameters arrive, how errors look, and
which message texts Telegram refuses (bad HTML entities, empty or over-long text)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.telegram_html import EntityParseError, visible_text
from tests.fakes.telegram_updates import utf16_len

MESSAGE_LIMIT = 4096
# Parameters that PTB sends JSON-encoded; everything else is a plain string.
_JSON_PARAMS = {
    "chat_id", "message_id", "offset", "timeout", "limit", "allowed_updates", "reply_parameters",
    "message_thread_id", "commands", "drop_pending_updates", "max_connections",
}  # fmt: skip


class ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def checked_text(raw: str, parse_mode: str | None) -> str:
    if parse_mode not in (None, "HTML"):
        raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode}")
    try:
        text = visible_text(raw) if parse_mode == "HTML" else raw
    except EntityParseError as error:
        raise ApiError(400, f"Bad Request: can't parse entities: {error}") from None
    if not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if utf16_len(text) > MESSAGE_LIMIT:
        raise ApiError(400, "Bad Request: message is too long")
    return text.strip()  # Telegram trims what it shows


async def read_params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        return dict(await request.json())
    form = await request.post()
    params: dict[str, Any] = {}
    for key, value in form.items():
        if isinstance(value, str) and key in _JSON_PARAMS:
            try:
                params[key] = json.loads(value)
                continue
            except ValueError:
                pass
        params[key] = value
    return params


def error_response(code: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": code, "description": description}, status=code
    )
