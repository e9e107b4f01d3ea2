"""An HTTP fake of Atlassian Statuspage's REST API v1: components, incidents, maintenance.

Standard library only. It serves, below ``/v1`` (each path also with ``.json``), as
developer.statuspage.io describes them:

- ``GET /pages/{page_id}/components``: the page's components as a list (``page``,
  ``per_page``); a group is a component with ``group: true`` and its members' ids in
  ``components``, each member names it in ``group_id``.
- ``POST /pages/{page_id}/incidents`` with ``{"incident": {...}}``: ``name`` (required),
  ``status``, ``body`` (the first update), ``component_ids``, ``components`` (id ->
  component status, applied to the page's components), ``impact_override``, ``metadata``
  (namespace -> object), and for scheduled maintenance ``scheduled_for`` and
  ``scheduled_until`` (required with status ``scheduled``) and the ``scheduled_*`` and
  ``auto_transition_*`` switches. Answers 201 with the incident.
- ``PATCH /pages/{page_id}/incidents/{incident_id}``: the same fields; a ``status`` or a
  ``body`` adds an incident update.
- ``GET /pages/{page_id}/incidents/{incident_id}``, and the listings
  ``/incidents/unresolved`` (investigating, identified, monitoring), ``/incidents/upcoming``
  (scheduled) and ``/incidents/active_maintenance`` (in progress, verifying), newest first.

Every request needs ``Authorization: OAuth <key>``: otherwise 401. An unknown page or
incident is 404; a missing ``incident`` object 400; a blank name, an unknown status (or
one of the other kind: a realtime incident never becomes ``in_progress``), an unknown
component id or component status, a bad ``impact_override`` or metadata that is not
namespaced objects is 422, applying nothing. Errors are ``{"error": "..."}`` (422:
``{"error": ["...", ...]}``), as Statuspage answers them.

Faults: ``fail_next`` (any status, such as 500), ``rate_limit_next`` (429 with
``Retry-After``) and ``hang_next`` (no answer for a while: before the request is
processed, or after it, so that the answer is lost but the change is made).
"""

from __future__ import annotations

import copy
import json
import secrets
import string
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes._http import FakeHandler, FakeHTTPServer, Fault, take_fault

API_KEY = "sp-fake-2a7b9d4aac30956d537ac76850f4d78de"
PAGE_ID = "kctbh9vrtdwd"

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "verifying", "completed")
COMPONENT_STATUSES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)
IMPACTS = ("none", "maintenance", "minor", "major", "critical")
# The source's §10.3 components and groups.
SOURCE_COMPONENTS = (
    ("TripTrip API", "Core API services", "Backend Services"),
    ("TripTrip Web", "Web application", "Frontend"),
    ("TripTrip Mobile (iOS)", "iOS mobile application", "Mobile Apps"),
    ("TripTrip Mobile (Android)", "Android mobile application", "Mobile Apps"),
)
_IMPACT_OF = {
    "degraded_performance": "minor",
    "partial_outage": "major",
    "major_outage": "critical",
}
_RANK = ("none", "maintenance", "minor", "major", "critical")


def _id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ApiError(Exception):
    def __init__(self, status: int, error: str | list[str]) -> None:
        super().__init__(str(error))
        self.status, self.error = status, error


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Hang:
    seconds: float
    times: int = 1
    method: str = ""
    after_processing: bool = False


