"""Draw the flows as Mermaid or Graphviz DOT: every transition, labelled by what causes it.

Product staff paste the Mermaid text into a pull request to review a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from engine.language.model import Project, Reaction, State


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    kind: str  # button | input | outcome | fallback | default | command


def edges(project: Project) -> Iterator[Edge]:
    """Every transition of the project, in a stable order."""
    for state in project.states.values():
        yield from _state_edges(project, state)
    if project.bot is not None:
        for command in project.bot.commands.values():
            if command.reaction.to:
                yield Edge("*", command.reaction.to, command.name, "command")
        for kind, handler in project.bot.handlers.items():
            if handler.reaction.to:
                yield Edge("*", handler.reaction.to, kind, "input")


def _state_edges(project: Project, state: State) -> Iterator[Edge]:
    def edge(reaction: Reaction | None, label: str, kind: str) -> Iterator[Edge]:
        if reaction is not None and reaction.to is not None:
            yield Edge(state.name, reaction.to, label, kind)

    for button in state.all_buttons():
        yield from edge(button.reaction, f"[{button.text.raw}]", "button")
    if state.button_list is not None:
        yield from edge(state.button_list.button.reaction, f"[each of {state.button_list.action}]", "button")
    for kind, handler in state.inputs.items():
        yield from edge(handler.reaction, kind, "input")
        yield from edge(handler.invalid, f"{kind} invalid", "input")
    if state.action is not None:
        for outcome, reaction in state.action.outcomes.items():
            yield from edge(reaction, f"{state.action.name}: {outcome}", "outcome")
    yield from edge(state.fallback, "fallback", "fallback")
    flow = project.flow_of(state.name)
    if state.fallback is None and flow.default.to is not None and flow.default.to != state.name:
        yield Edge(state.name, flow.default.to, "default", "default")


def _node_id(name: str) -> str:
    return "start" if name == "*" else name.replace(".", "__")


def _escape(label: str) -> str:
    return label.replace('"', "#quot;")


def to_mermaid(project: Project) -> str:
    lines = ["flowchart TD"]
    for flow in project.flows.values():
        lines.append(f"  subgraph {flow.name}")
        for state in flow.states.values():
            shape = ("{{", "}}") if state.action is not None else ("[", "]")
            label = state.short_name + (f" · {state.action.name}" if state.action else "")
            lines.append(f'    {_node_id(state.name)}{shape[0]}"{_escape(label)}"{shape[1]}')
        lines.append("  end")
    lines.append('  start(("any state"))')
    if project.bot is not None:
        lines.append(f"  new((new user)) --> {_node_id(project.bot.start)}")
    for e in edges(project):
        arrow = "-.->" if e.kind in ("fallback", "default", "command") else "-->"
        lines.append(f'  {_node_id(e.source)} {arrow}|"{_escape(e.label)}"| {_node_id(e.target)}')
    return "\n".join(lines) + "\n"


def _dot_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(project: Project) -> str:
    lines = ["digraph flowgram {", "  rankdir=TB;", "  node [shape=box, style=rounded];"]
    for flow in project.flows.values():
        lines.append(f"  subgraph {_dot_quote('cluster_' + flow.name)} {{")
        lines.append(f"    label={_dot_quote(flow.name)};")
        for state in flow.states.values():
            shape = "hexagon" if state.action is not None else "box"
            label = state.short_name + (f"\\n{state.action.name}" if state.action else "")
            lines.append(f"    {_dot_quote(state.name)} [label={_dot_quote(label)}, shape={shape}];")
        lines.append("  }")
    lines.append('  "*" [label="any state", shape=ellipse];')
    if project.bot is not None:
        lines.append(f'  "new user" [shape=ellipse]; "new user" -> {_dot_quote(project.bot.start)};')
    for e in edges(project):
        style = ", style=dashed" if e.kind in ("fallback", "default", "command") else ""
        lines.append(f"  {_dot_quote(e.source)} -> {_dot_quote(e.target)} [label={_dot_quote(e.label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
