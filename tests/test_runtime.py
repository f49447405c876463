"""End-to-end guarantees of the runtime: real aiogram, the fake Telegram, real storage."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from botkit import Gate, action, registry, write_bot
from engine.actions.spec import ActionResult
from engine.testing.harness import BotUnderTest

FLOW = """\
flow: main
start: menu
default: {say: "Use the buttons, please."}
states:
  menu:
    say: "Menu"
    buttons:
      - [{text: "Echo", to: echo}, {text: "Slow", to: slow}]
      - [{text: "Boom", to: boom}]
  echo:
    say: "Send me text"
    on:
      text: {say: "echo: {input.text}"}
    buttons:
      - [{text: "Back", to: menu}]
  slow:
    say: "Working"
    do: test.gate
    outcomes: {done: finished}
  finished:
    say: "Finished"
    buttons:
      - [{text: "Back", to: menu}]
  boom:
    do: test.boom
    outcomes: {done: menu}
"""


async def _boom(context, params) -> ActionResult:
    raise RuntimeError("the provider exploded")


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def bot_dir(tmp_path):
    return write_bot(tmp_path / "bot", FLOW)


def _registry(gate: Gate):
    return registry(action("test.gate", gate.handler), action("test.boom", _boom))


@pytest.fixture
async def bot(bot_dir, gate, storage_url):
    async with BotUnderTest([bot_dir], registry=_registry(gate), storage_url=storage_url) as running:
        yield running


async def test_every_kind_of_user_input_gets_an_answer(bot):
    user = bot.user()
    await user.send_command("start")
    await user.wait_reply()
    senders = [
        lambda: user.send_text("hello"),
        lambda: user.send_command("nonsense"),
        user.send_photo, user.send_document, user.send_video, user.send_audio, user.send_voice,
        user.send_sticker,
        lambda: user.send_location(52.5, 13.4),
        lambda: user.send_contact("+100000"),
    ]
    for send in senders:
        await send()
        reply = await user.wait_reply()
        assert reply.text == "Use the buttons, please."


async def test_a_button_press_is_answered_before_slow_work(bot, gate):
    user = bot.user()
    await user.send_command("start")
    await user.wait_reply()
    query = await user.click("Slow")
    await user.wait_callback_answer(query, timeout=5)
    await asyncio.wait_for(gate.entered.wait(), 5)
    assert not gate.release.is_set()  # the spinner stopped while the action was still running
    gate.release.set()
    finished = await user.wait_for(lambda m: m.content == "Finished")
    assert finished.button_texts == [["Back"]]


async def test_a_button_from_an_earlier_screen_is_stale(bot):
    user = bot.user()
    await user.send_command("start")
    menu = await user.wait_reply()
    echo_data = menu.buttons[0][0].callback_data  # the menu's "Echo", before the screen changes
    await user.click("Echo")
    await user.wait_edit(menu)
    await user.send_text("one")
    await user.wait_reply()
    stale = await user.click_data(echo_data, message=menu)
    answer = await user.wait_callback_answer(stale)
    assert "out of date" in answer.text
    current = await user.wait_reply()
    assert current.text == "Send me text"  # the current screen again, the press not acted on


async def test_a_button_of_another_users_message_is_stale(bot):
    ann, bob = bot.user(1, "Ann"), bot.user(2, "Bob")
    for _ in range(3):  # Ann's chat runs ahead, so her menu's message id is not one of Bob's
        await ann.send_command("start")
        menu = await ann.wait_reply()
    await bob.send_command("start")
    await bob.wait_reply()
    query = await bob.click_data(menu.buttons[0][0].callback_data, message=menu.message_id)
    assert "out of date" in (await bob.wait_callback_answer(query)).text
    assert (await bob.wait_reply()).text == "Menu"
    await bot.settle()
    assert [m.text for m in ann.bot_messages] == ["Menu"] * 3  # Ann's conversation untouched


async def test_malformed_callback_data_gets_the_current_screen(bot):
    user = bot.user()
    await user.send_command("start")
    await user.wait_reply()
    query = await user.click_data("definitely:not:ours")
    assert "out of date" in (await user.wait_callback_answer(query)).text
    assert (await user.wait_reply()).text == "Menu"


async def test_a_button_from_an_older_flow_version_is_stale(tmp_path, gate):
    storage_url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    old_dir = write_bot(tmp_path / "v1", FLOW)
    new_dir = write_bot(tmp_path / "v2", FLOW.replace('say: "Send me text"', 'say: "Type something"'))
    async with BotUnderTest([old_dir], registry=_registry(gate), storage_url=storage_url) as v1:
        user = v1.user()
        await user.send_command("start")
        menu = await user.wait_reply()
        telegram = v1.telegram
        await v1.stop()
        async with BotUnderTest([new_dir], registry=_registry(gate), storage_url=storage_url,
                                telegram=telegram) as v2:
            query = await user.click("Echo", message=menu)
            assert "out of date" in (await user.wait_callback_answer(query)).text
            assert (await user.wait_reply()).text == "Menu"
            await user.click("Echo")
            assert (await user.wait_edit()).text == "Type something"
            await v2.settle()


async def test_an_action_error_apologizes_with_the_code_in_the_log(bot, caplog):
    caplog.set_level(logging.ERROR)
    user = bot.user()
    await user.send_command("start")
    await user.wait_reply()
    await user.click("Boom")
    apology = await user.wait_reply()
    code = re.search(r"Reference: (\w+)", apology.text).group(1)
    failures = [r for r in caplog.records if r.exc_info and "exploded" in str(r.exc_info[1])]
    assert failures and failures[0].correlation_id == code
    assert apology.button_texts == [["Echo", "Slow"], ["Boom"]]  # still in the menu, buttons work
    await user.click("Echo", message=apology)
    assert (await user.wait_edit(apology)).text == "Send me text"


async def test_one_users_messages_are_answered_in_order(bot):
    user = bot.user()
    await user.send_command("start")
    await user.wait_reply()
    await user.click("Echo")
    await user.wait_edit()
    for n in range(8):
        await user.send_text(f"m{n}")
    replies = await user.wait_replies(8)
    assert [r.text for r in replies] == [f"echo: m{n}" for n in range(8)]


async def test_a_slow_user_does_not_block_others(bot, gate):
    slow, quick = bot.user(1, "Slow"), bot.user(2, "Quick")
    await slow.send_command("start")
    await slow.wait_reply()
    await slow.click("Slow")
    await asyncio.wait_for(gate.entered.wait(), 5)
    await quick.send_command("start")
    assert (await quick.wait_reply()).text == "Menu"  # answered while the other user's action still runs
    gate.release.set()
    await slow.wait_for(lambda m: m.content == "Finished")


async def test_an_update_delivered_twice_is_handled_once(bot):
    user = bot.user()
    await user.send_command("start")
    await user.wait_reply()
    raw = {"update_id": 500, "message": {"message_id": 77, "date": 0, "chat": {"id": user.chat_id, "type": "private"},
                                           "from": user.user, "text": "/help"}}
    bot.telegram.inject_update(raw)
    bot.telegram.inject_update(raw)
    await bot.settle()
    texts = [m.text for m in user.bot_messages]
    assert texts.count("Help text") == 1


async def test_an_update_accepted_before_a_crash_is_handled_after_restart(tmp_path, gate, storage_url):
    bot_dir = write_bot(tmp_path / "bot", FLOW)
    async with BotUnderTest([bot_dir], registry=_registry(gate), storage_url=storage_url) as first:
        user = first.user()
        await user.send_command("start")
        await user.wait_reply()
        await user.click("Slow")
        await asyncio.wait_for(gate.entered.wait(), 5)
        await first.crash()  # the process dies mid-action: nothing after this point runs
        assert gate.calls == 1
        gate.release.set()  # the restarted process will not block
        await first.start()
        finished = await user.wait_for(lambda m: m.content == "Finished", timeout=10)
        assert finished is not None
        assert gate.calls == 2  # the accepted press was handled again after the restart


async def test_telegram_rate_limits_are_waited_out(bot_dir, gate):
    from engine.testing import FakeTelegram

    async with FakeTelegram(rate_limit_per_chat=(3, 1.0)) as telegram:
        async with BotUnderTest([bot_dir], registry=_registry(gate), telegram=telegram) as bot:
            user = bot.user()
            await user.send_command("start")
            await user.wait_reply()
            await user.click("Echo")
            await user.wait_edit()
            for n in range(6):
                await user.send_text(f"m{n}")
            replies = await user.wait_replies(6, timeout=20)
            assert [r.text for r in replies] == [f"echo: m{n}" for n in range(6)]
            assert telegram.errors("sendMessage"), "the fake should have answered 429 at least once"


async def test_a_flooding_user_gets_one_slow_down_and_others_are_served(bot_dir, gate):
    async with BotUnderTest([bot_dir], registry=_registry(gate), max_pending_per_user=3) as bot:
        flood, other = bot.user(1, "Flood"), bot.user(2, "Other")
        await flood.send_command("start")
        await flood.wait_reply()
        await flood.click("Slow")
        await asyncio.wait_for(gate.entered.wait(), 5)
        for n in range(12):
            await flood.send_text(f"spam {n}")
        await other.send_command("start")
        assert (await other.wait_reply()).text == "Menu"
        await bot.telegram.settle()
        slow_downs = [m for m in flood.bot_messages if "faster than I can answer" in (m.text or "")]
        assert len(slow_downs) == 1
        gate.release.set()
        await bot.settle()


async def test_an_unreadable_update_is_answered_and_the_bot_goes_on(bot):
    user = bot.user()
    await user.send_command("start")
    await user.wait_reply()
    bot.telegram.inject_update({"message": {"chat": {"id": user.chat_id}, "text": 5}})
    notice = await user.wait_reply()
    assert "could not read" in notice.text
    await user.send_command("start")
    assert (await user.wait_reply()).text == "Menu"


async def test_the_guard_answers_a_path_that_said_nothing(tmp_path, caplog):
    from engine.language import load_project

    silent = FLOW.replace('  finished:\n    say: "Finished"\n', '  finished:\n')  # a state that shows nothing
    silent = silent.replace('[{text: "Boom", to: boom}]', '[{text: "Boom", to: boom}, {text: "Quiet", to: finished}]')
    project, findings = load_project([write_bot(tmp_path / "bot", silent)])
    assert not findings  # the shape is fine; only `flowgram check` would reject it (silent-state)
    caplog.set_level(logging.ERROR)
    gate = Gate()
    gate.release.set()
    async with BotUnderTest(project, registry=_registry(gate)) as bot:
        user = bot.user()
        await user.send_command("start")
        await user.wait_reply()
        await user.click("Quiet")
        notice = await user.wait_reply()
        assert "could not answer" in notice.text
    assert any("produced no visible answer" in r.getMessage() for r in caplog.records)


async def test_two_instances_cannot_silently_overwrite_a_conversation(bot_dir, gate, storage_url, caplog):
    """Two processes handle the same user at once: the second save is refused and logged, not lost silently."""
    from engine.runtime.engine import FlowEngine
    from engine.runtime.events import classify
    from engine.serve import make_bot
    from engine.storage import open_storage
    from engine.testing import FakeTelegram
    from engine.testing.harness import load_checked
    from aiogram.types import Update

    caplog.set_level(logging.ERROR)
    reg = _registry(gate)
    project = load_checked([bot_dir], reg)
    async with FakeTelegram() as telegram:
        user = telegram.user(started=True)
        storage = open_storage(storage_url)
        await storage.migrate()
        bot = make_bot(telegram.token, telegram.base_url)
        first, second = FlowEngine(project, reg, storage), FlowEngine(project, reg, storage)

        def update(update_id: int, **body):
            return classify(Update.model_validate({"update_id": update_id, **body}, context={"bot": bot}))

        chat = {"id": user.chat_id, "type": "private"}
        await first.handle(bot, update(1, message={"message_id": 1, "date": 0, "chat": chat, "from": user.user,
                                                   "text": "/start"}))
        menu = telegram.messages(user.chat_id)[-1]
        press_slow = update(2, callback_query={"id": "q1", "from": user.user, "chat_instance": "c",
                                               "data": menu.button("Slow").callback_data, "message": menu.to_api()})
        slow = asyncio.create_task(first.handle(bot, press_slow))  # loads version 1, then waits in the action
        await asyncio.wait_for(gate.entered.wait(), 5)
        await second.handle(bot, update(3, message={"message_id": 9, "date": 0, "chat": chat, "from": user.user,
                                                    "text": "/help"}))  # the other instance saves version 2
        gate.release.set()
        await slow  # its save of version 1 -> 2 is refused
        saved = await storage.load_conversation(user.chat_id, user.user_id)
        assert (saved.version, saved.state) == (2, "main.menu")  # the first write stands; nothing overwritten
        assert any("changed by another instance" in r.getMessage() for r in caplog.records)
        await bot.session.close()
        await storage.close()


# ------------------------------------------------- found by tests/test_reliability.py


@pytest.fixture
async def memory_bot(bot_dir, gate):
    async with BotUnderTest([bot_dir], registry=_registry(gate)) as running:
        yield running


async def test_a_nul_character_in_an_update_does_not_stop_the_bot(bot):
    """Storage cannot hold U+0000: the inbox refused such an update and the polling loop died with it."""
    user = bot.user()
    await user.send_command("start")
    await user.wait_reply()
    await user.click("Echo")
    await user.wait_edit()
    await user.send_text("a\x00b")
    assert (await user.wait_reply()).text == "echo: a\ufffdb"
    query = await user.click_data("forged\x00data")
    assert "out of date" in (await user.wait_callback_answer(query)).text
    await user.wait_reply()
    await user.send_text("still here")
    assert (await user.wait_reply()).text == "echo: still here"


async def test_an_update_of_a_type_aiogram_does_not_know_is_recorded_and_skipped(bot, caplog):
    """Logging its type raised UpdateTypeLookupError: never marked done, so replayed after every restart."""
    caplog.set_level(logging.ERROR)
    user = bot.user()
    await user.send_command("start")
    await user.wait_reply()
    bot.telegram.inject_update({"update_kind_from_the_future": {"x": 1}})
    bot.telegram.inject_update({})
    await bot.settle()
    assert await bot.storage.inbox_pending() == []
    assert not caplog.records
    await user.send_command("start")
    assert (await user.wait_reply()).text == "Menu"


async def test_a_command_ends_at_any_whitespace(memory_bot):
    """Telegram's bot_command entity ends at a newline or tab too: "/help\\nplease" is /help."""
    user = memory_bot.user()
    await user.send_command("start")
    await user.wait_reply()
    for text in ("/help\nplease", "/help\tplease"):
        await user.click("Echo")
        await user.wait_edit()
        await user.send_command(text)
        assert [m.text for m in await user.wait_replies(2)] == ["Help text", "Menu"]


async def test_callback_data_with_a_trailing_newline_is_not_ours(memory_bot):
    user = memory_bot.user()
    await user.send_command("start")
    menu = await user.wait_reply()
    query = await user.click_data(menu.button("Echo").callback_data + "\n", message=menu)
    assert "out of date" in (await user.wait_callback_answer(query)).text
    assert (await user.wait_reply()).text == "Menu"


async def test_a_press_from_a_user_who_blocked_the_bot_is_not_an_error(memory_bot, caplog):
    """Nothing can reach a user who blocked the bot: one refused call, no apology, no guard notice, no error."""
    caplog.set_level(logging.WARNING)
    user = memory_bot.user()
    await user.send_command("start")
    menu = await user.wait_reply()
    await user.block()
    query = await user.click("Echo", message=menu)
    await user.wait_callback_answer(query)  # answering the query still works
    await memory_bot.settle()
    assert [(c.method, c.error_code) for c in memory_bot.telegram.errors()] == [("editMessageText", 403)]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await user.unblock()
    await user.click("Echo", message=menu)  # the menu is still the current screen: the press was dropped
    assert (await user.wait_edit(menu)).text == "Send me text"
