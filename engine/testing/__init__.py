"""Test kit for flowgram bots: a strict fake Telegram Bot API and a scripted user.

Shipped in the package so flow authors can test their own flows::

    from engine.testing import FakeTelegram

    async with FakeTelegram() as tg:
        user = tg.user(user_id=42, first_name="Ann")
        ...
"""

from .fake_telegram import (
    Button,
    CallbackAnswer,
    CallbackRecord,
    Charge,
    ChatAction,
    ChatEvent,
    ChatMessage,
    FakeFile,
    FakeTelegram,
    Invoice,
    Media,
    PreCheckoutRecord,
    RecordedCall,
    TelegramErrors,
    format_text,
    utf16_len,
    validate_reply_markup,
)
from .user_client import NoReply, Payment, UserClient

__all__ = [
    "Button",
    "CallbackAnswer",
    "CallbackRecord",
    "Charge",
    "ChatAction",
    "ChatEvent",
    "ChatMessage",
    "FakeFile",
    "FakeTelegram",
    "Invoice",
    "Media",
    "NoReply",
    "Payment",
    "PreCheckoutRecord",
    "RecordedCall",
    "TelegramErrors",
    "UserClient",
    "format_text",
    "utf16_len",
    "validate_reply_markup",
]
