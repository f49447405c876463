"""A fast yes/no answer to "is this file valid against flows.schema.json?".

jsonschema's validator is exact and explains every problem, but walking a
4,000-state bot with it takes seconds. Nearly every file `flowgram check`
reads is valid, so `schema.validate_file` first asks this compiled predicate
and only runs jsonschema (for its precise messages) when the answer is no.

The compiler understands exactly the keywords flows.schema.json uses, with
JSON Schema 2020-12 semantics; given a schema with any other keyword it
refuses (`UnsupportedSchema`), and callers fall back to jsonschema alone.
tests/test_check_fuzz.py checks that both always agree.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

Predicate = Callable[[Any], bool]

# Keywords that only annotate.
_ANNOTATIONS = {"$schema", "$id", "title", "description", "default", "examples", "$comment", "$defs"}


class UnsupportedSchema(ValueError):
    pass


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "number":
        return isinstance(value, (int, float))
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    raise UnsupportedSchema(f"type {kind!r}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Predicate] = {}

    def ref(self, pointer: str) -> Predicate:
        if pointer not in self.refs:
            if not pointer.startswith("#/"):
                raise UnsupportedSchema(f"$ref {pointer!r}")
            target: Any = self.root
            for part in pointer[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            slot: list[Predicate] = []
            self.refs[pointer] = lambda value: slot[0](value)  # allows recursive definitions
            slot.append(self.compile(target))
        return self.refs[pointer]

    def compile(self, schema: Any) -> Predicate:
        if schema is True:
            return lambda value: True
        if schema is False:
            return lambda value: False
        if not isinstance(schema, dict):
            raise UnsupportedSchema(repr(schema))
        checks: list[Predicate] = []
        for keyword, argument in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            method = getattr(self, "_" + keyword.lstrip("$"), None)
            if method is None:
                raise UnsupportedSchema(keyword)
            checks.append(method(argument, schema))
        if len(checks) == 1:
            return checks[0]
        if not checks:
            return lambda value: True

        def every(value: Any) -> bool:
            for check in checks:
                if not check(value):
                    return False
            return True
        return every

    # ---- keywords ---------------------------------------------------------------------------

    def _ref(self, pointer: str, schema: dict) -> Predicate:
        return self.ref(pointer)

    def _type(self, kinds: Any, schema: dict) -> Predicate:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        for kind in kinds:
            _is_type(None, kind)  # raises for unknown types
        simple = {"object": dict, "array": list, "string": str}
        if len(kinds) == 1 and kinds[0] in simple:
            python_type = simple[kinds[0]]
            return lambda value: isinstance(value, python_type)
        return lambda value: any(_is_type(value, kind) for kind in kinds)

    def _pattern(self, pattern: str, schema: dict) -> Predicate:
        search = re.compile(pattern).search
        return lambda value: not isinstance(value, str) or search(value) is not None

    def _minLength(self, limit: int, schema: dict) -> Predicate:
        return lambda value: not isinstance(value, str) or len(value) >= limit

    def _maxLength(self, limit: int, schema: dict) -> Predicate:
        return lambda value: not isinstance(value, str) or len(value) <= limit

    def _minimum(self, limit: float, schema: dict) -> Predicate:
        return lambda value: not _number(value) or value >= limit

    def _maximum(self, limit: float, schema: dict) -> Predicate:
        return lambda value: not _number(value) or value <= limit

    def _minItems(self, limit: int, schema: dict) -> Predicate:
        return lambda value: not isinstance(value, list) or len(value) >= limit

    def _maxItems(self, limit: int, schema: dict) -> Predicate:
        return lambda value: not isinstance(value, list) or len(value) <= limit

    def _items(self, item_schema: Any, schema: dict) -> Predicate:
        if "prefixItems" in schema:
            raise UnsupportedSchema("prefixItems")
        check = self.compile(item_schema)
        return lambda value: not isinstance(value, list) or all(check(item) for item in value)

    def _minProperties(self, limit: int, schema: dict) -> Predicate:
        return lambda value: not isinstance(value, dict) or len(value) >= limit

    def _maxProperties(self, limit: int, schema: dict) -> Predicate:
        return lambda value: not isinstance(value, dict) or len(value) <= limit

    def _required(self, names: list[str], schema: dict) -> Predicate:
        return lambda value: not isinstance(value, dict) or all(name in value for name in names)

    def _dependentRequired(self, dependencies: dict[str, list[str]], schema: dict) -> Predicate:
        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(all(need in value for need in needs) for key, needs in dependencies.items() if key in value)
        return check

    def _properties(self, properties: dict[str, Any], schema: dict) -> Predicate:
        compiled = {name: self.compile(sub) for name, sub in properties.items()}

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for name, item in value.items():
                sub = compiled.get(name)
                if sub is not None and not sub(item):
                    return False
            return True
        return check

    def _patternProperties(self, patterns: dict[str, Any], schema: dict) -> Predicate:
        compiled = [(re.compile(pattern).search, self.compile(sub)) for pattern, sub in patterns.items()]

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(sub(item) for name, item in value.items() for search, sub in compiled
                       if isinstance(name, str) and search(name))
        return check

    def _additionalProperties(self, extra: Any, schema: dict) -> Predicate:
        known = set(schema.get("properties", {}))
        patterns = [re.compile(p).search for p in schema.get("patternProperties", {})]
        sub = self.compile(extra)

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for name, item in value.items():
                if name in known or any(isinstance(name, str) and search(name) for search in patterns):
                    continue
                if not sub(item):
                    return False
            return True
        return check

    def _propertyNames(self, name_schema: Any, schema: dict) -> Predicate:
        sub = self.compile(name_schema)
        return lambda value: not isinstance(value, dict) or all(sub(name) for name in value)

    def _anyOf(self, options: list[Any], schema: dict) -> Predicate:
        compiled = [self.compile(option) for option in options]
        return lambda value: any(check(value) for check in compiled)

    def _oneOf(self, options: list[Any], schema: dict) -> Predicate:
        compiled = [self.compile(option) for option in options]
        return lambda value: sum(1 for check in compiled if check(value)) == 1

    def _allOf(self, options: list[Any], schema: dict) -> Predicate:
        compiled = [self.compile(option) for option in options]
        return lambda value: all(check(value) for check in compiled)

    def _not(self, option: Any, schema: dict) -> Predicate:
        check = self.compile(option)
        return lambda value: not check(value)


def compile_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Predicate:
    """A predicate equivalent to validating against `schema` ($refs resolve in `root`)."""
    return _Compiler(root if root is not None else schema).compile(schema)
