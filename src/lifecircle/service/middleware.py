"""ASGI middleware of the HTTP service: the access log, and the guard (token, media type, size).

Order, outermost first: :class:`AccessLogMiddleware`, CORS (when configured, so that 401/413
answers carry CORS headers), :class:`GuardMiddleware`, the app.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Final

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifecircle.service.problems import problem
from lifecircle.service.state import ServiceState

#: Logger of the access log: one line per request.
ACCESS_LOGGER: Final = "lifecircle.service.access"
access_logger = logging.getLogger(ACCESS_LOGGER)


class AccessLogMiddleware:
    """Outermost layer: one access log line per request (client, method, path, status, ms)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and log its status and latency."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            ms = 1000.0 * (time.perf_counter() - t0)
            client = scope.get("client") or ("-", 0)
            access_logger.info(
                "%s %s %s %d %.1f ms",
                client[0],
                scope.get("method", "-"),
                scope.get("path", ""),
                status["code"],
                ms,
            )


class GuardMiddleware:
    """Bearer token, JSON media type of bodies, and the body size limit (inside CORS).

    The body is read here (at most ``max_body_bytes`` + 1 bytes) and replayed to the app, so an
    oversized upload is refused with 413 however it is sent (with or without Content-Length).

    Parameters
    ----------
    app : ASGI app
    state : ServiceState
        Gives the token and :attr:`Limits.max_body_bytes`.
    """

    def __init__(self, app: ASGIApp, *, state: ServiceState) -> None:
        self.app = app
        self.token = state.token
        self.max_body = state.limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the request with a problem detail, or pass it on with its body replayed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        resp = self._refuse(scope) or self._check_media_type(scope)
        body = b""
        if resp is None:
            body_or_resp = await self._read_body(scope, receive)
            if isinstance(body_or_resp, Response):
                resp = body_or_resp
            else:
                body = body_or_resp
        if resp is not None:
            await resp(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _refuse(self, scope: Scope) -> Response | None:
        if self.token is None or scope.get("method") == "OPTIONS":
            return None
        auth = ""
        for k, v in scope.get("headers", []):
            if k == b"authorization":
                auth = v.decode("latin-1")
                break
        scheme, _, given = auth.partition(" ")
        hdr = {"WWW-Authenticate": 'Bearer realm="lifecircle"'}
        if scheme.lower() != "bearer" or not given:
            return problem(
                401,
                "unauthorized",
                "this service needs a bearer token: send the header "
                "'Authorization: Bearer <token>'",
                instance=scope.get("path"),
                headers=hdr,
            )
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return problem(
                401,
                "unauthorized",
                "the bearer token is wrong",
                instance=scope.get("path"),
                headers={"WWW-Authenticate": 'Bearer realm="lifecircle", error="invalid_token"'},
            )
        return None

    def _check_media_type(self, scope: Scope) -> Response | None:
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return None
        ctype = ""
        for k, v in scope.get("headers", []):
            if k == b"content-type":
                ctype = v.decode("latin-1")
                break
        sub = ctype.partition(";")[0].strip().lower().partition("/")[2]
        if sub == "json" or sub.endswith("+json"):
            return None
        return problem(
            415,
            "unsupported_media_type",
            f"send the body as JSON with the header "
            f"'Content-Type: application/json' (got {ctype or 'no Content-Type'!r})",
            instance=scope.get("path"),
        )

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | Response:
        limit = self.max_body
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    return problem(
                        400,
                        "bad_content_length",
                        "Content-Length is not a number",
                        instance=scope.get("path"),
                    )
                if declared > limit:
                    return problem(
                        413,
                        "body_too_large",
                        f"request body has {declared:,} bytes; this "
                        f"service accepts at most {limit:,}",
                        instance=scope.get("path"),
                    )
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                return problem(
                    413,
                    "body_too_large",
                    f"request body exceeds {limit:,} bytes, the most this service accepts",
                    instance=scope.get("path"),
                )
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        return b"".join(chunks)


__all__ = ["ACCESS_LOGGER", "AccessLogMiddleware", "GuardMiddleware"]
