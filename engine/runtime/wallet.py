"""What the engine needs from a ledger to run `charge:` steps.

Money is integer credits. A charge is two-phase: `hold` before the action,
then `capture` on a success outcome or `release` on a failure, each
idempotent by the hold's key so a retry can never charge twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from engine.storage import Storage

log = logging.getLogger(__name__)

# How many times one step's charge may be held anew after a release (see StorageWallet.hold).
MAX_ATTEMPTS = 20


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


class StorageWallet:
    """The :class:`Wallet` over the storage ledger (``Storage.ledger_*``): the runtime's default.

    The hold's key is the ledger key, so a replayed update holds, captures and releases
    the same credits at most once; if that hold was already released, the step running
    again holds anew as ``<key>#2``, ``#3``... (it is one more attempt, charged on its
    own success). A charge of 0 is free: the step runs and nothing is written to the
    ledger. A negative or non-integer charge raises ``ValueError``.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def __repr__(self) -> str:
        return f"<StorageWallet {self.storage!r}>"

    async def balance(self, user_id: int) -> int:
        return await self.storage.ledger_balance(user_id)

    async def hold(self, user_id: int, amount: int, key: str) -> Hold | None:
        if amount == 0 and not isinstance(amount, bool):
            log.info("charge of 0 credits for user %s (%s): nothing to hold", user_id, key)
            return Hold(key=key, user_id=user_id, amount=0)
        attempt = key
        for number in range(2, MAX_ATTEMPTS + 2):
            if not await self.storage.ledger_hold(user_id, amount, key=attempt):
                return None
            # A repeated key answers as it did first. Still held: this is a replay of an
            # interrupted step; continue with that hold. Captured: it was paid for once
            # already. Released: that attempt ended and was refunded (a failure or a
            # cancellation before the conversation was saved), so the step now running
            # again must hold anew, or its capture would be ignored and it would be free.
            if await self.storage.ledger_hold_status(attempt) != "released":
                return Hold(key=attempt, user_id=user_id, amount=amount)
            log.info("hold %s was released by an earlier attempt of this step; holding anew", attempt)
            attempt = f"{key}#{number}"
        raise RuntimeError(f"charge {key} was attempted and released {MAX_ATTEMPTS} times; giving up")

    async def capture(self, hold: Hold) -> None:
        if hold.amount:
            await self.storage.ledger_capture(hold.key)

    async def release(self, hold: Hold) -> None:
        if hold.amount:
            await self.storage.ledger_release(hold.key)


class ChargeUnavailable(RuntimeError):
    """A flow charges but no wallet is configured: refuse to run the paid step."""
