"""Zero silence: for every state and every kind of input, the rule that answers, and that it shows something.

The proof uses the runtime's own resolution (`engine.language.resolution`), so
what the checker says answers a photo in a state is exactly what will answer
it. The matrix (`flowgram check --matrix`) prints one row per state and one
column per input kind; `silent-input` is an error for each cell that shows
nothing. A cell whose silence has another root cause already reported (a
target that is not a state, a state with nothing to show, an action with
missing branches) is not reported again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from engine.checks.context import CheckContext, text_label
from engine.language.findings import Finding, error
from engine.language.model import INPUT_KINDS, Position, Reaction, State
from engine.language.resolution import Rule, Visibility, resolve, resolve_invalid_text, state_buttons

# Column titles of the text matrix (the JSON keeps the real kind names).
SHORT_KINDS = {
    "stale_button": "stale",
    "malformed_callback": "malformed",
    "pre_checkout_query": "checkout",
    "successful_payment": "payment",
}

LEGEND = (
    ("on", "the state's own `on:` handler"),
    ("inv", "the `invalid:` answer of `on: text` (text failing validation)"),
    ("fb", "the state's `fallback`"),
    ("def", "the flow's `default`"),
    ("cmd", "a bot command"),
    ("bot", "the bot's own `on:` handler"),
    ("btn", "each button's own reaction"),
    ("eng", "engine built-in (stale/malformed button: notice + the screen again; checkout: approve a pending "
            "invoice or decline; payment: refund and tell)"),
    ("-", "not applicable (no buttons)"),
    ("+N", "N state-specific /commands, each answered by the state"),
    ("a/b", "valid text answered by a, invalid text by b"),
    ("", "the command column is an unknown /command; bot commands answer themselves in every state"),
    ("!", "SHOWS NOTHING: an error"),
)


@dataclass
class MatrixCell:
    state: str
    kind: str
    rule: str  # human: "state on.text -> generate.confirm", "flow default (main): say common.use_buttons"
    visible: bool
    position: Position | None
    short: str = ""  # the code shown in the text table: on, fb, def, cmd, bot, btn, eng, -
    why: str = ""  # for an invisible cell: why nothing is shown

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "rule": self.rule,
            "visible": self.visible,
            "position": str(self.position) if self.position else None,
            "short": self.short,
        }
        if self.why:
            data["why"] = self.why
        return data


@dataclass
class SilenceMatrix:
    kinds: tuple[str, ...]
    rows: dict[str, list[MatrixCell]] = field(default_factory=dict)

    @property
    def silent(self) -> list[MatrixCell]:
        return [cell for cells in self.rows.values() for cell in cells if not cell.visible]

    def render_text(self) -> str:
        headers = ["state"] + [SHORT_KINDS.get(kind, kind) for kind in self.kinds]
        body = [[name] + [cell.short or "?" for cell in cells] for name, cells in self.rows.items()]
        widths = [max(len(row[i]) for row in [headers] + body) for i in range(len(headers))]

        def line(row: list[str]) -> str:
            return "  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip()

        silent = self.silent
        out = [
            f"zero-silence matrix: {len(self.rows)} states x {len(self.kinds)} input kinds, "
            f"{len(silent)} silent cell{'s' if len(silent) != 1 else ''}",
            "",
            line(headers),
            line(["-" * w for w in widths]),
        ]
        out += [line(row) for row in body]
        out += ["", "legend:"]
        out += [f"  {code:<4} {meaning}" if code else f"  {meaning}" for code, meaning in LEGEND]
        renamed = [f"{short} = {kind}" for kind, short in SHORT_KINDS.items() if kind in self.kinds]
        if renamed:
            out.append("  columns: " + ", ".join(renamed))
        if silent:
            out += ["", "silent cells:"]
            out += [f"  {cell.state}  {cell.kind}: {cell.rule} — {cell.why}" for cell in silent]
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "kinds": list(self.kinds),
            "states": {name: [cell.to_json() for cell in cells] for name, cells in self.rows.items()},
            "silent": len(self.silent),
        }


# ---- explaining silence ------------------------------------------------------------------------------------


class _Explainer:
    """Why a reaction shows nothing, and whether that is already another check's finding."""

    def __init__(self, ctx: CheckContext, visibility: Visibility) -> None:
        self.ctx = ctx
        self.visibility = visibility

    def reaction(self, reaction: Reaction) -> tuple[str, bool]:
        """(why, reported elsewhere) for an invisible reaction."""
        if reaction.to is None:
            return "it neither says anything nor goes anywhere", False
        phrase, reported = self.state(reaction.to, frozenset())
        return f"it goes to {phrase}", reported

    def state(self, name: str, visiting: frozenset[str]) -> tuple[str, bool]:
        """A phrase naming the silent state `name` and why it shows nothing; whether that is reported elsewhere."""
        state = self.ctx.states.get(name)
        if state is None:
            return f"'{name}', which is not a state", True
        if state.action is None:
            return f"'{name}', which has no say, media or action", True
        action = state.action
        if name in visiting:
            return f"'{name}' again: a loop of action states that say nothing", self._broken(state)
        if not action.outcomes:
            return f"'{name}', which runs '{action.name}' without a say and has no outcome branches", True
        for outcome, branch in action.outcomes.items():
            if branch.say is not None or branch.to is None:
                continue
            if not self.visibility.state(branch.to, visiting | {name}):
                phrase, reported = self.state(branch.to, visiting | {name})
                return (f"'{name}', which runs '{action.name}' without a say and whose outcome '{outcome}' leads "
                        f"to {phrase}", reported or self._broken(state))
        return f"'{name}', which shows nothing", self._broken(state)

    def _broken(self, state: State) -> bool:
        """The action is unknown, misused, not fully branched or a silent wait: its own checks report that."""
        assert state.action is not None
        spec = self.ctx.spec(state.action.name)
        if spec is None or spec.is_list or spec.background:
            return True
        declared = spec.outcomes_with_charge(state.action.charge is not None and spec.chargeable)
        return any(outcome not in state.action.outcomes for outcome in declared)


