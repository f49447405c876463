"""SQLite backend: standard-library ``sqlite3`` on one dedicated thread and connection.

Every call is shipped to a single worker thread that owns the only connection, so
calls are serialised without locks and no connection is set up per call. Files
use WAL with ``synchronous=NORMAL`` (durable across application crashes; a power
loss may drop the last transactions, never corrupt the file). Several processes
may share a file: writes take the write lock up front (``BEGIN IMMEDIATE``) and
wait up to ``busy_timeout`` seconds for each other.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from .base import (
    Conversation,
    InboxItem,
    Job,
    LedgerEntry,
    StorageError,
    StorageUnavailable,
    balance_overflow,
    check_amount,
    check_key,
    check_user,
    conflict,
    dumps,
    dumps_optional,
    key_reused,
    load_migrations,
    loads,
    report_settled,
    unknown_hold,
    utc,
)

__all__ = ["SQLiteStorage"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _ts(value: datetime) -> str:
    """UTC as fixed-width ISO text ('2025-01-31T12:00:00.000000+00:00'): sorts like time."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _statements(sql: str) -> Iterator[str]:
    """Split a migration script into single statements (triggers included)."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    rest = "\n".join(
        line for line in buffer.splitlines() if line.strip() and not line.strip().startswith("--")
    )
    if rest:
        yield rest  # incomplete statement: let SQLite report the syntax error


_JOB_COLUMNS = "id, kind, payload, key, attempts, run_at, correlation_id"


def _job(row: tuple) -> Job:
    return Job(
        id=row[0],
        kind=row[1],
        payload=loads(row[2]),
        key=row[3],
        attempts=row[4],
        run_at=_parse_ts(row[5]),
        correlation_id=row[6],
    )


def _open_connection(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    where = "in-memory SQLite database" if path == ":memory:" else f"SQLite database at {path}"
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
    except sqlite3.Error as exc:
        raise StorageUnavailable(f"cannot open {where}: {exc}") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        if path != ":memory:":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("SQLite at %s refused WAL mode (journal_mode=%s)", path, mode)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA temp_store = MEMORY")
    except sqlite3.Error as exc:
        conn.close()
        raise StorageUnavailable(f"cannot open {where}: {exc}") from None
    return conn


_CLOSE = object()  # work item: close the connection (the None sentinel then ends the thread)


def _serve(work: queue.SimpleQueue, path: str, busy_timeout_ms: int) -> None:
    """Body of the worker thread: the only code that touches the connection."""
    conn: sqlite3.Connection | None = None
    while True:
        item = work.get()
        if item is None:
            break
        loop, future, fn, args = item
        result: Any = None
        error: BaseException | None = None
        try:
            if fn is _CLOSE:
                if conn is not None:
                    conn.close()
                    conn = None
            else:
                if conn is None:  # opened on first use; retried after a failure
                    conn = _open_connection(path, busy_timeout_ms)
                result = fn(conn, *args)
        except sqlite3.OperationalError as exc:
            error = _translate(exc, path)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            error = exc
        try:
            loop.call_soon_threadsafe(_resolve, future, result, error)
        except RuntimeError:  # the caller's event loop is closed; nobody is waiting
            pass
        del item, loop, future, result, error
    if conn is not None:
        conn.close()


def _translate(exc: sqlite3.OperationalError, path: str) -> BaseException:
    """Turn the operational errors the runtime should understand into storage errors."""
    message = str(exc)
    lowered = message.lower()
    if "no such table" in lowered:
        error: BaseException = StorageError(
            f"SQLite database at {path} has no flowgram tables ({message}); "
            "call `await storage.migrate()` first"
        )
    elif "locked" in lowered or "busy" in lowered:
        error = StorageUnavailable(
            f"SQLite database at {path} is locked by another connection ({message})"
        )
    elif any(
        word in lowered for word in ("disk i/o", "disk is full", "unable to open", "readonly")
    ):
        error = StorageUnavailable(f"SQLite database at {path} is unusable: {message}")
    else:
        return exc
    error.__cause__ = exc
    return error


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class SQLiteStorage:
    """:class:`engine.storage.Storage` on a SQLite file (or ``":memory:"``)."""

    backend = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        path = os.fspath(path)
        self.path = path if path == ":memory:" else os.path.abspath(path)
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        # An unclosed, garbage-collected store still ends its thread.
        weakref.finalize(self, self._work.put, None)

    def __repr__(self) -> str:
        return f"<SQLiteStorage {self.path}>"

    async def __aenter__(self) -> SQLiteStorage:
        await self.ping()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ plumbing

    def _submit(self, fn: Any, args: tuple) -> asyncio.Future:
        if self._thread is None:
            self._thread = threading.Thread(
                target=_serve,
                args=(self._work, self.path, self._busy_timeout_ms),
                name=f"flowgram-sqlite:{os.path.basename(self.path)}",
                daemon=True,
            )
            self._thread.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._work.put((loop, future, fn, args))
        return future

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the worker thread."""
        if self._closed:
            raise StorageError("storage is closed")
        return await self._submit(fn, args)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    # ------------------------------------------------------------------ lifecycle

    async def migrate(self) -> list[str]:
        migrations = load_migrations("sqlite")

        def run(conn: sqlite3.Connection) -> list[str]:
            conn.execute("BEGIN IMMEDIATE")  # serialises concurrent migrators across processes
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
                applied = dict(conn.execute("SELECT name, checksum FROM schema_migrations"))
                new: list[str] = []
                for migration in migrations:
                    if migration.name in applied:
                        if applied[migration.name] != migration.checksum:
                            log.warning(
                                "SQLite migration %s changed after it was applied to %s",
                                migration.name,
                                self.path,
                            )
                        continue
                    for statement in _statements(migration.sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (name, checksum, applied_at)"
                        " VALUES (?, ?, ?)",
                        (migration.name, migration.checksum, _ts(_now())),
                    )
                    new.append(migration.name)
                unknown = set(applied) - {m.name for m in migrations}
                if unknown:
                    log.warning(
                        "%s has migrations this flowgram does not know: %s (database is newer?)",
                        self.path,
                        ", ".join(sorted(unknown)),
                    )
                conn.execute("COMMIT")
                return new
            except BaseException:
                self._rollback(conn)
                raise

        return await self._run(run)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            return
        done = self._submit(_CLOSE, ())  # runs after everything queued before it
        self._work.put(None)
        await done

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    # ------------------------------------------------------------------ conversations

    async def load_conversation(self, chat_id: int, user_id: int) -> Conversation | None:
        return await self._run(_load_conversation, chat_id, user_id)

    async def save_conversation(
        self, conv: Conversation, *, done_update_id: int | None = None
    ) -> Conversation:
        # Serialise on the caller's side: errors surface there, and later mutation of
        # conv.data by the caller cannot race with the write.
        data = dumps(conv.data, "conversation data")
        screen = dumps_optional(conv.screen, "conversation screen")
        saved = await self._run(_save_conversation, conv, data, screen, done_update_id)
        if not saved:
            raise conflict(conv)
        return replace(conv, version=conv.version + 1)

    # ------------------------------------------------------------------ inbox

    async def inbox_add(self, update_id: int, payload: dict) -> bool:
        text = dumps(payload, "inbox payload")
        return await self._run(_inbox_add, update_id, text)

    async def inbox_add_many(self, items: Sequence[tuple[int, dict]]) -> list[bool]:
        rows = [(update_id, dumps(payload, "inbox payload")) for update_id, payload in items]
        if not rows:
            return []
        return await self._run(_inbox_add_many, rows)

    async def inbox_done(self, update_id: int) -> None:
        await self._run(_inbox_done, update_id)

    async def inbox_pending(self, limit: int = 100) -> list[InboxItem]:
        if limit <= 0:
            return []
        return await self._run(_inbox_pending, limit)

    # ------------------------------------------------------------------ jobs

    async def job_enqueue(
        self,
        kind: str,
        payload: dict,
        *,
        key: str | None = None,
        run_at: datetime | None = None,
        correlation_id: str | None = None,
    ) -> int:
        text = dumps(payload, "job payload")
        due = None if run_at is None else utc(run_at, "run_at")
        return await self._run(_job_enqueue, kind, text, key, due, correlation_id)

    async def job_claim(
        self, worker: str, *, lease_seconds: float = 60, kinds: Sequence[str] | None = None
    ) -> Job | None:
        if kinds is not None:
            kinds = [kinds] if isinstance(kinds, str) else list(kinds)
            if not kinds:
                return None
        return await self._run(_job_claim, worker, float(lease_seconds), kinds)

    async def job_complete(self, job_id: int) -> None:
        await self._run(_job_finish, job_id, "done", None)

    async def job_retry(self, job_id: int, *, run_at: datetime, error: str) -> None:
        await self._run(_job_retry, job_id, utc(run_at, "run_at"), error)

    async def job_fail(self, job_id: int, *, error: str) -> None:
        await self._run(_job_finish, job_id, "failed", error)

    # ------------------------------------------------------------------ ledger
    # Every write is one BEGIN IMMEDIATE transaction: the write lock is taken before the
    # balance is read, so check-and-update is atomic across threads and processes.

    async def ledger_balance(self, user_id: int) -> int:
        return await self._run(_ledger_balance, check_user(user_id))

    async def ledger_credit(self, user_id: int, amount: int, *, key: str, reason: str) -> bool:
        return await self._run(
            _ledger_credit, check_user(user_id), check_amount(amount), check_key(key), reason
        )

    async def ledger_hold(self, user_id: int, amount: int, *, key: str) -> bool:
        return await self._run(
            _ledger_hold, check_user(user_id), check_amount(amount), check_key(key)
        )

    async def ledger_capture(self, key: str) -> None:
        status = await self._run(_ledger_settle, check_key(key), "capture")
        if status is not None:
            report_settled(log, key, "capture", status)

    async def ledger_release(self, key: str) -> None:
        status = await self._run(_ledger_settle, check_key(key), "release")
        if status is not None:
            report_settled(log, key, "release", status)

    async def ledger_hold_status(self, key: str) -> str | None:
        return await self._run(_ledger_hold_status, check_key(key))

    async def ledger_entries(self, user_id: int, limit: int = 50) -> list[LedgerEntry]:
        if limit <= 0:
            return []
        return await self._run(_ledger_entries, check_user(user_id), limit)


