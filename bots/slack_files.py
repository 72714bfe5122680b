"""Fetching the images of a Slack message, or of its thread, with the bot token."""

from __future__ import annotations

import logging

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack_events import SlackFile, SlackMessage, ts_key

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class DownloadError(Exception):
    """A file could not be fetched from Slack; the message is fit to show to the user."""


class SlackFiles:
    """Downloads private files, which Slack serves only with ``Authorization: Bearer <token>``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client: AsyncWebClient,
        token: str,
        max_bytes: int,
    ) -> None:
        self._session = session
        self._client = client
        self._token = token
        self._max_bytes = max_bytes

    async def _url(self, file: SlackFile) -> str:
        if file.url:
            return file.url
        # Files shared from another workspace arrive without URLs ("check_file_info").
        try:
            info = await self._client.files_info(file=file.id)
        except SlackApiError as error:
            log.warning("files.info %s failed: %s", file.id, error.response.get("error"))
            raise DownloadError(
                f"I couldn't access {file.name} (no permission to read it)."
            ) from None
        details = info.get("file") or {}
        url = details.get("url_private_download") or details.get("url_private")
        if not url:
            raise DownloadError(f"I couldn't access {file.name}.")
        return str(url)

    async def download(self, file: SlackFile) -> bytes:
        if file.size > self._max_bytes:
            mb = self._max_bytes / 1024 / 1024
            raise DownloadError(f"{file.name} is too large (limit {mb:.0f} MB).")
        url = await self._url(file)
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with self._session.get(url, headers=headers) as response:
                content_type = response.headers.get("Content-Type", "")
                # Without a valid token Slack answers with its sign-in page (HTML), not an error.
                if response.status != 200 or content_type.startswith("text/html"):
                    log.warning(
                        "download of %s refused: HTTP %s %s", file.id, response.status, content_type
                    )
                    raise DownloadError(
                        f"Slack would not let me download {file.name}; is the app allowed to "
                        "read files (files:read scope)?"
                    )
                data = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    data.extend(chunk)
                    if len(data) > self._max_bytes:
                        raise DownloadError(f"{file.name} is too large.")
                return bytes(data)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("download of %s failed: %s", file.id, error)
            raise DownloadError(f"I couldn't download {file.name}; please try again.") from None

    async def unseen_thread_images(
        self, message: SlackMessage, bot_user_id: str, limit: int
    ) -> tuple[SlackFile, ...]:
        """Images posted in the thread since the bot was last mentioned there, newest ``limit``.

        Earlier mentions were turns, so their images (and the thread images before them) are
        already in the conversation's history; only images posted without a mention are new.
        """
        if not message.thread_ts:
            return ()
        try:
            reply = await self._client.conversations_replies(
                channel=message.channel, ts=message.thread_ts, limit=200
            )
        except SlackApiError as error:
            log.warning(
                "[slack:%s] conversations.replies failed: %s",
                message.channel,
                error.response.get("error"),
            )
            return ()
        mention = f"<@{bot_user_id}"
        found: list[SlackFile] = []
        for item in reply.get("messages") or []:
            if ts_key(str(item.get("ts", "0"))) >= ts_key(message.ts):
                break
            if mention in str(item.get("text") or ""):
                found = []  # everything up to here was part of an earlier turn
                continue
            if item.get("bot_id") or item.get("user") == bot_user_id:
                continue
            found.extend(
                f for f in map(SlackFile.from_payload, item.get("files") or ()) if f.is_image
            )
        return tuple(found[-limit:])
