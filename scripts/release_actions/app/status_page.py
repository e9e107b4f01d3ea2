"""Status page incidents and scheduled maintenance (source §10.3): after a rollback, and by hand."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.core.policy import Policy, StatusPageSettings
from release_actions.core.status_page import (
    MAINTENANCE_IMPACT,
    MARKER_PREFIX,
    OUTCOMES,
    ROLLBACK_IMPACT,
    TIME_FORMAT,
    Window,
    incident_marker,
    maintenance_components,
    maintenance_marker,
    parse_span,
    render,
    service_components,
    unknown_components,
)
from release_actions.errors import ReleaseActionsError
from release_actions.metrics.retry import RetryPolicy

if TYPE_CHECKING:
    from release_actions.app.world import World
    from release_actions.canary.model import Event
    from release_actions.core.settings import Settings
    from release_actions.integrations.statuspage import StatuspageClient

# A rollback is done when the status page is asked: the page gets a short answer time and
# one budget for all its requests, so an outage of Statuspage holds the job for seconds,
# not minutes.
ROLLBACK_TIMEOUT_SECONDS = 5.0
ROLLBACK_BUDGET_SECONDS = 30.0
ROLLBACK_RETRY = RetryPolicy(
    attempts=3, total_seconds=20.0, backoff_initial=1.0, backoff_max=4.0, retry_after_cap=10.0
)
OPT_IN = "rehearse --status-page"
# A maintenance announced for a window is started by work that begins this long before it:
# a production job approved at 01:50 for the 02:00 window starts the announced maintenance
# instead of announcing a second one.
EARLY_START = timedelta(minutes=15)


@dataclass
class StatusPageResult:
    """What one status page operation did, or (``dry_run``) would do.

    ``action``: opened, resolved, opened_and_resolved, already_open, updated,
    scheduled, already_scheduled, started, scheduled_and_started, completed, nothing
    (already done, or nothing open), would_send (a dry run or a rehearsal that did not opt
    in), skipped, failed.
    ``requests`` are the writes as sent (or as a dry run shows them), the key masked.
    """

    action: str
    page_id: str | None
    marker: str | None = None
    incident: dict[str, Any] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    detail: str = ""

    @property
    def incident_id(self) -> str | None:
        return str(self.incident["id"]) if self.incident and self.incident.get("id") else None

    def to_dict(self) -> dict[str, Any]:
        incident = self.incident or {}
        return {
            "action": self.action,
            "page_id": self.page_id,
            "marker": self.marker,
            "dry_run": self.dry_run,
            "incident": {
                k: incident.get(k)
                for k in ("id", "name", "status", "impact", "shortlink", "created_at")
            }
            if self.incident
            else None,
            "requests": self.requests,
            "detail": self.detail,
        }


# -- the page, live or planned -----------------------------------------------------------------


class Page:
    """One page as an operation meets it: sent through a client, or (``client`` None) planned.

    A plan reads nothing either, so ids it would have looked up show as placeholders, such
    as ``<id of component "TripTrip API">``.
    """

    def __init__(
        self,
        settings: StatusPageSettings,
        page_id: str,
        client: StatuspageClient | None,
        base_url: str,
    ) -> None:
        self.settings = settings
        self.page_id = page_id
        self.client = client
        self.base_url = base_url
        self.shown: list[dict[str, Any]] = []

    @property
    def dry_run(self) -> bool:
        return self.client is None

    def ids(self, names: list[str]) -> list[str]:
        unknown = unknown_components(self.settings, names)
        if unknown:
            listed = ", ".join(f"`{c.name}`" for c in self.settings.components)
            raise ReleaseActionsError(
                "Unknown status page component "
                + ", ".join(f"`{n}`" for n in unknown)
                + f": the policy's components are {listed}.",
                hint="Name one of `notifications.status_page.components`, or add it there.",
            )
        if self.client is None:
            return [f'<id of component "{n}">' for n in names]
        return self.client.component_ids(names)

    def find(
        self, marker: str, lister: Callable[[StatuspageClient], list[dict[str, Any]]] | None = None
    ) -> dict[str, Any] | None:
        client = self.client
        if client is None:
            return None
        return client.find_marked(marker, (lambda: lister(client)) if lister else None)

    def create(self, fields: dict[str, Any], *, subject: str, marker: str) -> dict[str, Any]:
        from release_actions.integrations.statuspage import ApiRequest, incidents_path

        request = ApiRequest(
            "POST", incidents_path(self.page_id), {"incident": fields}, subject=subject
        )
        self.shown.append(request.shown(self.base_url))
        if self.client is None:
            return {"id": None, "name": fields.get("name"), "status": fields.get("status")}
        client = self.client
        return client.create(fields, subject=subject, recheck=lambda: client.find_marked(marker))

    def update(self, incident_id: str, fields: dict[str, Any], *, subject: str) -> dict[str, Any]:
        from release_actions.integrations.statuspage import ApiRequest, incident_path

        request = ApiRequest(
            "PATCH", incident_path(self.page_id, incident_id), {"incident": fields}, subject=subject
        )
        self.shown.append(request.shown(self.base_url))
        if self.client is None:
            return {"id": incident_id, "status": fields.get("status")}
        return self.client.update(incident_id, fields, subject=subject)

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        return None if self.client is None else self.client.incident(incident_id)


def settings_of(policy: Policy) -> StatusPageSettings:
    return policy.notifications.status_page


def open_page(
    session: Session,
    policy: Policy,
    *,
    page_id: str | None = None,
    dry_run: bool,
    **client_args: Any,
) -> Page:
    """The configured page (or ``page_id``): planned in a dry run, else through a client.

    The key is masked the moment it is read; a dry run needs none.
    """
    from release_actions.integrations.statuspage import (
        API_KEY_ENV,
        BASE_URL_ENV,
        DEFAULT_BASE_URL,
        StatuspageClient,
    )

    settings = settings_of(policy)
    chosen = page_id or settings.page_id
    if not chosen:
        raise ReleaseActionsError(
            "No status page: `notifications.status_page.page_id` is null and no `--page-id` "
            "was given.",
            hint="Set the page id (from the page's API settings) in the policy:\n"
            "notifications:\n  status_page:\n    page_id: kctbh9vrtdwd",
        )
    base_url = session.env.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    key = session.env.get(API_KEY_ENV, "")
    if key:
        session.runtime.mask(key)
    if dry_run:
        return Page(settings, chosen, None, base_url)
    client = StatuspageClient.from_env(session.env, page_id=chosen, **client_args)
    return Page(settings, chosen, client, base_url)


# -- rollback incidents -------------------------------------------------------------------------


def _metadata(marker: str, **facts: Any) -> dict[str, Any]:
    from release_actions.integrations.statuspage import METADATA_NAMESPACE

    # Statuspage keeps metadata by namespace; plain strings, so it reads back the same.
    ours = {"marker": marker, **{k: str(v)[:500] for k, v in facts.items() if v is not None}}
    return {METADATA_NAMESPACE: ours}


def open_fields(
    settings: StatusPageSettings,
    *,
    names: list[str],
    ids: list[str],
    marker: str,
    status: str = "investigating",
    component_status: str | None = None,
    impact: str | None = None,
    template: str = "degraded_performance",
    facts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The incident of a rollback: the template's title and body, its components degraded."""
    text = render(
        settings,
        template,
        affected_components=", ".join(names),
        impact_description=impact or ROLLBACK_IMPACT,
    )
    chosen = component_status or settings.rollback_status
    return {
        "name": text.title,
        "status": status,
        "body": text.body,
        "component_ids": ids,
        "components": dict.fromkeys(ids, chosen),
        "metadata": _metadata(marker, **dict(facts or {})),
    }


