"""Build what a state shows: text (or caption), media, and the inline keyboard."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from engine.language.callback_data import button_ref, encode
from engine.language.conditions import evaluate
from engine.language.model import Button, State
from engine.language.templates import render, render_value
from engine.runtime.texts import Texts

PREVIOUS_PAGE = "◀"
NEXT_PAGE = "▶"


@dataclass
class Screen:
    state: str
    text: str
    media: tuple[str, str] | None = None  # (kind, source)
    keyboard: InlineKeyboardMarkup | None = None
    items: list[dict[str, Any]] = field(default_factory=list)  # list items shown, for resolving presses
    page: int = 0


def button_text(texts: Texts, button: Button, locale: str, values: Mapping[str, Any]) -> str:
    return texts.render(button.text, locale, values)


def build_screen(
    state: State,
    version: str,
    texts: Texts,
    locale: str,
    values: Mapping[str, Any],
    items: list[Mapping[str, Any]] | None = None,
    page: int = 0,
) -> Screen:
    text = texts.render(state.say, locale, values) if state.say is not None else ""
    media = (state.media.kind, render(state.media.source, values)) if state.media is not None else None
    rows: list[list[InlineKeyboardButton]] = []
    shown_items: list[dict[str, Any]] = []
    if state.button_list is not None and items is not None:
        spec = state.button_list
        pages = max(1, -(-len(items) // spec.page_size))
        page = min(max(page, 0), pages - 1)
        start = page * spec.page_size
        row: list[InlineKeyboardButton] = []
        for index in range(start, min(start + spec.page_size, len(items))):
            item = dict(items[index])
            label = button_text(texts, spec.button, locale, {**values, "item": item})
            row.append(InlineKeyboardButton(text=label, callback_data=encode(version, state.name, f"i{index}")))
            if len(row) == spec.columns:
                rows.append(row)
                row = []
        if row:
            rows.append(row)
        if pages > 1:
            nav = []
            if page > 0:
                nav.append(InlineKeyboardButton(text=PREVIOUS_PAGE, callback_data=encode(version, state.name, f"p{page - 1}")))
            if page < pages - 1:
                nav.append(InlineKeyboardButton(text=NEXT_PAGE, callback_data=encode(version, state.name, f"p{page + 1}")))
            rows.append(nav)
        shown_items = [dict(item) for item in items]
    for r, button_row in enumerate(state.buttons):
        row = []
        for c, button in enumerate(button_row):
            if button.condition and not evaluate(button.condition, values):
                continue
            label = button_text(texts, button, locale, values)
            if button.url is not None:
                row.append(InlineKeyboardButton(text=label, url=render(button.url, values)))
            else:
                row.append(InlineKeyboardButton(text=label, callback_data=encode(version, state.name, button_ref(r, c))))
        if row:
            rows.append(row)
    keyboard = InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
    return Screen(state.name, text, media, keyboard, shown_items, page)


def set_values(assignments: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Render a reaction's `set:` against the current values."""
    return {name: render_value(value, values) for name, value in assignments.items()}
