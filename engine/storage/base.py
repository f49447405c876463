"""The storage interface shared by every backend.

The runtime codes against :class:`Storage` only; ``engine.storage.sqlite`` and
``engine.storage.postgres`` implement it and ``tests/test_storage_contract.py``
holds both to the same behaviour.

Conventions every backend follows:

* timestamps are timezone-aware UTC ``datetime`` objects, in and out
  (a naive ``run_at`` is rejected with ``ValueError``);
* JSON values (conversation data, screens, payloads) are serialised here, with
  the same rules on every backend: no NaN/Infinity and no NUL characters
  (PostgreSQL cannot store ``\\u0000`` in JSONB), otherwise ``ValueError``;
  a value that is not JSON-serialisable raises ``TypeError``;
* nothing connects until the first call (``migrate()`` normally); an
  unreachable database raises :class:`StorageUnavailable`;
* ledger amounts are positive ``int`` credits (never floats; ``bool`` is not an
  amount), otherwise ``ValueError``; ledger keys are non-empty strings.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Conversation",
    "InboxItem",
    "Job",
    "LedgerEntry",
    "Migration",
    "Storage",
    "StorageError",
    "ConflictError",
    "StorageUnavailable",
    "load_migrations",
]


# --------------------------------------------------------------------------- errors


class StorageError(Exception):
    """Base class of every error this package raises on purpose."""


class ConflictError(StorageError):
    """A save used a stale version: another writer saved this conversation first.

    Nothing was written (and an inbox item passed as ``done_update_id`` is still
    pending). Reload the conversation and handle the update again.
    """


class StorageUnavailable(StorageError):
    """The database cannot be reached or opened.

    The message names the target (``host:port`` or the file path) and the reason;
    it never contains a password.
    """


# --------------------------------------------------------------------------- records


@dataclass
class Conversation:
    chat_id: int
    user_id: int
    state: str  # qualified state name "flow.state"
    data: dict[str, Any]  # conversation variables (JSON-serialisable)
    screen: dict[str, Any] | None  # last rendered screen as JSON
    locale: str | None
    version: int = 0  # optimistic version; 0 = never saved


@dataclass
class InboxItem:
    update_id: int
    payload: dict
    received_at: datetime


@dataclass
class Job:
    id: int
    kind: str
    payload: dict
    key: str | None
    attempts: int  # how many times job_retry/job_fail recorded a failed attempt
    run_at: datetime
    correlation_id: str | None


@dataclass(frozen=True)
class LedgerEntry:
    """One line of a user's ledger journal (``ledger_entries``), for history and support."""

    key: str  # the credit's key, or the key of the hold this line belongs to
    kind: str  # "credit" | "hold" | "capture" | "release"
    amount: int  # positive credits
    reason: str | None  # given with a credit; None for hold/capture/release
    created_at: datetime


# --------------------------------------------------------------------------- interface