def resolve_fields(
    settings: StatusPageSettings, *, ids: list[str], duration: str, root_cause: str
) -> dict[str, Any]:
    """Resolved with the `incident_resolved` body, its components operational again.

    The incident keeps its name: a Statuspage update has no title of its own, and a renamed
    incident would no longer read as the one subscribers were told about.
    """
    text = render(settings, "incident_resolved", duration=duration, root_cause=root_cause)
    return {
        "status": "resolved",
        "body": text.body,
        "components": dict.fromkeys(ids, "operational"),
    }


def _rollback_duration(record: Mapping[str, Any]) -> str:
    from release_actions.canary.model import human_duration

    duration = record.get("duration") or {}
    seconds = float(duration.get("rollback_seconds") or 0) + float(
        duration.get("recovery_seconds") or 0
    )
    return human_duration(seconds) or "unknown"


def after_rollback(
    session: Session,
    policy: Policy,
    record: Mapping[str, Any] | None,
    *,
    service: str,
    target_name: str,
    opt_in: bool = False,
    opener: IncidentOpener | None = None,
) -> StatusPageResult | None:
    """After a rollback is done and recorded: open its incident (unless ``opener`` opened it
    as the rollback began), and resolve it once recovered.

    Never raises: a status page that is down, slow or misconfigured is a warning
    annotation, and the rollback and its record stand as they are. A rehearsal (the
    simulated target) only says what it would send unless ``opt_in``.
    """
    if record is None:
        return None
    try:
        return _after_rollback(
            session,
            policy,
            record,
            service=service,
            target_name=target_name,
            opt_in=opt_in,
            opener=opener,
        )
    except Exception as exc:  # the status page never undoes or fails a rollback
        message = (
            exc.message if isinstance(exc, ReleaseActionsError) else f"{type(exc).__name__}: {exc}"
        )
        session.runtime.annotate(
            "warning",
            f"Rolled back and recorded, but the status page was not updated: {message}",
            title="Status page",
        )
        return StatusPageResult("failed", settings_of(policy).page_id, detail=message)


