"""Bot commands Telegram users and Telegram itself expect."""

from __future__ import annotations

from typing import Iterator

from engine.checks.context import CheckContext
from engine.language.findings import Finding, error, warning

RECOMMENDED_COMMANDS = {
    "/help": "what the bot does",
    "/cancel": "a way out of any conversation",
}
PAYSUPPORT = "/paysupport"


def check_recommended_commands(ctx: CheckContext) -> Iterator[Finding]:
    """missing-command (warning): /help or /cancel is not defined."""
    bot = ctx.bot
    if bot is None:
        return
    for command, purpose in RECOMMENDED_COMMANDS.items():
        if command not in bot.commands:
            yield warning(bot.commands_position or bot.position, "missing-command",
                          f"the bot has no {command} command ({purpose}); users expect one")


def check_paysupport(ctx: CheckContext) -> Iterator[Finding]:
    """missing-paysupport: the bot takes money (a charged step or a payment handler) but has no /paysupport."""
    bot = ctx.bot
    if bot is None or PAYSUPPORT in bot.commands:
        return
    reasons = []
    for name, state in ctx.states.items():
        if state.action is not None and state.action.charge is not None:
            reasons.append(f"state '{name}' charges")
        elif "successful_payment" in state.inputs:
            reasons.append(f"state '{name}' handles payments")
        if reasons:
            break
    if not reasons and "successful_payment" in bot.handlers:
        reasons.append("the bot handles payments")
    if reasons:
        yield error(bot.commands_position or bot.position, "missing-paysupport",
                    f"{reasons[0]}, so Telegram requires a {PAYSUPPORT} command: add "
                    f"`{PAYSUPPORT}: {{to: <a state with payment help>, description: ...}}` to `commands:`")
