"""The web adapter's ASGI app: the /chat API, the OpenAI-compatible /v1 API, the page, /healthz."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel

from bots.web_api import chat_router, config_router
from bots.web_errors import (
    ApiError,
    BodyLimitMiddleware,
    ErrorBody,
    OpenAIErrorBody,
    install_error_handlers,
)
from bots.web_openai import openai_router
from core.config import Settings
from core.service import ConversationService

PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "markdown.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page loads nothing from elsewhere and runs no inline script: even if some text slipped
# past the escaping renderer, the browser would refuse to execute it.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'none'"
)


class Health(BaseModel):
    status: str
    model_loaded: bool
    model: str
    queue_depth: int
    uptime_s: float


def model_name(settings: Settings) -> str:
    """The name clients see: the hub id's last part, or the folder name of a local model."""
    return Path(settings.model.id).name or settings.model.id


def _read_page_file(name: str) -> bytes:
    return (resources.files("bots") / "web_page" / name).read_bytes()


def _document_errors(app: FastAPI) -> None:
    """Describe the refusals every operation can give, and drop FastAPI's unused 422."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorBody, OpenAIErrorBody):
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(definition.pop("$defs", {}))
            components[model.__name__] = definition
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        for path, operations in schema["paths"].items():
            body = "OpenAIErrorBody" if path.startswith("/v1/") else "ErrorBody"
            content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}
            for method, operation in operations.items():
                responses = operation["responses"]
                responses.pop("422", None)
                wanted = {"500": "Unexpected failure"}
                if path not in ("/", "/healthz", "/chat/config") and not path.startswith("/static"):
                    wanted["401"] = "Missing or wrong API key (only when keys are configured)"
                if method == "post":
                    wanted["400"] = "Malformed request, unusable image or text, unknown session"
                    wanted["413"] = "Body larger than [web] max_body_bytes"
                    wanted["503"] = "Queue full; retry after the Retry-After seconds"
                if "{" in path:
                    wanted["400"] = "Malformed request"
                    wanted["404"] = "Unknown session"
                for status, description in wanted.items():
                    responses[status] = {"description": description, "content": content}
                if "503" in responses:
                    responses["503"]["headers"] = {
                        "Retry-After": {"schema": {"type": "string"}, "description": "Seconds"}
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings, service: ConversationService) -> FastAPI:
    """The whole web API over one conversation service (the same one other adapters use)."""
    app = FastAPI(
        title="visionbot",
        version="1",
        summary="Ask a local vision-language model about images",
        # FastAPI's docs pages load their scripts from a CDN; the schema itself is at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    name = model_name(settings)
    started = time.monotonic()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.web.max_body_bytes)
    app.include_router(chat_router(settings, service, name))
    app.include_router(config_router(settings, name))
    app.include_router(openai_router(settings, service, name))

    @app.get("/healthz", response_model=Health, summary="Liveness and load, for deployments")
    async def healthz() -> Health:
        return Health(
            status="ok",
            model_loaded=service.engine is not None,
            model=name,
            queue_depth=service.queue.depth,
            uptime_s=round(time.monotonic() - started, 1),
        )

    page_headers = {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"}

    @app.get(
        "/",
        response_class=Response,
        responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
        summary="The chat page",
    )
    async def page() -> Response:
        return Response(_read_page_file("index.html"), headers=page_headers, media_type="text/html")

    @app.get(
        "/static/{name}",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        include_in_schema=False,
    )
    async def static(name: str) -> Response:
        if name not in PAGE_FILES:
            raise ApiError(404, "There is nothing at this address.")
        return Response(
            _read_page_file(name),
            media_type=PAGE_FILES[name].split(";")[0],
            headers={"Cache-Control": "no-cache", **page_headers},
        )

    _document_errors(app)
    return app
