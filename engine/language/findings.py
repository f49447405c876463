"""A finding is one precise statement about a flow file: where, how bad, what."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from engine.language.model import Position


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Finding:
    """One line of `flowgram check` output: ``FILE:LINE:COL: error: CODE message``."""

    position: Position
    severity: Severity
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.position}: {self.severity.value}: {self.code} {self.message}"


def error(position: Position, code: str, message: str) -> Finding:
    return Finding(position, Severity.ERROR, code, message)


def warning(position: Position, code: str, message: str) -> Finding:
    return Finding(position, Severity.WARNING, code, message)
