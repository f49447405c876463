"""PostgreSQL backend on an asyncpg connection pool.

* The pool is created on the first call (normally ``migrate()``); connection
  problems raise :class:`StorageUnavailable` naming ``host:port`` and the reason.
* Every query is a constant SQL string, so asyncpg prepares it once per pooled
  connection and reuses the prepared statement afterwards.
* Writes that must be atomic are single statements (data-modifying CTEs), so the
  hot path (``inbox_add`` + ``save_conversation(done_update_id=...)``) costs two
  round trips per update.
* ``job_claim`` uses ``FOR UPDATE SKIP LOCKED``; the database clock decides
  leases and due times, so instances with skewed clocks still agree.
* ``migrate()`` runs in one transaction holding an advisory lock, so several
  instances starting at once apply each migration exactly once.
* Ledger writes are single statements too: a hold is a conditional UPDATE of the
  account row (``WHERE available >= amount``), so concurrent holds of one user on
  any number of instances queue on that row lock and each re-checks the balance.

Extra asyncpg server settings can ride on the URL query, e.g.
``postgresql://bot@db/bot?search_path=flowgram`` keeps the tables in schema ``flowgram``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import asyncpg.exceptions as pgerr

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

__all__ = ["PostgresStorage", "describe_target"]

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key serialising migrate() across instances ("flowgrm" in ASCII).
MIGRATION_LOCK_KEY = 0x666C6F7767726D
# Migrations (and waiting for another instance's) may outlast the per-query command timeout.
MIGRATION_TIMEOUT = 3600.0

# Errors meaning "the server is not there / went away", as opposed to bad SQL or data.
_UNAVAILABLE = (
    OSError,  # refused, unreachable, DNS (socket.gaierror), TLS (ssl.SSLError)
    asyncio.TimeoutError,
    pgerr.PostgresConnectionError,  # class 08, incl. ConnectionDoesNotExistError
    pgerr.OperatorInterventionError,  # class 57: shutting down, cannot connect now
    pgerr.InvalidAuthorizationSpecificationError,  # class 28: bad user / password
    pgerr.InvalidCatalogNameError,  # database does not exist
    pgerr.TooManyConnectionsError,
)


def describe_target(url: str) -> str:
    """``host:port`` (or the unix socket directory) of a PostgreSQL URL, without credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    query = parse_qs(parts.query)
    if not host and query.get("host"):
        host = query["host"][0]
    if not port and query.get("port"):
        port = query["port"][0]
    host = host or os.environ.get("PGHOST") or "localhost"
    port = port or os.environ.get("PGPORT") or 5432
    if host.startswith("/"):
        return f"{host} (unix socket, port {port})"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{host}:{port}"


def _reason(exc: BaseException, timeout: float) -> str:
    """A short human reason for a connection failure."""
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"host name lookup failed ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, OSError):
        codes = {int(code) for code in re.findall(r"\[Errno (\d+)\]", str(exc))}
        if exc.errno is not None:
            codes.add(exc.errno)
        if codes == {errno.ECONNREFUSED}:
            return "connection refused"
        if len(codes) == 1:
            return os.strerror(codes.pop()).lower()
        return exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, pgerr.PostgresError):
        return exc.args[0] if exc.args else type(exc).__name__
    return str(exc) or type(exc).__name__


async def _keep_session(con: asyncpg.Connection) -> None:
    """Pool ``reset`` hook: skip asyncpg's default reset query on release.

    The default (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``)
    costs a second round trip per call. This backend leaves no session state
    behind (no SET, LISTEN, cursors or session-level advisory locks; open
    transactions are still rolled back by asyncpg), so there is nothing to reset.
    """


