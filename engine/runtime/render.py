"""Build what a state shows: text (or caption), media, and the inline keyboard.

Keyboards are built as the JSON Telegram receives (`reply_markup`), not as
aiogram models: a model keyboard costs a pydantic object per button to build
and is serialised again field by field on every send, which made the keyboard
the most expensive part of an update. A state's keyboard is fully determined
by the flow version, the state and the label (or hiding) of each button, so
its JSON is cached under exactly that key: a screen whose labels did not
change costs a few dict look-ups. List keyboards depend on items and are
built fresh (still as JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from engine.language.callback_data import button_ref, encode
from engine.language.conditions import evaluate
from engine.language.model import Button, State
from engine.language.templates import render, render_value
from engine.runtime.texts import Texts

PREVIOUS_PAGE = "◀"
NEXT_PAGE = "▶"

# How many distinct keyboards (state x labels) are kept; a bot has about one per state and locale.
KEYBOARD_CACHE_SIZE = 4096

_MISSING: Any = object()


@dataclass
class Screen:
    state: str
    text: str
    media: tuple[str, str] | None = None  # (kind, source)
    keyboard: str | None = None  # the inline keyboard as Bot API JSON (`reply_markup`); None: no buttons
    items: list[dict[str, Any]] = field(default_factory=list)  # list items shown, for resolving presses
    page: int = 0


def keyboard_json(rows: list[list[dict[str, str]]]) -> str | None:
    """`reply_markup` for an inline keyboard of button dicts; None for no rows."""
    if not rows:
        return None
    return json.dumps({"inline_keyboard": rows}, ensure_ascii=False, separators=(",", ":"))


def button_text(texts: Texts, button: Button, locale: str, values: Mapping[str, Any]) -> str:
    return texts.render(button.text, locale, values)


class Renderer:
    """Builds screens for one project; keeps the JSON of keyboards it has built."""

    def __init__(self, texts: Texts, *, cache_size: int = KEYBOARD_CACHE_SIZE) -> None:
        self.texts = texts
        self.cache_size = cache_size
        self._keyboards: dict[tuple[Any, ...], str | None] = {}

    def screen(
        self,
        state: State,
        version: str,
        locale: str,
        values: Mapping[str, Any],
        items: list[Mapping[str, Any]] | None = None,
        page: int = 0,
    ) -> Screen:
        texts = self.texts
        text = texts.render(state.say, locale, values) if state.say is not None else ""
        media = (state.media.kind, render(state.media.source, values)) if state.media is not None else None
        if state.button_list is not None and items is not None:
            rows, page = self._list_rows(state, version, locale, values, items, page)
            rows += self._static_rows(state, version, self._shown(state, locale, values))
            return Screen(state.name, text, media, keyboard_json(rows), [dict(item) for item in items], page)
        return Screen(state.name, text, media, self._static_keyboard(state, version, locale, values), [], page)

    def _shown(self, state: State, locale: str, values: Mapping[str, Any]) -> list[Any]:
        """Per static button: None when hidden, its label, or (label, url) for a URL button."""
        render_text = self.texts.render
        shown: list[Any] = []
        for button_row in state.buttons:
            for button in button_row:
                if button.condition and not evaluate(button.condition, values):
                    shown.append(None)
                    continue
                label = render_text(button.text, locale, values)
                shown.append(label if button.url is None else (label, render(button.url, values)))
        return shown

    def _static_keyboard(self, state: State, version: str, locale: str, values: Mapping[str, Any]) -> str | None:
        if not state.buttons:
            return None
        shown = self._shown(state, locale, values)
        key = (version, state.name, *shown)
        keyboard = self._keyboards.get(key, _MISSING)
        if keyboard is _MISSING:
            keyboard = keyboard_json(self._static_rows(state, version, shown))
            if len(self._keyboards) >= self.cache_size:
                del self._keyboards[next(iter(self._keyboards))]  # the oldest
            self._keyboards[key] = keyboard
        return keyboard

    @staticmethod
    def _static_rows(state: State, version: str, shown: list[Any]) -> list[list[dict[str, str]]]:
        rows: list[list[dict[str, str]]] = []
        index = 0
        for r, button_row in enumerate(state.buttons):
            row = []
            for c in range(len(button_row)):
                entry = shown[index]
                index += 1
                if entry is None:
                    continue
                if isinstance(entry, tuple):
                    row.append({"text": entry[0], "url": entry[1]})
                else:
                    row.append({"text": entry, "callback_data": encode(version, state.name, button_ref(r, c))})
            if row:
                rows.append(row)
        return rows

    def _list_rows(self, state: State, version: str, locale: str, values: Mapping[str, Any],
                   items: list[Mapping[str, Any]], page: int) -> tuple[list[list[dict[str, str]]], int]:
        spec = state.button_list
        assert spec is not None
        texts = self.texts
        rows: list[list[dict[str, str]]] = []
        pages = max(1, -(-len(items) // spec.page_size))
        page = min(max(page, 0), pages - 1)
        start = page * spec.page_size
        row: list[dict[str, str]] = []
        for index in range(start, min(start + spec.page_size, len(items))):
            item = dict(items[index])
            label = button_text(texts, spec.button, locale, {**values, "item": item})
            row.append({"text": label, "callback_data": encode(version, state.name, f"i{index}")})
            if len(row) == spec.columns:
                rows.append(row)
                row = []
        if row:
            rows.append(row)
        if pages > 1:
            nav = []
            if page > 0:
                nav.append({"text": PREVIOUS_PAGE, "callback_data": encode(version, state.name, f"p{page - 1}")})
            if page < pages - 1:
                nav.append({"text": NEXT_PAGE, "callback_data": encode(version, state.name, f"p{page + 1}")})
            rows.append(nav)
        return rows, page


def build_screen(
    state: State,
    version: str,
    texts: Texts,
    locale: str,
    values: Mapping[str, Any],
    items: list[Mapping[str, Any]] | None = None,
    page: int = 0,
) -> Screen:
    """One screen without a keyboard cache (the engine keeps a `Renderer`)."""
    return Renderer(texts).screen(state, version, locale, values, items, page)


def set_values(assignments: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Render a reaction's `set:` against the current values."""
    return {name: render_value(value, values) for name, value in assignments.items()}