# ---- the matrix --------------------------------------------------------------------------------------------


@dataclass
class _Answer:
    """One rule answering (part of) a cell."""

    label: str  # "" for the cell's main rule, "invalid", "/skip", or a button label
    rule: Rule
    visible: bool

    @property
    def shared(self) -> bool:
        """The rule belongs to the flow or the bot, not to the state: report it once, not per state."""
        return self.rule.source.startswith(("flow default", "bot "))


def _reaction_text(reaction: Reaction) -> str:
    """"say common.use_buttons -> main.menu": what a reaction does, briefly."""
    parts = []
    if reaction.say is not None:
        parts.append(f"say {reaction.say.raw}" if reaction.say.is_key else f"say {text_label(reaction.say)}")
    if reaction.to is not None:
        parts.append(f"-> {reaction.to}")
    return " ".join(parts) or "nothing"


def _describe(rule: Rule) -> str:
    """The matrix's human rule: "state on.text -> generate.confirm", "flow default (main): say common.use_buttons"."""
    reaction = rule.reaction
    if reaction is None:
        return rule.source
    separator = ": " if reaction.say is not None or reaction.to is None else " "
    return f"{rule.source}{separator}{_reaction_text(reaction)}"


def _short(rule: Rule) -> str:
    source = rule.source
    if rule.is_engine:
        return "eng"
    if source == "state on.text.invalid":
        return "inv"
    if source.startswith("state on."):
        return "on"
    if source == "state fallback":
        return "fb"
    if source.startswith("flow default"):
        return "def"
    if source.startswith("bot command"):
        return "cmd"
    if source.startswith("bot on."):
        return "bot"
    if source.startswith("button"):
        return "btn"
    return "?"


