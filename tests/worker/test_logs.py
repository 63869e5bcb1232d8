"""Structured log lines: one per event, key=value, secrets cut out."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from worker import logs
from worker.logs import configure_logging, quote, redact, register_secret, url_without_password


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging(logging.INFO, stream=out)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)
    logs._secrets.clear()


def test_one_line_per_event_with_time_level_logger_message(stream: io.StringIO) -> None:
    logging.getLogger("worker.pipeline").info(
        "run=%s invoice=%s export=%s sent as %s", "2026-11-0001", "1001", "A", "HX-1"
    )
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("time=")
    assert " level=INFO logger=worker.pipeline " in line
    assert line.endswith('message="run=2026-11-0001 invoice=1001 export=A sent as HX-1"')


def test_context_fields_from_extra(stream: io.StringIO) -> None:
    logging.getLogger("worker.celery.tasks").warning(
        "failed", extra={"run": "R-1", "invoice": "1001", "export": "Heeros (API)"}
    )
    line = stream.getvalue().strip()
    assert 'run=R-1 invoice=1001 export="Heeros (API)" message=failed' in line


def test_line_breaks_and_tracebacks_stay_on_one_line(stream: io.StringIO) -> None:
    try:
        raise ValueError("first\nsecond")
    except ValueError:
        logging.getLogger("x").exception("it broke\nbadly")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert 'message="it broke\\nbadly"' in lines[0]
    assert "exc=" in lines[0] and "ValueError: first\\nsecond" in lines[0]


def test_a_registered_secret_never_reaches_a_line(stream: io.StringIO) -> None:
    register_secret("ck-very-secret-9931")
    register_secret("")
    register_secret(None)
    log = logging.getLogger("worker.heeros.client")
    log.info("login with %s failed", "ck-very-secret-9931")
    try:
        raise RuntimeError("echoed ck-very-secret-9931")
    except RuntimeError:
        log.exception("boom")
    text = stream.getvalue()
    assert "ck-very-secret-9931" not in text
    assert "login with [redacted] failed" in text
    assert "RuntimeError: echoed [redacted]" in text


def test_the_filter_also_cleans_records_for_other_handlers(stream: io.StringIO) -> None:
    register_secret("tok-123456")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", ("tok-123456",), None)
    assert logs.RedactSecrets().filter(record)
    assert record.getMessage() == "token [redacted]"


def test_configuring_twice_keeps_one_handler(stream: io.StringIO) -> None:
    configure_logging("INFO", stream=stream)
    logging.getLogger("y").info("once")
    assert stream.getvalue().count("message=once") == 1


def test_quote_and_redact() -> None:
    assert quote("plain") == "plain"
    assert quote("") == '""'
    assert quote('say "hi"') == '"say \\"hi\\""'
    assert quote("a=b") == '"a=b"'
    assert quote("tab\there") == '"tab\\x09here"'
    assert redact("nothing registered") == "nothing registered"


def test_a_short_secret_is_redacted_too(stream: io.StringIO) -> None:
    for secret in ("k9", "x"):
        register_secret(secret)
    logging.getLogger("x").info("keys %s and %s", "k9", "x")
    assert 'message="keys [redacted] and [redacted]"' in stream.getvalue()


def test_a_url_without_its_password() -> None:
    assert url_without_password("redis://:pw-9931@redis:6379/0") == "redis://:***@redis:6379/0"
    assert (
        url_without_password("rediss://app:pw@r.example:6380") == "rediss://app:***@r.example:6380"
    )
    assert url_without_password("redis://app@redis/1") == "redis://app@redis/1"
    assert url_without_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert url_without_password("memory://") == "memory://"
    hidden = url_without_password("redis://redis:6379/0?password=pw-1&db=2")
    assert "pw-1" not in hidden and "db=2" in hidden
    assert url_without_password("redis://:p@ss:w@rd@host/0") == "redis://:***@host/0"
