"""A strict, in-process fake of the Telegram Bot API.

Why a fake server and not mocks: the engine talks to Telegram through a real
aiogram ``Bot``; the bugs that matter (silent bots, lost updates, 429 storms,
callback spinners, double-credited payments) live in the HTTP conversation,
not in Python call signatures.  ``FakeTelegram`` serves the real wire protocol
on ``127.0.0.1`` and is *strict*: whatever Telegram rejects, it rejects with the
same HTTP status and the same ``description`` string, so a flow that passes
here does not first fail in production.

Typical use::

    async with FakeTelegram() as tg:
        bot = Bot(tg.token, session=AiohttpSession(
            api=TelegramAPIServer.from_base(tg.base_url)))
        user = tg.user(user_id=42, first_name="Ann")
        await user.send_command("start")
        reply = await user.wait_reply()

Everything the bot does is recorded per chat (see :class:`ChatMessage`,
:class:`ChatEvent`) and every API call is counted in :attr:`FakeTelegram.calls`.

The server never uses sleeps for synchronisation: every state change pokes one
:class:`_Signal`, and waiters (long polls, ``wait_reply``, ``settle``) re-check
their predicate when poked.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import logging
import math
import mimetypes
import re
import secrets
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Self, TypeVar

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from .user_client import UserClient

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
    "PreCheckoutRecord",
    "RecordedCall",
    "TelegramErrors",
    "format_text",
    "utf16_len",
    "validate_reply_markup",
]

log = logging.getLogger("flowgram.fake_telegram")

T = TypeVar("T")


# --------------------------------------------------------------------------- #
# Error descriptions                                                          #
# --------------------------------------------------------------------------- #


class TelegramErrors:
    """The exact ``description`` strings the fake answers with.

    Most are Telegram's own, verbatim.  Where Telegram is undocumented or
    inconsistent (keyboard size, invoice field lengths) the fake uses the
    closest real MTProto error name so tests can still match on a stable string.
    """

    UNAUTHORIZED = "Unauthorized"
    NOT_FOUND = "Not Found"
    CONFLICT_GET_UPDATES = (
        "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running"
    )
    CONFLICT_WEBHOOK = (
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first"
    )
    CHAT_NOT_FOUND = "Bad Request: chat not found"
    BOT_BLOCKED = "Forbidden: bot was blocked by the user"
    CANT_INITIATE = "Forbidden: bot can't initiate conversation with a user"
    MESSAGE_TEXT_EMPTY = "Bad Request: message text is empty"
    MESSAGE_TOO_LONG = "Bad Request: message is too long"
    EDIT_TOO_LONG = "Bad Request: MESSAGE_TOO_LONG"
    CAPTION_TOO_LONG = "Bad Request: message caption is too long"
    NOT_MODIFIED = (
        "Bad Request: message is not modified: specified new message content and "
        "reply markup are exactly the same as a current content and reply markup of the message"
    )
    MESSAGE_TO_EDIT_NOT_FOUND = "Bad Request: message to edit not found"
    MESSAGE_TO_DELETE_NOT_FOUND = "Bad Request: message to delete not found"
    MESSAGE_CANT_BE_EDITED = "Bad Request: message can't be edited"
    NO_TEXT_TO_EDIT = "Bad Request: there is no text in the message to edit"
    NO_CAPTION_TO_EDIT = "Bad Request: there is no caption in the message to edit"
    REPLY_NOT_FOUND = "Bad Request: message to be replied not found"
    QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
    CALLBACK_ANSWER_TOO_LONG = "Bad Request: MESSAGE_TOO_LONG"
    BUTTON_DATA_INVALID = "Bad Request: BUTTON_DATA_INVALID"
    BUTTON_URL_INVALID = "Bad Request: BUTTON_URL_INVALID"
    BUTTON_TEXT_INVALID = "Bad Request: BUTTON_TEXT_INVALID"
    BUTTON_TYPE_INVALID = "Bad Request: BUTTON_TYPE_INVALID"
    TEXT_BUTTONS_UNALLOWED = (
        "Bad Request: can't parse inline keyboard button: "
        "Text buttons are unallowed in the inline keyboard"
    )
    KEYBOARD_TOO_LONG = "Bad Request: REPLY_MARKUP_TOO_LONG"
    BAD_MARKUP = "Bad Request: can't parse reply keyboard markup JSON object"
    INLINE_KEYBOARD_EXPECTED = "Bad Request: inline keyboard expected"
    CANT_PARSE_ENTITIES = "Bad Request: can't parse entities: {}"
    WRONG_FILE_ID = "Bad Request: wrong file identifier/HTTP URL specified"
    FILE_TYPE_MISMATCH = "Bad Request: type of file mismatch"
    INVALID_FILE_ID = "Bad Request: invalid file_id"
    FILE_TOO_BIG = "Bad Request: file is too big"
    FILE_EMPTY = "Bad Request: file must be non-empty"
    ENTITY_TOO_LARGE = "Request Entity Too Large"
    WRONG_CHAT_ACTION = "Bad Request: wrong parameter action in request"
    PAYMENT_PROVIDER_INVALID = "Bad Request: PAYMENT_PROVIDER_INVALID"
    CURRENCY_INVALID = "Bad Request: CURRENCY_INVALID"
    STARS_INVOICE_INVALID = "Bad Request: STARS_INVOICE_INVALID"
    TOTAL_AMOUNT_INVALID = "Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID"
    INVOICE_TITLE_INVALID = "Bad Request: INVOICE_TITLE_INVALID"
    INVOICE_DESCRIPTION_INVALID = "Bad Request: INVOICE_DESCRIPTION_INVALID"
    INVOICE_PAYLOAD_INVALID = "Bad Request: INVOICE_PAYLOAD_INVALID"
    PRE_CHECKOUT_ERROR_REQUIRED = "Bad Request: ERROR_MESSAGE_EMPTY"
    CHARGE_NOT_FOUND = "Bad Request: CHARGE_NOT_FOUND"
    CHARGE_ALREADY_REFUNDED = "Bad Request: CHARGE_ALREADY_REFUNDED"
    BOT_COMMAND_INVALID = "Bad Request: BOT_COMMAND_INVALID"
    BOT_COMMAND_DESCRIPTION_INVALID = "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID"
    TOO_MANY_COMMANDS = "Bad Request: too many commands"
    WEBHOOK_HTTPS_REQUIRED = (
        "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
    )
    WEBHOOK_BAD_URL = (
        "Bad Request: bad webhook: Failed to resolve host: Name or service not known"
    )
    WEBHOOK_SECRET_INVALID = "Bad Request: secret token contains unallowed characters"
    TOO_MANY_REQUESTS = "Too Many Requests: retry after {}"
    INTERNAL = "Internal Server Error"


E = TelegramErrors


class ApiError(Exception):
    """Raised inside method handlers; becomes a Bot API error response."""

    def __init__(
        self, code: int, description: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, description)


# --------------------------------------------------------------------------- #
# Limits                                                                      #
# --------------------------------------------------------------------------- #

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER = 200
MAX_BUTTONS_PER_ROW = 8
MAX_BUTTONS = 100
MAX_DOWNLOAD = 20 * 1024 * 1024
MAX_UPLOAD_PHOTO = 10 * 1024 * 1024
MAX_UPLOAD = 50 * 1024 * 1024

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "guest_message",
    "managed_bot",
    "subscription",
    "stopped_message_generation",
)
#: Telegram delivers these only when explicitly listed in ``allowed_updates``.
OPT_IN_UPDATE_TYPES = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)

_INLINE_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_BUTTON_URL_SCHEMES = ("http://", "https://", "tg://", "ton://")
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")

_FILE_PREFIX = {
    "photo": "AgACAgIAAxkBAA",
    "document": "BQACAgIAAxkBAA",
    "video": "BAACAgIAAxkBAA",
    "audio": "CQACAgIAAxkBAA",
    "voice": "AwACAgIAAxkBAA",
    "animation": "CgACAgIAAxkBAA",
    "sticker": "CAACAgIAAxkBAA",
    "video_note": "DQACAgIAAxkBAA",
}
_FILE_FOLDER = {
    "photo": "photos",
    "document": "documents",
    "video": "videos",
    "audio": "music",
    "voice": "voice",
    "animation": "animations",
    "sticker": "stickers",
    "video_note": "video_notes",
}
_DEFAULT_MIME = {
    "photo": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/mpeg",
    "voice": "audio/ogg",
    "animation": "video/mp4",
    "sticker": "image/webp",
    "video_note": "video/mp4",
    "document": "application/octet-stream",
}


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram uses for limits and entity offsets.

    Counting code units (an emoji outside the BMP counts 2) is never more lenient than
    Telegram, so a message accepted here is accepted there.
    """
    return len(text.encode("utf-16-le")) // 2


def _now() -> float:
    return asyncio.get_running_loop().time()


# --------------------------------------------------------------------------- #
# Waiting without sleeping                                                    #
# --------------------------------------------------------------------------- #


class _Signal:
    """A broadcast "something changed" pulse.

    Waiters capture the current event *synchronously*, re-check their predicate,
    then await; ``notify`` sets the captured event and installs a fresh one, so no
    change can slip between the check and the wait.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None) -> None:
        event = self._event
        if timeout is not None and timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


# --------------------------------------------------------------------------- #
# Text formatting: parse_mode -> (plain text, entities)                      #
# --------------------------------------------------------------------------- #


class _EntityParseError(Exception):
    pass


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
_HTML_ATTR_RE = re.compile(
    r"""([a-zA-Z_:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))"""
)


class _Builder:
    """Accumulates plain text and measures it in UTF-16 code units."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[dict[str, Any]] = []

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.pos += utf16_len(chunk)

    def entity(self, type_: str, start: int, **extra: Any) -> None:
        if self.pos > start:
            self.entities.append(
                {"type": type_, "offset": start, "length": self.pos - start, **extra}
            )

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), self.entities


