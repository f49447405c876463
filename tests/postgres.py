"""PostgreSQL for the test suite.

``server_url()`` gives a URL of a PostgreSQL server the tests may create databases on:

* ``TEST_DATABASE_URL`` when set (it must be reachable, or every PostgreSQL test fails);
* otherwise a throwaway cluster: ``initdb`` + ``pg_ctl`` from the installed binaries
  (``pg_config --bindir``, ``/usr/lib/postgresql/*/bin`` or ``PATH``) in a temp dir,
  trust auth, a free TCP port on 127.0.0.1, its unix socket inside the temp dir,
  fsync off; stopped and deleted at interpreter exit. As root, the cluster runs as
  the ``postgres`` OS user (initdb refuses root).

``fresh_database()`` yields the URL of a new, empty database and drops it afterwards.

When no server can be had, ``require_server()`` skips the test, except in CI
(``CI=true``) or with ``TEST_DATABASE_URL`` set, where it fails: PostgreSQL tests
must never silently not run there.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

__all__ = ["NoPostgres", "fresh_database", "in_ci", "require_server", "server_url"]


class NoPostgres(Exception):
    """No PostgreSQL server can be had for the tests (message says why)."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


_lock = threading.Lock()
_url: str | None = None
_failure: str | None = None  # remembered so a missing server costs one attempt per session


def server_url() -> str:
    """URL of the server (its ``postgres`` database). Raises :class:`NoPostgres`."""
    global _url, _failure
    with _lock:
        if _url is None and _failure is None:
            try:
                _url = (
                    _connectable(os.environ["TEST_DATABASE_URL"])
                    if os.environ.get("TEST_DATABASE_URL")
                    else _Cluster.start().url
                )
            except NoPostgres as exc:
                _failure = str(exc)
        if _failure is not None:
            raise NoPostgres(_failure)
        assert _url is not None
        return _url


def require_server() -> str:
    """``server_url()``, or skip the test (fail in CI / with TEST_DATABASE_URL)."""
    try:
        return server_url()
    except NoPostgres as exc:
        if in_ci() or os.environ.get("TEST_DATABASE_URL"):
            pytest.fail(f"PostgreSQL is required here but unavailable: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unavailable: {exc}")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Yield the URL of a new empty database on the test server; drop it afterwards."""
    base = require_server()
    name = f"flowgram_test_{secrets.token_hex(6)}"
    _admin(base, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    finally:
        _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------- helpers


def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion on a private thread (safe inside a running loop)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc

    thread = threading.Thread(target=target, name="postgres-test-admin")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _admin(url: str, sql: str) -> None:
    async def go() -> None:
        con = await asyncpg.connect(url, timeout=10)
        try:
            await con.execute(sql)
        finally:
            await con.close()

    _run_sync(go())


def _connectable(url: str) -> str:
    try:
        _admin(url, "SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any reason means "no server"
        parts = urlsplit(url)
        where = f"{parts.hostname}:{parts.port or 5432}"
        raise NoPostgres(
            f"TEST_DATABASE_URL (host {where}) is not usable: {type(exc).__name__}: {exc}"
        ) from None
    return url


def _find_bindir() -> str:
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(out.stdout.strip())
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: [int(p) if p.isdigit() else 0 for p in path.split("/")[-2].split(".")],
        reverse=True,
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(os.path.dirname(initdb))
    for bindir in candidates:
        if all(os.access(os.path.join(bindir, exe), os.X_OK) for exe in ("initdb", "pg_ctl")):
            return bindir
    raise NoPostgres(
        "TEST_DATABASE_URL is not set and no initdb/pg_ctl found "
        "(looked at pg_config --bindir, /usr/lib/postgresql/*/bin, PATH)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Cluster:
    """A throwaway PostgreSQL cluster in a temp dir."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.run_as = ""  # "" (ourselves), "runuser" or "su"
        # Short path: the unix socket lives here (108-byte limit); /tmp is traversable by postgres.
        self.dir = tempfile.mkdtemp(
            prefix="flowgram-pg-", dir="/tmp" if os.path.isdir("/tmp") else None
        )
        self.data = os.path.join(self.dir, "data")
        self.url = ""
        self._stopped = False
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise NoPostgres(
                    "running as root and there is no 'postgres' OS user to run initdb as"
                ) from None
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.run_as = "runuser" if shutil.which("runuser") else "su"

    def _run(self, *cmd: str, timeout: float = 120) -> None:
        argv = [os.path.join(self.bindir, cmd[0]), *cmd[1:]]
        if self.run_as == "runuser":
            argv = ["runuser", "-u", "postgres", "--", *argv]
        elif self.run_as == "su":
            argv = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(argv)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()[-2000:]
            raise NoPostgres(f"{cmd[0]} failed (exit {result.returncode}): {output}")

    @classmethod
    def start(cls) -> _Cluster:
        cluster = cls(_find_bindir())
        atexit.register(cluster.stop)
        cluster._run(
            "initdb",
            "-D",
            cluster.data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        error: NoPostgres | None = None
        for _ in range(3):  # the free port may be taken between probe and start
            port = _free_port()
            options = (
                f"-p {port} -k {cluster.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                cluster._run(
                    "pg_ctl",
                    "-D",
                    cluster.data,
                    "-l",
                    os.path.join(cluster.dir, "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
            except NoPostgres as exc:
                error = exc
                continue
            cluster.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            return cluster
        log = os.path.join(cluster.dir, "server.log")
        tail = (
            open(log, encoding="utf-8", errors="replace").read()[-2000:]
            if os.path.exists(log)
            else ""
        )
        raise NoPostgres(f"{error}\n{tail}".strip())

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
