"""Google Play: staged rollouts through the Android Publisher API, vitals and reviews."""

from __future__ import annotations

import logging
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from release_actions.errors import (
    IntegrationError,
    MetricsError,
    NoDataError,
    ReleaseActionsError,
    TargetError,
    require,
)
from release_actions.metrics.retry import RetryPolicy, retry_after_seconds
from release_actions.mobile._common import (
    GOOGLE_AUTH_HINT,
    RETRYABLE,
    STORE_RETRY,
    Transient,
    google_credentials,
    google_error,
    is_refused_credentials,
    is_timeout,
    with_retry,
)
from release_actions.mobile.base import (
    Change,
    Platform,
    Review,
    ReviewSource,
    StoreRelease,
    StoreState,
    StoreStatus,
    Vitals,
    VitalsSource,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

ANDROIDPUBLISHER_SCOPE = "https://www.googleapis.com/auth/androidpublisher"
REPORTING_SCOPE = "https://www.googleapis.com/auth/playdeveloperreporting"
JSON_VAR = "PLAY_SERVICE_ACCOUNT_JSON"
# Play's daily metrics are in Pacific time, for historical reasons; hourly ones in UTC.
DAILY_ZONE = "America/Los_Angeles"

PERMISSION_HINT = (
    "In Play Console > Users and permissions, invite the service account and give it, for this "
    "app, `Release to production, exclude devices, and use Play App Signing` (production) or "
    "`Release apps to testing tracks` (other tracks); enable the Google Play Android Developer "
    "API in the service account's Cloud project. New permissions can take a day to apply."
)
REPORTING_PERMISSION_HINT = (
    "Give the service account `View app information and download bulk reports (read-only)` "
    "for this app in Play Console > Users and permissions, and enable the Google Play "
    "Developer Reporting API in its Cloud project."
)
_DIGITS = re.compile(r"^[0-9]{1,19}$")


def play_clients(
    credentials: Any, *, endpoint: str | None = None, timeout: float = 60.0
) -> tuple[Any, Any]:
    """The Android Publisher v3 and Play Developer Reporting v1beta1 clients.

    Both are built from the discovery documents bundled with google-api-python-client
    (``static_discovery=True``), so nothing is fetched at start-up; ``endpoint`` points
    them elsewhere (a proxy, the tests' fake).
    """
    discovery: Any = require("googleapiclient.discovery", "play")
    httplib2: Any = require("httplib2", "play")
    auth_httplib2: Any = require("google_auth_httplib2", "play")
    options = {"api_endpoint": endpoint} if endpoint else None

    def build(name: str, version: str) -> Any:
        # One Http each: httplib2 connections are not shared safely between clients.
        http = auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout))
        return discovery.build(
            name,
            version,
            http=http,
            static_discovery=True,
            cache_discovery=False,
            client_options=options,
        )

    return build("androidpublisher", "v3"), build("playdeveloperreporting", "v1beta1")


def play_credentials(
    env: Mapping[str, str] | None = None, *, mask: Callable[[str], None] | None = None
) -> Any:
    """Credentials for both Play APIs: ``PLAY_SERVICE_ACCOUNT_JSON``, else workload identity."""
    return google_credentials(
        os.environ if env is None else env,
        [ANDROIDPUBLISHER_SCOPE, REPORTING_SCOPE],
        json_var=JSON_VAR,
        extra="play",
        mask=mask,
    )


def _execute(request: Any, *, classify: Callable[[int, str, str], ReleaseActionsError]) -> Any:
    """One API call: its JSON, ``Transient`` for what is worth a retry, else the project's error."""
    errors: Any = require("googleapiclient.errors", "play")
    try:
        return request.execute(num_retries=0)
    except errors.HttpError as exc:
        status = int(exc.resp.status)
        if status in RETRYABLE or status == 409:
            # 409: another edit was committed meanwhile; the cycle starts again from a new edit.
            raise Transient(exc, retry_after=retry_after_seconds(dict(exc.resp))) from exc
        canonical, message = google_error(exc.content)
        raise classify(status, canonical, message) from exc
    except Exception as exc:
        if is_timeout(exc):
            raise Transient(exc) from exc
        if is_refused_credentials(exc):
            raise classify(401, "UNAUTHENTICATED", f"{type(exc).__name__}: {exc}") from exc
        raise


