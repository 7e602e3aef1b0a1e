"""The log says what matters by default: no line per refused request or per routine queue task,
every 5xx still an error (its traceback comes from agentdeck.errors); LOG_LEVEL=DEBUG shows it
all."""

from __future__ import annotations

import logging

import pytest

from config.settings import logging_config


def records_of(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


@pytest.mark.django_db
def test_a_4xx_is_not_logged(client, caplog):
    caplog.set_level(logging.DEBUG, logger="root")  # capture all that reaches the handlers

    assert client.get("/api/v1/nope").status_code == 404
    assert client.get("/api/v1/me").status_code == 401

    assert records_of(caplog, "django.request") == []


@pytest.mark.django_db
@pytest.mark.urls("tests.core.urls_boom")
def test_a_5xx_is_still_logged_as_an_error(client, caplog):
    client.raise_request_exception = False

    assert client.get("/api/v1/plain-boom").status_code == 500

    [record] = records_of(caplog, "django.request")
    assert record.levelno == logging.ERROR
    assert "/api/v1/plain-boom" in record.getMessage()


def test_the_queues_routine_lines_are_quiet_and_its_failures_are_not():
    queue = logging.getLogger("django-q")

    assert not queue.isEnabledFor(logging.INFO)  # "created task ... from schedule", "Processed"
    assert queue.isEnabledFor(logging.ERROR)  # "Failed [...]"


def test_log_level_debug_shows_the_routine_lines_too():
    loggers = logging_config("DEBUG")["loggers"]

    for name in ("django-q", "django.request", "daphne", "sentence_transformers"):
        assert loggers[name]["level"] == "DEBUG", name


def test_a_stricter_log_level_is_not_loosened_for_the_quiet_loggers():
    loggers = logging_config("ERROR")["loggers"]

    assert loggers["django-q"]["level"] == "ERROR"
    assert loggers["django.request"]["level"] == "ERROR"
