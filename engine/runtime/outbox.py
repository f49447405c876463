"""Everything one update says to the user, counted so the guard can prove an answer went out.

Texts, edits and callback answers go out as lean Bot API methods
(`SendText`, `EditText`, `AnswerCallback`): the same Telegram methods and
parameters as aiogram's `SendMessage`, `EditMessageText` and
`AnswerCallbackQuery`, but the keyboard travels as the JSON the renderer
built once, instead of button models that aiogram dumps and walks field by
field on every call. The bot's defaults (parse mode, link preview, protected
content) are read once per update and sent as aiogram would send them.
"""

from __future__ import annotations

import logging
from typing import Any, Union

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import TelegramMethod
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, LinkPreviewOptions, Message

from engine.runtime.render import Screen

log = logging.getLogger(__name__)

_SENDERS = {
    "photo": ("send_photo", "photo"),
    "video": ("send_video", "video"),
    "audio": ("send_audio", "audio"),
    "document": ("send_document", "document"),
    "animation": ("send_animation", "animation"),
}


class SendText(TelegramMethod[Message]):
    """`sendMessage` with an inline keyboard given as JSON (`reply_markup`)."""

    __returning__ = Message
    __api_method__ = "sendMessage"

    chat_id: int
    text: str
    parse_mode: str | None = None
    link_preview_options: LinkPreviewOptions | None = None
    protect_content: bool | None = None
    reply_markup: str | None = None


class EditText(TelegramMethod[Union[Message, bool]]):
    """`editMessageText` with an inline keyboard given as JSON; without one the keyboard is removed."""

    __returning__ = Union[Message, bool]
    __api_method__ = "editMessageText"

    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None = None
    link_preview_options: LinkPreviewOptions | None = None
    reply_markup: str | None = None


class AnswerCallback(TelegramMethod[bool]):
    """`answerCallbackQuery`: stop the spinner, optionally with a notice."""

    __returning__ = bool
    __api_method__ = "answerCallbackQuery"

    callback_query_id: str
    text: str | None = None


def text_defaults(bot: Bot) -> dict[str, Any]:
    """What aiogram adds to every text and edit from the bot's defaults (usually nothing)."""
    default = bot.default
    found: dict[str, Any] = {}
    if default.parse_mode is not None:
        found["parse_mode"] = default.parse_mode
    if default.link_preview is not None:
        found["link_preview_options"] = default.link_preview
    return found


class Outbox:
    def __init__(self, bot: Bot, chat_id: int, callback: CallbackQuery | None = None) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.callback = callback
        self.visible = 0  # messages sent or edited, invoices answered: things the user sees
        self.callback_answered = callback is None
        self._defaults = text_defaults(bot)
        self._protect = bot.default.protect_content

    async def answer_callback(self, notice: str | None = None) -> None:
        """Stop the client's spinner; done first, before any slow work."""
        if self.callback_answered or self.callback is None:
            return
        self.callback_answered = True
        try:
            await self.bot(AnswerCallback(callback_query_id=self.callback.id, text=notice[:200] if notice else None))
        except TelegramBadRequest as exc:  # too old: the user still gets the message that follows
            log.warning("callback answer failed: %s", exc.message)

    async def send_text(self, text: str, keyboard: str | None = None) -> Message:
        """Send `text`, with `keyboard` (inline keyboard JSON, see render.Screen) under it."""
        message = await self.bot(SendText(chat_id=self.chat_id, text=text, reply_markup=keyboard,
                                          protect_content=self._protect, **self._defaults))
        self.visible += 1
        return message

    async def show(self, screen: Screen, edit: Message | None = None) -> int:
        """Show a screen; edit `edit` in place when both are plain text. Returns the message id."""
        if edit is not None and screen.media is None and edit.text is not None:
            try:
                await self.bot(EditText(chat_id=self.chat_id, message_id=edit.message_id, text=screen.text,
                                        reply_markup=screen.keyboard, **self._defaults))
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
            keyboard = InlineKeyboardMarkup.model_validate_json(screen.keyboard) if screen.keyboard else None
            message = await getattr(self.bot, method)(
                self.chat_id, **{field: source}, caption=screen.text or None, reply_markup=keyboard
            )
        else:
            message = await self.send_text(screen.text, screen.keyboard)
            return message.message_id
        self.visible += 1
        return message.message_id

    def count_answer(self) -> None:
        """An answer that is not a message (e.g. a pre-checkout decision) still counts."""
        self.visible += 1
