"""Actions: side effects with declared outcomes, found through a registry."""

from engine.actions.registry import ActionRegistry, load_registry
from engine.actions.spec import INSUFFICIENT_FUNDS, ActionResult, ActionSpec, JobResult, OutcomeKind, RetryLater

__all__ = [
    "INSUFFICIENT_FUNDS", "ActionRegistry", "ActionResult", "ActionSpec", "JobResult", "OutcomeKind", "RetryLater",
    "load_registry",
]
