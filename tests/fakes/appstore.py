"""An HTTP fake of the App Store Connect API's versions, phased releases and localizations.

Shapes from Apple's App Store Connect API reference (JSON:API documents: ``data`` with
``type``, ``id``, ``attributes``, ``links``; errors as ``{"errors": [{"id", "status",
"code", "title", "detail"}]}``):

- ``GET /v1/apps/{id}/appStoreVersions?filter[versionString]=&filter[platform]=
  &filter[appStoreState]=&include=build&limit=``: filters take comma-separated values (an
  unknown state or ``include`` is 400 PARAMETER_ERROR.INVALID); ``include=build`` adds
  ``relationships.build.data`` to each version and the builds to ``included``; ``limit``
  pages with a ``cursor`` in ``links.next``. Versions are listed in the order added (Apple
  documents none); ``createdDate`` grows by a day with each added version;
- ``GET /v1/appStoreVersions/{id}/appStoreVersionPhasedRelease`` (``data`` null when the
  version has none) and ``GET /v1/appStoreVersions/{id}/build``;
- ``PATCH /v1/appStoreVersionPhasedReleases/{id}`` with ``phasedReleaseState``: ACTIVE and
  PAUSED move between each other, either goes to COMPLETE; anything else is 409;
- ``GET /v1/appStoreVersions/{id}/appStoreVersionLocalizations`` and
  ``PATCH /v1/appStoreVersionLocalizations/{id}`` (``whatsNew``: 409 unless the version is
  still editable, as Apple answers once it is submitted for review).

Apple's clock is scripted: ``set_day`` moves a phased release to a day of its schedule and
``pause_for`` pauses one that Apple reports paused for that many days (``totalPauseDuration``).

Every request must carry a JWT as Apple checks it: ES256 signed by ``PRIVATE_KEY_PEM``'s key,
``kid`` header ``KEY_ID``, ``iss`` ``ISSUER_ID``, ``aud`` ``appstoreconnect-v1``, unexpired,
``exp - iat`` at most 20 minutes; otherwise 401 NOT_AUTHORIZED, as Apple answers.
``fake.faults`` scripts other errors (403, 404, 409, 429 with ``X-Rate-Limit``, 5xx).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes._http import FakeHandler, FakeHTTPServer, Fault, take_fault

#: The states in which Apple lets a version's metadata (``whatsNew``) be edited.
EDITABLE_STATES = frozenset(
    {
        "PREPARE_FOR_SUBMISSION",
        "DEVELOPER_REJECTED",
        "REJECTED",
        "METADATA_REJECTED",
        "INVALID_BINARY",
    }
)
KEY_ID = "2X9R4HXF34"
ISSUER_ID = "57246542-96fe-1a63-e053-0824d011072a"
APP_ID = "1234567890"
#: AppStoreVersionState values ``filter[appStoreState]`` accepts.
APP_STORE_STATES = frozenset(
    {
        "ACCEPTED",
        "DEVELOPER_REMOVED_FROM_SALE",
        "DEVELOPER_REJECTED",
        "IN_REVIEW",
        "INVALID_BINARY",
        "METADATA_REJECTED",
        "PENDING_APPLE_RELEASE",
        "PENDING_CONTRACT",
        "PENDING_DEVELOPER_RELEASE",
        "PREPARE_FOR_SUBMISSION",
        "PREORDER_READY_FOR_SALE",
        "PROCESSING_FOR_APP_STORE",
        "READY_FOR_REVIEW",
        "READY_FOR_SALE",
        "REJECTED",
        "REMOVED_FROM_SALE",
        "WAITING_FOR_EXPORT_COMPLIANCE",
        "WAITING_FOR_REVIEW",
        "REPLACED_WITH_NEW_VERSION",
        "NOT_APPLICABLE",
    }
)
#: Relationships ``include`` accepts on appStoreVersions (those this fake serves).
INCLUDES = frozenset({"build", "appStoreVersionPhasedRelease", "appStoreVersionLocalizations"})
API = "https://api.appstoreconnect.apple.com"


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


_KEY = ec.generate_private_key(ec.SECP256R1())
PRIVATE_KEY_PEM = _pem(_KEY)  # what AuthKey_2X9R4HXF34.p8 holds
OTHER_KEY_PEM = _pem(ec.generate_private_key(ec.SECP256R1()))

NOT_AUTHORIZED = {
    "status": "401",
    "code": "NOT_AUTHORIZED",
    "title": "Authentication credentials are missing or invalid.",
    "detail": "Provide a properly configured and signed bearer token, and make sure that it "
    "has not expired. Learn more about Generating Tokens for API Requests "
    "https://developer.apple.com/go/?id=api-generating-tokens",
}


def apple_error(status: int, code: str, title: str, detail: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "id": str(uuid.uuid4()),
                "status": str(status),
                "code": code,
                "title": title,
                "detail": detail,
            }
        ]
    }


def fault(status: int, *, retry_after: float | None = None, **kw: Any) -> Fault:
    """A scripted Apple error: ``fault(403)``, ``fault(429)``, ``fault(500, times=3)``."""
    code, title = {
        403: ("FORBIDDEN_ERROR", "This request is forbidden for security reasons"),
        404: ("NOT_FOUND", "The specified resource does not exist"),
        409: ("ENTITY_ERROR", "The request entity is not valid."),
        429: ("RATE_LIMIT_EXCEEDED", "The request rate limit has been reached."),
    }.get(status, ("UNEXPECTED_ERROR", "An unexpected error occurred."))
    headers: tuple[tuple[str, str], ...] = ()
    if status == 429:
        headers = (("X-Rate-Limit", "user-hour-lim:3600;user-hour-rem:0;"),)
        if retry_after is not None:
            headers += (("Retry-After", f"{retry_after:g}"),)
    detail = {
        403: "The API key in use does not allow this request",
    }.get(status, title)
    return Fault(status, apple_error(status, code, title, detail), headers, **kw)


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, list[str]]
    body: Any
    claims: dict[str, Any] | None


class _Handler(FakeHandler):
    owner: AppStoreFake

    def _serve(self) -> None:
        raw = self.read_body()
        split = urlsplit(self.path)
        params = parse_qs(split.query)
        body = json.loads(raw) if raw else None
        owner = self.owner
        claims, problem = owner.verify(self.headers.get("Authorization", ""))
        with owner.lock:
            owner.requests.append(Request(self.command, split.path, params, body, claims))
            delay = owner.delay
        if delay and owner.pause(delay):
            return
        if problem:
            owner.rejections.append(problem)
            self.send_json(401, {"errors": [{"id": str(uuid.uuid4()), **NOT_AUTHORIZED}]})
            return
        with owner.lock:
            # The query too, so a fault can aim at one listing (``path_contains="include=build"``).
            scripted = take_fault(owner.faults, self.command, self.path)
            if scripted is not None:
                self.send_json(scripted.status, scripted.body, scripted.headers)
                return
            status, answer = owner.handle(self.command, split.path, params, body)
        self.send_json(
            status, answer, (("X-Rate-Limit", "user-hour-lim:3600;user-hour-rem:3599;"),)
        )

    do_GET = do_PATCH = do_POST = do_DELETE = _serve


class AppStoreFake(FakeHTTPServer):
    """One app, ``APP_ID``, with versions added by ``add_version``."""

    handler = _Handler
    thread_name = "appstore-fake"

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self.public_key = serialization.load_pem_private_key(
            PRIVATE_KEY_PEM.encode(), password=None
        ).public_key()
        self.now = time.time
        self.versions: dict[str, dict[str, Any]] = {}
        self.phased: dict[str, dict[str, Any]] = {}
        self.builds: dict[str, str] = {}
        self.localizations: dict[str, dict[str, Any]] = {}
        self.requests: list[Request] = []
        self.rejections: list[str] = []
        self.faults: list[Fault] = []
        self.delay = 0.0

    def add_version(
        self,
        version: str,
        *,
        build: str,
        state: str = "READY_FOR_SALE",
        phased: str | None = "ACTIVE",
        day: int = 1,
        locales: dict[str, str] | None = None,
        created: datetime | None = None,
    ) -> str:
        vid = str(uuid.uuid4())
        if created is None:
            start = datetime(2026, 1, 20, 10, tzinfo=timezone(timedelta(hours=-8)))
            created = start + timedelta(days=len(self.versions))
        self.versions[vid] = {
            "versionString": version,
            "platform": "IOS",
            "appStoreState": state,
            "appVersionState": state,
            "releaseType": "MANUAL",
            "createdDate": created.isoformat(),
        }
        self.builds[vid] = build
        if phased is not None:
            self.phased[vid] = {
                "id": str(uuid.uuid4()),
                "phasedReleaseState": phased,
                "startDate": None if phased == "INACTIVE" else "2026-01-21T09:00:00Z",
                "totalPauseDuration": 0,
                "currentDayNumber": None if phased == "INACTIVE" else day,
            }
        for locale, text in (locales or {"en-US": ""}).items():
            self.localizations[str(uuid.uuid4())] = {
                "version": vid,
                "locale": locale,
                "whatsNew": text or None,
                "description": "A travel app.",
            }
        return vid

    def set_day(self, version: str, day: int) -> None:
        """Apple's schedule moved on: the phased release is on ``day`` (1 to 7)."""
        with self.lock:
            self.phased[self._find(version)]["currentDayNumber"] = day

    def pause_for(self, version: str, days: int) -> None:
        """The phased release is paused, for ``days`` days in all (``totalPauseDuration``)."""
        with self.lock:
            phased = self.phased[self._find(version)]
            phased["phasedReleaseState"] = "PAUSED"
            phased["totalPauseDuration"] = days

    def whats_new(self, version: str) -> dict[str, str | None]:
        """``whatsNew`` per locale of ``version``."""
        vid = self._find(version)
        return {
            loc["locale"]: loc["whatsNew"]
            for loc in self.localizations.values()
            if loc["version"] == vid
        }

    def phased_state(self, version: str) -> str:
        vid = self._find(version)
        return str(self.phased[vid]["phasedReleaseState"])

    def patches(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PATCH"]

    def _find(self, version: str) -> str:
        return next(v for v, a in self.versions.items() if a["versionString"] == version)

    # -- the JWT, as Apple checks it ------------------------------------------------------------

    def verify(self, authorization: str) -> tuple[dict[str, Any] | None, str | None]:
        if not authorization.startswith("Bearer "):
            return None, "no bearer token"
        token = authorization.removeprefix("Bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["ES256"],
                audience="appstoreconnect-v1",
                issuer=ISSUER_ID,
                options={"require": ["exp", "iat", "aud", "iss"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            return None, "expired"
        except jwt.InvalidAudienceError:
            return None, "wrong audience"
        except jwt.InvalidIssuerError:
            return None, "wrong issuer"
        except jwt.InvalidSignatureError:
            return None, "bad signature"
        except jwt.PyJWTError as exc:
            return None, f"invalid token: {exc}"
        if header.get("kid") != KEY_ID:
            return None, "wrong kid"
        if header.get("alg") != "ES256":
            return None, "wrong alg"
        if int(claims["exp"]) - int(claims["iat"]) > 20 * 60:
            return None, "lifetime over 20 minutes"
        if int(claims["exp"]) <= self.now():
            return None, "expired"
        return claims, None

    # -- routes ------------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, params: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        m = re.fullmatch(r"/v1/apps/([^/]+)/appStoreVersions", path)
        if m and method == "GET":
            if m[1] != APP_ID:
                return _not_found("apps", m[1])
            return self._list_versions(path, params)
        m = re.fullmatch(
            r"/v1/appStoreVersions/([^/]+)/(appStoreVersionPhasedRelease|build|appStoreVersionLocalizations)",
            path,
        )
        if m and method == "GET":
            vid, what = m[1], m[2]
            if vid not in self.versions:
                return _not_found("appStoreVersions", vid)
            links = {"self": f"https://api.appstoreconnect.apple.com{path}"}
            if what == "appStoreVersionPhasedRelease":
                phased = self.phased.get(vid)
                return 200, {"data": self._phased(phased) if phased else None, "links": links}
            if what == "build":
                return 200, {"data": self._build(vid), "links": links}
            data = [
                self._localization(lid)
                for lid, loc in self.localizations.items()
                if loc["version"] == vid
            ]
            return 200, {
                "data": data,
                "links": links,
                "meta": {"paging": {"total": len(data), "limit": 50}},
            }
        m = re.fullmatch(r"/v1/appStoreVersionPhasedReleases/([^/]+)", path)
        if m and method == "PATCH":
            return self._patch_phased(m[1], body)
        m = re.fullmatch(r"/v1/appStoreVersionLocalizations/([^/]+)", path)
        if m and method == "PATCH":
            return self._patch_localization(m[1], body)
        return 404, apple_error(
            404,
            "NOT_FOUND",
            "The specified resource does not exist",
            "The path provided does not match a defined resource type.",
        )

    def _list_versions(self, path: str, params: dict[str, list[str]]) -> tuple[int, Any]:
        def values(name: str) -> list[str] | None:
            raw = (params.get(name) or [None])[0]
            return None if raw is None else raw.split(",")

        wanted, platform = values("filter[versionString]"), values("filter[platform]")
        states, include = values("filter[appStoreState]"), values("include") or []
        for name, given, valid in (
            ("filter[appStoreState]", states or [], APP_STORE_STATES),
            ("include", include, INCLUDES),
        ):
            bad = [v for v in given if v not in valid]
            if bad:
                return 400, apple_error(
                    400,
                    "PARAMETER_ERROR.INVALID",
                    "A parameter has an invalid value",
                    f"'{bad[0]}' is not a valid value for the parameter '{name}'.",
                )
        limit = int((params.get("limit") or ["50"])[0])
        offset = int((params.get("cursor") or ["0"])[0])
        found = [
            vid
            for vid, a in self.versions.items()
            if (wanted is None or a["versionString"] in wanted)
            and (platform is None or a["platform"] in platform)
            and (states is None or a["appStoreState"] in states)
        ]
        page = found[offset : offset + limit]
        data = [self._version(vid, with_build="build" in include) for vid in page]
        links = {"self": f"{API}{path}"}
        if offset + limit < len(found):
            query = {k: v[0] for k, v in params.items() if k != "cursor"}
            query["cursor"] = str(offset + limit)
            links["next"] = f"{self.url}{path}?{urlencode(query)}"  # followable, as Apple's are
        answer: dict[str, Any] = {
            "data": data,
            "links": links,
            "meta": {"paging": {"total": len(found), "limit": limit}},
        }
        if "build" in include:
            answer["included"] = [self._build(vid) for vid in page]
        return 200, answer

    def _patch_phased(self, pid: str, body: Any) -> tuple[int, Any]:
        vid = next((v for v, p in self.phased.items() if p["id"] == pid), None)
        if vid is None:
            return _not_found("appStoreVersionPhasedReleases", pid)
        data = (body or {}).get("data") or {}
        if data.get("type") != "appStoreVersionPhasedReleases" or data.get("id") != pid:
            return 409, apple_error(
                409,
                "ENTITY_ERROR.INCLUDED.INVALID_ID",
                "The provided entity id is invalid",
                "The resource type or id in the request does not match the URL.",
            )
        target = (data.get("attributes") or {}).get("phasedReleaseState")
        phased = self.phased[vid]
        current = phased["phasedReleaseState"]
        allowed = {"ACTIVE": {"PAUSED", "COMPLETE"}, "PAUSED": {"ACTIVE", "COMPLETE"}}.get(
            current, set()
        )
        if target != current and target not in allowed:
            return 409, apple_error(
                409,
                "ENTITY_ERROR.ATTRIBUTE.INVALID",
                "An attribute value is invalid.",
                f"The phased release cannot move from {current} to {target}.",
            )
        phased["phasedReleaseState"] = target
        if target == "COMPLETE":
            phased["currentDayNumber"] = 7
        return 200, {
            "data": self._phased(phased),
            "links": {
                "self": f"https://api.appstoreconnect.apple.com/v1/appStoreVersionPhasedReleases/{pid}"
            },
        }

    def _patch_localization(self, lid: str, body: Any) -> tuple[int, Any]:
        loc = self.localizations.get(lid)
        if loc is None:
            return _not_found("appStoreVersionLocalizations", lid)
        attributes = ((body or {}).get("data") or {}).get("attributes") or {}
        state = self.versions[loc["version"]]["appStoreState"]
        if "whatsNew" in attributes and state not in EDITABLE_STATES:
            return 409, apple_error(
                409,
                "ENTITY_ERROR.ATTRIBUTE.INVALID.INVALID_STATE",
                "An attribute value is not acceptable for the current resource state.",
                "The attribute 'whatsNew' can not be edited at this time",
            )
        loc.update(
            {
                k: v
                for k, v in attributes.items()
                if k in ("whatsNew", "description", "keywords", "promotionalText")
            }
        )
        return 200, {
            "data": self._localization(lid),
            "links": {
                "self": f"https://api.appstoreconnect.apple.com/v1/appStoreVersionLocalizations/{lid}"
            },
        }

    # -- resources ---------------------------------------------------------------------------------

    def _version(self, vid: str, *, with_build: bool = False) -> dict[str, Any]:
        own = f"{API}/v1/appStoreVersions/{vid}"
        build: dict[str, Any] = {
            "links": {"self": f"{own}/relationships/build", "related": f"{own}/build"}
        }
        if with_build:
            build["data"] = {"type": "builds", "id": f"build-{vid}"}
        return {
            "type": "appStoreVersions",
            "id": vid,
            "attributes": copy.deepcopy(self.versions[vid]),
            "relationships": {"build": build},
            "links": {"self": own},
        }

    def _build(self, vid: str) -> dict[str, Any]:
        return {
            "type": "builds",
            "id": f"build-{vid}",
            "attributes": {"version": self.builds[vid], "processingState": "VALID"},
            "links": {"self": f"{API}/v1/builds/build-{vid}"},
        }

    @staticmethod
    def _phased(phased: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "appStoreVersionPhasedReleases",
            "id": phased["id"],
            "attributes": {k: v for k, v in phased.items() if k != "id"},
            "links": {
                "self": f"https://api.appstoreconnect.apple.com/v1/appStoreVersionPhasedReleases/{phased['id']}"
            },
        }

    def _localization(self, lid: str) -> dict[str, Any]:
        loc = self.localizations[lid]
        return {
            "type": "appStoreVersionLocalizations",
            "id": lid,
            "attributes": {k: v for k, v in loc.items() if k != "version"},
            "links": {
                "self": f"https://api.appstoreconnect.apple.com/v1/appStoreVersionLocalizations/{lid}"
            },
        }


def _not_found(kind: str, rid: str) -> tuple[int, Any]:
    return 404, apple_error(
        404,
        "NOT_FOUND",
        "The specified resource does not exist",
        f"There is no resource of type '{kind}' with id '{rid}'",
    )
