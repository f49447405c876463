"""`flowgram play`: chat with the flows in a terminal, on the real runtime.

The same stack as production and tests — the aiogram bot, durable polling,
the engine — with in-memory SQLite and the fake Telegram inside the process.
Lines from stdin are user input, so a script (or a test) can drive it:

    3           press button 3 of the latest keyboard
    /help       send a command
    :photo      send a photo (also :document :video :audio :voice :sticker :location)
    :quit       leave (end of input does too)
    anything    send it as text
"""

from __future__ import annotations

import asyncio
import sys
from typing import Sequence, TextIO

from engine.testing.fake_telegram import ChatMessage
from engine.testing.user_client import UserClient

MEDIA_COMMANDS = (":photo", ":document", ":video", ":audio", ":voice", ":sticker", ":location")
HELP = "Type text, /commands, a button number, :photo :document :video :audio :voice :sticker :location, or :quit."


class Terminal:
    """Shows what the bot did since the last look, and numbers the latest keyboard."""

    def __init__(self, user: UserClient, out: TextIO) -> None:
        self.user = user
        self.out = out
        self.cursor = 0
        self.keyboard: ChatMessage | None = None

    def show_new(self) -> None:
        events = self.user.events
        for event in events[self.cursor:]:
            if event.kind in ("message", "edit") and event.message is not None and event.message.from_bot:
                self._message(event.message, edited=event.kind == "edit")
            elif event.kind == "callback_answer" and event.data is not None and getattr(event.data, "text", None):
                self.out.write(f"  ({event.data.text})\n")
            elif event.kind == "pre_checkout_answer" and event.data is not None:
                self.out.write(f"  (payment check: {event.data})\n")
        self.cursor = len(events)
        self.out.flush()

    def _message(self, message: ChatMessage, *, edited: bool) -> None:
        prefix = "bot (edited)" if edited else "bot"
        media = f"[{message.media.kind}] " if message.media else ""
        self.out.write(f"{prefix}: {media}{message.content or ''}\n")
        if message.buttons:
            number = 0
            for row in message.buttons:
                cells = []
                for button in row:
                    if button.callback_data is not None:
                        number += 1
                        cells.append(f"[{number}] {button.text}")
                    else:
                        cells.append(f"[link] {button.text} <{button.url}>")
                self.out.write("     " + "   ".join(cells) + "\n")
            self.keyboard = message

    def button(self, number: int) -> tuple[ChatMessage, str] | None:
        if self.keyboard is None:
            return None
        pressable = [b for row in self.keyboard.buttons for b in row if b.callback_data is not None]
        if not 1 <= number <= len(pressable):
            return None
        return self.keyboard, pressable[number - 1].callback_data


async def _send(user: UserClient, terminal: Terminal, line: str) -> str | None:
    """Send one line of input; returns a note for the player when the line could not be sent."""
    if line.isdigit():
        target = terminal.button(int(line))
        if target is None:
            return f"there is no button {line} on the latest screen"
        message, data = target
        await user.click_data(data, message=message)
    elif line.startswith("/"):
        await user.send_command(line)
    elif line in MEDIA_COMMANDS:
        kind = line[1:]
        if kind == "location":
            await user.send_location(52.52, 13.405)
        else:
            await getattr(user, f"send_{kind}")()
    else:
        await user.send_text(line)
    return None


async def _play(paths: Sequence[str], language: str, stdin: TextIO, out: TextIO) -> int:
    from engine.actions.registry import load_registry
    from engine.testing.harness import BotUnderTest, FlowsInvalid, load_checked

    import logging

    from engine.runtime.correlation import configure_logging

    configure_logging(logging.WARNING)  # the conversation goes to stdout; problems to stderr with their code
    registry = load_registry()
    try:
        project = load_checked(paths, registry)
    except FlowsInvalid as exc:
        print(exc, file=sys.stderr)
        return 1
    async with BotUnderTest(project, registry=registry, storage_url="sqlite://:memory:") as bot:
        user = bot.user(first_name="Player", language_code=language)
        terminal = Terminal(user, out)
        out.write(f"flowgram play — {project.bot.name if project.bot else 'bot'}. {HELP}\n")
        await user.send_command("start")
        await bot.settle()
        terminal.show_new()
        loop = asyncio.get_running_loop()
        while True:
            if stdin.isatty():
                out.write("> ")
                out.flush()
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            if line in (":quit", ":q"):
                break
            if line in (":help", "?"):
                out.write(HELP + "\n")
                continue
            if not stdin.isatty():
                out.write(f"> {line}\n")
            note = await _send(user, terminal, line)
            if note:
                out.write(f"  ({note})\n")
                continue
            await bot.settle()
            terminal.show_new()
    return 0


def play(paths: Sequence[str], language: str = "en") -> int:
    from engine.language.project import PathError

    try:
        return asyncio.run(_play(paths, language, sys.stdin, sys.stdout))
    except PathError as exc:
        print(f"flowgram: error: {exc}", file=sys.stderr)
        return 2
