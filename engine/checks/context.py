"""What every check needs, computed once per run: the places reactions, texts and templates live.

A check is a function ``check_x(ctx: CheckContext) -> Iterable[Finding]``. The
context walks the compiled project once and hands out *sites*: each reaction
(with what may be used inside it), each text, each template value, each
reference to a state, all with the position to report.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Iterator

from engine.actions.registry import ActionRegistry
from engine.actions.spec import ActionSpec
from engine.language.model import (
    Bot,
    ButtonList,
    Flow,
    Position,
    Project,
    Reaction,
    State,
    Text,
)
from engine.language.templates import TemplateError, placeholders

# Names any template may use, besides declared variables and action outputs.
BUILTIN_VARIABLES = (
    "user.id",
    "user.first_name",
    "user.last_name",
    "user.username",
    "user.language",
    "charge.amount",
    "charge.balance",
    "charge.status",
)
# What an input handler (state `on:` or a bot command) may read about the input it answers.
INPUT_FIELDS = ("input.text", "input.file_id", "input.caption", "input.command", "input.args")

# Scopes: where a template is, and so which contextual names it may use.
INPUT = "input"  # inside an `on:` handler or a bot command: input.*
ITEM = "item"  # inside the button of a `list:`: item.*


class _Snapshot(Project):
    """The project with `states` computed once (Project.states rebuilds a dict on every access)."""

    _states: dict[str, State]

    @property  # type: ignore[override]
    def states(self) -> dict[str, State]:
        return self._states


def snapshot(project: Project) -> Project:
    if isinstance(project, _Snapshot):
        return project
    copy = _Snapshot(
        bot=project.bot,
        flows=project.flows,
        locales=project.locales,
        variables=project.variables,
        files=project.files,
    )
    copy._states = project.states
    return copy


@dataclass(frozen=True)
class ReactionSite:
    """One reaction in the project and what surrounds it."""

    reaction: Reaction
    kind: str  # command | bot-handler | default | button | list-button | input | invalid | fallback | outcome
    label: str  # human: "button 'common.back' of state 'main.ask_name'"
    state: State | None = None
    flow: str | None = None
    scopes: frozenset[str] = frozenset()
    button_list: ButtonList | None = None
    name: str | None = None  # input kind, outcome name or command

    @property
    def in_bot(self) -> bool:
        """Written in the bot manifest (global), not in a flow."""
        return self.kind in ("command", "bot-handler")


@dataclass(frozen=True)
class TextSite:
    """One message text: a state's say, a reaction's say, or a button's label."""

    text: Text
    role: str  # say | caption | reply | button
    label: str
    scopes: frozenset[str] = frozenset()
    button_list: ButtonList | None = None
    state: State | None = None


@dataclass(frozen=True)
class TemplateSite:
    """A non-message string that may hold {placeholders}: set values, params, media, charge, url."""

    value: str
    position: Position
    label: str
    scopes: frozenset[str] = frozenset()
    button_list: ButtonList | None = None


