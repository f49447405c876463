"""Configuration from the environment, checked up front with messages a deployer can act on."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

_TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,100}$")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """One or more environment variables are missing or malformed."""


@dataclass(frozen=True)
class Settings:
    telegram_bot_token: str
    database_url: str | None
    telegram_api_url: str | None
    log_level: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        problems = []
        token = env.get("TELEGRAM_BOT_TOKEN", "").strip()
        if not token:
            problems.append("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and put its token here")
        elif not _TOKEN.match(token):
            problems.append("TELEGRAM_BOT_TOKEN does not look like a bot token (expected digits:letters, "
                            "as @BotFather gives it)")
        database_url = env.get("DATABASE_URL", "").strip() or None
        api_url = env.get("TELEGRAM_API_URL", "").strip().rstrip("/") or None
        if api_url is not None:
            parts = urlsplit(api_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                problems.append(f"TELEGRAM_API_URL must be an http(s) URL such as http://localhost:8081, not {api_url!r}")
        level_name = env.get("LOG_LEVEL", "INFO").strip().upper()
        if level_name not in _LEVELS:
            problems.append(f"LOG_LEVEL must be one of {', '.join(_LEVELS)}, not {level_name!r}")
            level_name = "INFO"
        if problems:
            raise SettingsError("; ".join(problems))
        return cls(token, database_url, api_url, getattr(logging, level_name))
