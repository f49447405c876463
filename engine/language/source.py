"""Read YAML while keeping the FILE:LINE:COL of every node.

PyYAML's composer gives marks on nodes; we turn the node tree into plain
Python values plus a map from each value's path to its position. Duplicate
mapping keys are reported (PyYAML would silently keep the last one), and any
unreadable input becomes a finding instead of an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re

import yaml

from engine.language.findings import Finding, error
from engine.language.model import Position

PathKey = tuple[str | int, ...]

# Enough for any hand-written flow; protects the checker from huge inputs.
MAX_FILE_BYTES = 5 * 1024 * 1024


class FlowLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false.

    YAML 1.1 reads `on`, `yes`, `no`, `off` as booleans, which would turn the
    `on:` key and a state named `no` into True/False.
    """


FlowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    FlowLoader.yaml_implicit_resolvers.setdefault(_first, []).insert(
        0, ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"))
    )

if getattr(yaml, "__with_libyaml__", False):
    class _FlowCLoader(yaml.CSafeLoader):  # type: ignore[name-defined,misc]
        """libyaml's parser (3x faster, same node marks) with FlowLoader's resolvers."""

    _FlowCLoader.yaml_implicit_resolvers = FlowLoader.yaml_implicit_resolvers
    COMPOSER: type = _FlowCLoader
else:  # pragma: no cover - PyYAML built without libyaml
    COMPOSER = FlowLoader


@dataclass
class SourceFile:
    """One parsed YAML document and where each of its values came from."""

    path: str
    data: Any
    positions: dict[PathKey, Position] = field(default_factory=dict)

    def pos(self, path: PathKey) -> Position:
        """Position of the value at `path`, or of its nearest enclosing value."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, Position(self.path, 1, 1))

    def key_pos(self, path: PathKey) -> Position:
        """Position of the mapping key that introduces the value at `path`."""
        return self.positions.get(("@key",) + path) or self.pos(path)


class _Converter:
    def __init__(self, path: str) -> None:
        self.path = path
        self.positions: dict[PathKey, Position] = {}
        self.findings: list[Finding] = []
        self._scalars = FlowLoader("")
        self._active: set[int] = set()

    def mark(self, node: yaml.Node) -> Position:
        return Position(self.path, node.start_mark.line + 1, node.start_mark.column + 1)

    def convert(self, node: yaml.Node, path: PathKey) -> Any:
        self.positions[path] = self.mark(node)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "tag:yaml.org,2002:str":
                return node.value  # what SafeConstructor would build, without its bookkeeping
            return self._scalars.construct_object(node, deep=True)
        if id(node) in self._active:  # an alias that contains itself
            self.findings.append(error(self.mark(node), "yaml-syntax", "recursive YAML alias"))
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.findings.append(
                        error(self.mark(key_node), "yaml-syntax", "merge keys ('<<') are not supported; write the keys out")
                    )
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    self.findings.append(error(self.mark(key_node), "yaml-syntax", "mapping keys must be plain scalars"))
                    continue
                key = str(key_node.value)  # keys are names: never numbers or booleans
                if key in result:
                    first = self.positions[("@key",) + path + (key,)]
                    self.findings.append(
                        error(self.mark(key_node), "duplicate-key", f"key '{key}' is repeated (first at line {first.line})")
                    )
                    continue
                self.positions[("@key",) + path + (key,)] = self.mark(key_node)
                result[key] = self.convert(value_node, path + (key,))
            return result
        finally:
            self._active.discard(id(node))


def parse_yaml(text: str, path: str) -> tuple[SourceFile | None, list[Finding]]:
    """Parse one YAML document; return it with positions, or findings saying why not."""
    start = Position(path, 1, 1)
    try:
        nodes = list(yaml.compose_all(text, Loader=COMPOSER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Position(path, mark.line + 1, mark.column + 1) if mark else start
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part) or "invalid YAML"
        return None, [error(where, "yaml-syntax", problem)]
    except yaml.YAMLError as exc:  # e.g. control characters in the stream
        return None, [error(start, "yaml-syntax", str(exc).splitlines()[0])]
    except RecursionError:
        return None, [error(start, "yaml-syntax", "the document is nested too deeply")]
    nodes = [node for node in nodes if node is not None]
    if not nodes:
        return None, [error(start, "empty-file", "the file has no content")]
    if len(nodes) > 1:
        second = nodes[1]
        where = Position(path, second.start_mark.line + 1, 1)
        return None, [error(where, "yaml-syntax", "one document per file: remove the second '---' document")]
    converter = _Converter(path)
    try:
        data = converter.convert(nodes[0], ())
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        return None, [error(start, "yaml-syntax", f"cannot read a value: {exc}")]
    except RecursionError:
        return None, [error(start, "yaml-syntax", "the document is nested too deeply")]
    return SourceFile(path, data, converter.positions), converter.findings


def read_yaml_file(path: Path, shown_as: str | None = None) -> tuple[SourceFile | None, list[Finding]]:
    """Read and parse a file; unreadable or binary content is a finding, not an exception."""
    name = shown_as or str(path)
    start = Position(name, 1, 1)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [error(start, "unreadable-file", f"cannot read the file: {exc.strerror or exc}")]
    if len(raw) > MAX_FILE_BYTES:
        return None, [error(start, "unreadable-file", f"the file is larger than {MAX_FILE_BYTES // 1024 // 1024} MiB")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [error(Position(name, line, 1), "unreadable-file", "the file is not UTF-8 text")]
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        return None, [error(Position(name, line, 1), "unreadable-file", "the file contains NUL bytes: not a text file")]
    return parse_yaml(text, name)