# ---------------------------------------------------------------------- worker-thread bodies


def _load_conversation(conn: sqlite3.Connection, chat_id: int, user_id: int) -> Conversation | None:
    row = conn.execute(
        "SELECT state, data, screen, locale, version FROM conversations"
        " WHERE chat_id = ? AND user_id = ?",
        (chat_id, user_id),
    ).fetchone()
    if row is None:
        return None
    return Conversation(
        chat_id=chat_id,
        user_id=user_id,
        state=row[0],
        data=loads(row[1]),
        screen=loads(row[2]),
        locale=row[3],
        version=row[4],
    )


_INSERT_CONVERSATION = (
    "INSERT INTO conversations"
    " (chat_id, user_id, state, data, screen, locale, version, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (chat_id, user_id) DO NOTHING"
)
_UPDATE_CONVERSATION = (
    "UPDATE conversations SET state = ?, data = ?, screen = ?, locale = ?,"
    " version = version + 1, updated_at = ?"
    " WHERE chat_id = ? AND user_id = ? AND version = ?"
)
_INBOX_DONE = (
    "INSERT INTO inbox (update_id, payload, received_at, done_at) VALUES (?, '{}', ?, ?)"
    " ON CONFLICT (update_id) DO UPDATE SET done_at = coalesce(inbox.done_at, excluded.done_at)"
)


