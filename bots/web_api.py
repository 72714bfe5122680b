"""The reference service's ``POST /chat``, with sessions, plus the page's streaming variant."""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from bots.web_errors import ApiError, busy, check_api_key, sse, sse_event_schema
from bots.web_images import decode_base64_image
from core.config import Settings
from core.images import ImageError
from core.messages import Answer, AnswerEvent, ChatRef, Delta, Incoming, Queued, Started
from core.queue import QueueFull
from core.service import ConversationService, Receipt, UserInputError

log = logging.getLogger(__name__)

PLATFORM = "web"
ONE_SHOT = "once-"  # chat id prefix of calls without a session
NEW_SESSION = "new"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
EVENTS = ("session", "queued", "started", "delta", "done", "error")


class ChatRequest(BaseModel):
    """The reference service's request, plus optional ``images`` and ``session``."""

    model_config = ConfigDict(strict=True, extra="forbid")

    query: str | None = Field(
        default=None, description="The question. Left out with an image: the image is described."
    )
    image: str | None = Field(default=None, description="An image: bare base64 or a data: URL.")
    images: list[str] | None = Field(
        default=None, max_length=16, description="Several images (base64 or data: URLs)."
    )
    session: str | None = Field(
        default=None,
        max_length=64,
        description='"new" starts a conversation; its id (from a response) continues it. '
        "Left out: a one-shot question.",
    )


class ChatResponse(BaseModel):
    response: str
    session: str | None = Field(default=None, description="Only when the request had a session.")


class ChatConfig(BaseModel):
    """What the page needs to prepare a message the core will accept."""

    max_pixels: int
    max_images: int
    max_text_chars: int
    auth_required: bool
    model: str


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    text: str
    images: list[str] = Field(description="data: URLs of the images as the model saw them.")


class History(BaseModel):
    session: str
    turns: list[HistoryTurn]


def chat_router(settings: Settings, service: ConversationService, model_name: str) -> APIRouter:
    def authorized(request: Request) -> None:
        check_api_key(request, settings.web.api_keys)

    router = APIRouter(dependencies=[Depends(authorized)])

    async def resolve_session(session: str | None) -> tuple[ChatRef, str | None]:
        if session is None:
            # One-shot: a chat of its own that nobody is told about, so it cannot be continued.
            return ChatRef(PLATFORM, ONE_SHOT + secrets.token_urlsafe(18)), None
        if session == NEW_SESSION:
            session = secrets.token_urlsafe(24)
            return ChatRef(PLATFORM, session), session
        chat = ChatRef(PLATFORM, session)
        if not _SESSION_ID.match(session) or not await service.has_chat(chat):
            raise ApiError(
                400, 'Unknown session. Start a new one with "session": "new" (or leave it out).'
            )
        return chat, session

    async def take_in(body: ChatRequest) -> tuple[Receipt, str | None]:
        raw = ([body.image] if body.image is not None else []) + list(body.images or [])
        chat, session = await resolve_session(body.session)
        try:
            images = tuple(
                decode_base64_image(value, number, len(raw))
                for number, value in enumerate(raw, start=1)
            )
            if service.queue.full:
                # Refuse before storing: a turn stored now would stay unanswered in the history.
                raise busy()
            receipt = await service.receive(
                Incoming(chat=chat, user_id=PLATFORM, text=body.query or "", images=images)
            )
        except (ImageError, UserInputError) as error:
            log.info("[%s] refused: %s", chat.key, error)
            raise ApiError(400, str(error)) from None
        assert isinstance(receipt, Receipt)  # no event id is given, so it is never a duplicate
        return receipt, session

    async def first_event(events: AsyncIterator[AnswerEvent]) -> AnswerEvent:
        try:
            return await anext(events)
        except QueueFull:
            raise busy() from None

    @router.post(
        "/chat",
        response_model=ChatResponse,
        response_model_exclude_none=True,
        summary="Ask about images (the reference service's API)",
    )
    async def chat(body: ChatRequest) -> JSONResponse:
        receipt, session = await take_in(body)
        events = service.answer(receipt)
        event = await first_event(events)
        async with contextlib.aclosing(events):
            while not isinstance(event, Answer):
                event = await anext(events)
        reply: dict[str, Any] = {"response": event.text}
        if session is not None:
            reply["session"] = session
        return JSONResponse(reply, background=BackgroundTask(service.delivered, event.turn_id))

    @router.post(
        "/chat/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"schema": sse_event_schema(EVENTS)}}}},
        summary="Ask, and receive the answer as server-sent events (used by the page)",
        description="Events: session, queued {position}, started, delta {text}, done {text}, "
        "error {error}.",
    )
    async def chat_stream(body: ChatRequest) -> StreamingResponse:
        receipt, session = await take_in(body)
        events = service.answer(receipt)
        first = await first_event(events)

        async def stream() -> AsyncIterator[str]:
            async with contextlib.aclosing(events):
                if session is not None:
                    yield sse("session", {"session": session})
                event = first
                while True:
                    if isinstance(event, Queued):
                        yield sse("queued", {"position": event.position})
                    elif isinstance(event, Started):
                        yield sse("started", {})
                    elif isinstance(event, Delta):
                        yield sse("delta", {"text": event.chunk})
                    elif isinstance(event, Answer):
                        yield sse("done", {"text": event.text})
                        await service.delivered(event.turn_id)
                        return
                    try:
                        event = await anext(events)
                    except Exception:
                        log.exception("[%s] answering failed", receipt.chat.key)
                        yield sse("error", {"error": "Sorry, answering failed. Please try again."})
                        return

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @router.get(
        "/chat/sessions/{session}",
        response_model=History,
        responses={404: {"description": "Unknown session"}},
        summary="A session's conversation so far, images included",
    )
    async def history(session: str) -> History:
        chat = ChatRef(PLATFORM, session)
        if not _SESSION_ID.match(session) or not await service.has_chat(chat):
            raise ApiError(404, "Unknown session.")
        turns = await service.transcript(chat)
        return History(
            session=session,
            turns=[
                HistoryTurn(
                    role="user" if turn.role == "user" else "assistant",
                    text=turn.text,
                    images=[
                        "data:image/jpeg;base64," + base64.b64encode(im.data).decode()
                        for im in turn.images
                    ],
                )
                for turn in turns
            ],
        )

    return router


def config_router(settings: Settings, model_name: str) -> APIRouter:
    router = APIRouter()

    @router.get("/chat/config", response_model=ChatConfig, summary="Limits the page works within")
    async def config() -> ChatConfig:
        return ChatConfig(
            max_pixels=settings.images.max_pixels,
            max_images=settings.images.max_images_per_message,
            max_text_chars=settings.history.max_text_chars,
            auth_required=bool(settings.web.api_keys),
            model=model_name,
        )

    return router
