"""Small bots for runtime tests: write a flow to a directory, with test actions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Callable

from engine.actions.builtin import builtin_actions
from engine.actions.context import ActionContext
from engine.actions.registry import ActionRegistry
from engine.actions.spec import ActionResult, ActionSpec, OutcomeKind

MANIFEST = """\
bot: test
start: main.menu
default_locale: en
commands:
  /start: main.menu
  /help: {say: "Help text", to: main.menu}
  /cancel: main.menu
"""

LOCALE = """\
locale: en
messages:
  common:
    hello: "Hello, {user.first_name}"
"""


def write_bot(directory: Path, flow: str, *, manifest: str = MANIFEST, locale: str = LOCALE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bot.yaml").write_text(manifest, encoding="utf-8")
    (directory / "main.yaml").write_text(flow, encoding="utf-8")
    (directory / "en.yaml").write_text(locale, encoding="utf-8")
    return directory


class Gate:
    """Lets a test hold an action mid-flight and release it."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0

    async def handler(self, context: ActionContext, params: dict[str, Any]) -> ActionResult:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        return ActionResult("done")


def action(name: str, handler: Callable[[ActionContext, dict[str, Any]], Awaitable[ActionResult]],
           outcomes: tuple[str, ...] = ("done",), **options: Any) -> ActionSpec:
    return ActionSpec(name=name, handler=handler, outcomes={o: OutcomeKind.SUCCESS for o in outcomes}, **options)


def registry(*specs: ActionSpec) -> ActionRegistry:
    return ActionRegistry([*builtin_actions(), *specs])
