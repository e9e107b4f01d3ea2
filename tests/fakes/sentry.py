"""An HTTP fake of Sentry's sessions API (release health) and organization details.

``GET /api/0/organizations/{org}/sessions/`` as docs.sentry.io/api/releases/retrieve-release-
health-session-statistics describes it: repeated ``field`` (``sum(session)``,
``count_unique(user)``, ``crash_rate(user)``, ``crash_free_rate(user)``...) and ``groupBy``
(``release``, ``environment``, ``project``, ``session.status``), ``project``, ``query``
(``release:"..."``, ``environment:"..."``), ``start``/``end`` or ``statsPeriod``, and
``interval``; the answer has ``start``, ``end``, ``intervals``, ``query`` and ``groups``, each
with ``by``, ``totals`` and ``series``. As Sentry does, a rate field cannot be grouped by
``session.status`` (400). ``GET /api/0/organizations/{org}/`` answers the organization.

Auth is ``Authorization: Bearer TOKEN``; anything else is 401 ``{"detail": "Invalid token"}``.
``fake.faults`` scripts other answers (403, 404, 429, 5xx) and ``fake.delay`` slows them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes._http import FakeHandler, FakeHTTPServer, Fault, take_fault

TOKEN = "sntrys_fake_token"
ORG = "triptrip"
PROJECT_ID = "4505"

_FIELDS = {
    "sum(session)",
    "count_unique(user)",
    "crash_rate(session)",
    "crash_rate(user)",
    "crash_free_rate(session)",
    "crash_free_rate(user)",
}
_GROUPS = {"release", "environment", "project", "session.status"}


def fault(status: int, *, retry_after: float | None = None, **kw: Any) -> Fault:
    detail = {
        403: "You do not have permission to perform this action.",
        404: "The requested resource does not exist",
        429: "You are attempting to use this endpoint too frequently. Limit is 40 requests in 1 seconds",
    }.get(status, "Internal Error")
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after is not None:
        headers = (("Retry-After", f"{retry_after:g}"),)
    return Fault(status, {"detail": detail}, headers, **kw)


@dataclass
class Hour:
    """One hour of one release: users seen, and how many of them crashed."""

    release: str
    start: datetime
    users: int
    crashed: int
    sessions: int = 0
    environment: str = "production"


@dataclass
class Request:
    path: str
    params: dict[str, list[str]] = field(default_factory=dict)


class _Handler(FakeHandler):
    owner: SentryFake

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        params = parse_qs(split.query)
        owner = self.owner
        with owner.lock:
            owner.requests.append(Request(split.path, params))
        if owner.delay and owner.pause(owner.delay):
            return
        if self.headers.get("Authorization") != f"Bearer {owner.token}":
            self.send_json(401, {"detail": "Invalid token"})
            return
        with owner.lock:
            scripted = take_fault(owner.faults, "GET", split.path)
            if scripted is not None:
                self.send_json(scripted.status, scripted.body, scripted.headers)
                return
            status, body = owner.handle(split.path, params)
        self.send_json(status, body)


class SentryFake(FakeHTTPServer):
    handler = _Handler
    thread_name = "sentry-fake"

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self.token = TOKEN
        self.hours: list[Hour] = []
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.delay = 0.0

    def add(self, release: str, start: datetime, *, users: int, crashed: int) -> None:
        self.hours.append(Hour(release, start, users, crashed, sessions=users * 3))

    def handle(self, path: str, params: dict[str, list[str]]) -> tuple[int, Any]:
        m = re.fullmatch(r"/api/0/organizations/([^/]+)/(sessions/)?", path)
        if not m or m[1] != ORG:
            return 404, {"detail": "The requested resource does not exist"}
        if not m[2]:
            return 200, {"id": "1", "slug": ORG, "name": "TripTrip", "status": {"id": "active"}}
        fields = params.get("field") or []
        if not fields:
            return 400, {"detail": 'Request is missing a "field"'}
        unknown = [f for f in fields if f not in _FIELDS]
        if unknown:
            return 400, {"detail": f'Invalid field: "{unknown[0]}"'}
        groups = params.get("groupBy") or []
        bad = [g for g in groups if g not in _GROUPS]
        if bad:
            return 400, {"detail": f'Invalid groupBy: "{bad[0]}"'}
        if "session.status" in groups:
            rate = next((f for f in fields if "rate" in f), None)
            if rate:
                return 400, {"detail": f"Cannot group field {rate} by session.status"}
        if params.get("project") not in (None, [PROJECT_ID]):
            return 403, {"detail": "You do not have permission to perform this action."}
        try:
            start, end = _window(params)
        except ValueError as exc:
            return 400, {"detail": str(exc)}
        query = (params.get("query") or [""])[0]
        release = _term(query, "release")
        environment = _term(query, "environment")
        hours = [
            h
            for h in self.hours
            if start <= h.start < end
            and (release is None or h.release == release)
            and (environment is None or h.environment == environment)
        ]
        by_group: dict[tuple[tuple[str, str], ...], list[Hour]] = {}
        for h in hours:
            key = tuple(
                (g, h.release if g == "release" else h.environment)
                for g in groups
                if g in ("release", "environment")
            )
            by_group.setdefault(key, []).append(h)
        step = timedelta(hours=1)
        intervals = []
        t = start
        while t < end:
            intervals.append(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
            t += step
        series = (params.get("includeSeries") or ["1"])[0] != "0"
        answer_groups = []
        for key, rows in by_group.items():
            group: dict[str, Any] = {"by": dict(key), "totals": _totals(fields, rows)}
            if series:
                group["series"] = {
                    f: [
                        _totals(
                            [f], [r for r in rows if r.start.strftime("%Y-%m-%dT%H:%M:%SZ") == i]
                        )[f]
                        for i in intervals
                    ]
                    for f in fields
                }
            answer_groups.append(group)
        return 200, {
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "intervals": intervals,
            "groups": answer_groups,
            "query": query,
        }


def _totals(fields: list[str], rows: list[Hour]) -> dict[str, Any]:
    users = sum(r.users for r in rows)
    crashed = sum(r.crashed for r in rows)
    sessions = sum(r.sessions for r in rows)
    out: dict[str, Any] = {}
    for f in fields:
        if f == "count_unique(user)":
            out[f] = users
        elif f == "sum(session)":
            out[f] = sessions
        elif f == "crash_rate(user)":
            out[f] = crashed / users if users else None
        elif f == "crash_free_rate(user)":
            out[f] = 1 - crashed / users if users else None
        elif f == "crash_rate(session)":
            out[f] = crashed / sessions if sessions else None
        else:
            out[f] = 1 - crashed / sessions if sessions else None
    return out


def _term(query: str, key: str) -> str | None:
    m = re.search(rf'{key}:"([^"]*)"', query) or re.search(rf"{key}:(\S+)", query)
    return m[1] if m else None


def _window(params: dict[str, list[str]]) -> tuple[datetime, datetime]:
    """``start``/``end``, rounded out to the hour as Sentry rounds to ``interval``."""
    if params.get("interval", ["1h"])[0] != "1h":
        raise ValueError("The fake serves interval=1h only")
    if "start" in params and "end" in params:
        start = datetime.fromisoformat(params["start"][0].replace("Z", "+00:00"))
        end = datetime.fromisoformat(params["end"][0].replace("Z", "+00:00"))
    else:
        period = (params.get("statsPeriod") or ["24h"])[0]
        m = re.fullmatch(r"(\d+)([hd])", period)
        if not m:
            raise ValueError(f"Invalid statsPeriod: {period}")
        end = datetime.now(UTC)
        start = end - (timedelta(hours=int(m[1])) if m[2] == "h" else timedelta(days=int(m[1])))
    start = start.replace(minute=0, second=0, microsecond=0)
    if end != end.replace(minute=0, second=0, microsecond=0):
        end = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if start >= end:
        raise ValueError("start must be before end")
    return start, end
