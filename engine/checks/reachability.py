"""Reachability: every state can be reached from the start, and every reached state has a way back."""

from __future__ import annotations

from collections import deque
from typing import Iterator

from engine.checks.context import CheckContext
from engine.language.findings import Finding, error, warning
from engine.language.model import USER_INPUT_KINDS, State
from engine.language.resolution import resolve, resolve_invalid_text


def flow_edges(ctx: CheckContext, state: State) -> set[str]:
    """States the flows themselves (not the bot manifest) can move to from `state`."""
    targets: set[str] = set()
    reactions = [b.reaction for b in state.all_buttons() if b.reaction is not None]
    if state.button_list is not None and state.button_list.button.reaction is not None:
        reactions.append(state.button_list.button.reaction)
    for handler in state.inputs.values():
        reactions.append(handler.reaction)
        if handler.invalid is not None:
            reactions.append(handler.invalid)
    if state.fallback is not None:
        reactions.append(state.fallback)
    if state.action is not None:
        reactions.extend(state.action.outcomes.values())
    if _default_applies(ctx, state):
        reactions.append(ctx.flow(state).default)
    for reaction in reactions:
        if reaction.to is not None:
            targets.add(reaction.to)
    return targets


def _default_applies(ctx: CheckContext, state: State) -> bool:
    """Whether some input in `state` falls through to its flow's default."""
    if state.fallback is not None:
        return False
    default = ctx.flow(state).default
    for kind in USER_INPUT_KINDS:
        rule = resolve(ctx.project, state, kind)
        if rule is not None and rule.reaction is default:
            return True
    text = state.inputs.get("text")
    if text is not None and text.validation is not None:
        rule = resolve_invalid_text(ctx.project, state)
        return rule is not None and rule.reaction is default
    return False


def _global_targets(ctx: CheckContext) -> list[str]:
    """Where the bot manifest leads from anywhere: commands and bot-wide handlers."""
    bot = ctx.bot
    if bot is None:
        return []
    reactions = [c.reaction for c in bot.commands.values()] + [h.reaction for h in bot.handlers.values()]
    return [r.to for r in reactions if r.to is not None]


def _graph(ctx: CheckContext) -> dict[str, set[str]]:
    graph = ctx.cache.get("flow_graph")
    if graph is None:
        graph = {name: flow_edges(ctx, state) for name, state in ctx.states.items()}
        ctx.cache["flow_graph"] = graph
    return graph


def reachable_states(ctx: CheckContext) -> set[str] | None:
    """States reachable from the bot's start (None when there is no known start to begin from)."""
    cached = ctx.cache.get("reachable", False)
    if cached is not False:
        return cached
    bot = ctx.bot
    result: set[str] | None = None
    if bot is not None and bot.start in ctx.states:
        graph = _graph(ctx)
        roots = [bot.start] + [t for t in _global_targets(ctx) if t in ctx.states]
        result = set(roots)
        queue = deque(roots)
        while queue:
            for target in graph[queue.popleft()]:
                if target in ctx.states and target not in result:
                    result.add(target)
                    queue.append(target)
    ctx.cache["reachable"] = result
    return result


def check_unreachable(ctx: CheckContext) -> Iterator[Finding]:
    """unreachable-state (warning): no button, input, outcome or command leads to the state from the start."""
    reachable = reachable_states(ctx)
    if reachable is None:
        return
    start = ctx.bot.start if ctx.bot else "?"
    for name, state in ctx.states.items():
        if name not in reachable:
            yield warning(state.position, "unreachable-state",
                          f"state '{name}' cannot be reached from the bot's start '{start}': no button, input, "
                          f"outcome, default or command leads to it")


def check_traps(ctx: CheckContext) -> Iterator[Finding]:
    """trap-state: from a reachable state, the flows offer no way back to the start (only /start would)."""
    reachable = reachable_states(ctx)
    if reachable is None or ctx.bot is None:
        return
    graph = _graph(ctx)
    start = ctx.bot.start
    reverse: dict[str, list[str]] = {name: [] for name in graph}
    escapes: list[str] = [start]
    for source, targets in graph.items():
        for target in targets:
            if target in reverse:
                reverse[target].append(source)
            else:
                escapes.append(source)  # an unknown target is unknown-state's business: assume it leads back
    back = set(escapes)
    queue = deque(escapes)
    while queue:
        for source in reverse[queue.popleft()]:
            if source not in back:
                back.add(source)
                queue.append(source)
    for name, state in ctx.states.items():
        if name in reachable and name not in back:
            yield error(state.position, "trap-state",
                        f"from state '{name}' no button, input, outcome or default leads back to the start "
                        f"'{start}' (only a global command would): give it a way back")
