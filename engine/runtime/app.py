"""A running bot: durable polling, the inbox, per-user ordering and the engine, wired together.

    Telegram --getUpdates--> inbox (durable, deduplicated by update_id)
      -> per-user queue (bounded; the excess is told to slow down)
      -> aiogram Dispatcher -> flowgram router -> FlowEngine

Polling is our own short loop rather than `Dispatcher.start_polling`
because an update must be recorded in the inbox *before* the next
getUpdates confirms it to Telegram; aiogram confirms while handlers still run.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Hashable

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramConflictError, TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from pydantic import ValidationError
from aiogram.utils.backoff import Backoff, BackoffConfig

from engine.actions.registry import ActionRegistry
from engine.actions.spec import RetryLater
from engine.language.model import Project
from engine.runtime.correlation import correlation_id, install_record_factory, new_correlation_id
from engine.runtime.engine import FlowEngine
from engine.runtime.events import ALLOWED_UPDATES, classify
from engine.runtime.jobs import Delivery, JobRunner
from engine.runtime.ordering import KeyedSerializer
from engine.runtime.responses import install as keep_response_models
from engine.runtime.retry import install as install_retry
from engine.runtime.router import build_router
from engine.runtime.texts import Texts
from engine.runtime.wallet import StorageWallet, Wallet
from engine.storage import Storage

log = logging.getLogger(__name__)

POLL_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=1.5, jitter=0.1)

# Said to a user whose update Telegram sent in a shape we cannot read.
UNREADABLE = "Sorry, I could not read that message. Send /start to see the menu."


class GetRawUpdates(TelegramMethod[list[dict[str, Any]]]):
    """getUpdates returning plain dicts.

    aiogram's GetUpdates validates the whole batch at once, so one update it
    cannot parse would fail every poll forever. We validate each update on its
    own, so a malformed one is recorded and answered instead of wedging the bot.
    """

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


@dataclass
class _Delivering:
    """A job outcome queued behind the user's updates; `done` resolves when it was applied."""

    delivery: Delivery
    done: asyncio.Future[None]


def update_key(item: "Update | _Delivering") -> Hashable:
    """Updates of one user in one chat share a key; updates without a user are independent."""
    if isinstance(item, _Delivering):
        return (item.delivery.chat_id, item.delivery.user_id)
    update = item
    event = classify(update)
    if event is None:
        return ("update", update.update_id)
    return (event.chat_id, event.user_id)


