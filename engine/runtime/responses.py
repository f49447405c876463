"""Keep aiogram's response models alive, so they are built once per process and not per call.

aiogram validates every Bot API answer as ``Response[T]`` (``T`` the method's
``__returning__``), a pydantic generic model created on first use. pydantic
caches parametrised generics in a ``WeakValueDictionary`` only: nothing else
holds the class, so the garbage collector frees it and the next answer builds
it again — 1 to 3 ms of CPU each time, which in a busy bot happens for most
answers of the common types (``Response[Message]``, ``Response[bool]``, ...)
and costs more than the rest of the update. A request middleware holds each
``Response[T]`` it has seen, which turns all of that into cache hits.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType

# Response[T] by T, for the life of the process (one entry per return type: a few dozen at most).
_KEPT: dict[Any, Any] = {}


def keep(returning: Any) -> None:
    """Hold ``Response[returning]`` so pydantic's weak cache cannot lose it."""
    try:
        if returning in _KEPT:
            return
    except TypeError:  # an unhashable type annotation: nothing to key it by
        return
    _KEPT[returning] = Response[returning]


class KeepResponseModels(BaseRequestMiddleware):
    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        keep(method.__returning__)
        return await make_request(bot, method)


def install(bot: Bot) -> Bot:
    bot.session.middleware(KeepResponseModels())
    return bot
