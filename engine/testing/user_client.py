"""The user's side of a conversation with a bot running against :class:`FakeTelegram`.

A :class:`UserClient` plays one Telegram user in their private chat (chat id =
user id): it sends messages, commands, media, button clicks and payments as
real updates, and reads back what the bot showed.  Reading is cursor based:
``wait_reply`` returns bot messages one by one in the order they were sent, so
an unexpected extra message is never silently skipped.

Create one with :meth:`FakeTelegram.user`::

    user = tg.user(user_id=42, first_name="Ann")
    await user.send_command("start")
    menu = await user.wait_reply()
    await user.click("Buy")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .fake_telegram import (
    CallbackAnswer,
    CallbackRecord,
    Charge,
    ChatEvent,
    ChatMessage,
    FakeFile,
    Media,
    PreCheckoutRecord,
    utf16_len,
)

if TYPE_CHECKING:
    from .fake_telegram import FakeTelegram, _Chat

__all__ = ["NoReply", "Payment", "UserClient"]


class NoReply(AssertionError):
    """The bot did not show what the test waited for; the message includes the transcript."""


@dataclass(frozen=True)
class Payment:
    """Outcome of :meth:`UserClient.pay`.

    ``status`` is "paid" (bot answered ok; a successful_payment message was sent),
    "declined" (bot answered ok=False with ``error_message``) or "timeout" (the bot
    did not answer the pre_checkout_query in time, so Telegram failed the payment).
    """

    status: Literal["paid", "declined", "timeout"]
    pre_checkout: PreCheckoutRecord
    charge: Charge | None = None
    message: ChatMessage | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "paid"

    @property
    def charge_id(self) -> str | None:
        return self.charge.charge_id if self.charge else None


MessageRef = ChatMessage | int | None


class UserClient:
    """One Telegram user chatting privately with the bot."""

    def __init__(self, server: FakeTelegram, chat: _Chat) -> None:
        self.server = server
        self._chat = chat
        self._cursor = len(chat.events)

    # --------------------------------------------------------------- identity

    @property
    def user_id(self) -> int:
        return int(self._chat.user["id"])

    @property
    def chat_id(self) -> int:
        return self._chat.chat_id

    @property
    def user(self) -> dict[str, Any]:
        """The Bot API ``User`` object sent with this user's updates."""
        return self._chat.user

    @property
    def blocked(self) -> bool:
        return self._chat.blocked

    def __repr__(self) -> str:
        return f"<UserClient {self.user_id} {self._chat.user.get('first_name')!r}>"

    # ---------------------------------------------------------------- sending

    async def send_text(self, text: str, *, reply_to: MessageRef = None) -> ChatMessage:
        """Send a plain text message."""
        fields: dict[str, Any] = {"text": text}
        if (reply_id := self._message_id(reply_to)) is not None:
            fields["reply_to_message_id"] = reply_id
        return self.server._user_message(self._chat, **fields)

    async def send_command(
        self, command: str, payload: str | None = None
    ) -> ChatMessage:
        """Send ``/command [payload]``; ``command`` may include the slash and the payload.

        ``send_command("start", "ref42")`` and ``send_command("/start ref42")`` are equal.
        The ``bot_command`` entity is attached like Telegram clients do.
        """
        command = command if command.startswith("/") else f"/{command}"
        text = command if payload is None else f"{command} {payload}"
        name = text.split(maxsplit=1)[0]
        entity = {"type": "bot_command", "offset": 0, "length": utf16_len(name)}
        return self.server._user_message(self._chat, text=text, entities=[entity])

    async def send_photo(
        self,
        data: bytes | None = None,
        *,
        size: int = 40_000,
        caption: str | None = None,
        width: int = 1280,
        height: int = 720,
    ) -> ChatMessage:
        """Send a photo; the file is registered so the bot can getFile and download it."""
        f = self.server.add_file(
            "photo",
            data,
            size=None if data is not None else size,
            width=width,
            height=height,
        )
        return self._send_media("photo", f, caption)

    async def send_document(
        self,
        data: bytes | None = None,
        *,
        file_name: str = "document.pdf",
        mime_type: str | None = None,
        size: int = 10_000,
        caption: str | None = None,
    ) -> ChatMessage:
        f = self.server.add_file(
            "document",
            data,
            size=None if data is not None else size,
            file_name=file_name,
            mime_type=mime_type,
        )
        return self._send_media("document", f, caption)

    async def send_video(
        self,
        data: bytes | None = None,
        *,
        size: int = 500_000,
        duration: int = 5,
        width: int = 1280,
        height: int = 720,
        file_name: str = "video.mp4",
        caption: str | None = None,
    ) -> ChatMessage:
        f = self.server.add_file(
            "video",
            data,
            size=None if data is not None else size,
            duration=duration,
            width=width,
            height=height,
            file_name=file_name,
        )
        return self._send_media("video", f, caption)

    async def send_audio(
        self,
        data: bytes | None = None,
        *,
        size: int = 200_000,
        duration: int = 30,
        file_name: str = "audio.mp3",
        caption: str | None = None,
    ) -> ChatMessage:
        f = self.server.add_file(
            "audio",
            data,
            size=None if data is not None else size,
            duration=duration,
            file_name=file_name,
        )
        return self._send_media("audio", f, caption)

    async def send_voice(
        self, data: bytes | None = None, *, size: int = 20_000, duration: int = 3
    ) -> ChatMessage:
        f = self.server.add_file(
            "voice", data, size=None if data is not None else size, duration=duration
        )
        return self._send_media("voice", f, None)

    async def send_sticker(
        self, emoji: str = "👍", *, data: bytes | None = None, size: int = 15_000
    ) -> ChatMessage:
        f = self.server.add_file(
            "sticker",
            data,
            size=None if data is not None else size,
            width=512,
            height=512,
        )
        media = Media("sticker", f, {"emoji": emoji})
        return self.server._user_message(self._chat, media=media)

    async def send_contact(
        self, phone_number: str, *, first_name: str | None = None
    ) -> ChatMessage:
        """Share a contact; with defaults it is the user's own (as a "share phone" button does)."""
        contact = {
            "phone_number": phone_number,
            "first_name": first_name or self._chat.user["first_name"],
            "user_id": self.user_id,
        }
        return self.server._user_message(self._chat, extra={"contact": contact})

    async def send_location(self, latitude: float, longitude: float) -> ChatMessage:
        return self.server._user_message(
            self._chat,
            extra={"location": {"latitude": latitude, "longitude": longitude}},
        )

    async def edit(self, message: ChatMessage, text: str) -> ChatMessage:
        """Edit one of the user's own text messages (an ``edited_message`` update)."""
        if message.from_bot or message.chat_id != self.chat_id:
            raise ValueError("a user can only edit their own messages")
        self.server._apply_edit(self._chat, message, text=text)
        self.server._queue("edited_message", message.to_api())
        return message

    async def send_raw(self, update: dict[str, Any]) -> int:
        """Queue an arbitrary update dict; returns its update_id (see :meth:`FakeTelegram.inject_update`)."""
        return self.server.inject_update(update)

    def _send_media(self, kind: str, f: FakeFile, caption: str | None) -> ChatMessage:
        fields: dict[str, Any] = {"media": Media(kind, f)}
        if caption is not None:
            fields["caption"] = caption
        return self.server._user_message(self._chat, **fields)

    # -------------------------------------------------------------- buttons

    async def click(self, text: str, *, message: MessageRef = None) -> CallbackRecord:
        """Press the inline button labelled exactly ``text``.

        Looks at ``message`` if given, else at the latest bot message (not deleted)
        that has such a button.  Raises ``LookupError`` listing the visible buttons
        if none matches, ``ValueError`` for URL/pay buttons (use :meth:`pay` for those).
        """
        target = self._resolve(message) if message is not None else None
        candidates = [target] if target is not None else reversed(self._chat.order)
        for candidate in candidates:
            if (
                candidate.from_bot
                and not candidate.deleted
                and (button := candidate.button(text))
            ):
                if button.kind != "callback_data":
                    raise ValueError(
                        f"button {text!r} is a {button.kind} button, not a callback button"
                    )
                return self.server._callback_query(
                    self._chat, button.callback_data, candidate, None
                )
        visible = [
            b.text
            for m in self._chat.order
            if m.from_bot and not m.deleted
            for row in m.buttons
            for b in row
        ]
        raise LookupError(
            f"no button {text!r}; visible buttons: {visible}\n{self.format_transcript()}"
        )

    async def click_data(
        self, data: str | None, *, message: MessageRef = None
    ) -> CallbackRecord:
        """Fire a callback query with raw ``data`` (stale/forged/malformed button tests).

        ``message`` defaults to the latest bot message; an unknown message id is sent
        as an InaccessibleMessage, like Telegram does for deleted messages.
        """
        if isinstance(message, int):
            target = self._chat.messages.get(message)
            return self.server._callback_query(self._chat, data, target, message)
        target = self._resolve(message) if message is not None else self.last_message
        return self.server._callback_query(
            self._chat, data, target, None if target else 0
        )

    async def wait_callback_answer(
        self, query: CallbackRecord, timeout: float = 5.0
    ) -> CallbackAnswer:
        """Wait until the bot answered ``query`` (the spinner stops)."""
        try:
            return await self.server.wait_until(lambda: query.answer, timeout)
        except TimeoutError:
            raise NoReply(
                f"callback query {query.data!r} was not answered within {timeout:g}s\n{self.format_transcript()}"
            ) from None

    # -------------------------------------------------------------- payments

    async def pay(
        self, message: MessageRef = None, *, timeout: float | None = None
    ) -> Payment:
        """Pay an invoice the bot sent (the latest one by default).

        Sends a pre_checkout_query and waits for ``answerPreCheckoutQuery`` up to the
        server's ``pre_checkout_timeout`` (or ``timeout``).  On ok, records a charge and
        sends the ``successful_payment`` message with its ``telegram_payment_charge_id``.
        """
        invoice_message = (
            self._resolve(message)
            if message is not None
            else self._latest(lambda m: m.invoice)
        )
        if invoice_message is None or invoice_message.invoice is None:
            raise LookupError(f"no invoice to pay\n{self.format_transcript()}")
        invoice = invoice_message.invoice
        record = self.server._pre_checkout(self._chat, invoice)
        limit = self.server.pre_checkout_timeout if timeout is None else timeout
        try:
            await self.server.wait_until(lambda: record.ok is not None, limit)
        except TimeoutError:
            record.expired = True
            return Payment("timeout", record)
        if not record.ok:
            return Payment("declined", record, error_message=record.error_message)
        charge, paid = self.server._complete_payment(self._chat, invoice)
        return Payment("paid", record, charge=charge, message=paid)

    # --------------------------------------------------------------- blocking

    async def block(self) -> None:
        """Block the bot: sends my_chat_member(kicked); sends to this chat now get 403."""
        self.server._set_blocked(self._chat, True)

    async def unblock(self) -> None:
        self.server._set_blocked(self._chat, False)

    # ---------------------------------------------------------------- reading

    @property
    def transcript(self) -> list[ChatMessage]:
        """Every message of the chat, both sides, in order (edits applied in place)."""
        return list(self._chat.order)

    @property
    def bot_messages(self) -> list[ChatMessage]:
        """The bot's messages that are still visible (not deleted)."""
        return [m for m in self._chat.order if m.from_bot and not m.deleted]

    @property
    def last_message(self) -> ChatMessage | None:
        """The bot's latest visible message, regardless of what was already read."""
        return self._latest(lambda m: True)

    @property
    def events(self) -> list[ChatEvent]:
        """The full event log of this chat (messages, edits, answers, actions, payments)."""
        return list(self._chat.events)

    @property
    def chat_actions(self) -> list[str]:
        return [e.data for e in self._chat.events if e.kind == "chat_action"]

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        return [e.data.answer for e in self._chat.events if e.kind == "callback_answer"]

    async def wait_reply(self, timeout: float = 5.0) -> ChatMessage:
        """The next bot message not read yet (FIFO over new messages; edits are skipped)."""
        return await self._wait(
            lambda e: e.kind == "message", lambda m: True, timeout, "a reply"
        )

    async def wait_replies(self, count: int, timeout: float = 5.0) -> list[ChatMessage]:
        """The next ``count`` bot messages; the timeout covers all of them."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        result = []
        for _ in range(count):
            result.append(await self.wait_reply(max(0.0, end - loop.time())))
        return result

    async def wait_for(
        self,
        predicate: Callable[[ChatMessage], Any],
        timeout: float = 5.0,
        *,
        edits: bool = True,
    ) -> ChatMessage:
        """The first unread bot message (or edit, unless ``edits=False``) matching ``predicate``.

        Unread events before the match are consumed too.
        """
        kinds = ("message", "edit") if edits else ("message",)
        return await self._wait(
            lambda e: e.kind in kinds, predicate, timeout, "a matching message"
        )

    async def wait_edit(
        self, message: ChatMessage | None = None, timeout: float = 5.0
    ) -> ChatMessage:
        """The next unread edit (of ``message`` if given)."""
        wanted = message.message_id if message is not None else None
        return await self._wait(
            lambda e: e.kind == "edit",
            lambda m: wanted is None or m.message_id == wanted,
            timeout,
            "an edit",
        )

    def unread(self) -> list[ChatMessage]:
        """Bot messages sent since the last read, marking them read."""
        fresh = [
            e.message
            for e in self._chat.events[self._cursor :]
            if e.kind == "message" and e.message is not None and e.message.from_bot
        ]
        self._cursor = len(self._chat.events)
        return fresh

    async def expect_silence(self, quiet: float = 0.1, timeout: float = 5.0) -> None:
        """Settle, then assert the bot sent nothing new (useful for "ignores garbage" tests)."""
        await self.settle(quiet=quiet, timeout=timeout)
        fresh = self.unread()
        if fresh:
            raise AssertionError(f"expected no reply, got: {[str(m) for m in fresh]}")

    async def settle(self, quiet: float = 0.05, timeout: float = 5.0) -> None:
        """Wait until the bot is idle (see :meth:`FakeTelegram.settle`)."""
        await self.server.settle(quiet=quiet, timeout=timeout)

    def format_transcript(self) -> str:
        """Human-readable transcript for assertion messages."""
        lines = [f"transcript of chat {self.chat_id}:"]
        lines += [f"  {m}" for m in self._chat.order] or ["  (empty)"]
        return "\n".join(lines)

    # ---------------------------------------------------------------- helpers

    async def _wait(
        self,
        event_filter: Callable[[ChatEvent], bool],
        predicate: Callable[[ChatMessage], Any],
        timeout: float,
        what: str,
    ) -> ChatMessage:
        events = self._chat.events

        def scan() -> ChatMessage | None:
            for index in range(self._cursor, len(events)):
                event = events[index]
                message = event.message
                if (
                    message is not None
                    and message.from_bot
                    and event_filter(event)
                    and predicate(message)
                ):
                    self._cursor = index + 1
                    return message
            return None

        try:
            return await self.server.wait_until(scan, timeout)
        except TimeoutError:
            raise NoReply(
                f"bot did not send {what} within {timeout:g}s\n{self.format_transcript()}"
            ) from None

    def _latest(self, predicate: Callable[[ChatMessage], Any]) -> ChatMessage | None:
        for message in reversed(self._chat.order):
            if message.from_bot and not message.deleted and predicate(message):
                return message
        return None

    def _resolve(self, message: MessageRef) -> ChatMessage | None:
        if message is None:
            return None
        if isinstance(message, ChatMessage):
            return message
        found = self._chat.messages.get(message)
        if found is None:
            raise LookupError(f"no message {message} in chat {self.chat_id}")
        return found

    def _message_id(self, message: MessageRef) -> int | None:
        if message is None:
            return None
        return message.message_id if isinstance(message, ChatMessage) else int(message)
