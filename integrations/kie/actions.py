"""The Kie.ai actions as the checker and the engine see them.

The client, durable polling jobs and delivery are not built yet: until they
are, running `kie.generate` ends in its `failed` outcome (so a charge is
released and the user is told), never in silence or a lost hold.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.actions.context import ActionContext
from engine.actions.spec import ActionResult, ActionSpec, OutcomeKind

log = logging.getLogger(__name__)


async def _generate(context: ActionContext, params: dict[str, Any]) -> ActionResult:
    log.error("kie.generate is not available in this build")  # the log line carries the correlation id
    return ActionResult("failed", outputs={"error": "generation is not available yet"})


def actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="kie.generate",
            handler=_generate,
            description="Create a Kie.ai task for a model and deliver its result.",
            params={
                "type": "object",
                "properties": {
                    "model": {"type": "string", "minLength": 1},
                    "input": {"type": "object"},
                },
                "required": ["model", "input"],
                "additionalProperties": False,
            },
            outcomes={
                "success": OutcomeKind.SUCCESS,
                "failed": OutcomeKind.FAILURE,
                "rejected": OutcomeKind.FAILURE,
                "timeout": OutcomeKind.FAILURE,
            },
            outputs=("result_url", "error"),
            chargeable=True,
            background=True,
        ),
    ]
