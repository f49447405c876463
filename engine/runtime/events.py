"""Turn a Telegram update into one input event of a kind the checker knows.

Classification is total: every message is one of the kinds in
`engine.language.model.INPUT_KINDS`, so every update has a rule that answers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiogram.types import CallbackQuery, Message, PreCheckoutQuery, Update

from engine.language.callback_data import CallbackRef, decode

# The update types the bot asks Telegram for; nothing else can arrive by polling.
ALLOWED_UPDATES = ["message", "callback_query", "pre_checkout_query"]

_MEDIA_FIELDS = ("photo", "video", "audio", "voice", "document")


@dataclass
class InputEvent:
    kind: str
    chat_id: int
    user_id: int
    update_id: int
    user: dict[str, Any] = field(default_factory=dict)  # id, first_name, last_name, username, language
    text: str | None = None
    command: str | None = None  # "/start"
    args: str = ""
    file_id: str | None = None
    caption: str | None = None
    callback: CallbackQuery | None = None
    callback_ref: CallbackRef | None = None
    message: Message | None = None
    pre_checkout: PreCheckoutQuery | None = None

    @property
    def input_values(self) -> dict[str, Any]:
        """The `{input.*}` template variables."""
        return {
            "text": self.text or "",
            "file_id": self.file_id or "",
            "caption": self.caption or "",
            "command": self.command or "",
            "args": self.args,
        }


def _user(source: Any) -> dict[str, Any]:
    return {
        "id": source.id,
        "first_name": source.first_name or "",
        "last_name": source.last_name or "",
        "username": source.username or "",
        "language": (source.language_code or "")[:2],
    }


def classify(update: Update) -> InputEvent | None:
    """The event for `update`, or None when it has no user to answer (nothing can be said)."""
    if update.message is not None and update.message.from_user is not None:
        return classify_message(update.update_id, update.message)
    if update.callback_query is not None:
        query = update.callback_query
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        ref = decode(query.data)
        return InputEvent(
            kind="button" if ref is not None else "malformed_callback",
            chat_id=chat_id,
            user_id=query.from_user.id,
            update_id=update.update_id,
            user=_user(query.from_user),
            callback=query,
            callback_ref=ref,
        )
    if update.pre_checkout_query is not None:
        query = update.pre_checkout_query
        return InputEvent(
            kind="pre_checkout_query",
            chat_id=query.from_user.id,
            user_id=query.from_user.id,
            update_id=update.update_id,
            user=_user(query.from_user),
            pre_checkout=query,
        )
    return None


def classify_message(update_id: int, message: Message) -> InputEvent:
    assert message.from_user is not None
    event = InputEvent(
        kind="other",
        chat_id=message.chat.id,
        user_id=message.from_user.id,
        update_id=update_id,
        user=_user(message.from_user),
        message=message,
        caption=message.caption,
    )
    if message.successful_payment is not None:
        event.kind = "successful_payment"
    elif message.text is not None:
        event.text = message.text
        if message.text.startswith("/") and len(message.text) > 1:
            head, *rest = message.text.split(maxsplit=1)  # any whitespace ends a command: "/start\nref"
            name = head.split("@", 1)[0].lower()
            event.kind, event.command, event.args = "command", name, rest[0].strip() if rest else ""
        else:
            event.kind = "text"
    elif message.animation is not None:
        event.kind = "other"  # a GIF also carries `document`; it is not a document upload
    elif message.sticker is not None:
        event.kind = "sticker"
    else:
        for kind in _MEDIA_FIELDS:
            value = getattr(message, kind)
            if value:
                event.kind = kind
                event.file_id = value[-1].file_id if kind == "photo" else value.file_id
                break
    return event