def _final(service: str, what: str) -> Callable[[BaseException], ReleaseActionsError]:
    """The error once the retries are spent: what was asked, and the last answer."""

    def final(exc: BaseException) -> ReleaseActionsError:
        status = getattr(getattr(exc, "resp", None), "status", None)
        if status is not None:
            canonical, message = google_error(getattr(exc, "content", None))
            text = f"HTTP {status} {canonical}: {message}".strip()
        else:
            text = f"{type(exc).__name__}: {exc}"
        error_type = MetricsError if service.lower().endswith("reporting") else TargetError
        return error_type(
            f"{service} could not {what}: {text}",
            hint="Google Play is rate limiting this service account: wait and rerun the step."
            if status == 429
            else "Check status.play.google.com; rerun the step: every change is idempotent.",
        )

    return final


def _clean_release(release: Mapping[str, Any]) -> dict[str, Any]:
    """A track release as Play compares it: version codes as text, notes sorted, no empty keys."""
    out: dict[str, Any] = {
        "versionCodes": [str(v) for v in release.get("versionCodes") or []],
        "status": release.get("status") or "statusUnspecified",
    }
    if release.get("name"):
        out["name"] = release["name"]
    if release.get("userFraction") is not None and out["status"] in ("inProgress", "halted"):
        out["userFraction"] = round(float(release["userFraction"]), 6)
    notes = release.get("releaseNotes") or []
    if notes:
        out["releaseNotes"] = sorted(
            ({"language": n.get("language"), "text": n.get("text")} for n in notes),
            key=lambda n: str(n["language"]),
        )
    for key in ("countryTargeting", "inAppUpdatePriority"):
        if release.get(key) is not None:
            out[key] = release[key]
    return out


def _notes(notes: Mapping[str, str] | None) -> list[dict[str, str]] | None:
    if not notes:
        return None
    return [{"language": lang, "text": text} for lang, text in sorted(notes.items())]


