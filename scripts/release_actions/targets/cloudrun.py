"""Cloud Run as a deploy target: a canary revision behind a tag, with traffic split by percent."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, fields, replace
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any, ClassVar

from release_actions.errors import ReleaseActionsError, TargetError, require
from release_actions.metrics.base import Track
from release_actions.metrics.retry import RetryPolicy, retry_after_seconds
from release_actions.targets.base import (
    DeployTarget,
    HealthSample,
    Preview,
    RollbackResult,
    TargetStatus,
    keep_unread_marks,
    mark_ids,
)

log = logging.getLogger(__name__)

# Service annotations: Cloud Run v2 keeps them on the service and leaves them alone, so
# the next job (or a rerun of a killed one) finds what this one recorded.
KNOWN_GOOD_ANNOTATION = "release-actions.dev/known-good"
ROLLOUT_ANNOTATION = "release-actions.dev/rollout"
STATE_ANNOTATION = "release-actions.dev/state"
# On the revision template, so every revision says which release it is.
VERSION_ANNOTATION = "release-actions.dev/version"
CANARY_TAG = "canary"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

CANARY, PROMOTED, ROLLED_BACK = "canary", "promoted", "rolled_back"
# Who recorded the rollout: ``begin``, or a rollback that read the revision history.
BEGIN, HISTORY = "begin", "history"
# TrafficTargetAllocationType and Condition.State, as the API's integers.
_LATEST, _REVISION = 1, 2
_FAILED, _SUCCEEDED = 3, 4
# Kept readable in `gcloud run services describe` below this size; compressed above it.
_STATE_PLAIN_LIMIT = 16 * 1024
_STATE_MAX = 200 * 1024
_ZLIB_PREFIX = "zlib+base64:"
_REVISION_MAX = 63

AUTH_HINT = (
    "Use workload identity federation; no JSON key is needed. Give the job\n"
    "permissions:\n"
    "  id-token: write\n"
    "and set, in the step's env:, GCP_WORKLOAD_IDENTITY_PROVIDER (projects/NUMBER/locations/"
    "global/workloadIdentityPools/POOL/providers/PROVIDER), GCP_SERVICE_ACCOUNT "
    "(deployer@PROJECT.iam.gserviceaccount.com) and GOOGLE_CLOUD_PROJECT; release-actions "
    "trades the job's OIDC token for Google credentials itself. Application default "
    "credentials (GOOGLE_APPLICATION_CREDENTIALS) work too. The service account needs "
    "`roles/run.developer` on the service and `roles/iam.serviceAccountUser` on the "
    "service's runtime service account."
)


@dataclass(frozen=True)
class Rollout:
    """What ``begin`` recorded on the service: the canary, and where a rollback goes.

    A rollback of a deploy that release-actions did not start records one too, with
    ``origin`` ``history``: ``revision`` is the revision it moved traffic away from and
    ``known_good`` the one it found in Cloud Run's revision history.
    """

    version: str
    revision: str
    known_good: str
    known_good_version: str
    phase: str
    started_at: str
    origin: str = BEGIN

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Rollout | None:
        try:
            data = json.loads(text)
            values = {}
            for f in fields(cls):
                if f.name in data:
                    values[f.name] = str(data[f.name])
                elif f.default is MISSING:
                    return None
            return cls(**values)
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class _Entry:
    """One traffic target, in a form that compares equal when Cloud Run would route the same."""

    kind: int
    revision: str
    percent: int
    tag: str


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1] if name else ""


def _entries(targets: Iterable[Any]) -> list[_Entry]:
    out = []
    for t in targets:
        kind = int(t.type_)
        entry = _Entry(kind, t.revision if kind == _REVISION else "", int(t.percent), t.tag or "")
        # An untagged entry with no traffic routes nothing; Cloud Run drops it too.
        if entry.percent or entry.tag:
            out.append(entry)
    return out


def _serving(svc: Any) -> dict[str, int]:
    """Percent per revision as Cloud Run reports it serves (``traffic_statuses``), not as asked."""
    latest = _short(svc.latest_ready_revision)
    out: dict[str, int] = {}
    for status in svc.traffic_statuses:
        if not status.percent:
            continue
        revision = status.revision or (latest if int(status.type_) == _LATEST else "")
        out[revision] = out.get(revision, 0) + int(status.percent)
    return out


def _tagged(svc: Any, tag: str) -> str | None:
    latest = _short(svc.latest_ready_revision)
    for status in svc.traffic_statuses:
        if status.tag == tag:
            return str(status.revision or (latest if int(status.type_) == _LATEST else ""))
    return None


def _fmt(split: Mapping[str, int]) -> str:
    if not split:
        return "nothing"
    return ", ".join(f"`{rev}` {pct} %" for rev, pct in sorted(split.items(), key=lambda i: -i[1]))


def _image_tag(image: str) -> str | None:
    """The tag of an image reference; a registry's port (``host:5000/x``) is no tag."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _image_repository(image: str) -> str:
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def _encode_state(state: Mapping[str, Any]) -> str:
    try:
        text = json.dumps(dict(state), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TargetError(f"The rollout state cannot be saved as JSON: {exc}.") from exc
    if len(text) > _STATE_PLAIN_LIMIT:
        text = _ZLIB_PREFIX + base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    if len(text) > _STATE_MAX:
        raise TargetError(
            f"The rollout state is {len(text)} bytes even compressed, more than the "
            f"{_STATE_MAX} bytes a Cloud Run annotation can hold."
        )
    return text


def _decode_state(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        if text.startswith(_ZLIB_PREFIX):
            text = zlib.decompress(base64.b64decode(text[len(_ZLIB_PREFIX) :])).decode()
        data = json.loads(text)
    except (ValueError, zlib.error) as exc:
        raise TargetError(
            f"The `{STATE_ANNOTATION}` annotation does not hold a rollout state: {exc}.",
            hint=f"Remove the annotation to start afresh: gcloud run services update SERVICE "
            f"--region REGION --remove-annotations={STATE_ANNOTATION} (not a run.googleapis.com "
            "key, so the v2 API keeps it).",
        ) from exc
    return data if isinstance(data, dict) else None


class CloudRunTarget(DeployTarget):
    """A Cloud Run service: the canary is a revision with a ``canary`` tag and a traffic share.

    ``begin`` deploys the new version as a revision that takes no traffic, as
    ``gcloud run deploy --no-traffic --tag canary`` does, and records the revision serving
    100 % as known-good in the ``release-actions.dev/known-good`` annotation (with the
    rollout in ``release-actions.dev/rollout``); ``set_weight`` splits traffic between the
    two revisions by name; ``promote`` gives the new one 100 %; ``rollback`` gives the
    known-good one 100 %. Traffic is always pinned by revision name, never ``LATEST``, so
    a revision created by anyone else takes no traffic by accident.

    Blue-green is the same rollout with no steps in between: ``begin`` already leaves the new
    revision behind its tag with 0 %, ``preview`` is that tag's URL (Cloud Run's
    ``https://TAG---SERVICE-HASH-REGION.a.run.app``, which reaches only the tagged revision),
    ``switch`` gives it 100 % in one update with the tag kept, and ``rollback`` puts 100 %
    back on the known-good revision in one update. Cloud Run keeps the old revision and
    scales it by traffic, so "full size" is whatever its autoscaling settles on; a
    ``min-instances`` setting on the service is what keeps it warm for a switch back.
    Shadow is refused: a traffic split sends each request to exactly one revision, and
    Cloud Run has no way to copy a request to a second one.

    A deploy that release-actions did not start has no known-good recorded: ``rollback``
    then reads it from Cloud Run's revision history (``ListRevisions``) and records what it
    chose the same way, so a second ``rollback`` finds it and does nothing.

    Every change is a read-modify-write of the service: read it, decide, PATCH with the
    read ``etag``, wait for the long-running operation, read it back. A 409 (a concurrent
    writer), 429 or 5xx starts the cycle again after a backoff, so a retry never applies
    a stale decision. A change already in place is not sent again, which makes a second
    ``rollback`` send nothing. Afterwards the traffic Cloud Run *reports* serving
    (``traffic_statuses``) must be the traffic asked for: deploy tools have reported
    success while the old revision kept serving, and that is a ``TargetError`` here.

    ``health``: Cloud Run has no pods to restart and exposes no restart or probe-failure
    counts, so ``restarts`` and ``health_check_failures`` are always 0 and readiness comes
    from the revision's ``Ready`` condition; a crash-looping revision shows up as not
    ready, and in the error-rate and latency triggers.
    """

    name = "cloudrun"
    strategies: ClassVar[frozenset[str]] = frozenset({"canary", "rolling", "blue-green"})

    def __init__(
        self,
        services_client: Any,
        revisions_client: Any = None,
        *,
        project: str,
        region: str,
        service: str,
        image: str | None = None,
        timeout: float = 600.0,
        request_timeout: float = 30.0,
        poll_initial: float = 1.0,
        poll_max: float = 10.0,
        retry: RetryPolicy | None = None,
        tag: str = CANARY_TAG,
    ) -> None:
        """``image`` is the image to deploy, with ``{version}`` replaced by the version;
        without it the service's current image gets the version as its tag.

        ``timeout`` bounds each wait for Cloud Run (an operation, a reconciliation);
        ``poll_initial`` and ``poll_max`` pace the polling of operations.
        """
        # Ids of the saved state's marks this process has read or written (see save_state).
        self._seen_marks: set[str] = set()
        self.services = services_client
        self.revisions = revisions_client
        self.project = project
        self.region = region
        self.service = service
        self.image = image
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.retry = retry or RetryPolicy(
            attempts=5,
            total_seconds=300.0,
            backoff_initial=1.0,
            backoff_max=16.0,
            jitter=0.5,
            retry_after_cap=60.0,
        )
        self.tag = tag
        self.notes: list[str] = []

    @classmethod
    def from_env(
        cls,
        *,
        region: str,
        service: str,
        project: str | None = None,
        image: str | None = None,
        endpoint: str | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> CloudRunTarget:
        """Clients built on application default credentials, so workload identity works.

        google-github-actions/auth with ``workload_identity_provider`` writes an
        ``external_account`` credentials file and points ``GOOGLE_APPLICATION_CREDENTIALS``
        at it; ``google.auth.default()`` reads it, so no long-lived JSON key is involved.
        The REST transport is the one the tests check against the HTTP fake.
        """
        run_v2: Any = require("google.cloud.run_v2", "cloudrun")
        google_auth: Any = require("google.auth", "cloudrun")
        auth_exceptions: Any = require("google.auth.exceptions", "cloudrun")
        client_options: Any = require("google.api_core.client_options", "cloudrun")
        env = os.environ if env is None else env
        provider = env.get("GCP_WORKLOAD_IDENTITY_PROVIDER", "").strip()
        try:
            if provider:
                # The runner's OIDC token, traded with Google's STS: what
                # google-github-actions/auth does, without a third-party action to pin.
                from release_actions.integrations.gcp_oidc import github_oidc_credentials

                credentials = github_oidc_credentials(
                    env, provider, service_account=env.get("GCP_SERVICE_ACCOUNT") or None
                )
                detected = env.get("GOOGLE_CLOUD_PROJECT") or None
            else:
                credentials, detected = google_auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        except auth_exceptions.DefaultCredentialsError as exc:
            raise TargetError(
                "No Google Cloud credentials were found for Cloud Run "
                f"(google.auth.default(): {exc}).",
                hint=AUTH_HINT,
            ) from exc
        project = project or detected
        if not project:
            raise TargetError(
                "No Google Cloud project is set for the Cloud Run target.",
                hint="Pass `project`, or set GOOGLE_CLOUD_PROJECT (google-github-actions/auth "
                "sets it from the service account).",
            )
        options = client_options.ClientOptions(api_endpoint=endpoint) if endpoint else None
        services = run_v2.ServicesClient(
            credentials=credentials, transport="rest", client_options=options
        )
        revisions = run_v2.RevisionsClient(
            credentials=credentials, transport="rest", client_options=options
        )
        return cls(
            services,
            revisions,
            project=project,
            region=region,
            service=service,
            image=image,
            **kwargs,
        )

    # -- names ------------------------------------------------------------------------------

    @property
    def service_name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}/services/{self.service}"

    def revision_name(self, version: str) -> str:
        """``{service}-{version}`` in Cloud Run's alphabet, so each release names its revision.

        Cloud Run requires the service name as prefix, lowercase letters, digits and
        hyphens, and at most 63 characters; a longer name keeps a hash of the version so
        that two long versions never share a name.
        """
        slug = re.sub(r"[^a-z0-9]+", "-", version.lower()).strip("-") or "release"
        name = f"{self.service}-{slug}"
        if len(name) > _REVISION_MAX:
            digest = sha256(version.encode()).hexdigest()[:8]
            name = name[: _REVISION_MAX - len(digest) - 1].rstrip("-") + "-" + digest
        return name

    def image_for(self, version: str, current: str) -> str:
        # `+` (SemVer build metadata) is not allowed in an image tag; `_` is the usual stand-in.
        tag = version.replace("+", "_")
        if self.image:
            return self.image.replace("{version}", tag)
        return f"{_image_repository(current)}:{tag}"

    # -- DeployTarget -------------------------------------------------------------------------

    def status(self) -> TargetStatus:
        svc = self._call("read the service", self._get)
        rollout = self._rollout(svc)
        serving = _serving(svc)
        canary = rollout.revision if rollout and rollout.phase == CANARY else None
        others = {rev: pct for rev, pct in serving.items() if rev != canary}
        stable_rev = max(others, key=lambda r: others[r]) if others else None
        if stable_rev is None and rollout is not None and rollout.phase == CANARY:
            stable_rev = rollout.known_good
        return TargetStatus(
            stable_version=self._version_of(svc, stable_rev) if stable_rev else None,
            canary_version=rollout.version if canary and rollout else None,
            canary_weight=serving.get(canary, 0) if canary else 0,
            known_good=rollout.known_good_version if rollout else None,
            state=self._read_state(svc),
        )

    def begin(self, version: str) -> None:
        revision = self.revision_name(version)
        self.notes = []

        def mutate(svc: Any) -> list[str] | None:
            self.notes = []
            rollout = self._rollout(svc)
            if rollout is not None and rollout.phase == CANARY:
                if rollout.version != version:
                    raise TargetError(
                        f"Canary {rollout.version} (revision `{rollout.revision}`) is still in "
                        f"progress on Cloud Run service `{self.service}`; cannot start {version}.",
                        hint="Roll it back (`release-actions canary run` does so for an "
                        "abandoned rollout) or promote it first.",
                    )
                # Resuming: an earlier call wrote the spec; send it again only if it did not land.
                self._refuse_foreign(svc, rollout)
                desired = self._canary_traffic(svc, rollout, self._spec_weight(svc, rollout))
                if self._in_place(svc, desired):
                    return None
                self._set_traffic(svc, desired)
                return ["traffic"]
            serving = _serving(svc)
            if len(serving) != 1:
                raise TargetError(
                    f"Traffic on Cloud Run service `{self.service}` is split ({_fmt(serving)}): "
                    "no single revision serves 100 %, so none can be recorded as known-good.",
                    hint="Finish or undo the earlier rollout first, for example: gcloud run "
                    f"services update-traffic {self.service} --region {self.region} "
                    "--to-revisions=REVISION=100",
                )
            known_good = next(iter(serving))
            if known_good == revision:
                raise TargetError(
                    f"{version} (revision `{revision}`) already serves 100 % of Cloud Run "
                    f"service `{self.service}`.",
                    hint="Deploy a new version, or roll back first to run its canary again.",
                )
            self._note_pinning(svc, known_good)
            rollout = Rollout(
                version=version,
                revision=revision,
                known_good=known_good,
                known_good_version=self._version_of(svc, known_good),
                phase=CANARY,
                started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            paths = ["traffic", "annotations"]
            if svc.template.revision != revision:
                self._set_template(svc, version, revision)
                paths.insert(0, "template")
            self._set_traffic(svc, self._canary_traffic(svc, rollout, 0))
            svc.annotations[KNOWN_GOOD_ANNOTATION] = known_good
            svc.annotations[ROLLOUT_ANNOTATION] = rollout.to_json()
            return paths

        svc, _ = self._update(f"deploy {version} as revision `{revision}` with no traffic", mutate)
        rollout = self._rollout(svc)
        assert rollout is not None
        weight = self._spec_weight(svc, rollout)
        self._verify(
            svc, {rollout.known_good: 100 - weight, revision: weight}, f"deploying {version}"
        )
        tagged = _tagged(svc, self.tag)
        if tagged != revision:
            raise TargetError(
                f"Cloud Run reported the deploy of {version} as done, but the `{self.tag}` tag "
                f"points at `{tagged or 'nothing'}`, not at `{revision}`.",
                hint=self._describe_hint(),
            )
        ready, message = self._revision_ready(svc, revision)
        if not ready:
            raise TargetError(
                f"Revision `{revision}` of {version} is not ready: {message or 'no Ready condition'}.",
                hint=f"The known-good revision `{rollout.known_good}` still serves 100 %. "
                f"Read the revision's logs (gcloud run revisions describe {revision} "
                f"--region {self.region}), then roll back to clear the canary.",
            )

    def set_weight(self, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise TargetError(f"Canary weight must be 0 to 100, got {percent}.")

        def mutate(svc: Any) -> list[str] | None:
            rollout = self._canary_in_progress(svc)
            self._refuse_foreign(svc, rollout)
            desired = self._canary_traffic(svc, rollout, percent)
            if self._in_place(svc, desired):
                return None
            self._set_traffic(svc, desired)
            return ["traffic"]

        svc, _ = self._update(f"send {percent} % of traffic to the canary", mutate)
        rollout = self._canary_in_progress(svc)
        self._verify(
            svc,
            {rollout.known_good: 100 - percent, rollout.revision: percent},
            f"setting the canary to {percent} %",
        )

    def refusal(self, strategy: str) -> str | None:
        if strategy == "shadow":
            return (
                "Cloud Run has no traffic mirroring: its traffic split sends each request to "
                "exactly one revision, so no revision can be shown a copy of another's requests"
            )
        return super().refusal(strategy)

    def preview(self) -> Preview | None:
        """The canary tag's URL: Cloud Run routes it to the tagged revision only, whatever the split."""
        svc = self._call("read the service", self._get)
        rollout = self._canary_in_progress(svc, doing="nothing to preview")
        for status in svc.traffic_statuses:
            if status.tag != self.tag:
                continue
            if status.revision != rollout.revision:
                break
            if not status.uri:
                raise TargetError(
                    f"Cloud Run reports no URL for the `{self.tag}` tag of `{self.service}` "
                    f"(revision `{rollout.revision}`) yet.",
                    hint="Run begin(version) again; it resends the tag if it did not land. "
                    + self._describe_hint(),
                )
            return Preview(
                url=str(status.uri),
                detail=f"the `{self.tag}` tag URL of revision `{rollout.revision}` "
                f"({rollout.version}), which takes no user traffic until the switch",
            )
        raise TargetError(
            f"The `{self.tag}` tag of Cloud Run service `{self.service}` does not point at the "
            f"new revision `{rollout.revision}` ({rollout.version}): "
            f"`{_tagged(svc, self.tag) or 'no revision'}` has it.",
            hint="Run begin(version) again to put the tag back, or roll back. "
            + self._describe_hint(),
        )

    def switch(self) -> None:
        """All traffic to the new revision in one update, the tag kept for the preview URL.

        The known-good revision keeps no traffic but stays recorded, so a rollback after the
        switch is one update back, and a second switch sends nothing.
        """

        def mutate(svc: Any) -> list[str] | None:
            rollout = self._canary_in_progress(svc, doing="nothing to switch to")
            self._refuse_foreign(svc, rollout)
            desired = self._canary_traffic(svc, rollout, 100)
            if self._in_place(svc, desired):
                return None
            self._set_traffic(svc, desired)
            return ["traffic"]

        svc, _ = self._update("switch all traffic to the new revision", mutate)
        rollout = self._canary_in_progress(svc, doing="nothing to switch to")
        self._verify(svc, {rollout.revision: 100}, f"switching to {rollout.version}")

    def promote(self) -> None:
        def mutate(svc: Any) -> list[str] | None:
            rollout = self._rollout(svc)
            if rollout is None or rollout.phase == ROLLED_BACK:
                return None  # nothing in progress: twice is harmless
            if rollout.phase == CANARY:
                self._refuse_foreign(svc, rollout)
            desired = [_Entry(_REVISION, rollout.revision, 100, ""), *self._extras(svc)]
            if rollout.phase == PROMOTED and self._in_place(svc, desired):
                return None
            self._set_traffic(svc, desired)
            svc.annotations[ROLLOUT_ANNOTATION] = replace(rollout, phase=PROMOTED).to_json()
            return ["traffic", "annotations"]

        svc, _ = self._update("promote the canary to 100 %", mutate)
        rollout = self._rollout(svc)
        if rollout is not None and rollout.phase == PROMOTED:
            self._verify(svc, {rollout.revision: 100}, f"promoting {rollout.version}")

    def rollback(self) -> RollbackResult:
        outcome: dict[str, Any] = {}

        def mutate(svc: Any) -> list[str] | None:
            rollout = self._rollout(svc)
            outcome.pop("noop", None)
            if rollout is None or self._stale_history(svc, rollout):
                # No known-good recorded (a deploy release-actions did not start), or the
                # one an earlier such rollback found no longer describes what serves.
                rollout = self._from_history(svc, rollout)
                outcome["history"] = True  # kept across attempts, like "from" below
                svc.annotations[KNOWN_GOOD_ANNOTATION] = rollout.known_good
            outcome["rollout"] = rollout
            desired = [_Entry(_REVISION, rollout.known_good, 100, ""), *self._extras(svc)]
            if self._in_place(svc, desired):
                if rollout.phase == ROLLED_BACK and rollout.origin == HISTORY:
                    outcome["noop"] = (
                        f"nothing to do: `{self.service}` is already on `{rollout.known_good}` "
                        f"({rollout.known_good_version}), the previous serving revision that an "
                        f"earlier rollback found in Cloud Run's revision history when it moved "
                        f"traffic away from `{rollout.revision}` ({rollout.version})"
                    )
                    return None
                if rollout.phase == ROLLED_BACK:
                    outcome["noop"] = (
                        f"already on the known-good revision `{rollout.known_good}` "
                        f"({rollout.known_good_version}) of `{self.service}`"
                    )
                    return None
                # Traffic is back already (a person, or a killed run): record the rollback.
                outcome["noop"] = (
                    f"traffic was already back on `{rollout.known_good}`; recorded the rollback"
                )
                svc.annotations[ROLLOUT_ANNOTATION] = replace(rollout, phase=ROLLED_BACK).to_json()
                return ["annotations"]
            # Kept across attempts: a retry after a lost operation finds the change in place.
            outcome["from"] = {
                r: p for r, p in _serving(svc).items() if r != rollout.known_good
            } or {rollout.revision: 0}
            self._set_traffic(svc, desired)
            svc.annotations[ROLLOUT_ANNOTATION] = replace(rollout, phase=ROLLED_BACK).to_json()
            return ["traffic", "annotations"]

        # The operation may fail on the bad revision's account (Cloud Run reports the
        # service not ready while its newest revision is broken); what counts is the
        # traffic it reports afterwards, checked below.
        svc, sent = self._update(
            "roll back to the known-good revision", mutate, tolerate_op_error=True
        )
        rollout = outcome["rollout"]
        self._verify(svc, {rollout.known_good: 100}, "rolling back")
        bad: dict[str, int] = outcome.get("from") or {}
        from_version = (
            ", ".join(self._version_of(svc, rev) for rev in bad) if bad else rollout.version
        )
        to = f"`{rollout.known_good}` ({rollout.known_good_version})"
        if bad and sent:
            moved = ", ".join(f"`{rev}`" for rev in bad)
            if outcome.get("history"):
                detail = (
                    f"no rollout recorded: rolled back to the previous serving revision {to} "
                    f"(from Cloud Run's revision history); traffic moved from {moved} on Cloud "
                    f"Run service `{self.service}`"
                )
            elif any(bad.values()):
                detail = f"traffic moved from {moved} to {to} on Cloud Run service `{self.service}`"
            else:  # the canary never had traffic (it failed to start): only its tag goes
                detail = f"removed the `{self.tag}` tag from {moved}; {to} serves 100 %"
            return RollbackResult(True, from_version, rollout.known_good_version, detail)
        if rollout.phase == ROLLED_BACK and not sent:
            from_version = None  # nothing happened now: there was nothing to move away from
        return RollbackResult(
            False, from_version, rollout.known_good_version, str(outcome.get("noop", ""))
        )

    def _stale_history(self, svc: Any, rollout: Rollout) -> bool:
        """A rollback from history recorded earlier, while a revision it never saw serves now.

        Such a record is only the guess of its day; a later deploy made outside release-actions
        is rolled back from the history again (the ``begin`` record of a rollout is kept).
        """
        if rollout.origin != HISTORY or rollout.phase != ROLLED_BACK:
            return False
        return not set(_serving(svc)) <= {rollout.known_good, rollout.revision}

    def _history(self) -> list[Any]:
        """The service's revisions, newest first by ``create_time``, every page of them."""
        pages = self.revisions.list_revisions(
            request={"parent": self.service_name, "page_size": 100},
            retry=None,
            timeout=self.request_timeout,
        )
        revisions = list(pages)  # the pager reads on while ``next_page_token`` is set
        # The API sorts so already; sorted again (stable) rather than trusted blindly.
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(revisions, key=lambda r: r.create_time or oldest, reverse=True)

    def _from_history(self, svc: Any, stale: Rollout | None) -> Rollout:
        """Where Cloud Run's own revision history says a rollback goes, with no rollout recorded.

        The bad revision is the newest one that serves; the rollback target is the newest
        *ready* revision created before it, or, when traffic is split, the newest other
        revision that serves (a revision that never served is no known-good one). A
        revision that an earlier rollback from history moved away from is skipped.
        """
        serving = _serving(svc)
        unrecorded = (
            f"No rollout is recorded on Cloud Run service `{self.service}` (annotation "
            f"`{ROLLOUT_ANNOTATION}`)"
        )
        by_hand = (
            "Deploy the known-good version again, or move the traffic yourself: gcloud run "
            f"services update-traffic {self.service} --region {self.region} "
            "--to-revisions=REVISION=100"
        )
        if self.revisions is None:
            raise TargetError(
                f"{unrecorded}, and without a revisions client its revision history cannot be "
                "read to find the previous serving revision; nothing was changed.",
                hint="Build the target with a run_v2.RevisionsClient (CloudRunTarget.from_env "
                "does). " + by_hand,
            )
        if not serving:
            raise TargetError(
                f"{unrecorded}, and Cloud Run reports no revision serving traffic, so there is "
                "no deploy to roll back; nothing was changed.",
                hint=self._describe_hint(),
            )
        history = self._history()
        names = [_short(r.name) for r in history]
        unknown = sorted(set(serving) - set(names))
        if unknown:
            raise TargetError(
                f"{unrecorded}, and the revision history does not list "
                f"{', '.join(f'`{r}`' for r in unknown)}, which serves traffic; nothing was "
                "changed.",
                hint=by_hand,
            )
        index = min(names.index(r) for r in serving)
        newest, older = history[index], history[index + 1 :]
        bad = names[index]
        if len(serving) > 1:
            older = [r for r in older if _short(r.name) in serving]
        skipped = stale.revision if stale is not None else None
        chosen = next(
            (r for r in older if _short(r.name) != skipped and _ready(r)),
            None,
        )
        if chosen is None:
            where = (
                "no other ready revision serves with it"
                if len(serving) > 1
                else "no ready revision was created before it"
            )
            also = (
                f" (`{skipped}` does not count: an earlier rollback moved traffic away from it)"
                if skipped and skipped in names[index + 1 :]
                else ""
            )
            raise TargetError(
                f"{unrecorded}, and its revision history has no earlier ready revision to roll "
                f"back to: `{bad}` serves ({_fmt(serving)}) and {where}{also}. "
                "There is nothing to roll back to, so nothing was changed.",
                hint=by_hand,
            )
        known_good = _short(chosen.name)
        return Rollout(
            version=_revision_version(newest),
            revision=bad,
            known_good=known_good,
            known_good_version=_revision_version(chosen),
            phase=ROLLED_BACK,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            origin=HISTORY,
        )

    def _read_state(self, svc: Any) -> dict[str, Any] | None:
        """The saved state on the service; its marks count as read by this process from now on."""
        state = _decode_state(svc.annotations.get(STATE_ANNOTATION))
        self._seen_marks |= mark_ids(state)
        return state

    def save_state(self, state: Mapping[str, Any] | None) -> None:
        """Write the state computed from a fresh read (the update carries its etag), keeping the
        marks another process wrote that this one has not read (an operator's `abort`)."""

        def mutate(svc: Any) -> list[str] | None:
            encoded = (
                None
                if state is None
                else _encode_state(
                    keep_unread_marks(
                        _decode_state(svc.annotations.get(STATE_ANNOTATION)),
                        state,
                        self._seen_marks,
                    )
                )
            )
            if svc.annotations.get(STATE_ANNOTATION) == encoded:
                return None
            if encoded is None:
                del svc.annotations[STATE_ANNOTATION]
            else:
                svc.annotations[STATE_ANNOTATION] = encoded
            return ["annotations"]

        self._update("save the rollout state", mutate)
        self._seen_marks |= mark_ids(state)

    def health(self, track: Track | None = None) -> HealthSample:
        svc = self._call("read the service", self._get)
        rollout = self._rollout(svc)
        serving = _serving(svc)
        canary = rollout.revision if rollout and rollout.phase == CANARY else None
        if track is Track.CANARY and canary:
            revisions = [canary]
        elif track is Track.STABLE:
            stable = [r for r in serving if r != canary]
            revisions = stable or ([rollout.known_good] if rollout else [])
        else:
            revisions = sorted(serving)
        checks = {rev: self._revision_ready(svc, rev) for rev in revisions}
        return HealthSample(
            ready=bool(checks) and all(ok for ok, _ in checks.values()),
            restarts=0,
            health_check_failures=0,
            details={
                "revisions": {
                    rev: {"ready": ok, "message": msg} for rev, (ok, msg) in checks.items()
                },
                "restarts": "not exposed by Cloud Run; always 0",
            },
        )

    # -- the read-modify-write cycle ------------------------------------------------------------

    def _get(self) -> Any:
        return self.services.get_service(
            name=self.service_name, retry=None, timeout=self.request_timeout
        )

    def _settled(self, svc: Any) -> Any:
        """The service once Cloud Run has finished reconciling it (a change of anyone's)."""
        deadline = self.retry.clock() + self.timeout
        wait = self.poll_initial
        while svc.reconciling:
            if self.retry.clock() >= deadline:
                raise TargetError(
                    f"Cloud Run service `{self.service}` is still reconciling after "
                    f"{self.timeout:g} s; its traffic is not settled.",
                    hint=self._describe_hint(),
                )
            self.retry.sleep(wait)
            wait = min(wait * 1.5, self.poll_max)
            svc = self._get()
        return svc

    def _update(
        self,
        what: str,
        mutate: Callable[[Any], list[str] | None],
        *,
        tolerate_op_error: bool = False,
    ) -> tuple[Any, bool]:
        """Read, decide, PATCH and wait, retried as a whole; returns the settled service and
        whether any PATCH was accepted."""
        field_mask: Any = require("google.protobuf.field_mask_pb2", "cloudrun")
        sent = False

        def attempt() -> Any:
            nonlocal sent
            svc = self._settled(self._get())
            paths = mutate(svc)
            if not paths:
                return svc
            op = self.services.update_service(
                service=svc,
                update_mask=field_mask.FieldMask(paths=paths),
                retry=None,
                timeout=self.request_timeout,
            )
            sent = True
            try:
                op.result(timeout=self.timeout, polling=self._polling())
            except concurrent.futures.TimeoutError:
                raise TargetError(
                    f"Cloud Run did not finish the update to {what} on `{self.service}` within "
                    f"{self.timeout:g} s (operation `{op.operation.name}`).",
                    hint="A revision that never becomes ready looks like this. "
                    + self._describe_hint(),
                ) from None
            except Exception as exc:
                if self._transient(exc)[0] or not tolerate_op_error:
                    raise
                log.warning("cloudrun: the operation to %s ended with %s", what, exc)
            return self._settled(self._get())

        return self._call(what, attempt), sent

    def _polling(self) -> Any:
        polling: Any = require("google.api_core.future.polling", "cloudrun")
        return polling.DEFAULT_POLLING.with_delay(
            initial=self.poll_initial, maximum=self.poll_max, multiplier=1.5
        ).with_timeout(self.timeout)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn`` until it returns, fails for good, or the retry policy gives up."""
        deadline = self.retry.deadline()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except ReleaseActionsError:
                raise
            except Exception as exc:
                transient, retry_after = self._transient(exc)
                if not transient:
                    raise self._error(what, exc) from exc
                wait = retry_after if retry_after is not None else self.retry.backoff(attempt)
                wait = min(max(wait, 0.0), self.retry.retry_after_cap)
                if attempt >= self.retry.attempts or self.retry.clock() + wait > deadline:
                    error = self._error(what, exc)
                    error.message = f"{error.message} (gave up after {attempt} attempt(s))"
                    raise error from exc
                log.warning(
                    "cloudrun: %s: %s; retrying in %.1f s (attempt %d of %d)",
                    what,
                    _brief(exc),
                    wait,
                    attempt + 1,
                    self.retry.attempts,
                )
                self.retry.sleep(wait)

    @staticmethod
    def _transient(exc: BaseException) -> tuple[bool, float | None]:
        """Worth another read-modify-write cycle: a concurrent writer, a rate limit, an outage."""
        try:
            import requests
            from google.api_core import exceptions as gexc
        except ImportError:  # pragma: no cover - the cloudrun extra brings both
            return False, None
        if isinstance(exc, requests.ConnectionError | requests.Timeout):
            return True, None
        if not isinstance(exc, gexc.GoogleAPICallError):
            return False, None
        headers = getattr(getattr(exc, "response", None), "headers", None)
        if isinstance(exc, gexc.TooManyRequests):  # 429, RESOURCE_EXHAUSTED
            return True, retry_after_seconds(headers)
        if isinstance(exc, gexc.ServerError) and not isinstance(exc, gexc.MethodNotImplemented):
            return True, retry_after_seconds(headers)
        if isinstance(exc, gexc.Conflict):
            # ABORTED is a lost etag race; ALREADY_EXISTS (a revision name taken) is final.
            return _status_name(exc) != "ALREADY_EXISTS", None
        return False, None

    def _error(self, what: str, exc: BaseException) -> TargetError:
        try:
            from google.api_core import exceptions as gexc
        except ImportError:  # pragma: no cover
            gexc = None  # type: ignore[assignment]
        if gexc is None or not isinstance(exc, gexc.GoogleAPICallError):
            return TargetError(
                f"Could not {what} on Cloud Run service `{self.service}`: "
                f"{type(exc).__name__}: {exc}",
                hint="Check that the Cloud Run API is reachable from the runner.",
            )
        status, message = _status_name(exc), _google_message(exc)
        code = f"HTTP {exc.code}" if getattr(exc, "code", None) else "no HTTP status"
        text = f"Cloud Run refused to {what} on `{self.service}` ({status}, {code}): {message}"
        if isinstance(exc, gexc.Unauthorized | gexc.Forbidden):  # 401, 403 and their gRPC kin
            return TargetError(text, hint=AUTH_HINT)
        if isinstance(exc, gexc.NotFound):
            return TargetError(
                text,
                hint=f"Check `project` ({self.project}), `region` ({self.region}) and "
                f"`service` ({self.service}); the service must exist before its first canary.",
            )
        if status == "ALREADY_EXISTS":
            return TargetError(
                text,
                hint="A revision of that name exists with another configuration (a rebuilt "
                "image under the same version?). Release it under a new version.",
            )
        return TargetError(text, hint=self._describe_hint())

    # -- reading the service ---------------------------------------------------------------

    @staticmethod
    def _rollout(svc: Any) -> Rollout | None:
        text = svc.annotations.get(ROLLOUT_ANNOTATION)
        return Rollout.from_json(text) if text else None

    def _canary_in_progress(self, svc: Any, doing: str = "no weight to set") -> Rollout:
        rollout = self._rollout(svc)
        if rollout is None or rollout.phase != CANARY:
            raise TargetError(
                f"No canary is in progress on Cloud Run service `{self.service}`, so there is "
                f"{doing}.",
                hint="Call begin(version) first.",
            )
        return rollout

    def _extras(self, svc: Any) -> list[_Entry]:
        """Other tags with no traffic (a `preview` URL someone keeps): left as they are."""
        return [e for e in _entries(svc.traffic) if not e.percent and e.tag != self.tag]

    def _canary_traffic(self, svc: Any, rollout: Rollout, percent: int) -> list[_Entry]:
        out = []
        if percent < 100:
            out.append(_Entry(_REVISION, rollout.known_good, 100 - percent, ""))
        out.append(_Entry(_REVISION, rollout.revision, percent, self.tag))
        return out + self._extras(svc)

    def _spec_weight(self, svc: Any, rollout: Rollout) -> int:
        return sum(
            e.percent
            for e in _entries(svc.traffic)
            if e.kind == _REVISION and e.revision == rollout.revision
        )

    def _in_place(self, svc: Any, desired: list[_Entry]) -> bool:
        """Asked for and served: the spec says ``desired`` and Cloud Run routes it so.

        Both, because a change whose operation failed leaves the spec right and the
        routing old; only sending it again makes Cloud Run reconcile it.
        """
        want = sorted(desired, key=repr)
        return sorted(_entries(svc.traffic), key=repr) == want and (
            sorted(_entries(svc.traffic_statuses), key=repr) == want
        )

    def _refuse_foreign(self, svc: Any, rollout: Rollout) -> None:
        """Traffic the rollout did not put there: pinned by an earlier deploy, or by a person."""
        for e in _entries(svc.traffic):
            if not e.percent:
                continue
            if e.kind == _LATEST:
                raise TargetError(
                    f"Traffic on Cloud Run service `{self.service}` follows LATEST "
                    f"({e.percent} %) while the canary {rollout.version} is in progress: the "
                    "newest revision would take that traffic whatever it is.",
                    hint=f"Someone changed traffic during the rollout. Roll back to "
                    f"`{rollout.known_good}` (release-actions rolls back to the revision "
                    "recorded as known-good) and start the rollout again.",
                )
            if e.revision not in (rollout.known_good, rollout.revision):
                raise TargetError(
                    f"Traffic on Cloud Run service `{self.service}` is pinned to revision "
                    f"`{e.revision}` ({e.percent} %), which is neither the known-good "
                    f"`{rollout.known_good}` nor the canary `{rollout.revision}`: an earlier "
                    "deploy or a person pinned it during the rollout.",
                    hint="Roll back (traffic returns to the known-good revision), or move the "
                    f"traffic yourself: gcloud run services update-traffic {self.service} "
                    f"--region {self.region} --to-revisions={rollout.known_good}=100",
                )

    def _note_pinning(self, svc: Any, known_good: str) -> None:
        entries = _entries(svc.traffic)
        latest = _short(svc.latest_ready_revision)
        if any(e.kind == _LATEST and e.percent for e in entries):
            self._note(
                f"traffic on `{self.service}` followed LATEST; pinned it to `{known_good}` so "
                "the new revision takes no traffic until the canary starts"
            )
        elif latest and latest != known_good:
            self._note(
                f"traffic on `{self.service}` was pinned to `{known_good}` by an earlier deploy; "
                f"the newer revision `{latest}` never served and is not the known-good one"
            )

    def _note(self, text: str) -> None:
        log.warning("cloudrun: %s", text)
        self.notes.append(text)

    def _version_of(self, svc: Any, revision: str) -> str:
        rollout = self._rollout(svc)
        if rollout is not None:
            if revision == rollout.revision:
                return rollout.version
            if revision == rollout.known_good:
                return rollout.known_good_version
        if revision in (_short(svc.latest_created_revision), svc.template.revision):
            found = svc.template.annotations.get(VERSION_ANNOTATION)
            tag = _image_tag(svc.template.containers[0].image) if svc.template.containers else None
            return str(found or tag or revision)
        if self.revisions is not None:
            try:
                rev = self.revisions.get_revision(
                    name=f"{self.service_name}/revisions/{revision}",
                    retry=None,
                    timeout=self.request_timeout,
                )
            except Exception as exc:  # a label is not worth failing a rollout for
                log.debug("cloudrun: cannot read revision %s: %s", revision, exc)
                return revision
            return _revision_version(rev)
        return revision

    def _revision_ready(self, svc: Any, revision: str) -> tuple[bool, str]:
        if self.revisions is None:
            # Without a revisions client: the service's own verdict on what it serves.
            ready = int(svc.terminal_condition.state) == _SUCCEEDED
            return ready, svc.terminal_condition.message
        rev = self._call(
            f"read revision `{revision}`",
            lambda: self.revisions.get_revision(
                name=f"{self.service_name}/revisions/{revision}",
                retry=None,
                timeout=self.request_timeout,
            ),
        )
        for cond in rev.conditions:
            if cond.type_ == "Ready":
                return int(cond.state) == _SUCCEEDED, cond.message
        return False, "no Ready condition"

    def _verify(self, svc: Any, wanted: Mapping[str, int], doing: str) -> None:
        want = {rev: pct for rev, pct in wanted.items() if pct}
        got = _serving(svc)
        if got != want:
            raise TargetError(
                f"Cloud Run reported {doing} on `{self.service}` as done, but it serves "
                f"{_fmt(got)}; wanted {_fmt(want)}.",
                hint="Cloud Run's own report (trafficStatuses) is what counts: the old "
                "revision may still be serving. " + self._describe_hint(),
            )

    # -- writing the service -------------------------------------------------------------

    def _set_template(self, svc: Any, version: str, revision: str) -> None:
        if not svc.template.containers:
            raise TargetError(f"Cloud Run service `{self.service}` has no container to update.")
        container = svc.template.containers[0]
        container.image = self.image_for(version, container.image)
        svc.template.revision = revision
        svc.template.annotations[VERSION_ANNOTATION] = version

    @staticmethod
    def _set_traffic(svc: Any, entries: list[_Entry]) -> None:
        run_v2: Any = require("google.cloud.run_v2", "cloudrun")
        targets = []
        for e in entries:
            target = run_v2.TrafficTarget(type_=e.kind, percent=e.percent, tag=e.tag)
            if e.kind == _REVISION:
                target.revision = e.revision
            targets.append(target)
        svc.traffic = targets

    def _describe_hint(self) -> str:
        return (
            f"Inspect it with: gcloud run services describe {self.service} --region "
            f"{self.region} --format='yaml(spec.traffic,status.traffic)'"
        )


def _revision_version(rev: Any) -> str:
    """The release a revision runs: its version annotation, its image's tag, or its name."""
    found = rev.annotations.get(VERSION_ANNOTATION)
    tag = _image_tag(rev.containers[0].image) if rev.containers else None
    return str(found or tag or _short(rev.name))


def _ready(rev: Any) -> bool:
    """The revision's ``Ready`` condition has succeeded."""
    return any(c.type_ == "Ready" and int(c.state) == _SUCCEEDED for c in rev.conditions)


def _status_name(exc: BaseException) -> str:
    """Google's canonical status (``ABORTED``, ``ALREADY_EXISTS``...) of an API error."""
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "json"):
        try:
            status = response.json().get("error", {}).get("status")
            if status:
                return str(status)
        except (ValueError, AttributeError):
            pass
    grpc_code = getattr(exc, "grpc_status_code", None)
    if grpc_code is not None:
        return str(getattr(grpc_code, "name", grpc_code))
    return type(exc).__name__


def _google_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "json"):
        try:
            message = response.json().get("error", {}).get("message")
            if message:
                return str(message)
        except (ValueError, AttributeError):
            pass
    return str(getattr(exc, "message", None) or exc)


def _brief(exc: BaseException) -> str:
    return f"{_status_name(exc)}: {_google_message(exc)}"
