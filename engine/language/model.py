"""The compiled flow model: what the checker proves things about and the runtime runs.

Everything here is plain, immutable-by-convention data with a `Position`, so a
finding can always point at FILE:LINE:COL. Names of states are qualified as
``flow.state`` once compiled; a bare name in YAML means "in this flow".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Every kind of input a Telegram user can produce, in the order the zero-silence
# matrix prints them. The runtime classifies each update into exactly one kind.
USER_INPUT_KINDS = ("text", "command", "photo", "video", "audio", "voice", "document", "sticker", "other")
MEDIA_INPUT_KINDS = ("photo", "video", "audio", "voice", "document")
CALLBACK_KINDS = ("button", "stale_button", "malformed_callback")
PAYMENT_KINDS = ("pre_checkout_query", "successful_payment")
INPUT_KINDS = USER_INPUT_KINDS + CALLBACK_KINDS + PAYMENT_KINDS

# A text that looks like this is an i18n key; anything else is literal text.
I18N_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_-]+)+$")


@dataclass(frozen=True, order=True)
class Position:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Text:
    """A message text: an i18n key looked up per locale, or a literal; both may hold {var}s."""

    raw: str
    position: Position

    @property
    def is_key(self) -> bool:
        return bool(I18N_KEY.match(self.raw))


@dataclass(frozen=True)
class Media:
    kind: str  # photo | video | audio | document | animation
    source: str  # URL, Telegram file_id or {var} template
    position: Position


@dataclass
class Reaction:
    """What happens in answer to something: optionally say, set data, go to a state.

    `to` is None when the conversation stays where it is.
    """

    position: Position
    to: str | None = None
    say: Text | None = None
    set: dict[str, Any] = field(default_factory=dict)
    # Where `to` was written, for findings about the target.
    to_position: Position | None = None
    # Where each `set:` value (and its key) was written, for findings about variables.
    set_positions: dict[str, Position] = field(default_factory=dict)
    set_key_positions: dict[str, Position] = field(default_factory=dict)


@dataclass
class Button:
    text: Text
    position: Position
    reaction: Reaction | None = None  # None for URL buttons
    url: str | None = None
    condition: str | None = None  # an `if:` expression; the button is hidden when false
    row: int = 0
    column: int = 0
    condition_position: Position | None = None  # where `if:` was written


@dataclass
class ButtonList:
    """Buttons produced at render time, one per item an action returns."""

    action: str
    params: dict[str, Any]
    button: Button
    columns: int
    page_size: int
    position: Position
    action_position: Position
    # Positions inside `with:`, keyed like SourceFile.positions relative to `with:`.
    param_positions: dict[tuple[Any, ...], Position] = field(default_factory=dict)


@dataclass
class TextValidation:
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    position: Position | None = None  # where `validate:` was written
    pattern_position: Position | None = None


@dataclass
class InputHandler:
    """How a state answers one kind of input (or one specific /command)."""

    kind: str  # an input kind, or "/name" for a specific command
    reaction: Reaction
    position: Position
    validation: TextValidation | None = None
    invalid: Reaction | None = None  # answer to text that fails validation


@dataclass
class Action:
    """A side effect run on entering a state, with a branch per declared outcome."""

    name: str
    params: dict[str, Any]
    outcomes: dict[str, Reaction]
    position: Position
    params_position: Position
    charge: str | int | None = None
    charge_position: Position | None = None
    # Positions inside `with:`, keyed like SourceFile.positions relative to `with:`.
    param_positions: dict[tuple[Any, ...], Position] = field(default_factory=dict)


@dataclass
class State:
    name: str  # qualified: flow.state
    flow: str
    position: Position
    say: Text | None = None
    media: Media | None = None
    buttons: list[list[Button]] = field(default_factory=list)
    button_list: ButtonList | None = None
    inputs: dict[str, InputHandler] = field(default_factory=dict)
    fallback: Reaction | None = None
    action: Action | None = None

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[1]

    def all_buttons(self) -> list[Button]:
        return [button for row in self.buttons for button in row]


@dataclass
class Variable:
    name: str
    default: Any
    position: Position


@dataclass
class Flow:
    name: str
    file: str
    start: str  # qualified
    start_position: Position
    states: dict[str, State]
    default: Reaction
    position: Position
    version: str  # short content hash; stamped into callback data to detect stale buttons


@dataclass
class Command:
    name: str  # with the slash: "/start"
    reaction: Reaction
    description: str | None
    position: Position


@dataclass
class Bot:
    name: str
    file: str
    start: str  # qualified state
    start_position: Position
    default_locale: str
    commands: dict[str, Command]
    handlers: dict[str, InputHandler]  # bot-wide handlers for payment kinds
    position: Position
    default_locale_position: Position | None = None
    commands_position: Position | None = None  # the `commands:` key


@dataclass
class Locale:
    language: str
    file: str
    messages: dict[str, str]  # flattened dotted keys -> text
    positions: dict[str, Position]
    position: Position


@dataclass
class Project:
    """Everything loaded from the paths given to `flowgram check` / `run`."""

    bot: Bot | None = None
    flows: dict[str, Flow] = field(default_factory=dict)
    locales: dict[str, Locale] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def states(self) -> dict[str, State]:
        return {name: state for flow in self.flows.values() for name, state in flow.states.items()}

    def flow_of(self, state: str) -> Flow:
        return self.flows[state.split(".", 1)[0]]
