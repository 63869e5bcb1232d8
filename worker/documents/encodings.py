"""The two document encodings Opter and Heeros share: UTF-8 and ISO-8859-15.

One table for the whole exporter: the export configuration, the Opter XML
writer, the Finvoice renderer and the wire format all name encodings through it.
"""

from __future__ import annotations

import codecs
from typing import Literal

from worker.errors import ConfigError

Encoding = Literal["UTF-8", "ISO-8859-15"]
ENCODINGS: tuple[Encoding, ...] = ("UTF-8", "ISO-8859-15")

# Keyed by codecs' canonical names, so that any spelling Python knows (utf8, latin9) works.
_CANONICAL: dict[str, Encoding] = {"utf-8": "UTF-8", "iso8859-15": "ISO-8859-15"}
_CODECS: dict[Encoding, str] = {"UTF-8": "utf-8-sig", "ISO-8859-15": "iso8859-15"}


def encoding_named(name: str) -> Encoding:
    """The encoding ``name`` stands for, in its canonical spelling.

    Raises ConfigError for anything but UTF-8 and ISO-8859-15 (in any spelling).
    """
    try:
        canonical = codecs.lookup(name.strip()).name
    except (LookupError, TypeError, ValueError, AttributeError):
        canonical = ""
    found = _CANONICAL.get(canonical)
    if found is None:
        raise ConfigError(f"encoding {name!r} is not supported (use UTF-8 or ISO-8859-15)")
    return found


def python_codec(encoding: Encoding) -> str:
    """The codec that decodes a document in ``encoding``; a UTF-8 byte-order mark is dropped."""
    return _CODECS[encoding]


__all__ = ["ENCODINGS", "Encoding", "encoding_named", "python_codec"]