class _MatrixBuilder:
    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.visibility = Visibility(ctx.project, ctx.registry)
        self.explainer = _Explainer(ctx, self.visibility)

    def answer(self, rule: Rule, label: str = "") -> _Answer:
        visible = rule.is_engine or self.visibility.reaction(rule.reaction)  # type: ignore[arg-type]
        return _Answer(label, rule, visible)

    def answers(self, state: State, kind: str) -> list[_Answer]:
        project = self.ctx.project
        if kind == "button":
            return [self.answer(Rule(f"button {text_label(b.text)}", b.reaction, b.position), text_label(b.text))
                    for b in state_buttons(state)]
        if kind == "text":
            found = [self.answer(rule)] if (rule := resolve(project, state, "text")) else []
            handler = state.inputs.get("text")
            if handler is not None and handler.validation is not None:
                if (invalid := resolve_invalid_text(project, state)) is not None:
                    found.append(self.answer(invalid, "invalid"))
            return found
        if kind == "command":
            found = [self.answer(rule)] if (rule := resolve(project, state, "command")) else []
            for command in state.inputs:
                if command.startswith("/") and (rule := resolve(project, state, "command", command)):
                    found.append(self.answer(rule, command))
            return found
        rule = resolve(project, state, kind)
        return [self.answer(rule)] if rule else []

    def cell(self, state: State, kind: str, answers: list[_Answer]) -> MatrixCell:
        if kind == "button" and not answers:
            return MatrixCell(state.name, kind, "n/a: no buttons", True, None, "-")
        if not answers:
            return MatrixCell(state.name, kind, "no rule answers", False, None, "none!", "nothing answers it")
        visible = all(a.visible for a in answers)
        whys = [self.explainer.reaction(a.rule.reaction)[0] for a in answers
                if not a.visible and a.rule.reaction is not None]
        if kind == "button":
            silent = [a for a in answers if not a.visible]
            rule = f"buttons: their own reactions ({len(answers)})"
            if silent:
                rule += "; " + "; ".join(f"{_describe(a.rule)} shows nothing" for a in silent)
            short = "btn"
        else:
            main, extra = answers[0], answers[1:]
            rule = "; ".join([_describe(main.rule)] + [f"{a.label}: {_describe(a.rule)}" for a in extra])
            short = _short(main.rule)
            invalid = [a for a in extra if a.label == "invalid"]
            if invalid:
                short += "/" + _short(invalid[0].rule)
            commands = [a for a in extra if a.label.startswith("/")]
            if commands:
                short += f"+{len(commands)}"
        if not visible:
            short += "!"
        return MatrixCell(state.name, kind, rule, visible, answers[0].rule.position or state.position, short,
                          "; ".join(whys))

    def build(self, cells: bool = True) -> tuple[SilenceMatrix, list[tuple[State, str, list[_Answer]]]]:
        """The answers of every (state, kind); with `cells`, the human matrix too (checks need only answers)."""
        matrix = SilenceMatrix(INPUT_KINDS)
        details = []
        for name, state in self.ctx.states.items():
            row = []
            for kind in INPUT_KINDS:
                answers = self.answers(state, kind)
                if cells:
                    row.append(self.cell(state, kind, answers))
                details.append((state, kind, answers))
            if cells:
                matrix.rows[name] = row
        return matrix, details


def build_matrix(ctx: CheckContext) -> SilenceMatrix:
    return _MatrixBuilder(ctx).build(cells=True)[0]


def _built(ctx: CheckContext) -> tuple[list[tuple[State, str, list[_Answer]]], _MatrixBuilder]:
    if "silence" not in ctx.cache:
        builder = _MatrixBuilder(ctx)
        _, details = builder.build(cells=False)
        ctx.cache["silence"] = (details, builder)
    return ctx.cache["silence"]


# ---- checks ------------------------------------------------------------------------------------------------


def check_silent_states(ctx: CheckContext) -> Iterator[Finding]:
    """silent-state: a state with no say, no media and no action can never show anything."""
    for name, state in ctx.states.items():
        if state.say is None and state.media is None and state.action is None:
            yield error(state.position, "silent-state",
                        f"state '{name}' has no say, media or action, so entering it shows nothing: give it a `say:`")


def check_silent_inputs(ctx: CheckContext) -> Iterator[Finding]:
    """silent-input: a (state, input kind) cell whose answer shows nothing."""
    details, builder = _built(ctx)
    shared: dict[tuple[Any, ...], list[str]] = {}  # flow defaults and bot handlers: reported once each
    for state, kind, answers in details:
        if not answers:
            if kind != "button":
                yield error(state.position, "silent-input", f"state '{state.name}' has no rule answering {kind}")
            continue
        for answer in answers:
            if answer.visible or answer.rule.reaction is None:
                continue
            why, reported = builder.explainer.reaction(answer.rule.reaction)
            if reported:
                continue
            if kind == "button":
                what = f"the button {answer.label}"
                rule = f"its own reaction ({_reaction_text(answer.rule.reaction)})"
            else:
                what = {"": kind, "invalid": "invalid text"}.get(answer.label, answer.label)
                rule = _describe(answer.rule)
            if answer.shared:
                key = (answer.rule.position, answer.rule.source, why)
                shared.setdefault(key, []).append(f"{state.name} {what}")
                continue
            yield error(state.position, "silent-input",
                        f"state '{state.name}' answers {what} with {rule}, which shows nothing ({why})")
    for (position, source, why), cells in shared.items():
        example = ", ".join(cells[:3]) + (f" and {len(cells) - 3} more" if len(cells) > 3 else "")
        yield error(position or Position("<bot>", 1, 1), "silent-input",
                    f"{source} answers {len(cells)} input(s) ({example}) and shows nothing ({why})")
    bot = ctx.bot
    if bot is not None:
        for command in bot.commands.values():
            if builder.visibility.reaction(command.reaction):
                continue
            why, reported = builder.explainer.reaction(command.reaction)
            if not reported:
                yield error(command.position, "silent-input",
                            f"bot command {command.name} shows nothing ({why})")
