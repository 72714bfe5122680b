"""The conversation store on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from storage.store import ConversationStore, StoredImage


def add(
    store: ConversationStore,
    key: str,
    text_: str,
    event_id: str | None = None,
    images: list[StoredImage] | None = None,
) -> int | None:
    return store.add_user_turn(
        key=key,
        platform="p",
        chat_id=key,
        thread_id=None,
        user_id="u",
        text=text_,
        images=images or [],
        event_id=event_id,
        reply_to=None,
    )


def test_sqlite_file_uses_wal_and_is_created_with_its_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'bot.db'}"
    store = ConversationStore(url)
    with store._engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    store.close()
    assert (tmp_path / "nested" / "dir" / "bot.db").exists()


def test_seen_events_persist_across_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    store = ConversationStore(url)
    assert store.claim_event("slack:Ev1") is True
    assert add(store, "k", "hello", event_id="tg:5") is not None
    store.close()
    store = ConversationStore(url)
    assert store.claim_event("slack:Ev1") is False
    assert add(store, "k", "hello again", event_id="tg:5") is None
    assert [t.text for t in store.history("k")] == ["hello"]
    store.close()


def test_reset_keeps_rows_but_starts_a_new_conversation(tmp_path: Path) -> None:
    store = ConversationStore(f"sqlite:///{tmp_path / 'bot.db'}")
    image = StoredImage(b"\xff\xd8jpeg-bytes", 10, 20)
    first = add(store, "k", "one", images=[image])
    assert first is not None
    store.add_answer(first, "answer one")
    assert [(t.role, t.text) for t in store.history("k")] == [
        ("user", "one"),
        ("assistant", "answer one"),
    ]
    assert store.history("k")[0].images == (image,)
    store.reset("k")
    assert store.history("k") == []
    add(store, "k", "two")
    assert [t.text for t in store.history("k")] == ["two"]
    with store._engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM turns")).scalar() == 3
    store.close()
