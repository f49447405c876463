"""`charge:` steps end to end: real runtime, fake Telegram, the storage ledger as the wallet.

BotRuntime gets no wallet here, so these tests also prove that the default is the
storage ledger (StorageWallet). Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from botkit import LOCALE, MANIFEST, registry, write_bot
from engine.actions.context import ActionContext
from engine.actions.spec import ActionResult, ActionSpec, OutcomeKind
from engine.runtime.wallet import Hold, StorageWallet
from engine.storage import open_storage
from engine.testing.harness import BotUnderTest

PRICE = 10
USER = 7

# A bot that takes money must have /paysupport (the checker's missing-paysupport).
PAID_MANIFEST = MANIFEST + '  /paysupport: {say: "Write to support@example.com", to: main.menu}\n'

_OUTCOMES = """\
    outcomes:
      ok: {say: "Done! {charge.amount} credits spent, {charge.balance} left.", to: done}
      failed: {say: "It failed; your {charge.amount} credits are back.", to: menu}
      insufficient_funds: {say: "You need {charge.amount} credits; you have {charge.balance}.", to: menu}
"""

FLOW = (
    """\
flow: main
start: menu
default: {say: "Use the buttons, please."}
states:
  menu:
    say: "Menu"
    buttons:
      - [{text: "Generate", to: generate}, {text: "Fail", to: fail}]
      - [{text: "Boom", to: boom}]
  generate:
    do: test.paid
    with: {mode: ok}
    charge: %(price)d
%(outcomes)s\
  fail:
    do: test.paid
    with: {mode: failed}
    charge: %(price)d
%(outcomes)s\
  boom:
    do: test.paid
    with: {mode: boom}
    charge: %(price)d
%(outcomes)s\
  done:
    say: "Here is your picture"
    buttons:
      - [{text: "Back", to: menu}]
"""
    % {"price": PRICE, "outcomes": _OUTCOMES}
)


class PaidAction:
    """A chargeable test action: ends as `with: {mode: ...}` says, or raises for mode "boom".

    Set `hold_open` to keep it in flight until the test sets `release`.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.hold_open = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def handler(self, context: ActionContext, params: dict[str, Any]) -> ActionResult:
        self.calls += 1
        self.entered.set()
        if self.hold_open:
            await self.release.wait()
        if params["mode"] == "boom":
            raise RuntimeError("the provider exploded")
        return ActionResult(params["mode"])

    def spec(self) -> ActionSpec:
        return ActionSpec(
            name="test.paid",
            handler=self.handler,
            chargeable=True,
            outcomes={"ok": OutcomeKind.SUCCESS, "failed": OutcomeKind.FAILURE},
        )


@pytest.fixture
def paid() -> PaidAction:
    return PaidAction()


@pytest.fixture
def bot_dir(tmp_path):
    return write_bot(tmp_path / "bot", FLOW, manifest=PAID_MANIFEST, locale=LOCALE)


@pytest.fixture
async def bot(bot_dir, paid, storage_url):
    async with BotUnderTest([bot_dir], registry=registry(paid.spec()), storage_url=storage_url) as running:
        yield running


async def start(bot: BotUnderTest, credits: int):
    """A user with `credits` on the ledger, looking at the menu."""
    user = bot.user()
    if credits:
        assert await bot.storage.ledger_credit(user.user_id, credits, key="topup-1", reason="test top-up")
    await user.send_command("start")
    assert (await user.wait_reply()).text == "Menu"
    return user


async def history(bot: BotUnderTest, user) -> list[str]:
    return [entry.kind for entry in reversed(await bot.storage.ledger_entries(user.user_id))]


async def test_the_runtime_charges_through_the_storage_ledger_by_default(bot):
    assert isinstance(bot.runtime.engine.wallet, StorageWallet)
    assert bot.runtime.engine.wallet.storage is bot.storage


async def test_a_success_captures_the_charge(bot, paid):
    user = await start(bot, 100)
    await user.click("Generate")
    done = await user.wait_for(lambda m: (m.content or "").startswith("Done!"))
    assert done.text == "Done! 10 credits spent, 90 left."
    assert (await user.wait_for(lambda m: m.content == "Here is your picture")).button_texts == [["Back"]]
    await bot.settle()
    assert await bot.storage.ledger_balance(user.user_id) == 90
    assert await history(bot, user) == ["credit", "hold", "capture"]
    assert paid.calls == 1


