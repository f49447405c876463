"""Button conditions (`if: balance >= price`): a tiny, safe expression language.

Parsed with Python's `ast` and restricted to names, constants, comparisons and
and/or/not, so it can be checked statically and never executes code.
"""

from __future__ import annotations

import ast
import operator
from functools import lru_cache
from typing import Any, Mapping

from engine.language.templates import lookup

_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}


class ConditionError(ValueError):
    pass


def parse_condition(source: str) -> ast.Expression:
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"cannot parse '{source}': {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(
            node,
            (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Name,
             ast.Attribute, ast.Constant, ast.Load, ast.Tuple, ast.List, *_COMPARE),
        ):
            raise ConditionError(f"'{source}' may only use names, constants, comparisons, and, or, not")
    return tree


def condition_names(source: str) -> list[str]:
    """Dotted variable names an expression reads."""
    names = []
    for node in ast.walk(parse_condition(source)):
        if isinstance(node, (ast.Name, ast.Attribute)):
            dotted = _dotted(node)
            if dotted and not any(dotted.startswith(n + ".") for n in names):
                names.append(dotted)
    # Keep only outermost dotted names (user.id, not user).
    return [n for n in names if not any(other != n and other.startswith(n + ".") for other in names)]


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def evaluate(source: str, values: Mapping[str, Any]) -> bool:
    """Evaluate a condition; a comparison between incompatible values is false."""
    return bool(_eval(_parsed(source).body, values))


# Conditions come from the flows (a bounded set): parse each once, not on every render.
# The tree is only read, never changed, so sharing it is safe.
_parsed = lru_cache(maxsize=4096)(parse_condition)


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Name, ast.Attribute)):
        return lookup(values, _dotted(node) or "")
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_eval(item, values) for item in node.elts]
    if isinstance(node, ast.BoolOp):
        results = (_eval(item, values) for item in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        return not _eval(node.operand, values)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, values)
            try:
                if not _COMPARE[type(op)](left, right):
                    return False
            except TypeError:
                return False
            left = right
        return True
    raise ConditionError("unsupported expression")
