"""The App Store: phased releases and release notes through the App Store Connect API."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from release_actions.errors import IntegrationError, ReleaseActionsError, TargetError, require
from release_actions.metrics.retry import RetryPolicy, retry_after_seconds
from release_actions.mobile._common import RETRYABLE, STORE_RETRY, Transient, is_timeout, with_retry
from release_actions.mobile.base import (
    Change,
    Platform,
    StoreRelease,
    StoreState,
    StoreStatus,
)

T = TypeVar("T")

API = "https://api.appstoreconnect.apple.com"
AUDIENCE = "appstoreconnect-v1"
#: Apple refuses tokens that live longer than 20 minutes.
MAX_TOKEN_SECONDS = 20 * 60
#: The states of a version users were given: READY_FOR_SALE while it is the newest live one,
#: REPLACED_WITH_NEW_VERSION once a newer one is released, which Apple marks as soon as a
#: phased release starts, while most users still run the older version.
LIVE_STATES = ("READY_FOR_SALE", "REPLACED_WITH_NEW_VERSION")
#: The share of users with automatic updates who get the version on each day of Apple's
#: 7-day phased release (App Store Connect Help, "Release a version update in phases").
PHASED_SCHEDULE = (0.01, 0.02, 0.05, 0.10, 0.20, 0.50, 1.0)
#: A phased release can be paused for 30 days in all; then Apple resumes it.
PAUSE_LIMIT_DAYS = 30
DAY = 24 * 3600.0

KEY_HINT = (
    "Check APP_STORE_CONNECT_KEY_ID (the key's ID), APP_STORE_CONNECT_ISSUER_ID (Users and "
    "Access > Integrations > App Store Connect API) and APP_STORE_CONNECT_PRIVATE_KEY (the "
    "whole .p8 file, from a secret); the key must not be revoked, and the runner's clock "
    "must be right (tokens live 20 minutes at most)."
)
ROLE_HINT = (
    "The API key's role cannot do this: releasing, pausing and editing versions needs the "
    "`App Manager` or `Admin` role (Users and Access > Integrations > App Store Connect API)."
)


class AppStoreConnectToken:
    """Signed JWTs for the App Store Connect API: ES256 with the ``.p8`` key, ``kid`` in the
    header, ``iss`` the issuer ID, ``aud`` ``appstoreconnect-v1``, at most 20 minutes long.

    A token is reused until a minute before it expires, then a new one is signed.
    """

    def __init__(
        self,
        *,
        key_id: str,
        issuer_id: str,
        private_key: str,
        lifetime: float = MAX_TOKEN_SECONDS,
        clock: Callable[[], float] = time.time,
        mask: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 < lifetime <= MAX_TOKEN_SECONDS:
            raise ReleaseActionsError(
                f"An App Store Connect token lives at most {MAX_TOKEN_SECONDS} seconds, "
                f"got {lifetime}."
            )
        missing = [
            name
            for name, value in (
                ("APP_STORE_CONNECT_KEY_ID", key_id),
                ("APP_STORE_CONNECT_ISSUER_ID", issuer_id),
                ("APP_STORE_CONNECT_PRIVATE_KEY", private_key),
            )
            if not value.strip()
        ]
        if missing:
            raise IntegrationError(
                f"App Store Connect needs {', '.join(f'`{m}`' for m in missing)}.", hint=KEY_HINT
            )
        if mask is not None:
            mask(private_key)
        serialization: Any = require("cryptography.hazmat.primitives.serialization", "appstore")
        ec: Any = require("cryptography.hazmat.primitives.asymmetric.ec", "appstore")
        try:
            key = serialization.load_pem_private_key(private_key.strip().encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise IntegrationError(
                f"APP_STORE_CONNECT_PRIVATE_KEY is not a PEM private key: {exc}.",
                hint="Pass the whole AuthKey_KEYID.p8 file, BEGIN and END lines included.",
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise IntegrationError(
                "APP_STORE_CONNECT_PRIVATE_KEY is not an elliptic-curve (P-256) key; App Store "
                "Connect keys are.",
                hint=KEY_HINT,
            )
        self.key_id = key_id.strip()
        self.issuer_id = issuer_id.strip()
        self._key = key
        self.lifetime = lifetime
        self.clock = clock
        self.mask = mask
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, mask: Callable[[str], None] | None = None
    ) -> AppStoreConnectToken:
        env = os.environ if env is None else env
        return cls(
            key_id=env.get("APP_STORE_CONNECT_KEY_ID", ""),
            issuer_id=env.get("APP_STORE_CONNECT_ISSUER_ID", ""),
            private_key=env.get("APP_STORE_CONNECT_PRIVATE_KEY", ""),
            mask=mask,
        )

    def __call__(self) -> str:
        jwt: Any = require("jwt", "appstore")
        with self._lock:
            now = self.clock()
            if self._token is None or now > self._expires - 60:
                issued = int(now)
                self._expires = issued + int(self.lifetime)
                self._token = str(
                    jwt.encode(
                        {
                            "iss": self.issuer_id,
                            "iat": issued,
                            "exp": self._expires,
                            "aud": AUDIENCE,
                        },
                        self._key,
                        algorithm="ES256",
                        headers={"kid": self.key_id, "typ": "JWT"},
                    )
                )
                if self.mask is not None:
                    self.mask(self._token)
            return self._token


class AppStoreRelease(StoreRelease):
    """One version's phased release on the App Store, through the App Store Connect API.

    Apple, not the caller, chooses the fraction: a phased release gives the version to 1, 2,
    5, 10, 20, 50 and 100 % of users with automatic updates on days 1 to 7
    (``currentDayNumber``); anyone can still download it by hand from the store. So
    ``set_fraction`` cannot pick a share: on a paused release, a fraction above today's
    resumes it (Apple then moves on at its own pace); otherwise it holds, and says so with
    ``changed=False``. A fraction of 1 releases to everyone (``complete``).
    ``status().fraction`` is the share of the current day.

    ``halt`` pauses (``phasedReleaseState`` ``PAUSED``), ``resume`` makes it ``ACTIVE``
    again and ``complete`` releases to all users (``COMPLETE``), each by a PATCH of the
    ``appStoreVersionPhasedReleases`` resource, sent only when the state differs. A phased
    release can be paused for 30 days in all: the API reports ``totalPauseDuration`` (in
    ``detail``) in whole days, not when the current pause began, so a paused release's
    ``paused_since`` is ``clock()`` less that many days: the start of a pause as long as all of
    them, which is what Apple's limit counts. ``clock`` is the look's time (``--at``).

    A version released without a phased release is ``completed`` at once; one not yet live
    (``INACTIVE``) is a ``draft``: its phased release starts when Apple releases the version.

    ``previous_version_code`` is the build of the version users outside the phased release
    still run: the newest other version of the platform that was live (``LIVE_STATES``),
    created before this one, read with ``include=build``; None for a first release.
    ``version_names`` maps each build number ``status()`` has read to its version string,
    for a crash source whose release names hold the version (``SentryVitals(versions=...)``).
    """

    platform = Platform.IOS
    name = "appstore"

    def __init__(
        self,
        session: Any,
        token: Callable[[], str],
        *,
        app_id: str,
        version_string: str,
        platform: str = "IOS",
        base_url: str = API,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``session`` is a ``requests.Session``; ``token`` signs a JWT per request
        (an ``AppStoreConnectToken``); ``app_id`` is Apple's numeric app ID."""
        self.session = session
        self.token = token
        self.app_id = str(app_id)
        self.version_string = version_string
        self.store_platform = platform
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or STORE_RETRY
        self.clock = clock
        self._version_id: str | None = None
        self.version_names: dict[str, str] = {}

    @classmethod
    def from_env(
        cls,
        *,
        app_id: str,
        version_string: str,
        env: Mapping[str, str] | None = None,
        mask: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> AppStoreRelease:
        import requests  # a core dependency

        token = AppStoreConnectToken.from_env(env, mask=mask)
        return cls(
            requests.Session(), token, app_id=app_id, version_string=version_string, **kwargs
        )

    # -- the StoreRelease interface ------------------------------------------------------------

    def status(self) -> StoreStatus:
        return self._retry("read the phased release", self._status)

    def set_fraction(self, fraction: float) -> Change:
        if fraction >= 1.0:
            return self.complete()
        status = self.status()
        if status.state == StoreState.HALTED and fraction > (status.fraction or 0.0):
            return self.resume()
        return Change(
            False,
            f"The App Store chooses the share of a phased release: version "
            f"{self.version_string} is {_describe(status)}; {fraction:.0%} cannot be set, "
            "so it holds.",
        )

    def halt(self) -> Change:
        return self._move("PAUSED", "pause the phased release", ("ACTIVE",))

    def resume(self) -> Change:
        return self._move("ACTIVE", "resume the phased release", ("PAUSED",))

    def complete(self) -> Change:
        return self._move("COMPLETE", "release to all users", ("ACTIVE", "PAUSED"))

    # -- beyond the interface --------------------------------------------------------------------

    def set_release_notes(self, notes: Mapping[str, str]) -> Change:
        """``whatsNew`` per locale (``en-US``) of this version; only those that differ are sent.

        Apple accepts it only while the version is editable (before review); a live
        version answers 409, which says so.
        """

        def attempt() -> Change:
            version = self._version()
            found: dict[str, dict[str, Any]] = {}
            path: str | None = f"/v1/appStoreVersions/{version['id']}/appStoreVersionLocalizations"
            params: dict[str, Any] | None = {"limit": 200}
            while path:
                page = self._request("GET", path, params=params)
                for item in page.get("data") or []:
                    found[str(item["attributes"].get("locale"))] = item
                path = (page.get("links") or {}).get("next")
                params = None
            missing = sorted(set(notes) - set(found))
            if missing:
                raise TargetError(
                    f"Version {self.version_string} has no {', '.join(f'`{m}`' for m in missing)} "
                    f"localization; it has {', '.join(f'`{k}`' for k in sorted(found)) or 'none'}.",
                    hint="Add the locale in App Store Connect, or drop it from the release notes.",
                )
            changed = []
            for locale, text in sorted(notes.items()):
                item = found[locale]
                if (item["attributes"].get("whatsNew") or "") == text:
                    continue
                self._request(
                    "PATCH",
                    f"/v1/appStoreVersionLocalizations/{item['id']}",
                    json={
                        "data": {
                            "type": "appStoreVersionLocalizations",
                            "id": item["id"],
                            "attributes": {"whatsNew": text},
                        }
                    },
                )
                changed.append(locale)
            if not changed:
                return Change(False, f"The release notes of {self.version_string} already read so.")
            return Change(
                True, f"Release notes of {self.version_string} set for {', '.join(changed)}."
            )

        return self._retry("set the release notes", attempt)

    # -- reading and moving ----------------------------------------------------------------------

    def _status(self) -> StoreStatus:
        version = self._version()
        attributes = version.get("attributes") or {}
        state_name = str(attributes.get("appVersionState") or attributes.get("appStoreState") or "")
        phased = self._phased(version["id"])
        build = self._get(f"/v1/appStoreVersions/{version['id']}/build").get("data") or {}
        build_number = str((build.get("attributes") or {}).get("version") or "")
        detail: dict[str, Any] = {"app_store_state": state_name, "version_id": version["id"]}
        day: int | None = None
        fraction: float | None = None
        paused_since: float | None = None
        if phased is None:
            live = state_name == "READY_FOR_SALE" or state_name == "READY_FOR_DISTRIBUTION"
            state = StoreState.COMPLETED if live else StoreState.DRAFT
            fraction = 1.0 if live else None
        else:
            pa = phased.get("attributes") or {}
            phase = str(pa.get("phasedReleaseState") or "")
            day = pa.get("currentDayNumber")
            detail.update(
                phased_release_id=phased["id"],
                phased_release_state=phase,
                start_date=pa.get("startDate"),
                total_pause_duration_days=pa.get("totalPauseDuration"),
            )
            state = {
                "ACTIVE": StoreState.IN_PROGRESS,
                "PAUSED": StoreState.HALTED,
                "COMPLETE": StoreState.COMPLETED,
            }.get(phase, StoreState.DRAFT)
            if state == StoreState.COMPLETED:
                fraction = 1.0
            elif state != StoreState.DRAFT:
                fraction = fraction_on_day(day)
            if state == StoreState.HALTED:
                paused = _number(pa.get("totalPauseDuration")) or 0.0
                paused_since = self.clock() - paused * DAY
        previous = self._previous(version)
        if build_number:
            self.version_names[build_number] = self.version_string
        if previous is not None:
            detail["previous_version_id"] = previous[2]
            self.version_names[previous[0]] = previous[1]
        return StoreStatus(
            version_code=build_number,
            version_name=self.version_string,
            state=state,
            fraction=fraction,
            track="production",
            previous_version_code=previous[0] if previous else None,
            previous_version_name=previous[1] if previous else None,
            day=int(day) if day is not None else None,
            paused_since=paused_since,
            detail=detail,
        )

    def _move(self, target: str, what: str, allowed: tuple[str, ...]) -> Change:
        sent = False

        def attempt() -> Change:
            nonlocal sent
            version = self._version()
            phased = self._phased(version["id"])
            if phased is None:
                raise TargetError(
                    f"Version {self.version_string} has no phased release, so the App Store "
                    f"cannot {what}: it goes to everyone when released.",
                    hint="Turn on phased release for the version in App Store Connect before it "
                    "is released (App Store > the version > Phased Release for Automatic Updates).",
                )
            current = str((phased.get("attributes") or {}).get("phasedReleaseState"))
            if current == target:
                return Change(
                    sent,
                    f"The phased release of {self.version_string} is {target}"
                    + ("." if sent else "; nothing was changed."),
                )
            if current not in allowed:
                raise TargetError(
                    f"The App Store cannot {what} for {self.version_string}: its phased release "
                    f"is {current}.",
                    hint="An INACTIVE phased release starts when Apple releases the version; a "
                    "COMPLETE one cannot be paused (remove the version from sale in App Store "
                    "Connect to stop downloads).",
                )
            self._request(
                "PATCH",
                f"/v1/appStoreVersionPhasedReleases/{phased['id']}",
                json={
                    "data": {
                        "type": "appStoreVersionPhasedReleases",
                        "id": phased["id"],
                        "attributes": {"phasedReleaseState": target},
                    }
                },
            )
            sent = True
            return Change(
                True, f"The phased release of {self.version_string}: {current} -> {target}."
            )

        return self._retry(what, attempt)

    def _version(self) -> dict[str, Any]:
        page = self._get(
            f"/v1/apps/{self.app_id}/appStoreVersions",
            params={
                "filter[versionString]": self.version_string,
                "filter[platform]": self.store_platform,
                "limit": 2,
            },
        )
        data = page.get("data") or []
        if not data:
            raise TargetError(
                f"App {self.app_id} has no {self.store_platform} version {self.version_string} "
                "in App Store Connect.",
                hint="Check `app-id` (Apple's numeric ID, App Information > Apple ID) and "
                "`version` (the version string, e.g. 4.2.0).",
            )
        self._version_id = str(data[0]["id"])
        return dict(data[0])

    def _previous(self, version: Mapping[str, Any]) -> tuple[str, str, str] | None:
        """(build number, version string, ID) of the newest other live version created before
        ``version``, or None when there is none (a first release)."""
        mine = _created(version)
        candidates: list[dict[str, Any]] = []
        builds: dict[str, dict[str, Any]] = {}
        path: str | None = f"/v1/apps/{self.app_id}/appStoreVersions"
        params: dict[str, Any] | None = {
            "filter[appStoreState]": ",".join(LIVE_STATES),
            "filter[platform]": self.store_platform,
            "include": "build",
            "limit": 200,
        }
        while path:
            page = self._get(path, params)
            for item in page.get("included") or []:
                if item.get("type") == "builds":
                    builds[str(item.get("id"))] = item
            for item in page.get("data") or []:
                if str(item.get("id")) == str(version["id"]):
                    continue
                created = _created(item)
                if mine is not None and created is not None and created >= mine:
                    continue
                candidates.append(item)
            path = (page.get("links") or {}).get("next")
            params = None
        if not candidates:
            return None
        # Apple lists no order for this endpoint: the newest by createdDate, else the first.
        dated = [c for c in candidates if _created(c) is not None]
        item = max(dated, key=lambda c: _created(c) or 0.0) if dated else candidates[0]
        vid = str(item["id"])
        related = (((item.get("relationships") or {}).get("build") or {}).get("data")) or {}
        build = builds.get(str(related.get("id"))) if related else None
        if build is None:
            build = self._get(f"/v1/appStoreVersions/{vid}/build").get("data") or {}
        number = str((build.get("attributes") or {}).get("version") or "")
        if not number:
            return None
        name = str((item.get("attributes") or {}).get("versionString") or "")
        return number, name, vid

    def _phased(self, version_id: str) -> dict[str, Any] | None:
        data = self._get(f"/v1/appStoreVersions/{version_id}/appStoreVersionPhasedRelease").get(
            "data"
        )
        return dict(data) if data else None

    # -- HTTP --------------------------------------------------------------------------------------

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        return with_retry(
            fn, policy=self.retry, service="App Store Connect", what=what, final=self._final
        )

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._request("GET", path, params=params)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {self.token()}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except Exception as exc:
            if is_timeout(exc):
                raise Transient(exc) from exc
            raise
        status = int(response.status_code)
        if 200 <= status < 300:
            if status == 204 or not response.content:
                return {}
            body = response.json()
            return body if isinstance(body, dict) else {}
        if status in RETRYABLE:
            raise Transient(
                _HTTPError(status, _apple_error(response), f"{method} {path}"),
                retry_after=retry_after_seconds(response.headers),
            )
        raise self._error(status, _apple_error(response), f"{method} {path}")

    def _error(self, status: int, detail: str, request: str) -> TargetError:
        text = f"App Store Connect answered HTTP {status} to {request}: {detail}"
        if status == 401:
            return TargetError(text, hint=KEY_HINT)
        if status == 403:
            return TargetError(text, hint=ROLE_HINT)
        if status == 404:
            return TargetError(
                text, hint="Check `app-id` and `version`; the API key must see the app."
            )
        if status == 409:
            return TargetError(
                text,
                hint="App Store Connect refused the change in the version's current state "
                "(release notes can be edited only before review; a phased release only moves "
                "between ACTIVE, PAUSED and COMPLETE once live).",
            )
        return TargetError(
            text, hint="App Store Connect refused the request; retrying would not help."
        )

    def _final(self, exc: BaseException) -> ReleaseActionsError:
        if isinstance(exc, _HTTPError):
            error = self._error(exc.status, exc.detail, exc.request)
            if exc.status == 429:
                error.hint = (
                    "App Store Connect is rate limiting this key (X-Rate-Limit: an hourly "
                    "quota); wait and rerun the step: every change is idempotent."
                )
            else:
                error.hint = "Check developer.apple.com/system-status; rerun the step."
            return error
        return TargetError(
            f"App Store Connect did not answer: {type(exc).__name__}: {exc}",
            hint="Check that api.appstoreconnect.apple.com is reachable from the runner; rerun.",
        )


class _HTTPError(Exception):
    def __init__(self, status: int, detail: str, request: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.request = request


def _apple_error(response: Any) -> str:
    """``title: detail (code)`` of each entry of Apple's ``{"errors": [...]}``."""
    try:
        errors = response.json().get("errors") or []
        parts = [
            f"{e.get('title', '')}: {e.get('detail', '')} ({e.get('code', '')})".strip()
            for e in errors
            if isinstance(e, dict)
        ]
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    return (getattr(response, "text", "") or "").strip()[:300] or f"HTTP {response.status_code}"


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _created(item: Mapping[str, Any]) -> float | None:
    """``createdDate`` (``2026-01-20T10:00:00-08:00``) in epoch seconds, if it parses."""
    text = (item.get("attributes") or {}).get("createdDate")
    try:
        return datetime.fromisoformat(str(text)).timestamp() if text else None
    except ValueError:
        return None


def fraction_on_day(day: int | None) -> float | None:
    """The share of users Apple's schedule reaches on ``day`` (1 to 7)."""
    if day is None or day < 1:
        return None
    return PHASED_SCHEDULE[min(int(day), len(PHASED_SCHEDULE)) - 1]


def _describe(status: StoreStatus) -> str:
    if status.state == StoreState.IN_PROGRESS:
        return f"on day {status.day} of 7 ({(status.fraction or 0):.0%})"
    if status.state == StoreState.HALTED:
        return f"paused on day {status.day} ({(status.fraction or 0):.0%})"
    return str(status.state.value)
