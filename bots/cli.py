"""The ``visionbot`` command: ``run`` the configured adapters, or ``chat`` in the terminal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from core.config import ConfigError, Settings, load_settings
from core.engine import ModelLoadError

log = logging.getLogger("visionbot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visionbot", description="Ask a local vision-language model about your photos."
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings file (default: ./config.toml if it exists)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start every configured adapter (Telegram, Slack, web)")
    chat = commands.add_parser(
        "chat", help="ask about a photo in the terminal (interactive without a question)"
    )
    chat.add_argument(
        "question",
        nargs="?",
        default=None,
        help="the question; leave out for an interactive session",
    )
    chat.add_argument(
        "--image",
        "-i",
        type=Path,
        action="append",
        default=[],
        help="an image file to ask about (repeat for several)",
    )
    chat.add_argument(
        "--session",
        default="default",
        help="terminal conversation to continue (default: 'default')",
    )
    chat.add_argument("--new", action="store_true", help="forget the session's history first")
    return parser


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


async def _chat(settings: Settings, args: argparse.Namespace) -> int:
    from bots.runner import build_service
    from bots.terminal import TerminalChat

    missing = [str(p) for p in args.image if not p.is_file()]
    if missing:
        print(f"visionbot: no such image file: {', '.join(missing)}", file=sys.stderr)
        return 2
    service = build_service(settings)
    try:
        terminal = TerminalChat(service, session=args.session)
        if args.new:
            await service.reset(terminal.chat)
        if args.question is None and not args.image:
            await terminal.interactive()
            return 0
        answer = await terminal.ask(args.question or "", list(args.image))
        return 0 if answer is not None else 1
    finally:
        service.store.close()


async def _run(settings: Settings) -> int:
    from bots.runner import NOTHING_CONFIGURED, any_adapter_configured, build_service, serve

    if not any_adapter_configured(settings):
        print(NOTHING_CONFIGURED, file=sys.stderr)
        return 2
    service = build_service(settings)
    await serve(settings, service)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"visionbot: {error}", file=sys.stderr)
        return 2
    _setup_logging(settings)
    try:
        if args.command == "chat":
            return asyncio.run(_chat(settings, args))
        return asyncio.run(_run(settings))
    except ModelLoadError as error:
        print(f"visionbot: {error}", file=sys.stderr)
        return 3
    except ConfigError as error:  # an adapter found its settings unusable (e.g. a refused token)
        print(f"visionbot: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
