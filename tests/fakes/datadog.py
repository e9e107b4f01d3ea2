"""An HTTP fake of Datadog's metric query (v1) and series intake (v2) for the real datadog-api-client.

Standard library only: a ``ThreadingHTTPServer`` in a background thread serving
``GET /api/v1/query`` (query timeseries points) and ``GET /api/v1/validate`` in the shapes
of docs.datadoghq.com/api/latest/metrics and /authentication: a ``status``/``res_type``
envelope with ``from_date``/``to_date`` in milliseconds, and ``series`` whose ``pointlist``
holds ``[milliseconds, value or null]`` pairs, ``interval`` in seconds, ``scope``,
``expression``, ``metric``, ``aggr`` and a two-element ``unit``. Errors come in Datadog's
``{"errors": [...]}`` shape; a 429 carries the ``X-RateLimit-*`` headers.

In a test::

    with DatadogFake() as fake:
        fake.script("sum:m{service:a}.as_count()", rate_limited(retry_after=1), ok([5, 7]))
        configuration = Configuration(host=fake.url)   # plus the fake's two keys
        ...
        assert fake.requests[-1].params["query"] == "sum:m{service:a}.as_count()"

Each scripted query answers with its replies in order, the last one repeating. A query
nobody scripted answers like Datadog does for a metric with no data: ``ok`` with no series.

``POST /api/v2/series`` takes a ``MetricPayload`` (``{"series": [{"metric", "type", "points":
[{"timestamp", "value"}], "tags", ...}]}``, plain or with ``Content-Encoding`` gzip or
deflate) with the API key alone, answers ``202 {"errors": []}``, and keeps each series in
``fake.series``; a payload that is not one gets 400 with its ``errors``.
Keys are checked on every request: a wrong or missing ``DD-API-KEY`` or
``DD-APPLICATION-KEY`` gets Datadog's 403 ``{"errors": ["Forbidden"]}``.
"""

from __future__ import annotations

import json
import math
import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes._http import FakeHandler, FakeHTTPServer

API_KEY = "fake-dd-api-key"
APP_KEY = "fake-dd-application-key"

_QUERY = re.compile(r"^\s*(?:(?P<aggr>\w+):)?(?P<metric>[\w.]+)\{(?P<scope>[^}]*)\}")

