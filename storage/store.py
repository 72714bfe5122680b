"""The conversation store: the few named operations the core needs, over SQLAlchemy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Base, ChatRow, ImageRow, SeenEventRow, TurnRow


@dataclass(frozen=True)
class StoredImage:
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class StoredTurn:
    id: int
    role: str
    text: str
    images: tuple[StoredImage, ...]


@dataclass(frozen=True)
class UndeliveredTurn:
    """A user turn whose answer never reached the platform."""

    turn_id: int
    platform: str
    chat_id: str
    thread_id: str | None
    reply_to: str | None
    answer: str | None  # None: the answer still has to be generated


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL lets readers run beside the writer; synchronous=FULL makes each commit durable, which is
    # what "no message lost on a crash" rests on.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def open_engine(url: str) -> Engine:
    """Create the SQLAlchemy engine; for SQLite, make the file's folder and enable WAL."""
    parsed = make_url(url)
    connect_args: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        connect_args["check_same_thread"] = False
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args=connect_args)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class ConversationStore:
    """Chats, turns and images. All methods are synchronous and each is one transaction."""

    def __init__(self, url: str) -> None:
        self._engine = open_engine(url)
        Base.metadata.create_all(self._engine)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def _chat(
        self, session: Session, key: str, platform: str, chat_id: str, thread_id: str | None
    ) -> ChatRow:
        chat = session.get(ChatRow, key)
        if chat is None:
            chat = ChatRow(
                key=key, platform=platform, chat_id=chat_id, thread_id=thread_id, epoch=0
            )
            session.add(chat)
            session.flush()
        return chat

    def claim_event(self, event_id: str) -> bool:
        """Record a platform delivery id; False if it had been recorded before."""
        try:
            with self._tx() as session:
                session.add(SeenEventRow(event_id=event_id))
        except IntegrityError:
            return False
        return True

    def add_user_turn(
        self,
        *,
        key: str,
        platform: str,
        chat_id: str,
        thread_id: str | None,
        user_id: str,
        text: str,
        images: list[StoredImage],
        event_id: str | None,
        reply_to: str | None,
    ) -> int | None:
        """Store a user's message with its images; None if ``event_id`` was already seen."""
        try:
            with self._tx() as session:
                if event_id is not None:
                    session.add(SeenEventRow(event_id=event_id))
                    session.flush()
                chat = self._chat(session, key, platform, chat_id, thread_id)
                turn = TurnRow(
                    chat_key=key,
                    epoch=chat.epoch,
                    role="user",
                    user_id=user_id,
                    text=text,
                    status="pending",
                    event_id=event_id,
                    reply_to=reply_to,
                )
                turn.images = [
                    ImageRow(position=i, data=im.data, width=im.width, height=im.height)
                    for i, im in enumerate(images)
                ]
                session.add(turn)
                session.flush()
                return turn.id
        except IntegrityError:
            return None

    def add_answer(self, user_turn_id: int, text: str) -> int:
        """Store the assistant's answer to a user turn and mark that turn answered."""
        with self._tx() as session:
            user = session.get_one(TurnRow, user_turn_id)
            answer = TurnRow(
                chat_key=user.chat_key,
                epoch=user.epoch,
                role="assistant",
                text=text,
                answers_turn_id=user.id,
            )
            session.add(answer)
            user.status = "answered"
            session.flush()
            return answer.id

    def mark_delivered(self, user_turn_id: int) -> None:
        with self._tx() as session:
            session.execute(
                update(TurnRow).where(TurnRow.id == user_turn_id).values(status="delivered")
            )

    def history(self, key: str) -> list[StoredTurn]:
        """The current conversation of a chat, oldest first (none before the last reset)."""
        with self._tx() as session:
            chat = session.get(ChatRow, key)
            if chat is None:
                return []
            rows = session.scalars(
                select(TurnRow)
                .where(TurnRow.chat_key == key, TurnRow.epoch == chat.epoch)
                .order_by(TurnRow.id)
            ).all()
            return [
                StoredTurn(
                    id=row.id,
                    role=row.role,
                    text=row.text,
                    images=tuple(StoredImage(i.data, i.width, i.height) for i in row.images),
                )
                for row in rows
            ]

    def chat_exists(self, key: str) -> bool:
        with self._tx() as session:
            return session.get(ChatRow, key) is not None

    def reset(self, key: str) -> None:
        """Start a fresh conversation; earlier turns stay in the database but leave the history."""
        with self._tx() as session:
            chat = session.get(ChatRow, key)
            if chat is not None:
                chat.epoch += 1

    def undelivered(self, platform: str) -> list[UndeliveredTurn]:
        """User turns of ``platform`` still waiting for an answer to be generated or delivered."""
        with self._tx() as session:
            rows = session.execute(
                select(TurnRow, ChatRow)
                .join(ChatRow, ChatRow.key == TurnRow.chat_key)
                .where(ChatRow.platform == platform, TurnRow.status.in_(("pending", "answered")))
                .order_by(TurnRow.id)
            ).all()
            result = []
            for turn, chat in rows:
                answer = None
                if turn.status == "answered":
                    answer = session.scalar(
                        select(TurnRow.text).where(TurnRow.answers_turn_id == turn.id)
                    )
                result.append(
                    UndeliveredTurn(
                        turn_id=turn.id,
                        platform=chat.platform,
                        chat_id=chat.chat_id,
                        thread_id=chat.thread_id,
                        reply_to=turn.reply_to,
                        answer=answer,
                    )
                )
            return result

    def turn_chat_key(self, turn_id: int) -> str:
        with self._tx() as session:
            return session.get_one(TurnRow, turn_id).chat_key
