"""Durable background work: a job outlives the update that started it, and the process."""

from __future__ import annotations

import asyncio

import pytest

from botkit import registry, write_bot
from engine.actions.spec import ActionResult, ActionSpec, JobResult, OutcomeKind
from engine.testing.harness import BotUnderTest

FLOW = """\
flow: main
start: menu
default: {say: "Use the buttons, please."}
states:
  menu:
    say: "Menu"
    buttons:
      - [{text: "Make", to: make}]
  make:
    say: "Making…"
    do: test.make
    outcomes: {done: made, failed: failed}
    fallback: {say: "Still making"}
  made:
    say: "Made: {result}"
    buttons:
      - [{text: "Back", to: menu}]
  failed:
    say: "It failed: {error}"
    buttons:
      - [{text: "Back", to: menu}]
"""


class Maker:
    """A background action whose job a test can hold, release or make fail."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = False
        self.runs = 0

    async def start(self, context, params) -> ActionResult:
        await context.enqueue("test.make", {"size": 42}, key=f"make:{context.user_id}:{self.runs}")
        return ActionResult.pending()

    async def job(self, job) -> JobResult:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        if self.fail:
            raise RuntimeError("the generator is down")
        return JobResult("done", {"result": job.payload["size"]})

    def spec(self) -> ActionSpec:
        return ActionSpec(
            name="test.make", handler=self.start, background=True,
            outcomes={"done": OutcomeKind.SUCCESS, "failed": OutcomeKind.FAILURE},
            outputs=("result", "error"), jobs={"test.make": self.job},
        )


@pytest.fixture
def maker() -> Maker:
    return Maker()


@pytest.fixture
def bot_dir(tmp_path):
    return write_bot(tmp_path / "bot", FLOW)


async def _press_make(user):
    await user.send_command("start")
    await user.wait_reply()
    await user.click("Make")
    assert (await user.wait_edit()).text == "Making…"


async def test_a_background_job_reports_its_outcome_to_the_waiting_conversation(bot_dir, maker, storage_url):
    async with BotUnderTest([bot_dir], registry=registry(maker.spec()), storage_url=storage_url) as bot:
        user = bot.user()
        await _press_make(user)
        await asyncio.wait_for(maker.started.wait(), 5)
        await user.send_text("are you done?")
        assert (await user.wait_reply()).text == "Still making"  # the wait is not silent
        maker.release.set()
        made = await user.wait_reply(timeout=10)
        assert made.text == "Made: 42" and made.button_texts == [["Back"]]


async def test_a_job_survives_a_restart(tmp_path, bot_dir, maker):
    storage_url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    async with BotUnderTest([bot_dir], registry=registry(maker.spec()), storage_url=storage_url,
                            job_lease_seconds=1) as bot:
        user = bot.user()
        await _press_make(user)
        await asyncio.wait_for(maker.started.wait(), 5)
        await bot.crash()  # dies while the job runs: its lease expires, the job stays in storage
        maker.release.set()
        await bot.start()
        made = await user.wait_reply(timeout=15)
        assert made.text == "Made: 42"
        assert maker.runs == 2


async def test_a_job_that_keeps_failing_ends_in_the_failure_branch(bot_dir, maker):
    maker.fail = True
    maker.release.set()
    async with BotUnderTest([bot_dir], registry=registry(maker.spec()), job_max_attempts=3,
                            job_retry_base=0.05) as bot:
        user = bot.user()
        await _press_make(user)
        failed = await user.wait_reply(timeout=15)
        assert failed.text == "It failed: the job failed"
        assert maker.runs == 3