class _Handler(FakeHandler):
    owner: StatuspageFake

    def _serve(self) -> None:
        status, body, headers, hang = self.owner.handle(
            self.command, self.path, self.header_map(), self.read_body()
        )
        if hang is not None:
            self.owner.pause(hang.seconds)
            # The client gave up long ago: no answer at all, the connection just ends.
            self.close_connection = True
            return
        self.send_json(status, body, headers)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class StatuspageFake(FakeHTTPServer):
    """The fake server; ``with StatuspageFake() as fake``; ``fake.base_url`` is the API root."""

    handler = _Handler
    thread_name = "statuspage-fake"

    def __init__(self, *, api_key: str = API_KEY, page_id: str = PAGE_ID) -> None:
        super().__init__()
        self.api_key = api_key
        self.page_id = page_id
        self.components: dict[str, dict[str, Any]] = {}
        self.incidents: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.hangs: list[Hang] = []
        self._lock = threading.Lock()
        for name, description, group in SOURCE_COMPONENTS:
            self.add_component(name, description=description, group=group)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    # -- seeding, faults, reading -------------------------------------------------------

    def add_component(
        self, name: str, *, description: str = "", group: str | None = None
    ) -> dict[str, Any]:
        now = _now()
        group_id = None
        if group is not None:
            found = next(
                (c for c in self.components.values() if c["group"] and c["name"] == group), None
            )
            if found is None:
                found = self._component(group, "", None, now, is_group=True)
            group_id = found["id"]
        component = self._component(name, description, group_id, now)
        if group_id is not None:
            self.components[group_id]["components"].append(component["id"])
        return component

    def _component(
        self, name: str, description: str, group_id: str | None, now: str, *, is_group: bool = False
    ) -> dict[str, Any]:
        component: dict[str, Any] = {
            "id": _id(),
            "page_id": self.page_id,
            "group_id": group_id,
            "created_at": now,
            "updated_at": now,
            "group": is_group,
            "name": name,
            "description": description or None,
            "position": len(self.components) + 1,
            "status": "operational",
            "showcase": True,
            "only_show_if_degraded": False,
            "automation_email": f"component+{_id()}@notifications.statuspage.io",
            "start_date": None,
        }
        if is_group:
            component["components"] = []
        self.components[component["id"]] = component
        return component

    def component_id(self, name: str) -> str:
        return next(c["id"] for c in self.components.values() if c["name"] == name)

    def status_of(self, name: str) -> str:
        return str(self.components[self.component_id(name)]["status"])

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        method: str = "",
        path_contains: str = "",
        message: str = "Internal server error",
    ) -> None:
        with self._lock:
            self.faults.append(
                Fault(
                    status,
                    {"error": message},
                    times=times,
                    method=method,
                    path_contains=path_contains,
                )
            )

    def rate_limit_next(self, *, retry_after: str = "1", times: int = 1, method: str = "") -> None:
        with self._lock:
            self.faults.append(
                Fault(
                    429,
                    {"error": "Rate limit exceeded"},
                    (("Retry-After", retry_after),),
                    times,
                    method=method,
                )
            )

    def hang_next(
        self, seconds: float, *, times: int = 1, method: str = "", after_processing: bool = False
    ) -> None:
        """The next requests get no answer for ``seconds`` (then the connection closes).

        ``after_processing``: the change is made first, so only the answer is lost.
        """
        with self._lock:
            self.hangs.append(Hang(seconds, times, method, after_processing))

    def writes(self) -> list[tuple[str, str]]:
        """The requests that asked for a change, as (method, path), in order."""
        return [(r.method, r.path) for r in self.requests if r.method != "GET"]

    def created(self) -> list[dict[str, Any]]:
        """The incidents (and maintenances) in the order they were created."""
        return sorted(self.incidents.values(), key=lambda i: i["_seq"])

    # -- serving ----------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any, list[tuple[str, str]], Hang | None]:
        split = urlsplit(raw_path)
        params = dict(parse_qsl(split.query))
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = raw_body.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(Recorded(method, split.path, params, headers, body))
            hang = self._take_hang(method)
            if hang is not None and not hang.after_processing:
                return 0, None, [], hang
            fault = take_fault(self.faults, method, split.path)
            if fault is not None:
                return fault.status, fault.body, list(fault.headers), hang
            try:
                if headers.get("authorization") != f"OAuth {self.api_key}":
                    raise ApiError(401, "Could not authenticate")
                status, answer = self._dispatch(method, split.path, params, body)
            except ApiError as exc:
                return exc.status, {"error": exc.error}, [], hang
        return status, answer, [], hang

    def _take_hang(self, method: str) -> Hang | None:
        for hang in self.hangs:
            if hang.times > 0 and (not hang.method or hang.method == method):
                hang.times -= 1
                if not hang.times:
                    self.hangs.remove(hang)
                return hang
        return None

    def _dispatch(
        self, method: str, path: str, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "v1":
            parts = parts[1:]
        if parts:
            parts[-1] = parts[-1].removesuffix(".json")
        if len(parts) < 3 or parts[0] != "pages":
            raise ApiError(404, "The requested resource could not be found.")
        if parts[1] != self.page_id:
            raise ApiError(404, "The requested resource could not be found.")
        rest = parts[2:]
        if rest == ["components"] and method == "GET":
            items = [self._component_view(c) for c in self.components.values()]
            return 200, _paged(items, params)
        if rest[0] != "incidents":
            raise ApiError(404, "The requested resource could not be found.")
        if rest == ["incidents"]:
            if method == "POST":
                return 201, self._view(self._create(_incident_object(body)))
            if method == "GET":
                return 200, _paged([self._view(i) for i in self._newest()], params)
        if len(rest) == 2 and method == "GET" and rest[1] in _LISTINGS:
            wanted = _LISTINGS[rest[1]]
            items = [self._view(i) for i in self._newest() if i["status"] in wanted]
            return 200, _paged(items, params)
        if len(rest) == 2:
            incident = self.incidents.get(rest[1])
            if incident is None:
                raise ApiError(404, "The requested resource could not be found.")
            if method == "GET":
                return 200, self._view(incident)
            if method in ("PATCH", "PUT"):
                return 200, self._view(self._update(incident, _incident_object(body)))
        raise ApiError(405, f"{method} is not allowed here")

    # -- incidents --------------------------------------------------------------------

    def _newest(self) -> list[dict[str, Any]]:
        return sorted(self.incidents.values(), key=lambda i: i["_seq"], reverse=True)

    def _check(self, fields: dict[str, Any], *, scheduled: bool, creating: bool) -> list[str]:
        errors: list[str] = []
        if creating or "name" in fields:
            name = fields.get("name")
            if not isinstance(name, str) or not name.strip():
                errors.append("Name can't be blank")
        status = fields.get("status")
        allowed = MAINTENANCE_STATUSES if scheduled else INCIDENT_STATUSES
        if status is not None and status not in allowed:
            errors.append(
                f"Status {status!r} is not valid for a "
                f"{'scheduled maintenance' if scheduled else 'realtime incident'}: "
                f"one of {', '.join(allowed)}"
            )
        if scheduled and creating:
            for key in ("scheduled_for", "scheduled_until"):
                if not fields.get(key):
                    errors.append(f"{key.replace('_', ' ').capitalize()} can't be blank")
            try:
                if fields.get("scheduled_for") and fields.get("scheduled_until"):
                    start = datetime.fromisoformat(str(fields["scheduled_for"]))
                    end = datetime.fromisoformat(str(fields["scheduled_until"]))
                    if end <= start:
                        errors.append("Scheduled until must be after scheduled for")
            except ValueError:
                errors.append("Scheduled for and scheduled until must be ISO 8601 times")
        members = {i for i, c in self.components.items() if not c["group"]}
        ids = fields.get("component_ids")
        if ids is not None:
            if not isinstance(ids, list):
                errors.append("Component ids must be a list")
            else:
                unknown = [str(i) for i in ids if i not in members]
                if unknown:
                    errors.append(f"Components not found: {', '.join(unknown)}")
        comps = fields.get("components")
        if comps is not None:
            if not isinstance(comps, dict):
                errors.append("Components must be an object of component id to status")
            else:
                for cid, state in comps.items():
                    if cid not in members:
                        errors.append(f"Component not found: {cid}")
                    elif state not in COMPONENT_STATUSES:
                        errors.append(f"Component status {state!r} is not valid")
        impact = fields.get("impact_override")
        if impact is not None and impact not in IMPACTS:
            errors.append(f"Impact override {impact!r} is not included in the list")
        metadata = fields.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or not all(isinstance(v, dict) for v in metadata.values())
        ):
            errors.append("Metadata must be an object of namespaces, each an object")
        return errors

    def _create(self, fields: dict[str, Any]) -> dict[str, Any]:
        scheduled = fields.get("status") in MAINTENANCE_STATUSES or "scheduled_for" in fields
        errors = self._check(fields, scheduled=scheduled, creating=True)
        if errors:
            raise ApiError(422, errors)
        now = _now()
        incident_id = _id()
        status = fields.get("status") or ("scheduled" if scheduled else "investigating")
        incident: dict[str, Any] = {
            "id": incident_id,
            "_seq": len(self.incidents),
            "_scheduled": scheduled,
            "name": fields["name"],
            "status": status,
            "impact_override": fields.get("impact_override"),
            "created_at": now,
            "updated_at": now,
            "started_at": now,
            "monitoring_at": None,
            "resolved_at": None,
            "page_id": self.page_id,
            "shortlink": f"https://stspg.io/{incident_id[:5]}",
            "scheduled_for": fields.get("scheduled_for"),
            "scheduled_until": fields.get("scheduled_until"),
            "scheduled_remind_prior": bool(fields.get("scheduled_remind_prior", False)),
            "scheduled_auto_in_progress": bool(fields.get("scheduled_auto_in_progress", False)),
            "scheduled_auto_completed": bool(fields.get("scheduled_auto_completed", False)),
            "auto_transition_to_maintenance_state": bool(
                fields.get("auto_transition_to_maintenance_state", False)
            ),
            "auto_transition_to_operational_state": bool(
                fields.get("auto_transition_to_operational_state", False)
            ),
            "metadata": copy.deepcopy(fields.get("metadata") or {}),
            "component_ids": [],
            "incident_updates": [],
            "postmortem_body": None,
        }
        self.incidents[incident_id] = incident
        self._apply(incident, fields, now)
        return incident

    def _update(self, incident: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        errors = self._check(fields, scheduled=incident["_scheduled"], creating=False)
        if errors:
            raise ApiError(422, errors)
        now = _now()
        if "name" in fields:
            incident["name"] = fields["name"]
        if "impact_override" in fields:
            incident["impact_override"] = fields["impact_override"]
        for key in ("scheduled_for", "scheduled_until"):
            if key in fields:
                incident[key] = fields[key]
        if "metadata" in fields:
            for namespace, values in (fields["metadata"] or {}).items():
                incident["metadata"].setdefault(namespace, {}).update(values)
        if fields.get("status"):
            incident["status"] = fields["status"]
        incident["updated_at"] = now
        self._apply(incident, fields, now)
        return incident

    def _apply(self, incident: dict[str, Any], fields: dict[str, Any], now: str) -> None:
        """Component changes on the page and in the incident, and the incident update."""
        affected = []
        for cid in fields.get("component_ids") or []:
            if cid not in incident["component_ids"]:
                incident["component_ids"].append(cid)
        for cid, state in (fields.get("components") or {}).items():
            component = self.components[cid]
            affected.append(
                {
                    "code": cid,
                    "name": component["name"],
                    "old_status": component["status"],
                    "new_status": state,
                }
            )
            component["status"] = state
            component["updated_at"] = now
            if cid not in incident["component_ids"]:
                incident["component_ids"].append(cid)
        status = incident["status"]
        if status == "monitoring" and incident["monitoring_at"] is None:
            incident["monitoring_at"] = now
        if status in ("resolved", "completed") and incident["resolved_at"] is None:
            incident["resolved_at"] = now
        if "status" in fields or "body" in fields or affected:
            incident["incident_updates"].insert(
                0,
                {
                    "id": _id(),
                    "incident_id": incident["id"],
                    "status": status,
                    "body": fields.get("body") or "",
                    "created_at": now,
                    "updated_at": now,
                    "display_at": now,
                    "affected_components": affected or None,
                    "deliver_notifications": bool(fields.get("deliver_notifications", True)),
                    "custom_tweet": None,
                    "tweet_id": None,
                    "twitter_updated_at": None,
                    "wants_twitter_update": False,
                },
            )

    def _impact(self, incident: dict[str, Any]) -> str:
        if incident["impact_override"]:
            return str(incident["impact_override"])
        if incident["_scheduled"]:
            return "maintenance"
        worst = "none"
        for cid in incident["component_ids"]:
            impact = _IMPACT_OF.get(self.components[cid]["status"], "none")
            if _RANK.index(impact) > _RANK.index(worst):
                worst = impact
        return worst

    def _component_view(self, component: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(component)

    def _view(self, incident: dict[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in incident.items() if not k.startswith("_")}
        out.pop("component_ids")
        out["impact"] = self._impact(incident)
        out["components"] = [
            self._component_view(self.components[c]) for c in incident["component_ids"]
        ]
        return out


_LISTINGS = {
    "unresolved": ("investigating", "identified", "monitoring"),
    "upcoming": ("scheduled",),
    "active_maintenance": ("in_progress", "verifying"),
}


def _incident_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("incident"), dict):
        raise ApiError(400, "param is missing or the value is empty: incident")
    return dict(body["incident"])


def _paged(items: list[dict[str, Any]], params: dict[str, str]) -> list[dict[str, Any]]:
    try:
        page = max(int(params.get("page", "1")), 1)
        per_page = min(max(int(params.get("per_page", "100")), 1), 100)
    except ValueError as exc:
        raise ApiError(400, "page and per_page must be numbers") from exc
    return items[(page - 1) * per_page : page * per_page]
