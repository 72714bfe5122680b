"""Turning the image fields of web requests (base64, data: URLs, optional http URLs) into bytes."""

from __future__ import annotations

import base64
import binascii
import logging
import re

import aiohttp

from core.images import ImageError

log = logging.getLogger(__name__)

_WHITESPACE = re.compile(rb"\s+")
REMOTE_TIMEOUT_S = 20


def _label(number: int, count: int) -> str:
    return f"Image {number}" if count > 1 else "The image"


def decode_base64_image(value: str, number: int = 1, count: int = 1) -> bytes:
    """Bare base64 or a ``data:`` URL → the file's bytes. Raises ImageError with a clear reason."""
    text = value.strip()
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or not header.endswith(";base64"):
            raise ImageError(
                f"{_label(number, count)} must be a base64 data: URL (data:image/jpeg;base64,...)."
            )
    try:
        raw = _WHITESPACE.sub(b"", text.encode("ascii"))
        # Some encoders leave the padding out; it carries no information.
        raw += b"=" * (-len(raw) % 4)
        data = base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise ImageError(f"{_label(number, count)} is not valid base64.") from None
    if not data:
        raise ImageError(f"{_label(number, count)} is empty.")
    return data


async def fetch_remote_image(url: str, max_bytes: int) -> bytes:
    """Download an http(s) image, never holding more than ``max_bytes``. Raises ImageError."""
    timeout = aiohttp.ClientTimeout(total=REMOTE_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, max_redirects=3) as response,
        ):
            if response.status != 200:
                raise ImageError(f"Fetching the image URL failed (HTTP {response.status}).")
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    limit_mb = max_bytes // 1024 // 1024
                    raise ImageError(f"The image at that URL is too large (limit {limit_mb} MB).")
            return bytes(data)
    except (aiohttp.ClientError, TimeoutError) as error:
        log.info("[web] fetching %s failed: %r", url, error)
        raise ImageError("The image URL could not be fetched.") from None


async def resolve_image_url(url: str, *, allow_remote: bool, max_bytes: int) -> bytes:
    """An OpenAI ``image_url``: a base64 data: URL, or (only if allowed) an http(s) URL."""
    if url.startswith("data:"):
        return decode_base64_image(url)
    if url.startswith(("http://", "https://")):
        if not allow_remote:
            raise ImageError(
                "Image URLs on other servers are not fetched here; send the image as a "
                "base64 data: URL instead."
            )
        return await fetch_remote_image(url, max_bytes)
    raise ImageError("An image_url must be a data: URL (data:image/jpeg;base64,...).")
