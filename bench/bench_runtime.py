"""End-to-end updates/s of a flowgram bot against a minimal hand-written aiogram bot.

Both bots serve the same menu-navigation workload through the same transport:
an aiogram `Bot` over `AiohttpSession(TelegramAPIServer.from_base(fake))`,
real long polling against the strict fake Telegram (`engine.testing`) on
loopback. Each run:

* starts the fake Telegram (rate limits off: the workload is faster than
  Telegram's 30 messages/s per chat on purpose) and a bot in a child process;
* 20 users each send /start (warm-up: imports, pydantic schemas, connections,
  first rows), then together make a fixed number of updates (default 2,000):
  a user presses a random button of the screen they see (80%) or sends a text
  (20%), and waits for the answer before acting again;
* an update counts as done when its answer arrived at the fake server: the
  edit of the pressed message, or the reply to the text.

The bots:

* baseline — an idiomatic aiogram 3 bot: Dispatcher with `MemoryStorage`
  (FSM state per user), a Router with callback_query and message handlers,
  `answer()` + `edit_text()` on a press, `answer()` on a text, keyboards built
  once at import, `start_polling(handle_as_tasks=True)`. Nothing durable.
  It gets the one request middleware flowgram's runtime installs to hold
  aiogram's `Response[T]` models (engine/runtime/responses.py: pydantic's
  weak cache otherwise rebuilds them, ms each), so the ratio compares the
  bots and not that library issue. The ratio is against this bot.
* shipped — the same bot with aiogram exactly as installed, for reference.
* flowgram — the same screens as a YAML flow on the real runtime (durable
  polling with the inbox, per-user ordering, the engine, optimistic
  versioning) on SQLite (a file, WAL) and on PostgreSQL (a fresh database on
  the server at BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres).

Why two processes: the fake server and the scripted users cost CPU per update
too. In one process that cost is added to both bots alike, which pulls the
ratio towards 1 and flatters the slower bot. With the bot in its own process
(spawned, so nothing is inherited) each side has a core of the 2-core machine;
the table shows the bot's CPU per update (all its threads, from /proc) and
how busy the fake side was, so a run where the fake side is the bottleneck
is visible as such.

Runs are interleaved (baseline, shipped, sqlite, postgres, baseline, ...);
the table shows medians, and the ratio is the median over rounds of each
run's updates/s over the baseline run of the same round (the load of a
shared machine drifts more between rounds than within one).

    python bench/bench_runtime.py [--updates N] [--users U] [--repeat R]
                                  [--only baseline,shipped,sqlite,postgres]

Target: ratio >= 0.8 on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

TOKEN = "123456:BENCH"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
POLLING_TIMEOUT = 10
REPLY_TIMEOUT = 30.0

# The menu: screen -> (text, rows of (label, target screen)). Every screen also answers a text
# with "You said: ..." and its own buttons, staying where it is.
SCREENS: dict[str, tuple[str, list[list[tuple[str, str]]]]] = {
    "menu": ("Main menu. Pick a section.",
             [[("News", "news"), ("Shop", "shop")], [("Help", "help"), ("Settings", "settings")]]),
    "news": ("Latest news: pick a day.",
             [[("Today", "today"), ("Archive", "archive")], [("Back", "menu")]]),
    "today": ("Nothing happened today, which is good news.", [[("Back", "news"), ("Menu", "menu")]]),
    "archive": ("The archive is quiet too.", [[("Back", "news"), ("Menu", "menu")]]),
    "shop": ("The shop: what would you like?",
             [[("Hats", "hats"), ("Boots", "boots")], [("Cart", "cart")], [("Back", "menu")]]),
    "hats": ("Hats of every kind.", [[("Cart", "cart"), ("Back", "shop")]]),
    "boots": ("Boots for every weather.", [[("Cart", "cart"), ("Back", "shop")]]),
    "cart": ("Your cart is empty.", [[("Shop", "shop"), ("Menu", "menu")]]),
    "help": ("Press the buttons to move around; write anything and I repeat it.", [[("Menu", "menu")]]),
    "settings": ("Settings: language and notifications.",
                 [[("Language", "language"), ("Notifications", "notifications")], [("Back", "menu")]]),
    "language": ("Only English for now.", [[("Back", "settings")]]),
    "notifications": ("Notifications are on.", [[("Back", "settings")]]),
}
ECHO = "You said: {}"


# ============================================================================ the two bots


def write_flows(folder: Path) -> None:
    lines = ["flow: main", "start: menu", "default: {say: \"Please use the buttons.\"}", "states:"]
    for name, (text, rows) in SCREENS.items():
        lines += [f"  {name}:", f"    say: \"{text}\"", "    buttons:"]
        for row in rows:
            lines.append("      - [" + ", ".join(f"{{text: \"{label}\", to: {target}}}" for label, target in row) + "]")
        lines += ["    on:", "      text: {say: \"" + ECHO.format("{input.text}") + "\"}"]
    (folder / "main.yaml").write_text("\n".join(lines) + "\n", "utf-8")
    (folder / "bot.yaml").write_text("bot: bench\nstart: main.menu\ndefault_locale: en\n"
                                     "commands:\n  /start: main.menu\n", "utf-8")
    (folder / "en.yaml").write_text("locale: en\nmessages:\n  common:\n    ok: \"OK\"\n", "utf-8")


def baseline_router() -> Any:
    """The hand-written bot: what a developer would write in aiogram 3 for these screens."""
    from aiogram import F, Router
    from aiogram.filters import CommandStart
    from aiogram.fsm.context import FSMContext
    from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

    keyboards = {
        name: InlineKeyboardMarkup(inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=f"go:{target}") for label, target in row] for row in rows])
        for name, (_, rows) in SCREENS.items()
    }
    router = Router(name="baseline")

    @router.message(CommandStart())
    async def start(message: Message, state: FSMContext) -> None:
        await state.set_state("menu")
        await message.answer(SCREENS["menu"][0], reply_markup=keyboards["menu"])

    @router.callback_query(F.data.startswith("go:"))
    async def go(query: CallbackQuery, state: FSMContext) -> None:
        target = query.data[3:]
        await state.set_state(target)
        await query.answer()
        await query.message.edit_text(SCREENS[target][0], reply_markup=keyboards[target])

    @router.message(F.text)
    async def echo(message: Message, state: FSMContext) -> None:
        current = await state.get_state() or "menu"
        await message.answer(ECHO.format(message.text), reply_markup=keyboards[current])

    return router


def bot_process(kind: str, storage_url: str | None, flows: str, base_url: str, conn: Any) -> None:
    """The child process: run one bot until the parent says stop."""
    logging.basicConfig(level=logging.WARNING, format="bot: %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve_bot(kind, storage_url, flows, base_url, conn))


async def _serve_bot(kind: str, storage_url: str | None, flows: str, base_url: str, conn: Any) -> None:
    from engine.serve import make_bot  # Bot(token, AiohttpSession(TelegramAPIServer.from_base(url)))

    bot = make_bot(TOKEN, base_url)
    if kind in ("baseline", "shipped"):
        if kind == "baseline":
            # pydantic frees aiogram's Response[T] models between calls and rebuilds them (ms each);
            # flowgram's runtime holds them, and so does the baseline, so the two bots are compared
            # and not that library issue ("shipped" runs aiogram exactly as installed).
            from engine.runtime.responses import install

            install(bot)
        from aiogram import Dispatcher
        from aiogram.fsm.storage.memory import MemoryStorage

        dispatcher = Dispatcher(storage=MemoryStorage())
        dispatcher.include_router(baseline_router())
        polling = asyncio.create_task(dispatcher.start_polling(
            bot, polling_timeout=POLLING_TIMEOUT, handle_as_tasks=True, handle_signals=False))
        conn.send("ready")
        await asyncio.to_thread(conn.recv)
        await dispatcher.stop_polling()
        await polling
    else:
        from engine.actions.registry import load_registry
        from engine.runtime.app import BotRuntime
        from engine.storage import open_storage
        from engine.testing.harness import load_checked

        registry = load_registry()
        project = load_checked([flows], registry)
        storage = open_storage(storage_url)
        await storage.migrate()
        runtime = BotRuntime(project, registry, storage, bot, polling_timeout=POLLING_TIMEOUT)
        stop = asyncio.Event()
        polling = asyncio.create_task(runtime.poll(stop))
        conn.send("ready")
        await asyncio.to_thread(conn.recv)
        stop.set()
        await polling
        await runtime.close()
        await bot.session.close()
        await storage.close()
    conn.send("stopped")


# ============================================================================ the users


def process_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a live process, all threads, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


PROBLEMS = ("out of date", "went wrong", "could not answer", "faster than I can", "use the buttons")


@dataclass
class Budget:
    left: int
    problems: list[str] = field(default_factory=list)

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def warm_up(user: Any) -> None:
    await user.send_command("start")
    reply = await user.wait_reply(timeout=REPLY_TIMEOUT)
    assert reply.buttons, f"no menu after /start: {reply}"


async def drive(user: Any, budget: Budget, seed: int) -> None:
    """One user: look at the screen, press a button or type, wait for the answer; until the budget is spent."""
    rnd = random.Random(seed)
    while budget.take():
        screen = next(m for m in reversed(user.bot_messages) if m.buttons and not m.deleted)
        if rnd.random() < 0.8:
            label = rnd.choice([b.text for row in screen.buttons for b in row])
            await user.click(label, message=screen)
        else:
            await user.send_text(f"note {rnd.randrange(10_000)}")
        reply = await user.wait_for(lambda m: True, timeout=REPLY_TIMEOUT)  # the edit or the new message
        if any(p in (reply.text or "") for p in PROBLEMS):
            budget.problems.append(reply.text or "")


@dataclass
class Result:
    bot: str
    storage: str
    updates: int
    seconds: float
    bot_cpu: float  # user + system
    bot_system: float
    fake_cpu: float
    db_cpu: float | None  # the database's server processes (PostgreSQL backends of this database)
    problems: int

    @property
    def rate(self) -> float:
        return self.updates / self.seconds


async def run_once(kind: str, storage: str, storage_url: str | None, flows: str, users: int, updates: int,
                   seed: int, server: str | None = None) -> Result:
    from engine.testing import FakeTelegram

    context = multiprocessing.get_context("spawn")
    async with FakeTelegram(TOKEN, rate_limit_enabled=False) as fake:
        ours, theirs = context.Pipe()
        child = context.Process(target=bot_process, args=(kind, storage_url, flows, fake.base_url, theirs),
                                name=f"bench-{kind}-{storage}", daemon=True)
        child.start()
        try:
            if not await asyncio.to_thread(ours.poll, 120):
                raise RuntimeError(f"the {kind} bot did not start")
            ours.recv()
            clients = [fake.user(50_000 + n, f"User{n}") for n in range(users)]
            await asyncio.gather(*(warm_up(c) for c in clients))
            budget = Budget(updates)
            database = urlsplit(storage_url).path.lstrip("/") if server and storage_url else None
            db_before = await backends_cpu(server, database) if database else {}
            bot_times, fake_cpu, started = process_times(child.pid), time.process_time(), time.perf_counter()
            await asyncio.gather(*(drive(c, budget, seed * 1000 + n) for n, c in enumerate(clients)))
            seconds = time.perf_counter() - started
            bot_user, bot_system = (after - before for after, before in zip(process_times(child.pid), bot_times))
            fake_cpu = time.process_time() - fake_cpu
            db_after = await backends_cpu(server, database) if database else {}
            db_cpu = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items()) if database else None
            ours.send("stop")
            if await asyncio.to_thread(ours.poll, 60):
                ours.recv()
        finally:
            child.join(30)
            if child.is_alive():
                child.kill()
    if fake.internal_errors:
        raise RuntimeError(f"the fake Telegram failed: {fake.internal_errors[:3]}")
    return Result(kind, storage, updates, seconds, bot_user + bot_system, bot_system, fake_cpu, db_cpu,
                  len(budget.problems))


# ============================================================================ PostgreSQL


async def backends_cpu(server: str, database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving `database` (a server on this machine)."""
    import asyncpg

    con = await asyncpg.connect(server, timeout=10)
    try:
        pids = [row[0] for row in await con.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)]
    finally:
        await con.close()
    found = {}
    for pid in pids:
        try:
            found[pid] = sum(process_times(pid))
        except OSError:  # gone, or another machine's server: not counted
            pass
    return found


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    con = await asyncpg.connect(url, timeout=10)
    try:
        await con.execute(sql)
    finally:
        await con.close()


