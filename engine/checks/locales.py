"""Translations: every i18n key exists in every locale, the default locale exists, nothing is left unused."""

from __future__ import annotations

from typing import Iterator

from engine.checks.context import CheckContext, did_you_mean
from engine.language.findings import Finding, error, warning


def check_i18n_keys(ctx: CheckContext) -> Iterator[Finding]:
    """unknown-i18n-key: a text that is an i18n key is missing in a locale (one finding per locale)."""
    locales = ctx.project.locales
    seen: set[tuple[object, str]] = set()
    for site in ctx.text_sites:
        text = site.text
        if not text.is_key or (text.position, text.raw) in seen:
            continue
        seen.add((text.position, text.raw))
        if not locales:
            yield error(text.position, "unknown-i18n-key",
                        f"'{text.raw}' is an i18n key, but no locale files were given to look it up "
                        f"(add a file with `locale: <lang>` and `messages:`)")
            continue
        translated = [language for language, locale in locales.items() if text.raw in locale.messages]
        for language, locale in sorted(locales.items()):
            if text.raw in locale.messages:
                continue
            if translated:  # not a typo: a missing translation
                hint = f": translate it there (it exists in {', '.join(sorted(translated))})"
            else:
                hint = did_you_mean(text.raw, locale.messages)
            yield error(text.position, "unknown-i18n-key",
                        f"i18n key '{text.raw}' ({site.label}) is missing in locale '{language}' ({locale.file})"
                        f"{hint}")


def check_default_locale(ctx: CheckContext) -> Iterator[Finding]:
    """missing-locale: the bot's default_locale has no locale file (when there are locale files at all)."""
    bot = ctx.bot
    locales = ctx.project.locales
    if bot is None or not locales or bot.default_locale in locales:
        return
    yield error(bot.default_locale_position or bot.position, "missing-locale",
                f"default_locale '{bot.default_locale}' has no locale file (there are: {', '.join(sorted(locales))})")


def check_unused_keys(ctx: CheckContext) -> Iterator[Finding]:
    """unused-i18n-key (warning): a locale message no text uses."""
    used = ctx.used_keys
    for language, locale in sorted(ctx.project.locales.items()):
        for key, position in locale.positions.items():
            if key not in used:
                yield warning(position, "unused-i18n-key",
                              f"message '{key}' of locale '{language}' is not used by any flow")
