"""Serving the sandbox with uvicorn, from Python (:func:`serve`) or the command line
(:func:`command`, also ``python -m sandbox``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any

import typer
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from sandbox.app import create_app
from sandbox.knobs import Knobs


def log_config(log_level: str) -> dict[str, Any]:
    """uvicorn's logging set-up, with the sandbox's request lines on the same handler."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["sandbox"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    return config


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8089,
    knobs: Knobs | None = None,
    users: Mapping[str, str] | None = None,
    log_level: str = "info",
) -> None:
    """Run the sandbox until interrupted (blocking)."""
    uvicorn.run(
        create_app(knobs, users=users),
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(log_level),
        access_log=False,
        timeout_keep_alive=30,
    )


def parse_users(pairs: list[str]) -> dict[str, str]:
    """``IDENTITY:KEY`` pairs as a mapping; raise :class:`typer.BadParameter` on a bad one."""
    users = {}
    for pair in pairs:
        identity, sep, key = pair.partition(":")
        if not sep or not identity or not key:
            raise typer.BadParameter(f"expected IDENTITY:KEY, got {pair.split(':')[0]!r}:...")
        users[identity] = key
    return users


def command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8089,
    latency_ms: Annotated[int, typer.Option(help="Added to every answer.")] = 0,
    confirm_after: Annotated[
        float, typer.Option(help="Seconds before an accepted invoice reaches its final state.")
    ] = 1.0,
    fail_5xx: Annotated[float, typer.Option(help="Fraction of sends answered 503.")] = 0.0,
    fail_429: Annotated[float, typer.Option(help="Fraction of sends answered 429.")] = 0.0,
    retry_after: Annotated[int, typer.Option(help="Retry-After of the 429 answers (s).")] = 1,
    drop_after_store: Annotated[
        float, typer.Option(help="Fraction of sends stored whose answer is lost.")
    ] = 0.0,
    never_confirm: Annotated[
        float, typer.Option(help="Fraction of invoices that stay PROCESSING.")
    ] = 0.0,
    error_fraction: Annotated[float, typer.Option(help="Fraction of invoices ending ERROR.")] = 0.0,
    token_ttl: Annotated[
        float | None, typer.Option(help="Seconds before a token expires (default: never).")
    ] = None,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="Skip the Finvoice XSD check.")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible randomness.")] = None,
    user: Annotated[
        list[str] | None,
        typer.Option(help="IDENTITY:KEY of a user (repeatable; default demo:demo-key)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the Heeros sandbox: the Heeros API of the contract, with knobs for faults."""
    try:
        knobs = Knobs(
            latency_ms=latency_ms,
            confirm_after_s=confirm_after,
            fail_5xx=fail_5xx,
            fail_429=fail_429,
            retry_after_s=retry_after,
            drop_after_store=drop_after_store,
            never_confirm=never_confirm,
            error_fraction=error_fraction,
            token_ttl_s=token_ttl,
            validate_schema=not no_validate,
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    serve(
        host=host,
        port=port,
        knobs=knobs,
        users=parse_users(user) if user else None,
        log_level=log_level,
    )


__all__ = ["command", "log_config", "parse_users", "serve"]
