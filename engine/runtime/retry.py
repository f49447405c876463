"""Wait out Telegram's 429 and send again, so no answer is lost to a rate limit."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType

log = logging.getLogger(__name__)


class RetryAfterMiddleware(BaseRequestMiddleware):
    """aiogram raises TelegramRetryAfter and does not retry; this request middleware does."""

    def __init__(self, max_attempts: int = 5, max_wait: float = 60.0) -> None:
        self.max_attempts = max_attempts
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        attempt = 1
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt >= self.max_attempts or exc.retry_after > self.max_wait or isinstance(method, GetUpdates):
                    raise
                log.warning("Telegram asked to wait %ss before %s (attempt %d)", exc.retry_after,
                            type(method).__name__, attempt)
                await asyncio.sleep(exc.retry_after)
                attempt += 1


def install(bot: Bot, **options: Any) -> Bot:
    bot.session.middleware(RetryAfterMiddleware(**options))
    return bot