def _save_conversation(
    conn: sqlite3.Connection,
    conv: Conversation,
    data: str,
    screen: str | None,
    done_update_id: int | None,
) -> bool:
    now = _ts(_now())
    if conv.version == 0:
        sql = _INSERT_CONVERSATION
        params: tuple = (
            conv.chat_id,
            conv.user_id,
            conv.state,
            data,
            screen,
            conv.locale,
            now,
            now,
        )
    else:
        sql = _UPDATE_CONVERSATION
        params = (
            conv.state,
            data,
            screen,
            conv.locale,
            now,
            conv.chat_id,
            conv.user_id,
            conv.version,
        )
    if done_update_id is None:
        return conn.execute(sql, params).rowcount == 1
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute(sql, params).rowcount != 1:
            conn.execute("ROLLBACK")
            return False
        conn.execute(_INBOX_DONE, (done_update_id, now, now))
        conn.execute("COMMIT")
        return True
    except BaseException:
        SQLiteStorage._rollback(conn)
        raise


_INBOX_ADD = (
    "INSERT INTO inbox (update_id, payload, received_at) VALUES (?, ?, ?)"
    " ON CONFLICT (update_id) DO NOTHING"
)


def _inbox_add(conn: sqlite3.Connection, update_id: int, payload: str) -> bool:
    return conn.execute(_INBOX_ADD, (update_id, payload, _ts(_now()))).rowcount == 1