async def test_a_failure_outcome_releases_the_charge_and_says_so(bot, paid):
    user = await start(bot, 100)
    await user.click("Fail")
    told = await user.wait_for(lambda m: (m.content or "").startswith("It failed"))
    assert told.text == "It failed; your 10 credits are back."
    await bot.settle()
    assert await bot.storage.ledger_balance(user.user_id) == 100
    assert await history(bot, user) == ["credit", "hold", "release"]
    assert paid.calls == 1


async def test_an_exception_in_the_action_releases_the_charge_and_apologizes(bot, paid):
    user = await start(bot, 100)
    await user.click("Boom")
    apology = await user.wait_reply()
    assert re.search(r"Reference: (\w+)", apology.text), apology.text
    assert apology.button_texts == [["Generate", "Fail"], ["Boom"]]  # still in the menu
    await bot.settle()
    assert await bot.storage.ledger_balance(user.user_id) == 100
    assert await history(bot, user) == ["credit", "hold", "release"]
    # the menu still works, and charges again normally
    await user.click("Generate", message=apology)
    assert (await user.wait_for(lambda m: (m.content or "").startswith("Done!"))).text == (
        "Done! 10 credits spent, 90 left."
    )
    await bot.settle()
    assert await bot.storage.ledger_balance(user.user_id) == 90


@pytest.mark.parametrize("credits", [0, PRICE - 1])
async def test_insufficient_funds_take_the_branch_and_charge_nothing(bot, paid, credits):
    user = await start(bot, credits)
    await user.click("Generate")
    told = await user.wait_for(lambda m: (m.content or "").startswith("You need"))
    assert told.text == f"You need 10 credits; you have {credits}."
    await bot.settle()
    assert paid.calls == 0  # the paid action never ran
    assert await bot.storage.ledger_balance(user.user_id) == credits
    assert await history(bot, user) == (["credit"] if credits else [])


async def test_a_top_up_makes_the_paid_button_work(bot, paid):
    user = await start(bot, 5)
    await user.click("Generate")
    await user.wait_for(lambda m: (m.content or "").startswith("You need"))
    await bot.settle()
    await bot.storage.ledger_credit(user.user_id, 20, key="topup-2", reason="stars payment")
    await user.click("Generate")  # back in the menu: its buttons work
    done = await user.wait_for(lambda m: (m.content or "").startswith("Done!"))
    assert done.text == "Done! 10 credits spent, 15 left."
    await bot.settle()
    assert await bot.storage.ledger_balance(user.user_id) == 15


async def test_a_double_click_on_the_paid_button_charges_once(bot, paid):
    user = await start(bot, 100)
    menu = user.last_message
    paid.hold_open = True  # the first press is still running when the second arrives
    first = await user.click("Generate", message=menu)
    await asyncio.wait_for(paid.entered.wait(), 5)
    second = await user.click("Generate", message=menu)
    assert await bot.storage.ledger_balance(user.user_id) == 90  # held while the action runs
    paid.release.set()
    await user.wait_callback_answer(first)
    assert "out of date" in (await user.wait_callback_answer(second)).text
    await bot.settle()
    assert paid.calls == 1
    assert await bot.storage.ledger_balance(user.user_id) == 90
    assert await history(bot, user) == ["credit", "hold", "capture"]
    texts = [m.content for m in user.bot_messages]
    assert texts.count("Done! 10 credits spent, 90 left.") == 1


async def test_two_presses_in_one_batch_charge_once(bot, paid):
    user = await start(bot, 100)
    menu = user.last_message
    await asyncio.gather(user.click("Generate", message=menu), user.click("Generate", message=menu))
    await bot.settle()
    assert paid.calls == 1
    assert await bot.storage.ledger_balance(user.user_id) == 90
    assert await history(bot, user) == ["credit", "hold", "capture"]


class DyingWallet(StorageWallet):
    """The first process's wallet when it is killed outright (SIGKILL): it holds, then no
    settlement of its ever runs, so the hold stays open for the replay to pick up."""

    async def capture(self, hold: Hold) -> None:
        pass

    async def release(self, hold: Hold) -> None:
        pass


