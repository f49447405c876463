"""What an action declares, so the checker can catch misuse before the bot runs.

An action is a side effect a state runs on entry (`do: kie.generate`). It
declares a JSON Schema for its parameters, the outcomes it can end in (each a
success or a failure, so a charge knows whether to capture or release), the
variables it sets, and for list actions the fields of each item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

if TYPE_CHECKING:
    from engine.actions.context import ActionContext


class OutcomeKind(str, Enum):
    SUCCESS = "success"
    FAILURE = "failure"


# Added to every charged step: the hold could not be placed, nothing was taken.
INSUFFICIENT_FUNDS = "insufficient_funds"


@dataclass(frozen=True)
class ActionResult:
    """How an action ended: one of its declared outcomes, and the variables it produced.

    `outcome=None` means "still running in the background": the conversation
    stays in the state until the durable job reports the outcome.
    """

    outcome: str | None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    items: list[Mapping[str, Any]] | None = None  # list actions: one mapping per button

    @classmethod
    def pending(cls) -> "ActionResult":
        return cls(outcome=None)


ActionHandler = Callable[["ActionContext", dict[str, Any]], Awaitable[ActionResult]]


@dataclass(frozen=True)
class JobResult:
    """How a background job ended: the outcome of the action that started it."""

    outcome: str
    outputs: Mapping[str, Any] = field(default_factory=dict)


class RetryLater(Exception):
    """Raised by a job handler to run the job again after `delay` seconds (e.g. still generating)."""

    def __init__(self, delay: float, reason: str = "not finished yet") -> None:
        super().__init__(reason)
        self.delay = delay


# A job handler gets the job and the engine's tools; it returns a JobResult or raises RetryLater.
JobHandler = Callable[[Any], Awaitable[JobResult]]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    handler: ActionHandler
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    outcomes: Mapping[str, OutcomeKind] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    item_fields: tuple[str, ...] | None = None  # set for actions that feed a `list:`
    chargeable: bool = False
    # May end with ActionResult.pending() and report its outcome later from a durable job,
    # so the state running it must say something while the user waits.
    background: bool = False
    # Durable job kinds this action enqueues, with their handlers (run by the job runner).
    jobs: Mapping[str, JobHandler] = field(default_factory=dict)

    @property
    def is_list(self) -> bool:
        return self.item_fields is not None

    def outcomes_with_charge(self, charged: bool) -> dict[str, OutcomeKind]:
        outcomes = dict(self.outcomes)
        if charged:
            outcomes[INSUFFICIENT_FUNDS] = OutcomeKind.FAILURE
        return outcomes
