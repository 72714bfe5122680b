"""The web adapter's edge: every refusal as JSON, the body-size limit and API-key checks."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, SecretStr
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
OPENAI_PREFIX = "/v1/"


class ErrorBody(BaseModel):
    """Every refusal of the /chat API and the page: ``{"error": "..."}``."""

    error: str


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """Refusals under /v1, in the shape OpenAI clients parse."""

    error: OpenAIErrorDetail


class ApiError(HTTPException):
    """A refusal with a message fit to show to the caller."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)


def busy() -> ApiError:
    return ApiError(
        503,
        "The model is busy with other requests; please try again in a few seconds.",
        {"Retry-After": str(RETRY_AFTER_S)},
    )


_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}


def error_response(
    path: str, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if path.startswith(OPENAI_PREFIX):
        fallback = "server_error" if status >= 500 else "invalid_request_error"
        kind = _OPENAI_TYPES.get(status, fallback)
        body = {"error": {"message": message, "type": kind, "code": str(status)}}
    return JSONResponse(body, status_code=status, headers=headers)


def describe_validation(errors: Sequence[Any]) -> str:
    """One readable sentence for the first thing wrong with a request."""
    first = errors[0]
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", "")
        return f"The request body is not valid JSON ({reason})." if reason else "Malformed JSON."
    loc = [str(part) for part in first.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]  # where FastAPI found it, not part of the field's name
    where = ".".join(loc)
    if first.get("type") == "model_attributes_type" or (not where and "dict" in first["msg"]):
        return "The request body must be a JSON object (sent with Content-Type: application/json)."
    if first.get("type") == "extra_forbidden":
        return f"Unknown field '{where}'."
    if first.get("type") == "missing":
        return f"The field '{where}' is required."
    return f"'{where}': {first['msg']}." if where else f"{first['msg']}."


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else "Request refused."
        if not isinstance(error, ApiError) and error.status_code == 404:
            message = "There is nothing at this address."
        elif not isinstance(error, ApiError) and error.status_code == 405:
            message = f"{request.method} is not supported here."
        return error_response(request.url.path, error.status_code, message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        message = describe_validation(error.errors())
        log.info("[web] refused %s %s: %s", request.method, request.url.path, message)
        return error_response(request.url.path, 400, message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("[web] %s %s failed", request.method, request.url.path)
        return error_response(
            request.url.path, 500, "Sorry, something went wrong on our side while answering."
        )


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request is too large (limit {limit / 1024 / 1024:.1f} MB).")


class BodyLimitMiddleware:
    """Refuses bodies over ``limit`` bytes: by Content-Length before reading, else while streaming.

    Counting the stream matters for chunked uploads, which announce no length; nothing beyond the
    limit is ever held in memory.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        log.info("[web] refused %s %s: body over %d bytes", method, path, self.limit)
        error = BodyTooLarge(self.limit)
        response = error_response(scope["path"], 413, error.detail, {"Connection": "close"})
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def check_api_key(request: Request, keys: Sequence[SecretStr]) -> None:
    """Raise 401 unless keys are off or the request carries one as ``Authorization: Bearer``."""
    if not keys:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    # Compare against every key so timing does not reveal which one nearly matched.
    matched = False
    for key in keys:
        matched |= secrets.compare_digest(given.encode(), key.get_secret_value().encode())
    if scheme.lower() != "bearer" or not given or not matched:
        raise ApiError(
            401,
            "A valid API key is required: send it as 'Authorization: Bearer <key>'.",
            {"WWW-Authenticate": "Bearer"},
        )


def sse(event: str | None, data: Any) -> str:
    """One server-sent event; ``data`` is sent as JSON unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n"


def sse_event_schema(events: Sequence[str] = ()) -> dict[str, Any]:
    """OpenAPI (3.1) schema of one server-sent event, as the stream's ``schema`` describes."""
    event: dict[str, Any] = (
        {"type": "string", "enum": list(events)} if events else {"type": "string"}
    )
    return {
        "type": "object",
        "properties": {"event": event, "data": {"type": "string"}, "id": {"type": "string"}},
        "required": ["data"],
    }