def _after_rollback(
    session: Session,
    policy: Policy,
    record: Mapping[str, Any],
    *,
    service: str,
    target_name: str,
    opt_in: bool,
    opener: IncidentOpener | None,
) -> StatusPageResult:
    from release_actions.integrations.statuspage import API_KEY_ENV

    settings = settings_of(policy)
    page_id = settings.page_id

    def skipped(why: str) -> StatusPageResult:
        session.note(f"status page: {why}")
        return StatusPageResult("skipped", page_id, detail=why)

    if page_id is None:
        # The default: no page, nothing to say on every rollback.
        return StatusPageResult("skipped", None, detail="no status page configured")
    names = service_components(settings, service)
    if not names:
        return skipped(
            f"`{service}` has no component in `notifications.status_page.services`; no "
            "incident opened"
        )
    version = record.get("from_version")
    if not version:
        return skipped("the rollback changed no version; no incident opened")
    marker = incident_marker(service, str(version))
    recovered = record.get("recovered") is True
    reason = str((record.get("trigger") or {}).get("reason") or "rollback")
    rehearsal = target_name == "simulated"
    if rehearsal and not opt_in:
        title = render(settings, "degraded_performance", affected_components=", ".join(names)).title
        then = "resolve it" if recovered else "leave it open until recovery is confirmed"
        why = (
            f"a rehearsal leaves page `{page_id}` alone (opt in: `{OPT_IN}`); it would open "
            f"“{title}” with {', '.join(names)} {settings.rollback_status}, and {then}"
        )
        session.note(f"status page: {why}")
        return StatusPageResult("would_send", page_id, marker, dry_run=True, detail=why)
    if not session.env.get(API_KEY_ENV):
        return skipped(f"`{API_KEY_ENV}` is not set; no incident opened on page `{page_id}`")
    early = opener.wait() if opener is not None else None
    if opener is not None and opener.error:
        session.note(
            f"status page: the incident could not be opened as the rollback began "
            f"({opener.error}); trying again now"
        )
    page = _rollback_page(session, policy)
    ids = page.ids(names)
    incident: dict[str, Any] | None
    if early is not None:
        incident, action, when = early.incident, early.action, " as the rollback began"
    else:
        incident, action, when = page.find(marker), "already_open", ""
    if incident is None:
        fields = open_fields(
            settings,
            names=names,
            ids=ids,
            marker=marker,
            facts={
                "service": service,
                "version": version,
                "record_id": record.get("id"),
                "reason": reason,
            },
        )
        incident = page.create(fields, subject="open the rollback incident", marker=marker)
        action = "opened"
    if action == "opened":
        session.note(
            f"status page: opened incident {incident.get('id')} “{incident.get('name')}”"
            f"{when} ({', '.join(names)}: {settings.rollback_status})"
        )
    else:
        session.note(
            f"status page: incident {incident.get('id')} for this rollback is already open"
        )
    if recovered:
        fields = resolve_fields(
            settings, ids=ids, duration=_rollback_duration(record), root_cause=reason
        )
        incident = page.update(str(incident["id"]), fields, subject="resolve the rollback incident")
        action = "opened_and_resolved" if action == "opened" else "resolved"
        session.note(
            f"status page: resolved incident {incident.get('id')}; {', '.join(names)} operational"
        )
    else:
        session.note(
            "status page: the incident stays open until recovery is confirmed; a rerun whose "
            "recovery passes resolves it, or `release-actions statuspage incident resolve "
            f"--service {service} --version {version}`"
        )
    return StatusPageResult(action, page_id, marker, incident, page.shown)


def _rollback_page(session: Session, policy: Policy) -> Page:
    """The page with a rollback's short timeouts and one budget for all its requests."""
    return open_page(session, policy, dry_run=False, **_short_budget())


def _short_budget() -> dict[str, Any]:
    retry = ROLLBACK_RETRY
    return {
        "timeout": ROLLBACK_TIMEOUT_SECONDS,
        "retry": retry,
        "deadline": retry.clock() + ROLLBACK_BUDGET_SECONDS,
    }


@dataclass(frozen=True)
class Opened:
    """The incident an `IncidentOpener` found or opened."""

    incident: dict[str, Any]
    action: str
    """``opened``, or ``already_open`` (a rerun's incident, found by its marker)."""


