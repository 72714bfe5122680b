"""Texts for the commands every adapter offers (start, help, reset) and the unknown-command hint."""

from __future__ import annotations

HELP_TEXT = (
    "I answer questions about photos.\n"
    '• Send a photo with a question ("what does this invoice say?") — or without one and I\'ll '
    "describe it.\n"
    "• Then keep asking: I remember this conversation, photos included.\n"
    '• Several photos in one message: I look at all of them ("what changed?").\n'
    "• reset — forget this conversation and start fresh.\n"
    "• help — this message."
)

START_TEXT = "Hello! " + HELP_TEXT

RESET_TEXT = "Done — I've forgotten this conversation. Send a photo or a question to start again."


def unknown_command_text(command: str) -> str:
    return f"I don't know the command '{command}'. Try help, or just send a photo and a question."


def command_reply(command: str) -> tuple[str, bool]:
    """The reply text for a command and whether the command resets the conversation."""
    name = command.lower().lstrip("/")
    if name == "reset":
        return RESET_TEXT, True
    if name == "start":
        return START_TEXT, False
    if name == "help":
        return HELP_TEXT, False
    return unknown_command_text(command), False
