"""The storage contract: every test in the first part runs on SQLite and on PostgreSQL.

The ``storage`` fixture is a migrated store; ``storage_url`` is the URL it was opened
with, for tests that open a second instance (another process, a restart).
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.storage import (
    ConflictError,
    Conversation,
    Storage,
    StorageError,
    StorageUnavailable,
    open_storage,
)
from engine.storage.base import load_migrations

ALL_MIGRATIONS = [m.name for m in load_migrations("sqlite")]


def now() -> datetime:
    return datetime.now(UTC)


def conv(chat_id: int = 1, user_id: int = 2, **changes) -> Conversation:
    fields = dict(state="main.start", data={}, screen=None, locale=None)
    fields.update(changes)
    return Conversation(chat_id=chat_id, user_id=user_id, **fields)


async def reopen(url: str) -> Storage:
    store = open_storage(url)
    await store.migrate()
    return store


# ====================================================================== migrations / lifecycle


def test_backends_apply_the_same_migrations():
    assert [m.name for m in load_migrations("postgres")] == ALL_MIGRATIONS


async def test_migrate_is_idempotent(storage_url):
    store = open_storage(storage_url)
    try:
        assert await store.migrate() == ALL_MIGRATIONS
        assert await store.migrate() == []
    finally:
        await store.close()
    again = open_storage(storage_url)
    try:
        assert await again.migrate() == []
    finally:
        await again.close()


async def test_concurrent_migrate_applies_each_migration_once(storage_url):
    stores = [open_storage(storage_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(name for result in results for name in result) == ALL_MIGRATIONS
        await stores[0].save_conversation(conv())
    finally:
        for s in stores:
            await s.close()


_MIGRATE_IN_A_PROCESS = """
import asyncio, sys, time
from engine.storage import open_storage

async def main(url, start):
    store = open_storage(url)
    await store.ping()  # connect first, then migrate at the same instant as the sibling
    time.sleep(max(0.0, start - time.time()))
    print(",".join(await store.migrate()))
    await store.close()

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


