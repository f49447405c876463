"""Actions: they exist, get valid parameters, are used as what they are, and every outcome is branched."""

from __future__ import annotations

from typing import Any, Iterator

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from engine.actions.spec import INSUFFICIENT_FUNDS, ActionSpec
from engine.checks.context import CheckContext, did_you_mean
from engine.language.findings import Finding, error
from engine.language.model import Position, State
from engine.language.templates import TemplateError, placeholders


def check_unknown_actions(ctx: CheckContext) -> Iterator[Finding]:
    """unknown-action: `do:` or `list.from` names no registered action."""
    for state in ctx.states.values():
        for name, position, where in _action_uses(state):
            if ctx.spec(name) is None:
                yield error(position, "unknown-action",
                            f"{where} of state '{state.name}' runs '{name}', which is not a registered action"
                            f"{did_you_mean(name, ctx.registry.names())}")


def check_list_action_misuse(ctx: CheckContext) -> Iterator[Finding]:
    """list-action-misuse: a list action in `do:`, or an ordinary action in `list.from`."""
    for state in ctx.states.values():
        if state.action is not None and (spec := ctx.spec(state.action.name)) is not None and spec.is_list:
            yield error(state.action.position, "list-action-misuse",
                        f"'{spec.name}' produces the items of a button list; use it as `list: {{from: {spec.name}}}`, "
                        f"not in `do:` (state '{state.name}')")
        if state.button_list is not None and (spec := ctx.spec(state.button_list.action)) is not None \
                and not spec.is_list:
            yield error(state.button_list.action_position, "list-action-misuse",
                        f"'{spec.name}' does not produce list items, so it cannot feed `list.from` "
                        f"(state '{state.name}'); run it with `do:` instead")


def check_action_params(ctx: CheckContext) -> Iterator[Finding]:
    """bad-action-params: `with:` does not match the action's parameter schema (placeholders are not judged)."""
    validators: dict[str, Draft202012Validator] = {}
    for state in ctx.states.values():
        uses: list[tuple[str, dict[str, Any], dict[tuple[Any, ...], Position], Position]] = []
        if state.action is not None:
            uses.append((state.action.name, state.action.params, state.action.param_positions,
                         state.action.params_position))
        if state.button_list is not None:
            lst = state.button_list
            uses.append((lst.action, lst.params, lst.param_positions, lst.param_positions.get((), lst.position)))
        for name, params, positions, fallback in uses:
            spec = ctx.spec(name)
            if spec is None:
                continue
            validator = validators.get(name)
            if validator is None:
                validator = validators[name] = Draft202012Validator(dict(spec.params))
            yield from _validate_params(spec, validator, state, params, positions, fallback)


def _validate_params(spec: ActionSpec, validator: Draft202012Validator, state: State, params: dict[str, Any],
                     positions: dict[tuple[Any, ...], Position], fallback: Position) -> Iterator[Finding]:
    try:
        problems = sorted(validator.iter_errors(params), key=lambda e: [str(p) for p in e.absolute_path])
    except RecursionError:
        yield error(fallback, "bad-action-params", f"the parameters of '{spec.name}' are nested too deeply")
        return
    except Exception as exc:  # a broken schema published by the action itself
        yield error(fallback, "bad-action-params",
                    f"the parameter schema of '{spec.name}' cannot be used ({type(exc).__name__}: {exc})")
        return
    for problem in problems:
        if _templated(problem.instance):
            continue
        path = tuple(problem.absolute_path)
        where = _param_position(problem, path, positions, fallback)
        dotted = "with" + "".join(f".{p}" for p in path)
        yield error(where, "bad-action-params",
                    f"'{dotted}' of '{spec.name}' in state '{state.name}': {problem.message}")


def _templated(instance: Any) -> bool:
    """A string with a {placeholder} gets its value at run time: its type and content cannot be judged now."""
    if not isinstance(instance, str):
        return False
    try:
        return bool(placeholders(instance))
    except TemplateError:
        return True  # bad-template reports it


def _param_position(problem: ValidationError, path: tuple[Any, ...], positions: dict[tuple[Any, ...], Position],
                    fallback: Position) -> Position:
    if problem.validator == "additionalProperties" and isinstance(problem.instance, dict):
        allowed = problem.schema.get("properties", {}) if isinstance(problem.schema, dict) else {}
        for key in problem.instance:
            if key not in allowed and ("@key",) + path + (key,) in positions:
                return positions[("@key",) + path + (key,)]
    while path not in positions and path:
        path = path[:-1]
    return positions.get(path, fallback)


def check_outcomes(ctx: CheckContext) -> Iterator[Finding]:
    """undeclared-outcome and unbranched-outcome: the branches match what the action can end in."""
    for state in ctx.states.values():
        action = state.action
        if action is None or (spec := ctx.spec(action.name)) is None or spec.is_list:
            continue
        charged = action.charge is not None
        # A charge on an action that cannot be charged is charge-not-allowed: do not pile on.
        declared = spec.outcomes_with_charge(charged and spec.chargeable)
        for outcome, reaction in action.outcomes.items():
            if outcome in declared:
                continue
            if outcome == INSUFFICIENT_FUNDS:
                if charged:
                    continue  # charge-not-allowed says it
                yield error(reaction.position, "undeclared-outcome",
                            f"'{INSUFFICIENT_FUNDS}' only happens on a charged step, and state '{state.name}' "
                            f"has no `charge:`; remove the branch or add the charge")
                continue
            yield error(reaction.position, "undeclared-outcome",
                        f"'{spec.name}' never ends in '{outcome}' (state '{state.name}'); it declares: "
                        f"{_names(declared)}{did_you_mean(outcome, declared)}")
        for outcome, kind in declared.items():
            if outcome in action.outcomes:
                continue
            why = " (the step is charged: the hold can fail)" if outcome == INSUFFICIENT_FUNDS else ""
            yield error(action.position, "unbranched-outcome",
                        f"'{spec.name}' can end in '{outcome}' ({kind.value}){why} but state '{state.name}' has "
                        f"no branch for it: add `outcomes: {{{outcome}: <state>}}`")


def check_silent_wait(ctx: CheckContext) -> Iterator[Finding]:
    """silent-wait: a state running a background action must say something while the user waits."""
    for state in ctx.states.values():
        action = state.action
        if action is None or (spec := ctx.spec(action.name)) is None or not spec.background:
            continue
        if state.say is None:
            yield error(state.position, "silent-wait",
                        f"state '{state.name}' runs '{spec.name}', which can take minutes, but says nothing while "
                        f"the user waits: add `say:` (e.g. 'Generating, this takes a minute…')")


def _action_uses(state: State) -> Iterator[tuple[str, Position, str]]:
    if state.action is not None:
        yield state.action.name, state.action.position, "`do:`"
    if state.button_list is not None:
        yield state.button_list.action, state.button_list.action_position, "`list.from`"


def _names(outcomes: Any) -> str:
    return ", ".join(sorted(outcomes)) or "(no outcomes)"
