"""An HTTP fake of Google Play's Android Publisher API v3 and Play Developer Reporting API v1beta1.

The real google-api-python-client, built from its bundled discovery documents with
``client_options={"api_endpoint": fake.url}``, talks to it. Paths and JSON are those of the
discovery documents (androidpublisher.v3.json, playdeveloperreporting.v1beta1.json):

- ``POST /androidpublisher/v3/applications/{pkg}/edits`` (``AppEdit``: ``id``,
  ``expiryTimeSeconds``), ``GET``/``DELETE .../edits/{id}``, ``POST .../edits/{id}:commit``;
- ``GET .../edits/{id}/tracks[/{track}]``, ``PUT``/``PATCH .../edits/{id}/tracks/{track}``
  (``Track``: ``track``, ``releases`` of ``TrackRelease``: ``name``, ``versionCodes`` as
  strings, ``status``, ``userFraction``, ``releaseNotes`` of ``{language, text}``);
- ``GET .../edits/{id}/bundles`` and the simple media upload
  ``POST /upload/androidpublisher/v3/applications/{pkg}/edits/{id}/bundles?uploadType=media``
  (a real ``.aab`` is a zip with a protobuf manifest; the fake reads ``versionCode=N`` from
  the uploaded bytes instead);
- ``GET .../applications/{pkg}/reviews`` (``reviews``, ``tokenPagination.nextPageToken``);
- ``GET /v1beta1/apps/{pkg}/{crashRate,anrRate}MetricSet`` (``freshnessInfo``) and
  ``POST .../{crashRate,anrRate}MetricSet:query`` (``rows`` of ``dimensions``/``metrics`` with
  ``decimalValue.value`` strings, ``nextPageToken``).

Edits behave as Play documents them: an edit is a copy of the app's state; nothing in it
applies until ``:commit``; an edit expires (``expiryTimeSeconds``, an hour here) and a
commit of another edit makes the older open edits stale (the fake answers their commit
409 ABORTED; what Play answers there is not documented). ``fake.commits`` logs each commit.

``POST /token`` is Google's OAuth token endpoint for a service-account key whose
``token_uri`` points at the fake: it answers ``TOKEN`` for any signed JWT assertion.

Errors come in Google's shape ``{"error": {"code", "message", "status", "errors"}}``: a
missing or wrong bearer token is 401 UNAUTHENTICATED; ``fake.faults`` scripts others
(403, 404, 409, 429 with ``Retry-After``, 5xx) and ``fake.slow`` delays answers.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from tests.fakes._http import FakeHandler, FakeHTTPServer, Fault, take_fault

TOKEN = "ya29.fake-play-token"
PACKAGE = "com.triptrip.app"

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_REASON = {401: "authError", 403: "forbidden", 404: "notFound", 429: "rateLimitExceeded"}
_METRIC_SETS = {
    "crashRateMetricSet": ("crashRate", "userPerceivedCrashRate"),
    "anrRateMetricSet": ("anrRate", "userPerceivedAnrRate"),
}


def google_error(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [
                {
                    "message": message,
                    "domain": "global",
                    "reason": _REASON.get(status, "backendError"),
                }
            ],
            "status": _STATUS.get(status, "UNKNOWN"),
        }
    }


def fault(status: int, message: str = "", *, retry_after: float | None = None, **kw: Any) -> Fault:
    """A scripted Google error: ``fault(403, path_contains=":commit")``."""
    headers = (("Retry-After", f"{retry_after:g}"),) if retry_after is not None else ()
    text = message or {
        401: "Request had invalid authentication credentials.",
        403: "The caller does not have permission",
        404: "Package not found: com.triptrip.app.",
        409: "The operation was aborted.",
        429: "Quota exceeded for quota metric 'Queries'.",
    }.get(status, "Internal error encountered.")
    return Fault(status, google_error(status, text), headers, **kw)


@dataclass
class Edit:
    id: str
    tracks: dict[str, list[dict[str, Any]]]
    bundles: set[int]
    generation: int
    expiry: float


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, list[str]]
    body: Any


@dataclass
class Slow:
    seconds: float
    path_contains: str = ""
    times: int = 1


@dataclass
class VitalsRow:
    version_code: int
    start: datetime
    users: int
    rates: dict[str, float]
    period: str = "HOURLY"


class _Handler(FakeHandler):
    owner: PlayFake

    def _serve(self) -> None:
        raw = self.read_body()
        split = urlsplit(self.path)
        params = parse_qs(split.query)
        if split.path == "/token" and self.command == "POST":
            self._token(raw)
            return
        body: Any = raw
        if raw and "uploadType" not in params:
            try:
                body = json.loads(raw)
            except ValueError:
                self.send_json(400, google_error(400, "Invalid JSON payload received."))
                return
        owner = self.owner
        with owner.lock:
            owner.requests.append(Request(self.command, split.path, params, body))
            slow = owner._take_slow(split.path)
        if slow and owner.pause(slow):
            return
        if self.headers.get("Authorization") != f"Bearer {owner.token}":
            self.send_json(
                401, google_error(401, "Request had invalid authentication credentials.")
            )
            return
        with owner.lock:
            scripted = take_fault(owner.faults, self.command, split.path)
            if scripted is not None:
                status, answer, headers = scripted.status, scripted.body, scripted.headers
            else:
                status, answer = owner.handle(self.command, split.path, params, body)
                headers = ()
        self.send_json(status, answer, headers)

    def _token(self, raw: bytes) -> None:
        """Google's OAuth 2.0 token endpoint for a service account's signed JWT (RFC 7523)."""
        form = parse_qs(raw.decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            self.send_json(400, {"error": "unsupported_grant_type"})
            return
        self.owner.assertions.extend(form.get("assertion") or [])
        self.send_json(
            200, {"access_token": self.owner.token, "expires_in": 3599, "token_type": "Bearer"}
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class PlayFake(FakeHTTPServer):
    """Google Play for one app, ``PACKAGE``; ``fake.tracks`` is its committed state."""

    handler = _Handler
    thread_name = "play-fake"

    def __init__(self, package: str = PACKAGE) -> None:
        super().__init__()
        self.package = package
        self.token = TOKEN
        self.lock = threading.RLock()
        self.tracks: dict[str, list[dict[str, Any]]] = {
            "production": [],
            "beta": [],
            "alpha": [],
            "internal": [],
        }
        self.bundles: set[int] = set()
        self.edits: dict[str, Edit] = {}
        self.commits: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.slow: list[Slow] = []
        self.generation = 0
        self.now = time.time
        self.edit_lifetime = 3600.0
        self.reviews: list[dict[str, Any]] = []
        self.vitals: list[VitalsRow] = []
        self.periods = ["HOURLY", "DAILY"]
        self.latest_end: datetime | None = None
        self.max_page_size = 10000
        self.assertions: list[str] = []
        self._ids = itertools.count(1)

    # -- setting the scene -----------------------------------------------------------------------

    def release(self, track: str, *codes: int, status: str = "completed", **extra: Any) -> None:
        """Put a committed release on ``track`` (its bundles uploaded)."""
        self.bundles.update(codes)
        self.tracks.setdefault(track, []).append(
            {"versionCodes": [str(c) for c in codes], "status": status, **extra}
        )

    def add_review(
        self, *, stars: int, text: str, at: float, version_code: int | None, language: str = "en"
    ) -> None:
        user: dict[str, Any] = {
            "text": f"\t{text}",  # Play prefixes the text with a tab; kept as the API sends it
            "lastModified": {"seconds": str(int(at)), "nanos": int((at % 1) * 1e9)},
            "starRating": stars,
            "reviewerLanguage": language,
            "device": "a71",
            "androidOsVersion": 34,
            "thumbsUpCount": 0,
            "thumbsDownCount": 0,
        }
        if version_code is not None:
            user["appVersionCode"] = version_code
            user["appVersionName"] = f"1.{version_code}"
        self.reviews.append(
            {
                "reviewId": f"gp:AOqpTO{len(self.reviews):04d}",
                "authorName": "A user",
                "comments": [{"userComment": user}],
            }
        )

    def add_vitals(
        self,
        version_code: int,
        start: datetime,
        *,
        users: int,
        crash_rate: float,
        anr_rate: float = 0.0,
        period: str = "HOURLY",
    ) -> None:
        self.vitals.append(
            VitalsRow(
                version_code,
                start,
                users,
                {
                    "crashRate": crash_rate,
                    "userPerceivedCrashRate": crash_rate * 0.8,
                    "anrRate": anr_rate,
                    "userPerceivedAnrRate": anr_rate * 0.5,
                },
                period,
            )
        )

    def committed(self, track: str) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.tracks.get(track, []))

    def calls(self, method: str, contains: str = "") -> list[Request]:
        return [r for r in self.requests if r.method == method and contains in r.path]

    def _take_slow(self, path: str) -> float:
        for slow in self.slow:
            if slow.times > 0 and slow.path_contains in path:
                slow.times -= 1
                if not slow.times:
                    self.slow.remove(slow)
                return slow.seconds
        return 0.0

    # -- routing ---------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, params: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        upload = re.fullmatch(
            r"/upload/androidpublisher/v3/applications/([^/]+)/edits/([^/]+)/bundles", path
        )
        if upload:
            return self._upload(upload[1], upload[2], params, body)
        m = re.fullmatch(r"/androidpublisher/v3/applications/([^/]+)(/.*)", path)
        if m:
            if m[1] != self.package:
                return 404, google_error(404, f"Package not found: {m[1]}.")
            return self._publisher(method, m[2], params, body)
        m = re.fullmatch(r"/v1beta1/apps/([^/]+)/(\w+MetricSet)(:query)?", path)
        if m:
            if m[1] != self.package:
                return 404, google_error(404, "Requested entity was not found.")
            return self._reporting(method, m[2], bool(m[3]), body)
        return 404, google_error(404, f"The requested URL {path} was not found on this server.")

    def _publisher(
        self, method: str, rest: str, params: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if rest == "/edits" and method == "POST":
            edit_id = f"{next(self._ids):020d}"
            self.edits[edit_id] = Edit(
                edit_id,
                copy.deepcopy(self.tracks),
                set(self.bundles),
                self.generation,
                self.now() + self.edit_lifetime,
            )
            return 200, {"id": edit_id, "expiryTimeSeconds": str(int(self.edits[edit_id].expiry))}
        if rest == "/reviews" and method == "GET":
            return self._reviews(params)
        m = re.fullmatch(r"/edits/([^/:]+)(:commit|:validate)?(/.*)?", rest)
        if not m:
            return 404, google_error(404, "Not found.")
        edit = self.edits.get(m[1])
        if edit is None or edit.expiry <= self.now():
            self.edits.pop(m[1], None)
            return 404, google_error(404, "This Edit has been deleted.")
        action, sub = m[2], m[3] or ""
        if action == ":commit" and method == "POST":
            if edit.generation != self.generation:
                return 409, google_error(409, "This edit is stale: another edit was committed.")
            self.tracks = edit.tracks
            self.bundles = edit.bundles
            self.generation += 1
            del self.edits[edit.id]
            self.commits.append({"edit": edit.id, "tracks": copy.deepcopy(edit.tracks)})
            return 200, {"id": edit.id}
        if action == ":validate":
            return 200, {"id": edit.id}
        if not sub:
            if method == "DELETE":
                del self.edits[edit.id]
                return 204, None
            return 200, {"id": edit.id, "expiryTimeSeconds": str(int(edit.expiry))}
        if sub == "/bundles" and method == "GET":
            return 200, {
                "kind": "androidpublisher#bundlesListResponse",
                "bundles": [_bundle(c) for c in sorted(edit.bundles)],
            }
        if sub == "/tracks" and method == "GET":
            return 200, {
                "kind": "androidpublisher#tracksListResponse",
                "tracks": [_track(name, rel) for name, rel in edit.tracks.items()],
            }
        t = re.fullmatch(r"/tracks/([^/]+)", sub)
        if t and method == "GET":
            if t[1] not in edit.tracks:
                return 404, google_error(404, f"Track not found: {t[1]}.")
            return 200, _track(t[1], edit.tracks[t[1]])
        if t and method in ("PUT", "PATCH"):
            return self._update_track(edit, t[1], body)
        return 404, google_error(404, "Not found.")

    def _update_track(self, edit: Edit, track: str, body: Any) -> tuple[int, Any]:
        releases = body.get("releases") or [] if isinstance(body, dict) else []
        staged = 0
        for release in releases:
            status = release.get("status")
            if status not in ("draft", "inProgress", "halted", "completed"):
                return 400, google_error(400, f"Invalid release status: {status}.")
            fraction = release.get("userFraction")
            if status in ("inProgress", "halted"):
                staged += 1
                if status == "inProgress" and (fraction is None or not 0 < fraction < 1):
                    return 400, google_error(
                        400,
                        "A release in progress needs a userFraction between 0 and 1 (exclusive).",
                    )
            elif fraction is not None:
                return 400, google_error(
                    400, "userFraction can only be set on releases that are inProgress or halted."
                )
            for code in release.get("versionCodes") or []:
                if int(code) not in edit.bundles:
                    return 403, google_error(403, f"Version code {code} could not be found.")
        if staged > 1:
            return 400, google_error(400, "A track can have only one release in progress.")
        if sum(1 for r in releases if r.get("status") == "completed") > 1:
            return 400, google_error(400, "A track can have only one completed release.")
        edit.tracks[track] = copy.deepcopy(releases)
        return 200, _track(track, edit.tracks[track])

    def _upload(
        self, package: str, edit_id: str, params: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        edit = self.edits.get(edit_id)
        if package != self.package or edit is None:
            return 404, google_error(404, "This Edit has been deleted.")
        if params.get("uploadType") != ["media"]:
            return 400, google_error(400, "The fake accepts simple media uploads only.")
        found = re.search(rb"versionCode=(\d+)", body if isinstance(body, bytes) else b"")
        if not found:
            return 400, google_error(400, "The uploaded file is not a valid Android App Bundle.")
        code = int(found[1])
        if code in edit.bundles:
            return 403, google_error(
                403, "APK specifies a version code that has already been used."
            )
        edit.bundles.add(code)
        return 200, _bundle(code)

    def _reviews(self, params: dict[str, list[str]]) -> tuple[int, Any]:
        size = int((params.get("maxResults") or ["10"])[0])
        start = int((params.get("token") or ["0"])[0].removeprefix("tok-") or 0)
        ordered = sorted(
            self.reviews,
            key=lambda r: int(r["comments"][0]["userComment"]["lastModified"]["seconds"]),
            reverse=True,
        )
        page = ordered[start : start + size]
        answer: dict[str, Any] = {
            "reviews": page,
            "pageInfo": {"totalResults": len(ordered), "resultPerPage": size, "startIndex": start},
        }
        if start + size < len(ordered):
            answer["tokenPagination"] = {"nextPageToken": f"tok-{start + size}"}
        return 200, answer

    # -- reporting -------------------------------------------------------------------------------

    def _reporting(self, method: str, metric_set: str, query: bool, body: Any) -> tuple[int, Any]:
        if metric_set not in _METRIC_SETS:
            return 404, google_error(404, "Requested entity was not found.")
        name = f"apps/{self.package}/{metric_set}"
        if not query:
            latest = self.latest_end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            return 200, {
                "name": name,
                "freshnessInfo": {
                    "freshnesses": [
                        {"aggregationPeriod": p, "latestEndTime": _dt(latest, p)}
                        for p in self.periods
                    ]
                },
            }
        spec = body.get("timelineSpec") or {}
        period = spec.get("aggregationPeriod", "DAILY")
        if period not in self.periods:
            return 400, google_error(400, f"Aggregation period {period} is not supported.")
        try:
            first, last = _parse_dt(spec["startTime"], period), _parse_dt(spec["endTime"], period)
        except (KeyError, ValueError) as exc:
            return 400, google_error(400, f"Invalid timeline spec: {exc}")
        metrics = body.get("metrics") or []
        known = (*_METRIC_SETS[metric_set], "distinctUsers")
        bad = [m for m in metrics if m not in known]
        if bad:
            return 400, google_error(400, f"Unsupported metric: {bad[0]}.")
        wanted: int | None = None
        flt = (body.get("filter") or "").strip()
        if flt:
            fm = re.fullmatch(r"versionCode\s*=\s*(\d+)", flt)
            if not fm:
                return 400, google_error(400, f"Invalid filter: {flt}.")
            wanted = int(fm[1])
        rows = [
            r
            for r in self.vitals
            if r.period == period
            and first <= r.start < last
            and (wanted is None or r.version_code == wanted)
        ]
        rows.sort(key=lambda r: (r.start, r.version_code))
        size = min(int(body.get("pageSize") or 1000), self.max_page_size)
        offset = int(body.get("pageToken") or 0)
        page = rows[offset : offset + size]
        out: dict[str, Any] = {
            "rows": [
                {
                    "aggregationPeriod": period,
                    "startTime": _dt(r.start, period),
                    "dimensions": [{"dimension": "versionCode", "int64Value": str(r.version_code)}],
                    "metrics": [
                        {
                            "metric": m,
                            "decimalValue": {
                                "value": str(r.users if m == "distinctUsers" else r.rates[m])
                            },
                        }
                        for m in metrics
                    ],
                }
                for r in page
            ]
        }
        if offset + size < len(rows):
            out["nextPageToken"] = str(offset + size)
        return 200, out


def _bundle(code: int) -> dict[str, Any]:
    return {"versionCode": code, "sha1": f"{code:040x}", "sha256": f"{code:064x}"}


def _track(name: str, releases: list[dict[str, Any]]) -> dict[str, Any]:
    return {"track": name, "releases": copy.deepcopy(releases)}


def _dt(when: datetime, period: str) -> dict[str, Any]:
    if period == "HOURLY":
        when = when.astimezone(UTC)
        return {
            "year": when.year,
            "month": when.month,
            "day": when.day,
            "hours": when.hour,
            "timeZone": {"id": "UTC"},
        }
    when = when.astimezone(ZoneInfo("America/Los_Angeles"))
    return {
        "year": when.year,
        "month": when.month,
        "day": when.day,
        "timeZone": {"id": "America/Los_Angeles"},
    }


def _parse_dt(value: dict[str, Any], period: str) -> datetime:
    if period == "HOURLY":
        if any(value.get(k) for k in ("minutes", "seconds", "nanos")):
            raise ValueError("HOURLY times must have minutes, seconds and nanos unset")
        if (value.get("timeZone") or {}).get("id", "UTC") != "UTC":
            raise ValueError("HOURLY times are in UTC")
        tz: Any = UTC
    else:
        if any(value.get(k) for k in ("hours", "minutes", "seconds", "nanos")):
            raise ValueError("DAILY times must have hours, minutes, seconds and nanos unset")
        tz = ZoneInfo((value.get("timeZone") or {}).get("id", "America/Los_Angeles"))
    return datetime(value["year"], value["month"], value["day"], value.get("hours", 0), tzinfo=tz)


def hours_ago(n: int, now: datetime | None = None) -> datetime:
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=n)
