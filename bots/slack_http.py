"""The HTTP Events API endpoint: an aiohttp server in the running loop, handing requests to Bolt.

Bolt's own ``app.start()`` blocks in ``web.run_app``; this runs the same adapter functions on an
``AppRunner`` so Slack shares the event loop with the other adapters. Bolt checks each request's
signature (and its timestamp's age) and answers 401 when it does not match.
"""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class SlackEventsServer:
    def __init__(self, app: AsyncApp, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = port

    async def _handle(self, request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        bolt_response = await self._app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def start(self) -> None:
        server = web.Application()
        server.router.add_post(EVENTS_PATH, self._handle)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        # The real port, when 0 (any free port) was asked for.
        self.port = int(self._runner.addresses[0][1])
        log.info("Slack events endpoint on http://%s:%d%s", self._host, self.port, EVENTS_PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
