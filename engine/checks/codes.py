"""Every code `flowgram check` reports, with its severity and a one-line meaning (the README's table)."""

from __future__ import annotations

from engine.language.findings import Severity

E, W = Severity.ERROR, Severity.WARNING

# Reported by load_project() (engine.language): one file at a time.
LOADER_CODES: dict[str, tuple[Severity, str]] = {
    "yaml-syntax": (E, "the file is not valid YAML (or uses merge keys, several documents, recursive aliases)"),
    "empty-file": (E, "the file has no content"),
    "unreadable-file": (E, "the file cannot be read, is not UTF-8 text, holds NUL bytes or is over 5 MiB"),
    "unknown-file-kind": (E, "the file starts with none of `bot:`, `flow:`, `locale:`"),
    "duplicate-key": (E, "a mapping repeats a key (YAML would silently keep the last)"),
    "schema": (E, "the file does not match flows.schema.json (unknown key, wrong type, missing key)"),
    "missing-bot": (E, "no bot manifest among the given paths"),
    "duplicate-bot": (E, "a second bot manifest"),
    "duplicate-flow": (E, "two flows with the same name"),
    "duplicate-locale": (E, "two locale files for the same language"),
    "duplicate-variable": (E, "a variable declared again with another default"),
}

# Reported by engine.checks.check_project(): the meaning of the whole project.
CODES: dict[str, tuple[Severity, str]] = {
    "unknown-state": (E, "a start or a `to:` names a state that does not exist"),
    "unknown-action": (E, "`do:` or `list.from` names an action that is not registered"),
    "bad-action-params": (E, "`with:` does not match the action's parameter schema"),
    "list-action-misuse": (E, "a list action in `do:`, or an ordinary action in `list.from`"),
    "undeclared-outcome": (E, "a branch for an outcome the action never ends in"),
    "unbranched-outcome": (E, "an outcome the action can end in (incl. insufficient_funds when charged) has no branch"),
    "silent-wait": (E, "a state running a background action has no `say:` for the wait"),
    "charge-not-allowed": (E, "`charge:` on an action that is not chargeable"),
    "refund-not-told": (E, "a failure branch of a charged step does not mention {charge.*} in every locale"),
    "unknown-i18n-key": (E, "an i18n key is missing in a locale (or there are no locales)"),
    "missing-locale": (E, "the bot's default_locale has no locale file"),
    "unused-i18n-key": (W, "a locale message no flow uses"),
    "unknown-variable": (E, "a {placeholder} or `if:` name is not a variable, builtin or output here"),
    "unknown-item-field": (E, "{item.x} names a field the list action's items do not have"),
    "undeclared-variable": (E, "`set:` writes a variable no flow declares in `vars:`"),
    "bad-template": (E, "unbalanced braces or a malformed {placeholder}"),
    "bad-condition": (E, "a button `if:` is not a valid expression"),
    "bad-pattern": (E, "`validate.pattern` is not a valid regular expression"),
    "bad-validation": (E, "`validate` has min_length greater than max_length: no text passes"),
    "unreachable-state": (W, "nothing leads to the state from the bot's start"),
    "trap-state": (E, "from a reachable state no flow transition leads back to the start"),
    "callback-data-too-long": (E, "a state's button callback data can exceed Telegram's 64 bytes"),
    "text-too-long": (E, "a message is over Telegram's 4096 characters"),
    "caption-too-long": (E, "a media caption is over Telegram's 1024 characters"),
    "keyboard-too-wide": (E, "more than 8 buttons in a row (or list columns)"),
    "keyboard-too-large": (E, "more than 100 buttons on one keyboard (list page included)"),
    "button-text-too-long": (W, "a button label is over 64 characters"),
    "duplicate-button": (E, "two buttons of one state show the same text"),
    "missing-command": (W, "the bot has no /help or no /cancel"),
    "missing-paysupport": (E, "the bot takes money but has no /paysupport (Telegram requires it)"),
    "silent-state": (E, "a state with no say, media or action shows nothing"),
    "silent-input": (E, "a state answers some input kind with something that shows nothing"),
    "internal-error": (E, "a check crashed: a flowgram bug, please report it"),
}


def codes_table() -> str:
    """A Markdown table of every code, for the README."""
    rows = ["| code | severity | meaning |", "| --- | --- | --- |"]
    for code, (severity, meaning) in {**LOADER_CODES, **CODES}.items():
        rows.append(f"| `{code}` | {severity.value} | {meaning} |")
    return "\n".join(rows)
