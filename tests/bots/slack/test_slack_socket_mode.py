"""Socket Mode end to end: the adapter dials the fake Slack's WebSocket and acks each envelope."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

import bots
from core.config import ConfigError
from tests.bots.slack.conftest import CHANNEL, USER, MakeBot, envelope
from tests.conftest import image_bytes
from tests.fakes.slack_api import APP_TOKEN, BOT_USER_ID


async def test_socket_mode_connects_acks_and_answers(
    make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bots.slack")
    bot = await make_bot(mode="socket")
    assert "signed in as @visionbot (user UBOT, bot BBOT)" in caplog.text
    (opened,) = bot.fake.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN

    photo = bot.fake.add_file("cat.jpg", image_bytes())
    event = {"type": "app_mention", "user": USER, "channel": CHANNEL, "ts": "1700000100.000001"}
    event.update(text=f"<@{BOT_USER_ID}> what is it?", files=[photo])
    payload = envelope(event)
    first = await bot.fake.send_envelope(payload)
    await bot.fake.wait_until(lambda: bot.fake.acked(first))
    retried = await bot.fake.send_envelope(payload, retry_attempt=1)
    await bot.fake.wait_until(lambda: bot.fake.acked(retried))
    await bot.adapter.drain()

    (reply,) = bot.fake.bot_messages(CHANNEL)
    assert reply.thread_ts == "1700000100.000001"
    assert len(bot.prompts()) == 1
    assert bot.service.store.undelivered("slack") == []


async def test_a_wrong_app_token_fails_start_up_clearly(make_bot: MakeBot) -> None:
    with pytest.raises(ConfigError, match="app_token"):
        await make_bot(mode="socket", app_token="xapp-wrong")


def test_the_manifest_subscribes_to_what_the_adapter_handles() -> None:
    manifest = yaml.safe_load(
        (Path(bots.__file__).parent / "slack_manifest.yaml").read_text(encoding="utf-8")
    )
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im"}
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    # Events need their read scopes; replies, file downloads and thread look-ups need the rest.
    assert {"app_mentions:read", "im:history", "chat:write", "files:read"} <= scopes
    assert {"channels:history", "groups:history"} <= scopes