class IncidentOpener:
    """Opens a rollback's incident the moment the rollback begins, beside it.

    Customers should read "Performance Degradation" while the service is degraded, not
    after the recovery check (minutes later) has passed. The request runs in a thread, so a
    status page that is slow or down never delays the rollback; `after_rollback` waits for
    it (within the rollback budget), uses the incident it opened, and resolves it once the
    recovery check passes. Its ``on_event`` goes beside the engine's own listener.
    """

    def __init__(
        self,
        session: Session,
        policy: Policy,
        *,
        service: str,
        version: str | None,
        target_name: str,
        opt_in: bool = False,
    ) -> None:
        self.session = session
        self.policy = policy
        self.service = service
        self.version = version or "unknown"
        self.target_name = target_name
        self.opt_in = opt_in
        self.opened: Opened | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def applies(self) -> bool:
        """Whether a rollback would send anything at all (else `after_rollback` says why)."""
        from release_actions.integrations.statuspage import API_KEY_ENV

        settings = settings_of(self.policy)
        return (
            settings.page_id is not None
            and bool(service_components(settings, self.service))
            and bool(self.session.env.get(API_KEY_ENV))
            and (self.target_name != "simulated" or self.opt_in)
        )

    def on_event(self, event: Event) -> None:
        if event.kind != "rollback" or self._thread is not None or not self.applies():
            return
        reason = event.message.removeprefix("rolling back: ")
        self._thread = threading.Thread(
            target=self._open, args=(reason,), name="status-page", daemon=True
        )
        self._thread.start()

    def listener(self, other: Callable[[Event], None] | None) -> Callable[[Event], None]:
        """``other`` (the caller's listener, if any) and this one."""

        def both(event: Event) -> None:
            if other is not None:
                other(event)
            self.on_event(event)

        return both

    def _open(self, reason: str) -> None:
        try:
            settings = settings_of(self.policy)
            names = service_components(settings, self.service) or []
            marker = incident_marker(self.service, self.version)
            page = _rollback_page(self.session, self.policy)
            ids = page.ids(names)
            found = page.find(marker)
            if found is not None:
                self.opened = Opened(found, "already_open")
                return
            fields = open_fields(
                settings,
                names=names,
                ids=ids,
                marker=marker,
                facts={"service": self.service, "version": self.version, "reason": reason},
            )
            incident = page.create(fields, subject="open the rollback incident", marker=marker)
            self.opened = Opened(incident, "opened")
        except Exception as exc:  # said by after_rollback, which tries again
            self.error = (
                exc.message
                if isinstance(exc, ReleaseActionsError)
                else f"{type(exc).__name__}: {exc}"
            )

    def wait(self) -> Opened | None:
        if self._thread is not None:
            self._thread.join(ROLLBACK_BUDGET_SECONDS)
        return self.opened


def production_opener(
    session: Session,
    policy: Policy,
    world: World,
    settings: Settings,
    version: str | None,
    on_event: Callable[[Event], None] | None,
    *,
    public: bool = True,
) -> tuple[IncidentOpener | None, Callable[[Event], None] | None]:
    """The opener of a rollout's or a watch's incident, and the listener to give its engine;
    none outside production, where a rollback is not the customers' business, or when
    ``public`` is False (a flag's rollout sets its own percentage back, no incident)."""
    if settings.stage != "production" or not public:
        return None, on_event
    opener = IncidentOpener(
        session, policy, service=world.label, version=version, target_name=settings.target
    )
    return opener, opener.listener(on_event)


# -- by hand: `statuspage incident ...` ---------------------------------------------------------


@dataclass(frozen=True)
class Which:
    """The incident an operation is about: its id, or the marker of a service's version."""

    incident_id: str | None = None
    service: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        if self.incident_id and (self.service or self.version):
            raise ReleaseActionsError(
                "Only one of `--incident-id` or `--service`/`--version` can be set."
            )
        if not self.incident_id and not (self.service and self.version):
            raise ReleaseActionsError(
                "Name the incident: `--incident-id ID`, or `--service` and `--version` (the "
                "rollback's service and the version rolled back from)."
            )

    @property
    def marker(self) -> str | None:
        if self.service and self.version:
            return incident_marker(self.service, self.version)
        return None


def _locate(page: Page, which: Which, result: StatusPageResult) -> str | None:
    """The incident's id (a placeholder in a dry run); None when no open incident is marked."""
    if which.incident_id:
        found = page.incident(which.incident_id)
        if found is not None:
            result.incident = found
        return which.incident_id
    assert which.marker is not None
    if page.dry_run:
        return f"<id of the open incident marked {which.marker}>"
    found = page.find(which.marker)
    if found is None:
        return None
    result.incident = found
    return str(found["id"])


