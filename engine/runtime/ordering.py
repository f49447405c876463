"""One user's updates run one at a time and in order; different users run in parallel.

Each key (chat, user) gets a bounded queue and a worker task that lives while
the queue has work. A full queue refuses new items, so one user flooding the
bot cannot grow memory or starve others; the caller answers the excess.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")


class KeyedSerializer(Generic[Item]):
    def __init__(self, handle: Callable[[Item], Awaitable[None]], *, max_pending: int = 20) -> None:
        self._handle = handle
        self._max_pending = max_pending
        self._queues: dict[Hashable, deque[Item]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, key: Hashable, item: Item) -> bool:
        """Queue `item` behind the key's earlier items; False when the key's queue is full."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            queue.append(item)
            self._idle.clear()
            worker = asyncio.create_task(self._drain(key, queue))
            self._workers.add(worker)
            worker.add_done_callback(self._finished)
            return True
        if len(queue) >= self._max_pending:
            return False
        queue.append(item)
        return True

    def pending(self, key: Hashable) -> int:
        queue = self._queues.get(key)
        return len(queue) if queue else 0

    async def _drain(self, key: Hashable, queue: deque[Item]) -> None:
        try:
            while queue:
                item = queue[0]
                try:
                    await self._handle(item)
                except Exception:  # the handler answers its own errors; this is the last line
                    log.exception("unhandled error while handling an update")
                finally:
                    queue.popleft()
        finally:
            del self._queues[key]

    def _finished(self, worker: asyncio.Task[None]) -> None:
        self._workers.discard(worker)
        if not self._workers:
            self._idle.set()

    async def join(self) -> None:
        """Wait until every queued item has been handled."""
        await self._idle.wait()

    async def close(self) -> None:
        for worker in list(self._workers):
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
