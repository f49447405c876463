"""Actions every bot has, with no integration installed."""

from __future__ import annotations

from typing import Any

from engine.actions.context import ActionContext
from engine.actions.spec import ActionResult, ActionSpec


async def _static_items(context: ActionContext, params: dict[str, Any]) -> ActionResult:
    return ActionResult("ok", items=list(params["items"]))


def builtin_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="list.items",
            handler=_static_items,
            description="A button list from items written in the flow (id, title, and an optional note).",
            params={
                "type": "object",
                "properties": {
                    "items": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {"id": {"type": ["string", "integer"]}, "title": {"type": "string"},
                                           "note": {"type": "string"}},
                            "required": ["id", "title"],
                            "additionalProperties": False,
                        },
                    }
                },
                "required": ["items"],
                "additionalProperties": False,
            },
            item_fields=("id", "title", "note"),
        ),
    ]
