"""Logging: one record per line (``APP_LOG_FORMAT``), the app's and uvicorn's alike.

``text``: ``<time> <level> <logger> <message> key=value ...`` with the record's structured
fields (``extra=``); ``json``: one JSON object per record (python-json-logger), those fields
as its keys. uvicorn's access line becomes a ``request`` record with its fields.
"""

from __future__ import annotations

import json
import logging
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""The standard attributes each JSON record has (structured fields come after them)."""
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
ACCESS_LOGGER = "uvicorn.access"
ACCESS_FIELDS = ("client", "method", "path", "http_version", "status_code")
"""The arguments of uvicorn's access line (``'%s - "%s %s HTTP/%s" %d'``), in order."""
UVICORN_ONLY = ("color_message",)
"""Attributes uvicorn adds for its own coloured formatter: not fields of the record."""

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", *UVICORN_ONLY}


def _text_value(value: object) -> str:
    """A field's value in ``key=value``: quoted (JSON) when it holds spaces, quotes or ``=``."""
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=\n') else text


class KeyValueFormatter(logging.Formatter):
    """``<time> <level> <logger> <message> key=value ...`` for the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        return " ".join([line, *(f"{k}={_text_value(v)}" for k, v in fields.items())])


class StructuredAccess(logging.Filter):
    """Turns uvicorn's access line into a ``request`` record with its fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.name == ACCESS_LOGGER
            and isinstance(record.args, tuple)
            and len(record.args) == len(ACCESS_FIELDS)
        ):
            fields = dict(zip(ACCESS_FIELDS, record.args, strict=True))
            record.__dict__.update(event="request", **fields)
            record.msg, record.args = "request", ()
        for name in UVICORN_ONLY:
            record.__dict__.pop(name, None)
        return True


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of ``APP_LOG_FORMAT``."""
    if log_format == "json":
        return JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES)
    return KeyValueFormatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """One handler on the root logger for every record; uvicorn's loggers go through it
    (serve with ``log_config=None`` so that uvicorn does not install its own)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    handler.addFilter(StructuredAccess())
    logging.basicConfig(level=level.upper(), handlers=[handler])
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