def _parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML subset; unsupported or unbalanced tags are errors, like in tdlib."""
    out = _Builder()
    stack: list[tuple[str, str, int, dict[str, str]]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "&":
            m = _HTML_ENTITY_RE.match(text, i)
            if m:
                out.add(html.unescape(m.group(0)))
                i = m.end()
            else:
                out.add("&")
                i += 1
            continue
        if ch != "<":
            j = i
            while j < n and text[j] not in "<&":
                j += 1
            out.add(text[i:j])
            i = j
            continue
        offset = _byte_offset(text, i)
        if i + 1 < n and text[i + 1] == "/":
            end = text.find(">", i)
            if end == -1:
                raise _EntityParseError(f"Unclosed end tag at byte offset {offset}")
            name = text[i + 2 : end].strip().lower()
            if not stack:
                raise _EntityParseError(f"Unexpected end tag at byte offset {offset}")
            tag, type_, start, attrs = stack.pop()
            if name != tag:
                raise _EntityParseError(
                    f'Unmatched end tag at byte offset {offset}, expected "</{tag}>", found "</{name}>"'
                )
            extra: dict[str, Any] = {}
            if type_ == "text_link":
                extra["url"] = attrs.get("href", "")
                if not extra["url"]:
                    type_ = ""
            elif type_ == "custom_emoji":
                extra["custom_emoji_id"] = attrs.get("emoji-id", "")
            elif type_ == "code" and stack and stack[-1][0] == "pre":
                # <pre><code class="language-x"> is one pre entity with a language
                if attrs.get("class", "").startswith("language-"):
                    stack[-1][3]["class"] = attrs["class"]
                type_ = ""
            elif type_ == "pre" and attrs.get("class", "").startswith("language-"):
                extra["language"] = attrs["class"][len("language-") :]
            elif type_ == "blockquote" and "expandable" in attrs:
                type_ = "expandable_blockquote"
            if type_:
                out.entity(type_, start, **extra)
            i = end + 1
            continue
        j = i + 1
        while j < n and not text[j].isspace() and text[j] not in ">":
            j += 1
        name = text[i + 1 : j].lower()
        if name not in _HTML_TAGS:
            raise _EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {offset}'
            )
        end = text.find(">", j)
        if end == -1:
            raise _EntityParseError(f"Unclosed start tag at byte offset {offset}")
        attrs = {
            m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None)
            for m in _HTML_ATTR_RE.finditer(text, j, end)
        }
        if re.search(r"(?:^|\s)expandable(?:\s|=|$)", text[j:end]):
            attrs.setdefault("expandable", "")
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {offset}'
            )
        if name == "tg-emoji" and "emoji-id" not in attrs:
            raise _EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {offset}'
            )
        stack.append((name, _HTML_TAGS[name], out.pos, attrs))
        i = end + 1
    if stack:
        raise _EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"'
        )
    return out.result()


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
}


def _parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """MarkdownV2: every reserved character outside an entity must be escaped."""
    out = _Builder()
    stack: list[tuple[str, str, int, int]] = []  # (marker, type, start, byte offset)
    i, n = 0, len(text)
    line_start = True
    quote_start: int | None = None
    pre_language = ""

    def toggle(marker: str, type_: str) -> None:
        if stack and stack[-1][0] == marker:
            _, t, start, _ = stack.pop()
            out.entity(t, start)
        else:
            stack.append((marker, type_, out.pos, _byte_offset(text, i)))

    while i < n:
        ch = text[i]
        if ch == "\n" and quote_start is not None:
            out.entity("blockquote", quote_start)
            quote_start = None
        in_code = bool(stack) and stack[-1][1] in ("code", "pre")
        if ch == "\\":
            if i + 1 < n and 0 < ord(text[i + 1]) < 127:
                out.add(text[i + 1])
                i += 2
            else:
                out.add("\\")
                i += 1
            line_start = False
            continue
        if in_code:
            marker = stack[-1][0]
            if text.startswith(marker, i):
                _, t, start, _ = stack.pop()
                if t == "pre" and pre_language:
                    out.entity(t, start, language=pre_language)
                else:
                    out.entity(t, start)
                i += len(marker)
            else:
                out.add(ch)
                i += 1
            line_start = ch == "\n"
            continue
        if ch not in _MDV2_RESERVED:
            out.add(ch)
            line_start = ch == "\n"
            i += 1
            continue
        step = 1
        if ch == "*":
            toggle("*", "bold")
        elif ch == "_":
            if text.startswith("__", i):
                toggle("__", "underline")
                step = 2
            else:
                toggle("_", "italic")
        elif ch == "~":
            toggle("~", "strikethrough")
        elif ch == "|" and text.startswith("||", i):
            toggle("||", "spoiler")
            step = 2
        elif ch == "`":
            if text.startswith("```", i):
                nl = text.find("\n", i + 3)
                language = text[i + 3 : nl].strip() if nl != -1 else ""
                stack.append(("```", "pre", out.pos, _byte_offset(text, i)))
                if nl != -1 and language and " " not in language:
                    pre_language = language
                    step = nl + 1 - i
                else:
                    pre_language = ""
                    step = 3
            else:
                stack.append(("`", "code", out.pos, _byte_offset(text, i)))
        elif ch == "[":
            stack.append(("]", "text_link", out.pos, _byte_offset(text, i)))
        elif ch == "]" and stack and stack[-1][0] == "]":
            _, _, start, _ = stack.pop()
            if i + 1 < n and text[i + 1] == "(":
                j = i + 2
                url_chars: list[str] = []
                while j < n and text[j] != ")":
                    if text[j] == "\\" and j + 1 < n:
                        j += 1
                    url_chars.append(text[j])
                    j += 1
                if j >= n:
                    raise _EntityParseError(
                        f"Can't find end of a URL at byte offset {_byte_offset(text, i + 1)}"
                    )
                out.entity("text_link", start, url="".join(url_chars))
                step = j + 1 - i
        elif ch == ">" and line_start:
            quote_start = out.pos
        else:
            raise _EntityParseError(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        line_start = False
        i += step
    if quote_start is not None:
        out.entity("blockquote", quote_start)
    if stack:
        marker, type_, _, offset = stack[0]
        raise _EntityParseError(
            f"Can't find end of {_MDV2_NAMES[type_]} entity at byte offset {offset}"
        )
    return out.result()


def _parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Legacy Markdown: no nesting; an unclosed marker is an error."""
    out = _Builder()
    markers = {"*": "bold", "_": "italic", "`": "code"}
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if ch in markers or ch == "[":
            offset = _byte_offset(text, i)
            if text.startswith("```", i):
                end = text.find("```", i + 3)
                if end == -1:
                    raise _EntityParseError(
                        f"Can't find end of the entity starting at byte offset {offset}"
                    )
                start = out.pos
                out.add(text[i + 3 : end])
                out.entity("pre", start)
                i = end + 3
                continue
            close = "]" if ch == "[" else ch
            end = text.find(close, i + 1)
            if end == -1:
                raise _EntityParseError(
                    f"Can't find end of the entity starting at byte offset {offset}"
                )
            start = out.pos
            out.add(text[i + 1 : end])
            if ch == "[":
                if end + 1 < n and text[end + 1] == "(":
                    url_end = text.find(")", end + 2)
                    if url_end == -1:
                        raise _EntityParseError(
                            f"Can't find end of the entity starting at byte offset {offset}"
                        )
                    out.entity("text_link", start, url=text[end + 2 : url_end])
                    i = url_end + 1
                    continue
            else:
                out.entity(markers[ch], start)
            i = end + 1
            continue
        out.add(ch)
        i += 1
    return out.result()


def format_text(
    text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]]]:
    """Turn what the bot sent into what the user sees: plain text plus entities.

    Leading/trailing whitespace is trimmed like Telegram does, with entity offsets
    shifted accordingly.  Raises ``ApiError`` with Telegram's "can't parse entities".
    """
    if entities:
        plain, ents = text, [dict(e) for e in entities]
    elif parse_mode:
        mode = parse_mode.lower()
        parser = {
            "html": _parse_html,
            "markdownv2": _parse_markdown_v2,
            "markdown": _parse_markdown,
        }.get(mode)
        if parser is None:
            raise _bad(f"Bad Request: unsupported parse_mode {parse_mode!r}")
        try:
            plain, ents = parser(text)
        except _EntityParseError as exc:
            raise _bad(E.CANT_PARSE_ENTITIES.format(exc)) from None
    else:
        plain, ents = text, []
    stripped = plain.strip()
    if stripped != plain:
        shift = utf16_len(plain[: len(plain) - len(plain.lstrip())])
        limit = utf16_len(stripped)
        trimmed = []
        for e in ents:
            start = max(0, e["offset"] - shift)
            end = min(limit, e["offset"] + e["length"] - shift)
            if end > start:
                trimmed.append({**e, "offset": start, "length": end - start})
        plain, ents = stripped, trimmed
    return plain, ents


# --------------------------------------------------------------------------- #
# Reply markup validation                                                     #
# --------------------------------------------------------------------------- #


