"""``python -m sandbox``: run the Heeros sandbox."""

from __future__ import annotations

import typer

from sandbox.server import command


def main() -> None:
    typer.run(command)


if __name__ == "__main__":
    main()

__all__ = ["main"]
