"""Where a pydantic validation error is, written as a path a person can read."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def field_path(loc: Iterable[int | str], *, key: Callable[[str], str] = str) -> str:
    """A pydantic error location as a path: ``("rows", 0, "unit_price")`` -> ``rows[0].unit_price``.

    ``key`` writes each name, for a format that quotes some of them (TOML's keys).
    An empty location gives an empty path.
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = key(part)
            path += f".{name}" if path else name
    return path


__all__ = ["field_path"]
