"""Which rule answers an input in a state — one definition for the checker and the runtime.

The zero-silence proof is only worth something if the runtime resolves inputs
exactly as the checker assumed, so both call `resolve()`.

Order, most specific first:
  command   state `on: /name` > bot command > state `on: command` > state fallback > flow default
  text      state `on: text` (if valid; else its `invalid`) > state fallback > flow default
  media, sticker, other
            state `on: <kind>` > state fallback > flow default
  button    the pressed button's own reaction
  stale_button, malformed_callback
            engine: answer the callback with a notice and show the current screen again
  pre_checkout_query
            engine: approve only an invoice this user has pending, otherwise decline with a reason
  successful_payment
            state `on: successful_payment` > bot `on: successful_payment` > engine: refund and say so
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.language.model import Button, Position, Project, Reaction, State

if TYPE_CHECKING:
    from engine.actions.registry import ActionRegistry

ENGINE_RULES = {
    "stale_button": "engine: notice 'this button is out of date' + the current screen again",
    "malformed_callback": "engine: notice 'this button is out of date' + the current screen again",
    "pre_checkout_query": "engine: approve a pending invoice of this user, otherwise decline with a reason",
    "successful_payment": "engine: refund the payment and tell the user",
}


@dataclass(frozen=True)
class Rule:
    """The handler that answers one (state, input kind) cell."""

    source: str  # human-readable origin, e.g. "state on.text", "flow default", "bot command /help"
    reaction: Reaction | None  # None: an engine built-in
    position: Position | None

    @property
    def is_engine(self) -> bool:
        return self.reaction is None


def resolve(project: Project, state: State, kind: str, command: str | None = None) -> Rule | None:
    """The rule answering `kind` (with `command` for a specific /command) in `state`."""
    flow = project.flow_of(state.name)
    if kind in ("stale_button", "malformed_callback", "pre_checkout_query"):
        return Rule(ENGINE_RULES[kind], None, None)
    if kind == "successful_payment":
        if handler := state.inputs.get(kind):
            return Rule("state on.successful_payment", handler.reaction, handler.position)
        if project.bot and (handler := project.bot.handlers.get(kind)):
            return Rule("bot on.successful_payment", handler.reaction, handler.position)
        return Rule(ENGINE_RULES[kind], None, None)
    if kind == "command" and command:
        if handler := state.inputs.get(command):
            return Rule(f"state on.{command}", handler.reaction, handler.position)
        if project.bot and (global_command := project.bot.commands.get(command)):
            return Rule(f"bot command {command}", global_command.reaction, global_command.position)
    if kind != "button" and (handler := state.inputs.get(kind)):
        return Rule(f"state on.{kind}", handler.reaction, handler.position)
    if kind == "button":
        return None  # a button answers with its own reaction: see button_rules()
    if state.fallback is not None:
        return Rule("state fallback", state.fallback, state.fallback.position)
    return Rule(f"flow default ({flow.name})", flow.default, flow.default.position)


def resolve_invalid_text(project: Project, state: State) -> Rule | None:
    """The rule answering text that fails the state's `on: text` validation."""
    handler = state.inputs.get("text")
    if handler is not None and handler.invalid is not None:
        return Rule("state on.text.invalid", handler.invalid, handler.position)
    if state.fallback is not None:
        return Rule("state fallback", state.fallback, state.fallback.position)
    flow = project.flow_of(state.name)
    return Rule(f"flow default ({flow.name})", flow.default, flow.default.position)


def state_buttons(state: State) -> list[Button]:
    """Every button that can answer a press in this state (static ones and the list template)."""
    buttons = [b for b in state.all_buttons() if b.reaction is not None]
    if state.button_list is not None and state.button_list.button.reaction is not None:
        buttons.append(state.button_list.button)
    return buttons


class Visibility:
    """Decides whether a reaction produces a message the user can see.

    A reaction is visible when it says something, or goes to a state that
    renders: a state with text or media, or an action state whose every
    outcome is visible. A cycle of silent action states is not visible.
    """

    def __init__(self, project: Project, registry: "ActionRegistry | None" = None) -> None:
        self.project = project
        self.registry = registry
        self._renders: dict[str, bool] = {}

    def reaction(self, reaction: Reaction) -> bool:
        if reaction.say is not None:
            return True
        if reaction.to is None:
            return False
        return self.state(reaction.to)

    def state(self, name: str, visiting: frozenset[str] = frozenset()) -> bool:
        if name in self._renders:
            return self._renders[name]
        state = self.project.states.get(name)
        if state is None:
            return True  # an unknown target is reported by its own check; do not double-report
        if state.say is not None or state.media is not None:
            result = True
        elif state.action is None or name in visiting:
            result = False
        else:
            branches = state.action.outcomes.values()
            result = bool(branches) and all(
                r.say is not None or (r.to is not None and self.state(r.to, visiting | {name})) for r in branches
            )
        if not visiting:
            self._renders[name] = result
        return result