class PostgresStorage:
    """:class:`engine.storage.Storage` on PostgreSQL (asyncpg pool)."""

    backend = "postgres"

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float | None = 60.0,
        statement_cache_size: int = 256,
    ) -> None:
        self._url = url
        self.target = describe_target(url)
        self._pool_options = dict(
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            statement_cache_size=statement_cache_size,
        )
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<PostgresStorage {self.target}>"

    async def __aenter__(self) -> PostgresStorage:
        await self.ping()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ plumbing

    def _unavailable(self, exc: BaseException, timeout: float | None = None) -> StorageUnavailable:
        reason = _reason(exc, timeout if timeout is not None else self._connect_timeout)
        if isinstance(
            exc,
            (
                pgerr.InvalidAuthorizationSpecificationError,
                pgerr.InvalidCatalogNameError,
                pgerr.TooManyConnectionsError,
            ),
        ):
            return StorageUnavailable(
                f"PostgreSQL at {self.target} refused the connection: {reason}"
            )
        return StorageUnavailable(f"cannot reach PostgreSQL at {self.target}: {reason}")

    def _translate(self, exc: Exception) -> Exception:
        """The storage error to raise for an exception from a query."""
        if isinstance(exc, pgerr.UndefinedTableError):
            error: Exception = StorageError(
                f"database at {self.target} has no flowgram tables ({exc}); "
                "call `await storage.migrate()` first"
            )
        elif isinstance(exc, _UNAVAILABLE):
            error = self._unavailable(exc, self._command_timeout)
        else:
            return exc
        return error

    async def _get_pool(self) -> asyncpg.Pool:
        if self._closed:
            raise StorageError("storage is closed")
        async with self._pool_lock:
            if self._closed:
                raise StorageError("storage is closed")
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(
                        self._url,
                        server_settings={"application_name": "flowgram"},
                        reset=_keep_session,
                        **self._pool_options,
                    )
                except _UNAVAILABLE as exc:
                    raise self._unavailable(exc) from None
                except ValueError as exc:  # asyncpg's DSN checks (ClientConfigurationError is one)
                    raise ValueError(f"invalid PostgreSQL URL: {exc}") from None
            return self._pool

    async def _query(self, method: str, sql: str, *args: Any) -> Any:
        """``pool.<method>(sql, *args)``: one pooled connection, one cached prepared statement."""
        pool = self._pool or await self._get_pool()
        try:
            return await getattr(pool, method)(sql, *args)
        except Exception as exc:
            error = self._translate(exc)
            if error is exc:
                raise
            raise error from exc

    # ------------------------------------------------------------------ lifecycle

    async def migrate(self) -> list[str]:
        migrations = load_migrations("postgres")
        pool = self._pool or await self._get_pool()
        try:
            async with pool.acquire() as con, con.transaction():
                # Held until commit: a second instance waits here, then sees our rows.
                await con.execute(
                    "SELECT pg_advisory_xact_lock($1)",
                    MIGRATION_LOCK_KEY,
                    timeout=MIGRATION_TIMEOUT,
                )
                await con.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " name TEXT PRIMARY KEY, checksum TEXT NOT NULL,"
                    " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                applied = {
                    row["name"]: row["checksum"]
                    for row in await con.fetch("SELECT name, checksum FROM schema_migrations")
                }
                new: list[str] = []
                for migration in migrations:
                    if migration.name in applied:
                        if applied[migration.name] != migration.checksum:
                            log.warning(
                                "PostgreSQL migration %s changed after it was applied at %s",
                                migration.name,
                                self.target,
                            )
                        continue
                    # no arguments: simple query protocol, so a file may hold many statements
                    await con.execute(migration.sql, timeout=MIGRATION_TIMEOUT)
                    await con.execute(
                        "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                        migration.name,
                        migration.checksum,
                    )
                    new.append(migration.name)
                unknown = set(applied) - {m.name for m in migrations}
                if unknown:
                    log.warning(
                        "database at %s has migrations this flowgram does not know: %s",
                        self.target,
                        ", ".join(sorted(unknown)),
                    )
                return new
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except (TimeoutError, *_UNAVAILABLE):
                pool.terminate()

    async def ping(self) -> None:
        await self._query("fetchval", "SELECT 1")

    # ------------------------------------------------------------------ conversations

    async def load_conversation(self, chat_id: int, user_id: int) -> Conversation | None:
        row = await self._query(
            "fetchrow",
            "SELECT state, data::text, screen::text, locale, version FROM conversations"
            " WHERE chat_id = $1 AND user_id = $2",
            chat_id,
            user_id,
        )
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

    async def save_conversation(
        self, conv: Conversation, *, done_update_id: int | None = None
    ) -> Conversation:
        data = dumps(conv.data, "conversation data")
        screen = dumps_optional(conv.screen, "conversation screen")
        if conv.version == 0:
            args: tuple = (conv.chat_id, conv.user_id, conv.state, data, screen, conv.locale)
            sql = _INSERT if done_update_id is None else _INSERT_AND_DONE
        else:
            args = (conv.chat_id, conv.user_id, conv.state, data, screen, conv.locale, conv.version)
            sql = _UPDATE if done_update_id is None else _UPDATE_AND_DONE
        if done_update_id is not None:
            args += (done_update_id,)
        saved = await self._query("fetchval", sql, *args)
        if saved is None:
            raise conflict(conv)
        return replace(conv, version=saved)

    # ------------------------------------------------------------------ inbox

    async def inbox_add(self, update_id: int, payload: dict) -> bool:
        status = await self._query(
            "execute",
            "INSERT INTO inbox (update_id, payload) VALUES ($1, $2::jsonb)"
            " ON CONFLICT (update_id) DO NOTHING",
            update_id,
            dumps(payload, "inbox payload"),
        )
        return status.endswith(" 1")  # "INSERT 0 1" vs "INSERT 0 0"

    async def inbox_add_many(self, items: Sequence[tuple[int, dict]]) -> list[bool]:
        ids = [update_id for update_id, _ in items]
        payloads = [dumps(payload, "inbox payload") for _, payload in items]
        if not ids:
            return []
        rows = await self._query("fetch", _INBOX_ADD_MANY, ids, payloads)
        added = {row[0] for row in rows}
        flags = []
        for update_id in ids:  # a repeat within the batch is a duplicate of its first occurrence
            flags.append(update_id in added)
            added.discard(update_id)
        return flags

    async def inbox_done(self, update_id: int) -> None:
        await self._query(
            "execute",
            "INSERT INTO inbox AS i (update_id, done_at) VALUES ($1, now())"
            " ON CONFLICT (update_id)"
            " DO UPDATE SET done_at = coalesce(i.done_at, excluded.done_at)",
            update_id,
        )

    async def inbox_pending(self, limit: int = 100) -> list[InboxItem]:
        if limit <= 0:
            return []
        rows = await self._query(
            "fetch",
            "SELECT update_id, payload::text, received_at FROM inbox WHERE done_at IS NULL"
            " ORDER BY received_at, update_id LIMIT $1",
            limit,
        )
        return [InboxItem(row[0], loads(row[1]), row[2]) for row in rows]

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
        due = None if run_at is None else utc(run_at, "run_at")
        job_id = await self._query(
            "fetchval",
            "INSERT INTO jobs (kind, payload, key, run_at, due_at, correlation_id)"
            " VALUES ($1, $2::jsonb, $3, coalesce($4::timestamptz, now()),"
            " coalesce($4::timestamptz, now()), $5)"
            " ON CONFLICT (key) DO NOTHING RETURNING id",
            kind,
            dumps(payload, "job payload"),
            key,
            due,
            correlation_id,
        )
        if job_id is None:  # key taken (possibly by a transaction that just committed)
            job_id = await self._query("fetchval", "SELECT id FROM jobs WHERE key = $1", key)
        return job_id

    async def job_claim(
        self, worker: str, *, lease_seconds: float = 60, kinds: Sequence[str] | None = None
    ) -> Job | None:
        if kinds is not None:
            kinds = [kinds] if isinstance(kinds, str) else list(kinds)
            if not kinds:
                return None
        row = await self._query("fetchrow", _CLAIM, worker, float(lease_seconds), kinds)
        if row is None:
            return None
        return Job(
            id=row[0],
            kind=row[1],
            payload=loads(row[2]),
            key=row[3],
            attempts=row[4],
            run_at=row[5],
            correlation_id=row[6],
        )

    async def job_complete(self, job_id: int) -> None:
        await self._query(
            "execute",
            "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL,"
            " finished_at = now(), updated_at = now() WHERE id = $1 AND status = 'pending'",
            job_id,
        )

    async def job_retry(self, job_id: int, *, run_at: datetime, error: str) -> None:
        await self._query(
            "execute",
            "UPDATE jobs SET run_at = $2, due_at = $2, last_error = $3, attempts = attempts + 1,"
            " locked_by = NULL, locked_until = NULL, updated_at = now()"
            " WHERE id = $1 AND status = 'pending'",
            job_id,
            utc(run_at, "run_at"),
            error,
        )

    async def job_fail(self, job_id: int, *, error: str) -> None:
        await self._query(
            "execute",
            "UPDATE jobs SET status = 'failed', last_error = $2, attempts = attempts + 1,"
            " locked_by = NULL, locked_until = NULL, finished_at = now(), updated_at = now()"
            " WHERE id = $1 AND status = 'pending'",
            job_id,
            error,
        )


    # ------------------------------------------------------------------ ledger

    async def ledger_balance(self, user_id: int) -> int:
        available = await self._query(
            "fetchval",
            "SELECT available FROM ledger_accounts WHERE user_id = $1",
            check_user(user_id),
        )
        return 0 if available is None else available

    async def ledger_credit(self, user_id: int, amount: int, *, key: str, reason: str) -> bool:
        user_id, amount, key = check_user(user_id), check_amount(amount), check_key(key)
        try:
            applied = await self._query("fetchval", _CREDIT, user_id, key, amount, reason)
        except pgerr.NumericValueOutOfRangeError:
            raise balance_overflow(user_id) from None
        if applied is not None:
            return True
        first = await self._query(
            "fetchrow",
            "SELECT user_id, amount FROM ledger_entries WHERE kind = 'credit' AND key = $1",
            key,
        )
        if (first[0], first[1]) != (user_id, amount):
            raise key_reused("credit", key, (first[0], first[1]), (user_id, amount))
        return False

    async def ledger_hold(self, user_id: int, amount: int, *, key: str) -> bool:
        user_id, amount, key = check_user(user_id), check_amount(amount), check_key(key)
        try:
            status = await self._query("fetchval", _HOLD, key, user_id, amount)
        except pgerr.UniqueViolationError:
            # The key was held before (or concurrently): the whole statement, including
            # any reservation it made, was rolled back. Answer as the first call did.
            first = await self._query(
                "fetchrow", "SELECT user_id, amount, status FROM ledger_holds WHERE key = $1", key
            )
            if (first[0], first[1]) != (user_id, amount):
                raise key_reused("hold", key, (first[0], first[1]), (user_id, amount)) from None
            status = first[2]
        return status != "declined"

    async def ledger_capture(self, key: str) -> None:
        await self._settle(_CAPTURE, check_key(key), "capture")

    async def ledger_release(self, key: str) -> None:
        await self._settle(_RELEASE, check_key(key), "release")

    async def _settle(self, sql: str, key: str, kind: str) -> None:
        if await self._query("fetchval", sql, key):
            return
        status = await self._query(
            "fetchval", "SELECT status FROM ledger_holds WHERE key = $1", key
        )
        if status is None:
            raise unknown_hold(key)
        report_settled(log, key, kind, status)

    async def ledger_hold_status(self, key: str) -> str | None:
        return await self._query(
            "fetchval", "SELECT status FROM ledger_holds WHERE key = $1", check_key(key)
        )

    async def ledger_entries(self, user_id: int, limit: int = 50) -> list[LedgerEntry]:
        if limit <= 0:
            return []
        rows = await self._query(
            "fetch",
            "SELECT key, kind, amount, reason, created_at FROM ledger_entries WHERE user_id = $1"
            " ORDER BY id DESC LIMIT $2",
            check_user(user_id),
            limit,
        )
        return [LedgerEntry(row[0], row[1], row[2], row[3], row[4]) for row in rows]


