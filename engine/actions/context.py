"""What an action gets when it runs: who, where, the conversation's data, and the engine's tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

if TYPE_CHECKING:
    from aiogram import Bot

    from engine.storage import Storage


@dataclass
class ActionContext:
    user_id: int
    chat_id: int
    state: str  # qualified state running the action
    data: Mapping[str, Any]  # conversation variables, read-only: results go back as outputs
    locale: str
    correlation_id: str  # the same id is on every log line of this update
    bot: "Bot"
    storage: "Storage"
    # Send a plain message to the user outside the flow's own rendering (e.g. progress).
    send: Callable[[str], Awaitable[None]]
    # Durable background work that survives a restart; returns the job id (idempotent by key).
    enqueue: Callable[..., Awaitable[int]]
    extras: dict[str, Any] = field(default_factory=dict)