def validate_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Check a reply_markup object the way Telegram does; returns it unchanged."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad(E.BAD_MARKUP)
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad(
                'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup '
                "should be an Array of Arrays"
            )
        total = 0
        for row in rows:
            if len(row) > MAX_BUTTONS_PER_ROW:
                raise _bad(E.KEYBOARD_TOO_LONG)
            total += len(row)
            for button in row:
                _validate_inline_button(button)
        if total > MAX_BUTTONS:
            raise _bad(E.KEYBOARD_TOO_LONG)
        return markup
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad(
                'Bad Request: field "keyboard" of the ReplyKeyboardMarkup should be an Array of Arrays'
            )
        if sum(len(r) for r in rows) > MAX_BUTTONS * 3:
            raise _bad(E.KEYBOARD_TOO_LONG)
        for row in rows:
            for button in row:
                text = button if isinstance(button, str) else (button or {}).get("text")
                if not isinstance(text, str) or not text.strip():
                    raise _bad(E.BUTTON_TEXT_INVALID)
        return markup
    if "remove_keyboard" in markup or "force_reply" in markup:
        return markup
    raise _bad(E.BAD_MARKUP)


def _validate_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise _bad(
            "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    text = button.get("text")
    if not isinstance(text, str):
        raise _bad(
            'Bad Request: can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    if not text.strip():
        raise _bad(E.BUTTON_TEXT_INVALID)
    actions = [a for a in _INLINE_BUTTON_ACTIONS if a in button]
    if not actions:
        raise _bad(E.TEXT_BUTTONS_UNALLOWED)
    if len(actions) > 1:
        raise _bad(E.BUTTON_TYPE_INVALID)
    if "callback_data" in button:
        data = button["callback_data"]
        if (
            not isinstance(data, str)
            or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
        ):
            raise _bad(E.BUTTON_DATA_INVALID)
    if "url" in button:
        url = button["url"]
        if (
            not isinstance(url, str)
            or not url.startswith(_BUTTON_URL_SCHEMES)
            or len(url) > 2048
        ):
            raise _bad(E.BUTTON_URL_INVALID)


# --------------------------------------------------------------------------- #
# Records: what the bot did, as tests see it                                  #
# --------------------------------------------------------------------------- #


class Button(NamedTuple):
    """One inline keyboard button as the user sees it.

    ``kind`` names the action field Telegram stored ("callback_data", "url", "pay", ...).
    """

    text: str
    callback_data: str | None = None
    url: str | None = None
    kind: str = "callback_data"


@dataclass(eq=False)
class FakeFile:
    """A file Telegram "stores": uploaded by the bot or sent by a user."""

    file_id: str
    file_unique_id: str
    kind: str
    size: int
    file_name: str | None = None
    mime_type: str | None = None
    file_path: str | None = None
    source_url: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    data: bytes | None = None

    @property
    def content(self) -> bytes:
        """The bytes served on download; synthesised (deterministically) when only a size was given."""
        if self.data is None:
            pattern = bytes(range(256))
            self.data = (pattern * (self.size // 256 + 1))[: self.size]
        return self.data


@dataclass(eq=False)
class Media:
    """The media part of a message (photo, document, video, ...)."""

    kind: str
    file: FakeFile
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def file_id(self) -> str:
        return self.file.file_id

    @property
    def data(self) -> bytes:
        return self.file.content

    def to_api(self) -> Any:
        f = self.file
        base: dict[str, Any] = {
            "file_id": f.file_id,
            "file_unique_id": f.file_unique_id,
        }
        if f.size:
            base["file_size"] = f.size
        if self.kind == "photo":
            width, height = f.width or 1280, f.height or 720
            scale = 90 / max(width, height)
            thumb = {
                "file_id": f.file_id + "_s",
                "file_unique_id": f.file_unique_id + "_s",
                "width": max(1, round(width * scale)),
                "height": max(1, round(height * scale)),
            }
            return [thumb, {**base, "width": width, "height": height}]
        if f.mime_type and self.kind not in ("sticker",):
            base["mime_type"] = f.mime_type
        if f.file_name and self.kind in ("document", "video", "audio", "animation"):
            base["file_name"] = f.file_name
        if self.kind in ("video", "animation"):
            base.update(
                width=f.width or 1280, height=f.height or 720, duration=f.duration or 1
            )
        elif self.kind in ("audio", "voice"):
            base["duration"] = f.duration or 1
        elif self.kind == "video_note":
            base.update(length=f.width or 240, duration=f.duration or 1)
        elif self.kind == "sticker":
            base.update(
                type="regular",
                width=f.width or 512,
                height=f.height or 512,
                is_animated=False,
                is_video=False,
            )
        base.update(self.extra)
        return base


@dataclass(eq=False)
class Invoice:
    """An invoice the bot sent (``sendInvoice``), including the private payload."""

    title: str
    description: str
    payload: str
    currency: str
    prices: list[dict[str, Any]]
    start_parameter: str = ""

    @property
    def total_amount(self) -> int:
        return sum(int(p["amount"]) for p in self.prices)

    def to_api(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "description": self.description,
            "start_parameter": self.start_parameter,
            "currency": self.currency,
            "total_amount": self.total_amount,
        }


@dataclass(eq=False)
class ChatMessage:
    """A message in a chat, from either side, as it currently looks.

    Edits are applied in place (``edited`` / ``edit_count``); deletions set
    ``deleted``.  ``text`` and ``caption`` are what the user sees, i.e. after
    ``parse_mode`` was applied; ``source`` keeps what the bot actually sent.
    """

    message_id: int
    chat_id: int
    from_bot: bool
    sender: dict[str, Any]
    chat: dict[str, Any]
    date: int
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    media: Media | None = None
    reply_markup: dict[str, Any] | None = None
    invoice: Invoice | None = None
    reply_to_message_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    edited: bool = False
    edit_count: int = 0
    edit_date: int | None = None
    deleted: bool = False

    @property
    def content(self) -> str | None:
        """Text or caption, whichever the message has."""
        return self.text if self.text is not None else self.caption

    @property
    def buttons(self) -> list[list[Button]]:
        """Inline keyboard rows; empty when there is none."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        result = []
        for row in rows:
            buttons = []
            for b in row:
                kind = next(
                    (a for a in _INLINE_BUTTON_ACTIONS if a in b), "callback_data"
                )
                buttons.append(
                    Button(b["text"], b.get("callback_data"), b.get("url"), kind)
                )
            result.append(buttons)
        return result

    @property
    def button_texts(self) -> list[list[str]]:
        return [[b.text for b in row] for row in self.buttons]

    def button(self, text: str) -> Button | None:
        """The inline button with exactly this visible text, if any."""
        return next((b for row in self.buttons for b in row if b.text == text), None)

    @property
    def keyboard(self) -> list[list[str]]:
        """Reply-keyboard rows (``ReplyKeyboardMarkup``) as button texts."""
        rows = (self.reply_markup or {}).get("keyboard") or []
        return [
            [b if isinstance(b, str) else b.get("text", "") for b in row]
            for row in rows
        ]

    @property
    def media_kind(self) -> str | None:
        return self.media.kind if self.media else None

    def to_api(self) -> dict[str, Any]:
        """The Bot API ``Message`` object for this message."""
        msg: dict[str, Any] = {
            "message_id": self.message_id,
            "from": self.sender,
            "chat": self.chat,
            "date": self.date,
        }
        if self.edit_date is not None:
            msg["edit_date"] = self.edit_date
        if self.reply_to_message_id is not None:
            msg["reply_to_message"] = {
                "message_id": self.reply_to_message_id,
                "chat": self.chat,
                "date": self.date,
            }
        if self.text is not None:
            msg["text"] = self.text
            if self.entities:
                msg["entities"] = self.entities
        if self.media is not None:
            msg[self.media.kind] = self.media.to_api()
        if self.caption is not None:
            msg["caption"] = self.caption
            if self.caption_entities:
                msg["caption_entities"] = self.caption_entities
        if self.invoice is not None:
            msg["invoice"] = self.invoice.to_api()
        msg.update(self.extra)
        # Message.reply_markup only ever carries inline keyboards.
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            msg["reply_markup"] = self.reply_markup
        return msg

    def __str__(self) -> str:
        who = "bot" if self.from_bot else "user"
        body = self.content if self.content is not None else ""
        if self.media:
            body = f"[{self.media.kind}] {body}".rstrip()
        if self.invoice:
            body = f"[invoice {self.invoice.total_amount} {self.invoice.currency}] {self.invoice.title}"
        for key in self.extra:
            body = body or f"[{key}]"
        flags = (" (edited)" if self.edited else "") + (
            " (deleted)" if self.deleted else ""
        )
        buttons = f" {self.button_texts}" if self.buttons else ""
        return f"#{self.message_id} {who}: {body}{buttons}{flags}"


@dataclass(eq=False)
class CallbackAnswer:
    """What the bot passed to ``answerCallbackQuery``."""

    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None


@dataclass(eq=False)
class CallbackRecord:
    """A callback query a user fired; ``answer`` is filled when the bot answers in time."""

    id: str
    chat_id: int
    data: str | None
    message_id: int | None
    created_at: float
    answer: CallbackAnswer | None = None
    late_answers: int = 0

    @property
    def answered(self) -> bool:
        return self.answer is not None


@dataclass(eq=False)
class PreCheckoutRecord:
    """A pre_checkout_query and the bot's verdict (``ok`` / ``error_message``)."""

    id: str
    chat_id: int
    user_id: int
    invoice: Invoice
    created_at: float
    ok: bool | None = None
    error_message: str | None = None
    expired: bool = False


@dataclass(eq=False)
class Charge:
    """A completed Stars payment; ``refunded`` flips on ``refundStarPayment``."""

    charge_id: str
    user_id: int
    chat_id: int
    amount: int
    currency: str
    payload: str
    date: int
    refunded: bool = False


@dataclass(frozen=True)
class ChatAction:
    chat_id: int
    action: str
    at: float


@dataclass(frozen=True)
class ChatEvent:
    """One entry of a chat's transcript.

    ``kind`` is one of: message, edit, delete, callback_query, callback_answer,
    chat_action, pre_checkout_query, pre_checkout_answer, payment, refund.
    """

    seq: int
    kind: str
    chat_id: int
    at: float
    message: ChatMessage | None = None
    data: Any = None


@dataclass(frozen=True)
class RecordedCall:
    """One Bot API request as the server saw it (uploads replaced by a summary)."""

    method: str
    params: dict[str, Any]
    ok: bool
    error_code: int | None
    description: str | None
    at: float


# --------------------------------------------------------------------------- #
# Request parsing                                                             #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Upload:
    filename: str | None
    content_type: str | None
    data: bytes


class _Params:
    """Typed access to Bot API parameters, whatever the transport.

    Form fields arrive as strings (aiogram JSON-encodes nested objects and sends
    ints as text); JSON bodies arrive typed.  Each getter accepts both.
    """

    def __init__(self, values: dict[str, Any], files: dict[str, _Upload]) -> None:
        self.values = values
        self.files = files

    def raw(self, name: str) -> Any:
        return self.values.get(name)

    def get_str(self, name: str, *, required: bool = False) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise _bad(f"Bad Request: {name} is empty")
            return None if value is None else ""
        if isinstance(value, (dict, list)):
            raise _bad(f'Bad Request: field "{name}" must be of type String')
        return (
            value
            if isinstance(value, str)
            else json.dumps(value)
            if isinstance(value, bool)
            else str(value)
        )

    def get_int(self, name: str, *, required: bool = False) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise _bad(f"Bad Request: {name} is empty")
            return None
        if isinstance(value, bool):
            raise _bad(f"Bad Request: invalid {name} specified")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _bad(f"Bad Request: invalid {name} specified") from None

    def get_float(self, name: str) -> float | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _bad(f"Bad Request: invalid {name} specified") from None

    def get_bool(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)

    def get_json(self, name: str, *, what: str | None = None) -> Any:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise _bad(
                    f"Bad Request: can't parse {what or name} JSON object"
                ) from None
        return value


async def _read_params(
    request: web.Request,
) -> tuple[dict[str, Any], dict[str, _Upload]]:
    params: dict[str, Any] = dict(request.query)
    files: dict[str, _Upload] = {}
    if request.method == "POST" and request.body_exists:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("Bad Request: can't parse JSON request body") from None
            if isinstance(body, dict):
                params.update(body)
        elif ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = _Upload(
                        value.filename, value.content_type, value.file.read()
                    )
                else:
                    params[key] = value
    return params, files


def _summarise(params: dict[str, Any], files: dict[str, _Upload]) -> dict[str, Any]:
    summary = dict(params)
    for key, up in files.items():
        summary[key] = f"<upload {up.filename!r} {len(up.data)} bytes>"
    return summary


# --------------------------------------------------------------------------- #
# Internal per-chat state                                                     #
# --------------------------------------------------------------------------- #


@dataclass(eq=False)
class _Chat:
    chat_id: int
    user: dict[str, Any]
    chat: dict[str, Any]
    started: bool = False
    blocked: bool = False
    messages: dict[int, ChatMessage] = field(default_factory=dict)
    order: list[ChatMessage] = field(default_factory=list)
    events: list[ChatEvent] = field(default_factory=list)
    next_message_id: int = 1
    sent_times: deque[float] = field(default_factory=deque)


@dataclass(eq=False)
class _Poll:
    cut: bool = False


@dataclass(eq=False)
class _InjectedFailure:
    method: str
    error_code: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    allowed_updates: list[str] | None


# Methods that send or change a message and therefore count against flood limits.
_RATE_LIMITED = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendVideo",
        "sendAudio",
        "sendDocument",
        "sendVoice",
        "sendAnimation",
        "sendSticker",
        "sendVideoNote",
        "sendInvoice",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
    }
)

_Handler = Callable[[_Params], Awaitable[Any]]


# --------------------------------------------------------------------------- #
# The server                                                                  #
# --------------------------------------------------------------------------- #


class FakeTelegram:
    """A strict fake Bot API server for one bot token.

    Parameters are the knobs tests need; all are also plain attributes that may be
    changed while the server runs (e.g. tighten ``rate_limit_per_chat`` mid-test).

    :param token: the only token accepted; anything else gets 401 Unauthorized.
    :param callback_answer_timeout: seconds within which ``answerCallbackQuery``
        must arrive (Telegram: roughly 10-15 s).
    :param pre_checkout_timeout: seconds within which ``answerPreCheckoutQuery``
        must arrive, else the payment fails (Telegram: 10 s).
    :param rate_limit_per_chat: ``(count, per_seconds)`` sliding window of sends per
        chat before 429; ``None`` disables it.
    :param rate_limit_global: the same across all chats; ``None`` (default) disables.
    :param rate_limit_enabled: master switch for both limits.
    :param webhook_max_attempts: deliveries per update before the webhook gives up on it.
    :param webhook_retry_delay: pause between webhook attempts (a backoff, not synchronisation).
    :param require_https_webhook: Telegram requires HTTPS; off by default so local
        ``http://127.0.0.1`` test servers can receive updates.
    """

    def __init__(
        self,
        token: str = "123456:TEST",
        *,
        bot_username: str = "flowgram_test_bot",
        bot_first_name: str = "Flowgram Test Bot",
        host: str = "127.0.0.1",
        port: int = 0,
        callback_answer_timeout: float = 15.0,
        pre_checkout_timeout: float = 10.0,
        rate_limit_per_chat: tuple[int, float] | None = (30, 1.0),
        rate_limit_global: tuple[int, float] | None = None,
        rate_limit_enabled: bool = True,
        webhook_max_attempts: int = 3,
        webhook_retry_delay: float = 0.05,
        webhook_timeout: float = 10.0,
        require_https_webhook: bool = False,
        first_update_id: int = 1,
    ) -> None:
        self.token = token
        head = token.split(":", 1)[0]
        self.bot_id = int(head) if head.isdigit() else 123456
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.host = host
        self.port = port
        self.callback_answer_timeout = callback_answer_timeout
        self.pre_checkout_timeout = pre_checkout_timeout
        self.rate_limit_per_chat = rate_limit_per_chat
        self.rate_limit_global = rate_limit_global
        self.rate_limit_enabled = rate_limit_enabled
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self.require_https_webhook = require_https_webhook

        #: Calls per canonical method name, including failed ones.
        self.calls: Counter[str] = Counter()
        #: Every request in arrival order.
        self.requests: list[RecordedCall] = []
        #: file_id of every file download, in order.
        self.downloads: list[str] = []
        #: Every update ever queued, in order (raw dicts as delivered).
        self.updates: list[dict[str, Any]] = []
        #: Exceptions raised by the fake itself (a bug here, not in the bot).
        self.internal_errors: list[BaseException] = []
        #: Webhook deliveries that gave up after all attempts.
        self.webhook_failures: list[tuple[dict[str, Any], str]] = []
        self.chat_actions: list[ChatAction] = []
        self.callback_queries: dict[str, CallbackRecord] = {}
        self.pre_checkouts: dict[str, PreCheckoutRecord] = {}
        self.charges: dict[str, Charge] = {}
        self.files: dict[str, FakeFile] = {}
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}

        self._chats: dict[int, _Chat] = {}
        self._files_by_path: dict[str, FakeFile] = {}
        self._pending: list[dict[str, Any]] = []
        self._next_update_id = first_update_id
        self._allowed_updates: list[str] | None = None
        self._webhook: _Webhook | None = None
        self._webhook_last_error: tuple[int, str] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._active_poll: _Poll | None = None
        self._failures: list[_InjectedFailure] = []
        self._global_sent: deque[float] = deque()
        self._inflight = 0
        self._last_activity = 0.0
        self._event_seq = itertools.count(1)
        self._file_seq = itertools.count(1)
        self._query_seq = itertools.count(1)
        self._signal = _Signal()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._base_url: str | None = None

        self._methods: dict[str, tuple[str, _Handler]] = {}
        for attr in dir(self):
            if attr.startswith("_api_"):
                name = attr[len("_api_") :]
                self._methods[name.lower()] = (name, getattr(self, attr))

    # ------------------------------------------------------------------ life

    async def start(self) -> Self:
        """Bind to a free port on ``host`` and start serving."""
        if self._runner is not None:
            return self
        self._closing = False
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.port = port
        self._base_url = f"http://{host}:{port}"
        self._client = aiohttp.ClientSession()
        self._last_activity = _now()
        return self

    async def stop(self) -> None:
        """Wake every waiter, stop webhook delivery, and close the listener."""
        if self._runner is None:
            return
        self._closing = True
        self._signal.notify()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, for ``TelegramAPIServer.from_base``."""
        if self._base_url is None:
            raise RuntimeError(
                "FakeTelegram is not started; use 'async with FakeTelegram()'"
            )
        return self._base_url

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    # --------------------------------------------------------------- users

    def user(
        self,
        user_id: int = 1001,
        first_name: str = "Test",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        is_premium: bool | None = None,
        started: bool = False,
    ) -> UserClient:
        """Create (or re-attach to) a user and their private chat (chat id = user id).

        ``started=False`` mirrors Telegram: the bot cannot message a user who never
        wrote to it (403) until the user sends something.
        """
        from .user_client import UserClient

        chat = self._chats.get(user_id)
        if chat is None:
            user: dict[str, Any] = {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name,
            }
            if last_name:
                user["last_name"] = last_name
            if username:
                user["username"] = username
            if language_code:
                user["language_code"] = language_code
            if is_premium:
                user["is_premium"] = True
            chat_dict = {
                k: v
                for k, v in user.items()
                if k in ("id", "first_name", "last_name", "username")
            }
            chat_dict["type"] = "private"
            chat = _Chat(chat_id=user_id, user=user, chat=chat_dict, started=started)
            self._chats[user_id] = chat
        elif started:
            chat.started = True
        return UserClient(self, chat)

    # ------------------------------------------------------------ inspection

    def messages(
        self, chat_id: int, *, from_bot: bool | None = True
    ) -> list[ChatMessage]:
        """Messages of a chat in order (edits applied in place, deleted ones included)."""
        chat = self._chat(chat_id)
        return [m for m in chat.order if from_bot is None or m.from_bot == from_bot]

    def events(self, chat_id: int, kind: str | None = None) -> list[ChatEvent]:
        """The chat's transcript of events, optionally filtered by kind."""
        chat = self._chat(chat_id)
        return [e for e in chat.events if kind is None or e.kind == kind]

    def errors(self, method: str | None = None) -> list[RecordedCall]:
        """Requests that got an error response."""
        return [
            r
            for r in self.requests
            if not r.ok and (method is None or r.method == method)
        ]

    def file(self, file_id: str) -> FakeFile:
        return self.files[file_id]

    @property
    def pending_update_count(self) -> int:
        """Updates queued but not yet confirmed (polling) or acknowledged (webhook)."""
        return len(self._pending)

    @property
    def webhook_url(self) -> str | None:
        return self._webhook.url if self._webhook else None

    @property
    def is_polling(self) -> bool:
        """True while a getUpdates request is waiting."""
        return self._active_poll is not None

    def _chat(self, chat_id: int) -> _Chat:
        try:
            return self._chats[chat_id]
        except KeyError:
            raise KeyError(
                f"no chat {chat_id}; create it with tg.user(user_id={chat_id})"
            ) from None

    # --------------------------------------------------------------- waiting

    async def wait_until(
        self,
        predicate: Callable[[], T],
        timeout: float = 5.0,
        *,
        describe: Callable[[], str] | None = None,
    ) -> T:
        """Wait until ``predicate()`` is truthy (re-checked on every state change) and return it."""
        deadline = _now() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - _now()
            if remaining <= 0:
                detail = describe() if describe else "condition not met"
                raise TimeoutError(f"timed out after {timeout:g}s: {detail}")
            await self._signal.wait(remaining)

    async def settle(self, quiet: float = 0.05, timeout: float = 5.0) -> None:
        """Wait until the bot is idle.

        Idle means: no pending (unconfirmed / unacknowledged) update, no API request
        in flight (long polls excluded), and no activity for ``quiet`` seconds.  The
        quiet window covers handlers that are busy between API calls.
        """
        deadline = _now() + timeout
        while True:
            now = _now()
            wait: float | None = None
            if not self._pending and self._inflight == 0:
                idle = now - self._last_activity
                if idle >= quiet:
                    return
                wait = quiet - idle
            remaining = deadline - now
            if remaining <= 0:
                raise TimeoutError(
                    f"bot did not settle within {timeout:g}s: {len(self._pending)} pending update(s), "
                    f"{self._inflight} request(s) in flight"
                )
            await self._signal.wait(
                min(wait, remaining) if wait is not None else remaining
            )

    def _touch(self) -> None:
        self._last_activity = _now()
        self._signal.notify()

    # ---------------------------------------------------------- fault knobs

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 500,
        description: str = E.INTERNAL,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with the given error.

        For chaos tests of the engine (Telegram 5xx, a surprise 429, 403 ...).
        """
        if retry_after is not None and description == E.INTERNAL:
            error_code, description = 429, E.TOO_MANY_REQUESTS.format(retry_after)
        self._failures.append(
            _InjectedFailure(
                method.lower(), error_code, description, retry_after, times
            )
        )

    # --------------------------------------------------------------- updates

    def inject_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update dict as-is; assigns ``update_id`` when missing.

        For robustness tests: unknown update types, odd-but-valid payloads,
        duplicates (reuse an ``update_id``).  The envelope must stay plausible:
        ``update_id`` is an int, because Telegram never sends anything else and a
        non-int id would wedge aiogram's polling loop rather than test the bot.
        Note that a known update type with a payload aiogram cannot validate (e.g.
        ``{"message": {}}``) makes aiogram's getUpdates fail on the whole batch.
        """
        update = dict(update)
        update.setdefault("update_id", self._next_update_id)
        if isinstance(update["update_id"], bool) or not isinstance(
            update["update_id"], int
        ):
            raise TypeError("update_id must be an int")
        self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
        self._pending.append(update)
        self.updates.append(update)
        self._touch()
        return update["update_id"]

    def _queue(self, kind: str, payload: dict[str, Any]) -> int:
        return self.inject_update({"update_id": self._next_update_id, kind: payload})

    def _confirm(self, offset: int) -> None:
        before = len(self._pending)
        if offset < 0:
            self._pending = self._pending[offset:]
        else:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        if len(self._pending) != before:
            self._touch()

    def _deliverable(
        self, limit: int, allowed: list[str] | None
    ) -> list[dict[str, Any]]:
        """Pending updates the bot asked for; ones it excluded are dropped, as Telegram does."""
        batch: list[dict[str, Any]] = []
        dropped = False
        for update in list(self._pending):
            kind = next((k for k in update if k != "update_id"), None)
            if kind in UPDATE_TYPES and not _allowed(kind, allowed):
                self._pending.remove(update)
                dropped = True
                continue
            batch.append(update)
            if len(batch) >= limit:
                break
        if dropped:
            self._touch()
        return batch

    # ------------------------------------------------------------------ HTTP

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _json_response(401, ApiError(401, E.UNAUTHORIZED).body())
        method = request.match_info["method"]
        try:
            params, files = await _read_params(request)
        except ApiError as exc:
            return _json_response(exc.code, exc.body())
        status, body = await self.call(method, params, files)
        return _json_response(status, body)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _json_response(401, ApiError(401, E.UNAUTHORIZED).body())
        f = self._files_by_path.get(request.match_info["path"])
        if f is None:
            return _json_response(404, ApiError(404, E.NOT_FOUND).body())
        self.downloads.append(f.file_id)
        return web.Response(
            body=f.content, content_type=f.mime_type or "application/octet-stream"
        )

    async def call(
        self,
        method: str,
        params: dict[str, Any],
        files: dict[str, _Upload] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Execute one Bot API method in-process; returns ``(http_status, body)``.

        The HTTP layer and webhook-reply execution both go through here, so
        recording, fault injection and counters apply uniformly.
        """
        files = files or {}
        entry = self._methods.get(method.lower())
        name = entry[0] if entry else method
        self.calls[name] += 1
        tracked = name != "getUpdates"
        if tracked:
            self._inflight += 1
            self._touch()
        try:
            failure = self._take_failure(name)
            if failure is not None:
                raise failure
            if entry is None:
                raise ApiError(404, E.NOT_FOUND)
            result = await entry[1](_Params(params, files))
            self._record(name, params, files, None)
            return 200, {"ok": True, "result": result}
        except ApiError as exc:
            self._record(name, params, files, exc)
            return exc.code, exc.body()
        except Exception as exc:  # a bug in the fake: surface it loudly to tests
            log.exception("FakeTelegram failed on %s", name)
            self.internal_errors.append(exc)
            err = ApiError(500, E.INTERNAL)
            self._record(name, params, files, err)
            return 500, err.body()
        finally:
            if tracked:
                self._inflight -= 1
                self._touch()

    def _take_failure(self, name: str) -> ApiError | None:
        for failure in self._failures:
            if failure.method == name.lower() and failure.remaining > 0:
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.remove(failure)
                return ApiError(
                    failure.error_code,
                    failure.description,
                    retry_after=failure.retry_after,
                )
        return None

    def _record(
        self,
        name: str,
        params: dict[str, Any],
        files: dict[str, _Upload],
        exc: ApiError | None,
    ) -> None:
        self.requests.append(
            RecordedCall(
                method=name,
                params=_summarise(params, files),
                ok=exc is None,
                error_code=exc.code if exc else None,
                description=exc.description if exc else None,
                at=_now(),
            )
        )

    # ----------------------------------------------------------- chat helpers

    def _target_chat(self, p: _Params, name: str = "chat_id") -> _Chat:
        raw = p.raw(name)
        if raw is None or raw == "":
            raise _bad(f"Bad Request: {name} is empty")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise _bad(E.CHAT_NOT_FOUND) from None
        chat = self._chats.get(chat_id)
        if chat is None:
            raise _bad(E.CHAT_NOT_FOUND)
        if chat.blocked:
            raise ApiError(403, E.BOT_BLOCKED)
        if not chat.started:
            raise ApiError(403, E.CANT_INITIATE)
        return chat

    def _check_rate(self, chat: _Chat) -> None:
        """Sliding-window flood control; call right before a send takes effect."""
        if not self.rate_limit_enabled:
            return
        now = _now()
        windows = (
            (chat.sent_times, self.rate_limit_per_chat),
            (self._global_sent, self.rate_limit_global),
        )
        for window, limit in windows:
            if limit is None:
                continue
            count, per = limit
            while window and window[0] <= now - per:
                window.popleft()
            if len(window) >= count:
                retry = max(1, math.ceil(window[0] + per - now))
                raise ApiError(
                    429, E.TOO_MANY_REQUESTS.format(retry), retry_after=retry
                )
        chat.sent_times.append(now)
        self._global_sent.append(now)

    def _event(
        self,
        chat: _Chat,
        kind: str,
        message: ChatMessage | None = None,
        data: Any = None,
    ) -> ChatEvent:
        event = ChatEvent(
            next(self._event_seq), kind, chat.chat_id, _now(), message, data
        )
        chat.events.append(event)
        self._touch()
        return event

    def _new_message(
        self, chat: _Chat, *, from_bot: bool, **fields: Any
    ) -> ChatMessage:
        message = ChatMessage(
            message_id=chat.next_message_id,
            chat_id=chat.chat_id,
            from_bot=from_bot,
            sender=self.bot_user if from_bot else chat.user,
            chat=chat.chat,
            date=int(time.time()),
            **fields,
        )
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        chat.order.append(message)
        self._event(chat, "message", message)
        return message

    def _user_message(self, chat: _Chat, **fields: Any) -> ChatMessage:
        """A message from the user: recorded and queued as a ``message`` update."""
        chat.started = True
        self._set_blocked(
            chat, False
        )  # writing to a blocked bot unblocks it ("Restart" in clients)
        message = self._new_message(chat, from_bot=False, **fields)
        self._queue("message", message.to_api())
        return message

    def _reply_to(self, chat: _Chat, p: _Params) -> int | None:
        reply_id = p.get_int("reply_to_message_id")
        allow = p.get_bool("allow_sending_without_reply")
        params = p.get_json("reply_parameters")
        if isinstance(params, dict):
            reply_id = params.get("message_id")
            allow = bool(params.get("allow_sending_without_reply"))
        if reply_id is None:
            return None
        existing = chat.messages.get(int(reply_id))
        if existing is None or existing.deleted:
            if allow:
                return None
            raise _bad(E.REPLY_NOT_FOUND)
        return int(reply_id)

    def _message_to_edit(self, p: _Params) -> tuple[_Chat, ChatMessage]:
        if p.raw("inline_message_id"):
            raise _bad(E.MESSAGE_TO_EDIT_NOT_FOUND)
        chat = self._target_chat(p)
        message_id = p.get_int("message_id", required=True)
        assert message_id is not None
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad(E.MESSAGE_TO_EDIT_NOT_FOUND)
        if not message.from_bot:
            raise _bad(E.MESSAGE_CANT_BE_EDITED)
        return chat, message

    @staticmethod
    def _edit_markup(
        p: _Params, message: ChatMessage
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(new inline markup, markup to store) for an edit.

        Only inline keyboards belong to a message's content: an edit without
        ``reply_markup`` removes the inline keyboard, while a reply keyboard the
        message once carried is not touched.
        """
        markup = validate_reply_markup(
            p.get_json("reply_markup", what="reply keyboard markup")
        )
        if markup is not None and "inline_keyboard" not in markup:
            raise _bad(E.INLINE_KEYBOARD_EXPECTED)
        current = message.reply_markup
        keep = (
            current
            if current is not None and "inline_keyboard" not in current
            else None
        )
        return markup, markup if markup is not None else keep

    def _apply_edit(
        self, chat: _Chat, message: ChatMessage, **changes: Any
    ) -> dict[str, Any]:
        for key, value in changes.items():
            setattr(message, key, value)
        message.edited = True
        message.edit_count += 1
        message.edit_date = int(time.time())
        self._event(chat, "edit", message, changes)
        return message.to_api()

    # ------------------------------------------------------------------ files

    def add_file(
        self,
        kind: str,
        data: bytes | None = None,
        *,
        size: int | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
        source_url: str | None = None,
    ) -> FakeFile:
        """Register a file Telegram knows about (so getFile and download work)."""
        n = next(self._file_seq)
        if size is None:
            size = len(data) if data is not None else 0
        if mime_type is None:
            guessed = mimetypes.guess_type(file_name)[0] if file_name else None
            mime_type = guessed or _DEFAULT_MIME.get(kind)
        f = FakeFile(
            file_id=f"{_FILE_PREFIX.get(kind, 'BQACAgIAAxkBAA')}{n:06d}{secrets.token_urlsafe(24)}",
            file_unique_id=f"AQAD{n:06d}{secrets.token_urlsafe(6)}",
            kind=kind,
            size=size,
            file_name=file_name,
            mime_type=mime_type,
            width=width,
            height=height,
            duration=duration,
            data=data,
            source_url=source_url,
        )
        self.files[f.file_id] = f
        return f

    def _resolve_input_file(self, p: _Params, field_name: str, kind: str) -> FakeFile:
        value = p.raw(field_name)
        upload = p.files.get(field_name)
        if upload is None and isinstance(value, str) and value.startswith("attach://"):
            upload = p.files.get(value[len("attach://") :])
            if upload is None:
                raise _bad(E.WRONG_FILE_ID)
        if upload is not None:
            if not upload.data:
                raise _bad(E.FILE_EMPTY)
            limit = MAX_UPLOAD_PHOTO if kind == "photo" else MAX_UPLOAD
            if len(upload.data) > limit:
                raise ApiError(413, E.ENTITY_TOO_LARGE)
            name = (
                upload.filename
                if upload.filename and upload.filename != field_name
                else None
            )
            mime = (
                upload.content_type
                if upload.content_type not in (None, "application/octet-stream")
                else None
            )
            return self.add_file(kind, upload.data, file_name=name, mime_type=mime)
        if not isinstance(value, str) or not value:
            raise _bad(
                f"Bad Request: there is no {kind.replace('_', ' ')} in the request"
            )
        if value.startswith(("http://", "https://")):
            name = value.rsplit("/", 1)[-1].split("?", 1)[0] or None
            return self.add_file(kind, None, size=0, file_name=name, source_url=value)
        known = self.files.get(value)
        if known is None:
            raise _bad(E.WRONG_FILE_ID)
        if (known.kind == "photo") != (kind == "photo") or (
            known.kind == "sticker"
        ) != (kind == "sticker"):
            raise _bad(E.FILE_TYPE_MISMATCH)
        return known

    def _file_path(self, f: FakeFile) -> str:
        if f.file_path is None:
            ext = ""
            if f.file_name and "." in f.file_name:
                ext = "." + f.file_name.rsplit(".", 1)[1]
            elif f.mime_type:
                ext = mimetypes.guess_extension(f.mime_type) or ""
            n = len(self._files_by_path) + 1
            f.file_path = f"{_FILE_FOLDER.get(f.kind, 'documents')}/file_{n}{ext}"
            self._files_by_path[f.file_path] = f
        return f.file_path

    # ================================================================ methods
    # Each ``_api_<methodName>`` is one Bot API method; names are matched
    # case-insensitively like Telegram does.

    async def _api_getMe(self, p: _Params) -> Any:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _api_logOut(self, p: _Params) -> Any:
        return True

    async def _api_close(self, p: _Params) -> Any:
        return True

    # --------------------------------------------------------------- updates

    async def _api_getUpdates(self, p: _Params) -> Any:
        if self._webhook is not None:
            raise ApiError(409, E.CONFLICT_WEBHOOK)
        offset = p.get_int("offset")
        limit = min(100, max(1, p.get_int("limit") or 100))
        timeout = max(0.0, p.get_float("timeout") or 0.0)
        allowed = p.get_json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(a) for a in allowed] or None
        # Telegram cuts the *older* poll when a newer one arrives.
        if self._active_poll is not None:
            self._active_poll.cut = True
            self._signal.notify()
        poll = _Poll()
        self._active_poll = poll
        self._signal.notify()  # observers of is_polling
        try:
            if offset is not None:
                self._confirm(offset)
            deadline = _now() + timeout
            while True:
                if poll.cut:
                    raise ApiError(409, E.CONFLICT_GET_UPDATES)
                if self._webhook is not None:
                    raise ApiError(409, E.CONFLICT_WEBHOOK)
                if self._closing:
                    return []
                batch = self._deliverable(limit, self._allowed_updates)
                remaining = deadline - _now()
                if batch or remaining <= 0:
                    return batch
                await self._signal.wait(remaining)
        finally:
            if self._active_poll is poll:
                self._active_poll = None
                self._signal.notify()

    async def _api_setWebhook(self, p: _Params) -> Any:
        url = p.get_str("url") or ""
        if not url:
            return await self._api_deleteWebhook(p)
        if not url.startswith(("http://", "https://")):
            raise _bad(E.WEBHOOK_BAD_URL)
        if self.require_https_webhook and not url.startswith("https://"):
            raise _bad(E.WEBHOOK_HTTPS_REQUIRED)
        secret = p.get_str("secret_token")
        if secret is not None and secret != "" and not _SECRET_TOKEN_RE.match(secret):
            raise _bad(E.WEBHOOK_SECRET_INVALID)
        max_connections = p.get_int("max_connections") or 40
        if not 1 <= max_connections <= 100:
            raise _bad("Bad Request: invalid max_connections specified")
        allowed = p.get_json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(a) for a in allowed] or None
        if p.get_bool("drop_pending_updates"):
            self._pending.clear()
        self._webhook = _Webhook(
            url,
            secret or None,
            max_connections,
            p.get_str("ip_address"),
            self._allowed_updates,
        )
        self._webhook_last_error = None
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(
                self._webhook_loop(), name="fake-telegram-webhook"
            )
        self._touch()
        return True

    async def _api_deleteWebhook(self, p: _Params) -> Any:
        self._webhook = None
        if p.get_bool("drop_pending_updates"):
            self._pending.clear()
        self._touch()
        return True

    async def _api_getWebhookInfo(self, p: _Params) -> Any:
        info: dict[str, Any] = {
            "url": self._webhook.url if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self._webhook:
            info["max_connections"] = self._webhook.max_connections
            if self._webhook.ip_address:
                info["ip_address"] = self._webhook.ip_address
            if self._allowed_updates:
                info["allowed_updates"] = self._allowed_updates
            if self._webhook_last_error:
                info["last_error_date"], info["last_error_message"] = (
                    self._webhook_last_error
                )
        return info

    async def _webhook_loop(self) -> None:
        """Push pending updates to the webhook, one at a time, in order.

        Non-2xx answers and connection errors are retried ``webhook_max_attempts``
        times, then the update is given up (recorded in ``webhook_failures``).  A 2xx
        JSON body carrying ``"method"`` is executed, as Telegram does for webhook replies.
        """
        while not self._closing and self._webhook is not None:
            batch = self._deliverable(1, self._allowed_updates)
            if not batch:
                await self._signal.wait(None)
                continue
            update = batch[0]
            hook = self._webhook
            error = ""
            reply: Any = None
            delivered = False
            for attempt in range(max(1, self.webhook_max_attempts)):
                if attempt:
                    await asyncio.sleep(self.webhook_retry_delay)
                headers = (
                    {"X-Telegram-Bot-Api-Secret-Token": hook.secret_token}
                    if hook.secret_token
                    else {}
                )
                try:
                    assert self._client is not None
                    async with self._client.post(
                        hook.url,
                        json=update,
                        headers=headers,
                        timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
                    ) as resp:
                        body = await resp.read()
                        if 200 <= resp.status < 300:
                            delivered = True
                            with contextlib.suppress(ValueError):
                                reply = json.loads(body) if body else None
                            break
                        error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    error = f"Connection failed: {type(exc).__name__}: {exc}"
                self._webhook_last_error = (int(time.time()), error)
            if update in self._pending:
                self._pending.remove(update)
            if not delivered:
                self.webhook_failures.append((update, error))
            self._touch()
            if (
                delivered
                and isinstance(reply, dict)
                and isinstance(reply.get("method"), str)
            ):
                params = {k: v for k, v in reply.items() if k != "method"}
                await self.call(reply["method"], params)

    # -------------------------------------------------------------- messages

    async def _api_sendMessage(self, p: _Params) -> Any:
        chat = self._target_chat(p)
        raw_text = p.get_str("text")
        if not raw_text or not raw_text.strip():
            raise _bad(E.MESSAGE_TEXT_EMPTY)
        parse_mode = p.get_str("parse_mode")
        text, entities = format_text(raw_text, parse_mode, p.get_json("entities"))
        if not text:
            raise _bad(E.MESSAGE_TEXT_EMPTY)
        if utf16_len(text) > MAX_TEXT:
            raise _bad(E.MESSAGE_TOO_LONG)
        markup = validate_reply_markup(
            p.get_json("reply_markup", what="reply keyboard markup")
        )
        reply_to = self._reply_to(chat, p)
        self._check_rate(chat)
        message = self._new_message(
            chat,
            from_bot=True,
            text=text,
            entities=entities,
            reply_markup=markup,
            reply_to_message_id=reply_to,
            source={"text": raw_text, "parse_mode": parse_mode},
        )
        return message.to_api()

    async def _send_media(self, p: _Params, kind: str) -> Any:
        chat = self._target_chat(p)
        f = self._resolve_input_file(p, kind, kind)
        caption = entities = None
        raw_caption = p.get_str("caption")
        parse_mode = p.get_str("parse_mode")
        if raw_caption and kind not in ("sticker", "video_note"):
            caption, entities = format_text(
                raw_caption, parse_mode, p.get_json("caption_entities")
            )
            if utf16_len(caption) > MAX_CAPTION:
                raise _bad(E.CAPTION_TOO_LONG)
            caption = caption or None
        markup = validate_reply_markup(
            p.get_json("reply_markup", what="reply keyboard markup")
        )
        reply_to = self._reply_to(chat, p)
        extra: dict[str, Any] = {}
        if kind == "sticker" and p.get_str("emoji"):
            extra["emoji"] = p.get_str("emoji")
        for key in ("duration", "width", "height"):
            if (value := p.get_int(key)) is not None and getattr(f, key) is None:
                setattr(f, key, value)
        self._check_rate(chat)
        message = self._new_message(
            chat,
            from_bot=True,
            media=Media(kind, f, extra),
            caption=caption,
            caption_entities=entities or [],
            reply_markup=markup,
            reply_to_message_id=reply_to,
            source={"caption": raw_caption, "parse_mode": parse_mode},
        )
        return message.to_api()

    async def _api_sendPhoto(self, p: _Params) -> Any:
        return await self._send_media(p, "photo")

    async def _api_sendVideo(self, p: _Params) -> Any:
        return await self._send_media(p, "video")

    async def _api_sendAudio(self, p: _Params) -> Any:
        return await self._send_media(p, "audio")

    async def _api_sendDocument(self, p: _Params) -> Any:
        return await self._send_media(p, "document")

    async def _api_sendVoice(self, p: _Params) -> Any:
        return await self._send_media(p, "voice")

    async def _api_sendAnimation(self, p: _Params) -> Any:
        return await self._send_media(p, "animation")

    async def _api_sendSticker(self, p: _Params) -> Any:
        return await self._send_media(p, "sticker")

    async def _api_sendVideoNote(self, p: _Params) -> Any:
        return await self._send_media(p, "video_note")

    async def _api_editMessageText(self, p: _Params) -> Any:
        chat, message = self._message_to_edit(p)
        raw_text = p.get_str("text")
        if not raw_text or not raw_text.strip():
            raise _bad(E.MESSAGE_TEXT_EMPTY)
        parse_mode = p.get_str("parse_mode")
        text, entities = format_text(raw_text, parse_mode, p.get_json("entities"))
        if not text:
            raise _bad(E.MESSAGE_TEXT_EMPTY)
        if utf16_len(text) > MAX_TEXT:
            raise _bad(E.EDIT_TOO_LONG)
        if message.text is None:
            raise _bad(E.NO_TEXT_TO_EDIT)
        markup, stored = self._edit_markup(p, message)
        if (
            text == message.text
            and entities == message.entities
            and markup == _inline_markup(message)
        ):
            raise _bad(E.NOT_MODIFIED)
        self._check_rate(chat)
        return self._apply_edit(
            chat,
            message,
            text=text,
            entities=entities,
            reply_markup=stored,
            source={"text": raw_text, "parse_mode": parse_mode},
        )

    async def _api_editMessageCaption(self, p: _Params) -> Any:
        chat, message = self._message_to_edit(p)
        if message.media is None:
            raise _bad(E.NO_CAPTION_TO_EDIT)
        raw_caption = p.get_str("caption") or ""
        caption, entities = format_text(
            raw_caption, p.get_str("parse_mode"), p.get_json("caption_entities")
        )
        if utf16_len(caption) > MAX_CAPTION:
            raise _bad(E.CAPTION_TOO_LONG)
        new_caption = caption or None
        markup, stored = self._edit_markup(p, message)
        unchanged = (
            new_caption == message.caption and entities == message.caption_entities
        )
        if unchanged and markup == _inline_markup(message):
            raise _bad(E.NOT_MODIFIED)
        self._check_rate(chat)
        return self._apply_edit(
            chat,
            message,
            caption=new_caption,
            caption_entities=entities,
            reply_markup=stored,
        )

    async def _api_editMessageReplyMarkup(self, p: _Params) -> Any:
        chat, message = self._message_to_edit(p)
        markup, stored = self._edit_markup(p, message)
        if markup == _inline_markup(message):
            raise _bad(E.NOT_MODIFIED)
        self._check_rate(chat)
        return self._apply_edit(chat, message, reply_markup=stored)

    async def _api_deleteMessage(self, p: _Params) -> Any:
        chat = self._target_chat(p)
        message_id = p.get_int("message_id", required=True)
        message = chat.messages.get(message_id or 0)
        if message is None or message.deleted:
            raise _bad(E.MESSAGE_TO_DELETE_NOT_FOUND)
        message.deleted = True
        self._event(chat, "delete", message)
        return True

    async def _api_sendChatAction(self, p: _Params) -> Any:
        chat = self._target_chat(p)
        action = p.get_str("action")
        if action not in CHAT_ACTIONS:
            raise _bad(E.WRONG_CHAT_ACTION)
        record = ChatAction(chat.chat_id, action, _now())
        self.chat_actions.append(record)
        self._event(chat, "chat_action", data=action)
        return True

    async def _api_getChat(self, p: _Params) -> Any:
        raw = p.raw("chat_id")
        try:
            chat = self._chats[int(raw)]
        except (TypeError, ValueError, KeyError):
            raise _bad(E.CHAT_NOT_FOUND) from None
        gifts = (
            "unlimited_gifts",
            "limited_gifts",
            "unique_gifts",
            "premium_subscription",
            "gifts_from_channels",
        )
        return {
            **chat.chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": dict.fromkeys(gifts, True),
        }

    # -------------------------------------------------------------- callbacks

    async def _api_answerCallbackQuery(self, p: _Params) -> Any:
        query_id = p.get_str("callback_query_id")
        record = self.callback_queries.get(query_id or "")
        text = p.get_str("text")
        if text is not None and utf16_len(text) > MAX_CALLBACK_ANSWER:
            raise _bad(E.CALLBACK_ANSWER_TOO_LONG)
        if record is None:
            raise _bad(E.QUERY_TOO_OLD)
        if (
            record.answer is not None
            or _now() - record.created_at > self.callback_answer_timeout
        ):
            record.late_answers += 1
            raise _bad(E.QUERY_TOO_OLD)
        record.answer = CallbackAnswer(
            text, p.get_bool("show_alert"), p.get_str("url"), p.get_int("cache_time")
        )
        chat = self._chats.get(record.chat_id)
        if chat is not None:
            self._event(chat, "callback_answer", data=record)
        return True

    # --------------------------------------------------------------- commands

    async def _api_setMyCommands(self, p: _Params) -> Any:
        commands = p.get_json("commands", what="commands")
        if not isinstance(commands, list):
            raise _bad("Bad Request: commands is empty")
        if len(commands) > 100:
            raise _bad(E.TOO_MANY_COMMANDS)
        for c in commands:
            if not isinstance(c, dict) or not _COMMAND_RE.match(
                str(c.get("command", "")).lower()
            ):
                raise _bad(E.BOT_COMMAND_INVALID)
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                raise _bad(E.BOT_COMMAND_DESCRIPTION_INVALID)
        self.commands[self._commands_key(p)] = commands
        return True

    async def _api_getMyCommands(self, p: _Params) -> Any:
        return self.commands.get(self._commands_key(p), [])

    async def _api_deleteMyCommands(self, p: _Params) -> Any:
        self.commands.pop(self._commands_key(p), None)
        return True

    @staticmethod
    def _commands_key(p: _Params) -> tuple[str, str]:
        scope = p.get_json("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), p.get_str("language_code") or ""

    # --------------------------------------------------------------- payments

    async def _api_sendInvoice(self, p: _Params) -> Any:
        chat = self._target_chat(p)
        title = p.get_str("title") or ""
        description = p.get_str("description") or ""
        payload = p.get_str("payload") or ""
        currency = p.get_str("currency") or ""
        prices = p.get_json("prices", what="prices")
        provider_token = p.get_str("provider_token") or ""
        if currency != "XTR":
            raise _bad(
                E.PAYMENT_PROVIDER_INVALID if not provider_token else E.CURRENCY_INVALID
            )
        if provider_token:
            raise _bad(E.PAYMENT_PROVIDER_INVALID)
        if not 1 <= len(title) <= 32:
            raise _bad(E.INVOICE_TITLE_INVALID)
        if not 1 <= len(description) <= 255:
            raise _bad(E.INVOICE_DESCRIPTION_INVALID)
        if not 1 <= len(payload.encode("utf-8")) <= 128:
            raise _bad(E.INVOICE_PAYLOAD_INVALID)
        if (
            not isinstance(prices, list)
            or len(prices) != 1
            or not isinstance(prices[0], dict)
        ):
            raise _bad(E.STARS_INVOICE_INVALID)
        amount = prices[0].get("amount")
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int)
            or amount <= 0
            or not prices[0].get("label")
        ):
            raise _bad(E.TOTAL_AMOUNT_INVALID)
        markup = validate_reply_markup(
            p.get_json("reply_markup", what="reply keyboard markup")
        )
        if markup is not None:
            first = (markup.get("inline_keyboard") or [[{}]])[0][:1]
            if not first or "pay" not in first[0]:
                raise _bad("Bad Request: REPLY_MARKUP_BUY_EMPTY")
        reply_to = self._reply_to(chat, p)
        self._check_rate(chat)
        invoice = Invoice(
            title,
            description,
            payload,
            currency,
            prices,
            p.get_str("start_parameter") or "",
        )
        message = self._new_message(
            chat,
            from_bot=True,
            invoice=invoice,
            reply_markup=markup,
            reply_to_message_id=reply_to,
        )
        return message.to_api()

    async def _api_answerPreCheckoutQuery(self, p: _Params) -> Any:
        record = self.pre_checkouts.get(p.get_str("pre_checkout_query_id") or "")
        ok = p.get_bool("ok")
        error_message = p.get_str("error_message")
        if not ok and not error_message:
            raise _bad(E.PRE_CHECKOUT_ERROR_REQUIRED)
        if record is None or record.ok is not None or record.expired:
            raise _bad(E.QUERY_TOO_OLD)
        if _now() - record.created_at > self.pre_checkout_timeout:
            record.expired = True
            raise _bad(E.QUERY_TOO_OLD)
        record.ok = ok
        record.error_message = None if ok else error_message
        chat = self._chats.get(record.chat_id)
        if chat is not None:
            self._event(chat, "pre_checkout_answer", data=record)
        return True

    async def _api_refundStarPayment(self, p: _Params) -> Any:
        user_id = p.get_int("user_id", required=True)
        charge = self.charges.get(p.get_str("telegram_payment_charge_id") or "")
        if charge is None or charge.user_id != user_id:
            raise _bad(E.CHARGE_NOT_FOUND)
        if charge.refunded:
            raise _bad(E.CHARGE_ALREADY_REFUNDED)
        charge.refunded = True
        chat = self._chats.get(charge.chat_id)
        if chat is not None:
            self._event(chat, "refund", data=charge)
        return True

    async def _api_getStarTransactions(self, p: _Params) -> Any:
        transactions = []
        for charge in self.charges.values():
            partner = {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": self._chats[charge.chat_id].user,
                "invoice_payload": charge.payload,
            }
            transactions.append(
                {
                    "id": charge.charge_id,
                    "amount": charge.amount,
                    "date": charge.date,
                    "source": partner,
                }
            )
            if charge.refunded:
                transactions.append(
                    {
                        "id": charge.charge_id,
                        "amount": charge.amount,
                        "date": charge.date,
                        "receiver": partner,
                    }
                )
        offset = p.get_int("offset") or 0
        limit = p.get_int("limit") or 100
        return {"transactions": transactions[offset : offset + limit]}

    # ---------------------------------------------------------------- files

    async def _api_getFile(self, p: _Params) -> Any:
        f = self.files.get(p.get_str("file_id") or "")
        if f is None:
            raise _bad(E.INVALID_FILE_ID)
        if f.size > MAX_DOWNLOAD:
            raise _bad(E.FILE_TOO_BIG)
        return {
            "file_id": f.file_id,
            "file_unique_id": f.file_unique_id,
            "file_size": f.size,
            "file_path": self._file_path(f),
        }

    # ------------------------------------------------- user-side entry points

    def _callback_query(
        self,
        chat: _Chat,
        data: str | None,
        message: ChatMessage | None,
        message_id: int | None,
    ) -> CallbackRecord:
        query_id = f"{chat.chat_id}{next(self._query_seq):08d}"
        if message is not None and not message.deleted:
            message_payload = message.to_api()
            message_id = message.message_id
        else:
            # Telegram sends an InaccessibleMessage (date 0) for deleted / unknown messages.
            message_payload = {
                "chat": chat.chat,
                "message_id": message_id or 0,
                "date": 0,
            }
        record = CallbackRecord(query_id, chat.chat_id, data, message_id, _now())
        self.callback_queries[query_id] = record
        update: dict[str, Any] = {
            "id": query_id,
            "from": chat.user,
            "message": message_payload,
            "chat_instance": str(chat.chat_id * 7919),
        }
        if data is not None:
            update["data"] = data
        self._event(chat, "callback_query", message, data=record)
        self._queue("callback_query", update)
        return record

    def _pre_checkout(self, chat: _Chat, invoice: Invoice) -> PreCheckoutRecord:
        query_id = f"pcq{chat.chat_id}{next(self._query_seq):08d}"
        record = PreCheckoutRecord(
            query_id, chat.chat_id, chat.chat_id, invoice, _now()
        )
        self.pre_checkouts[query_id] = record
        self._event(chat, "pre_checkout_query", data=record)
        self._queue(
            "pre_checkout_query",
            {
                "id": query_id,
                "from": chat.user,
                "currency": invoice.currency,
                "total_amount": invoice.total_amount,
                "invoice_payload": invoice.payload,
            },
        )
        return record

    def _complete_payment(
        self, chat: _Chat, invoice: Invoice
    ) -> tuple[Charge, ChatMessage]:
        charge = Charge(
            charge_id=f"stxFAKE{secrets.token_urlsafe(24)}",
            user_id=chat.chat_id,
            chat_id=chat.chat_id,
            amount=invoice.total_amount,
            currency=invoice.currency,
            payload=invoice.payload,
            date=int(time.time()),
        )
        self.charges[charge.charge_id] = charge
        self._event(chat, "payment", data=charge)
        message = self._user_message(
            chat,
            extra={
                "successful_payment": {
                    "currency": charge.currency,
                    "total_amount": charge.amount,
                    "invoice_payload": charge.payload,
                    "telegram_payment_charge_id": charge.charge_id,
                    "provider_payment_charge_id": "",
                }
            },
        )
        return charge, message

    def _set_blocked(self, chat: _Chat, blocked: bool) -> None:
        if chat.blocked == blocked:
            return
        chat.blocked = blocked
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        self._queue(
            "my_chat_member",
            {
                "chat": chat.chat,
                "from": chat.user,
                "date": int(time.time()),
                "old_chat_member": {
                    "status": old,
                    "user": self.bot_user,
                    **({"until_date": 0} if old == "kicked" else {}),
                },
                "new_chat_member": {
                    "status": new,
                    "user": self.bot_user,
                    **({"until_date": 0} if new == "kicked" else {}),
                },
            },
        )


def _inline_markup(message: ChatMessage) -> dict[str, Any] | None:
    markup = message.reply_markup
    return markup if markup is not None and "inline_keyboard" in markup else None


def _allowed(kind: str, allowed: Iterable[str] | None) -> bool:
    if allowed:
        return kind in allowed
    return kind not in OPT_IN_UPDATE_TYPES


def _json_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)
