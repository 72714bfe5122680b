"""Slack event payloads turned into the few facts the adapter acts on (no Slack SDK needed here)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from core.messages import ChatRef

PLATFORM = "slack"

# Plain user messages; file uploads arrive as "file_share". Edits, deletions, joins, bot
# messages… are not questions.
_QUESTION_SUBTYPES = {None, "file_share", "thread_broadcast"}
_KEYWORD = re.compile(r"^\W*(reset|help)\W*$", re.IGNORECASE)


@dataclass(frozen=True)
class SlackFile:
    id: str
    name: str
    mimetype: str
    size: int
    url: str | None  # url_private_download; missing for some shared-channel files

    @property
    def is_image(self) -> bool:
        return self.mimetype.startswith("image/")

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> SlackFile:
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name") or data.get("title") or "file"),
            mimetype=str(data.get("mimetype") or ""),
            size=int(data.get("size") or 0),
            url=data.get("url_private_download") or data.get("url_private"),
        )


def ts_key(ts: str) -> tuple[int, int]:
    """Slack timestamps ("1700000000.000100") compared exactly, without float rounding."""
    seconds, _, micros = ts.partition(".")
    return int(seconds or 0), int(micros or 0)


@dataclass(frozen=True)
class SlackMessage:
    """A user's message addressed to the bot: a mention in a channel, or anything in a DM."""

    event_id: str
    channel: str
    user: str
    ts: str
    thread_ts: str | None
    is_dm: bool
    text: str
    files: tuple[SlackFile, ...]

    @property
    def chat(self) -> ChatRef:
        # Channel conversations live in a thread; the mention that starts one names it by its ts.
        # A DM is one conversation, threads in it included.
        thread = None if self.is_dm else (self.thread_ts or self.ts)
        return ChatRef(PLATFORM, self.channel, thread)

    @property
    def reply_thread(self) -> str | None:
        """Where answers go: the thread; top-level in a DM unless the user wrote in a thread."""
        return self.thread_ts if self.is_dm else (self.thread_ts or self.ts)

    @property
    def images(self) -> tuple[SlackFile, ...]:
        return tuple(f for f in self.files if f.is_image)

    @property
    def other_files(self) -> tuple[SlackFile, ...]:
        return tuple(f for f in self.files if not f.is_image)


def parse_event(
    body: dict[str, Any], event: dict[str, Any], *, mention: bool
) -> SlackMessage | None:
    """The message in an ``app_mention`` (``mention``) or ``message`` event; None to ignore it."""
    if event.get("subtype") not in _QUESTION_SUBTYPES or event.get("bot_id") or event.get("hidden"):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if not (user and channel and ts):
        return None
    is_dm = event.get("channel_type") == "im" or str(channel).startswith("D")
    if mention == is_dm:
        # DMs are taken from `message` events (every message is a turn); channels only when the
        # bot is mentioned, so a mention that also arrives as a `message` is handled once.
        return None
    return SlackMessage(
        event_id=str(body.get("event_id") or f"{channel}:{ts}"),
        channel=str(channel),
        user=str(user),
        ts=str(ts),
        thread_ts=event.get("thread_ts"),
        is_dm=is_dm,
        text=str(event.get("text") or ""),
        files=tuple(SlackFile.from_payload(f) for f in event.get("files") or ()),
    )


def keyword_command(question: str) -> str | None:
    """``reset`` or ``help`` when the whole question is that word (punctuation allowed)."""
    match = _KEYWORD.match(question)
    return match.group(1).lower() if match else None


@dataclass(frozen=True)
class ReplyTarget:
    """Where an answer is delivered; stored as the turn's ``reply_to`` to survive a restart."""

    channel: str
    thread_ts: str | None
    placeholder_ts: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: str | None) -> ReplyTarget | None:
        try:
            fields = json.loads(data or "")
            return cls(
                channel=str(fields["channel"]),
                thread_ts=fields.get("thread_ts"),
                placeholder_ts=fields.get("placeholder_ts"),
            )
        except (ValueError, KeyError, TypeError):
            return None
