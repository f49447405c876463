"""Turn schema-valid YAML data into the typed model, resolving names and keeping positions.

The compiler trusts the schema for shape, so it only qualifies names
(`menu` -> `demo.menu`), attaches positions, and computes each flow's version.
Meaning (do references exist? is anything silent?) is the checks' business.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from engine.language.model import (
    Action,
    Bot,
    Button,
    ButtonList,
    Command,
    Flow,
    InputHandler,
    Locale,
    Media,
    Reaction,
    State,
    Text,
    TextValidation,
    Variable,
)
from engine.language.source import PathKey, SourceFile


def qualify(flow: str, ref: str) -> str:
    return ref if "." in ref else f"{flow}.{ref}"


def flow_version(data: Any) -> str:
    """A short hash of a flow's content: buttons rendered by another version are stale."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:6]


class _FileCompiler:
    def __init__(self, source: SourceFile, flow: str | None) -> None:
        self.source = source
        self.flow = flow

    def text(self, value: str, path: PathKey) -> Text:
        return Text(value, self.source.pos(path))

    def reaction(self, value: Any, path: PathKey) -> Reaction:
        position = self.source.pos(path)
        if isinstance(value, str):
            return Reaction(position, to=self.ref(value), to_position=position)
        to = value.get("to")
        values = dict(value.get("set", {}))
        return Reaction(
            position,
            to=self.ref(to) if to else None,
            say=self.text(value["say"], path + ("say",)) if "say" in value else None,
            set=values,
            to_position=self.source.pos(path + ("to",)) if to else None,
            set_positions={name: self.source.pos(path + ("set", name)) for name in values},
            set_key_positions={name: self.source.key_pos(path + ("set", name)) for name in values},
        )

    def subtree_positions(self, value: Any, path: PathKey) -> dict[tuple[Any, ...], Position]:
        """Positions of everything inside `value` (found at `path`), keyed relative to it."""
        positions = self.source.positions
        found: dict[tuple[Any, ...], Position] = {}
        stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
        while stack:
            item, relative = stack.pop()
            if (where := positions.get(path + relative)) is not None:
                found[relative] = where
            if relative and (where := positions.get(("@key",) + path + relative)) is not None:
                found[("@key",) + relative] = where
            if isinstance(item, dict):
                stack.extend((child, relative + (key,)) for key, child in item.items())
            elif isinstance(item, list):
                stack.extend((child, relative + (index,)) for index, child in enumerate(item))
        return found

    def ref(self, value: str) -> str:
        return qualify(self.flow, value) if self.flow else value

    def button(self, value: dict[str, Any], path: PathKey, row: int = 0, column: int = 0) -> Button:
        url = value.get("url")
        return Button(
            text=self.text(value["text"], path + ("text",)),
            position=self.source.pos(path),
            reaction=None if url else self.reaction({k: v for k, v in value.items() if k in ("to", "say", "set")}, path),
            url=url,
            condition=value.get("if"),
            row=row,
            column=column,
            condition_position=self.source.pos(path + ("if",)) if "if" in value else None,
        )

    def input_handler(self, kind: str, value: Any, path: PathKey) -> InputHandler:
        position = self.source.key_pos(path)
        if kind == "text" and isinstance(value, dict):
            validate = value.get("validate")
            return InputHandler(
                kind,
                self.reaction({k: v for k, v in value.items() if k in ("to", "say", "set")}, path),
                position,
                validation=TextValidation(
                    **validate,
                    position=self.source.pos(path + ("validate",)),
                    pattern_position=self.source.pos(path + ("validate", "pattern")) if "pattern" in validate else None,
                ) if validate else None,
                invalid=self.reaction(value["invalid"], path + ("invalid",)) if "invalid" in value else None,
            )
        return InputHandler(kind, self.reaction(value, path), position)

    def state(self, name: str, value: dict[str, Any], path: PathKey) -> State:
        assert self.flow is not None
        state = State(name=f"{self.flow}.{name}", flow=self.flow, position=self.source.key_pos(path))
        if "say" in value:
            state.say = self.text(value["say"], path + ("say",))
        if "media" in value:
            (kind, source), = value["media"].items()
            state.media = Media(kind, source, self.source.pos(path + ("media", kind)))
        for r, row in enumerate(value.get("buttons", [])):
            state.buttons.append(
                [self.button(b, path + ("buttons", r, c), r, c) for c, b in enumerate(row)]
            )
        if "list" in value:
            spec = value["list"]
            lpath = path + ("list",)
            state.button_list = ButtonList(
                action=spec["from"],
                params=dict(spec.get("with", {})),
                button=self.button(spec["button"], lpath + ("button",)),
                columns=spec.get("columns", 1),
                page_size=spec.get("page_size", 8),
                position=self.source.key_pos(lpath),
                action_position=self.source.pos(lpath + ("from",)),
                param_positions=self.subtree_positions(spec.get("with", {}), lpath + ("with",)),
            )
        for kind, handler in value.get("on", {}).items():
            state.inputs[kind] = self.input_handler(kind, handler, path + ("on", kind))
        if "fallback" in value:
            state.fallback = self.reaction(value["fallback"], path + ("fallback",))
        if "do" in value:
            state.action = Action(
                name=value["do"],
                params=dict(value.get("with", {})),
                outcomes={
                    outcome: self.reaction(target, path + ("outcomes", outcome))
                    for outcome, target in value.get("outcomes", {}).items()
                },
                position=self.source.pos(path + ("do",)),
                params_position=self.source.pos(path + ("with",) if "with" in value else path + ("do",)),
                charge=value.get("charge"),
                charge_position=self.source.pos(path + ("charge",)) if "charge" in value else None,
                param_positions=self.subtree_positions(value.get("with", {}), path + ("with",)),
            )
        return state


