"""The flow graph as a `transitions` state machine.

One Machine is built per loaded project with a single shared cursor model:
per update we `set_state` the cursor to the conversation's state and fire the
trigger of the chosen reaction (about 7 µs), instead of adding a model per
conversation (hundreds of µs on a large machine). Every reaction with a `to`
is a named trigger, so a transition the flow does not declare cannot happen.
"""

from __future__ import annotations

from typing import Iterator

from transitions import Machine

from engine.language.model import Project, Reaction, State


class _Cursor:
    state: str


def reactions_of(state: State) -> Iterator[Reaction]:
    """Every reaction declared on a state itself."""
    for button in state.all_buttons():
        if button.reaction is not None:
            yield button.reaction
    if state.button_list is not None and state.button_list.button.reaction is not None:
        yield state.button_list.button.reaction
    for handler in state.inputs.values():
        yield handler.reaction
        if handler.invalid is not None:
            yield handler.invalid
    if state.fallback is not None:
        yield state.fallback
    if state.action is not None:
        yield from state.action.outcomes.values()


class FlowGraph:
    def __init__(self, project: Project) -> None:
        states = list(project.states)
        self._cursor = _Cursor()
        self._machine = Machine(
            model=self._cursor,
            states=states,
            initial=project.bot.start if project.bot else states[0],
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        self._triggers: dict[int, str] = {}
        for state in project.states.values():
            for reaction in reactions_of(state):
                self._add(reaction, state.name)
        for flow in project.flows.values():
            self._add(flow.default, list(flow.states))
        if project.bot is not None:
            for command in project.bot.commands.values():
                self._add(command.reaction, "*")
            for handler in project.bot.handlers.values():
                self._add(handler.reaction, "*")

    def _add(self, reaction: Reaction, source: str | list[str]) -> None:
        if reaction.to is None or id(reaction) in self._triggers:
            return
        trigger = f"t{len(self._triggers)}"
        self._triggers[id(reaction)] = trigger
        self._machine.add_transition(trigger, source=source, dest=reaction.to)

    def follow(self, state: str, reaction: Reaction) -> str:
        """The state `reaction` leads to from `state` (itself when it has no `to`)."""
        trigger = self._triggers.get(id(reaction))
        if trigger is None:
            return state
        self._machine.set_state(state, model=self._cursor)
        self._machine.events[trigger].trigger(self._cursor)
        return self._cursor.state