@dataclass
class CheckContext:
    project: Project
    registry: ActionRegistry
    _message_names: dict[tuple[str, str], list[str] | None] = field(default_factory=dict)
    # Results shared between checks (e.g. the transition graph), by name.
    cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.project = snapshot(self.project)

    # ---- basics -------------------------------------------------------------------------

    @property
    def bot(self) -> Bot | None:
        return self.project.bot

    @cached_property
    def states(self) -> dict[str, State]:
        return self.project.states

    def flow(self, state: State) -> Flow:
        return self.project.flows[state.flow]

    def spec(self, name: str) -> ActionSpec | None:
        return self.registry.get(name)

    @cached_property
    def used_actions(self) -> dict[str, ActionSpec]:
        used: dict[str, ActionSpec] = {}
        for state in self.states.values():
            for name in (state.action.name if state.action else None,
                         state.button_list.action if state.button_list else None):
                if name and (spec := self.registry.get(name)) is not None:
                    used[name] = spec
        return used

    @cached_property
    def outputs(self) -> frozenset[str]:
        """Variables set by actions this project runs."""
        return frozenset(output for spec in self.used_actions.values() for output in spec.outputs)

    @cached_property
    def global_names(self) -> frozenset[str]:
        return frozenset(self.project.variables) | frozenset(BUILTIN_VARIABLES) | self.outputs

    # ---- sites ----------------------------------------------------------------------------

    @cached_property
    def reaction_sites(self) -> list[ReactionSite]:
        sites: list[ReactionSite] = []
        bot = self.bot
        if bot is not None:
            for command in bot.commands.values():
                sites.append(ReactionSite(command.reaction, "command", f"bot command {command.name}",
                                          scopes=frozenset({INPUT}), name=command.name))
            for kind, handler in bot.handlers.items():
                sites.append(ReactionSite(handler.reaction, "bot-handler", f"bot on.{kind}",
                                          scopes=frozenset({INPUT}), name=kind))
        for flow in self.project.flows.values():
            sites.append(ReactionSite(flow.default, "default", f"the default of flow '{flow.name}'", flow=flow.name))
            for state in flow.states.values():
                sites.extend(self._state_reactions(state))
        return sites

    def _state_reactions(self, state: State) -> Iterator[ReactionSite]:
        name = state.name
        for button in state.all_buttons():
            if button.reaction is not None:
                yield ReactionSite(button.reaction, "button", f"button '{button.text.raw}' of state '{name}'",
                                   state, state.flow)
        if state.button_list is not None and state.button_list.button.reaction is not None:
            yield ReactionSite(state.button_list.button.reaction, "list-button",
                               f"the list button of state '{name}'", state, state.flow,
                               frozenset({ITEM}), state.button_list)
        for kind, handler in state.inputs.items():
            yield ReactionSite(handler.reaction, "input", f"on.{kind} of state '{name}'", state, state.flow,
                               frozenset({INPUT}), name=kind)
            if handler.invalid is not None:
                yield ReactionSite(handler.invalid, "invalid", f"on.{kind}.invalid of state '{name}'", state,
                                   state.flow, frozenset({INPUT}), name=kind)
        if state.fallback is not None:
            yield ReactionSite(state.fallback, "fallback", f"the fallback of state '{name}'", state, state.flow)
        if state.action is not None:
            for outcome, reaction in state.action.outcomes.items():
                yield ReactionSite(reaction, "outcome", f"outcome '{outcome}' of state '{name}'", state,
                                   state.flow, name=outcome)

    @cached_property
    def text_sites(self) -> list[TextSite]:
        sites: list[TextSite] = []
        for state in self.states.values():
            if state.say is not None:
                role = "caption" if state.media is not None else "say"
                sites.append(TextSite(state.say, role, f"the text of state '{state.name}'", state=state))
            for button in state.all_buttons():
                sites.append(TextSite(button.text, "button", f"a button of state '{state.name}'", state=state))
            if state.button_list is not None:
                sites.append(TextSite(state.button_list.button.text, "button",
                                      f"the list button of state '{state.name}'", frozenset({ITEM}),
                                      state.button_list, state))
        for site in self.reaction_sites:
            if site.reaction.say is not None:
                sites.append(TextSite(site.reaction.say, "reply", site.label, site.scopes, site.button_list,
                                      site.state))
        return sites

    @cached_property
    def template_sites(self) -> list[TemplateSite]:
        sites: list[TemplateSite] = []
        for site in self.reaction_sites:
            for name, value in site.reaction.set.items():
                if isinstance(value, str):
                    where = site.reaction.set_positions.get(name, site.reaction.position)
                    sites.append(TemplateSite(value, where, f"set '{name}' in {site.label}", site.scopes,
                                              site.button_list))
        for state in self.states.values():
            if state.media is not None:
                sites.append(TemplateSite(state.media.source, state.media.position,
                                          f"the {state.media.kind} of state '{state.name}'"))
            buttons = [(b, frozenset(), None) for b in state.all_buttons()]
            if state.button_list is not None:
                buttons.append((state.button_list.button, frozenset({ITEM}), state.button_list))
                sites.extend(self._param_sites(state.button_list.params, state.button_list.param_positions,
                                               state.button_list.action_position,
                                               f"the list of state '{state.name}'"))
            for button, scopes, button_list in buttons:
                if button.url:
                    sites.append(TemplateSite(button.url, button.position, f"a button url of state '{state.name}'",
                                              scopes, button_list))
            action = state.action
            if action is not None:
                sites.extend(self._param_sites(action.params, action.param_positions, action.params_position,
                                               f"the action of state '{state.name}'"))
                if isinstance(action.charge, str) and action.charge_position is not None:
                    sites.append(TemplateSite(action.charge, action.charge_position,
                                              f"the charge of state '{state.name}'"))
        return sites

    @staticmethod
    def _param_sites(params: dict[str, Any], positions: dict[tuple[Any, ...], Position], fallback: Position,
                     label: str) -> Iterator[TemplateSite]:
        stack: list[tuple[Any, tuple[Any, ...]]] = [(params, ())]
        while stack:
            value, path = stack.pop()
            if isinstance(value, str):
                where = positions.get(path, fallback)
                dotted = ".".join(str(p) for p in path)
                yield TemplateSite(value, where, f"'with.{dotted}' in {label}")
            elif isinstance(value, dict):
                stack.extend((item, path + (key,)) for key, item in value.items())
            elif isinstance(value, list):
                stack.extend((item, path + (i,)) for i, item in enumerate(value))

    @cached_property
    def used_keys(self) -> set[str]:
        return {site.text.raw for site in self.text_sites if site.text.is_key}

    def message_names(self, language: str, key: str) -> list[str] | None:
        """Placeholders of a locale message, or None when it is malformed (bad-template says so)."""
        cache_key = (language, key)
        if cache_key not in self._message_names:
            try:
                self._message_names[cache_key] = placeholders(self.project.locales[language].messages[key])
            except TemplateError:
                self._message_names[cache_key] = None
        return self._message_names[cache_key]

    def texts_of(self, text: Text) -> Iterator[tuple[str | None, str, Position]]:
        """(locale or None for a literal, the text, where it is written) for every rendering of `text`."""
        if not text.is_key:
            yield None, text.raw, text.position
            return
        for language, locale in self.project.locales.items():
            message = locale.messages.get(text.raw)
            if message is not None:
                yield language, message, locale.positions.get(text.raw, locale.position)


def closest(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    match = closest(name, candidates, cutoff)
    return f"; did you mean '{match}'?" if match else ""


def text_label(text: Text) -> str:
    """How a text is named in messages: the key, or the literal (shortened)."""
    if text.is_key:
        return f"'{text.raw}'"
    raw = text.raw if len(text.raw) <= 40 else text.raw[:37] + "..."
    return repr(raw)
