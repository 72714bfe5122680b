"""Building blocks of the updates the fake Telegram server delivers: users, chats, entities."""

from __future__ import annotations

from typing import Any


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def user(user_id: int, name: str = "Ada") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": name}


def private_chat(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "type": "private", "first_name": "Ada"}


def group_chat(chat_id: int, forum: bool = False) -> dict[str, Any]:
    chat: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": "Photo club"}
    if forum:
        chat["is_forum"] = True
    return chat


def entities(text: str) -> list[dict[str, Any]]:
    """The entities a Telegram client marks: @mentions anywhere, a /command at the start."""
    found = []
    for word_start, word in _words(text):
        offset = utf16_len(text[:word_start])
        if word.startswith("@") and len(word) > 1:
            found.append({"type": "mention", "offset": offset, "length": utf16_len(word)})
        elif word.startswith("/") and word_start == 0 and len(word) > 1:
            found.append({"type": "bot_command", "offset": 0, "length": utf16_len(word)})
    return found


def _words(text: str) -> list[tuple[int, str]]:
    words, start = [], None
    for index, char in enumerate([*text, " "]):
        if char.isspace():
            if start is not None:
                words.append((start, text[start:index].rstrip(".,!?:;")))
            start = None
        elif start is None:
            start = index
    return words