def _names_for(
    settings: StatusPageSettings, service: str | None, components: tuple[str, ...]
) -> list[str]:
    if components:
        return list(components)
    if service:
        names = service_components(settings, service)
        if names:
            return names
        listed = ", ".join(f"`{s}`" for s in settings.services) or "none"
        raise ReleaseActionsError(
            f"`{service}` is not in `notifications.status_page.services` (services: {listed}).",
            hint="Name the components with `--component`, or map the service in the policy.",
        )
    return []


def _incident_component_ids(incident: Mapping[str, Any] | None) -> list[str]:
    comps = (incident or {}).get("components") or []
    return [str(c["id"]) for c in comps if isinstance(c, Mapping) and c.get("id")]


def open_incident(
    session: Session,
    policy: Policy,
    *,
    service: str,
    version: str,
    components: tuple[str, ...] = (),
    status: str = "investigating",
    component_status: str | None = None,
    impact: str | None = None,
    reason: str | None = None,
    page_id: str | None = None,
    dry_run: bool = False,
) -> StatusPageResult:
    """`statuspage incident open`: the rollback's incident, unless one is open for it already."""
    settings = settings_of(policy)
    names = _names_for(settings, service, components)
    page = open_page(session, policy, page_id=page_id, dry_run=dry_run)
    marker = incident_marker(service, version)
    result = StatusPageResult("would_send", page.page_id, marker, dry_run=dry_run)
    ids = page.ids(names)
    found = page.find(marker)
    if found is not None:
        result.action, result.incident = "already_open", found
        result.detail = f"incident {found.get('id')} is open for {service} {version} already"
        return result
    fields = open_fields(
        settings,
        names=names,
        ids=ids,
        marker=marker,
        status=status,
        component_status=component_status,
        impact=impact,
        facts={"service": service, "version": version, "reason": reason},
    )
    result.incident = page.create(fields, subject="open the incident", marker=marker)
    result.requests = page.shown
    result.detail = f"{', '.join(names)}: {component_status or settings.rollback_status}"
    if dry_run:
        result.detail += f" (sent only if no open incident is marked {marker})"
    else:
        result.action = "opened"
    return result


def update_incident(
    session: Session,
    policy: Policy,
    which: Which,
    *,
    status: str,
    body: str,
    component_status: str | None = None,
    components: tuple[str, ...] = (),
    page_id: str | None = None,
    dry_run: bool = False,
) -> StatusPageResult:
    """`statuspage incident update`: a new status and message on the open incident."""
    settings = settings_of(policy)
    page = open_page(session, policy, page_id=page_id, dry_run=dry_run)
    result = StatusPageResult("would_send", page.page_id, which.marker, dry_run=dry_run)
    incident_id = _locate(page, which, result)
    if incident_id is None:
        result.action, result.detail = "nothing", f"no open incident is marked {which.marker}"
        return result
    fields: dict[str, Any] = {"status": status, "body": body}
    if component_status:
        names = _names_for(settings, which.service, components)
        ids = page.ids(names) if names else _incident_component_ids(result.incident)
        if not ids and page.dry_run:
            ids = ["<id of each of the incident's components>"]
        fields["components"] = dict.fromkeys(ids, component_status)
    result.incident = page.update(incident_id, fields, subject="update the incident")
    result.requests = page.shown
    if not dry_run:
        result.action = "updated"
    return result