async def test_two_processes_migrate_at_once(storage_url):
    start = str(time.time() + 2.0)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MIGRATE_IN_A_PROCESS,
            storage_url,
            start,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [await proc.communicate() for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    applied = [name for out, _ in outputs for name in out.decode().strip().split(",") if name]
    assert sorted(applied) == ALL_MIGRATIONS


async def test_unmigrated_store_says_so(storage_url):
    store = open_storage(storage_url)
    try:
        with pytest.raises(StorageError, match=r"no flowgram tables .*migrate\(\)"):
            await store.load_conversation(1, 2)
    finally:
        await store.close()


async def test_ping_and_protocol(storage):
    await storage.ping()
    assert isinstance(storage, Storage)
    assert storage.backend in ("sqlite", "postgres")


async def test_closed_store_refuses_calls(storage_url):
    store = await reopen(storage_url)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        await store.load_conversation(1, 2)


# ====================================================================== conversations


async def test_load_missing_conversation_is_none(storage):
    assert await storage.load_conversation(1, 2) is None


async def test_conversation_roundtrip_unicode(storage):
    data = {
        "name": "Зоя 🦊 李小龙",
        "emoji": "👩‍👩‍👧‍👦🏳️‍🌈",
        "quote": 'he said "hi"\n\ttab\\slash',
        "literal_escape": "\\u0000 is just text here",
        "numbers": [0, -1, 2**53, 3.25, 1e-7],
        "flags": {"yes": True, "no": False, "none": None},
        "nested": {"list": [{"a": [1, {"b": "ü"}]}]},
        "": "empty key",
    }
    screen = {"message_id": 4242, "state": "shop.cart", "flow_version": "3", "items": ["🍕", "🍔"]}
    saved = await storage.save_conversation(
        conv(-1001234567890, 987654321, state="shop.cart", data=data, screen=screen, locale="uk")
    )
    assert saved.version == 1
    loaded = await storage.load_conversation(-1001234567890, 987654321)
    assert loaded == Conversation(-1001234567890, 987654321, "shop.cart", data, screen, "uk", 1)


async def test_save_updates_and_bumps_version(storage):
    first = await storage.save_conversation(conv(data={"n": 1}))
    second = await storage.save_conversation(
        Conversation(1, 2, "main.next", {"n": 2}, {"message_id": 7}, "en", first.version)
    )
    assert second.version == 2
    loaded = await storage.load_conversation(1, 2)
    assert loaded == Conversation(1, 2, "main.next", {"n": 2}, {"message_id": 7}, "en", 2)
    # back to no screen / no locale
    third = await storage.save_conversation(conv(version=2))
    assert (await storage.load_conversation(1, 2)) == third


async def test_conversations_are_keyed_by_chat_and_user(storage):
    await storage.save_conversation(conv(1, 1, state="a.x"))
    await storage.save_conversation(conv(1, 2, state="b.x"))
    await storage.save_conversation(conv(2, 1, state="c.x"))
    assert (await storage.load_conversation(1, 2)).state == "b.x"
    assert (await storage.load_conversation(2, 1)).state == "c.x"


async def test_stale_version_conflicts_and_overwrites_nothing(storage, storage_url):
    await storage.save_conversation(conv(data={"v": "base"}))
    other = await reopen(storage_url)  # a second instance of the bot
    try:
        mine = await storage.load_conversation(1, 2)
        theirs = await other.load_conversation(1, 2)
        assert mine.version == theirs.version == 1
        mine.data = {"v": "mine"}
        theirs.data = {"v": "theirs"}
        await other.save_conversation(theirs)
        with pytest.raises(ConflictError):
            await storage.save_conversation(mine)
        assert (await storage.load_conversation(1, 2)).data == {"v": "theirs"}
        assert (await storage.load_conversation(1, 2)).version == 2
    finally:
        await other.close()


async def test_two_first_inserts_conflict(storage):
    await storage.save_conversation(conv(data={"who": "first"}))
    with pytest.raises(ConflictError):
        await storage.save_conversation(conv(data={"who": "second"}))
    assert (await storage.load_conversation(1, 2)).data == {"who": "first"}


async def test_concurrent_writers_exactly_one_wins(storage):
    base = await storage.save_conversation(conv())
    attempts = [
        storage.save_conversation(conv(data={"writer": i}, version=base.version)) for i in range(8)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [r for r in results if isinstance(r, Conversation)]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) for r in results if r not in winners)
    loaded = await storage.load_conversation(1, 2)
    assert loaded.version == 2 and loaded.data == winners[0].data


async def test_version_far_ahead_conflicts(storage):
    await storage.save_conversation(conv())
    with pytest.raises(ConflictError):
        await storage.save_conversation(conv(version=5))


# ====================================================================== JSON rules (all backends)


async def test_json_rules(storage):
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        await storage.save_conversation(conv(data={"when": now()}))
    with pytest.raises(ValueError):
        await storage.save_conversation(conv(data={"x": float("nan")}))
    with pytest.raises(ValueError, match="NUL"):
        await storage.save_conversation(conv(data={"x": "a\x00b"}))
    with pytest.raises(ValueError, match="NUL"):
        await storage.inbox_add(1, {"text": "\x00"})
    assert await storage.load_conversation(1, 2) is None
    assert await storage.inbox_pending() == []


# ====================================================================== inbox


async def test_inbox_dedupes_by_update_id(storage):
    assert await storage.inbox_add(100, {"message": {"text": "hi 👋"}}) is True
    assert await storage.inbox_add(100, {"message": {"text": "again"}}) is False
    pending = await storage.inbox_pending()
    assert [(i.update_id, i.payload) for i in pending] == [(100, {"message": {"text": "hi 👋"}})]
    assert pending[0].received_at.tzinfo is not None
    assert abs(pending[0].received_at - now()) < timedelta(minutes=1)


async def test_inbox_done_and_pending_order(storage):
    for update_id in (10, 11, 12, 13):
        await storage.inbox_add(update_id, {"n": update_id})
    await storage.inbox_done(11)
    await storage.inbox_done(11)  # idempotent
    assert [i.update_id for i in await storage.inbox_pending()] == [10, 12, 13]
    assert [i.update_id for i in await storage.inbox_pending(limit=2)] == [10, 12]
    # a done update stays deduplicated
    assert await storage.inbox_add(11, {"n": 11}) is False


async def test_inbox_done_for_unrecorded_update_dedupes_it(storage):
    await storage.inbox_done(500)
    assert await storage.inbox_add(500, {}) is False
    assert await storage.inbox_pending() == []


