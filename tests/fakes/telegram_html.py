"""Telegram's parse_mode=HTML rules, strictly: the fake server refuses what Telegram refuses."""

from __future__ import annotations

import html
import re

ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "tg-emoji", "code", "pre", "blockquote",
}  # fmt: skip
_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))*)\s*>"
)
_ATTRIBUTE = re.compile(r"([a-zA-Z-]+)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


class EntityParseError(ValueError):
    """What Telegram answers with 400 "Bad Request: can't parse entities: …"."""


def _check_attributes(name: str, attributes: str, offset: int) -> None:
    found = {key.lower(): value.strip("\"'") for key, value in _ATTRIBUTE.findall(attributes)}
    if name == "a" and not found.get("href"):
        raise EntityParseError(f"Can't find href attribute of tag a at byte offset {offset}")
    if name == "span" and found.get("class") != "tg-spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
    if name == "code" and "class" in found and not found["class"].startswith("language-"):
        raise EntityParseError(f"Unsupported class of tag code at byte offset {offset}")


def visible_text(text: str) -> str:
    """The text a user sees for an HTML-formatted message; raises EntityParseError like Telegram."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "<":
            match = _TAG.match(text, index)
            if match is None:
                raise EntityParseError(f"Unclosed start tag at byte offset {index}")
            closing, name, attributes = match.group(1), match.group(2).lower(), match.group(3)
            if name not in ALLOWED_TAGS:
                raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {index}')
            if closing:
                if not stack or stack[-1][0] != name:
                    raise EntityParseError(
                        f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"'
                        if stack
                        else f"Unexpected end tag at byte offset {index}"
                    )
                stack.pop()
            else:
                _check_attributes(name, attributes, index)
                stack.append((name, index))
            index = match.end()
        elif char == "&":
            match = _ENTITY.match(text, index)
            if match is None:
                raise EntityParseError(f"Unsupported HTML entity at byte offset {index}")
            out.append(html.unescape(match.group(0)))
            index = match.end()
        elif char == ">":
            raise EntityParseError(f'Unexpected ">" at byte offset {index}')
        else:
            out.append(char)
            index += 1
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out)