MILLISECOND = {
    "family": "time",
    "id": 10,
    "name": "millisecond",
    "plural": "milliseconds",
    "scale_factor": 0.001,
    "short_name": "ms",
}
SECOND = {
    **MILLISECOND,
    "id": 9,
    "name": "second",
    "plural": "seconds",
    "scale_factor": 1.0,
    "short_name": "s",
}
REQUEST = {
    "family": "network",
    "id": 19,
    "name": "request",
    "plural": "requests",
    "scale_factor": 1.0,
    "short_name": "req",
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, a body, headers, and an optional delay before it."""

    status: int = 200
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    # For `ok`: the values of successive points, each one `interval` seconds apart.
    values: tuple[float | None, ...] | None = None
    interval: int = 60
    unit: dict[str, Any] | None = None
    series_count: int = 1


def ok(
    values: Sequence[float | None],
    *,
    interval: int = 60,
    unit: dict[str, Any] | None = None,
    series: int = 1,
) -> Reply:
    """A time series with these point values, from the start of the asked window."""
    return Reply(values=tuple(values), interval=interval, unit=unit, series_count=series)


def no_values() -> Reply:
    """What Datadog answers when nothing matches the scope: status ok, no series."""
    return Reply(values=(), series_count=0)


def all_null(points: int = 5) -> Reply:
    return ok([None] * points)


def nan(points: int = 3) -> Reply:
    return ok([math.nan] * points)


def unauthorized() -> Reply:
    return Reply(401, {"errors": ["Unauthorized"]})


def forbidden() -> Reply:
    return Reply(403, {"errors": ["Forbidden"]})


def bad_query(message: str = "Error parsing query: unable to parse") -> Reply:
    return Reply(400, {"errors": [message]})


def rate_limited(*, retry_after: str | None = None, reset: int | None = 1) -> Reply:
    """A 429 with Datadog's rate-limit headers; ``X-RateLimit-Reset`` is seconds until the reset."""
    headers = [
        ("X-RateLimit-Limit", "100"),
        ("X-RateLimit-Period", "60"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Name", "metrics_query"),
    ]
    if reset is not None:
        headers.append(("X-RateLimit-Reset", str(reset)))
    if retry_after is not None:
        headers.append(("Retry-After", retry_after))
    return Reply(429, {"errors": ["Too many requests"]}, tuple(headers))


def server_error(status: int = 503) -> Reply:
    return Reply(
        status, {"errors": ["Service Unavailable" if status == 503 else "Internal Server Error"]}
    )


def slow(seconds: float, then: Reply | None = None) -> Reply:
    """``then`` (an empty ok by default) after ``seconds``: longer than the client's timeout."""
    base = then or no_values()
    return Reply(
        base.status,
        base.body,
        base.headers,
        seconds,
        base.values,
        base.interval,
        base.unit,
        base.series_count,
    )


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any = None


@dataclass
class _Script:
    replies: list[Reply] = field(default_factory=list)
    served: int = 0

    def next(self) -> Reply:
        reply = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return reply


class _Handler(FakeHandler):
    owner: DatadogFake

    def _serve(self) -> None:
        reply, body = self.owner.handle(
            self.command, self.path, self.header_map(), self.read_body()
        )
        if reply.delay and self.owner.pause(reply.delay):
            return
        # Python's json writes NaN as a bare `NaN`, which Python clients read back as nan.
        payload = json.dumps(body).encode() if body is not None else b""
        self.send(reply.status, payload, "application/json", reply.headers)

    do_GET = do_POST = _serve


class DatadogFake(FakeHTTPServer):
    """The fake server; start it with ``with DatadogFake() as fake`` or ``start()``/``stop()``."""

    handler = _Handler
    thread_name = "datadog-fake"

    def __init__(self, api_key: str = API_KEY, app_key: str = APP_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.app_key = app_key
        self.requests: list[Recorded] = []
        self.validate_reply: Reply | None = None
        self.series: list[dict[str, Any]] = []
        self._scripts: dict[str, _Script] = {}
        self._lock = threading.Lock()

    # -- control --------------------------------------------------------------------

    def script(self, query: str, *replies: Reply) -> None:
        """Answer ``query`` (the exact query string) with ``replies`` in order, the last repeating."""
        if not replies:
            raise ValueError("script at least one reply")
        with self._lock:
            self._scripts[query] = _Script(list(replies))

    def queries(self) -> list[str]:
        return [r.params.get("query", "") for r in self.requests if r.path == "/api/v1/query"]

    # -- serving --------------------------------------------------------------------

    def _reply_for(self, query: str) -> Reply:
        with self._lock:
            script = self._scripts.get(query)
            return script.next() if script else no_values()

    def _authorized(self, headers: dict[str, str], *, need_app_key: bool) -> bool:
        if headers.get("dd-api-key") != self.api_key:
            return False
        return not need_app_key or headers.get("dd-application-key") == self.app_key

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes = b""
    ) -> tuple[Reply, Any]:
        split = urlsplit(raw_path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        payload, problem = _decoded(raw_body, headers.get("content-encoding", ""))
        with self._lock:
            self.requests.append(Recorded(method, split.path, params, headers, payload))
        if method == "POST" and split.path == "/api/v2/series":
            return self._intake(headers, payload, problem)
        if method != "GET":
            return Reply(405, {"errors": ["Method Not Allowed"]}), None
        if split.path == "/api/v1/validate":
            if self.validate_reply is not None:
                return self.validate_reply, self.validate_reply.body
            if not self._authorized(headers, need_app_key=False):
                return forbidden(), forbidden().body
            return Reply(200), {"valid": True}
        if split.path != "/api/v1/query":
            return Reply(404, {"errors": ["Not found"]}), {"errors": ["Not found"]}
        if not self._authorized(headers, need_app_key=True):
            return forbidden(), forbidden().body
        missing = [p for p in ("from", "to", "query") if p not in params]
        if missing:
            body = {"errors": [f"Missing required parameter(s): {', '.join(missing)}"]}
            return Reply(400, body), body
        try:
            start, end = int(params["from"]), int(params["to"])
        except ValueError:
            body = {"errors": ["`from` and `to` must be integers (seconds since the epoch)"]}
            return Reply(400, body), body
        reply = self._reply_for(params["query"])
        if reply.values is None:
            return reply, reply.body
        return reply, _time_series(params["query"], start, end, reply)

    def _intake(
        self, headers: dict[str, str], payload: Any, problem: str | None
    ) -> tuple[Reply, Any]:
        """``POST /api/v2/series``: the API key alone authorizes a submission."""
        if not self._authorized(headers, need_app_key=False):
            return forbidden(), forbidden().body
        errors = [problem] if problem else _series_errors(payload)
        if errors:
            body: dict[str, Any] = {"errors": errors}
            return Reply(400, body), body
        with self._lock:
            self.series.extend(payload["series"])
        return Reply(202, {"errors": []}), {"errors": []}


def _decoded(raw: bytes, encoding: str) -> tuple[Any, str | None]:
    """The JSON body, inflated as its Content-Encoding says; or None and what is wrong."""
    if not raw:
        return None, None
    try:
        if encoding == "gzip":
            raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        elif encoding not in ("", "identity"):
            return None, f"Unsupported Content-Encoding: {encoding}"
        return json.loads(raw), None
    except (zlib.error, ValueError):
        return None, "Payload is not valid JSON"


def _series_errors(payload: Any) -> list[str]:
    """What makes ``payload`` no MetricPayload (docs.datadoghq.com/api/latest/metrics/#submit-metrics)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("series"), list):
        return ["Payload must be an object with a `series` list"]
    errors = []
    for i, series in enumerate(payload["series"]):
        if not isinstance(series, dict) or not isinstance(series.get("metric"), str):
            errors.append(f"series[{i}]: `metric` is required")
            continue
        if series.get("type", 0) not in (0, 1, 2, 3):
            errors.append(
                f"series[{i}]: `type` must be 0 (unspecified), 1 (count), 2 (rate) or 3 (gauge)"
            )
        points = series.get("points")
        if not isinstance(points, list) or not points:
            errors.append(f"series[{i}]: `points` is required")
            continue
        for j, point in enumerate(points):
            value = point.get("value") if isinstance(point, dict) else None
            stamp = point.get("timestamp") if isinstance(point, dict) else None
            if (
                not isinstance(stamp, int)
                or isinstance(value, bool)
                or not isinstance(value, int | float)
            ):
                errors.append(f"series[{i}].points[{j}]: `timestamp` and `value` are required")
    return errors


def _time_series(query: str, start: int, end: int, reply: Reply) -> dict[str, Any]:
    """A `/api/v1/query` answer in the shape Datadog publishes (resp_version 1)."""
    match = _QUERY.match(query)
    aggr = match["aggr"] if match and match["aggr"] else "avg"
    metric = match["metric"] if match else query
    scope = match["scope"] if match else "*"
    interval = reply.interval
    first = start - start % interval
    series: list[dict[str, Any]] = []
    values = reply.values or ()
    stamps = [(first + i * interval) * 1000 for i in range(len(values))]
    for index in range(reply.series_count):
        points = [[float(ts), v] for ts, v in zip(stamps, values, strict=True)]
        series.append(
            {
                "unit": [reply.unit, None],
                "query_index": 0,
                "aggr": aggr,
                "metric": metric,
                "tag_set": [f"host:host-{index}"] if reply.series_count > 1 else [],
                "expression": query,
                "scope": scope if reply.series_count == 1 else f"{scope},host:host-{index}",
                "display_name": metric,
                "interval": interval,
                "length": len(points),
                "start": stamps[0] if stamps else first * 1000,
                "end": stamps[-1] + interval * 1000 - 1 if stamps else end * 1000,
                "pointlist": points,
                "attributes": {},
            }
        )
    return {
        "status": "ok",
        "res_type": "time_series",
        "resp_version": 1,
        "query": query,
        "from_date": start * 1000,
        "to_date": end * 1000,
        "series": series,
        "values": [],
        "times": [],
        "message": "",
        "group_by": ["host"] if reply.series_count > 1 else [],
    }
