"""Platform-neutral message and event types exchanged between adapters and the core."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatRef:
    """Which conversation: a platform, a chat on it and, optionally, a thread or topic inside it."""

    platform: str
    chat_id: str
    thread_id: str | None = None

    @property
    def key(self) -> str:
        base = f"{self.platform}:{self.chat_id}"
        return f"{base}:{self.thread_id}" if self.thread_id else base


@dataclass(frozen=True)
class Incoming:
    """One user message: text and zero or more raw image files, as the platform delivered them.

    ``event_id`` is the platform's delivery id (update id, Slack event id…); the core stores it so a
    redelivered event is recognised and never answered twice, even across a restart.
    """

    chat: ChatRef
    user_id: str
    text: str = ""
    images: tuple[bytes, ...] = ()
    event_id: str | None = None
    reply_to: str | None = None  # adapter data needed to deliver the answer later (e.g. message id)


@dataclass(frozen=True)
class Queued:
    """The request waits for the model; ``position`` 1 means it runs next."""

    position: int


@dataclass(frozen=True)
class Started:
    """The model began working on this request."""


@dataclass(frozen=True)
class Delta:
    """New answer text; ``text`` is the whole answer so far, ``chunk`` the part just added."""

    chunk: str
    text: str


@dataclass(frozen=True)
class Answer:
    """The finished answer, already stored. Adapters call ``delivered(turn_id)`` once it is sent."""

    turn_id: int
    text: str


@dataclass(frozen=True)
class Duplicate:
    """The event was already received earlier; nothing new is generated."""

    event_id: str


AnswerEvent = Queued | Started | Delta | Answer | Duplicate


@dataclass(frozen=True)
class Completion:
    """The finished answer to a conversation the caller keeps itself; nothing was stored.

    Token counts use the engine's own accounting (image tokens and role markers included).
    """

    text: str
    prompt_tokens: int
    completion_tokens: int


CompletionEvent = Queued | Started | Delta | Completion


@dataclass(frozen=True)
class Pending:
    """A received message whose answer was never delivered (e.g. the process stopped)."""

    turn_id: int
    chat: ChatRef
    reply_to: str | None
    answer: str | None = None  # already generated: only delivery is missing
