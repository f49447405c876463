"""A correlation id per update, on every log line written while handling it.

The same short code is shown to the user in an apology, so a support request
leads straight to the log lines.
"""

from __future__ import annotations

import contextvars
import logging
import secrets

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"


def new_correlation_id() -> str:
    return secrets.token_hex(4)


_installed = False


def install_record_factory() -> None:
    """Stamp `correlation_id` on every log record at creation, whichever library logs it."""
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def stamped(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.correlation_id = correlation_id.get()
        return record

    logging.setLogRecordFactory(stamped)
    _installed = True


def configure_logging(level: int = logging.INFO) -> None:
    install_record_factory()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # transitions logs every state change at INFO; the engine logs what matters.
    logging.getLogger("transitions").setLevel(max(level, logging.WARNING))
