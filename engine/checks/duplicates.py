"""Duplicates the YAML loader cannot see: two buttons of one state with the same label."""

from __future__ import annotations

from typing import Iterator

from engine.checks.context import CheckContext, text_label
from engine.language.findings import Finding, error
from engine.language.model import Button


def check_duplicate_buttons(ctx: CheckContext) -> Iterator[Finding]:
    """duplicate-button: two buttons of one state show the same text (same i18n key or same literal).

    Two buttons that both have an `if:` may be alternatives (never shown together), so they are not reported.
    """
    for name, state in ctx.states.items():
        first: dict[str, Button] = {}
        for button in state.all_buttons():
            earlier = first.get(button.text.raw)
            if earlier is None:
                first[button.text.raw] = button
                continue
            if earlier.condition is not None and button.condition is not None:
                continue
            yield error(button.text.position, "duplicate-button",
                        f"state '{name}' already has a button {text_label(button.text)} (line "
                        f"{earlier.text.position.line}); the user cannot tell them apart")