class PlayRelease(StoreRelease):
    """One version code's release on one Play track, through the Android Publisher API v3.

    Every change is one edit: ``edits.insert``, the bundle upload when ``bundle`` is given and
    Play does not have the version code yet, ``tracks.get``, ``tracks.update``,
    ``edits.commit``. The track is read in the edit first; when it already is as asked, the
    edit is deleted instead of committed and the answer is ``Change(changed=False)``, so a
    rerun of a step changes nothing and says so. An edit left uncommitted (a runner killed
    between ``tracks.update`` and ``edits.commit``) changes nothing in Play and expires; the
    next run starts a new one. 409, 429, 5xx and timeouts restart the whole cycle under the
    retry policy, from a fresh read.

    The track keeps the last ``completed`` release beside the staged one: it is what users
    outside the rollout get (``previous_version_code``). Another version staged on the track
    is refused rather than replaced: halt or complete it first.
    """

    platform = Platform.ANDROID
    name = "play"

    def __init__(
        self,
        publisher: Any,
        *,
        package_name: str,
        version_code: str,
        track: str = "production",
        release_name: str | None = None,
        release_notes: Mapping[str, str] | None = None,
        bundle: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """``release_notes`` maps a language (``en-US``) to its text, set on every change;
        ``bundle`` is an ``.aab`` to upload when Play lacks the version code (teams that
        upload with fastlane leave it out)."""
        if not _DIGITS.match(str(version_code)):
            raise ReleaseActionsError(
                f"`version-code` must be Play's integer versionCode, got {version_code!r}."
            )
        self.publisher = publisher
        self.package_name = package_name
        self.version_code = str(version_code)
        self.track = track
        self.release_name = release_name
        self.release_notes = dict(release_notes) if release_notes else None
        self.bundle = bundle
        self.retry = retry or STORE_RETRY

    @classmethod
    def from_env(
        cls,
        *,
        package_name: str,
        version_code: str,
        env: Mapping[str, str] | None = None,
        endpoint: str | None = None,
        mask: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> PlayRelease:
        publisher, _ = play_clients(play_credentials(env, mask=mask), endpoint=endpoint)
        return cls(publisher, package_name=package_name, version_code=version_code, **kwargs)

    # -- the StoreRelease interface ------------------------------------------------------------

    def status(self) -> StoreStatus:
        def read(edit: str) -> StoreStatus:
            releases = self._track(edit, self.track)
            return self._status(releases)

        return self._in_edit("read the track", read, commit=False)

    def set_fraction(self, fraction: float) -> Change:
        if not 0.0 < fraction <= 1.0 or math.isnan(fraction):
            raise ReleaseActionsError(
                f"A Play user fraction is more than 0 and at most 1, got {fraction}."
            )
        if fraction >= 1.0:
            return self.complete()
        return self._change(
            f"roll out to {fraction:.2%}", lambda mine: self._staged(mine, fraction)
        )

    def halt(self) -> Change:
        def want(mine: dict[str, Any] | None) -> dict[str, Any]:
            if mine is None or mine["status"] == "draft":
                raise TargetError(
                    f"Version code {self.version_code} is not rolling out on the "
                    f"`{self.track}` track, so there is nothing to halt."
                )
            return {**mine, "status": "halted"}

        return self._change("halt the rollout", want)

    def resume(self, fraction: float | None = None) -> Change:
        """``inProgress`` again at the fraction it was halted at, or at ``fraction``."""

        def want(mine: dict[str, Any] | None) -> dict[str, Any]:
            if mine is None or mine["status"] == "draft":
                raise TargetError(
                    f"Version code {self.version_code} has no rollout on the `{self.track}` "
                    "track to resume; set a fraction to start one."
                )
            if mine["status"] != "halted":
                return mine
            at = fraction if fraction is not None else mine.get("userFraction")
            if at is None or at >= 1.0:
                return _completed(mine)
            return {**mine, "status": "inProgress", "userFraction": at}

        return self._change("resume the rollout", want)

    def complete(self) -> Change:
        def want(mine: dict[str, Any] | None) -> dict[str, Any]:
            base = mine or {"versionCodes": [self.version_code]}
            return _completed(base)

        return self._change("complete the rollout", want)

    # -- beyond the interface --------------------------------------------------------------------

    def set_release_notes(self, notes: Mapping[str, str]) -> Change:
        """``releaseNotes`` of this version's release on the track, its status unchanged."""
        self.release_notes = dict(notes)

        def want(mine: dict[str, Any] | None) -> dict[str, Any]:
            if mine is None:
                raise TargetError(
                    f"Version code {self.version_code} is not on the `{self.track}` track: "
                    "release notes go on a track release."
                )
            return mine

        return self._change("set the release notes", want)

    def promote(self, from_track: str, fraction: float | None = None) -> Change:
        """The release of ``from_track`` (e.g. ``internal``) onto this track, staged at
        ``fraction`` or complete; its name and notes come along unless given."""

        def decide(edit: str) -> Change:
            source = self._mine(self._track(edit, from_track))
            if source is None:
                raise TargetError(
                    f"Version code {self.version_code} is not on the `{from_track}` track, "
                    f"so it cannot be promoted to `{self.track}`.",
                    hint=f"Check `version-code` and `from-track`; `release-actions` status shows "
                    f"what each track holds. Upload it to `{from_track}` first.",
                )
            carried: dict[str, Any] = {
                k: source[k] for k in ("name", "releaseNotes") if k in source
            }

            def want(mine: dict[str, Any] | None) -> dict[str, Any]:
                base: dict[str, Any] = {
                    **carried,
                    **(mine or {}),
                    "versionCodes": [self.version_code],
                }
                if fraction is None or fraction >= 1.0:
                    return _completed(base)
                if mine is not None and mine["status"] == "completed":
                    return mine
                return {**base, "status": "inProgress", "userFraction": fraction}

            return self._update(edit, want, f"promote from `{from_track}`")

        return self._in_edit(f"promote from `{from_track}` to `{self.track}`", decide)

    # -- the edit cycle ----------------------------------------------------------------------

    def _change(self, what: str, want: Callable[[dict[str, Any] | None], dict[str, Any]]) -> Change:
        return self._in_edit(what, lambda edit: self._update(edit, want, what))

    def _in_edit(self, what: str, decide: Callable[[str], T], *, commit: bool = True) -> T:
        edits = self.publisher.edits()

        def attempt() -> T:
            edit = self._call(edits.insert(packageName=self.package_name, body={}))["id"]
            committed = False
            try:
                result = decide(edit)
                if commit and isinstance(result, Change) and result.changed:
                    self._call(edits.commit(packageName=self.package_name, editId=edit))
                    committed = True
                return result
            finally:
                if not committed:
                    self._discard(edit)

        return with_retry(
            attempt,
            policy=self.retry,
            service="Google Play",
            what=what,
            final=_final("Google Play", f"{what} for `{self.package_name}`"),
        )

    def _update(
        self, edit: str, want: Callable[[dict[str, Any] | None], dict[str, Any]], what: str
    ) -> Change:
        releases = self._track(edit, self.track)
        mine = self._mine(releases)
        wanted = dict(want(mine))
        if self.release_name and "name" not in wanted:
            wanted["name"] = self.release_name
        notes = _notes(self.release_notes)
        if notes is not None:
            wanted["releaseNotes"] = notes
        wanted = _clean_release(wanted)
        others = [r for r in releases if r is not mine]
        # A halted release of another version is superseded, as in Play Console; one
        # still rolling out is not.
        others = [r for r in others if r["status"] != "halted"]
        for other in others:
            if other["status"] == "inProgress":
                raise TargetError(
                    f"The `{self.track}` track already stages version code(s) "
                    f"{', '.join(other['versionCodes'])} ({other['status']}): Play rolls out one "
                    "release at a time.",
                    hint="Complete or halt that rollout in Play Console (or with this command "
                    "for its version code) before starting this one.",
                )
        if wanted["status"] == "completed":
            # Play keeps one completed release: the new one replaces the old baseline.
            others = [r for r in others if r["status"] == "draft"]
        elif wanted["status"] in ("inProgress", "halted"):
            completed = [r for r in others if r["status"] == "completed"]
            drafts = [r for r in others if r["status"] == "draft"]
            others = completed[:1] + drafts
        desired = [wanted, *others]
        if mine is not None and mine == wanted:
            return Change(
                False,
                f"Version code {self.version_code} on `{self.track}` already is "
                f"{_describe(wanted)}; nothing was changed ({what}).",
            )
        if mine is None:
            self._ensure_uploaded(edit)
        self._call(
            self.publisher.edits()
            .tracks()
            .update(
                packageName=self.package_name,
                editId=edit,
                track=self.track,
                body={"track": self.track, "releases": desired},
            )
        )
        before = _describe(mine) if mine else "not on the track"
        return Change(
            True,
            f"Version code {self.version_code} on `{self.track}`: {before} -> {_describe(wanted)}.",
        )

    def _ensure_uploaded(self, edit: str) -> None:
        """Upload ``bundle`` when Play lacks the version code; without one, say what is missing."""
        bundles = self.publisher.edits().bundles()
        listed = self._call(bundles.list(packageName=self.package_name, editId=edit))
        codes = {str(b.get("versionCode")) for b in listed.get("bundles") or []}
        if self.version_code in codes:
            return
        if not self.bundle:
            raise TargetError(
                f"Play has no bundle with version code {self.version_code} for "
                f"`{self.package_name}`.",
                hint="Upload it first (fastlane `upload_to_play_store`, or give `bundle` the "
                ".aab path), or check `version-code`.",
            )
        http: Any = require("googleapiclient.http", "play")
        media = http.MediaFileUpload(
            self.bundle, mimetype="application/octet-stream", resumable=False
        )
        request = bundles.upload(packageName=self.package_name, editId=edit, media_body=media)
        _same_scheme(request, self.publisher)
        uploaded = self._call(request)
        if str(uploaded.get("versionCode")) != self.version_code:
            raise TargetError(
                f"`{self.bundle}` has version code {uploaded.get('versionCode')}, not "
                f"{self.version_code}.",
                hint="Build the bundle with the `version-code` being released.",
            )

    def _track(self, edit: str, track: str) -> list[dict[str, Any]]:
        tracks = self.publisher.edits().tracks()
        try:
            body = self._call(tracks.get(packageName=self.package_name, editId=edit, track=track))
        except _TrackMissing:
            return []
        return [_clean_release(r) for r in body.get("releases") or []]

    def _mine(self, releases: list[dict[str, Any]]) -> dict[str, Any] | None:
        for release in releases:
            if self.version_code in release["versionCodes"]:
                return release
        return None

    def _status(self, releases: list[dict[str, Any]]) -> StoreStatus:
        mine = self._mine(releases)
        completed = [
            int(code)
            for r in releases
            if r is not mine and r["status"] == "completed"
            for code in r["versionCodes"]
        ]
        previous = str(max(completed)) if completed else None
        previous_name = next(
            (
                str(r.get("name") or "") or None
                for r in releases
                if r is not mine and r["status"] == "completed" and previous in r["versionCodes"]
            ),
            None,
        )
        if mine is None:
            return StoreStatus(
                version_code=self.version_code,
                version_name=self.release_name or "",
                state=StoreState.DRAFT,
                fraction=None,
                track=self.track,
                previous_version_code=previous,
                previous_version_name=previous_name,
                detail={"on_track": False},
            )
        state = {
            "inProgress": StoreState.IN_PROGRESS,
            "halted": StoreState.HALTED,
            "completed": StoreState.COMPLETED,
        }.get(mine["status"], StoreState.DRAFT)
        return StoreStatus(
            version_code=self.version_code,
            version_name=str(mine.get("name") or self.release_name or ""),
            state=state,
            fraction=mine.get("userFraction"),
            track=self.track,
            previous_version_code=previous,
            previous_version_name=previous_name,
            detail={"on_track": True, "release": mine},
        )

    def _staged(self, mine: dict[str, Any] | None, fraction: float) -> dict[str, Any]:
        if mine is not None and mine["status"] == "completed":
            raise TargetError(
                f"Version code {self.version_code} is already completed on `{self.track}`: "
                f"a completed release cannot go back to {fraction:.2%}.",
                hint="Nothing to do; halt it if new installs must stop.",
            )
        base = mine or {"versionCodes": [self.version_code]}
        return {**base, "status": "inProgress", "userFraction": fraction}

    def _discard(self, edit: str) -> None:
        """Delete an edit that will not be committed; one left behind expires anyway."""
        try:
            self._call(self.publisher.edits().delete(packageName=self.package_name, editId=edit))
        except (Transient, ReleaseActionsError) as exc:
            log.debug("play: could not delete edit %s: %s", edit, exc)

    def _call(self, request: Any) -> Any:
        return _execute(request, classify=self._error)

    def _error(self, status: int, canonical: str, message: str) -> ReleaseActionsError:
        text = (
            f"Google Play answered HTTP {status} {canonical} for `{self.package_name}`: {message}"
        )
        if status == 401:
            return TargetError(text, hint=GOOGLE_AUTH_HINT.format(json_var=JSON_VAR))
        if status == 403:
            return TargetError(text, hint=PERMISSION_HINT)
        if status == 404 and "track" in message.lower():
            return _TrackMissing(text)
        if status == 404:
            return TargetError(
                text,
                hint="Check `package-name`. The app must exist in Play Console with a first "
                "release uploaded by hand: the API cannot create an app.",
            )
        return TargetError(text, hint="Play refused the change; rerunning would not help.")


class _TrackMissing(TargetError):
    """Raised when Play has no such track for the app yet: read as a track with no releases."""


def _completed(release: Mapping[str, Any]) -> dict[str, Any]:
    """The release for everyone: ``completed`` carries no ``userFraction``."""
    out = {k: v for k, v in release.items() if k != "userFraction"}
    out["status"] = "completed"
    return out


def _describe(release: Mapping[str, Any] | None) -> str:
    if not release:
        return "absent"
    status = str(release["status"])
    if release.get("userFraction") is not None:
        return f"{status} at {float(release['userFraction']):.2%}"
    return status


def _same_scheme(request: Any, client: Any) -> None:
    """Send an upload to the client's endpoint as given, ``http`` included.

    google-api-python-client moves a media upload onto ``api_endpoint``'s host but keeps
    the discovery document's ``https``: an ``http://`` endpoint (a proxy, the tests' fake)
    would never see the upload.
    """
    base = urllib.parse.urlsplit(str(getattr(client, "_baseUrl", "")))
    uri = urllib.parse.urlsplit(str(request.uri))
    if base.scheme and base.netloc == uri.netloc and base.scheme != uri.scheme:
        request.uri = urllib.parse.urlunsplit(uri._replace(scheme=base.scheme))


# -- vitals ---------------------------------------------------------------------------------------


class PlayVitals(VitalsSource):
    """Crashes and ANRs per version code from the Play Developer Reporting API (v1beta1).

    ``vitals.crashrate`` and ``vitals.anrrate`` are queried with the ``versionCode``
    dimension, filtered to one version code, hourly (UTC) where the metric set offers it
    (its ``freshnessInfo`` says), else daily (Pacific time). Play reports rates, not counts:
    ``crashRate`` (or ``userPerceivedCrashRate``) is the fraction of ``distinctUsers`` with at
    least one crash, so each row gives ``round(rate * users)`` crashed users and the window
    sums its rows. ``distinctUsers`` is counted per hour or day, so a user active in two
    hours counts twice: the sums are user-hours, and crashed and total users are counted the
    same way, which keeps the ratio honest. A window with no rows for the version code is
    ``NoDataError``, never zeros.
    """

    name = "play"

    def __init__(
        self,
        reporting: Any,
        *,
        package_name: str,
        crash_metric: str = "crashRate",
        anr_metric: str | None = "anrRate",
        retry: RetryPolicy | None = None,
    ) -> None:
        if crash_metric not in ("crashRate", "userPerceivedCrashRate"):
            raise ReleaseActionsError(
                f"Unknown Play crash metric `{crash_metric}`: the metrics are `crashRate` and "
                "`userPerceivedCrashRate`."
            )
        if anr_metric not in (None, "anrRate", "userPerceivedAnrRate"):
            raise ReleaseActionsError(
                f"Unknown Play ANR metric `{anr_metric}`: the metrics are `anrRate` and "
                "`userPerceivedAnrRate`."
            )
        self.reporting = reporting
        self.package_name = package_name
        self.crash_metric = crash_metric
        self.anr_metric = anr_metric
        self.retry = retry or RetryPolicy(attempts=4, total_seconds=60.0)
        self._periods: dict[str, datetime | None] | None = None

    @property
    def app(self) -> str:
        return f"apps/{self.package_name}"

    def vitals(self, version_code: str, start: float, end: float) -> Vitals:
        if not _DIGITS.match(str(version_code)):
            raise ReleaseActionsError(f"A Play version code is an integer, got {version_code!r}.")
        periods = self._freshness()
        hourly = "HOURLY" in periods
        spec, first, last = _timeline(
            start, end, hourly, periods.get("HOURLY" if hourly else "DAILY")
        )
        query = (
            f"{self.app}/crashRateMetricSet:query versionCode = {version_code} "
            f"{spec['aggregationPeriod']} {first.isoformat()}..{last.isoformat()}"
        )
        if first >= last:
            raise NoDataError(
                f"Google Play has no complete {'hour' if hourly else 'day'} of vitals between "
                f"{first.isoformat()} and {last.isoformat()} yet; query `{query}`",
                hint="Play's vitals lag by an hour or more: wait longer before judging.",
            )
        vitals = self.reporting.vitals()
        users, crashed = self._sum(
            vitals.crashrate(), "crashRateMetricSet", self.crash_metric, version_code, spec, query
        )
        anr: int | None = None
        if self.anr_metric is not None:
            _, anr = self._sum(
                vitals.anrrate(),
                "anrRateMetricSet",
                self.anr_metric,
                version_code,
                spec,
                query.replace("crashRate", "anrRate"),
            )
        return Vitals(
            version_code=str(version_code),
            start=first.timestamp(),
            end=last.timestamp(),
            users=users,
            crashed_users=crashed,
            anr_users=anr,
        )

    def is_online(self) -> bool:
        try:
            self._periods = None
            self._freshness()
        except ReleaseActionsError:
            return False
        return True

    def finest_window_seconds(self) -> float:
        try:
            return 3600.0 if "HOURLY" in self._freshness() else 86400.0
        except ReleaseActionsError:
            return 3600.0

    def freshness(self, now: float) -> float:
        """The metric set's ``latestEndTime`` (hourly where offered), read afresh: Play has
        every row it will ever have of an hour that ends by then."""
        self._periods = None
        periods = self._freshness()
        latest = periods.get("HOURLY" if "HOURLY" in periods else "DAILY")
        return super().freshness(now) if latest is None else latest.timestamp()

    def _sum(
        self,
        resource: Any,
        metric_set: str,
        metric: str,
        version_code: str,
        spec: dict[str, Any],
        query: str,
    ) -> tuple[int, int]:
        body: dict[str, Any] = {
            "timelineSpec": spec,
            "dimensions": ["versionCode"],
            "metrics": [metric, "distinctUsers"],
            "filter": f"versionCode = {version_code}",
            "pageSize": 1000,
        }
        users = hits = rows = 0
        token: str | None = None
        while True:
            page_body = {**body, **({"pageToken": token} if token else {})}

            def ask(b: dict[str, Any] = page_body) -> Any:
                return resource.query(name=f"{self.app}/{metric_set}", body=b)

            page = self._run(ask, f"query {metric_set}", query)
            for row in page.get("rows") or []:
                dims = {d.get("dimension"): d for d in row.get("dimensions") or []}
                code = dims.get("versionCode", {})
                if str(code.get("int64Value", code.get("stringValue"))) != str(version_code):
                    continue
                values = {
                    m.get("metric"): m.get("decimalValue", {}).get("value")
                    for m in row.get("metrics") or []
                }
                rate = _decimal(values.get(metric), metric, query)
                count = _decimal(values.get("distinctUsers"), "distinctUsers", query)
                if rate is None or count is None:
                    continue
                if rate > 1.0:
                    raise MetricsError(
                        f"Google Play answered {metric} {rate}, more than 1: not a fraction of "
                        f"users; query `{query}`"
                    )
                rows += 1
                users += round(count)
                hits += round(rate * count)
            token = page.get("nextPageToken") or None
            if not token:
                break
        if rows == 0:
            raise NoDataError(
                f"Google Play returned no {metric} rows for version code {version_code}: the "
                f"version probably has no users in the window yet; query `{query}`",
                hint="Check `version-code`; Play's vitals lag by an hour or more.",
            )
        return users, hits

    def _freshness(self) -> dict[str, datetime | None]:
        """The aggregation periods the crash metric set offers, with their latest end time."""
        if self._periods is None:
            name = f"{self.app}/crashRateMetricSet"
            got = self._run(
                lambda: self.reporting.vitals().crashrate().get(name=name), "read", name
            )
            periods: dict[str, datetime | None] = {}
            for item in (got.get("freshnessInfo") or {}).get("freshnesses") or []:
                periods[str(item.get("aggregationPeriod"))] = _datetime(item.get("latestEndTime"))
            self._periods = periods or {"DAILY": None}
        return self._periods

    def _run(self, make: Callable[[], Any], what: str, query: str) -> Any:
        def classify(status: int, canonical: str, message: str) -> ReleaseActionsError:
            text = (
                f"The Play Developer Reporting API answered HTTP {status} {canonical}: "
                f"{message}; query `{query}`"
            )
            if status == 401:
                return MetricsError(
                    text, query=query, hint=GOOGLE_AUTH_HINT.format(json_var=JSON_VAR)
                )
            if status == 403:
                return MetricsError(text, query=query, hint=REPORTING_PERMISSION_HINT)
            if status == 404:
                return MetricsError(text, query=query, hint="Check `package-name`.")
            return MetricsError(
                text, query=query, hint="Play refused the query; retrying would not help."
            )

        return with_retry(
            lambda: _execute(make(), classify=classify),
            policy=self.retry,
            service="Play Developer Reporting",
            what=what,
            final=_final("Play Developer Reporting", what),
        )


def _decimal(value: Any, what: str, query: str) -> float | None:
    if value is None:
        return None
    if value == "":
        return 0.0  # google.type.Decimal: an empty string is zero
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MetricsError(f"Google Play answered {value!r} for {what}; query `{query}`") from None
    return number if math.isfinite(number) else None


def _datetime(value: Mapping[str, Any] | None) -> datetime | None:
    """A google.type.DateTime as an aware datetime (UTC unless it names a zone)."""
    if not value:
        return None
    zone_id = (value.get("timeZone") or {}).get("id")
    tz = ZoneInfo(zone_id) if zone_id else UTC
    return datetime(
        int(value.get("year", 1970)),
        int(value.get("month", 1)),
        int(value.get("day", 1)),
        int(value.get("hours", 0)),
        int(value.get("minutes", 0)),
        int(value.get("seconds", 0)),
        tzinfo=tz,
    )


def _google_datetime(when: datetime, hourly: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"year": when.year, "month": when.month, "day": when.day}
    if hourly:
        out["hours"] = when.hour
        out["timeZone"] = {"id": "UTC"}
    else:
        out["timeZone"] = {"id": DAILY_ZONE}
    return out


def _timeline(
    start: float, end: float, hourly: bool, latest: datetime | None
) -> tuple[dict[str, Any], datetime, datetime]:
    """An aligned ``timelineSpec`` covering [start, end), clamped to the freshest data."""
    if hourly:
        first = datetime.fromtimestamp(start, UTC).replace(minute=0, second=0, microsecond=0)
        last = datetime.fromtimestamp(end, UTC)
        if last != last.replace(minute=0, second=0, microsecond=0):
            last = last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    else:
        zone = ZoneInfo(DAILY_ZONE)
        first = datetime.fromtimestamp(start, zone).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        last = datetime.fromtimestamp(end, zone)
        if last != last.replace(hour=0, minute=0, second=0, microsecond=0):
            last = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if latest is not None and last > latest:
        last = latest.astimezone(first.tzinfo)
    spec = {
        "aggregationPeriod": "HOURLY" if hourly else "DAILY",
        "startTime": _google_datetime(first, hourly),
        "endTime": _google_datetime(last, hourly),
    }
    return spec, first, last


# -- reviews --------------------------------------------------------------------------------------


class PlayReviews(ReviewSource):
    """Star ratings and text from ``reviews.list``, page by page.

    Play returns only reviews created or edited in the last seven days; each has the
    reviewer's ``appVersionCode`` when the review was written on a known version.
    """

    name = "play"

    def __init__(
        self,
        publisher: Any,
        *,
        package_name: str,
        translation_language: str | None = None,
        page_size: int = 100,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.publisher = publisher
        self.package_name = package_name
        self.translation_language = translation_language
        self.page_size = page_size
        self.retry = retry or RetryPolicy(attempts=4, total_seconds=60.0)

    def reviews(self, since: float) -> list[Review]:
        found: list[Review] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {
                "packageName": self.package_name,
                "maxResults": self.page_size,
            }
            if token:
                params["token"] = token
            if self.translation_language:
                params["translationLanguage"] = self.translation_language

            def ask(p: dict[str, Any] = params) -> Any:
                return _execute(self.publisher.reviews().list(**p), classify=self._error)

            page = with_retry(
                ask,
                policy=self.retry,
                service="Google Play",
                what="list reviews",
                final=_reviews_final,
            )
            for item in page.get("reviews") or []:
                review = _review(item)
                if review is not None and review.at >= since:
                    found.append(review)
            token = (page.get("tokenPagination") or {}).get("nextPageToken") or None
            if not token or token in seen:
                break
            seen.add(token)
        found.sort(key=lambda r: r.at, reverse=True)
        return found

    def _error(self, status: int, canonical: str, message: str) -> ReleaseActionsError:
        text = f"Google Play answered HTTP {status} {canonical} to reviews.list: {message}"
        if status == 401:
            return IntegrationError(text, hint=GOOGLE_AUTH_HINT.format(json_var=JSON_VAR))
        if status == 403:
            return IntegrationError(
                text,
                hint="Give the service account `Reply to reviews` (which includes reading them) "
                "for this app in Play Console > Users and permissions.",
            )
        return IntegrationError(text, hint="Check `package-name`.")


def _reviews_final(exc: BaseException) -> ReleaseActionsError:
    error = _final("Google Play", "list reviews")(exc)
    return IntegrationError(error.message, hint=error.hint)


def _review(item: Mapping[str, Any]) -> Review | None:
    for comment in item.get("comments") or []:
        user = comment.get("userComment")
        if not user:
            continue
        modified = user.get("lastModified") or {}
        at = float(modified.get("seconds") or 0) + float(modified.get("nanos") or 0) / 1e9
        code = user.get("appVersionCode")
        return Review(
            version_code=str(code) if code is not None else None,
            stars=int(user.get("starRating") or 0),
            text=str(user.get("text") or "").strip(),
            at=at,
            language=user.get("reviewerLanguage"),
        )
    return None
