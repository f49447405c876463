"""Message texts: i18n keys looked up per locale, templates filled, and the engine's own notices."""

from __future__ import annotations

from typing import Any, Mapping

from engine.language.model import Project, Text
from engine.language.templates import render

# What the engine itself says; flows cannot forget these answers.
SYSTEM_TEXTS: dict[str, dict[str, str]] = {
    "stale_button": {
        "en": "This button is out of date. Here is the current screen.",
        "ru": "Эта кнопка устарела. Вот актуальный экран.",
    },
    "error": {
        "en": "Sorry, something went wrong on our side. Nothing was lost; please try again. Reference: {code}",
        "ru": "Извините, у нас что-то пошло не так. Ничего не потеряно, попробуйте ещё раз. Код: {code}",
    },
    "slow_down": {
        "en": "You are sending messages faster than I can answer. Please wait a moment.",
        "ru": "Вы пишете быстрее, чем я успеваю отвечать. Подождите немного.",
    },
    "unanswered": {
        "en": "I could not answer that here. Send /start to see the menu.",
        "ru": "Здесь я не смог ответить. Отправьте /start, чтобы открыть меню.",
    },
    "invoice_unknown": {
        "en": "This invoice is no longer valid. Nothing was charged.",
        "ru": "Этот счёт больше не действителен. Ничего не списано.",
    },
    "payment_refunded": {
        "en": "We received a payment we could not match, so we refunded it in full.",
        "ru": "Мы получили платёж, который не смогли сопоставить, и вернули его полностью.",
    },
}


class Texts:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.default_locale = project.bot.default_locale if project.bot else "en"
        # (text, locale) -> the string to render; the project does not change while it runs.
        self._resolved: dict[tuple[str, str], str] = {}

    def locale_for(self, language: str | None) -> str:
        if language and language in self.project.locales:
            return language
        return self.default_locale

    def raw(self, text: Text, locale: str) -> str:
        key = (text.raw, locale)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = self._lookup(text, locale)
        return found

    def _lookup(self, text: Text, locale: str) -> str:
        if not text.is_key:
            return text.raw
        for candidate in (locale, self.default_locale):
            found = self.project.locales.get(candidate)
            if found is not None and text.raw in found.messages:
                return found.messages[text.raw]
        return text.raw  # the checker reports unknown keys; never crash at runtime

    def render(self, text: Text, locale: str, values: Mapping[str, Any]) -> str:
        return render(self.raw(text, locale), values)

    def system(self, name: str, locale: str, **values: Any) -> str:
        variants = SYSTEM_TEXTS[name]
        return variants.get(locale, variants["en"]).format(**values)
