"""The ledger contract: every test runs on SQLite and on PostgreSQL (the ``storage`` fixture).

Integer credits; two-phase charges (hold -> capture | release); idempotent by key;
never negative, also under concurrency (one store, and several stores on one database).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import pytest

from engine.storage import LedgerEntry, Storage, open_storage

USER = 42


async def credit(storage: Storage, amount: int, key: str = "topup-1", user_id: int = USER) -> bool:
    return await storage.ledger_credit(user_id, amount, key=key, reason="test top-up")


async def kinds(storage: Storage, user_id: int = USER) -> list[tuple[str, str, int]]:
    return [(e.kind, e.key, e.amount) for e in await storage.ledger_entries(user_id)]


# ====================================================================== credits


async def test_a_user_never_credited_has_nothing(storage):
    assert await storage.ledger_balance(USER) == 0
    assert await storage.ledger_entries(USER) == []


async def test_credit_is_idempotent_by_key(storage):
    assert await credit(storage, 100, key="pay-1") is True
    assert await credit(storage, 100, key="pay-1") is False  # a redelivered payment
    assert await storage.ledger_balance(USER) == 100
    assert await credit(storage, 5, key="bonus-1") is True
    assert await storage.ledger_balance(USER) == 105
    assert await kinds(storage) == [("credit", "bonus-1", 5), ("credit", "pay-1", 100)]


async def test_concurrent_credits_with_one_key_apply_once(storage):
    results = await asyncio.gather(*(credit(storage, 7, key="pay-1") for _ in range(10)))
    assert results.count(True) == 1
    assert await storage.ledger_balance(USER) == 7


async def test_a_credit_key_reused_for_another_amount_or_user_is_refused(storage):
    await credit(storage, 100, key="pay-1")
    with pytest.raises(ValueError, match="pay-1"):
        await credit(storage, 50, key="pay-1")
    with pytest.raises(ValueError, match="pay-1"):
        await credit(storage, 100, key="pay-1", user_id=USER + 1)
    assert await storage.ledger_balance(USER) == 100
    assert await storage.ledger_balance(USER + 1) == 0


async def test_users_have_separate_balances(storage):
    await credit(storage, 100, key="a", user_id=1)
    await credit(storage, 30, key="b", user_id=2)
    assert await storage.ledger_hold(2, 30, key="h") is True
    assert await storage.ledger_balance(1) == 100
    assert await storage.ledger_balance(2) == 0
    assert await kinds(storage, 1) == [("credit", "a", 100)]


async def test_a_balance_overflow_is_refused(storage):
    await credit(storage, 2**63 - 1, key="huge")
    with pytest.raises(ValueError, match="overflow"):
        await credit(storage, 1, key="one-more")
    assert await storage.ledger_balance(USER) == 2**63 - 1
    assert await kinds(storage) == [("credit", "huge", 2**63 - 1)]
    assert await credit(storage, 1, key="one-more", user_id=USER + 1) is True  # the key was not used


# ====================================================================== two-phase charges


async def test_hold_then_capture_spends_the_credits(storage):
    await credit(storage, 100)
    assert await storage.ledger_hold(USER, 30, key="gen-1") is True
    assert await storage.ledger_balance(USER) == 70  # held credits are not available
    await storage.ledger_capture("gen-1")
    assert await storage.ledger_balance(USER) == 70
    assert await kinds(storage) == [
        ("capture", "gen-1", 30),
        ("hold", "gen-1", 30),
        ("credit", "topup-1", 100),
    ]
    # the credits are gone for good: what is left can be held, no more
    assert await storage.ledger_hold(USER, 71, key="gen-2") is False
    assert await storage.ledger_hold(USER, 70, key="gen-3") is True


async def test_hold_then_release_gives_the_credits_back(storage):
    await credit(storage, 100)
    assert await storage.ledger_hold(USER, 30, key="gen-1") is True
    assert await storage.ledger_balance(USER) == 70
    await storage.ledger_release("gen-1")
    assert await storage.ledger_balance(USER) == 100
    assert await kinds(storage) == [
        ("release", "gen-1", 30),
        ("hold", "gen-1", 30),
        ("credit", "topup-1", 100),
    ]
    assert await storage.ledger_hold(USER, 100, key="gen-2") is True


async def test_a_hold_can_take_the_whole_balance(storage):
    await credit(storage, 10)
    assert await storage.ledger_hold(USER, 10, key="all") is True
    assert await storage.ledger_balance(USER) == 0


async def test_a_hold_beyond_the_balance_is_refused_and_changes_nothing(storage):
    await credit(storage, 25)
    before = await storage.ledger_entries(USER)
    assert await storage.ledger_hold(USER, 26, key="gen-1") is False
    assert await storage.ledger_balance(USER) == 25
    assert await storage.ledger_entries(USER) == before
    assert await storage.ledger_hold(USER, 1, key="gen-2") is True  # nothing was reserved


async def test_a_user_never_credited_cannot_hold(storage):
    assert await storage.ledger_hold(USER, 1, key="gen-1") is False
    assert await storage.ledger_balance(USER) == 0
    assert await storage.ledger_entries(USER) == []


async def test_a_refused_hold_key_stays_refused(storage):
    """A repeated key returns the first answer: a replayed update is charged the same way."""
    await credit(storage, 5)
    assert await storage.ledger_hold(USER, 10, key="gen-1") is False
    await credit(storage, 100, key="topup-2")
    assert await storage.ledger_hold(USER, 10, key="gen-1") is False
    assert await storage.ledger_balance(USER) == 105
    assert await storage.ledger_hold(USER, 10, key="gen-2") is True  # a new attempt, a new key


async def test_a_repeated_hold_key_does_not_hold_twice(storage):
    await credit(storage, 100)
    assert await storage.ledger_hold(USER, 10, key="gen-1") is True
    assert await storage.ledger_hold(USER, 10, key="gen-1") is True  # the first answer again
    assert await storage.ledger_balance(USER) == 90
    await storage.ledger_capture("gen-1")
    assert await storage.ledger_hold(USER, 10, key="gen-1") is True  # still the first answer
    assert await storage.ledger_balance(USER) == 90
    assert [k for k in await kinds(storage) if k[0] == "hold"] == [("hold", "gen-1", 10)]


async def test_concurrent_holds_with_one_key_hold_once(storage):
    await credit(storage, 100)
    results = await asyncio.gather(*(storage.ledger_hold(USER, 10, key="gen-1") for _ in range(10)))
    assert results == [True] * 10
    assert await storage.ledger_balance(USER) == 90


async def test_a_hold_key_reused_for_another_amount_or_user_is_refused(storage):
    await credit(storage, 100)
    await storage.ledger_hold(USER, 10, key="gen-1")
    with pytest.raises(ValueError, match="gen-1"):
        await storage.ledger_hold(USER, 20, key="gen-1")
    with pytest.raises(ValueError, match="gen-1"):
        await storage.ledger_hold(USER + 1, 10, key="gen-1")
    assert await storage.ledger_balance(USER) == 90


async def test_credit_and_hold_keys_are_separate(storage):
    assert await credit(storage, 50, key="same") is True
    assert await storage.ledger_hold(USER, 50, key="same") is True
    assert await storage.ledger_balance(USER) == 0


# ====================================================================== concurrency


async def test_concurrent_holds_never_overdraw(storage):
    await credit(storage, 100)
    results = await asyncio.gather(
        *(storage.ledger_hold(USER, 10, key=f"gen-{n}") for n in range(20))
    )
    assert results.count(True) == 10
    assert await storage.ledger_balance(USER) == 0
    held = [n for n, ok in enumerate(results) if ok]
    await asyncio.gather(*(storage.ledger_release(f"gen-{n}") for n in held))
    assert await storage.ledger_balance(USER) == 100


async def test_concurrent_holds_from_several_instances_never_overdraw(storage, storage_url):
    """Several stores on one database (several bot instances): still exactly 10 of 20."""
    await credit(storage, 100)
    others = [open_storage(storage_url) for _ in range(3)]
    try:
        stores = [storage, *others]
        results = await asyncio.gather(
            *(stores[n % 4].ledger_hold(USER, 10, key=f"gen-{n}") for n in range(20))
        )
        assert results.count(True) == 10
        for store in stores:
            assert await store.ledger_balance(USER) == 0
        held = [n for n, ok in enumerate(results) if ok]
        await asyncio.gather(
            *(stores[n % 4].ledger_capture(f"gen-{n}") for n in held[:5]),
            *(stores[n % 4].ledger_release(f"gen-{n}") for n in held[5:]),
        )
        assert await storage.ledger_balance(USER) == 50
    finally:
        for store in others:
            await store.close()


async def test_concurrent_holds_and_credits_keep_the_books_balanced(storage):
    await credit(storage, 50)
    holds = [storage.ledger_hold(USER, 10, key=f"gen-{n}") for n in range(20)]
    credits = [credit(storage, 10, key=f"topup-{n + 2}") for n in range(5)]
    results = await asyncio.gather(*holds, *credits)
    held = [n for n, ok in enumerate(results[:20]) if ok]
    assert 5 <= len(held) <= 10
    assert await storage.ledger_balance(USER) == 100 - 10 * len(held)
    assert await storage.ledger_balance(USER) >= 0


async def test_concurrent_capture_and_release_of_one_hold_settle_it_once(storage):
    await credit(storage, 100)
    for n in range(5):
        await storage.ledger_hold(USER, 10, key=f"gen-{n}")
    await asyncio.gather(
        *(
            op(f"gen-{n}")
            for n in range(5)
            for op in (storage.ledger_capture, storage.ledger_release) * 3
        )
    )
    entries = await kinds(storage)
    for n in range(5):
        settled = [kind for kind, key, _ in entries if key == f"gen-{n}" and kind != "hold"]
        assert len(settled) == 1, settled
    captured = sum(1 for kind, _, _ in entries if kind == "capture")
    assert await storage.ledger_balance(USER) == 100 - 10 * captured


# ====================================================================== settlement rules


async def test_capture_is_idempotent(storage):
    await credit(storage, 100)
    await storage.ledger_hold(USER, 10, key="gen-1")
    await storage.ledger_capture("gen-1")
    await storage.ledger_capture("gen-1")
    assert await storage.ledger_balance(USER) == 90
    assert [k[0] for k in await kinds(storage)].count("capture") == 1


async def test_release_is_idempotent(storage):
    await credit(storage, 100)
    await storage.ledger_hold(USER, 10, key="gen-1")
    await storage.ledger_release("gen-1")
    await storage.ledger_release("gen-1")
    assert await storage.ledger_balance(USER) == 100
    assert [k[0] for k in await kinds(storage)].count("release") == 1


async def test_the_first_settlement_wins(storage, caplog):
    await credit(storage, 100)
    await storage.ledger_hold(USER, 10, key="captured-first")
    await storage.ledger_hold(USER, 10, key="released-first")
    await storage.ledger_capture("captured-first")
    await storage.ledger_release("released-first")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        await storage.ledger_release("captured-first")  # no error: a no-op with a warning
        await storage.ledger_capture("released-first")
    assert await storage.ledger_balance(USER) == 90
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("captured-first" in w and "already captured" in w for w in warnings)
    assert any("released-first" in w and "already released" in w for w in warnings)
    entries = await kinds(storage)
    assert ("release", "captured-first", 10) not in entries
    assert ("capture", "released-first", 10) not in entries


async def test_settling_a_refused_hold_changes_nothing(storage, caplog):
    await credit(storage, 5)
    assert await storage.ledger_hold(USER, 10, key="gen-1") is False
    with caplog.at_level(logging.WARNING):
        await storage.ledger_capture("gen-1")
        await storage.ledger_release("gen-1")
    assert await storage.ledger_balance(USER) == 5
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert await kinds(storage) == [("credit", "topup-1", 5)]


async def test_the_status_of_a_hold(storage):
    await credit(storage, 15)
    assert await storage.ledger_hold_status("a") is None
    await storage.ledger_hold(USER, 10, key="a")
    await storage.ledger_hold(USER, 10, key="b")  # only 5 left
    await storage.ledger_hold(USER, 5, key="c")
    assert [await storage.ledger_hold_status(k) for k in "abc"] == ["held", "declined", "held"]
    await storage.ledger_capture("a")
    await storage.ledger_release("c")
    await storage.ledger_capture("c")
    assert [await storage.ledger_hold_status(k) for k in "abc"] == ["captured", "declined", "released"]


async def test_settling_an_unknown_hold_is_an_error(storage):
    with pytest.raises(LookupError, match="nope"):
        await storage.ledger_capture("nope")
    with pytest.raises(LookupError, match="nope"):
        await storage.ledger_release("nope")


# ====================================================================== validation


BAD_AMOUNTS = [0, -1, -100, True, False, 1.0, 10.5, "10", None, 2**63]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
async def test_a_bad_amount_is_refused(storage, amount):
    await credit(storage, 100)
    with pytest.raises(ValueError):
        await storage.ledger_credit(USER, amount, key="bad-credit", reason="x")
    with pytest.raises(ValueError):
        await storage.ledger_hold(USER, amount, key="bad-hold")
    assert await storage.ledger_balance(USER) == 100
    assert await kinds(storage) == [("credit", "topup-1", 100)]
    # the keys were not used up
    assert await storage.ledger_hold(USER, 1, key="bad-hold") is True
    assert await credit(storage, 1, key="bad-credit") is True


@pytest.mark.parametrize("key", ["", None, 5])
async def test_a_bad_key_is_refused(storage, key):
    with pytest.raises(ValueError):
        await storage.ledger_credit(USER, 1, key=key, reason="x")
    with pytest.raises(ValueError):
        await storage.ledger_hold(USER, 1, key=key)
    with pytest.raises(ValueError):
        await storage.ledger_capture(key)
    with pytest.raises(ValueError):
        await storage.ledger_release(key)
    with pytest.raises(ValueError):
        await storage.ledger_hold_status(key)


# ====================================================================== history


async def test_entries_are_listed_newest_first(storage):
    await storage.ledger_credit(USER, 100, key="pay-1", reason="payment 1")
    await storage.ledger_hold(USER, 10, key="gen-1")
    await storage.ledger_capture("gen-1")
    await storage.ledger_hold(USER, 20, key="gen-2")
    await storage.ledger_release("gen-2")
    await storage.ledger_credit(USER, 5, key="bonus-1", reason="welcome bonus")
    entries = await storage.ledger_entries(USER)
    assert [(e.kind, e.key, e.amount, e.reason) for e in entries] == [
        ("credit", "bonus-1", 5, "welcome bonus"),
        ("release", "gen-2", 20, None),
        ("hold", "gen-2", 20, None),
        ("capture", "gen-1", 10, None),
        ("hold", "gen-1", 10, None),
        ("credit", "pay-1", 100, "payment 1"),
    ]
    assert all(isinstance(e, LedgerEntry) for e in entries)
    assert all(isinstance(e.created_at, datetime) and e.created_at.utcoffset() is not None
               for e in entries)
    times = [e.created_at for e in entries]
    assert times == sorted(times, reverse=True)
    assert [e.key for e in await storage.ledger_entries(USER, limit=2)] == ["bonus-1", "gen-2"]
    assert await storage.ledger_entries(USER, limit=0) == []
    assert await storage.ledger_balance(USER) == 95


async def test_the_ledger_survives_a_restart(storage, storage_url):
    await credit(storage, 100)
    await storage.ledger_hold(USER, 30, key="gen-1")
    again = open_storage(storage_url)
    try:
        assert await again.ledger_balance(USER) == 70
        await again.ledger_capture("gen-1")
        assert await again.ledger_hold(USER, 30, key="gen-1") is True  # still the first answer
        assert await again.ledger_balance(USER) == 70
    finally:
        await again.close()
    assert await storage.ledger_balance(USER) == 70