def _inbox_add_many(conn: sqlite3.Connection, rows: list[tuple[int, str]]) -> list[bool]:
    now = _ts(_now())
    conn.execute("BEGIN IMMEDIATE")  # one commit for the batch
    try:
        added = [conn.execute(_INBOX_ADD, (update_id, payload, now)).rowcount == 1 for update_id, payload in rows]
        conn.execute("COMMIT")
        return added
    except BaseException:
        SQLiteStorage._rollback(conn)
        raise


def _inbox_done(conn: sqlite3.Connection, update_id: int) -> None:
    now = _ts(_now())
    conn.execute(_INBOX_DONE, (update_id, now, now))


def _inbox_pending(conn: sqlite3.Connection, limit: int) -> list[InboxItem]:
    rows = conn.execute(
        "SELECT update_id, payload, received_at FROM inbox WHERE done_at IS NULL"
        " ORDER BY received_at, update_id LIMIT ?",
        (limit,),
    ).fetchall()
    return [InboxItem(row[0], loads(row[1]), _parse_ts(row[2])) for row in rows]


def _job_enqueue(
    conn: sqlite3.Connection,
    kind: str,
    payload: str,
    key: str | None,
    run_at: datetime | None,
    correlation_id: str | None,
) -> int:
    now = _now()
    row = conn.execute(
        "INSERT INTO jobs"
        " (kind, payload, key, run_at, due_at, correlation_id, created_at, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?6) ON CONFLICT (key) DO NOTHING RETURNING id",
        (kind, payload, key, _ts(run_at or now), correlation_id, _ts(now)),
    ).fetchone()
    if row is not None:
        return row[0]
    return conn.execute("SELECT id FROM jobs WHERE key = ?", (key,)).fetchone()[0]


def _job_claim(
    conn: sqlite3.Connection, worker: str, lease_seconds: float, kinds: list[str] | None
) -> Job | None:
    now = _now()
    now_text = _ts(now)
    lease_end = _ts(now + timedelta(seconds=lease_seconds))
    kind_filter = "" if kinds is None else f" AND kind IN ({', '.join('?' * len(kinds))})"
    # One statement: atomic even with other processes on the same file. A lease pushes
    # due_at to the lease end, so leased jobs drop out of the due range by themselves.
    row = conn.execute(
        "UPDATE jobs SET locked_by = ?, locked_until = ?, due_at = ?, updated_at = ?"
        " WHERE id = (SELECT id FROM jobs WHERE status = 'pending' AND due_at <= ?"
        + kind_filter
        + " ORDER BY due_at, id LIMIT 1)"
        f" RETURNING {_JOB_COLUMNS}",
        (worker, lease_end, lease_end, now_text, now_text, *(kinds or ())),
    ).fetchone()
    return None if row is None else _job(row)


def _job_retry(conn: sqlite3.Connection, job_id: int, run_at: datetime, error: str) -> None:
    conn.execute(
        "UPDATE jobs SET run_at = ?1, due_at = ?1, last_error = ?2, attempts = attempts + 1,"
        " locked_by = NULL, locked_until = NULL, updated_at = ?3"
        " WHERE id = ?4 AND status = 'pending'",
        (_ts(run_at), error, _ts(_now()), job_id),
    )


def _job_finish(conn: sqlite3.Connection, job_id: int, status: str, error: str | None) -> None:
    now = _ts(_now())
    conn.execute(
        "UPDATE jobs SET status = ?, last_error = coalesce(?, last_error),"
        " attempts = attempts + ?, locked_by = NULL, locked_until = NULL,"
        " finished_at = ?, updated_at = ?"
        " WHERE id = ? AND status = 'pending'",
        (status, error, 1 if status == "failed" else 0, now, now, job_id),
    )


# ---------------------------------------------------------------------- ledger bodies


def _ledger_balance(conn: sqlite3.Connection, user_id: int) -> int:
    row = conn.execute(
        "SELECT available FROM ledger_accounts WHERE user_id = ?", (user_id,)
    ).fetchone()
    return 0 if row is None else row[0]