@runtime_checkable
class Storage(Protocol):
    """What the runtime needs from a database. See module docstring for conventions."""

    backend: str  # "sqlite" | "postgres"

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names newly applied (``[]`` when up to date).

        Idempotent, and safe when several processes call it at once."""
        ...

    async def close(self) -> None:
        """Release connections/threads. Idempotent; the store is unusable afterwards."""
        ...

    async def ping(self) -> None:
        """Round-trip to the database; raises :class:`StorageUnavailable` if unreachable."""
        ...

    # ---- conversation state (optimistic versioning)

    async def load_conversation(self, chat_id: int, user_id: int) -> Conversation | None: ...

    async def save_conversation(
        self, conv: Conversation, *, done_update_id: int | None = None
    ) -> Conversation:
        """Insert (``conv.version == 0``) or update (``WHERE version = conv.version``).

        Returns a copy with ``version + 1``; use it for the next save. Raises
        :class:`ConflictError` when another writer got there first. With
        ``done_update_id`` the inbox item is marked done in the same transaction
        (an update_id never recorded is recorded as done, so a later redelivery
        is deduplicated)."""
        ...

    # ---- inbox keyed by update_id

    async def inbox_add(self, update_id: int, payload: dict) -> bool:
        """Record an incoming update; ``False`` when this update_id was already recorded."""
        ...

    async def inbox_add_many(self, items: Sequence[tuple[int, dict]]) -> list[bool]:
        """Record a batch of incoming updates (``(update_id, payload)`` pairs) in one transaction.

        Returns one flag per item, in order: ``True`` when newly recorded, ``False`` when the
        update_id was already recorded (before, or earlier in the same batch). All or nothing:
        a payload that cannot be stored raises before anything is written. ``[]`` for ``[]``."""
        ...

    async def inbox_done(self, update_id: int) -> None: ...

    async def inbox_pending(self, limit: int = 100) -> list[InboxItem]:
        """Recorded and not done, oldest first."""
        ...

    # ---- durable background work

    async def job_enqueue(
        self,
        kind: str,
        payload: dict,
        *,
        key: str | None = None,
        run_at: datetime | None = None,
        correlation_id: str | None = None,
    ) -> int:
        """Idempotent by ``key``: enqueuing a key again returns the first job's id
        (whatever that job's status)."""
        ...

    async def job_claim(
        self, worker: str, *, lease_seconds: float = 60, kinds: Sequence[str] | None = None
    ) -> Job | None:
        """Lease one due job (``run_at <= now``, not leased or lease expired), earliest first."""
        ...

    async def job_complete(self, job_id: int) -> None: ...

    async def job_retry(self, job_id: int, *, run_at: datetime, error: str) -> None:
        """Release the lease, reschedule at ``run_at``, ``attempts += 1``."""
        ...

    async def job_fail(self, job_id: int, *, error: str) -> None:
        """Permanently failed (``attempts += 1``); kept for inspection, never claimed again."""
        ...

    # ---- the balance ledger (integer credits, two-phase charges)
    #
    # A user's credits are ``available`` (spendable) plus ``held`` (reserved by holds
    # not yet settled); neither can go negative. Credit keys and hold keys are separate
    # namespaces. Reusing a key for a different user or amount raises ``ValueError``.

    async def ledger_balance(self, user_id: int) -> int:
        """Available credits (held credits excluded); 0 for a user never credited."""
        ...

    async def ledger_credit(self, user_id: int, amount: int, *, key: str, reason: str) -> bool:
        """Add ``amount`` credits (top-up, payment, bonus). ``False`` when ``key`` was already
        applied (nothing changes)."""
        ...

    async def ledger_hold(self, user_id: int, amount: int, *, key: str) -> bool:
        """Reserve ``amount`` of the available credits, atomically with the balance check.

        ``False`` when fewer than ``amount`` are available (nothing reserved). Idempotent
        by ``key``: a repeated key returns the first call's answer and reserves nothing
        more (a refused hold stays refused, even after a top-up)."""
        ...

    async def ledger_capture(self, key: str) -> None:
        """Spend a hold: its credits leave the account. Idempotent; capturing a released
        (or refused) hold is a no-op with a warning: the first settlement wins.
        ``LookupError`` for a key that was never held."""
        ...

    async def ledger_release(self, key: str) -> None:
        """Cancel a hold: its credits become available again. Idempotent; releasing a
        captured (or refused) hold is a no-op with a warning: the first settlement wins.
        ``LookupError`` for a key that was never held."""
        ...

    async def ledger_hold_status(self, key: str) -> str | None:
        """``"held"``, ``"captured"``, ``"released"``, ``"declined"`` (refused for
        insufficient funds), or ``None`` for a key never held."""
        ...

    async def ledger_entries(self, user_id: int, limit: int = 50) -> list[LedgerEntry]:
        """The user's most recent journal lines, newest first."""
        ...


# --------------------------------------------------------------------------- shared helpers

_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def dumps(value: Any, what: str) -> str:
    """Serialise ``value`` to compact JSON text with the rules every backend shares."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"{what} is not JSON-serialisable: {exc}") from None
    except ValueError as exc:  # NaN / Infinity, circular reference
        raise ValueError(f"{what} cannot be stored as JSON: {exc}") from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise ValueError(f"{what} contains a NUL character (\\u0000), which cannot be stored")
    return text


def dumps_optional(value: Any, what: str) -> str | None:
    return None if value is None else dumps(value, what)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def utc(value: datetime, what: str) -> datetime:
    """Return ``value`` converted to UTC; naive datetimes are rejected."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{what} must be timezone-aware (use datetime.now(timezone.utc))")
    return value.astimezone(UTC)