@pytest.mark.parametrize("death", ["killed", "cancelled"])
async def test_a_paid_press_replayed_after_a_crash_is_charged_once(tmp_path, paid, storage_url, death):
    """The process dies mid-action with the hold placed; the accepted press is handled again
    after the restart and must be paid for exactly once.

    killed: no code of the first process runs after the hold, so it is still open and the
    replay (same update, same hold key) continues with it. cancelled: the first process's
    task is cancelled and the engine releases the hold on the way out, so the replay is a
    new attempt and holds anew (StorageWallet's `<key>#2`); a replay reusing the released
    hold would be ignored at capture and run for free.
    """
    bot_dir = write_bot(tmp_path / "bot", FLOW, manifest=PAID_MANIFEST, locale=LOCALE)
    storage = open_storage(storage_url)
    try:
        first_wallet = DyingWallet(storage) if death == "killed" else None
        async with BotUnderTest([bot_dir], registry=registry(paid.spec()), storage=storage,
                                wallet=first_wallet) as bot:
            user = await start(bot, 100)
            paid.hold_open = True
            await user.click("Generate")
            await asyncio.wait_for(paid.entered.wait(), 5)
            assert await bot.storage.ledger_balance(user.user_id) == 90
            await bot.crash()  # mid-action
            paid.release.set()
            bot.wallet = None  # the restarted process runs with the default wallet
            await bot.start()
            done = await user.wait_for(lambda m: (m.content or "").startswith("Done!"), timeout=10)
            assert done.text == "Done! 10 credits spent, 90 left."
            await bot.settle()
            assert paid.calls == 2  # the action ran again...
            assert await bot.storage.ledger_balance(user.user_id) == 90  # ...and was paid for once
            expected = {"killed": ["credit", "hold", "capture"],
                        "cancelled": ["credit", "hold", "release", "hold", "capture"]}[death]
            assert await history(bot, user) == expected
    finally:
        await storage.close()


# ====================================================================== StorageWallet


async def test_the_wallet_charges_nothing_for_a_zero_charge(storage):
    wallet = StorageWallet(storage)
    hold = await wallet.hold(USER, 0, "free-1")
    assert hold == Hold("free-1", USER, 0)
    await wallet.capture(hold)
    await wallet.release(hold)
    assert await storage.ledger_entries(USER) == []
    with pytest.raises(ValueError):
        await wallet.hold(USER, -1, "negative")
    with pytest.raises(ValueError):
        await wallet.hold(USER, False, "bool")


async def test_the_wallet_holds_captures_and_releases_through_the_ledger(storage):
    wallet = StorageWallet(storage)
    await storage.ledger_credit(USER, 30, key="topup", reason="test")
    spent = await wallet.hold(USER, 10, "a")
    refunded = await wallet.hold(USER, 10, "b")
    assert spent == Hold("a", USER, 10) and refunded == Hold("b", USER, 10)
    assert await wallet.balance(USER) == 10
    assert await wallet.hold(USER, 11, "c") is None
    await wallet.capture(spent)
    await wallet.release(refunded)
    assert await wallet.balance(USER) == 20


async def test_the_wallet_reuses_an_open_or_captured_hold_of_a_replayed_key(storage):
    wallet = StorageWallet(storage)
    await storage.ledger_credit(USER, 30, key="topup", reason="test")
    first = await wallet.hold(USER, 10, "step")
    assert await wallet.hold(USER, 10, "step") == first  # still held: the same hold
    assert await wallet.balance(USER) == 20
    await wallet.capture(first)
    assert await wallet.hold(USER, 10, "step") == first  # paid already: nothing more
    await wallet.capture(first)
    assert await wallet.balance(USER) == 20


async def test_the_wallet_holds_anew_when_a_replayed_key_was_released(storage):
    wallet = StorageWallet(storage)
    await storage.ledger_credit(USER, 30, key="topup", reason="test")
    first = await wallet.hold(USER, 10, "step")
    await wallet.release(first)
    again = await wallet.hold(USER, 10, "step")
    assert again == Hold("step#2", USER, 10)
    assert await wallet.balance(USER) == 20
    await wallet.capture(again)
    assert await wallet.hold(USER, 10, "step") == again  # the replay of the replay: paid
    assert await wallet.balance(USER) == 20
    await storage.ledger_credit(USER, 1, key="topup-2", reason="test")
    # a refused attempt stays refused
    assert await wallet.hold(USER, 50, "big") is None
    assert await wallet.hold(USER, 50, "big") is None
    assert await wallet.balance(USER) == 21
