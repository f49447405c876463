"""Everything one update says to the user, counted so the guard can prove an answer went out."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from engine.runtime.render import Screen

log = logging.getLogger(__name__)

_SENDERS = {
    "photo": ("send_photo", "photo"),
    "video": ("send_video", "video"),
    "audio": ("send_audio", "audio"),
    "document": ("send_document", "document"),
    "animation": ("send_animation", "animation"),
}


class Outbox:
    def __init__(self, bot: Bot, chat_id: int, callback: CallbackQuery | None = None) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.callback = callback
        self.visible = 0  # messages sent or edited, invoices answered: things the user sees
        self.callback_answered = callback is None

    async def answer_callback(self, notice: str | None = None) -> None:
        """Stop the client's spinner; done first, before any slow work."""
        if self.callback_answered or self.callback is None:
            return
        self.callback_answered = True
        try:
            await self.bot.answer_callback_query(self.callback.id, text=notice[:200] if notice else None)
        except TelegramBadRequest as exc:  # too old: the user still gets the message that follows
            log.warning("callback answer failed: %s", exc.message)

    async def send_text(self, text: str, keyboard: InlineKeyboardMarkup | None = None) -> Message:
        message = await self.bot.send_message(self.chat_id, text, reply_markup=keyboard)
        self.visible += 1
        return message

    async def show(self, screen: Screen, edit: Message | None = None) -> int:
        """Show a screen; edit `edit` in place when both are plain text. Returns the message id."""
        if edit is not None and screen.media is None and edit.text is not None:
            try:
                await self.bot.edit_message_text(
                    screen.text, chat_id=self.chat_id, message_id=edit.message_id, reply_markup=screen.keyboard
                )
                self.visible += 1
                return edit.message_id
            except TelegramBadRequest as exc:
                if "not modified" in exc.message:
                    self.visible += 1  # the user already sees exactly this screen
                    return edit.message_id
                log.info("cannot edit message %s (%s); sending a new one", edit.message_id, exc.message)
        if screen.media is not None:
            kind, source = screen.media
            method, field = _SENDERS[kind]
            message = await getattr(self.bot, method)(
                self.chat_id, **{field: source}, caption=screen.text or None, reply_markup=screen.keyboard
            )
        else:
            message = await self.bot.send_message(self.chat_id, screen.text, reply_markup=screen.keyboard)
        self.visible += 1
        return message.message_id

    def count_answer(self) -> None:
        """An answer that is not a message (e.g. a pre-checkout decision) still counts."""
        self.visible += 1
