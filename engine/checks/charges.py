"""Money: only chargeable actions take a charge, and every failure of a charged step tells the user about it."""

from __future__ import annotations

from typing import Iterator

from engine.actions.spec import OutcomeKind
from engine.checks.context import CheckContext, text_label
from engine.language.findings import Finding, error
from engine.language.model import Text
from engine.language.templates import TemplateError, placeholders

MONEY_PREFIX = "charge."


def check_charge_allowed(ctx: CheckContext) -> Iterator[Finding]:
    """charge-not-allowed: `charge:` on an action that does not support holding credits."""
    for state in ctx.states.values():
        action = state.action
        if action is None or action.charge is None or (spec := ctx.spec(action.name)) is None:
            continue
        if not spec.chargeable:
            yield error(action.charge_position or action.position, "charge-not-allowed",
                        f"'{spec.name}' cannot be charged for (it does not declare itself chargeable); "
                        f"remove `charge:` from state '{state.name}'")


def check_refund_told(ctx: CheckContext) -> Iterator[Finding]:
    """refund-not-told: every failure branch of a charged step says what happened to the money."""
    for state in ctx.states.values():
        action = state.action
        if action is None or action.charge is None or (spec := ctx.spec(action.name)) is None \
                or not spec.chargeable or spec.is_list:
            continue
        for outcome, kind in spec.outcomes_with_charge(True).items():
            reaction = action.outcomes.get(outcome)
            if reaction is None or kind is not OutcomeKind.FAILURE:
                continue  # unbranched-outcome reports a missing branch
            head = f"outcome '{outcome}' of the charged step '{state.name}'"
            if reaction.say is not None:
                text, via = reaction.say, f"says {text_label(reaction.say)}, which"
            elif reaction.to is not None:
                target = ctx.states.get(reaction.to)
                if target is None:
                    continue  # unknown-state
                if target.say is None:
                    yield error(reaction.position, "refund-not-told",
                                f"{head} leads to '{target.name}', which has no text to tell the user what "
                                f"happened to the money: give it a `say:` that mentions {{charge.amount}}")
                    continue
                text, via = target.say, f"leads to '{target.name}', whose text"
            else:
                continue
            for language in _silent_about_money(ctx, text):
                where = f" (locale {language})" if language else ""
                yield error(reaction.position, "refund-not-told",
                            f"{head} {via}{where} does not tell the user what happened to the money: "
                            f"mention {{charge.amount}}")


def _silent_about_money(ctx: CheckContext, text: Text) -> list[str | None]:
    """Locales (None for a literal) in which `text` has no {charge.*} placeholder."""
    silent: list[str | None] = []
    if not text.is_key:
        try:
            names = placeholders(text.raw)
        except TemplateError:
            return []  # bad-template
        return [] if any(n.startswith(MONEY_PREFIX) for n in names) else [None]
    for language, locale in sorted(ctx.project.locales.items()):
        if text.raw not in locale.messages:
            continue  # unknown-i18n-key
        names = ctx.message_names(language, text.raw)
        if names is not None and not any(n.startswith(MONEY_PREFIX) for n in names):
            silent.append(language)
    return silent
