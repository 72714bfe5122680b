"""The OpenAI-compatible ``/v1`` API: chat completions (plain or streamed) and the model list.

Stateless: the client sends the whole conversation each time, so it is answered with the core's
``complete`` (same checks, queue and engine as stored chats) and nothing is stored.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from bots.web_errors import ApiError, busy, check_api_key, sse, sse_event_schema
from bots.web_images import resolve_image_url
from core.config import Settings
from core.engine import GenerationParams
from core.images import ImageError
from core.messages import Completion, CompletionEvent, Delta, Queued
from core.queue import QueueFull
from core.service import ConversationService, GivenMessage, UserInputError

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    # Unknown keys are ignored: chat UIs send many OpenAI options this server has no use for.
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart | ImagePart] | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class CompletionRequest(_Strict):
    model: str | None = Field(default=None, description="Accepted, ignored: one model is served.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(
        default=None, ge=1, description="Capped at the server's [model] max_new_tokens."
    )
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=1, description="Only one choice is generated.")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def generation_params(request: CompletionRequest, settings: Settings) -> GenerationParams:
    """The request's sampling options, kept within the server's configured limits."""
    model = settings.model
    wanted = request.max_completion_tokens or request.max_tokens or model.max_new_tokens
    temperature = model.temperature if request.temperature is None else request.temperature
    do_sample = model.do_sample if request.temperature is None else request.temperature > 0
    return GenerationParams(
        max_new_tokens=min(wanted, model.max_new_tokens),
        temperature=temperature,
        top_p=model.top_p if request.top_p is None else request.top_p,
        do_sample=do_sample,
        seed=model.seed if request.seed is None else request.seed,
    )


async def given_messages(request: CompletionRequest, settings: Settings) -> list[GivenMessage]:
    messages = []
    for message in request.messages:
        parts = message.content
        texts: list[str] = []
        images: list[bytes] = []
        if isinstance(parts, str):
            texts.append(parts)
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, TextPart):
                texts.append(part.text)
                continue
            if message.role != "user":
                raise UserInputError("Only user messages may contain images.")
            images.append(
                await resolve_image_url(
                    part.image_url.url,
                    allow_remote=settings.web.allow_remote_image_urls,
                    max_bytes=settings.images.max_file_bytes,
                )
            )
        role = "system" if message.role == "developer" else message.role
        messages.append(GivenMessage(role, "\n".join(texts), tuple(images)))
    return messages


_DOCUMENTED_200: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer; with stream=true, OpenAI chunks as server-sent events "
        "ending with 'data: [DONE]'.",
        "content": {"text/event-stream": {"schema": sse_event_schema()}},
    }
}


def openai_router(settings: Settings, service: ConversationService, model_name: str) -> APIRouter:
    def authorized(request: Request) -> None:
        check_api_key(request, settings.web.api_keys)

    router = APIRouter(prefix="/v1", dependencies=[Depends(authorized)])
    started_at = int(time.time())

    @router.get("/models", response_model=ModelList, summary="The one model served")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=model_name, created=started_at, owned_by="visionbot")])

    @router.post(
        "/chat/completions",
        response_model=CompletionResponse,
        responses=_DOCUMENTED_200,
        summary="OpenAI-compatible chat completion (stateless)",
    )
    async def completions(body: CompletionRequest) -> Any:
        params = generation_params(body, settings)
        completion_id = "chatcmpl-" + secrets.token_hex(12)
        try:
            messages = await given_messages(body, settings)
            events = service.complete(messages, params, label=f"web:{completion_id}")
            first = await anext(events)
        except (ImageError, UserInputError) as error:
            log.info("[web:%s] refused: %s", completion_id, error)
            raise ApiError(400, str(error)) from None
        except QueueFull:
            raise busy() from None
        head = {"id": completion_id, "created": int(time.time()), "model": model_name}
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            chunks = _chunks(head, first, events, params.max_new_tokens, include_usage)
            return StreamingResponse(
                chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )
        event = first
        async with contextlib.aclosing(events):
            while not isinstance(event, Completion):
                event = await anext(events)
        return JSONResponse(
            CompletionResponse(
                **head,
                choices=[
                    Choice(
                        index=0,
                        message=AssistantMessage(content=event.text),
                        finish_reason=_finish(event, params.max_new_tokens),
                    )
                ],
                usage=_usage(event),
            ).model_dump()
        )

    return router


def _finish(done: Completion, max_new_tokens: int) -> Literal["stop", "length"]:
    return "length" if done.completion_tokens >= max_new_tokens else "stop"


def _usage(done: Completion) -> Usage:
    return Usage(
        prompt_tokens=done.prompt_tokens,
        completion_tokens=done.completion_tokens,
        total_tokens=done.prompt_tokens + done.completion_tokens,
    )


async def _chunks(
    head: dict[str, Any],
    first: CompletionEvent,
    events: AsyncIterator[CompletionEvent],
    max_new_tokens: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return sse(None, {**head, "object": "chat.completion.chunk", "choices": choices, **extra})

    def choice(delta: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish}]

    async with contextlib.aclosing(events):  # type: ignore[type-var]
        yield chunk(choice({"role": "assistant", "content": ""}))
        event = first
        while True:
            if isinstance(event, Queued):
                # A comment line: ignored by clients, but shows progress and keeps proxies open.
                yield f": queued, position {event.position}\n\n"
            elif isinstance(event, Delta):
                yield chunk(choice({"content": event.chunk}))
            elif isinstance(event, Completion):
                yield chunk(choice({}, _finish(event, max_new_tokens)))
                if include_usage:
                    # OpenAI's form: one more chunk, without choices, carrying the counts.
                    yield chunk([], usage=_usage(event).model_dump())
                yield "data: [DONE]\n\n"
                return
            try:
                event = await anext(events)
            except Exception:
                log.exception("[web:%s] answering failed", head["id"])
                yield sse(None, {"error": {"message": "Answering failed.", "type": "server_error"}})
                return
