"""Ledger actions over the engine's storage (integer credits, idempotent by key)."""

from __future__ import annotations

from typing import Any

from engine.actions.context import ActionContext
from engine.actions.spec import ActionResult, ActionSpec, OutcomeKind


async def _balance(context: ActionContext, params: dict[str, Any]) -> ActionResult:
    return ActionResult("ok", outputs={"balance": await context.storage.ledger_balance(context.user_id)})


async def _grant(context: ActionContext, params: dict[str, Any]) -> ActionResult:
    granted = await context.storage.ledger_credit(
        context.user_id, int(params["amount"]), key=f"grant:{context.user_id}:{params['key']}", reason=params["reason"]
    )
    balance = await context.storage.ledger_balance(context.user_id)
    return ActionResult("granted" if granted else "already_granted", outputs={"balance": balance})


def actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="ledger.balance",
            handler=_balance,
            description="Read the user's available credits into {balance}.",
            params={"type": "object", "additionalProperties": False},
            outcomes={"ok": OutcomeKind.SUCCESS},
            outputs=("balance",),
        ),
        ActionSpec(
            name="ledger.grant",
            handler=_grant,
            description="Credit the user once per key (a welcome bonus, a promo code).",
            params={
                "type": "object",
                "properties": {
                    "amount": {"type": "integer", "minimum": 1},
                    "key": {"type": "string", "minLength": 1},
                    "reason": {"type": "string", "minLength": 1},
                },
                "required": ["amount", "key", "reason"],
                "additionalProperties": False,
            },
            outcomes={"granted": OutcomeKind.SUCCESS, "already_granted": OutcomeKind.SUCCESS},
            outputs=("balance",),
        ),
    ]