# ---------------------------------------------------------------------- SQL

# A getUpdates batch in one statement (one round trip, one commit). WITH ORDINALITY keeps
# the batch order, so of two rows with the same update_id the first is the one stored.
_INBOX_ADD_MANY = (
    "INSERT INTO inbox (update_id, payload)"
    " SELECT u, p::jsonb FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS t(u, p, n) ORDER BY n"
    " ON CONFLICT (update_id) DO NOTHING RETURNING update_id"
)

# Inbox "done" as an upsert: an update_id never recorded is recorded as done.
_DONE_CTE = (
    ", done AS (INSERT INTO inbox AS i (update_id, done_at)"
    " SELECT $N, now() WHERE EXISTS (SELECT 1 FROM c)"
    " ON CONFLICT (update_id) DO UPDATE SET done_at = coalesce(i.done_at, excluded.done_at))"
)

_INSERT = (
    "INSERT INTO conversations (chat_id, user_id, state, data, screen, locale, version)"
    " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, 1)"
    " ON CONFLICT (chat_id, user_id) DO NOTHING RETURNING version"
)
_INSERT_AND_DONE = (
    "WITH c AS (" + _INSERT + ")" + _DONE_CTE.replace("$N", "$7::bigint") + " SELECT version FROM c"
)
_UPDATE = (
    "UPDATE conversations SET state = $3, data = $4::jsonb, screen = $5::jsonb, locale = $6,"
    " version = version + 1, updated_at = now()"
    " WHERE chat_id = $1 AND user_id = $2 AND version = $7 RETURNING version"
)
_UPDATE_AND_DONE = (
    "WITH c AS (" + _UPDATE + ")" + _DONE_CTE.replace("$N", "$8::bigint") + " SELECT version FROM c"
)

