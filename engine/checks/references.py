"""References to states: every `to`, every `start` must name a state that exists."""

from __future__ import annotations

from typing import Iterator

from engine.checks.context import CheckContext, closest
from engine.language.findings import Finding, error
from engine.language.model import Position


def check_unknown_states(ctx: CheckContext) -> Iterator[Finding]:
    """unknown-state: a flow start, the bot start or any reaction's `to` names no state."""
    for target, position, label in state_references(ctx):
        if target not in ctx.states:
            verb = "is" if label.startswith("the start") or label.startswith("the bot's start") else "goes to"
            yield error(position, "unknown-state", f"{label} {verb} '{target}', which is not a state"
                        f"{_suggestion(ctx, target)}")


def state_references(ctx: CheckContext) -> Iterator[tuple[str, Position, str]]:
    """(qualified target, where it is written, who refers) for every state reference."""
    bot = ctx.bot
    if bot is not None:
        yield bot.start, bot.start_position, "the bot's start"
    for flow in ctx.project.flows.values():
        yield flow.start, flow.start_position, f"the start of flow '{flow.name}'"
    for site in ctx.reaction_sites:
        reaction = site.reaction
        if reaction.to is not None:
            yield reaction.to, reaction.to_position or reaction.position, site.label


def _suggestion(ctx: CheckContext, target: str) -> str:
    names = list(ctx.states)
    if "." not in target:
        # A bare name outside a flow (in the bot manifest): match against state names.
        shorts = {name.split(".", 1)[1]: name for name in names}
        if target in shorts:
            return f"; in the bot manifest write it with its flow: '{shorts[target]}'"
        match = closest(target, shorts)
        return f"; did you mean '{shorts[match]}'?" if match else ""
    flow = target.split(".", 1)[0]
    # Prefer a state of the same flow, then any state.
    same_flow = [name for name in names if name.startswith(flow + ".")]
    match = closest(target, same_flow) or closest(target, names)
    if match:
        return f"; did you mean '{match}'?"
    if flow not in ctx.project.flows:
        flows = closest(flow, ctx.project.flows)
        return f" (there is no flow '{flow}'" + (f"; did you mean '{flows}'?)" if flows else ")")
    return ""
