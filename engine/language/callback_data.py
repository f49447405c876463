"""The callback_data of every inline button: `{flow_version}:{state}:{ref}`.

One encoding for the runtime (which writes and reads it) and the checker
(which proves the worst case fits Telegram's 64 bytes). The flow version and
state make a button from an older flow or an earlier screen recognisably
stale; `ref` says which button:
  b{row}.{col}  a static button      i{index}  a list item      p{page}  a list page
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_BYTES = 64
_PATTERN = re.compile(r"^([0-9a-f]{6}):([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*):(b\d{1,2}\.\d{1,2}|i\d{1,5}|p\d{1,4})$")
# Worst cases the checker assumes for dynamic parts.
MAX_ITEM_REF = "i99999"
MAX_PAGE_REF = "p9999"


@dataclass(frozen=True)
class CallbackRef:
    version: str
    state: str
    ref: str

    @property
    def kind(self) -> str:
        return {"b": "button", "i": "item", "p": "page"}[self.ref[0]]

    @property
    def position(self) -> tuple[int, int]:
        row, column = self.ref[1:].split(".")
        return int(row), int(column)

    @property
    def number(self) -> int:
        return int(self.ref[1:])


def encode(version: str, state: str, ref: str) -> str:
    return f"{version}:{state}:{ref}"


def button_ref(row: int, column: int) -> str:
    return f"b{row}.{column}"


def decode(data: str | None) -> CallbackRef | None:
    """The parsed reference, or None for data this runtime never produced."""
    if not data:
        return None
    match = _PATTERN.fullmatch(data)  # not match: `$` would also accept a trailing newline
    if match is None:
        return None
    return CallbackRef(*match.groups())


def worst_case_length(version: str, state: str, *, rows: int = 0, columns: int = 0, has_list: bool = False) -> int:
    """Bytes of the longest callback_data a state can produce."""
    refs = [button_ref(max(rows - 1, 0), max(columns - 1, 0))]
    if has_list:
        refs += [MAX_ITEM_REF, MAX_PAGE_REF]
    return max(len(encode(version, state, ref).encode()) for ref in refs)
