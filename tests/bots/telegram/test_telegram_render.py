"""Rendering model Markdown for Telegram and splitting it, checked by Telegram's own HTML rules."""

from __future__ import annotations

import random

import pytest

from bots.telegram_render import markdown_to_html, split_message, utf16_len
from tests.bots.telegram.telegram_helpers import MARKDOWN
from tests.fakes.telegram_html import visible_text


@pytest.mark.parametrize(
    "text",
    [
        MARKDOWN,
        "**a *b** c*",
        "*a **b* c**",
        "__init__ and **__x__** and ***",
        "<b>not html</b> & done",
        "```\nunclosed fence <x>",
        "`code with ** stars`** and [a](https://x.y)**",
    ],
)
def test_rendered_markdown_is_valid_telegram_html(text: str):
    shown = visible_text(markdown_to_html(text))  # raises as Telegram would refuse it
    assert utf16_len(shown) <= utf16_len(text)


def test_markdown_becomes_formatting_not_markers():
    rendered = markdown_to_html(MARKDOWN)
    assert "<b>total</b>" in rendered
    assert "<i>42 €</i>" in rendered
    assert '<pre><code class="language-python">' in rendered
    assert '<a href="https://example.org/a?b=1&amp;c=&quot;2&quot;">the docs</a>' in rendered
    shown = visible_text(rendered)
    assert "3 < 4 && 5 > 2" in shown
    assert "<script>alert(1)</script>" in shown
    assert "snake_case_name" in shown and "2*3*4" in shown


def test_split_keeps_every_character_and_fits_the_limit():
    text = ("word " * 700 + "\n\n") * 3 + "```\n" + "x = 1\n" * 900 + "```\nend 🐈" * 2
    pieces = split_message(text)
    assert len(pieces) > 2
    for piece in pieces:
        assert utf16_len(visible_text(markdown_to_html(piece))) <= 4096
    assert " ".join(pieces).replace("```", "").split() == text.replace("```", "").split()


def test_random_markdown_soup_always_renders_to_valid_html():
    rng = random.Random(1234)
    alphabet = ["*", "**", "_", "__", "~~", "`", "```", "[", "]", "(", ")", "<", ">", "&", "#"]
    alphabet += ["\n", " ", "- ", "a", "bc", "https://x.y", "&amp;", "<b>", "</i>", "🐈", "\x00"]
    for _ in range(2000):
        soup = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        rendered = markdown_to_html(soup)
        try:
            visible_text(rendered)
        except ValueError as error:
            raise AssertionError(f"{soup!r} → {rendered!r}: {error}") from None
