"""Reading Telegram messages: who and where, whether the bot is addressed, text and image files."""

from __future__ import annotations

import logging
import mimetypes
import re

from telegram import Bot, Message, MessageEntity
from telegram.constants import ChatType
from telegram.error import TelegramError

from bots.telegram_reply import ReplyTarget
from core.messages import ChatRef

log = logging.getLogger(__name__)

PLATFORM = "telegram"
# The Bot API refuses getFile for larger files.
BOT_API_DOWNLOAD_LIMIT = 20 * 1024 * 1024
GROUP_TYPES = (ChatType.GROUP, ChatType.SUPERGROUP)


class InboundError(ValueError):
    """The message cannot be taken in as sent; the text is fit to show to the user."""


def chat_ref(message: Message) -> ChatRef:
    """The conversation a message belongs to: the chat, and the forum topic if there is one."""
    thread = str(message.message_thread_id) if message.is_topic_message else None
    return ChatRef(PLATFORM, str(message.chat_id), thread)


def reply_target(message: Message) -> ReplyTarget:
    thread = message.message_thread_id if message.is_topic_message else None
    return ReplyTarget(chat_id=message.chat_id, message_id=message.message_id, thread_id=thread)


def sender_id(message: Message) -> int | None:
    if message.from_user is not None:
        return message.from_user.id
    return message.sender_chat.id if message.sender_chat is not None else None


def is_group(message: Message) -> bool:
    return message.chat.type in GROUP_TYPES


def _mentions(message: Message, bot: Bot) -> bool:
    username = (bot.username or "").lower()
    for entities in (message.parse_entities(), message.parse_caption_entities()):
        for entity, text in entities.items():
            if entity.type == MessageEntity.MENTION and text.lower() == f"@{username}":
                return True
            if (
                entity.type == MessageEntity.TEXT_MENTION
                and entity.user
                and entity.user.id == bot.id
            ):
                return True
    return False


def is_addressed(message: Message, bot: Bot) -> bool:
    """In a group the bot answers only when mentioned, or when a message replies to one of its."""
    if not is_group(message):
        return True
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot.id:
        return True
    return _mentions(message, bot)


def user_text(message: Message, bot: Bot) -> str:
    """The question: text or caption, without the bot's @mention."""
    text = message.text or message.caption or ""
    if bot.username:
        text = re.sub(rf"@{re.escape(bot.username)}\b", "", text, flags=re.IGNORECASE)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def command_name(message: Message, bot: Bot) -> str | None:
    """``reset`` for ``/reset`` or ``/reset@thisbot``; None if the command is for another bot."""
    word = (message.text or "").split(maxsplit=1)[0]
    name, _, target = word[1:].partition("@")
    if target and target.lower() != (bot.username or "").lower():
        return None
    return name.lower()


def _is_image_document(message: Message) -> bool:
    document = message.document
    if document is None:
        return False
    mime = document.mime_type or mimetypes.guess_type(document.file_name or "")[0] or ""
    return mime.startswith("image/")


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 100 * 1024 else f"{size / 1024:.0f} kB"


def is_allowed(message: Message, user_ids: list[int], chat_ids: list[int]) -> bool:
    """No allow-lists: everyone. Otherwise a listed user anywhere, or anyone in a listed chat."""
    if not user_ids and not chat_ids:
        return True
    return sender_id(message) in user_ids or message.chat_id in chat_ids


def has_content(message: Message) -> bool:
    return bool(message.text or message.caption or message.photo or message.document)


async def download_images(message: Message, bot: Bot, max_file_bytes: int) -> list[bytes]:
    """The message's image (largest photo size, or an image document) as raw bytes."""
    if message.photo:
        largest = max(message.photo, key=lambda size: size.width * size.height)
        file_id, size = largest.file_id, largest.file_size
    elif message.document is not None:
        if not _is_image_document(message):
            name = message.document.file_name or "That file"
            raise InboundError(
                f"{name} isn't an image I can look at. Send a photo, or an image file "
                "(JPEG, PNG, WebP…)."
            )
        file_id, size = message.document.file_id, message.document.file_size
    else:
        return []
    limit = min(max_file_bytes, BOT_API_DOWNLOAD_LIMIT)
    if size is not None and size > limit:
        raise InboundError(
            f"That image file is too large ({_megabytes(size)}); the limit is {_megabytes(limit)}."
        )
    try:
        telegram_file = await bot.get_file(file_id)
        data = bytes(await telegram_file.download_as_bytearray())
    except TelegramError as error:
        log.warning("[telegram:%s] download of %s failed: %s", message.chat_id, file_id, error)
        raise InboundError(
            "I couldn't download that image from Telegram; please send it again."
        ) from None
    return [data]
