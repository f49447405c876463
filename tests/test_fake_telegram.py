"""The fake Telegram server, driven by a real aiogram Bot and Dispatcher.

Every test talks HTTP to ``FakeTelegram`` through aiogram, so what is proven
here is what the engine will see: real exceptions, real objects, real timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandStart
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import ClientSession, web

from engine.testing import FakeTelegram, NoReply, TelegramErrors, UserClient

USER_ID = 42


# ----------------------------------------------------------------- fixtures


def make_bot(tg: FakeTelegram, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url))
    return Bot(token or tg.token, session=session)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server
        assert server.internal_errors == []


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(tg)
    yield bot
    await bot.session.close()


@pytest.fixture
def user(tg: FakeTelegram) -> UserClient:
    return tg.user(user_id=USER_ID, first_name="Ann", started=True)


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=t, callback_data=d) for t, d in buttons]
        ]
    )


def demo_router() -> Router:
    """A tiny bot: /start menu, a callback, Stars purchase, photo download, echo."""
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Menu", reply_markup=keyboard(("Ping", "ping")))

    @router.callback_query(F.data == "ping")
    async def ping(query: CallbackQuery) -> None:
        await query.answer("pong")
        assert isinstance(query.message, Message)
        await query.message.edit_text("Pong!")

    @router.message(Command("buy"))
    async def buy(message: Message) -> None:
        await message.answer_invoice(
            title="50 credits",
            description="Credits for generations",
            payload="credits:50",
            currency="XTR",
            prices=[LabeledPrice(label="Credits", amount=50)],
        )

    @router.pre_checkout_query()
    async def pre_checkout(query: PreCheckoutQuery) -> None:
        await query.answer(ok=True)

    @router.message(F.successful_payment)
    async def paid(message: Message) -> None:
        assert message.successful_payment is not None
        await message.answer(
            f"paid {message.successful_payment.telegram_payment_charge_id}"
        )

    @router.message(F.photo)
    async def photo(message: Message, bot: Bot) -> None:
        assert message.photo
        data = await bot.download(message.photo[-1].file_id)
        assert data is not None
        await message.answer(f"photo {len(data.read())} bytes")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        assert message.text is not None
        await message.answer(message.text)

    return router


@contextlib.asynccontextmanager
async def polling(
    tg: FakeTelegram, bot: Bot, router: Router
) -> AsyncIterator[Dispatcher]:
    dp = Dispatcher()
    dp.include_router(router)
    task = asyncio.create_task(
        dp.start_polling(
            bot, handle_signals=False, close_bot_session=False, polling_timeout=5
        )
    )
    await tg.wait_until(lambda: tg.is_polling or task.done())
    try:
        yield dp
    finally:
        if not task.done():
            await dp.stop_polling()
        await task


# ------------------------------------------------------------ receiving


async def test_polling_delivers_updates_to_a_dispatcher(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    async with polling(tg, bot, demo_router()):
        await user.send_text("hello")
        reply = await user.wait_reply()
        await user.settle()  # the next getUpdates (with offset) confirms the update
    assert reply.text == "hello"
    assert reply.from_bot and reply.chat_id == USER_ID
    assert tg.pending_update_count == 0


async def test_updates_are_redelivered_until_an_offset_confirms_them(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    await user.send_text("one")
    await user.send_text("two")

    first = await bot.get_updates(timeout=0)
    again = await bot.get_updates(timeout=0)
    after = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)

    assert [u.message.text for u in first if u.message] == ["one", "two"]
    assert [u.update_id for u in again] == [u.update_id for u in first]
    assert after == []
    assert tg.pending_update_count == 0


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await tg.wait_until(lambda: tg.is_polling)
    await user.send_text("wake up")
    updates = await asyncio.wait_for(poll, 2)
    assert [u.message.text for u in updates if u.message] == ["wake up"]


async def test_second_get_updates_cuts_the_older_one_with_conflict(
    tg: FakeTelegram, bot: Bot
) -> None:
    other = make_bot(tg)
    try:
        older = asyncio.create_task(bot.get_updates(timeout=10))
        await tg.wait_until(lambda: tg.is_polling)
        assert await other.get_updates(timeout=0) == []
        with pytest.raises(
            TelegramConflictError, match="terminated by other getUpdates request"
        ):
            await older
    finally:
        await other.session.close()


async def test_get_updates_while_webhook_is_set_conflicts(
    tg: FakeTelegram, bot: Bot
) -> None:
    await bot.set_webhook("http://127.0.0.1:9/hook")
    with pytest.raises(
        TelegramConflictError,
        match="can't use getUpdates method while webhook is active",
    ):
        await bot.get_updates(timeout=0)
    await bot.delete_webhook()
    assert await bot.get_updates(timeout=0) == []


async def test_delete_webhook_can_drop_pending_updates(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    await user.send_text("stale")
    await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates(timeout=0) == []


async def test_raw_garbage_update_is_delivered_verbatim(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    update_id = await user.send_raw({"weird_field": {"x": 1}})
    status, body = await tg.call("getUpdates", {"timeout": 0})
    assert status == 200
    assert body["result"] == [{"update_id": update_id, "weird_field": {"x": 1}}]


async def test_webhook_posts_updates_with_secret_header_to_aiogram(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    dp = Dispatcher()
    dp.include_router(demo_router())
    app = web.Application()
    SimpleRequestHandler(dp, bot, secret_token="s3cret-Token_1").register(
        app, path="/hook"
    )
    seen_secrets: list[str | None] = []

    @web.middleware
    async def spy(request: web.Request, handler):  # type: ignore[no-untyped-def]
        seen_secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        return await handler(request)

    app.middlewares.append(spy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await bot.set_webhook(
            f"http://127.0.0.1:{port}/hook", secret_token="s3cret-Token_1"
        )
        await user.send_text("via webhook")
        reply = await user.wait_reply()
    finally:
        await runner.cleanup()
    assert reply.text == "via webhook"
    assert seen_secrets == ["s3cret-Token_1"]


async def test_webhook_retries_non_2xx_answers(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    statuses = iter([500, 502, 200])
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=next(statuses))

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        await bot.set_webhook(f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
        await user.send_text("retry me")
        await tg.settle()
    finally:
        await runner.cleanup()
    assert [u["message"]["text"] for u in received] == ["retry me"] * 3
    assert tg.webhook_failures == []
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 502 Bad Gateway"


# ------------------------------------------------------------- sending


async def test_unknown_token_is_unauthorized(tg: FakeTelegram) -> None:
    intruder = make_bot(tg, token="999:WRONG")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await intruder.get_me()
    finally:
        await intruder.session.close()


async def test_get_query_json_body_and_error_shape_over_raw_http(
    tg: FakeTelegram, user: UserClient
) -> None:
    api = f"{tg.base_url}/bot{tg.token}"
    async with ClientSession() as http:
        async with http.get(
            f"{api}/sendMessage", params={"chat_id": str(USER_ID), "text": "via GET"}
        ) as resp:
            got = (resp.status, await resp.json())
        markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        body = {"chat_id": USER_ID, "text": "via JSON", "reply_markup": markup}
        async with http.post(f"{api}/SENDMESSAGE", json=body) as resp:
            posted = (resp.status, await resp.json())
        async with http.post(f"{api}/sendMessage", json={"chat_id": USER_ID}) as resp:
            failed = (resp.status, await resp.json())
        async with http.post(f"{api}/noSuchMethod") as resp:
            missing = (resp.status, await resp.json())
    assert (
        got[0] == 200 and got[1]["ok"] is True and got[1]["result"]["text"] == "via GET"
    )
    assert posted[0] == 200 and posted[1]["result"]["reply_markup"] == markup
    assert failed == (
        400,
        {
            "ok": False,
            "error_code": 400,
            "description": TelegramErrors.MESSAGE_TEXT_EMPTY,
        },
    )
    assert missing == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found"},
    )
    assert [m.text for m in user.bot_messages] == ["via GET", "via JSON"]
    assert tg.calls["sendMessage"] == 3


async def test_get_me_describes_the_bot(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot and me.id == 123456 and me.username == tg.bot_username


async def test_unknown_chat_is_not_found(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(777, "anyone?")


async def test_bot_cannot_message_a_user_who_never_started_it(
    tg: FakeTelegram, bot: Bot
) -> None:
    tg.user(user_id=7, first_name="Shy")
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(7, "hi")


async def test_blocked_user_gives_forbidden(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    await user.block()
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER_ID, "still there?")


async def test_text_longer_than_4096_is_rejected(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    await bot.send_message(USER_ID, "x" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER_ID, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER_ID, "😀" * 2049)  # 4098 UTF-16 code units


async def test_empty_text_is_rejected(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER_ID, "   ")


async def test_caption_longer_than_1024_is_rejected(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    photo = BufferedInputFile(b"\xff\xd8fake-jpeg", "p.jpg")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(USER_ID, photo, caption="c" * 1025)


async def test_broken_html_is_rejected_like_telegram(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    with pytest.raises(
        TelegramBadRequest,
        match=re.escape('can\'t parse entities: Unsupported start tag "br"'),
    ):
        await bot.send_message(USER_ID, "line<br>line", parse_mode="HTML")
    sent = await bot.send_message(USER_ID, "<b>bold</b> &amp; plain", parse_mode="HTML")
    assert sent.text == "bold & plain"
    assert [(e.type, e.offset, e.length) for e in sent.entities or []] == [
        ("bold", 0, 4)
    ]


async def test_unescaped_markdown_v2_is_rejected(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    with pytest.raises(TelegramBadRequest, match="Character '.' is reserved"):
        await bot.send_message(USER_ID, "Price: 5.00", parse_mode="MarkdownV2")


async def test_callback_data_over_64_bytes_is_rejected(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    await bot.send_message(
        USER_ID, "ok", reply_markup=keyboard(("A", "я" * 32))
    )  # 64 bytes
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(
            USER_ID, "too long", reply_markup=keyboard(("A", "я" * 33))
        )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(
            USER_ID, "too long", reply_markup=keyboard(("A", "x" * 65))
        )


async def test_oversized_keyboards_are_rejected(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    wide = keyboard(*[(str(i), str(i)) for i in range(9)])
    with pytest.raises(TelegramBadRequest, match="REPLY_MARKUP_TOO_LONG"):
        await bot.send_message(USER_ID, "wide", reply_markup=wide)
    tall = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=str(i), callback_data=str(i))]
            for i in range(101)
        ]
    )
    with pytest.raises(TelegramBadRequest, match="REPLY_MARKUP_TOO_LONG"):
        await bot.send_message(USER_ID, "tall", reply_markup=tall)


async def test_identical_edit_is_not_modified(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    sent = await bot.send_message(USER_ID, "same", reply_markup=keyboard(("A", "a")))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "same",
            chat_id=USER_ID,
            message_id=sent.message_id,
            reply_markup=keyboard(("A", "a")),
        )
    await bot.edit_message_text("changed", chat_id=USER_ID, message_id=sent.message_id)
    [shown] = user.bot_messages
    assert (shown.text, shown.edited, shown.buttons) == ("changed", True, [])


async def test_edit_without_markup_drops_only_the_inline_keyboard(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    sent = await bot.send_message(USER_ID, "pick", reply_markup=keyboard(("A", "a")))
    await bot.edit_message_reply_markup(chat_id=USER_ID, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=USER_ID, message_id=sent.message_id)
    assert user.last_message is not None and user.last_message.buttons == []


async def test_editing_an_unknown_message_fails(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER_ID, message_id=999)


async def test_rate_limit_gives_retry_after(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    tg.rate_limit_per_chat = (3, 10.0)
    for i in range(3):
        await bot.send_message(USER_ID, f"msg {i}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER_ID, "one too many")
    assert 1 <= caught.value.retry_after <= 10
    assert "Too Many Requests: retry after" in caught.value.message
    assert len(user.bot_messages) == 3


async def test_injected_failure_hits_only_the_next_call(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    tg.fail_next("sendMessage", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER_ID, "first")
    await bot.send_message(USER_ID, "second")
    assert caught.value.retry_after == 7
    assert tg.calls["sendMessage"] == 2


async def test_chat_actions_are_recorded(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    await bot.send_chat_action(USER_ID, "typing")
    with pytest.raises(TelegramBadRequest, match="wrong parameter action"):
        await bot.send_chat_action(USER_ID, "dancing")  # type: ignore[arg-type]
    assert user.chat_actions == ["typing"]


# ------------------------------------------------------------ callbacks


async def test_clicking_a_button_reaches_the_handler(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    async with polling(tg, bot, demo_router()):
        await user.send_command("start")
        menu = await user.wait_reply()
        buttons_before = menu.button_texts
        query = await user.click("Ping")
        answer = await user.wait_callback_answer(query)
        edited = await user.wait_edit(menu)
    assert buttons_before == [["Ping"]]
    assert (
        edited is menu and menu.buttons == []
    )  # edit_text without markup drops the keyboard
    assert answer.text == "pong"
    assert edited.text == "Pong!" and edited.edited


async def test_late_callback_answer_is_too_old(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    tg.callback_answer_timeout = 0.1
    await bot.send_message(USER_ID, "Menu", reply_markup=keyboard(("Go", "go")))
    query = await user.click("Go")
    [update] = await bot.get_updates(timeout=0)
    assert update.callback_query is not None and update.callback_query.data == "go"
    await asyncio.sleep(0.2)  # the bot being slow, on purpose
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(update.callback_query.id)
    assert query.answer is None


async def test_callback_query_can_be_answered_only_once(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    await bot.send_message(USER_ID, "Menu", reply_markup=keyboard(("Go", "go")))
    query = await user.click("Go")
    await bot.answer_callback_query(query.id, text="done")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)
    assert query.answer is not None and query.answer.text == "done"


async def test_clicking_a_missing_button_lists_the_visible_ones(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    await bot.send_message(
        USER_ID, "Menu", reply_markup=keyboard(("Yes", "y"), ("No", "n"))
    )
    with pytest.raises(LookupError, match=r"visible buttons: \['Yes', 'No'\]"):
        await user.click("Maybe")


# ---------------------------------------------------------------- files


async def test_bot_upload_is_downloadable_through_get_file(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    sent = await bot.send_document(
        USER_ID, BufferedInputFile(b"hello world", "hello.txt"), caption="here"
    )
    shown = await user.wait_reply()
    assert shown.media is not None
    assert (shown.media.kind, shown.media.data, shown.caption) == (
        "document",
        b"hello world",
        "here",
    )
    assert sent.document is not None and sent.document.file_name == "hello.txt"

    file = await bot.get_file(sent.document.file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == b"hello world"


async def test_resending_by_file_id_works_and_bad_ids_fail(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    sent = await bot.send_document(USER_ID, BufferedInputFile(b"abc", "a.bin"))
    assert sent.document is not None
    again = await bot.send_document(USER_ID, sent.document.file_id)
    assert (
        again.document is not None
        and again.document.file_unique_id == sent.document.file_unique_id
    )
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(USER_ID, "nonsense-id")
    with pytest.raises(TelegramBadRequest, match="type of file mismatch"):
        await bot.send_photo(USER_ID, sent.document.file_id)


async def test_user_photo_is_downloaded_by_the_bot(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    async with polling(tg, bot, demo_router()):
        await user.send_photo(size=12_345)
        reply = await user.wait_reply()
    assert reply.text == "photo 12345 bytes"


async def test_files_over_20_mb_cannot_be_fetched(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    message = await user.send_video(size=25 * 1024 * 1024)
    assert message.media is not None
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(message.media.file_id)


# ------------------------------------------------------------- payments


async def test_stars_invoice_payment_and_refund(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    async with polling(tg, bot, demo_router()):
        await user.send_command("buy")
        invoice = await user.wait_reply()
        payment = await user.pay()
        thanks = await user.wait_reply()
    assert invoice.invoice is not None and invoice.invoice.total_amount == 50
    assert payment.ok and payment.charge_id is not None
    assert thanks.text == f"paid {payment.charge_id}"

    assert await bot.refund_star_payment(USER_ID, payment.charge_id) is True
    with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
        await bot.refund_star_payment(USER_ID, payment.charge_id)
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(USER_ID, "stxNOPE")


async def test_unanswered_pre_checkout_fails_the_payment(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    tg.pre_checkout_timeout = 0.1
    await bot.send_invoice(
        USER_ID,
        title="T",
        description="D",
        payload="p",
        currency="XTR",
        prices=[LabeledPrice(label="x", amount=1)],
    )
    payment = await user.pay()
    [update] = await bot.get_updates(timeout=0)
    assert update.pre_checkout_query is not None
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_pre_checkout_query(update.pre_checkout_query.id, ok=True)
    assert payment.status == "timeout" and tg.charges == {}


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"currency": "USD"}, TelegramErrors.PAYMENT_PROVIDER_INVALID),
        (
            {"provider_token": "284685063:TEST:abc"},
            TelegramErrors.PAYMENT_PROVIDER_INVALID,
        ),
        (
            {
                "prices": [
                    LabeledPrice(label="a", amount=1),
                    LabeledPrice(label="b", amount=2),
                ]
            },
            "STARS_INVOICE_INVALID",
        ),
        ({"title": "t" * 33}, "INVOICE_TITLE_INVALID"),
        ({"description": "d" * 256}, "INVOICE_DESCRIPTION_INVALID"),
        ({"payload": "p" * 129}, "INVOICE_PAYLOAD_INVALID"),
    ],
)
async def test_stars_invoice_rules(
    tg: FakeTelegram, bot: Bot, user: UserClient, overrides: dict, error: str
) -> None:
    kwargs = {
        "title": "Title",
        "description": "Description",
        "payload": "payload",
        "currency": "XTR",
        "prices": [LabeledPrice(label="Stars", amount=10)],
        **overrides,
    }
    with pytest.raises(TelegramBadRequest, match=error.removeprefix("Bad Request: ")):
        await bot.send_invoice(USER_ID, **kwargs)


# ------------------------------------------------------------- settling


async def test_settle_waits_for_a_slow_handler(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    router = Router()

    @router.message()
    async def slow(message: Message) -> None:
        await asyncio.sleep(0.05)
        await message.answer("done")

    async with polling(tg, bot, router):
        await user.send_text("go")
        await tg.settle(quiet=0.3)
        assert [m.text for m in user.unread()] == ["done"]


async def test_wait_reply_reports_the_transcript_on_silence(
    tg: FakeTelegram, bot: Bot, user: UserClient
) -> None:
    await user.send_text("anyone?")
    with pytest.raises(NoReply, match=re.escape("#1 user: anyone?")):
        await user.wait_reply(timeout=0.05)