async def fresh_database(server: str) -> tuple[str, str]:
    name = f"flowgram_bench_{secrets.token_hex(4)}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    return name, urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


# ============================================================================ main


async def main_async(args: argparse.Namespace) -> int:
    wanted = [k.strip() for k in args.only.split(",") if k.strip()]
    server = os.environ.get("BENCH_DATABASE_URL") or PG_DEFAULT
    if "postgres" in wanted:
        try:
            await _admin(server, "SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any reason: run without it, say so
            print(f"PostgreSQL at {urlsplit(server).hostname}:{urlsplit(server).port} is not usable "
                  f"({type(exc).__name__}: {exc}); skipping it", file=sys.stderr)
            wanted.remove("postgres")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="flowgram-bench-") as tmp:
        flows = Path(tmp) / "flows"
        flows.mkdir()
        write_flows(flows)
        for repeat in range(args.repeat):
            for kind in wanted:
                seed = repeat + 1
                if kind in ("baseline", "shipped"):
                    result = await run_once(kind, "memory (FSM)", None, str(flows), args.users,
                                            args.updates, seed)
                elif kind == "sqlite":
                    path = Path(tmp) / f"bot-{repeat}.sqlite3"
                    result = await run_once("flowgram", "sqlite", f"sqlite:///{path}", str(flows), args.users,
                                            args.updates, seed)
                else:
                    name, url = await fresh_database(server)
                    try:
                        result = await run_once("flowgram", "postgres", url, str(flows), args.users,
                                                args.updates, seed, server)
                    finally:
                        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                results.append(result)
                db = f"  db CPU {result.db_cpu / result.updates * 1e6:4.0f} µs/update" if result.db_cpu else ""
                print(f"  run {repeat + 1}/{args.repeat} {result.bot:<9} {result.storage:<13} "
                      f"{result.rate:8.0f} updates/s  bot CPU {result.bot_cpu / result.updates * 1e6:5.0f} µs/update "
                      f"({result.bot_system / result.bot_cpu:.0%} system){db}"
                      f"  fake side busy {result.fake_cpu / result.seconds:4.0%}", file=sys.stderr)

    print()
    print(f"{args.users} users, {args.updates} updates per run, median of {args.repeat} run(s); "
          f"bot and fake Telegram in separate processes on {os.cpu_count()} cores")
    print()
    header = ("bot", "storage", "updates", "seconds", "updates/s", "ratio vs baseline", "bot CPU µs/update",
              "db CPU µs/update", "fake side busy", "problems")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join([" --- "] * 2 + [" ---: "] * (len(header) - 2)) + "|")
    baselines = [r for r in results if r.bot == "baseline"]
    for kind in wanted:
        runs = [r for r in results if r.bot == kind or (r.bot == "flowgram" and r.storage == kind)]
        rate = statistics.median(r.rate for r in runs)
        seconds = statistics.median(r.seconds for r in runs)
        cpu = statistics.median(r.bot_cpu / r.updates for r in runs) * 1e6
        db = [r.db_cpu / r.updates * 1e6 for r in runs if r.db_cpu is not None]
        busy = statistics.median(r.fake_cpu / r.seconds for r in runs)
        # Each run against the baseline run of the same round (next to it in time), then the median:
        # the machine's load drifts between rounds far more than within one.
        ratio = (f"{statistics.median(r.rate / b.rate for r, b in zip(runs, baselines)):.2f}"
                 if len(baselines) == len(runs) else "-")
        print(f"| {runs[0].bot} | {runs[0].storage} | {runs[0].updates} | {seconds:.2f} | {rate:.0f} | {ratio} | "
              f"{cpu:.0f} | {statistics.median(db):.0f} | " if db else
              f"| {runs[0].bot} | {runs[0].storage} | {runs[0].updates} | {seconds:.2f} | {rate:.0f} | {ratio} | "
              f"{cpu:.0f} | - | ", end="")
        print(f"{busy:.0%} | {sum(r.problems for r in runs)} |")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=2000, help="updates per run (default 2000)")
    parser.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each bot (default 3)")
    parser.add_argument("--only", default="baseline,shipped,sqlite,postgres",
                        help="which runs, of baseline,shipped,sqlite,postgres (default all)")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
