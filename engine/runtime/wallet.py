"""What the engine needs from a ledger to run `charge:` steps.

Money is integer credits. A charge is two-phase: `hold` before the action,
then `capture` on a success outcome or `release` on a failure, each
idempotent by the hold's key so a retry can never charge twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Hold:
    key: str
    user_id: int
    amount: int


class Wallet(Protocol):
    async def balance(self, user_id: int) -> int: ...

    async def hold(self, user_id: int, amount: int, key: str) -> Hold | None:
        """Reserve `amount`; None when the balance is too low (nothing reserved)."""

    async def capture(self, hold: Hold) -> None: ...

    async def release(self, hold: Hold) -> None: ...


class ChargeUnavailable(RuntimeError):
    """A flow charges but no wallet is configured: refuse to run the paid step."""