def resolve_incident(
    session: Session,
    policy: Policy,
    which: Which,
    *,
    duration: str | None = None,
    root_cause: str | None = None,
    components: tuple[str, ...] = (),
    page_id: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> StatusPageResult:
    """`statuspage incident resolve`: the `incident_resolved` text, components operational.

    ``duration`` defaults to the time since the incident was opened, ``root_cause`` to the
    rollback's reason kept in the incident's metadata when release-actions opened it.
    """
    from release_actions.integrations.statuspage import METADATA_NAMESPACE

    settings = settings_of(policy)
    page = open_page(session, policy, page_id=page_id, dry_run=dry_run)
    result = StatusPageResult("would_send", page.page_id, which.marker, dry_run=dry_run)
    incident_id = _locate(page, which, result)
    if incident_id is None:
        result.action = "nothing"
        result.detail = (
            f"no open incident is marked {which.marker}: resolved already, or never opened"
        )
        return result
    incident = result.incident or {}
    if incident.get("status") == "resolved":
        result.action, result.detail = "nothing", f"incident {incident_id} is resolved already"
        return result
    ours = (incident.get("metadata") or {}).get(METADATA_NAMESPACE) or {}
    if duration is None:
        duration = _since(incident.get("created_at"), now) or (
            "<the time since the incident opened>" if page.dry_run else "unknown"
        )
    if root_cause is None:
        root_cause = ours.get("reason") if isinstance(ours, Mapping) else None
    if root_cause is None:
        if not page.dry_run:
            raise ReleaseActionsError(
                f"Incident {incident_id} was not opened by release-actions for a rollback, so "
                "its root cause is not known.",
                hint="Pass `--root-cause TEXT` (the `root_cause` of the `incident_resolved` "
                "template).",
            )
        root_cause = "<the rollback's reason, from the incident's metadata>"
    names = _names_for(settings, which.service, components)
    ids = page.ids(names) if names else _incident_component_ids(incident)
    if not ids and page.dry_run:
        ids = ["<id of each of the incident's components>"]
    fields = resolve_fields(settings, ids=ids, duration=duration, root_cause=root_cause)
    result.incident = page.update(incident_id, fields, subject="resolve the incident")
    result.requests = page.shown
    if not dry_run:
        result.action = "resolved"
    return result


def _since(created_at: Any, now: datetime | None) -> str | None:
    from datetime import UTC

    from release_actions.canary.model import human_duration

    if not created_at:
        return None
    try:
        opened = datetime.fromisoformat(str(created_at).replace("Z", "+00:00"))
    except ValueError:
        return None
    if opened.tzinfo is None:
        return None
    return human_duration(max(((now or datetime.now(UTC)) - opened).total_seconds(), 0.0))


# -- scheduled maintenance -------------------------------------------------------------------------


def schedule_maintenance(
    session: Session,
    policy: Policy,
    window: Window,
    *,
    components: tuple[str, ...] = (),
    impact: str | None = None,
    auto: bool = False,
    page_id: str | None = None,
    dry_run: bool = False,
) -> StatusPageResult:
    """`statuspage maintenance schedule`: the `scheduled_maintenance` text for ``window``.

    Components default to every one the policy's services map to (a database migration
    touches them all). Scheduling the same window twice finds the first.
    """
    names = _maintenance_names(settings_of(policy), components)
    page = open_page(session, policy, page_id=page_id, dry_run=dry_run)
    return _schedule_on(page, window, names, impact=impact, auto=auto, remind=True)


def _maintenance_names(settings: StatusPageSettings, components: tuple[str, ...]) -> list[str]:
    names = list(components) or maintenance_components(settings)
    if not names:
        raise ReleaseActionsError(
            "No component to put under maintenance: pass `--component NAME`, or map services "
            "to components in `notifications.status_page.services`."
        )
    return names


def _schedule_on(
    page: Page,
    window: Window,
    names: list[str],
    *,
    impact: str | None,
    auto: bool,
    remind: bool,
) -> StatusPageResult:
    settings = page.settings
    marker = maintenance_marker(window.start)
    result = StatusPageResult("would_send", page.page_id, marker, dry_run=page.dry_run)
    ids = page.ids(names)
    found = page.find(marker, lambda c: c.upcoming_maintenances() + c.active_maintenances())
    if found is not None:
        result.action, result.incident = "already_scheduled", found
        result.detail = f"maintenance {found.get('id')} is scheduled for this window already"
        return result
    start_time, end_time = window.label()
    text = render(
        settings,
        "scheduled_maintenance",
        start_time=start_time,
        end_time=end_time,
        affected_components=", ".join(names),
        impact_description=impact or MAINTENANCE_IMPACT,
    )
    fields = {
        "name": text.title,
        "status": "scheduled",
        "body": text.body,
        "scheduled_for": window.start.isoformat(),
        "scheduled_until": window.end.isoformat(),
        "component_ids": ids,
        "scheduled_remind_prior": remind,
        "scheduled_auto_in_progress": auto,
        "scheduled_auto_completed": auto,
        "auto_transition_to_maintenance_state": True,
        "auto_transition_to_operational_state": True,
        "metadata": _metadata(marker, purpose=window.purpose or None),
    }
    result.incident = page.create(fields, subject="schedule the maintenance", marker=marker)
    result.requests = list(page.shown)
    if not page.dry_run:
        result.action = "scheduled"
    result.detail = f"{start_time} - {end_time} {window.start.tzname()}: {', '.join(names)}"
    if page.dry_run:
        result.detail += f" (sent only if no maintenance is marked {marker})"
    return result


def move_maintenance(
    session: Session,
    policy: Policy,
    *,
    to: str,
    incident_id: str | None,
    body: str | None = None,
    page_id: str | None = None,
    dry_run: bool = False,
    outcome: str = "success",
) -> StatusPageResult:
    """`maintenance start` (``to`` in_progress: components under maintenance) or `complete`
    (completed: operational again).

    Without ``incident_id``, the one maintenance release-actions scheduled that is
    upcoming (start) or in progress (complete); several or none is an error. ``outcome``
    is how the work under it went: a failed migration still completes its maintenance, so
    the page does not stay "in progress", and the result's detail says the work failed
    (the page's text stays the same: it is for customers).
    """
    from release_actions.integrations.statuspage import marker_of

    failed = _failed_work(outcome)
    starting = to == "in_progress"
    page = open_page(session, policy, page_id=page_id, dry_run=dry_run)
    incident: dict[str, Any] | None
    if incident_id is None:
        if page.dry_run:
            raise ReleaseActionsError(
                "A dry run reads nothing, so it cannot find the maintenance: pass `--incident-id`."
            )
        assert page.client is not None
        listed = (
            page.client.upcoming_maintenances() if starting else page.client.active_maintenances()
        )
        ours = [
            m for m in listed if (marker_of(m) or "").startswith(f"{MARKER_PREFIX}:maintenance:")
        ]
        where = "upcoming" if starting else "in progress"
        if len(ours) != 1:
            found = ", ".join(f"`{m.get('id')}`" for m in ours)
            raise ReleaseActionsError(
                f"{'No' if not ours else 'More than one'} maintenance scheduled by "
                f"release-actions is {where} on page `{page.page_id}`"
                + (f" ({found})" if ours else "")
                + ".",
                hint="Pass `--incident-id` (the `incident-id` output of `statuspage maintenance "
                "schedule`).",
            )
        incident = ours[0]
        incident_id = str(ours[0]["id"])
    else:
        incident = page.incident(incident_id)
    result = _move_on(page, incident_id, incident, to=to, body=body)
    if failed:
        result.detail = "\n\n".join(filter(None, (result.detail, failed)))
    return result


def _move_on(
    page: Page, incident_id: str, incident: dict[str, Any] | None, *, to: str, body: str | None
) -> StatusPageResult:
    """Move the maintenance ``incident_id`` (as read: ``incident``) to ``to``, unless it is
    there (or past it) already."""
    from release_actions.integrations.statuspage import marker_of

    starting = to == "in_progress"
    result = StatusPageResult("would_send", page.page_id, dry_run=page.dry_run)
    result.incident = incident
    known = incident or {}
    result.marker = marker_of(known) if known else None
    done = ("in_progress", "verifying", "completed") if starting else ("completed",)
    if known.get("status") in done:
        result.action = "nothing"
        result.detail = f"maintenance {incident_id} is {known.get('status')} already"
        return result
    ids = _incident_component_ids(known) or (
        ["<id of each of the maintenance's components>"] if page.dry_run else []
    )
    state = "under_maintenance" if starting else "operational"
    fields: dict[str, Any] = {
        "status": to,
        "body": body
        or (
            "Scheduled maintenance is in progress."
            if starting
            else "Scheduled maintenance has been completed."
        ),
    }
    if ids:
        fields["components"] = dict.fromkeys(ids, state)
    result.incident = page.update(
        incident_id,
        fields,
        subject="start the maintenance" if starting else "complete the maintenance",
    )
    result.requests = list(page.shown)
    if not page.dry_run:
        result.action = "started" if starting else "completed"
    return result


def _failed_work(outcome: str) -> str:
    if outcome not in OUTCOMES:
        raise ReleaseActionsError(
            f"Unknown outcome `{outcome}`: use one of {', '.join(f'`{o}`' for o in OUTCOMES)}."
        )
    if outcome == "success":
        return ""
    return (
        f"**The work under this maintenance ended in `{outcome}`** (for the db-migration "
        "workflow: the production migration did not succeed). The maintenance is completed "
        "all the same, so that the page does not stay “in progress”; the page does not say "
        "that the work failed. Check the service, and if customers are affected open an "
        "incident: `release-actions statuspage incident open`."
    )


def _when(value: Any) -> datetime | None:
    """A Statuspage time (`2027-01-09T17:00:00.000Z`, or as it was sent); None if unreadable."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def maintenance_for_now(
    active: list[dict[str, Any]], upcoming: list[dict[str, Any]], now: datetime
) -> dict[str, Any] | None:
    """The maintenance release-actions scheduled that work starting at ``now`` belongs to.

    One in progress already comes first (customers read it as going on now; the latest to
    have begun, if several); else the upcoming one whose window covers ``now``, or begins
    within `EARLY_START` of it (the earliest, if several). Others, such as next Sunday's,
    are not this work's. None when there is no such maintenance.
    """
    from release_actions.integrations.statuspage import marker_of

    def ours(m: dict[str, Any]) -> bool:
        return (marker_of(m) or "").startswith(f"{MARKER_PREFIX}:maintenance:")

    floor = datetime.min.replace(tzinfo=now.tzinfo)
    going = [m for m in active if ours(m)]
    if going:
        return max(going, key=lambda m: _when(m.get("scheduled_for")) or floor)
    covering = []
    for m in upcoming:
        start, end = _when(m.get("scheduled_for")), _when(m.get("scheduled_until"))
        if ours(m) and start is not None and end is not None and start - EARLY_START <= now < end:
            covering.append((start, m))
    return min(covering, key=lambda pair: pair[0])[1] if covering else None


def start_maintenance_now(
    session: Session,
    policy: Policy,
    *,
    now: datetime,
    end: datetime,
    components: tuple[str, ...] = (),
    impact: str | None = None,
    body: str | None = None,
    page_id: str | None = None,
    dry_run: bool = False,
) -> StatusPageResult:
    """`maintenance start --end`: work begins now, so its maintenance goes in progress.

    The maintenance release-actions scheduled for now (`maintenance_for_now`) is started;
    with none, one from ``now`` until ``end`` is scheduled (the `scheduled_maintenance`
    text) and started at once, so customers are told while the work runs even when nobody
    announced it. One in progress already gets nothing. Requests get the short timeouts and
    the 30 s budget of a rollback's, since the work waits for them.
    """
    if end <= now:
        raise ReleaseActionsError(
            f"`--end` ({end.strftime(TIME_FORMAT)}) must be after now "
            f"({now.astimezone(end.tzinfo).strftime(TIME_FORMAT)}).",
            hint="Give a time later than now, or a length of time such as `--end 30m`.",
        )
    names = _maintenance_names(settings_of(policy), components)
    page = open_page(session, policy, page_id=page_id, dry_run=dry_run, **_short_budget())
    found: dict[str, Any] | None = None
    if page.client is not None:
        found = maintenance_for_now(
            page.client.active_maintenances(), page.client.upcoming_maintenances(), now
        )
    if found is not None:
        return _move_on(page, str(found["id"]), found, to="in_progress", body=body)
    window = window_between(policy, now, end, what="now")
    # No reminder: it starts the moment it is announced.
    scheduled = _schedule_on(page, window, names, impact=impact, auto=False, remind=False)
    incident_id = scheduled.incident_id or "<id of the maintenance scheduled above>"
    try:
        started = _move_on(page, incident_id, scheduled.incident, to="in_progress", body=body)
    except ReleaseActionsError as exc:
        raise ReleaseActionsError(
            f"Scheduled maintenance {incident_id} from now, but could not start it: {exc.message}",
            hint="Start it by hand once the page answers: `release-actions statuspage "
            f"maintenance start --incident-id {incident_id}`, and complete it after the work.",
        ) from exc
    if scheduled.action == "already_scheduled":
        # A rerun within the same minute: the first one's maintenance, as it stands.
        return started
    started.marker = scheduled.marker
    if not page.dry_run:
        started.action = "scheduled_and_started"
    started.detail = scheduled.detail
    if page.dry_run:
        started.detail += (
            "; a maintenance release-actions scheduled that is in progress or covers now "
            "would be started instead"
        )
    return started


def parse_end(text: str, policy: Policy, now: datetime, name: str) -> datetime:
    """``text`` as an end: a length of time from ``now`` (`30m`, `2h`, `1h30m`), else an
    ISO 8601 time as `parse_time` reads it."""
    span = parse_span(text)
    if span is not None:
        return now + span
    try:
        return parse_time(text, policy, name)
    except ReleaseActionsError:
        raise ReleaseActionsError(
            f"`{name}` is neither a length of time nor an ISO 8601 time: {text!r}; such as "
            f"`30m`, `2h`, `1h30m`, or `2026-01-25T06:00` (read in {policy.calendar.timezone})."
        ) from None


def parse_time(text: str, policy: Policy, name: str) -> datetime:
    """An ISO 8601 time; without an offset it is read in the calendar's zone (JST)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ReleaseActionsError(
            f"`{name}` is not an ISO 8601 time: {text!r}; such as `2026-01-25T02:00` (read in "
            f"{policy.calendar.timezone}) or `2026-01-24T17:00Z`."
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=policy.calendar.tz)


def window_between(
    policy: Policy, start: datetime, end: datetime, *, what: str = "`--start`"
) -> Window:
    if end <= start:
        raise ReleaseActionsError(
            f"`--end` ({end.strftime(TIME_FORMAT)}) must be after {what} "
            f"({start.strftime(TIME_FORMAT)})."
        )
    tz = policy.calendar.tz
    return Window(start.astimezone(tz), end.astimezone(tz))
