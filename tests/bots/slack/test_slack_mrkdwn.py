"""Markdown → mrkdwn conversion, message splitting and question clean-up."""

from __future__ import annotations

from bots.slack_events import keyword_command
from bots.slack_mrkdwn import MESSAGE_LIMIT, escape, question_text, split_message, to_mrkdwn
from tests.fakes.slack_api import PING


def test_control_characters_are_escaped_so_nothing_pings() -> None:
    text = "Hi <!channel> <!here> <!subteam^S1|@team> <@U123> <#C1> <https://evil.example|ok>"
    out = to_mrkdwn(text)
    assert PING.findall(out) == []
    assert "<" not in out and out.count("&lt;") == 6


def test_plain_broadcast_words_are_defused() -> None:
    assert "@channel" not in escape("hello @channel and @HERE")


def test_markdown_formatting_becomes_mrkdwn() -> None:
    markdown = "# Result\n**Bold**, *italic*, ~~gone~~ and `code <b>`\n- one\n* two\n> quoted"
    assert to_mrkdwn(markdown) == (
        "*Result*\n*Bold*, _italic_, ~gone~ and `code &lt;b&gt;`\n• one\n• two\n> quoted"
    )


def test_code_blocks_are_kept_verbatim_but_escaped() -> None:
    markdown = "Run:\n```python\nif a < b and **kwargs:\n    pass\n```\ndone"
    assert to_mrkdwn(markdown) == "Run:\n```if a &lt; b and **kwargs:\n    pass\n```\ndone"
    assert to_mrkdwn("```\nunfinished").endswith("```")  # while streaming


def test_only_web_links_become_slack_links() -> None:
    out = to_mrkdwn("[docs](https://example.com/a?b=1&c=2) and [x](javascript:alert(1))")
    assert out.startswith("<https://example.com/a?b=1&amp;c=2|docs>")
    assert "javascript" in out and "<javascript" not in out


def test_split_respects_the_limit_paragraphs_and_code_blocks() -> None:
    text = "\n\n".join(f"Paragraph {n}. " + "word " * 150 for n in range(12))
    parts = split_message(text)
    assert len(parts) > 1 and all(len(p) <= MESSAGE_LIMIT for p in parts)
    assert all(p.startswith("Paragraph") for p in parts)  # cut at paragraph breaks
    code = "```" + "x = 1\n" * 1000 + "```"
    for part in split_message(code):
        assert part.startswith("```") and part.endswith("```") and len(part) <= MESSAGE_LIMIT


def test_split_never_tears_an_escape() -> None:
    for part in split_message("a &amp; b " * 40, limit=50):
        assert part.count("&") == part.count("&amp;")


def test_question_text_drops_the_bot_mention_and_decodes_slack_markup() -> None:
    raw = "<@UBOT> what is <@U123|bob> holding in <#C1|general>? <https://a.b|site> &lt;ok&gt;"
    assert question_text(raw, "UBOT") == "what is @bob holding in #general? site (https://a.b) <ok>"
    assert question_text("<@UBOT>", "UBOT") == ""


def test_keywords_are_whole_messages_only() -> None:
    assert keyword_command("reset") == "reset"
    assert keyword_command("  Reset! ") == "reset"
    assert keyword_command("help?") == "help"
    assert keyword_command("reset the picture colours") is None
