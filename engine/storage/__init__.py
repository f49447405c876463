"""Durable state for flowgram: conversations, the update inbox, background jobs and the ledger.

    storage = open_storage(os.environ.get("DATABASE_URL"))  # nothing connects yet
    await storage.migrate()  # connects; raises StorageUnavailable if it cannot
    ...
    await storage.close()

URLs (``open_storage``):

* ``None``                          -> SQLite file ``flowgram.sqlite3`` in the working directory
* ``sqlite:///relative/path.db``    -> SQLite file relative to the working directory
* ``sqlite:////absolute/path.db``   -> SQLite file at an absolute path (4 slashes, as SQLAlchemy)
* ``sqlite://:memory:``             -> in-memory SQLite (tests, the terminal playground)
* ``postgresql://user:pw@host:5432/db`` (or ``postgres://``) -> PostgreSQL via an asyncpg pool

Anything else raises ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .base import (
    ConflictError,
    Conversation,
    InboxItem,
    Job,
    LedgerEntry,
    Storage,
    StorageError,
    StorageUnavailable,
)

__all__ = [
    "ConflictError",
    "Conversation",
    "DEFAULT_SQLITE_FILE",
    "InboxItem",
    "Job",
    "LedgerEntry",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "open_storage",
]

DEFAULT_SQLITE_FILE = "flowgram.sqlite3"

_EXPECTED = (
    "expected sqlite:///relative/path, sqlite:////absolute/path, sqlite://:memory: "
    "or postgresql://user:password@host:port/database"
)


def _redact(url: str) -> str:
    """The URL with any password replaced, safe to put in an error message."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def open_storage(url: str | None = None, **options: Any) -> Storage:
    """Return a :class:`Storage` for ``url`` (see module docstring). Does not connect.

    ``options`` go to the backend constructor (``SQLiteStorage(busy_timeout=...)``,
    ``PostgresStorage(min_size=..., max_size=..., connect_timeout=...)``).
    """
    if url is None:
        from .sqlite import SQLiteStorage

        return SQLiteStorage(DEFAULT_SQLITE_FILE, **options)
    if not isinstance(url, str):
        raise TypeError(f"storage URL must be a string or None, not {type(url).__name__}")
    url = url.strip()
    if not url:
        raise ValueError(f"storage URL is empty; {_EXPECTED} (or None for ./{DEFAULT_SQLITE_FILE})")
    scheme, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise ValueError(f"storage URL {_redact(url)!r} has no scheme; {_EXPECTED}")
    scheme = scheme.lower()

    if scheme == "sqlite":
        from .sqlite import SQLiteStorage

        return SQLiteStorage(_sqlite_path(url, rest), **options)

    if scheme in ("postgres", "postgresql"):
        _check_postgres_url(url)
        from .postgres import PostgresStorage

        return PostgresStorage(url, **options)

    raise ValueError(f"unsupported storage URL scheme {scheme!r}; {_EXPECTED}")


def _sqlite_path(url: str, rest: str) -> str:
    if "?" in rest or "#" in rest:
        raise ValueError(f"SQLite URL {url!r} takes no query parameters; {_EXPECTED}")
    if rest in ("", ":memory:", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise ValueError(
            f"SQLite URL {url!r} has a host part; use three slashes for a relative path "
            f"(sqlite:///data/bot.sqlite3) or four for an absolute one (sqlite:////var/lib/bot.sqlite3)"
        )
    path = rest[1:]
    if not path or path.endswith("/"):
        raise ValueError(f"SQLite URL {url!r} names no file; {_EXPECTED}")
    return path


def _check_postgres_url(url: str) -> None:
    shown = _redact(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"malformed PostgreSQL URL {shown!r}: {exc}") from None
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(
            f"malformed PostgreSQL URL {shown!r}: the port must be a number from 1 to 65535"
        ) from None
