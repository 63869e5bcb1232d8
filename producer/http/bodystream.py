"""A request body read as a file by a worker thread while it still arrives.

A streamed close reads its body in batches in a thread of its own; the event loop
passes the body's chunks to it through a small buffer (:data:`BUFFERED_CHUNKS`), so the
body is never held whole, and a client that sends faster than the close records waits.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import IO, TypeVar

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.from_thread import run as from_loop

BUFFERED_CHUNKS = 16
"""Body chunks held between the event loop and the reading thread."""

Result = TypeVar("Result")


class BodyReader(io.RawIOBase):
    """The body as a binary file: ``read`` waits for the next chunk (in a worker thread)."""

    def __init__(self, chunks: ObjectReceiveStream[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._held = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._held and not self._ended:
            try:
                self._held = from_loop(self._chunks.receive)
            except anyio.EndOfStream:
                self._ended = True
        size = min(len(buffer), len(self._held))
        buffer[:size] = self._held[:size]
        self._held = self._held[size:]
        return size


async def read_in_thread(
    body: AsyncIterator[bytes], reader: Callable[[IO[bytes]], Result]
) -> Result:
    """``reader(body as a file)`` in a worker thread while the body arrives; whatever
    ``reader`` leaves unread is drained, so the client gets its answer."""
    send: ObjectSendStream[bytes]
    receive: ObjectReceiveStream[bytes]
    send, receive = anyio.create_memory_object_stream[bytes](BUFFERED_CHUNKS)

    async def pump() -> None:
        async with send:
            async for chunk in body:
                if chunk:
                    # Once the reader is done, the rest is drained unread.
                    with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await send.send(chunk)

    def read() -> Result:
        try:
            raw = BodyReader(receive)
            with io.BufferedReader(raw, buffer_size=256 * 1024) as file:
                return reader(file)
        finally:
            from_loop(receive.aclose)  # closed on the loop: the pump then drains the rest

    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(pump)
        try:
            result = await anyio.to_thread.run_sync(read)
        except Exception as error:  # raised as itself once the body is drained
            failure = error
    if failure is not None:
        raise failure
    return result


__all__ = ["BUFFERED_CHUNKS", "BodyReader", "read_in_thread"]