async def test_inbox_pending_survives_reopen(storage, storage_url):
    await storage.inbox_add(1, {"a": 1})
    await storage.inbox_add(2, {"b": 2})
    await storage.inbox_done(1)
    await storage.close()
    store = await reopen(storage_url)
    try:
        assert [(i.update_id, i.payload) for i in await store.inbox_pending()] == [(2, {"b": 2})]
        assert await store.inbox_add(1, {}) is False
    finally:
        await store.close()


async def test_inbox_add_many_records_a_batch_and_flags_each_update(storage):
    assert await storage.inbox_add_many([]) == []
    await storage.inbox_add(2, {"n": "before"})
    await storage.inbox_done(4)  # done without ever being recorded: deduplicated too
    flags = await storage.inbox_add_many(
        [(1, {"n": 1}), (2, {"n": "again"}), (3, {"text": "hi 👋"}), (3, {"n": "repeat"}), (4, {}), (5, {})]
    )
    assert flags == [True, False, True, False, False, True]
    pending = await storage.inbox_pending()  # oldest first: 2 was recorded before the batch
    assert [(i.update_id, i.payload) for i in pending] == [
        (2, {"n": "before"}), (1, {"n": 1}), (3, {"text": "hi 👋"}), (5, {})]
    assert await storage.inbox_add(5, {}) is False
    assert await storage.inbox_add_many([(1, {}), (6, {"n": 6})]) == [False, True]


async def test_inbox_add_many_is_all_or_nothing(storage):
    with pytest.raises(ValueError, match="NUL"):
        await storage.inbox_add_many([(1, {"n": 1}), (2, {"text": "a\x00b"})])
    with pytest.raises(TypeError):
        await storage.inbox_add_many([(1, {"n": 1}), (2, {"when": now()})])
    assert await storage.inbox_pending() == []
    assert await storage.inbox_add_many([(1, {"n": 1})]) == [True]


async def test_save_marks_inbox_done_in_same_transaction(storage):
    await storage.inbox_add(7, {"u": 7})
    await storage.inbox_add(8, {"u": 8})
    saved = await storage.save_conversation(conv(), done_update_id=7)  # insert path
    assert [i.update_id for i in await storage.inbox_pending()] == [8]
    await storage.save_conversation(saved, done_update_id=8)  # update path
    assert await storage.inbox_pending() == []


async def test_conflicting_save_leaves_inbox_item_pending(storage):
    current = await storage.save_conversation(conv())
    await storage.save_conversation(current)  # someone else moved on to version 2
    await storage.inbox_add(9, {"u": 9})
    with pytest.raises(ConflictError):
        await storage.save_conversation(
            conv(version=current.version, state="x.y"), done_update_id=9
        )
    assert [i.update_id for i in await storage.inbox_pending()] == [9]
    with pytest.raises(ConflictError):  # insert path too
        await storage.save_conversation(conv(), done_update_id=9)
    assert [i.update_id for i in await storage.inbox_pending()] == [9]
    assert (await storage.load_conversation(1, 2)).state == "main.start"


# ====================================================================== jobs


async def test_enqueue_is_idempotent_by_key(storage):
    first = await storage.job_enqueue("kie.poll", {"task": "a"}, key="gen-1")
    again = await storage.job_enqueue("kie.poll", {"task": "DIFFERENT"}, key="gen-1")
    other = await storage.job_enqueue("kie.poll", {"task": "b"}, key="gen-2")
    unkeyed = [await storage.job_enqueue("kie.poll", {}) for _ in range(2)]
    assert first == again
    assert len({first, other, *unkeyed}) == 4
    job = await storage.job_claim("w1")
    assert (job.id, job.payload) == (first, {"task": "a"})
    # still idempotent once the job is done
    await storage.job_complete(first)
    assert await storage.job_enqueue("kie.poll", {}, key="gen-1") == first


