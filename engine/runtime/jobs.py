"""Durable background work: jobs that outlive the update (and the process) that started them.

An action that takes minutes (an AI generation) enqueues a job and returns
`ActionResult.pending()`; the conversation waits in its state. The job runner
claims due jobs from storage with a lease, so after a crash another run (or
instance) picks the job up once the lease expires. When a job ends, its
outcome is delivered to the conversation through the same per-user queue as
updates, so it is ordered with what the user does meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from engine.actions.registry import ActionRegistry
from engine.actions.spec import JobResult, OutcomeKind, RetryLater
from engine.runtime.correlation import correlation_id
from engine.storage import Job, Storage

log = logging.getLogger(__name__)

# The payload key holding the conversation a job reports back to.
CONVERSATION = "_conversation"


@dataclass(frozen=True)
class Delivery:
    """A job's outcome on its way to a conversation."""

    chat_id: int
    user_id: int
    state: str  # the state that started the job and is waiting for it
    job_id: int
    outcome: str
    outputs: dict[str, Any]
    correlation_id: str | None


@dataclass
class JobContext:
    job: Job
    storage: Storage
    bot: Any  # aiogram Bot: send progress or results directly when useful

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload


def backoff(attempts: int, base: float = 5.0) -> float:
    """Seconds before retrying a failed job: doubling from `base`, at most five minutes."""
    return min(base * 2 ** attempts, 300.0)


class JobRunner:
    def __init__(
        self,
        storage: Storage,
        registry: ActionRegistry,
        bot: Any,
        deliver: Callable[[Delivery], Awaitable[None]],
        *,
        lease_seconds: float = 60.0,
        idle_interval: float = 1.0,
        max_attempts: int = 5,
        retry_base: float = 5.0,
    ) -> None:
        self.storage = storage
        self.kinds = registry.job_kinds()
        self.bot = bot
        self.deliver = deliver
        self.lease_seconds = lease_seconds
        self.idle_interval = idle_interval
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        if not self.kinds:
            return
        while not stop.is_set():
            try:
                job = await self.storage.job_claim(self.worker, lease_seconds=self.lease_seconds, kinds=list(self.kinds))
            except Exception:
                log.exception("cannot claim jobs; retrying")
                job = None
            if job is None:
                self.wake.clear()
                waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())}
                _, pending = await asyncio.wait(waiters, timeout=self.idle_interval, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                continue
            await self.run_one(job)

    async def run_one(self, job: Job) -> None:
        token = correlation_id.set(job.correlation_id or f"job{job.id}")
        spec, handler = self.kinds[job.kind]
        try:
            try:
                result = await handler(JobContext(job, self.storage, self.bot))
            except RetryLater as later:
                log.info("job %s (%s): %s; again in %.0fs", job.id, job.kind, later, later.delay)
                await self.storage.job_retry(job.id, run_at=_after(later.delay), error=str(later))
                return
            except Exception as exc:
                if job.attempts + 1 < self.max_attempts:
                    log.warning("job %s (%s) failed (attempt %d): %s", job.id, job.kind, job.attempts + 1, exc,
                                exc_info=True)
                    await self.storage.job_retry(job.id, run_at=_after(backoff(job.attempts, self.retry_base)), error=repr(exc))
                    return
                log.error("job %s (%s) failed for good after %d attempts", job.id, job.kind, job.attempts + 1,
                          exc_info=True)
                failure = next((o for o, k in spec.outcomes.items() if k is OutcomeKind.FAILURE), None)
                if failure is None:
                    await self.storage.job_fail(job.id, error=repr(exc))
                    return
                result = JobResult(failure, {"error": "the job failed"})
                await self._deliver(job, result)
                await self.storage.job_fail(job.id, error=repr(exc))
                return
            await self._deliver(job, result)
            await self.storage.job_complete(job.id)
        except RetryLater as later:  # the delivery could not be applied now
            log.warning("job %s: %s; delivering again in %.0fs", job.id, later, later.delay)
            await self.storage.job_retry(job.id, run_at=_after(later.delay), error=str(later))
        except Exception:
            log.exception("job %s finished but its outcome could not be delivered; retrying", job.id)
            await self.storage.job_retry(job.id, run_at=_after(backoff(job.attempts, self.retry_base)), error="delivery failed")
        finally:
            correlation_id.reset(token)

    async def _deliver(self, job: Job, result: JobResult) -> None:
        address = job.payload.get(CONVERSATION)
        if not isinstance(address, dict):
            log.warning("job %s has no conversation to report %r to", job.id, result.outcome)
            return
        await self.deliver(
            Delivery(
                chat_id=address["chat_id"],
                user_id=address["user_id"],
                state=address["state"],
                job_id=job.id,
                outcome=result.outcome,
                outputs=dict(result.outputs),
                correlation_id=job.correlation_id,
            )
        )


def _after(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)
