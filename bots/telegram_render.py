"""Model Markdown → the HTML subset Telegram accepts, and splitting at Telegram's length limit.

Everything the model writes is escaped first; only a few well-formed Markdown constructs become
tags, and a tag pair is only emitted around text whose own tags are balanced, so the result can
never make Telegram reject a message for bad entities.
"""

from __future__ import annotations

import html
import re

# Telegram counts message length in UTF-16 code units, after entities are parsed.
MESSAGE_LIMIT = 4096
# Room for closing and reopening a code fence when a split falls inside one.
_FENCE_RESERVE = 8

_FENCE = re.compile(r"```([\w+-]*)\n?(.*?)(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?![\w*])")
_UNDERSCORE_ITALIC = re.compile(r"(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*]\s+", re.MULTILINE)
_TAG = re.compile(r"<(/?)(\w+)[^>]*>")
_PLACEHOLDER = "\x00{}\x00"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _balanced(fragment: str) -> bool:
    stack: list[str] = []
    for closing, name in _TAG.findall(fragment):
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


def _wrap(pattern: re.Pattern[str], tag: str, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        inner = next(group for group in match.groups() if group is not None)
        if not _balanced(inner):
            return match.group(0)
        return f"<{tag}>{inner}</{tag}>"

    return pattern.sub(replace, text)


def _inline(text: str) -> str:
    """Render one stretch of text that holds no code (already HTML-escaped)."""
    text = _HEADING.sub(lambda m: f"<b>{m.group(1)}</b>", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    text = _wrap(_BOLD, "b", text)
    text = _wrap(_ITALIC, "i", text)
    text = _wrap(_UNDERSCORE_ITALIC, "i", text)
    return _wrap(_STRIKE, "s", text)


def markdown_to_html(markdown: str) -> str:
    """Telegram-HTML for ``markdown``; text that is not recognised Markdown is shown as written."""
    saved: list[str] = []

    def keep(rendered: str) -> str:
        saved.append(rendered)
        return _PLACEHOLDER.format(len(saved) - 1)

    def fence(match: re.Match[str]) -> str:
        language, body = match.group(1), html.escape(match.group(2).rstrip("\n"), quote=False)
        if language:
            return keep(f'<pre><code class="language-{language}">{body}</code></pre>')
        return keep(f"<pre>{body}</pre>")

    def link(match: re.Match[str]) -> str:
        url = match.group(2).replace('"', "&quot;")  # the text around it is already escaped
        return keep(f'<a href="{url}">{_inline(match.group(1))}</a>')

    text = markdown.replace("\x00", "")
    text = _FENCE.sub(fence, text)
    text = _INLINE_CODE.sub(
        lambda m: keep(f"<code>{html.escape(m.group(1), quote=False)}</code>"), text
    )
    text = html.escape(text, quote=False)
    text = _LINK.sub(link, text)
    text = _inline(text)
    return re.sub("\x00(\\d+)\x00", lambda m: saved[int(m.group(1))], text)


def _cut_point(text: str, limit: int) -> int:
    """Index (in characters) where to end a piece of at most ``limit`` UTF-16 units."""
    units = 0
    hard = len(text)
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            hard = index
            break
    else:
        return len(text)
    window = text[:hard]
    for separator in ("\n\n", "\n", ". ", " "):
        at = window.rfind(separator)
        if at > hard // 2:
            return at + len(separator)
    return hard


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split Markdown text into pieces that each fit one Telegram message once rendered.

    Rendering never adds visible characters, so measuring the source is enough. A piece that ends
    inside a code fence closes it and the next piece reopens it, so each renders on its own.
    """
    pieces: list[str] = []
    rest = text
    budget = limit - _FENCE_RESERVE
    while utf16_len(rest) > limit:
        cut = _cut_point(rest, budget)
        piece, rest = rest[:cut].rstrip(), rest[cut:].lstrip(" \n")
        if piece.count("```") % 2:
            piece += "\n```"
            rest = "```\n" + rest
        pieces.append(piece)
    if rest or not pieces:
        pieces.append(rest)
    return pieces
