"""The request body's size, checked before anything reads it: an ASGI middleware."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.operations.streams import media_kind


class BodyTooLarge(HTTPException):
    """Raised when a request's body grows past the limit while it is read."""

    def __init__(self, limit: int) -> None:
        mib, rest = divmod(limit, 1024 * 1024)
        size = f"{mib} MiB" if mib and not rest else f"{limit} bytes"
        super().__init__(413, f"the request body is larger than {size}")


MAX_STREAM_BYTES = 4 * 1024**3
"""The largest streamed body (NDJSON or an archive: a streamed close, read in batches):
about 800,000 invoices."""


class BodyLimit:
    """Answers 413 to a request whose body is larger than ``max_body`` (``max_stream``
    for a streamed body, which is read in batches; 400: a bad length)."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_stream: int = MAX_STREAM_BYTES) -> None:
        self.app = app
        self.max_body = max_body
        self.max_stream = max_stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        streamed = media_kind(headers.get(b"content-type", b"").decode("latin-1")) is not None
        limit = self.max_stream if streamed else self.max_body
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            status = 413 if length.isdigit() else 400
            detail = BodyTooLarge(limit).detail if status == 413 else "bad Content-Length"
            await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
            return
        await self.app(scope, self._limited(receive, limit), send)

    def _limited(self, receive: Receive, limit: int) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited


__all__ = ["MAX_STREAM_BYTES", "BodyLimit", "BodyTooLarge"]