def compile_flow(source: SourceFile) -> tuple[Flow, list[Variable]]:
    data = source.data
    name = data["flow"]
    compiler = _FileCompiler(source, name)
    states = {
        f"{name}.{state_name}": compiler.state(state_name, state_data, ("states", state_name))
        for state_name, state_data in data["states"].items()
    }
    flow = Flow(
        name=name,
        file=source.path,
        start=qualify(name, data["start"]),
        start_position=source.pos(("start",)),
        states=states,
        default=compiler.reaction(data["default"], ("default",)),
        position=source.pos(("flow",)),
        version=flow_version(data),
    )
    variables = [
        Variable(var, default, source.key_pos(("vars", var))) for var, default in data.get("vars", {}).items()
    ]
    return flow, variables


def compile_bot(source: SourceFile) -> Bot:
    data = source.data
    compiler = _FileCompiler(source, None)
    commands = {}
    for command, value in data["commands"].items():
        path = ("commands", command)
        reaction_data = value if isinstance(value, str) else {k: v for k, v in value.items() if k != "description"}
        commands[command] = Command(
            name=command,
            reaction=compiler.reaction(reaction_data, path),
            description=None if isinstance(value, str) else value.get("description"),
            position=source.key_pos(path),
        )
    handlers = {
        kind: compiler.input_handler(kind, value, ("on", kind)) for kind, value in data.get("on", {}).items()
    }
    return Bot(
        name=data["bot"],
        file=source.path,
        start=data["start"],
        start_position=source.pos(("start",)),
        default_locale=data["default_locale"],
        commands=commands,
        handlers=handlers,
        position=source.pos(("bot",)),
        default_locale_position=source.pos(("default_locale",)),
        commands_position=source.key_pos(("commands",)),
    )


def compile_locale(source: SourceFile) -> Locale:
    messages: dict[str, str] = {}
    positions = {}

    def walk(tree: dict[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(value, prefix + (key,))
            else:
                dotted = ".".join(prefix + (key,))
                messages[dotted] = value
                positions[dotted] = source.pos(("messages",) + prefix + (key,))

    walk(source.data["messages"], ())
    return Locale(source.data["locale"], source.path, messages, positions, source.pos(("locale",)))