# A lease pushes due_at to the lease end, so leased jobs leave the due range by themselves
# and the partial index (due_at, id) WHERE status = 'pending' serves the scan.
_CLAIM = (
    "UPDATE jobs SET locked_by = $1, locked_until = now() + make_interval(secs => $2::float8),"
    " due_at = now() + make_interval(secs => $2::float8), updated_at = now()"
    " WHERE id = (SELECT id FROM jobs"
    "   WHERE status = 'pending' AND due_at <= now()"
    "   AND ($3::text[] IS NULL OR kind = ANY($3::text[]))"
    "   ORDER BY due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, kind, payload::text, key, attempts, run_at, correlation_id"
)

# ---- ledger: each operation is one statement (one transaction, one round trip).

# The journal line claims the credit key; the account is credited only if it was new.
_CREDIT = (
    "WITH e AS (INSERT INTO ledger_entries (user_id, key, kind, amount, reason)"
    "   VALUES ($1::bigint, $2::text, 'credit', $3::bigint, $4::text)"
    "   ON CONFLICT (kind, key) DO NOTHING RETURNING user_id, amount)"
    " INSERT INTO ledger_accounts AS a (user_id, available) SELECT user_id, amount FROM e"
    " ON CONFLICT (user_id) DO UPDATE SET available = a.available + excluded.available,"
    " updated_at = now()"
    " RETURNING 1"
)

