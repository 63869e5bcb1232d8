"""What the commands read from the environment, and how a command refuses in one line."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.markup import escape

from producer.cli.console import errors
from worker.config.settings import Settings
from worker.logs import url_without_password


def error_line(message: str) -> None:
    """``error: message`` on standard error as one line, never wrapped."""
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def refuse(message: str) -> typer.Exit:
    """The error in one line, and the command's end with status 2."""
    error_line(message)
    return typer.Exit(2)


def settings_of_environment() -> Settings:
    """The settings of the environment; invalid ones end the command in one line."""
    try:
        return Settings()
    except ValidationError as invalid:
        raise refuse(invalid_settings(invalid)) from None


def invalid_settings(invalid: ValidationError) -> str:
    """What is wrong with the settings, each variable named; never the value given."""
    said = []
    for error in invalid.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        name = "HEEROS_" + "_".join(str(part) for part in error["loc"]).upper()
        said.append(message if not error["loc"] or name in message else f"{name}: {message}")
    return "; ".join(said)


def redis_named() -> str:
    """Which Redis the settings name (and the broker, when it is another), passwords hidden."""
    try:
        settings = Settings()
    except ValidationError:
        return "HEEROS_REDIS_URL"
    named = f"Redis at {url_without_password(settings.redis_url)}"
    if settings.broker != settings.redis_url:
        named += f", the broker at {url_without_password(settings.broker)}"
    return named


__all__ = ["error_line", "invalid_settings", "redis_named", "refuse", "settings_of_environment"]