async def test_claim_returns_the_job(storage):
    run_at = now() - timedelta(seconds=5)
    job_id = await storage.job_enqueue(
        "kie.poll",
        {"task_id": "t-1", "prompt": "кот 🐈"},
        key="k",
        run_at=run_at,
        correlation_id="upd-77",
    )
    job = await storage.job_claim("worker-a")
    assert job.id == job_id
    assert (job.kind, job.payload, job.key, job.attempts, job.correlation_id) == (
        "kie.poll",
        {"task_id": "t-1", "prompt": "кот 🐈"},
        "k",
        0,
        "upd-77",
    )
    assert job.run_at.utcoffset() == timedelta(0)
    assert abs(job.run_at - run_at) < timedelta(milliseconds=1)
    assert await storage.job_claim("worker-b") is None  # leased


async def test_claim_respects_run_at_and_order(storage):
    later = await storage.job_enqueue("x", {}, run_at=now() + timedelta(hours=1))
    assert await storage.job_claim("w") is None
    second = await storage.job_enqueue("x", {}, run_at=now() - timedelta(seconds=1))
    first = await storage.job_enqueue("x", {}, run_at=now() - timedelta(seconds=10))
    assert (await storage.job_claim("w")).id == first
    assert (await storage.job_claim("w")).id == second
    assert await storage.job_claim("w") is None
    assert later not in (first, second)


async def test_claim_filters_by_kind(storage):
    a = await storage.job_enqueue("a", {})
    b = await storage.job_enqueue("b", {})
    assert await storage.job_claim("w", kinds=["c"]) is None
    assert await storage.job_claim("w", kinds=[]) is None
    assert (await storage.job_claim("w", kinds=["b", "c"])).id == b
    assert (await storage.job_claim("w", kinds=("a",))).id == a


async def test_expired_lease_lets_another_worker_claim(storage):
    job_id = await storage.job_enqueue("x", {})
    assert (await storage.job_claim("w1", lease_seconds=0.3)).id == job_id
    assert await storage.job_claim("w2") is None
    await asyncio.sleep(0.45)
    reclaimed = await storage.job_claim("w2")
    assert reclaimed.id == job_id and reclaimed.attempts == 0


async def test_concurrent_claims_never_hand_out_a_job_twice(storage):
    ids = {await storage.job_enqueue("x", {"i": i}) for i in range(5)}
    claims = await asyncio.gather(*(storage.job_claim(f"w{i}") for i in range(10)))
    got = [job.id for job in claims if job is not None]
    assert sorted(got) == sorted(ids)


async def test_concurrent_claims_across_instances(storage, storage_url):
    ids = {await storage.job_enqueue("x", {"i": i}) for i in range(20)}
    others = [await reopen(storage_url) for _ in range(2)]
    try:
        stores = [storage, *others]
        claims = await asyncio.gather(*(stores[i % 3].job_claim(f"w{i}") for i in range(30)))
    finally:
        for s in others:
            await s.close()
    got = [job.id for job in claims if job is not None]
    assert sorted(got) == sorted(ids)


async def test_complete_removes_job(storage):
    job_id = await storage.job_enqueue("x", {})
    await storage.job_claim("w", lease_seconds=0.1)
    await storage.job_complete(job_id)
    await asyncio.sleep(0.15)
    assert await storage.job_claim("w") is None


async def test_retry_reschedules_and_counts_attempts(storage):
    job_id = await storage.job_enqueue("x", {})
    await storage.job_claim("w")
    await storage.job_retry(job_id, run_at=now() + timedelta(hours=1), error="429 from Kie.ai")
    assert await storage.job_claim("w") is None  # lease released, but not due yet
    await storage.job_retry(job_id, run_at=now() - timedelta(seconds=1), error="again")
    job = await storage.job_claim("w")
    assert (job.id, job.attempts) == (job_id, 2)


async def test_failed_job_is_never_claimed(storage):
    job_id = await storage.job_enqueue("x", {}, key="doomed")
    await storage.job_claim("w", lease_seconds=0.1)
    await storage.job_fail(job_id, error="bad prompt")
    await asyncio.sleep(0.15)
    assert await storage.job_claim("w") is None
    assert await storage.job_enqueue("x", {}, key="doomed") == job_id  # kept, still deduplicates
    await storage.job_complete(job_id)  # no effect on a finished job
    assert await storage.job_claim("w") is None


async def test_naive_datetimes_are_rejected(storage):
    with pytest.raises(ValueError, match="timezone-aware"):
        await storage.job_enqueue("x", {}, run_at=datetime.now())
    job_id = await storage.job_enqueue("x", {})
    with pytest.raises(ValueError, match="timezone-aware"):
        await storage.job_retry(job_id, run_at=datetime.now(), error="e")


