"""Reliability: thousands of random updates from concurrent users over the shipped flows, each one checked.

Every kind of input a Telegram bot can get — text of every shape (emoji, RTL,
zero-width, over 4096 characters), commands mid-flow (with @botname and
arguments), media where text is expected, presses on current buttons, stale
and forged and malformed callback data, presses on messages Telegram no
longer shows, pre-checkout queries and payments for invoices never sent,
update kinds the bot did not ask for or cannot parse — with Telegram failures
(5xx, 429) injected into a few updates. See tests/reliability_helpers.py for
what is checked per update and at the end.

The seed is random per run and printed with any failure; set
FLOWGRAM_RELIABILITY_SEED to replay one. FLOWGRAM_RELIABILITY_SCALE multiplies
the number of updates (e.g. 10 for a long local soak).
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from engine.testing.harness import BotUnderTest
from reliability_helpers import ChaosTelegram, Records, ReliabilityRun

FLOWS = Path(__file__).resolve().parent.parent / "flows"

pytestmark = pytest.mark.slow


def _seed() -> int:
    raw = os.environ.get("FLOWGRAM_RELIABILITY_SEED")
    return int(raw) if raw else random.SystemRandom().randrange(10**9)


def _scale() -> float:
    return float(os.environ.get("FLOWGRAM_RELIABILITY_SCALE", "1"))


async def _run(storage_url: str, *, users: int, steps: int, budget: float) -> None:
    seed = _seed()
    steps = max(1, int(steps * _scale()))
    budget = budget * max(1.0, _scale())
    print(f"\nreliability seed {seed} (replay: FLOWGRAM_RELIABILITY_SEED={seed})")
    with Records() as records:
        async with ChaosTelegram() as telegram:
            async with BotUnderTest([FLOWS], telegram=telegram, storage_url=storage_url) as bot:
                run = ReliabilityRun(bot, seed=seed, users=users, steps=steps, budget=budget)
                await asyncio.wait_for(run.run(), budget + 60)
                await bot.settle(timeout=30)
                verdict = await run.verdict(records.records)
    report = verdict.report(seed)
    print(report)
    assert not verdict.failures, report
    assert len(run.steps) >= users * steps * 0.5, f"only {len(run.steps)} updates ran in the time budget\n{report}"


async def test_thousands_of_random_updates_from_concurrent_users_are_all_answered():
    """The big run: 8 users, 2,560 updates, SQLite in memory."""
    await _run("sqlite://:memory:", users=8, steps=320, budget=45)


async def test_random_updates_on_each_storage_backend(storage_url):
    """A smaller run on each backend (SQLite file, PostgreSQL): same checks, real transactions."""
    await _run(storage_url, users=6, steps=80, budget=30)
