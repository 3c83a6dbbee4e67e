"""Error answers of the HTTP service: RFC 9457 problem details, and the JSON responses.

Every error is an ``application/problem+json`` document with ``type``, ``title``, ``status``,
``detail``, a stable machine-readable ``code`` and, for invalid requests, ``errors``: one item
per problem naming the offending feature (index and id) or parameter, with a JSON pointer.
Tracebacks stay in the server log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from lifecircle._files import jsonable
from lifecircle.service.queries import GEOJSON
from lifecircle.service.schemas import Problem

PROBLEM_JSON: Final = "application/problem+json"

#: Title of each status code.
TITLES: Final = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid request",
    500: "Internal server error",
    501: "Not implemented",
    503: "Service unavailable",
}


# -- JSON responses -----------------------------------------------------------------------


def dumps(data: object) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities become ``null``.

    See :func:`lifecircle._files.jsonable`.
    """
    return json.dumps(
        jsonable(data), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")


class FastJSONResponse(JSONResponse):
    """JSON without NaN/Infinity (they become null), UTF-8, compact."""

    def render(self, content: Any) -> bytes:
        """The body of ``content``."""
        return dumps(content)


class GeoJSONResponse(FastJSONResponse):
    """A GeoJSON document (``application/geo+json``)."""

    media_type = GEOJSON


# -- problem details ----------------------------------------------------------------------


class ProblemError(Exception):
    """Raised inside handlers; becomes an RFC 9457 problem detail response.

    Parameters
    ----------
    status : int
        HTTP status code.
    code : str
        Stable machine-readable code (``unknown_tier``, ``too_many_features``…).
    detail : str
        What was wrong and how to fix it.
    title : str, optional
        Default: the status code's title.
    errors : list of dict, optional
        One item per problem (``pointer``/``parameter``, ``feature``, ``detail``).
    headers : mapping, optional
        Extra response headers (``Retry-After``…).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or TITLES.get(status, "Error")
        self.errors = errors
        self.headers = dict(headers or {})


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An ``application/problem+json`` response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return Response(
        dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {})
    )


# -- problems in OpenAPI ------------------------------------------------------------------


def _problem_response(status: int, title: str, detail: str, code: str) -> dict[str, Any]:
    return {
        "description": title,
        "content": {
            PROBLEM_JSON: {
                "schema": Problem.model_json_schema(),
                "example": {
                    "type": "about:blank",
                    "title": title,
                    "status": status,
                    "detail": detail,
                    "code": code,
                },
            }
        },
    }


P400: Final = {
    400: _problem_response(
        400,
        "Bad request",
        "request body is not valid JSON: Expecting value at line 1 column 1",
        "malformed_json",
    )
}
P401: Final = {401: _problem_response(401, "Unauthorized", "missing bearer token", "unauthorized")}
P404: Final = {404: _problem_response(404, "Not found", "unknown layer 'roads'", "not_found")}
P413: Final = {
    413: _problem_response(
        413, "Content too large", "1500 features; at most 1000 per request", "too_many_features"
    )
}
P415: Final = {
    415: _problem_response(
        415,
        "Unsupported media type",
        "send the body as JSON with the header 'Content-Type: application/json'",
        "unsupported_media_type",
    )
}
P422: Final = {
    422: _problem_response(
        422,
        "Invalid request",
        "features[3].geometry.type: Input should be 'Point'",
        "invalid_request",
    )
}
P503: Final = {
    503: _problem_response(
        503, "Service unavailable", "the computation took longer than 30 s", "timeout"
    )
}


def responses(*parts: Mapping[int, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an operation: 401 (every operation) plus ``parts``."""
    out: dict[int | str, dict[str, Any]] = {}
    for part in (P401, *parts):
        for status, spec in part.items():
            out[status] = spec
    return out


# -- request validation problems ------------------------------------------------------------


def _pointer(loc: Sequence[str | int]) -> str:
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in loc)


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


#: Names pydantic puts into error locations for the members of a union type.
_UNION_TAGS: Final = frozenset(
    {"function-after", "str", "int", "float", "bool", "none", "list", "dict", "tuple", "int-str"}
)


def validation_problem(exc: RequestValidationError, instance: str) -> Response:
    """The problem detail of a request FastAPI could not validate.

    Malformed JSON is a 400 (``malformed_json``); anything else a 422 (``invalid_request``)
    listing up to 50 problems, each naming the feature (index and id) or parameter.
    """
    errs = list(exc.errors())
    body = getattr(exc, "body", None)
    for e in errs:
        if e.get("type") == "json_invalid":
            msg = e.get("ctx", {}).get("error", "invalid JSON")
            return problem(
                400, "malformed_json", f"request body is not valid JSON: {msg}", instance=instance
            )
    items = []
    for e in errs[:50]:
        loc = list(e.get("loc", ()))
        where = loc[0] if loc else "body"
        path = loc[1:]
        # drop pydantic's union/tagged-type markers from the path
        path = [p for p in path if not (isinstance(p, str) and ("[" in p or p in _UNION_TAGS))]
        text = str(e.get("msg", "invalid"))
        item: dict[str, Any] = {"detail": text}
        if where == "body":
            item["pointer"] = _pointer(path)
            label = _dotted(path) or "body"
            feat = _feature_of(path)
            if feat is not None:
                item["feature"] = feat[0]
                fid = _feature_id(body, feat[1])
                inner = _dotted(path[len(feat[1]) :]) or "feature"
                label = (
                    f"{_dotted(feat[1])}"
                    + (f" (id {fid!r})" if fid is not None else "")
                    + f" {inner}"
                )
            item["detail"] = f"{label}: {text}"
        else:
            item["parameter"] = ".".join(map(str, path)) or str(where)
            item["detail"] = f"{where} parameter {item['parameter']!r}: {text}"
        items.append(item)
    first = items[0]["detail"] if items else "invalid request"
    more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
    return problem(422, "invalid_request", first + more, instance=instance, errors=items)


def _feature_of(path: Sequence[str | int]) -> tuple[int, list[str | int]] | None:
    """``(feature index, path to the feature)`` if ``path`` points into a features array."""
    for i, p in enumerate(path[:-1]):
        nxt = path[i + 1]
        if p == "features" and isinstance(nxt, int):
            return nxt, list(path[: i + 2])
    return None


def _feature_id(body: object, path: Sequence[str | int]) -> str | int | None:
    node: Any = body
    try:
        for p in path:
            node = node[p]
        fid = node.get("id") if isinstance(node, dict) else None
    except (KeyError, IndexError, TypeError):
        return None
    return fid if isinstance(fid, str | int) and not isinstance(fid, bool) else None


__all__ = [
    "PROBLEM_JSON",
    "FastJSONResponse",
    "GeoJSONResponse",
    "ProblemError",
    "dumps",
    "problem",
    "responses",
    "validation_problem",
]
