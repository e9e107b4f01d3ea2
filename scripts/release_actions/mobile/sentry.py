"""iOS (or any) crash data per release from Sentry's sessions API (release health)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from release_actions.errors import MetricsError, NoDataError, ReleaseActionsError
from release_actions.metrics.retry import (
    RetryPolicy,
    TransientError,
    call_with_retry,
    check_status,
)
from release_actions.mobile.base import Vitals, VitalsSource

API = "https://sentry.io"
USERS = "count_unique(user)"
CRASH_FREE = "crash_free_rate(user)"
#: What ``{...}`` in a release template may name.
PLACEHOLDERS = ("version_code", "version")

AUTH_HINT = (
    "Give the step SENTRY_AUTH_TOKEN (from a secret): an organization token or an internal "
    "integration's token with the `org:read` and `project:read` scopes. Check `sentry-org` "
    "(the organization slug) and, for self-hosted Sentry, `sentry-url`."
)


class SentryVitals(VitalsSource):
    """Users and crashed users per release from ``GET /api/0/organizations/{org}/sessions/``.

    One query per window: ``field=count_unique(user)`` and ``field=crash_free_rate(user)``,
    ``groupBy=release``, the release in ``query``, ``start``/``end`` and ``interval=1h``.
    ``crashed_users`` is ``round((1 - crash_free_rate) * users)``: Sentry does not let
    ``crash_free_rate`` be grouped by ``session.status``, and adding users per status would
    count a user with a healthy and a crashed session twice. No group for the release, or
    no users, is ``NoDataError``; iOS has no ANR, so ``anr_users`` is None.

    ``release`` names the Sentry release of a version code: ``{version_code}`` is the build
    number and ``{version}`` its version string, e.g. ``com.triptrip.app@{version}+{version_code}``
    (what sentry-cocoa reports by default: bundle ID, version, build), so the previous
    version's release is named too. ``versions`` maps a version code to its version string
    (``AppStoreRelease.version_names``, filled as the store is read); a template with
    ``{version}`` and a code it lacks is a MetricsError, never a guessed name.
    """

    name = "sentry"

    def __init__(
        self,
        session: Any,
        *,
        org: str,
        project: str,
        token: str,
        release: str = "{version_code}",
        versions: Mapping[str, str] | None = None,
        environment: str | None = None,
        base_url: str = API,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        """``project`` is the numeric project ID the sessions API filters on."""
        named = re.findall(r"\{([^{}]*)\}", release)
        unknown = [n for n in named if n not in PLACEHOLDERS]
        if unknown or not named:
            raise ReleaseActionsError(
                f"`sentry-release` must contain `{{version_code}}` (the build number) or "
                f"`{{version}}` (its version string), and no other `{{...}}`; got `{release}`"
                + (f": `{{{unknown[0]}}}` is not one of them." if unknown else "."),
                hint="For sentry-cocoa's default: BUNDLE_ID@{version}+{version_code}.",
            )
        self.session = session
        self.org = org
        self.project = str(project)
        self.token = token
        self.release = release
        self.versions: Mapping[str, str] = {} if versions is None else versions
        self.environment = environment
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy(attempts=4, total_seconds=60.0)

    @classmethod
    def from_env(
        cls,
        *,
        org: str,
        project: str,
        env: Mapping[str, str] | None = None,
        mask: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> SentryVitals:
        import requests  # a core dependency

        env = os.environ if env is None else env
        token = env.get("SENTRY_AUTH_TOKEN", "").strip()
        if not token:
            raise MetricsError("SENTRY_AUTH_TOKEN is not set.", hint=AUTH_HINT)
        if mask is not None:
            mask(token)
        return cls(requests.Session(), org=org, project=project, token=token, **kwargs)

    def release_name(self, version_code: str) -> str:
        code = str(version_code)
        name = self.release.replace("{version_code}", code)
        if "{version}" in name:
            version = self.versions.get(code)
            if not version:
                raise MetricsError(
                    f"The Sentry release template `{self.release}` needs the version string of "
                    f"build {code}, which the store did not report.",
                    hint="Use a template without `{version}`, or check that the store lists "
                    "the build (App Store Connect: the version's build).",
                )
            name = name.replace("{version}", version)
        return name

    def vitals(self, version_code: str, start: float, end: float) -> Vitals:
        release = self.release_name(version_code)
        query = f'release:"{release}"'
        if self.environment:
            query += f' environment:"{self.environment}"'
        params: list[tuple[str, str]] = [
            ("field", USERS),
            ("field", CRASH_FREE),
            ("groupBy", "release"),
            ("project", self.project),
            ("query", query),
            ("start", _iso(start)),
            ("end", _iso(end)),
            ("interval", "1h"),
            ("includeSeries", "0"),
        ]
        path = f"/api/0/organizations/{self.org}/sessions/"
        shown = f"{path}?{query} {_iso(start)}..{_iso(end)}"
        body = call_with_retry(
            lambda: self._get(path, params, shown),
            policy=self.retry,
            provider="Sentry",
            query=shown,
        )
        groups = [
            g for g in body.get("groups") or [] if (g.get("by") or {}).get("release") == release
        ]
        if not groups:
            raise NoDataError(
                f"Sentry has no sessions for release `{release}` between {_iso(start)} and "
                f"{_iso(end)}: the version probably has no users yet, or the release name "
                f"differs; query `{shown}`",
                hint="Check `sentry-release` against the release names in Sentry (Releases), "
                "and that the app sends sessions (release health is on by default in "
                "sentry-cocoa).",
            )
        totals = groups[0].get("totals") or {}
        users = _number(totals.get(USERS))
        rate = _number(totals.get(CRASH_FREE))
        if users is None or users <= 0 or rate is None:
            raise NoDataError(
                f"Sentry reports no users for release `{release}` in the window; query `{shown}`",
                hint="The version probably has no users yet: wait longer before judging.",
            )
        if not 0.0 <= rate <= 1.0:
            raise MetricsError(
                f"Sentry answered {CRASH_FREE} {rate}, not a fraction; query `{shown}`"
            )
        count = round(users)
        return Vitals(
            version_code=str(version_code),
            start=start,
            end=end,
            users=count,
            crashed_users=round((1.0 - rate) * count),
            anr_users=None,
        )

    def is_online(self) -> bool:
        path = f"/api/0/organizations/{self.org}/"
        try:
            self._get(path, [], path)
        except (MetricsError, TransientError):
            return False
        return True

    def _get(self, path: str, params: list[tuple[str, str]], shown: str) -> dict[str, Any]:
        try:
            response = self.session.get(
                f"{self.base_url}{path}",
                params=params,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=self.timeout,
            )
        except Exception as exc:
            from release_actions.mobile._common import is_timeout

            if is_timeout(exc):
                raise TransientError(f"{type(exc).__name__}: {exc}") from exc
            raise
        detail = ""
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail") or "")
            except (ValueError, AttributeError):
                detail = response.text[:200]
        check_status(
            response.status_code,
            provider="Sentry",
            query=shown,
            detail=detail,
            headers=response.headers,
            auth_hint=AUTH_HINT,
        )
        try:
            body = response.json()
        except ValueError:
            raise MetricsError(f"Sentry answered with no JSON; query `{shown}`") from None
        return body if isinstance(body, dict) else {}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