class BotRuntime:
    def __init__(
        self,
        project: Project,
        registry: ActionRegistry,
        storage: Storage,
        bot: Bot,
        *,
        wallet: Wallet | None = None,
        max_pending_per_user: int = 20,
        polling_timeout: int = 30,
        job_lease_seconds: float = 60.0,
        job_max_attempts: int = 5,
        job_retry_base: float = 5.0,
    ) -> None:
        install_record_factory()
        self.bot = install_retry(keep_response_models(bot))
        self.storage = storage
        self.engine = FlowEngine(project, registry, storage, wallet=wallet if wallet is not None else StorageWallet(storage))
        self.texts = Texts(project)
        self.dispatcher = Dispatcher(disable_fsm=True)  # the engine keeps its own state: no aiogram FSM per update
        self.dispatcher.include_router(build_router(self.engine))
        self.queue: KeyedSerializer[Update | _Delivering] = KeyedSerializer(self._process,
                                                                             max_pending=max_pending_per_user)
        self.jobs = JobRunner(storage, registry, self.bot, self.deliver, lease_seconds=job_lease_seconds,
                              max_attempts=job_max_attempts, retry_base=job_retry_base)
        self.engine.on_job_enqueued = self.jobs.wake.set
        self.polling_timeout = polling_timeout
        self._told_to_slow_down: set[Hashable] = set()
        self._side_tasks: set[asyncio.Task[Any]] = set()

    # --------------------------------------------------------------- intake
    async def accept(self, update: Update, payload: dict[str, Any] | None = None) -> bool:
        """Record the update durably (as Telegram sent it), then queue it; False for a duplicate."""
        if payload is None:
            payload = update.model_dump(mode="json", exclude_none=True, by_alias=True)
        if not await self.storage.inbox_add(update.update_id, payload):
            log.info("update %s was already received; ignoring the duplicate", update.update_id)
            return False
        self._enqueue(update)
        return True

    async def accept_raw(self, raw: Any) -> int:
        """Accept one update as Telegram sent it; returns the offset that confirms it."""
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            log.error("Telegram sent an update without an update_id, skipped: %.200r", raw)
            return 0
        raw = _without_nul(raw)  # storage cannot hold U+0000: a NUL in a text or callback data would stop polling
        try:
            update = Update.model_validate(raw, context={"bot": self.bot})
        except ValidationError as exc:
            await self._unreadable(update_id, raw, exc)
            return update_id + 1
        await self.accept(update, raw)
        return update_id + 1

    async def accept_batch(self, raws: list[Any]) -> int:
        """Accept a getUpdates batch; returns the offset that confirms it (0: nothing to confirm).

        The same as `accept_raw` for each update in order, but the whole batch goes into the
        inbox in one storage call (one round trip, one commit) before anything is queued.
        """
        offset = 0
        read: list[tuple[int, Any, Update | None, ValidationError | None]] = []
        for raw in raws:
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                log.error("Telegram sent an update without an update_id, skipped: %.200r", raw)
                continue
            offset = max(offset, update_id + 1)
            try:
                read.append((update_id, raw, Update.model_validate(raw, context={"bot": self.bot}), None))
            except ValidationError as exc:
                read.append((update_id, raw, None, exc))
        if not read:
            return offset
        try:
            fresh = await self.storage.inbox_add_many(
                [(update_id, raw if update is not None else {"unreadable": raw}) for update_id, raw, update, _ in read])
        except ValueError:  # a payload storage cannot hold as it is: one update at a time, as accept_raw does
            for raw in raws:
                offset = max(offset, await self.accept_raw(raw))
            return offset
        for (update_id, raw, update, error), new in zip(read, fresh):
            if not new:
                log.info("update %s was already received; ignoring the duplicate", update_id)
            elif update is None:
                assert error is not None
                await self._answer_unreadable(update_id, raw, error)
            else:
                self._enqueue(update)
        return offset

    async def _unreadable(self, update_id: int, raw: dict[str, Any], error: ValidationError) -> None:
        """Record an update we cannot parse and, if it names a chat, say so to the user."""
        if not await self.storage.inbox_add(update_id, {"unreadable": raw}):
            return
        await self._answer_unreadable(update_id, raw, error)

    async def _answer_unreadable(self, update_id: int, raw: dict[str, Any], error: ValidationError) -> None:
        log.error("update %s cannot be read (%d validation error(s), first: %s); recorded, answering if possible",
                  update_id, error.error_count(), error.errors()[0].get("msg") if error.errors() else "?")
        chat_id = _chat_of(raw)
        try:
            if chat_id is not None:
                await self.bot.send_message(chat_id, UNREADABLE)
        except Exception as exc:
            log.warning("could not answer unreadable update %s: %s", update_id, exc)
        finally:
            await self.storage.inbox_done(update_id)

    async def recover(self) -> int:
        """Queue updates accepted before a crash or restart and not yet handled."""
        pending = await self.storage.inbox_pending(limit=10_000)
        for item in pending:
            if "unreadable" in item.payload:
                await self.storage.inbox_done(item.update_id)
                continue
            self._enqueue(Update.model_validate(item.payload, context={"bot": self.bot}))
        if pending:
            log.info("recovered %d update(s) accepted before the last stop", len(pending))
        return len(pending)

    def _enqueue(self, update: Update) -> None:
        key = update_key(update)
        if not self.queue.submit(key, update):
            task = asyncio.create_task(self._slow_down(update, key))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _slow_down(self, update: Update, key: Hashable) -> None:
        """Answer an update that overflowed its user's queue: once per burst, never silence."""
        event = classify(update)
        try:
            if event is not None:
                conversation = await self.storage.load_conversation(event.chat_id, event.user_id)
                locale = (conversation.locale if conversation else None) or self.texts.locale_for(event.user.get("language"))
                notice = self.texts.system("slow_down", locale)
                if event.callback is not None:
                    await self.bot.answer_callback_query(event.callback.id, text=notice[:200])
                elif event.pre_checkout is not None:
                    await self.bot.answer_pre_checkout_query(event.pre_checkout.id, ok=False, error_message=notice)
                elif key not in self._told_to_slow_down:
                    self._told_to_slow_down.add(key)  # before the await: the burst's next overflow must see it
                    await self.bot.send_message(event.chat_id, notice)
                self._told_to_slow_down.add(key)
        except Exception:
            log.exception("could not tell user to slow down")
        finally:
            await self.storage.inbox_done(update.update_id)

    async def deliver(self, delivery: Delivery) -> None:
        """Apply a job's outcome in the user's order; returns once it is applied and saved."""
        item = _Delivering(delivery, asyncio.get_running_loop().create_future())
        if not self.queue.submit(update_key(item), item):
            raise RetryLater(2.0, "the user's queue is full")
        await item.done

    async def _process(self, item: Update | _Delivering) -> None:
        if isinstance(item, _Delivering):
            token = correlation_id.set(item.delivery.correlation_id or new_correlation_id())
            try:
                await self.engine.deliver(self.bot, item.delivery)
                item.done.set_result(None)
            except BaseException as exc:
                item.done.set_exception(exc)
            finally:
                correlation_id.reset(token)
            return
        update = item
        event = classify(update)  # once: the router and the queue key reuse it
        token = correlation_id.set(new_correlation_id())
        try:
            if event is None:
                log.warning("update %s has no user to answer (%s); recorded and skipped",
                            update.update_id, _kind_of(update))
                await self.storage.inbox_done(update.update_id)
                return
            await self.dispatcher.feed_update(self.bot, update, input_event=event)
        finally:
            key = ("update", update.update_id) if event is None else (event.chat_id, event.user_id)  # = update_key
            if self.queue.pending(key) <= 1:
                self._told_to_slow_down.discard(key)
            correlation_id.reset(token)

    async def settle(self) -> None:
        """Wait until every accepted update has been handled (tests, shutdown)."""
        await self.queue.join()
        while self._side_tasks:
            await asyncio.gather(*list(self._side_tasks), return_exceptions=True)

    # -------------------------------------------------------------- polling
    async def poll(self, stop: asyncio.Event) -> None:
        """Long-poll until `stop` is set; updates are in the inbox before they are confirmed."""
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.recover()
        jobs = asyncio.create_task(self.jobs.run(stop))
        backoff = Backoff(config=POLL_BACKOFF)
        offset: int | None = None
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                request = GetRawUpdates(offset=offset, timeout=self.polling_timeout, allowed_updates=ALLOWED_UPDATES)
                fetch = asyncio.create_task(self.bot(request, request_timeout=self.polling_timeout + 10))
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    await asyncio.gather(fetch, return_exceptions=True)
                    break
                try:
                    updates = fetch.result()
                except TelegramUnauthorizedError:
                    raise
                except TelegramConflictError as exc:
                    log.error("another process is polling this bot token (%s); retrying in %.0fs",
                              exc.message, backoff.next_delay)
                    await backoff.asleep()
                    continue
                except (TelegramNetworkError, TelegramServerError, asyncio.TimeoutError) as exc:
                    log.warning("getUpdates failed (%s); retrying in %.1fs", exc, backoff.next_delay)
                    await backoff.asleep()
                    continue
                backoff.reset()
                if updates:
                    offset = max(offset or 0, await self.accept_batch(updates))
        finally:
            stopping.cancel()
            # A job cut short keeps its lease in storage and runs again after it expires.
            jobs.cancel()
            await asyncio.gather(jobs, return_exceptions=True)
        # Confirm what was accepted, so a restart does not receive it again.
        if offset is not None:
            try:
                await self.bot(GetRawUpdates(offset=offset, timeout=0, limit=1))
            except Exception as exc:  # the inbox dedupes a redelivery anyway
                log.info("could not confirm the last updates on stop: %s", exc)

    async def close(self) -> None:
        await self.settle()
        await self.queue.close()


def _kind_of(update: Update) -> str:
    """The update's type for a log line; aiogram raises for a type newer than it knows."""
    try:
        return update.event_type
    except UpdateTypeLookupError:
        return ", ".join(update.model_extra or {}) or "empty"


def _without_nul(value: Any) -> Any:
    """`value` with each NUL character in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _chat_of(raw: dict[str, Any]) -> int | None:
    """The chat an unreadable update came from, when its shape still shows one."""
    for key in ("message", "callback_query", "pre_checkout_query"):
        part = raw.get(key)
        if not isinstance(part, dict):
            continue
        for path in (("chat", "id"), ("from", "id"), ("message", "chat", "id")):
            value: Any = part
            for step in path:
                value = value.get(step) if isinstance(value, dict) else None
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None
