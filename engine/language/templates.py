"""`{var}` templates in texts and values.

The syntax is a strict subset of Python's str.format: `{name}` or
`{dotted.name}`, `{{` and `}}` for literal braces. Nothing else (no format
specs, no indexing) so every placeholder can be checked statically.
"""

from __future__ import annotations

import re
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
    current: Any = values
    for part in name.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return None
    return current


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill placeholders; missing values render as empty text (the checker prevents unknown names)."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        if match.group(1) is None:
            return token
        value = lookup(values, match.group(1))
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(replace, template)


def render_value(value: Any, values: Mapping[str, Any]) -> Any:
    """Render a `set:`/`with:` value: a string that is exactly one placeholder keeps its type."""
    if isinstance(value, str):
        whole = re.fullmatch(r"\{([a-z_][a-z0-9_.]*)\}", value)
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
