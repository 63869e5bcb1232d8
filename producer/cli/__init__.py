"""The ``heeros-export`` command line: the commands, the demo and the local processes
it starts (Redis, the sandbox, workers).
"""

from __future__ import annotations

from producer.cli.commands import cli, main

__all__ = ["cli", "main"]
