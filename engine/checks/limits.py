"""Telegram's limits, proven before a message is ever sent."""

from __future__ import annotations

from typing import Iterator

from engine.checks.context import CheckContext, text_label
from engine.language.callback_data import MAX_BYTES, MAX_ITEM_REF, MAX_PAGE_REF, button_ref, worst_case_length
from engine.language.findings import Finding, error, warning
from engine.language.resolution import state_buttons

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_ROW = 8
MAX_BUTTONS = 100
MAX_BUTTON_TEXT = 64
PAGE_BUTTONS = 2  # « and » under a paged list


def check_callback_data(ctx: CheckContext) -> Iterator[Finding]:
    """callback-data-too-long: the worst-case `{version}:{state}:{ref}` of a state's buttons exceeds 64 bytes."""
    for name, state in ctx.states.items():
        if not state_buttons(state):
            continue  # only url buttons, or none: no callback data
        static = [b for b in state.all_buttons() if b.reaction is not None]
        rows = max((b.row for b in static), default=-1) + 1
        columns = max((b.column for b in static), default=-1) + 1
        has_list = state.button_list is not None
        version = ctx.flow(state).version
        length = worst_case_length(version, name, rows=rows, columns=columns, has_list=has_list)
        if length <= MAX_BYTES:
            continue
        refs = [button_ref(max(rows - 1, 0), max(columns - 1, 0))] + ([MAX_ITEM_REF, MAX_PAGE_REF] if has_list else [])
        example = f"{version}:{name}:{max(refs, key=len)}"
        yield error(state.position, "callback-data-too-long",
                    f"the buttons of state '{name}' need up to {length} bytes of callback data ('{example}'), "
                    f"over Telegram's {MAX_BYTES}: shorten the flow or state name by {length - MAX_BYTES} "
                    f"characters")


def check_text_lengths(ctx: CheckContext) -> Iterator[Finding]:
    """text-too-long (> 4096) and caption-too-long (> 1024 with media), per locale and for literals."""
    reported: set[object] = set()
    for site in ctx.text_sites:
        if site.role == "button":
            continue
        caption = site.role == "caption"
        limit = MAX_CAPTION if caption else MAX_TEXT
        for language, text, written_at in ctx.texts_of(site.text):
            if len(text) <= limit:
                continue
            where = f" in locale '{language}' ({written_at})" if language else ""
            if caption:
                yield error(site.text.position, "caption-too-long",
                            f"{site.label} is shown as a media caption and is {len(text)} characters{where}, "
                            f"over Telegram's {MAX_CAPTION}")
                continue
            if written_at in reported:
                continue
            reported.add(written_at)
            name = f"message '{site.text.raw}' of locale '{language}'" if language else site.label
            yield error(written_at, "text-too-long",
                        f"{name} is {len(text)} characters, over Telegram's {MAX_TEXT}")


def check_keyboards(ctx: CheckContext) -> Iterator[Finding]:
    """keyboard-too-wide (> 8 in a row) and keyboard-too-large (> 100 buttons, list pages included)."""
    for name, state in ctx.states.items():
        for number, row in enumerate(state.buttons, 1):
            if len(row) > MAX_ROW:
                yield error(row[MAX_ROW].position, "keyboard-too-wide",
                            f"row {number} of state '{name}' has {len(row)} buttons; Telegram shows at most "
                            f"{MAX_ROW} in a row")
        lst = state.button_list
        if lst is not None and lst.columns > MAX_ROW:
            yield error(lst.position, "keyboard-too-wide",
                        f"the list of state '{name}' has {lst.columns} columns; Telegram shows at most "
                        f"{MAX_ROW} buttons in a row")
        total = sum(len(row) for row in state.buttons)
        if lst is not None:
            total += lst.page_size + PAGE_BUTTONS
        if total > MAX_BUTTONS:
            extra = f" (a page of {lst.page_size} items and {PAGE_BUTTONS} page buttons included)" if lst else ""
            yield error(state.position, "keyboard-too-large",
                        f"state '{name}' can show {total} buttons{extra}; Telegram allows at most {MAX_BUTTONS}")


def check_button_texts(ctx: CheckContext) -> Iterator[Finding]:
    """button-text-too-long (warning): a button label over 64 characters is cut by Telegram clients."""
    for site in ctx.text_sites:
        if site.role != "button":
            continue
        for language, text, _ in ctx.texts_of(site.text):
            if len(text) > MAX_BUTTON_TEXT:
                where = f" in locale '{language}'" if language else ""
                yield warning(site.text.position, "button-text-too-long",
                              f"button {text_label(site.text)} of {site.label.split(' of ', 1)[-1]} is {len(text)} "
                              f"characters{where}; keep button labels within {MAX_BUTTON_TEXT}")
