"""A virtual host of its own on the local RabbitMQ (guest/guest), for one test.

Every machine that runs the suite has RabbitMQ on 127.0.0.1:5672; a test takes a new
virtual host with ``rabbitmqctl add_vhost`` and deletes it afterwards, so that no
queue or message outlives it. Under CI a missing RabbitMQ fails the test; elsewhere
it is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=120, check=False
    )


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: these machines run RabbitMQ on 127.0.0.1:5672")
    pytest.skip(reason)


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """The AMQP URL of a new virtual host, deleted when the block ends."""
    if shutil.which("rabbitmqctl") is None:
        _missing("RabbitMQ is not installed")
    vhost = f"heeros-test-{uuid.uuid4().hex[:10]}"
    added = rabbitmqctl("add_vhost", vhost)
    if added.returncode != 0:
        _missing(f"RabbitMQ is not running: {added.stderr.strip()[:200]}")
    try:
        allowed = rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        assert allowed.returncode == 0, allowed.stderr
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


__all__ = ["rabbitmq_vhost", "rabbitmqctl"]
