"""Losing an answer on purpose: abort the TCP connection before any byte of the answer.

ASGI has no message for "reset the connection", so the transport is reached through the
``receive`` callable: uvicorn's h11 and httptools protocols both hand the application the bound
method ``RequestResponseCycle.receive``, whose cycle holds the asyncio transport. The socket
gets ``SO_LINGER`` 0 so that closing it sends a reset, as a broken network would.

Where no transport can be reached (an in-process ASGI client, a server that wraps
``receive``), the answer is started and then cut off by raising
:class:`ConnectionNotAbortedError`: the client sees a broken answer instead of none.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

DROPPED = "sandbox.dropped"
"""Scope key set when an answer was dropped, for the request log."""


class ConnectionNotAbortedError(Exception):
    """Raised when an answer must be lost but the connection cannot be aborted."""


def transport_of(receive: Receive) -> asyncio.Transport | None:
    """The asyncio transport behind uvicorn's ``receive``, if it can be reached."""
    cycle: Any = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    # uvloop's transports do not derive from asyncio.Transport: check for what is used.
    usable = callable(getattr(transport, "abort", None)) and callable(
        getattr(transport, "get_extra_info", None)
    )
    return transport if usable else None


def abort(transport: asyncio.Transport) -> None:
    """Reset the connection: no answer, no orderly close."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class DroppedAnswer(Response):
    """An answer that never reaches the client."""

    def __init__(self) -> None:
        super().__init__(status_code=202)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[DROPPED] = True
        transport = transport_of(receive)
        if transport is None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 202,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
                }
            )
            raise ConnectionNotAbortedError("answer cut off after its status line")
        abort(transport)
        # The server learns of the lost connection on the next loop iteration; returning
        # before that would make it answer 500 to a connection that is gone.
        for _ in range(3):
            await asyncio.sleep(0)


__all__ = ["DROPPED", "ConnectionNotAbortedError", "DroppedAnswer", "abort", "transport_of"]
