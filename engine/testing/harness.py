"""Run a bot's flows on the real runtime against the fake Telegram server.

The same stack as production — aiogram Bot over HTTP, durable polling, the
inbox, per-user ordering, the engine, real storage — with Telegram replaced by
`FakeTelegram` on loopback. Conversation tests, the reliability suite and the
terminal playground all use it::

    async with BotUnderTest(["flows"]) as bot:
        user = bot.user(first_name="Ann")
        await user.send_command("start")
        print((await user.wait_reply()).text)
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Sequence

from engine.actions.registry import ActionRegistry, load_registry
from engine.language import Severity
from engine.language.model import Project
from engine.runtime.app import BotRuntime
from engine.runtime.wallet import Wallet
from engine.storage import Storage, open_storage
from engine.testing.fake_telegram import FakeTelegram
from engine.testing.user_client import UserClient


class FlowsInvalid(Exception):
    """The flows under test do not pass `flowgram check`."""


def load_checked(paths: Sequence[str | os.PathLike[str]], registry: ActionRegistry) -> Project:
    """The project at `paths`, or FlowsInvalid listing every error `flowgram check` would report."""
    from engine.checks import check_paths

    project, findings = check_paths(paths, registry)
    errors = [str(f) for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise FlowsInvalid("the flows have errors:\n" + "\n".join(errors))
    return project


class BotUnderTest:
    def __init__(
        self,
        flows: Sequence[str | os.PathLike[str]] | Project,
        *,
        registry: ActionRegistry | None = None,
        storage: Storage | None = None,
        storage_url: str = "sqlite://:memory:",
        wallet: Wallet | None = None,
        telegram: FakeTelegram | None = None,
        **runtime_options: Any,
    ) -> None:
        self.registry = registry or load_registry()
        self.project = flows if isinstance(flows, Project) else load_checked(flows, self.registry)
        self.telegram = telegram or FakeTelegram()
        self._own_telegram = telegram is None
        self.storage = storage or open_storage(storage_url)
        self._own_storage = storage is None
        self.wallet = wallet
        self.runtime_options = {"polling_timeout": 1, **runtime_options}
        self.runtime: BotRuntime | None = None
        self._stop = asyncio.Event()
        self._polling: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "BotUnderTest":
        if self._own_telegram:
            await self.telegram.start()
        await self.storage.migrate()
        await self.start()
        return self

    async def start(self) -> None:
        """Start (or, after `stop`, restart) the bot process part: bot session, runtime, polling."""
        from engine.serve import make_bot

        bot = make_bot(self.telegram.token, self.telegram.base_url)
        self.runtime = BotRuntime(self.project, self.registry, self.storage, bot, wallet=self.wallet,
                                  **self.runtime_options)
        self._stop = asyncio.Event()
        self._polling = asyncio.create_task(self.runtime.poll(self._stop))

    async def stop(self) -> None:
        """Stop polling and finish handling what was accepted, like a graceful shutdown."""
        if self.runtime is None:
            return
        self._stop.set()
        if self._polling is not None:
            await self._polling
        await self.runtime.close()
        await self.runtime.bot.session.close()
        self.runtime = None

    async def crash(self) -> None:
        """Die like a killed process: stop polling and drop in-flight work without finishing it."""
        if self.runtime is None:
            return
        if self._polling is not None:
            self._polling.cancel()
            await asyncio.gather(self._polling, return_exceptions=True)
        await self.runtime.queue.close()
        await self.runtime.bot.session.close()
        self.runtime = None

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.stop()
        finally:
            if self._own_storage:
                await self.storage.close()
            if self._own_telegram:
                await self.telegram.stop()

    def user(self, user_id: int = 1001, first_name: str = "Test", **options: Any) -> UserClient:
        return self.telegram.user(user_id, first_name, **options)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until Telegram has nothing pending and the runtime has handled everything."""
        await self.telegram.settle(timeout=timeout)
        if self.runtime is not None:
            await asyncio.wait_for(self.runtime.settle(), timeout)
        await self.telegram.settle(timeout=timeout)
