"""Adapters: one module per way in (terminal, Telegram, Slack, web), all over the same core."""
