"""`{var}` templates in texts and values.

The syntax is a strict subset of Python's str.format: `{name}` or
`{dotted.name}`, `{{` and `}}` for literal braces. Nothing else (no format
specs, no indexing) so every placeholder can be checked statically.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Mapping

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$")


class TemplateError(ValueError):
    pass


def placeholders(template: str) -> list[str]:
    """Names used by `template`; raises TemplateError on malformed braces."""
    names = []
    for match in _PLACEHOLDER.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise TemplateError(f"unbalanced '{token}' (write '{token * 2}' for a literal brace)")
        if not _NAME.match(name):
            raise TemplateError(f"'{{{name}}}' is not a variable name (use {{name}} or {{dotted.name}})")
        names.append(name)
    return names


def lookup(values: Mapping[str, Any], name: str) -> Any:
    """Resolve a dotted name in nested mappings; a missing name is None."""
    return _lookup_parts(values, _parts(name))


@lru_cache(maxsize=4096)
def _parts(name: str) -> tuple[str, ...]:
    return tuple(name.split("."))


def _lookup_parts(values: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    current: Any = values
    for part in parts:
        if type(current) is dict or isinstance(current, Mapping):
            if part not in current:
                return None
            current = current[part]
        else:
            return None
    return current


# A compiled template: literal text, or a tuple alternating literal text (str) and the
# dotted parts of a placeholder (tuple). Templates come from the flows, so the cache
# holds a bounded set; compiling once makes rendering a join instead of a regex pass.
_Compiled = str | tuple[str | tuple[str, ...], ...]


@lru_cache(maxsize=8192)
def _compile(template: str) -> _Compiled:
    pieces: list[str | tuple[str, ...]] = []
    literal: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        literal.append(template[last:match.start()])
        last = match.end()
        token = match.group(0)
        if token == "{{":
            literal.append("{")
        elif token == "}}":
            literal.append("}")
        elif match.group(1) is None:
            literal.append(token)  # a stray brace stays as written (the checker reports it)
        else:
            pieces.append("".join(literal))
            pieces.append(tuple(match.group(1).split(".")))
            literal = []
    literal.append(template[last:])
    if not pieces:
        return "".join(literal)
    pieces.append("".join(literal))
    return tuple(pieces)


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill placeholders; missing values render as empty text (the checker prevents unknown names)."""
    compiled = _compile(template)
    if type(compiled) is str:
        return compiled
    out = []
    for piece in compiled:
        if type(piece) is str:
            out.append(piece)
        else:
            value = _lookup_parts(values, piece)  # type: ignore[arg-type]
            if value is not None:
                out.append(str(value))
    return "".join(out)


_WHOLE = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")


def render_value(value: Any, values: Mapping[str, Any]) -> Any:
    """Render a `set:`/`with:` value: a string that is exactly one placeholder keeps its type."""
    if isinstance(value, str):
        whole = _WHOLE.fullmatch(value)
        if whole:
            return lookup(values, whole.group(1))
        return render(value, values)
    if isinstance(value, dict):
        return {key: render_value(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, values) for item in value]
    return value


def value_placeholders(value: Any) -> list[str]:
    """All placeholder names inside a nested `with:`/`set:` value."""
    if isinstance(value, str):
        return placeholders(value)
    if isinstance(value, dict):
        return [name for item in value.values() for name in value_placeholders(item)]
    if isinstance(value, list):
        return [name for item in value for name in value_placeholders(item)]
    return []
