"""The one generic aiogram router: every update the bot asks for goes to the flow engine."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message, PreCheckoutQuery, Update

from engine.runtime.engine import FlowEngine
from engine.runtime.events import InputEvent, classify


def build_router(engine: FlowEngine) -> Router:
    router = Router(name="flowgram")

    async def to_engine(_: Message | CallbackQuery | PreCheckoutQuery, event_update: Update, bot: Bot,
                        input_event: InputEvent | None = None) -> None:
        """`input_event`: the runtime passes the event it already classified (feed_update keyword)."""
        event = input_event if input_event is not None else classify(event_update)
        if event is not None:
            await engine.handle(bot, event)

    router.message.register(to_engine)
    router.callback_query.register(to_engine)
    router.pre_checkout_query.register(to_engine)
    return router
