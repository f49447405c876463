"""The flow engine: one input event in, the conversation moved on and answered.

`FlowEngine.handle` is the whole life of an update after classification:
load the conversation, pick the rule that answers (the same `resolve()` the
checker proved), run actions, render, save with optimistic versioning and
mark the inbox item done in the same transaction. Whatever happens, the user
sees an answer: an exception becomes an apology with a reference code, and a
path that somehow said nothing is caught by the guard.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Mapping

from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError
from aiogram.types import Message

from engine.actions.context import ActionContext
from engine.actions.registry import ActionRegistry
from engine.actions.spec import INSUFFICIENT_FUNDS, ActionResult, OutcomeKind
from engine.language.callback_data import CallbackRef
from engine.language.conditions import evaluate
from engine.language.model import Project, Reaction, State, TextValidation
from engine.language.resolution import resolve, resolve_invalid_text
from engine.language.templates import render_value
from engine.runtime.conversations import ConversationCache
from engine.runtime.correlation import correlation_id
from engine.runtime.events import InputEvent
from engine.runtime.jobs import CONVERSATION, Delivery
from engine.runtime.machine import FlowGraph
from engine.runtime.outbox import Outbox
from engine.runtime.render import Renderer, Screen, set_values
from engine.runtime.texts import Texts
from engine.runtime.wallet import ChargeUnavailable, Hold, Wallet
from engine.storage import ConflictError, Conversation, Storage

log = logging.getLogger(__name__)

# A chain of action states longer than this is a loop in the flow, not progress.
MAX_HOPS = 32


class FlowEngine:
    def __init__(
        self,
        project: Project,
        registry: ActionRegistry,
        storage: Storage,
        *,
        wallet: Wallet | None = None,
    ) -> None:
        assert project.bot is not None, "the engine runs checked projects only"
        self.project = project
        self.registry = registry
        self.storage = storage
        # Conversations are read through this (it skips re-reading what this process just saved).
        self.conversations = ConversationCache(storage)
        self.wallet = wallet
        self.texts = Texts(project)
        self.graph = FlowGraph(project)
        self.states = project.states
        self.versions = {name: project.flow_of(name).version for name in self.states}
        self.renderer = Renderer(self.texts)
        self.defaults = {name: variable.default for name, variable in project.variables.items()}
        # Set by the runtime to wake its job runner as soon as work is enqueued.
        self.on_job_enqueued: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ entry
    async def handle(self, bot: Bot, event: InputEvent) -> None:
        outbox = Outbox(bot, event.chat_id, event.callback)
        conversation = await self._load(event)
        locale = conversation.locale or self.texts.default_locale
        unreachable = False
        try:
            await self._dispatch(conversation, event, outbox)
            await self.conversations.save(conversation, done_update_id=event.update_id)
        except ConflictError:
            log.error("conversation %s/%s was changed by another instance; this update's state change is dropped",
                      event.chat_id, event.user_id)
            await self.storage.inbox_done(event.update_id)
        except TelegramForbiddenError as exc:
            # The user blocked the bot (or is gone): nothing can reach them, so no apology and no guard notice.
            unreachable = True
            log.warning("update %s: chat %s cannot be written to (%s); its state change is dropped",
                        event.update_id, event.chat_id, exc.message)
            await self.storage.inbox_done(event.update_id)
            await outbox.answer_callback()
        except Exception:
            code = correlation_id.get()
            log.exception("update %s failed in state %s", event.update_id, conversation.state)
            await self.storage.inbox_done(event.update_id)
            await outbox.answer_callback()
            await self._apologize(event, outbox, locale, code)
        finally:
            if not unreachable:
                await self._guard(event, outbox, locale)

    async def _apologize(self, event: InputEvent, outbox: Outbox, locale: str, code: str) -> None:
        """Say sorry with the reference code, carrying the buttons of the state the user is still in."""
        keyboard = None
        try:
            saved = await self._load(event)  # the state before this update: nothing of it was saved
            state = self.states[saved.state]
            keyboard = self._screen(saved, state, event, items=self._stored_items(saved),
                                    page=self._stored_page(saved)).keyboard
        except Exception:
            log.exception("cannot rebuild the buttons of the current state for the apology")
        message = await outbox.send_text(self.texts.system("error", locale, code=code), keyboard)
        if keyboard is not None:
            try:
                saved.screen = {**(saved.screen or {}), "state": saved.state,
                                "message_ids": [*(saved.screen or {}).get("message_ids", []), message.message_id][-10:]}
                await self.conversations.save(saved)
            except Exception:  # another instance moved on: its screen wins, ours becomes stale
                log.warning("could not record the apology's buttons", exc_info=True)

    async def _guard(self, event: InputEvent, outbox: Outbox, locale: str) -> None:
        """Every update gets a visible answer, even from a path the checker could not see."""
        await outbox.answer_callback()
        if outbox.visible == 0:
            log.error("update %s (%s) produced no visible answer; sending the engine's notice",
                      event.update_id, event.kind)
            await outbox.send_text(self.texts.system("unanswered", locale))

    async def _load(self, event: InputEvent) -> Conversation:
        conversation = await self.conversations.load(event.chat_id, event.user_id)
        if conversation is None:
            assert self.project.bot is not None
            return Conversation(
                chat_id=event.chat_id,
                user_id=event.user_id,
                state=self.project.bot.start,
                data={},
                screen=None,
                locale=self.texts.locale_for(event.user.get("language")),
            )
        if conversation.state not in self.states:  # the flow changed under this conversation
            log.warning("state %s no longer exists; moving the conversation to the start", conversation.state)
            assert self.project.bot is not None
            conversation.state = self.project.bot.start
            conversation.screen = None
        return conversation

    async def _dispatch(self, conversation: Conversation, event: InputEvent, outbox: Outbox) -> None:
        if event.kind in ("button", "malformed_callback"):
            await self._on_callback(conversation, event, outbox)
        elif event.kind == "pre_checkout_query":
            await self._on_pre_checkout(conversation, event, outbox)
        else:
            await self._on_input(conversation, event, outbox)

    # ----------------------------------------------------------------- values
    def values(self, conversation: Conversation, event: InputEvent | None = None, **extra: Any) -> dict[str, Any]:
        values: dict[str, Any] = {**self.defaults, **conversation.data}
        if event is not None:
            values["user"] = event.user
            values["input"] = event.input_values
        else:
            values.setdefault("user", {"id": conversation.user_id})
        values.update(extra)
        return values

    def locale(self, conversation: Conversation) -> str:
        return conversation.locale or self.texts.default_locale

    # ----------------------------------------------------------------- inputs
    async def _on_input(self, conversation: Conversation, event: InputEvent, outbox: Outbox) -> None:
        state = self.states[conversation.state]
        handler = state.inputs.get("text") if event.kind == "text" else None
        if handler is not None and handler.validation and not _valid(event.text or "", handler.validation):
            rule = resolve_invalid_text(self.project, state)
        else:
            rule = resolve(self.project, state, event.kind, event.command)
        if rule is None or rule.reaction is None:
            await self._engine_rule(conversation, event, outbox)
            return
        await self._react(conversation, rule.reaction, outbox, event)

    async def _engine_rule(self, conversation: Conversation, event: InputEvent, outbox: Outbox) -> None:
        if event.kind == "successful_payment" and event.message is not None:
            payment = event.message.successful_payment
            assert payment is not None
            log.warning("unmatched payment %s of %s %s: refunding", payment.telegram_payment_charge_id,
                        payment.total_amount, payment.currency)
            await outbox.bot.refund_star_payment(event.user_id, payment.telegram_payment_charge_id)
            await outbox.send_text(self.texts.system("payment_refunded", self.locale(conversation)))
            return
        await outbox.send_text(self.texts.system("unanswered", self.locale(conversation)))

    async def _on_pre_checkout(self, conversation: Conversation, event: InputEvent, outbox: Outbox) -> None:
        query = event.pre_checkout
        assert query is not None
        pending = conversation.data.get("_invoices", {})
        if query.invoice_payload in pending:
            await outbox.bot.answer_pre_checkout_query(query.id, ok=True)
        else:
            await outbox.bot.answer_pre_checkout_query(
                query.id, ok=False, error_message=self.texts.system("invoice_unknown", self.locale(conversation))
            )
        outbox.count_answer()

    # -------------------------------------------------------------- callbacks
    async def _on_callback(self, conversation: Conversation, event: InputEvent, outbox: Outbox) -> None:
        ref = event.callback_ref
        message = event.callback.message if event.callback is not None else None
        resolved = self._pressed(conversation, ref, message) if ref is not None else None
        if resolved is None:
            log.info("stale or malformed button %r in state %s", event.callback.data if event.callback else None,
                     conversation.state)
            await outbox.answer_callback(self.texts.system("stale_button", self.locale(conversation)))
            await self._show_current(conversation, outbox, event)
            return
        await outbox.answer_callback()  # at once: everything after may be slow
        reaction, extra = resolved
        editable = message if isinstance(message, Message) else None
        if reaction is None:  # a page of a list
            assert ref is not None
            state = self.states[conversation.state]
            screen = self._screen(conversation, state, event, items=self._stored_items(conversation), page=ref.number)
            await self._show(conversation, screen, outbox, edit=editable)
            return
        await self._react(conversation, reaction, outbox, event, edit=editable, extra=extra)

    def _pressed(self, conversation: Conversation, ref: CallbackRef, message: Any) -> tuple[Reaction | None, dict[str, Any]] | None:
        """The reaction of a current button, or None when the press is stale."""
        state = self.states.get(ref.state)
        if state is None or ref.state != conversation.state:
            return None
        if ref.version != self.versions[ref.state]:
            return None
        screen = conversation.screen or {}
        if message is None or message.message_id not in screen.get("message_ids", []):
            return None
        if ref.kind == "page":
            return (None, {}) if state.button_list is not None else None
        if ref.kind == "item":
            items = self._stored_items(conversation)
            if state.button_list is None or ref.number >= len(items):
                return None
            return state.button_list.button.reaction, {"item": items[ref.number]}
        row, column = ref.position
        if row >= len(state.buttons) or column >= len(state.buttons[row]):
            return None
        button = state.buttons[row][column]
        if button.reaction is None:
            return None
        if button.condition and not evaluate(button.condition, self.values(conversation)):
            return None  # the button is hidden now: pressing an old copy is stale
        return button.reaction, {}

    # -------------------------------------------------------------- reacting
    async def _react(
        self,
        conversation: Conversation,
        reaction: Reaction,
        outbox: Outbox,
        event: InputEvent | None,
        *,
        edit: Message | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        values = self.values(conversation, event, **(extra or {}))
        if reaction.set:
            conversation.data.update(set_values(reaction.set, values))
            values = self.values(conversation, event, **(extra or {}))
        target = self.graph.follow(conversation.state, reaction)
        if reaction.say is not None:
            text = self.texts.render(reaction.say, self.locale(conversation), values)
            if reaction.to is None:
                # Stay: say it with the current state's buttons, so the user can go on.
                screen = self._screen(conversation, self.states[conversation.state], event,
                                      items=self._stored_items(conversation), page=self._stored_page(conversation))
                message = await outbox.send_text(text, screen.keyboard)
                self._remember(conversation, screen, message.message_id)
                return
            await outbox.send_text(text)
            edit = None
        if reaction.to is not None:
            await self._enter(conversation, target, outbox, event, edit=edit)

    async def _enter(self, conversation: Conversation, name: str, outbox: Outbox, event: InputEvent | None,
                     *, edit: Message | None = None, cause: str | None = None) -> None:
        """Enter `name` and follow action outcomes until a state waits for the user.

        `cause` names what triggered this (an update or a job): a charge is idempotent per cause
        and state, so a replay of the same update never charges twice, and each job delivery that
        leads into a paid step is charged as its own attempt.
        """
        cause = cause or (f"u{event.update_id}" if event is not None else "internal")
        for _ in range(MAX_HOPS):
            conversation.state = name
            state = self.states[name]
            if state.action is None:
                items = await self._list_items(conversation, state, event) if state.button_list else None
                await self._show(conversation, self._screen(conversation, state, event, items=items), outbox, edit=edit)
                return
            if state.say is not None or state.media is not None:
                await self._show(conversation, self._screen(conversation, state, event), outbox, edit=edit)
                edit = None
            result = await self._run_action(conversation, state, outbox, event, cause)
            if result.outcome is None:
                return  # a durable job reports the outcome later: see deliver()
            following = await self._outcome(conversation, state, result.outcome, outbox, event)
            if following is None:
                return
            if state.action is not None and state.action.outcomes[result.outcome].say is not None:
                edit = None  # the outcome spoke: the next screen goes below it, not into the old message
            name = following
        raise RuntimeError(f"more than {MAX_HOPS} action states in a row from {conversation.state}: a loop")

    async def _outcome(self, conversation: Conversation, state: State, outcome: str, outbox: Outbox,
                       event: InputEvent | None) -> str | None:
        """Apply an action outcome's reaction; the state to enter next, or None to stay."""
        assert state.action is not None
        reaction = state.action.outcomes[outcome]
        values = self.values(conversation, event)
        if reaction.set:
            conversation.data.update(set_values(reaction.set, values))
            values = self.values(conversation, event)
        if reaction.say is not None:
            await outbox.send_text(self.texts.render(reaction.say, self.locale(conversation), values))
        if reaction.to is None:
            return None
        return self.graph.follow(state.name, reaction)

    async def deliver(self, bot: Bot, delivery: Delivery) -> None:
        """Continue a conversation with the outcome of a background job (exactly once per job)."""
        conversation = await self.conversations.load(delivery.chat_id, delivery.user_id)
        if conversation is None:
            log.error("job %s reports to a conversation that does not exist", delivery.job_id)
            return
        delivered = list(conversation.data.get("_jobs_done", []))
        if delivery.job_id in delivered:
            log.info("job %s was already delivered", delivery.job_id)
            return
        conversation.data["_jobs_done"] = (delivered + [delivery.job_id])[-20:]
        state = self.states.get(delivery.state)
        outbox = Outbox(bot, delivery.chat_id)
        charge = conversation.data.get("charge") or {}
        spec = self.registry.get(state.action.name) if state is not None and state.action is not None else None
        if charge.get("status") == "held" and self.wallet is not None and spec is not None:
            kind = spec.outcomes_with_charge(True).get(delivery.outcome, OutcomeKind.FAILURE)
            await self._settle(conversation, Hold(charge["key"], conversation.user_id, charge["amount"]), kind)
        conversation.data.update(delivery.outputs)
        if state is None or state.action is None or delivery.outcome not in state.action.outcomes:
            log.error("job %s ended with %r, which %s does not branch; the user keeps the current screen",
                      delivery.job_id, delivery.outcome, delivery.state)
        else:
            if conversation.state != delivery.state:
                log.info("the user left %s while job %s ran; its outcome still applies", delivery.state,
                         delivery.job_id)
            conversation.state = delivery.state
            following = await self._outcome(conversation, state, delivery.outcome, outbox, None)
            if following is not None:
                await self._enter(conversation, following, outbox, None, cause=f"job{delivery.job_id}")
        await self.conversations.save(conversation)

    # ---------------------------------------------------------------- actions
    async def _run_action(self, conversation: Conversation, state: State, outbox: Outbox,
                          event: InputEvent | None, cause: str) -> ActionResult:
        action = state.action
        assert action is not None
        spec = self.registry.get(action.name)
        if spec is None:
            raise LookupError(f"action {action.name} is not installed")
        values = self.values(conversation, event)
        params = render_value(action.params, values)
        hold: Hold | None = None
        if action.charge is not None:
            if self.wallet is None:
                raise ChargeUnavailable(f"{state.name} charges credits but no wallet is configured")
            amount = int(render_value(action.charge, values) or 0)
            key = f"{conversation.chat_id}:{conversation.user_id}:{cause}:{state.name}"
            hold = await self.wallet.hold(conversation.user_id, amount, key)
            if hold is None:
                balance = await self.wallet.balance(conversation.user_id)
                conversation.data["charge"] = {"amount": amount, "balance": balance, "status": "not_charged"}
                return ActionResult(INSUFFICIENT_FUNDS)
            conversation.data["charge"] = {"amount": amount, "status": "held", "key": hold.key}
        context = ActionContext(
            user_id=conversation.user_id,
            chat_id=conversation.chat_id,
            state=state.name,
            data=dict(values),
            locale=self.locale(conversation),
            correlation_id=correlation_id.get(),
            bot=outbox.bot,
            storage=self.storage,
            send=lambda text: outbox.send_text(text),
            enqueue=lambda kind, payload, key=None: self._enqueue_job(conversation, state, kind, payload, key),
        )
        try:
            result = await spec.handler(context, params)
            if result.outcome is not None and result.outcome not in action.outcomes:
                raise ValueError(f"action {action.name} ended with undeclared outcome {result.outcome!r}")
        except BaseException:
            if hold is not None:
                await self._settle(conversation, hold, OutcomeKind.FAILURE)
            raise
        conversation.data.update(result.outputs)
        if hold is not None and result.outcome is not None:
            kind = spec.outcomes_with_charge(True)[result.outcome]
            await self._settle(conversation, hold, kind)
        return result

    async def _enqueue_job(self, conversation: Conversation, state: State, kind: str, payload: dict[str, Any],
                           key: str | None) -> int:
        address = {"chat_id": conversation.chat_id, "user_id": conversation.user_id, "state": state.name}
        job_id = await self.storage.job_enqueue(kind, {**payload, CONVERSATION: address}, key=key,
                                                correlation_id=correlation_id.get())
        self.on_job_enqueued()
        return job_id

    async def _settle(self, conversation: Conversation, hold: Hold, kind: OutcomeKind) -> None:
        assert self.wallet is not None
        if kind is OutcomeKind.SUCCESS:
            await self.wallet.capture(hold)
            status = "captured"
        else:
            await self.wallet.release(hold)
            status = "released"
        balance = await self.wallet.balance(hold.user_id)
        conversation.data["charge"] = {"amount": hold.amount, "balance": balance, "status": status}

    async def _list_items(self, conversation: Conversation, state: State, event: InputEvent | None) -> list[dict[str, Any]]:
        assert state.button_list is not None
        spec = self.registry.get(state.button_list.action)
        if spec is None:
            raise LookupError(f"action {state.button_list.action} is not installed")
        values = self.values(conversation, event)
        context = ActionContext(
            user_id=conversation.user_id, chat_id=conversation.chat_id, state=state.name, data=dict(values),
            locale=self.locale(conversation), correlation_id=correlation_id.get(), bot=None,  # type: ignore[arg-type]
            storage=self.storage, send=_no_send, enqueue=_no_enqueue,
        )
        result = await spec.handler(context, render_value(state.button_list.params, values))
        return [dict(item) for item in result.items or []]

    # --------------------------------------------------------------- screens
    def _screen(self, conversation: Conversation, state: State, event: InputEvent | None,
                *, items: list[dict[str, Any]] | None = None, page: int = 0) -> Screen:
        return self.renderer.screen(state, self.versions[state.name], self.locale(conversation),
                                    self.values(conversation, event), items=items, page=page)

    async def _show(self, conversation: Conversation, screen: Screen, outbox: Outbox, *, edit: Message | None = None) -> None:
        if not screen.text and screen.media is None:
            log.error("state %s has nothing to show (no text, no media)", screen.state)
            return  # Telegram refuses an empty message; the guard answers instead
        message_id = await outbox.show(screen, edit=edit)
        self._remember(conversation, screen, message_id)

    async def _show_current(self, conversation: Conversation, outbox: Outbox, event: InputEvent) -> None:
        """Show the current state again without running its action (used after a stale press)."""
        state = self.states[conversation.state]
        items = self._stored_items(conversation)
        if state.button_list is not None and not items:
            items = await self._list_items(conversation, state, event)
        screen = self._screen(conversation, state, event, items=items, page=self._stored_page(conversation))
        if not screen.text and screen.media is None:
            await outbox.send_text(self.texts.system("unanswered", self.locale(conversation)))
            return
        await self._show(conversation, screen, outbox)

    def _remember(self, conversation: Conversation, screen: Screen, message_id: int) -> None:
        """Record which messages carry the current state's buttons; presses on others are stale."""
        previous = conversation.screen or {}
        same_state = previous.get("state") == screen.state
        ids = list(previous.get("message_ids", [])) if same_state else []
        if message_id not in ids:
            ids.append(message_id)
        conversation.screen = {
            "state": screen.state,
            "message_ids": ids[-10:],
            "items": screen.items if screen.items or not same_state else previous.get("items", []),
            "page": screen.page,
        }

    @staticmethod
    def _stored_items(conversation: Conversation) -> list[dict[str, Any]]:
        screen = conversation.screen or {}
        return list(screen.get("items", [])) if screen.get("state") == conversation.state else []

    @staticmethod
    def _stored_page(conversation: Conversation) -> int:
        screen = conversation.screen or {}
        return int(screen.get("page", 0)) if screen.get("state") == conversation.state else 0


def _valid(text: str, validation: TextValidation) -> bool:
    if validation.min_length is not None and len(text) < validation.min_length:
        return False
    if validation.max_length is not None and len(text) > validation.max_length:
        return False
    if validation.pattern is not None and re.search(validation.pattern, text) is None:
        return False
    return True


async def _no_send(text: str) -> None:
    raise RuntimeError("list actions cannot send messages")


async def _no_enqueue(*args: Any, **kwargs: Any) -> int:
    raise RuntimeError("list actions cannot start background work")
