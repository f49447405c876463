"""Variables and expressions: every {placeholder}, `if:` and `set:` names something that exists there."""

from __future__ import annotations

import re
from typing import Iterable, Iterator

from engine.checks.context import INPUT, INPUT_FIELDS, ITEM, CheckContext, closest
from engine.language.conditions import ConditionError, condition_names
from engine.language.findings import Finding, error
from engine.language.model import ButtonList, Position
from engine.language.templates import TemplateError, placeholders


def check_templates(ctx: CheckContext) -> Iterator[Finding]:
    """bad-template, unknown-variable, unknown-item-field in texts, set values, params, media, charge, urls."""
    seen: set[tuple[Position, str, str]] = set()

    def report(finding: Finding | None, name: str) -> Iterator[Finding]:
        if finding is not None and (finding.position, name, finding.code) not in seen:
            seen.add((finding.position, name, finding.code))
            yield finding

    # Literals and other template strings: judged where they are written.
    literal_sites = [(s.text.raw, s.text.position, s.label, s.scopes, s.button_list)
                     for s in ctx.text_sites if not s.text.is_key]
    literal_sites += [(s.value, s.position, s.label, s.scopes, s.button_list) for s in ctx.template_sites]
    for value, position, label, scopes, button_list in literal_sites:
        try:
            names = placeholders(value)
        except TemplateError as exc:
            yield error(position, "bad-template", f"{label}: {exc}")
            continue
        for name in names:
            yield from report(_judge(ctx, name, scopes, button_list, position, label), name)

    # Locale messages: what depends on where a key is used is judged at the use ...
    for site in ctx.text_sites:
        if not site.text.is_key:
            continue
        for language in sorted(ctx.project.locales):
            if site.text.raw not in ctx.project.locales[language].messages:
                continue
            for name in ctx.message_names(language, site.text.raw) or ():
                if _contextual(name):
                    label = f"{site.label} (message '{site.text.raw}' of locale '{language}')"
                    yield from report(_judge(ctx, name, site.scopes, site.button_list, site.text.position, label),
                                      name)

    # ... and the rest once, in the locale file.
    for language, locale in sorted(ctx.project.locales.items()):
        for key, message in locale.messages.items():
            position = locale.positions.get(key, locale.position)
            label = f"message '{key}' of locale '{language}'"
            try:
                names = placeholders(message)
            except TemplateError as exc:
                yield error(position, "bad-template", f"{label}: {exc}")
                continue
            for name in names:
                if not _contextual(name):
                    yield from report(_judge(ctx, name, frozenset({INPUT}), None, position, label), name)


def check_conditions(ctx: CheckContext) -> Iterator[Finding]:
    """bad-condition and unknown-variable in button `if:` expressions."""
    for state in ctx.states.values():
        buttons = [(b, frozenset(), None) for b in state.all_buttons()]
        if state.button_list is not None:
            buttons.append((state.button_list.button, frozenset({ITEM}), state.button_list))
        for button, scopes, button_list in buttons:
            if button.condition is None:
                continue
            position = button.condition_position or button.position
            label = f"the `if:` of a button of state '{state.name}'"
            try:
                names = condition_names(button.condition)
            except ConditionError as exc:
                yield error(position, "bad-condition", f"{label}: {exc}")
                continue
            except (RecursionError, MemoryError, ValueError):
                yield error(position, "bad-condition", f"{label}: the expression is too complex")
                continue
            for name in names:
                finding = _judge(ctx, name, scopes, button_list, position, label, braces=False)
                if finding is not None:
                    yield finding


def check_set_targets(ctx: CheckContext) -> Iterator[Finding]:
    """undeclared-variable: `set:` writes a variable no flow declares in `vars:`."""
    declared = ctx.project.variables
    for site in ctx.reaction_sites:
        for name in site.reaction.set:
            if name in declared:
                continue
            position = site.reaction.set_key_positions.get(name, site.reaction.position)
            match = closest(name, declared)
            hint = f"did you mean '{match}'? Or declare it" if match else "declare it"
            yield error(position, "undeclared-variable",
                        f"{site.label} sets '{name}', which is not declared: {hint} under `vars:` of a flow "
                        f"(with its default)")


def check_validation(ctx: CheckContext) -> Iterator[Finding]:
    """bad-pattern: `validate.pattern` is not a regular expression; bad-validation: min_length > max_length."""
    for state in ctx.states.values():
        for handler in state.inputs.values():
            validation = handler.validation
            if validation is None:
                continue
            if validation.pattern is not None:
                try:
                    re.compile(validation.pattern)
                except (re.error, RecursionError, OverflowError) as exc:
                    yield error(validation.pattern_position or handler.position, "bad-pattern",
                                f"validate.pattern of state '{state.name}' is not a valid regular expression: {exc}")
            low, high = validation.min_length, validation.max_length
            if low is not None and high is not None and low > high:
                yield error(validation.position or handler.position, "bad-validation",
                            f"validate of state '{state.name}' needs min_length {low} <= max_length {high}: "
                            f"no text can pass")


def _contextual(name: str) -> bool:
    """A name whose validity depends on where the text is used (not on the text itself)."""
    return name in INPUT_FIELDS or name == "item" or name.startswith("item.")


def _judge(ctx: CheckContext, name: str, scopes: frozenset[str], button_list: ButtonList | None,
           position: Position, label: str, braces: bool = True) -> Finding | None:
    """None when `name` is known in this place, else the finding that says why not."""
    shown = f"'{{{name}}}'" if braces else f"'{name}'"
    if name in ctx.global_names or name.split(".", 1)[0] in ctx.outputs:
        return None
    head = name.split(".", 1)[0]
    if head == "input":
        if name not in INPUT_FIELDS:
            return error(position, "unknown-variable",
                         f"{shown} in {label}: an input has no such field (there are: {', '.join(INPUT_FIELDS)})")
        if INPUT not in scopes:
            return error(position, "unknown-variable",
                         f"{shown} in {label}: input fields exist only while answering an input (in `on:` "
                         f"handlers and bot commands); `set:` it into a variable there and use that")
        return None
    if head == "item":
        if ITEM not in scopes or button_list is None:
            return error(position, "unknown-variable",
                         f"{shown} in {label}: item fields exist only in the button of a `list:`")
        spec = ctx.spec(button_list.action)
        if spec is None or spec.item_fields is None:
            return None  # unknown-action / list-action-misuse
        field = name.split(".")[1] if "." in name else ""
        if field in spec.item_fields:
            return None
        return error(position, "unknown-item-field",
                     f"{shown} in {label}: the items of '{spec.name}' have no field '{field}' "
                     f"(they have: {', '.join(spec.item_fields)})")
    candidates: Iterable[str] = sorted(ctx.global_names | (set(INPUT_FIELDS) if INPUT in scopes else set()))
    match = closest(name, candidates)
    hint = f"; did you mean '{match}'?" if match else "; declare it under `vars:` of a flow"
    return error(position, "unknown-variable",
                 f"{shown} in {label} is not a declared variable, a builtin (user.*, charge.*) or an action "
                 f"output{hint}")