# Reserve only if enough is available (the row lock serialises holders; a waiting UPDATE
# re-checks `available` on the committed row), then record the hold as held or declined.
# A key used before makes the hold INSERT fail with a unique violation, which rolls the
# whole statement back, reservation included: no double hold, even for concurrent callers.
_HOLD = (
    "WITH acc AS (UPDATE ledger_accounts SET available = available - $3::bigint,"
    "   held = held + $3::bigint, updated_at = now()"
    "   WHERE user_id = $2::bigint AND available >= $3::bigint"
    "   AND NOT EXISTS (SELECT 1 FROM ledger_holds WHERE key = $1::text)"
    "   RETURNING user_id),"
    " h AS (INSERT INTO ledger_holds (key, user_id, amount, status)"
    "   SELECT $1::text, $2::bigint, $3::bigint,"
    "   CASE WHEN EXISTS (SELECT 1 FROM acc) THEN 'held' ELSE 'declined' END"
    "   RETURNING status),"
    " e AS (INSERT INTO ledger_entries (user_id, key, kind, amount)"
    "   SELECT user_id, $1::text, 'hold', $3::bigint FROM acc)"
    " SELECT status FROM h"
)

# Settle only a hold that is still `held`: a concurrent settlement of the same key waits on
# the hold's row lock, then finds it settled and changes nothing (the first one wins).
_SETTLE = (
    "WITH h AS (UPDATE ledger_holds SET status = '{status}', settled_at = now()"
    "   WHERE key = $1 AND status = 'held' RETURNING user_id, amount),"
    " a AS (UPDATE ledger_accounts AS a SET {balance}, updated_at = now()"
    "   FROM h WHERE a.user_id = h.user_id RETURNING 1),"
    " e AS (INSERT INTO ledger_entries (user_id, key, kind, amount)"
    "   SELECT user_id, $1, '{kind}', amount FROM h)"
    " SELECT count(*) FROM a"
)
_CAPTURE = _SETTLE.format(status="captured", kind="capture", balance="held = a.held - h.amount")
_RELEASE = _SETTLE.format(
    status="released",
    kind="release",
    balance="held = a.held - h.amount, available = a.available + h.amount",
)
