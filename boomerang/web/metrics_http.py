"""A minimal HTTP endpoint for Prometheus on the server's own loop.

``GET /metrics`` answers the text exposition format; anything else 404.
One small asyncio server instead of prometheus-client's thread server, so
nothing runs outside the loop. Requests are read with a size and time
limit, so a slow or bad client cannot hold a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
READ_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 8192


async def serve_metrics(host: str, port: int, text: Callable[[], bytes]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            if len(head) > MAX_REQUEST_BYTES:
                raise ValueError("request too large")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            if len(parts) == 3 and parts[0] in ("GET", "HEAD") \
                    and parts[1].split("?", 1)[0] == "/metrics":
                body = text()
                status, content_type = "200 OK", CONTENT_TYPE
            else:
                body, status, content_type = b"not found\n", "404 Not Found", "text/plain"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                         .encode("latin-1"))
            if parts[0] != "HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port, limit=MAX_REQUEST_BYTES)
    log.info("metrics at http://%s:%d/metrics", host, port)
    return server


__all__ = ["serve_metrics"]
