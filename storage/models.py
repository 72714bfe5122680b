"""Database tables: chats, their turns, each turn's images, and platform events already seen."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ChatRow(Base):
    __tablename__ = "chats"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    thread_id: Mapped[str | None] = mapped_column(String(128))
    # Bumped by reset: turns of older epochs stay stored but leave the conversation.
    epoch: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class TurnRow(Base):
    __tablename__ = "turns"
    __table_args__ = (Index("ix_turns_chat_epoch", "chat_key", "epoch", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_key: Mapped[str] = mapped_column(ForeignKey("chats.key"))
    epoch: Mapped[int]
    role: Mapped[str] = mapped_column(String(16))  # "user" or "assistant"
    user_id: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text, default="")
    # User turns only: "pending" (no answer yet), "answered" (stored, not yet sent), "delivered".
    status: Mapped[str | None] = mapped_column(String(16), index=True)
    event_id: Mapped[str | None] = mapped_column(String(200))
    reply_to: Mapped[str | None] = mapped_column(Text)
    answers_turn_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id"))
    created_at: Mapped[datetime] = mapped_column(default=_now)

    images: Mapped[list[ImageRow]] = relationship(
        order_by="ImageRow.position", cascade="all, delete-orphan", lazy="selectin"
    )


class ImageRow(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id"), index=True)
    position: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int]
    height: Mapped[int]


class SeenEventRow(Base):
    """Platform deliveries already taken in, so a retry or redelivery is never handled twice."""

    __tablename__ = "seen_events"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=_now)