async def test_run_at_in_other_timezone_is_converted(storage):
    plus_five = timezone(timedelta(hours=5))
    run_at = datetime.now(plus_five) - timedelta(seconds=2)
    job_id = await storage.job_enqueue("x", {}, run_at=run_at)
    job = await storage.job_claim("w")
    assert job.id == job_id and job.run_at == run_at and job.run_at.utcoffset() == timedelta(0)


# ====================================================================== URLs, reachability


@pytest.mark.parametrize(
    "url, complaint",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("flowgram.sqlite3", "no scheme"),
        ("mysql://u:hunter2@db/x", "unsupported storage URL scheme 'mysql'"),
        ("redis://localhost", "unsupported"),
        ("sqlite://somehost/bot.db", "host part"),
        ("sqlite:///", "names no file"),
        ("sqlite:///bot.db?mode=ro", "no query parameters"),
        ("postgresql://u:hunter2@db:notaport/x", "port must be a number"),
        ("postgres://u:hunter2@db:99999/x", "port must be a number"),
        ("postgresql://[::1/x", "malformed"),
    ],
)
def test_bad_url_is_a_clear_value_error(url, complaint):
    with pytest.raises(ValueError) as info:
        open_storage(url)
    message = str(info.value)
    assert complaint in message
    assert "hunter2" not in message
    assert "Traceback" not in message


def test_sqlite_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert open_storage(None).path == str(tmp_path / "flowgram.sqlite3")
    assert open_storage("sqlite:///data/bot.db").path == str(tmp_path / "data" / "bot.db")
    assert open_storage(f"sqlite:///{tmp_path}/abs.db").path == str(tmp_path / "abs.db")
    for memory in ("sqlite://:memory:", "sqlite:///:memory:", "sqlite://"):
        assert open_storage(memory).path == ":memory:"
    assert open_storage("postgres://u@localhost/x").backend == "postgres"
    assert open_storage("POSTGRESQL://u@localhost/x").backend == "postgres"


async def test_in_memory_sqlite_works(tmp_path):
    store = open_storage("sqlite://:memory:")
    try:
        assert await store.migrate() == ALL_MIGRATIONS
        await store.inbox_add(1, {})
        assert len(await store.inbox_pending()) == 1
    finally:
        await store.close()


async def test_unopenable_sqlite_file_is_unavailable(tmp_path):
    store = open_storage(f"sqlite:///{tmp_path}/no/such/dir/bot.db")
    with pytest.raises(StorageUnavailable, match="cannot open SQLite database at .*bot.db"):
        await store.migrate()
    await store.close()


async def test_unreachable_postgres_is_unavailable():
    store = open_storage("postgresql://bot:hunter2@127.0.0.1:1/flowgram")
    for call in (store.migrate, store.ping):
        with pytest.raises(StorageUnavailable) as info:
            await call()
        message = str(info.value)
        assert message == "cannot reach PostgreSQL at 127.0.0.1:1: connection refused"
        assert info.value.__cause__ is None or "hunter2" not in str(info.value.__cause__)
    await store.close()


@pytest.mark.postgres
async def test_missing_postgres_database_is_unavailable(postgres_url):
    missing = postgres_url.rsplit("/", 1)[0] + "/flowgram_no_such_database"
    store = open_storage(missing)
    with pytest.raises(
        StorageUnavailable,
        match='refused the connection: database "flowgram_no_such_database" does not exist',
    ):
        await store.migrate()
    await store.close()


@pytest.mark.postgres
async def test_postgres_schema_uses_jsonb_and_records_migrations(postgres_url):
    import asyncpg

    store = open_storage(postgres_url)
    try:
        await store.migrate()
    finally:
        await store.close()
    con = await asyncpg.connect(postgres_url)
    try:
        names = [r["name"] for r in await con.fetch("SELECT name FROM schema_migrations")]
        json_columns = await con.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema()"
            " AND column_name IN ('data', 'screen', 'payload') ORDER BY 1, 2"
        )
    finally:
        await con.close()
    assert sorted(names) == ALL_MIGRATIONS
    assert {row["data_type"] for row in json_columns} == {"jsonb"}
    assert len(json_columns) == 4
