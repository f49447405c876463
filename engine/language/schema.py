"""Validate a parsed file against ``flows.schema.json`` and say precisely where it is wrong.

The schema is the single description of the language's shape (editors use it
for completion too). We pick the sub-schema by the file's kind key (`bot`,
`flow`, `locale`) so a mistake gets a message about that kind, not a generic
"is not valid under any of the given schemas".
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Callable

import jsonschema_rs

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from engine.language.findings import Finding, error
from engine.language.source import SourceFile

FILE_KINDS = ("bot", "flow", "locale")


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return json.loads(resources.files("engine.language").joinpath("flows.schema.json").read_text("utf-8"))


@lru_cache(maxsize=None)
def _validator(kind: str) -> Draft202012Validator:
    schema = load_schema()
    return Draft202012Validator({"$ref": f"#/$defs/{kind}File", "$defs": schema["$defs"]})


@lru_cache(maxsize=None)
def _fast_check(kind: str) -> Callable[[Any], bool]:
    """A yes/no validity check from jsonschema-rs, about 100x faster than jsonschema.

    Nearly every file is valid, so jsonschema (whose errors we turn into precise
    messages) only runs for files this says are invalid.
    """
    schema = load_schema()
    return jsonschema_rs.validator_for(
        {"$schema": schema["$schema"], "$ref": f"#/$defs/{kind}File", "$defs": schema["$defs"]}
    ).is_valid


def file_kind(data: Any) -> str | None:
    if isinstance(data, dict):
        for kind in FILE_KINDS:
            if kind in data:
                return kind
    return None


def validate_file(source: SourceFile) -> list[Finding]:
    """All shape problems of one file, one finding per place."""
    kind = file_kind(source.data)
    if kind is None:
        return [
            error(
                source.pos(()),
                "unknown-file-kind",
                "a flowgram file starts with one of the keys 'bot:', 'flow:' or 'locale:'",
            )
        ]
    if _fast_check(kind)(source.data):
        return []  # valid: skip jsonschema, which is only needed to explain problems
    findings: list[Finding] = []
    seen: set[tuple[Any, ...]] = set()
    for problem in sorted(_validator(kind).iter_errors(source.data), key=lambda e: list(map(str, e.absolute_path))):
        path, message = _describe(problem)
        if path in seen:
            continue
        seen.add(path)
        findings.append(error(_position(source, problem, path), "schema", message))
    return findings


def _position(source: SourceFile, problem: ValidationError, path: tuple[Any, ...]):
    if problem.validator == "additionalProperties" and isinstance(problem.instance, dict):
        allowed = problem.schema.get("properties", {})
        patterns = problem.schema.get("patternProperties", {})
        for key in problem.instance:
            if key not in allowed and not any(re.search(p, key) for p in patterns):
                return source.key_pos(path + (key,))
    if problem.validator == "propertyNames":
        return source.key_pos(path + (problem.instance,)) if not isinstance(problem.instance, dict) else source.pos(path)
    return source.pos(path)


def _where(path: tuple[Any, ...]) -> str:
    if not path:
        return "the file"
    return "'" + ".".join(str(part) for part in path) + "'"


def _describe(problem: ValidationError) -> tuple[tuple[Any, ...], str]:
    """Turn a jsonschema error into (path, human message), descending into oneOf/anyOf."""
    if problem.validator in ("oneOf", "anyOf") and problem.context:
        # A value that is the right type for one branch: report that branch's problem.
        deepest = best_match(problem.context, key=_relevance)
        if deepest is not None and _is_specific(deepest):
            return _describe(deepest)
    path = tuple(problem.absolute_path)
    where = _where(path)
    validator = problem.validator
    if validator == "required":
        missing = problem.message.split("'")[1] if "'" in problem.message else problem.message
        return path, f"{where} is missing the required key '{missing}'"
    if validator == "additionalProperties":
        allowed = sorted(problem.schema.get("properties", {}))
        unknown = [k for k in problem.instance if k not in problem.schema.get("properties", {})]
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return path, f"unknown key '{unknown[0] if unknown else '?'}' in {where}{hint}"
    if validator == "type":
        return path, f"{where} must be {_type_name(problem.validator_value)}, not {_type_name(_json_type(problem.instance))}"
    if validator == "pattern":
        return path, f"{where} has the value {problem.instance!r}, which does not match {problem.validator_value}"
    if validator in ("minLength", "minItems", "minProperties") and not problem.instance:
        return path, f"{where} must not be empty"
    if validator == "propertyNames":
        return path, f"{problem.instance!r} is not a valid name in {where}: {problem.message}"
    if validator == "dependentRequired":
        return path, f"{where}: {problem.message}"
    if validator in ("oneOf", "anyOf", "not"):
        return path, f"{where} is not a valid {_schema_title(problem)}"
    return path, f"{where}: {problem.message}"


def _relevance(problem: ValidationError) -> tuple[int, int]:
    # Prefer errors deeper in the document and not about the value's type.
    return (len(problem.absolute_path), 0 if problem.validator == "type" else 1)


def _is_specific(problem: ValidationError) -> bool:
    return problem.validator != "type" or bool(problem.relative_path)


def _schema_title(problem: ValidationError) -> str:
    ref = str(problem.schema.get("$ref", "")).rsplit("/", 1)[-1]
    return {"reaction": "reaction (a state name, or a mapping with to/say/set)"}.get(ref, "value here")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_name(kind: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
             "number": "a number", "boolean": "true or false", "null": "empty"}
    if isinstance(kind, list):
        return " or ".join(names.get(k, k) for k in kind)
    return names.get(kind, str(kind))
