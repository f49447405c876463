"""`flowgram run` and `flowgram migrate`: the bot as a long-running process."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Sequence

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError, TelegramUnauthorizedError

from engine.settings import Settings, SettingsError
from engine.storage import StorageUnavailable, open_storage

log = logging.getLogger("flowgram")


def make_bot(token: str, api_url: str | None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url)) if api_url else AiohttpSession()
    return Bot(token, session=session)


def _fail(message: str, code: int = 2) -> int:
    print(f"flowgram: error: {message}", file=sys.stderr)
    return code


def migrate() -> int:
    import os

    async def apply() -> list[str]:
        storage = open_storage(os.environ.get("DATABASE_URL") or None)
        try:
            return await storage.migrate()
        finally:
            await storage.close()

    try:
        applied = asyncio.run(apply())
    except (StorageUnavailable, ValueError) as exc:
        return _fail(str(exc))
    print("applied: " + ", ".join(applied) if applied else "the database is up to date")
    return 0


def run(paths: Sequence[str]) -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _fail(str(exc))
    from engine.runtime.correlation import configure_logging

    configure_logging(settings.log_level)
    from engine.cli import UsageError, _load_checked, format_findings
    from engine.language import Severity

    try:
        project, registry, findings = _load_checked(paths)
    except UsageError as exc:
        return _fail(str(exc))
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        print(format_findings(errors, "text"), file=sys.stderr)
        return _fail(f"the flows have {len(errors)} error(s); fix them (flowgram check) before running", 1)
    try:
        return asyncio.run(_serve(project, registry, settings))
    except (StorageUnavailable, ValueError) as exc:
        return _fail(str(exc))


async def _serve(project, registry, settings: Settings) -> int:
    from engine.runtime.app import BotRuntime

    storage = open_storage(settings.database_url)
    try:
        applied = await storage.migrate()
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        bot = make_bot(settings.telegram_bot_token, settings.telegram_api_url)
        try:
            me = await bot.get_me()
        except TelegramUnauthorizedError:
            await bot.session.close()
            return _fail("Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized)")
        except TelegramNetworkError as exc:
            await bot.session.close()
            return _fail(f"cannot reach the Telegram Bot API at {settings.telegram_api_url or 'api.telegram.org'}: {exc}")
        log.info("running @%s (%s) on %s storage", me.username, project.bot.name, storage.backend)
        runtime = BotRuntime(project, registry, storage, bot)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await runtime.poll(stop)
        finally:
            await runtime.close()
            await bot.session.close()
        log.info("stopped")
        return 0
    finally:
        await storage.close()