def conflict(conv: Conversation) -> ConflictError:
    if conv.version == 0:
        detail = "it already exists (saved by another writer)"
    else:
        detail = f"its version is no longer {conv.version} (saved by another writer)"
    return ConflictError(
        f"conversation chat_id={conv.chat_id} user_id={conv.user_id} was not saved: {detail}"
    )


# The largest value a BIGINT / SQLite INTEGER holds.
MAX_CREDITS = 2**63 - 1


def check_amount(amount: Any) -> int:
    """``amount`` if it is a positive ``int`` of credits, else ``ValueError`` (``bool`` too)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"a ledger amount must be a positive int of credits, not {amount!r}")
    if amount <= 0:
        raise ValueError(f"a ledger amount must be positive, not {amount}")
    if amount > MAX_CREDITS:
        raise ValueError(f"a ledger amount must be at most {MAX_CREDITS}, not {amount}")
    return int(amount)


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"a ledger key must be a non-empty string, not {key!r}")
    return key


def check_user(user_id: Any) -> int:
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise ValueError(f"a ledger user_id must be an int, not {user_id!r}")
    return int(user_id)


def key_reused(what: str, key: str, first: tuple[int, int], now: tuple[int, int]) -> ValueError:
    return ValueError(
        f"ledger {what} key {key!r} was first used for user {first[0]} and {first[1]} credits; "
        f"it cannot be reused for user {now[0]} and {now[1]} credits"
    )


def report_settled(logger: Any, key: str, wanted: str, status: str) -> None:
    """Log a capture/release that changed nothing because the hold was already settled."""
    done = {"capture": "captured", "release": "released"}[wanted]
    if status == done:
        logger.debug("ledger hold %r is already %s", key, status)
    elif status == "declined":
        logger.warning("ledger %s of hold %r ignored: the hold was refused (insufficient funds)",
                       wanted, key)
    else:
        logger.warning("ledger %s of hold %r ignored: it was already %s (the first settlement wins)",
                       wanted, key, status)


def unknown_hold(key: str) -> LookupError:
    return LookupError(f"ledger hold {key!r} does not exist (it was never held)")


def balance_overflow(user_id: int) -> ValueError:
    return ValueError(f"crediting user {user_id} would overflow the balance (max {MAX_CREDITS})")


# --------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    name: str  # file name without ".sql", e.g. "0001_init"
    sql: str
    checksum: str  # sha256 of the SQL text


_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def load_migrations(backend: str) -> list[Migration]:
    """Read ``engine/storage/migrations/<backend>/NNNN_name.sql`` in order (package data)."""
    folder = resources.files("engine.storage").joinpath("migrations").joinpath(backend)
    found: list[Migration] = []
    numbers: set[str] = set()
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            raise RuntimeError(
                f"bad migration file name {backend}/{entry.name}: expected NNNN_lower_snake.sql"
            )
        if match.group(1) in numbers:
            raise RuntimeError(f"two {backend} migrations share the number {match.group(1)}")
        numbers.add(match.group(1))
        sql = entry.read_text(encoding="utf-8")
        found.append(
            Migration(entry.name[:-4], sql, hashlib.sha256(sql.encode("utf-8")).hexdigest())
        )
    if not found:
        raise RuntimeError(f"no {backend} migrations found in the engine.storage package data")
    return sorted(found, key=lambda m: m.name)