def _ledger_credit(
    conn: sqlite3.Connection, user_id: int, amount: int, key: str, reason: str | None
) -> bool:
    now = _ts(_now())
    conn.execute("BEGIN IMMEDIATE")
    try:
        first = conn.execute(
            "SELECT user_id, amount FROM ledger_entries WHERE kind = 'credit' AND key = ?", (key,)
        ).fetchone()
        if first is not None:
            conn.execute("ROLLBACK")
            if tuple(first) != (user_id, amount):
                raise key_reused("credit", key, tuple(first), (user_id, amount))
            return False
        conn.execute(
            "INSERT INTO ledger_entries (user_id, key, kind, amount, reason, created_at)"
            " VALUES (?, ?, 'credit', ?, ?, ?)",
            (user_id, key, amount, reason, now),
        )
        try:
            conn.execute(
                "INSERT INTO ledger_accounts (user_id, available, held, updated_at)"
                " VALUES (?, ?, 0, ?) ON CONFLICT (user_id) DO UPDATE"
                " SET available = available + excluded.available, updated_at = excluded.updated_at",
                (user_id, amount, now),
            )
        except sqlite3.IntegrityError:  # the sum became a REAL: typeof(available) check
            raise balance_overflow(user_id) from None
        conn.execute("COMMIT")
        return True
    except BaseException:
        SQLiteStorage._rollback(conn)
        raise


def _ledger_hold(conn: sqlite3.Connection, user_id: int, amount: int, key: str) -> bool:
    now = _ts(_now())
    conn.execute("BEGIN IMMEDIATE")
    try:
        first = conn.execute(
            "SELECT user_id, amount, status FROM ledger_holds WHERE key = ?", (key,)
        ).fetchone()
        if first is not None:
            conn.execute("ROLLBACK")
            if (first[0], first[1]) != (user_id, amount):
                raise key_reused("hold", key, (first[0], first[1]), (user_id, amount))
            return first[2] != "declined"
        held = (
            conn.execute(
                "UPDATE ledger_accounts SET available = available - ?1, held = held + ?1,"
                " updated_at = ?2 WHERE user_id = ?3 AND available >= ?1",
                (amount, now, user_id),
            ).rowcount
            == 1
        )
        conn.execute(
            "INSERT INTO ledger_holds (key, user_id, amount, status, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, user_id, amount, "held" if held else "declined", now),
        )
        if held:
            conn.execute(
                "INSERT INTO ledger_entries (user_id, key, kind, amount, created_at)"
                " VALUES (?, ?, 'hold', ?, ?)",
                (user_id, key, amount, now),
            )
        conn.execute("COMMIT")
        return held
    except BaseException:
        SQLiteStorage._rollback(conn)
        raise


_SETTLE_ACCOUNT = {
    "capture": "UPDATE ledger_accounts SET held = held - ?1, updated_at = ?2 WHERE user_id = ?3",
    "release": "UPDATE ledger_accounts SET held = held - ?1, available = available + ?1,"
    " updated_at = ?2 WHERE user_id = ?3",
}
_SETTLED = {"capture": "captured", "release": "released"}


def _ledger_settle(conn: sqlite3.Connection, key: str, kind: str) -> str | None:
    """Capture or release a hold; None when applied, else the hold's status (nothing changed)."""
    now = _ts(_now())
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT user_id, amount, status FROM ledger_holds WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            raise unknown_hold(key)
        user_id, amount, status = row
        if status != "held":
            conn.execute("ROLLBACK")
            return status
        conn.execute(
            "UPDATE ledger_holds SET status = ?, settled_at = ? WHERE key = ?",
            (_SETTLED[kind], now, key),
        )
        if conn.execute(_SETTLE_ACCOUNT[kind], (amount, now, user_id)).rowcount != 1:
            raise StorageError(f"ledger hold {key!r} has no account row for user {user_id}")
        conn.execute(
            "INSERT INTO ledger_entries (user_id, key, kind, amount, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (user_id, key, kind, amount, now),
        )
        conn.execute("COMMIT")
        return None
    except BaseException:
        SQLiteStorage._rollback(conn)
        raise


def _ledger_hold_status(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT status FROM ledger_holds WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def _ledger_entries(conn: sqlite3.Connection, user_id: int, limit: int) -> list[LedgerEntry]:
    rows = conn.execute(
        "SELECT key, kind, amount, reason, created_at FROM ledger_entries WHERE user_id = ?"
        " ORDER BY id DESC LIMIT ?",
        (user_id, limit),
    ).fetchall()
    return [LedgerEntry(row[0], row[1], row[2], row[3], _parse_ts(row[4])) for row in rows]
