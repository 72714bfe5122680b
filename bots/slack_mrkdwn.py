"""Slack text in both directions: model Markdown → safe mrkdwn, user mrkdwn → plain question text.

Everything the model writes is escaped (``&``, ``<``, ``>``), so its output can never form a Slack
control sequence: no ``<!channel>``/``<!here>`` broadcast, no ``<@U…>`` ping, no disguised link.
The only ``<…>`` this module emits are links it builds itself from Markdown ``[text](http…)``.
"""

from __future__ import annotations

import re

# Slack accepts up to 40,000 characters of `text` but advises keeping messages under 4,000; longer
# ones get truncated or collapsed by clients. 3,500 (measured after escaping, which lengthens the
# text) leaves room for closing a code block cut in two and for the streaming mark, and keeps each
# chat.update small.
MESSAGE_LIMIT = 3500

_ZERO_WIDTH_SPACE = "\u200b"
_BROADCAST_WORDS = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_FENCE = re.compile(r"```")
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")
_BOLD = re.compile(r"(\*\*|(?<!\w)__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)
_QUOTE = re.compile(r"^&gt; ", re.MULTILINE)


def escape(text: str) -> str:
    """Slack's three control characters, escaped so they are shown literally."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # Bots' messages are posted with parse=none, but a zero-width space also keeps a plain
    # "@channel" from ever being linked by a client or a later re-post with link_names.
    return _BROADCAST_WORDS.sub(lambda m: "@" + _ZERO_WIDTH_SPACE + m.group(1), text)


def _inline(text: str) -> str:
    """Convert one stretch of prose (no code) from Markdown to mrkdwn, escaping it first."""
    links: list[str] = []

    def keep_link(match: re.Match[str]) -> str:
        label, url = escape(match.group(1)), escape(match.group(2))
        links.append(f"<{url}|{label.replace('|', '/')}>")
        return f"\x00{len(links) - 1}\x00"

    text = _LINK.sub(keep_link, text)
    text = escape(text)
    text = _HEADING.sub(lambda m: f"\x01{m.group(1)}\x01", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    # A ">" alone cannot start a control sequence (only "<" can), so quotes may stay quotes.
    text = _QUOTE.sub("> ", text)
    text = _BOLD.sub(lambda m: f"\x01{m.group(2)}\x01", text)
    text = _ITALIC_STAR.sub(lambda m: f"_{m.group(1)}_", text)
    text = _STRIKE.sub(lambda m: f"~{m.group(1)}~", text)
    # Bold is parked on \x01 so the single-asterisk italic rule cannot eat it.
    text = text.replace("\x01", "*")
    return re.sub("\x00(\\d+)\x00", lambda m: links[int(m.group(1))], text)


def _prose_and_code(text: str) -> str:
    out: list[str] = []
    position = 0
    for match in _INLINE_CODE.finditer(text):
        out.append(_inline(text[position : match.start()]))
        out.append(escape(match.group(0)))
        position = match.end()
    out.append(_inline(text[position:]))
    return "".join(out)


def to_mrkdwn(markdown: str) -> str:
    """Model Markdown as Slack mrkdwn; code blocks and inline code are kept verbatim but escaped."""
    parts = _FENCE.split(markdown)
    out: list[str] = []
    for index, part in enumerate(parts):
        if index % 2 == 1:
            # Slack ignores a language tag after the fence and would show it as code text.
            body = re.sub(r"^[\w+-]*\n", "", part, count=1)
            out.append("```" + escape(body) + "```")
        else:
            out.append(_prose_and_code(part))
    if len(parts) % 2 == 0:  # an unclosed fence (e.g. while streaming): close it
        out.append("```")
    return "".join(out)


def _cut_point(text: str, limit: int) -> int:
    """Where to cut ``text`` to at most ``limit`` characters: a paragraph, line or word break."""
    window = text[:limit]
    for separator in ("\n\n", "\n", " "):
        cut = window.rfind(separator)
        if cut > limit // 2:
            return cut
    return limit


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split mrkdwn into messages of at most ``limit`` characters, never inside an escape.

    A code block cut in two is closed at the end of one part and reopened in the next.
    """
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = _cut_point(rest, limit - 3)  # room to close a code block
        amp = rest.rfind("&", max(0, cut - 5), cut)
        if amp != -1 and ";" not in rest[amp:cut]:
            cut = amp  # "&amp;" must not be torn apart
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if head.count("```") % 2 == 1:
            head += "```"
            rest = "```" + rest
        parts.append(head)
    if rest:
        parts.append(rest)
    return parts


_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL_MENTION = re.compile(r"<#(C[A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!([a-z]+)(?:\^[^|>]*)?(?:\|([^>]*))?>")
_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")


def question_text(text: str, bot_user_id: str | None) -> str:
    """A user's Slack message as plain text for the model: the bot's mention removed."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>:?", " ", text)
    text = _USER_MENTION.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _CHANNEL_MENTION.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _SPECIAL.sub(lambda m: "@" + (m.group(2) or m.group(1)).lstrip("@"), text)

    def link(match: re.Match[str]) -> str:
        url, label = match.group(1), match.group(2)
        return f"{label} ({url})" if label and label != url else url

    text = _SLACK_LINK.sub(link, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]+", " ", text).strip()
