"""The HTTP/1.1 protocol of the service: uvicorn's h11 protocol with a header-read timeout.

uvicorn closes idle keep-alive connections, but a client that sends its request line and then
trickles the headers one byte at a time holds a connection (and a file descriptor) forever.
:class:`HeaderTimeoutProtocol` closes a connection whose request headers are not complete within
:data:`HEADER_TIMEOUT_ENV` seconds (default 10) of the connection opening or of the previous
response. Body reads are timed out by :class:`lifecircle.service.middleware.GuardMiddleware`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Final

from uvicorn.protocols.http.h11_impl import H11Protocol

#: Environment variable holding the header-read timeout in seconds (set by ``lifecircle serve``,
#: read in every worker process).
HEADER_TIMEOUT_ENV: Final = "LIFECIRCLE_HEADER_TIMEOUT_S"
DEFAULT_HEADER_TIMEOUT_S: Final = 10.0


def header_timeout_s() -> float:
    """The header-read timeout in seconds (from :data:`HEADER_TIMEOUT_ENV`)."""
    try:
        value = float(os.environ.get(HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT_S))
    except ValueError:
        return DEFAULT_HEADER_TIMEOUT_S
    return value if value > 0 else DEFAULT_HEADER_TIMEOUT_S


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol that closes connections whose headers arrive too slowly."""

    _header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(header_timeout_s(), self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not before:  # a request's headers are in
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)
