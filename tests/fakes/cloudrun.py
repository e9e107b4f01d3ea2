"""An HTTP fake of the Cloud Run Admin API v2 (REST) that the real google-cloud-run client talks to.

Standard library only: a ``ThreadingHTTPServer`` in a background thread serving what
``run_v2.ServicesClient`` and ``run_v2.RevisionsClient`` send with ``transport="rest"``
(cloud.google.com/run/docs/reference/rest/v2):

- ``GET /v2/projects/{p}/locations/{l}/services/{s}`` and ``PATCH`` of the same path with
  an optional ``updateMask`` (top-level fields) and an ``etag`` in the body, which must
  match or the answer is 409 ``ABORTED``; a PATCH answers a long-running operation.
- ``GET .../services/{s}/revisions`` (``ListRevisions``: newest first by ``createTime``,
  ``pageSize`` and ``pageToken`` in, ``nextPageToken`` out while more remain; ``-`` as the
  service lists every service's revisions in the location) and
  ``GET .../services/{s}/revisions/{r}``.
- ``GET /v2/projects/{p}/locations/{l}/operations/{id}``: ``done`` after a few polls, with a
  ``response`` (or an ``error``, a ``google.rpc.Status``) of ``@type``
  ``type.googleapis.com/google.cloud.run.v2.Service``.

JSON is camelCase; enums go out as integers because the client asks for
``$alt=json;enum-encoding=int`` (strings are accepted on input too). ``generation`` is an
int64 and so a JSON string. Names follow the API: ``latestReadyRevision`` and
``latestCreatedRevision`` are full resource names, ``traffic[].revision`` and
``trafficStatuses[].revision`` short ones, and a ``LATEST`` traffic status carries no
revision. Errors come in Google's shape, ``{"error": {"code", "message", "status"}}``.

Like Cloud Run, a PATCH changes the spec at once (``generation`` and ``etag`` move on,
``reconciling`` turns true) and the serving state (``trafficStatuses``,
``latestReadyRevision``, ``observedGeneration``, ``terminalCondition``) only when the
operation completes. A revision is created whenever the template changes, named
``template.revision`` or ``{service}-{generation:05d}-{3 letters}``.

In a test::

    with CloudRunFake() as fake:
        fake.add_service("triptrip-api", image="registry/triptrip-api:v1.5.2")
        client = run_v2.ServicesClient(credentials=AnonymousCredentials(), transport="rest",
                                       client_options=ClientOptions(api_endpoint=fake.url))
        fake.fail_next("PATCH", 503)             # fault injection, see the methods below
        ...
        assert [r.method for r in fake.requests].count("PATCH") == 1
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import re
import string
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes._http import FakeHandler, FakeHTTPServer, Fault, take_fault

PROJECT = "triptrip-production"
LOCATION = "asia-northeast1"
SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"

# google.rpc.Code, with the HTTP status each maps to (google.golang.org/genproto ... code.proto).
GRPC = {
    "INVALID_ARGUMENT": (3, 400),
    "FAILED_PRECONDITION": (9, 400),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "ABORTED": (10, 409),
    "PERMISSION_DENIED": (7, 403),
    "UNAUTHENTICATED": (16, 401),
    "RESOURCE_EXHAUSTED": (8, 429),
    "INTERNAL": (13, 500),
    "UNAVAILABLE": (14, 503),
    "DEADLINE_EXCEEDED": (4, 504),
}
_STATUS_FOR_HTTP = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# TrafficTargetAllocationType and Condition.State as integers.
LATEST, REVISION = 1, 2
_ALLOCATION = {
    "TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED": 0,
    "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST": LATEST,
    "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION": REVISION,
}
PENDING, RECONCILING, FAILED, SUCCEEDED = 1, 2, 3, 4
# Fields a client may set; everything else in a PATCH body is output only and ignored.
_MUTABLE = (
    "description",
    "labels",
    "annotations",
    "client",
    "clientVersion",
    "ingress",
    "launchStage",
    "binaryAuthorization",
    "template",
    "traffic",
    "scaling",
    "invokerIamDisabled",
    "defaultUriDisabled",
    "customAudiences",
)
_TAG = re.compile(r"^[a-z]([a-z0-9-]{0,44}[a-z0-9])?$")
_REVISION_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_NOT_READY = (
    "Revision '{name}' is not ready and cannot serve traffic. The user-provided container "
    "failed to start and listen on the port defined provided by the PORT=8080 environment "
    "variable within the allocated timeout."
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _etag(data: Any) -> str:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    return f'"{digest}"'


class ApiError(Exception):
    """An answer in Google's error shape, with the canonical status name."""

    def __init__(self, status: str, message: str, http: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.http = http if http is not None else GRPC[status][1]

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.http, "message": self.message, "status": self.status}}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    body: Any


@dataclass
class Operation:
    name: str
    service: str
    remaining: int
    created_revision: str | None = None
    error: dict[str, Any] | None = None
    done: bool = False
    response: dict[str, Any] | None = None


@dataclass
class _Service:
    spec: dict[str, Any]
    status: dict[str, Any] = field(default_factory=dict)


class _Handler(FakeHandler):
    owner: CloudRunFake

    def _serve(self) -> None:
        status, body, headers = self.owner.handle(self.command, self.path, self.read_body())
        self.send_json(status, body, headers, content_type="application/json; charset=UTF-8")

    do_GET = do_PATCH = do_POST = do_DELETE = _serve


class CloudRunFake(FakeHTTPServer):
    """The fake server; start it with ``with CloudRunFake() as fake`` or ``start()``/``stop()``.

    ``op_polls`` is how many requests a new operation waits before it completes; every
    request to the fake (an operation poll, a service GET) counts, so a process that
    stopped polling sees the change land as soon as anyone looks.
    """

    handler = _Handler
    thread_name = "cloudrun-fake"

    def __init__(self, *, project: str = PROJECT, location: str = LOCATION, op_polls: int = 2):
        super().__init__()
        self.project = project
        self.location = location
        self.op_polls = op_polls
        self.requests: list[Recorded] = []
        self.services: dict[str, _Service] = {}
        self.revisions: dict[str, dict[str, Any]] = {}
        self._templates: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, Operation] = {}
        self.faults: list[Fault] = []
        # Fault switches, see the methods that set them.
        self.held = False
        self.freeze_routing = False
        # ListRevisions pages: the size used without ``pageSize``, and the most a page holds
        # whatever was asked (the real API may return fewer than asked, too).
        self.list_page_default = 100
        self.list_page_max = 1000
        self.failing_images: dict[str, str] = {}
        self._next_op_error: dict[str, Any] | None = None
        self._conflict_before_patch = 0
        self._lock = threading.RLock()
        self._rng = random.Random(7)  # revision suffixes, not secrets

    # -- seeding and reading ------------------------------------------------------------

    def service_name(self, service: str) -> str:
        return f"projects/{self.project}/locations/{self.location}/services/{service}"

    def add_service(
        self,
        service: str,
        *,
        image: str,
        revision: str | None = None,
        traffic: str = "latest",
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A ready service with one revision serving 100 %, as after ``gcloud run deploy``.

        ``traffic="latest"`` gives the default ``LATEST`` entry; ``"pinned"`` a ``REVISION``
        entry naming the revision, as after ``gcloud run services update-traffic``.
        """
        name = self.service_name(service)
        rev = revision or f"{service}-00001-{self._suffix()}"
        template = {
            "revision": revision or "",
            "containers": [{"image": image, "ports": [{"name": "http1", "containerPort": 8080}]}],
            "maxInstanceRequestConcurrency": 80,
            "timeout": "300s",
            "serviceAccount": f"run@{self.project}.iam.gserviceaccount.com",
        }
        entry = (
            {"type": LATEST, "percent": 100}
            if traffic == "latest"
            else {"type": REVISION, "revision": rev, "percent": 100}
        )
        now = _now()
        spec = {
            "name": name,
            "uid": str(uuid.uuid4()),
            "generation": "1",
            "labels": {},
            "annotations": dict(annotations or {}),
            "createTime": now,
            "updateTime": now,
            "creator": "deployer@example.iam.gserviceaccount.com",
            "lastModifier": "deployer@example.iam.gserviceaccount.com",
            "ingress": 1,
            "launchStage": 4,  # google.api.LaunchStage.GA
            "template": template,
            "traffic": [entry],
        }
        with self._lock:
            svc = _Service(spec)
            self.services[name] = svc
            self._create_revision(svc, rev, ready=True)
            svc.status = {
                "observedGeneration": "1",
                "latestReadyRevision": f"{name}/revisions/{rev}",
                "latestCreatedRevision": f"{name}/revisions/{rev}",
            }
            svc.spec["etag"] = _etag(svc.spec)
            self._route(svc)
            return self.service(service)

    def service(self, service: str) -> dict[str, Any]:
        """The service as a GET would answer it."""
        with self._lock:
            return self._render(self.services[self.service_name(service)])

    def serving(self, service: str) -> dict[str, int]:
        """Percent per short revision name, from ``trafficStatuses``."""
        svc = self.service(service)
        latest = _short(svc.get("latestReadyRevision", ""))
        out: dict[str, int] = {}
        for status in svc.get("trafficStatuses", []):
            rev = status.get("revision") or latest
            if status.get("percent"):
                out[rev] = out.get(rev, 0) + int(status["percent"])
        return out

    def patches(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PATCH"]

    def set_traffic(self, service: str, traffic: list[dict[str, Any]]) -> None:
        """Change traffic behind the tool's back (another deploy, a person with gcloud)."""
        with self._lock:
            svc = self.services[self.service_name(service)]
            svc.spec["traffic"] = copy.deepcopy(traffic)
            self._bump(svc)
            self._route(svc)

    # -- fault injection ------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int,
        *,
        times: int = 1,
        path_contains: str = "",
        message: str | None = None,
        grpc_status: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with an error in Google's shape."""
        grpc_status = grpc_status or _STATUS_FOR_HTTP.get(status, "UNKNOWN")
        headers = (("Retry-After", retry_after),) if retry_after is not None else ()
        text = message or {
            409: "Conflict for resource: the resource was modified concurrently. Please retry.",
            429: "Quota exceeded for quota metric 'Write requests' of service 'run.googleapis.com'.",
            500: "Internal error encountered.",
            503: "The service is currently unavailable.",
        }.get(status, f"HTTP {status}")
        body = ApiError(grpc_status, text, status).body()
        with self._lock:
            self.faults.append(
                Fault(status, body, headers, times, method=method, path_contains=path_contains)
            )

    def conflict_before_next_patch(self, times: int = 1) -> None:
        """Another writer changes the service just before the next PATCH: its etag is stale."""
        with self._lock:
            self._conflict_before_patch += times

    def fail_image(self, image: str, message: str | None = None) -> None:
        """Revisions of ``image`` never become ready; their operations end in an error."""
        self.failing_images[image] = message or ""

    def fail_next_operation(self, code: int = 13, message: str = "Internal error.") -> None:
        """The next operation ends with ``error`` (a ``google.rpc.Status``) and changes no routing."""
        with self._lock:
            self._next_op_error = {"code": code, "message": message}

    def hold(self) -> None:
        """Pending operations stop progressing (a revision that never becomes ready)."""
        with self._lock:
            self.held = True

    def release(self) -> None:
        with self._lock:
            self.held = False

    # -- the API ------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, raw_body: bytes) -> tuple[int, Any, list[Any]]:
        split = urlsplit(raw_path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(Recorded(method, split.path, params, body))
            self._tick()
            fault = take_fault(self.faults, method, split.path)
            if fault is not None:
                return fault.status, fault.body, list(fault.headers)
            try:
                return 200, self._dispatch(method, split.path, params, body), []
            except ApiError as exc:
                return exc.http, exc.body(), []

    def _dispatch(
        self, method: str, path: str, params: dict[str, str], body: Any
    ) -> dict[str, Any]:
        parts = path.strip("/").split("/")
        # v2 / projects P / locations L / (services S [/ revisions [R]] | operations ID)
        if len(parts) < 7 or parts[0] != "v2" or parts[1] != "projects" or parts[3] != "locations":
            raise ApiError("NOT_FOUND", f"The requested URL {path} was not found on this server.")
        project, location, kind, ident = parts[2], parts[4], parts[5], parts[6]
        name = "/".join(parts[1:7])
        if kind == "operations" and len(parts) == 7 and method == "GET":
            return self._get_operation(name)
        if kind != "services":
            raise ApiError("NOT_FOUND", f"The requested URL {path} was not found on this server.")
        if ident == "-" and len(parts) == 8 and parts[7] == "revisions" and method == "GET":
            return self._list_revisions(name, f"projects/{project}/locations/{location}/", params)
        svc = self.services.get(name)
        if svc is None:
            raise ApiError(
                "NOT_FOUND",
                f"Resource '{ident}' of kind 'SERVICE' in region '{location}' in project "
                f"'{project}' does not exist.",
            )
        if len(parts) == 7:
            if method == "GET":
                return self._render(svc)
            if method == "PATCH":
                return self._patch(svc, params, body)
            raise ApiError("INVALID_ARGUMENT", f"Method {method} is not allowed here.", 405)
        if parts[7] == "revisions" and method == "GET" and len(parts) in (8, 9):
            if len(parts) == 8:
                return self._list_revisions(name, None, params)
            rev = self.revisions.get(f"{name}/revisions/{parts[8]}")
            if rev is None:
                raise ApiError(
                    "NOT_FOUND",
                    f"Resource '{parts[8]}' of kind 'REVISION' in region '{location}' "
                    f"in project '{project}' does not exist.",
                )
            return copy.deepcopy(rev)
        raise ApiError("NOT_FOUND", f"The requested URL {path} was not found on this server.")

    def _list_revisions(
        self, parent: str, location: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        """One page of ``ListRevisionsResponse``: of ``parent``, or with ``location`` (the
        ``-`` service) of every service there."""
        try:
            size = int(params.get("pageSize") or 0)
        except ValueError:
            raise ApiError("INVALID_ARGUMENT", "Invalid value for pageSize.") from None
        if size < 0:
            raise ApiError("INVALID_ARGUMENT", "page_size must not be negative.")
        size = min(size or self.list_page_default, self.list_page_max)
        # The token binds the request it continues: "All other parameters must match."
        show_deleted = params.get("showDeleted", "false")
        offset = 0
        if params.get("pageToken"):
            try:
                token = json.loads(base64.urlsafe_b64decode(params["pageToken"]))
                offset = int(token["offset"])
                if (token["parent"], token["showDeleted"]) != (parent, show_deleted):
                    raise ValueError("another request's token")
            except (ValueError, KeyError, TypeError):
                raise ApiError("INVALID_ARGUMENT", "Invalid page token.") from None
        # Insertion order breaks createTime ties: it is creation order.
        order = {key: i for i, key in enumerate(self.revisions)}
        revs = [
            r
            for key, r in self.revisions.items()
            if (r["service"] == parent if location is None else key.startswith(location))
        ]
        revs.sort(key=lambda r: (r["createTime"], order[r["name"]]), reverse=True)
        out: dict[str, Any] = {"revisions": copy.deepcopy(revs[offset : offset + size])}
        if offset + size < len(revs):
            token = {"offset": offset + size, "parent": parent, "showDeleted": show_deleted}
            out["nextPageToken"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
        return out

    def _patch(self, svc: _Service, params: dict[str, str], body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received.")
        if self._conflict_before_patch:
            self._conflict_before_patch -= 1
            svc.spec.setdefault("annotations", {})["other-writer/touched"] = _now()
            self._bump(svc)
        etag = body.get("etag")
        if etag and etag != svc.spec.get("etag"):
            raise ApiError(
                "ABORTED",
                f"The etag {etag} does not match the current etag {svc.spec.get('etag')}: "
                "the service was modified concurrently.",
            )
        # With a mask only its fields change; without one the body replaces every field a
        # client may set, and one it leaves out is cleared (a proto3 empty map or list).
        mask = [p for p in params.get("updateMask", "").split(",") if p]
        fields = mask or list(_MUTABLE)
        unknown = [f for f in fields if f not in _MUTABLE]
        if unknown:
            raise ApiError("INVALID_ARGUMENT", f"Invalid update mask path(s): {', '.join(unknown)}")
        new = copy.deepcopy(svc.spec)
        for f in fields:
            if f in body:
                new[f] = copy.deepcopy(body[f])
            else:
                new.pop(f, None)
        for key in new.get("annotations", {}):
            if key.split("/", 1)[0].endswith(("run.googleapis.com", "cloud.googleapis.com")):
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"Annotation '{key}' is not supported on Cloud Run API v2 resources.",
                )
        template_changed = _canon(new.get("template")) != _canon(svc.spec.get("template"))
        created: str | None = None
        if template_changed:
            created = self._new_revision_name(svc, new)
        self._check_traffic(svc, new, created)
        # Accepted: the spec changes now, the serving state when the operation completes.
        svc.spec = new
        svc.spec["lastModifier"] = "deployer@example.iam.gserviceaccount.com"
        self._bump(svc)
        if created is not None:
            image = _image(new)
            self._create_revision(svc, created, ready=None, image=image)
            svc.status["latestCreatedRevision"] = f"{svc.spec['name']}/revisions/{created}"
        op_name = f"projects/{self.project}/locations/{self.location}/operations/{uuid.uuid4()}"
        op = Operation(op_name, svc.spec["name"], self.op_polls, created)
        if self._next_op_error is not None:
            op.error, self._next_op_error = self._next_op_error, None
        self.operations[op_name] = op
        if op.remaining <= 0:
            self._complete(op)
        return self._render_operation(op)

    def _new_revision_name(self, svc: _Service, new: dict[str, Any]) -> str:
        service = _short(svc.spec["name"])
        wanted = (new.get("template") or {}).get("revision") or ""
        if not wanted:
            generation = int(svc.spec["generation"]) + 1
            return f"{service}-{generation:05d}-{self._suffix()}"
        if not wanted.startswith(service + "-") or not _REVISION_NAME.match(wanted):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Revision name '{wanted}' must be prefixed by the name of the enclosing "
                f"Service with a trailing - ('{service}-'), use only lowercase letters, digits "
                "and hyphens, and be at most 63 characters.",
            )
        full = f"{svc.spec['name']}/revisions/{wanted}"
        if full in self.revisions and _canon(self._templates.get(full)) != _canon(
            new.get("template")
        ):
            raise ApiError(
                "ALREADY_EXISTS",
                f"Revision named '{wanted}' with different configuration already exists.",
            )
        return wanted

    def _check_traffic(self, svc: _Service, new: dict[str, Any], created: str | None) -> None:
        traffic = new.get("traffic") or []
        total, tags = 0, set()
        for entry in traffic:
            kind = _allocation(entry.get("type", 0))
            rev = entry.get("revision", "")
            if kind == REVISION:
                full = f"{svc.spec['name']}/revisions/{rev}"
                if rev != created and full not in self.revisions:
                    raise ApiError(
                        "INVALID_ARGUMENT",
                        f"Revision '{rev}' referenced in traffic not found.",
                    )
            elif kind == LATEST:
                if rev:
                    raise ApiError(
                        "INVALID_ARGUMENT",
                        "A traffic target of type LATEST must not name a revision.",
                    )
            else:
                raise ApiError("INVALID_ARGUMENT", "Traffic target type must be specified.")
            percent = int(entry.get("percent", 0))
            if not 0 <= percent <= 100:
                raise ApiError("INVALID_ARGUMENT", f"Traffic percent {percent} is out of range.")
            total += percent
            tag = entry.get("tag")
            if tag:
                if not _TAG.match(tag):
                    raise ApiError("INVALID_ARGUMENT", f"Tag '{tag}' is not a valid tag.")
                if tag in tags:
                    raise ApiError("INVALID_ARGUMENT", f"Tag '{tag}' is used more than once.")
                tags.add(tag)
        if traffic and total != 100:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Traffic percentages must add up to 100, got {total}.",
            )

    def _get_operation(self, name: str) -> dict[str, Any]:
        op = self.operations.get(name)
        if op is None:
            raise ApiError("NOT_FOUND", f"Operation '{name}' not found.")
        return self._render_operation(op)

    # -- the world moving on ------------------------------------------------------------

    def _tick(self) -> None:
        if self.held:
            return
        for op in list(self.operations.values()):
            if not op.done:
                op.remaining -= 1
                if op.remaining <= 0:
                    self._complete(op)

    def _complete(self, op: Operation) -> None:
        svc = self.services[op.service]
        created = op.created_revision
        error = op.error
        if created is not None:
            rev = self.revisions[f"{op.service}/revisions/{created}"]
            message = self.failing_images.get(_image_of_revision(rev))
            if message is not None:
                rev["conditions"] = _conditions(FAILED, message or _NOT_READY.format(name=created))
                rev["reconciling"] = False
                error = error or {"code": 9, "message": message or _NOT_READY.format(name=created)}
            else:
                rev["conditions"] = _conditions(SUCCEEDED)
                rev["reconciling"] = False
                svc.status["latestReadyRevision"] = f"{op.service}/revisions/{created}"
        if error is None:
            for entry in svc.spec.get("traffic", []):
                if _allocation(entry.get("type", 0)) == REVISION and entry.get("percent"):
                    rev = self.revisions[f"{op.service}/revisions/{entry['revision']}"]
                    if _state(rev) == FAILED:
                        error = {"code": 9, "message": _NOT_READY.format(name=entry["revision"])}
        op.done = True
        op.error = error
        if error is None:
            if not self.freeze_routing:
                self._route(svc)
            svc.status["observedGeneration"] = svc.spec["generation"]
            svc.status["terminalCondition"] = _condition("Ready", SUCCEEDED)
            op.response = self._render(svc, pending=False)
        else:
            svc.status["terminalCondition"] = _condition("Ready", FAILED, error["message"])
            op.response = None

    def _route(self, svc: _Service) -> None:
        """Make the serving state match the spec: the routing Cloud Run converges to."""
        statuses = []
        name = svc.spec["name"]
        for entry in svc.spec.get("traffic") or [{"type": LATEST, "percent": 100}]:
            kind = _allocation(entry.get("type", 0))
            status: dict[str, Any] = {"type": kind}
            if kind == REVISION:
                status["revision"] = entry["revision"]
            if entry.get("percent"):
                status["percent"] = int(entry["percent"])
            if entry.get("tag"):
                status["tag"] = entry["tag"]
                status["uri"] = f"https://{entry['tag']}---{_short(name)}-abc123-an.a.run.app"
            statuses.append(status)
        svc.status["trafficStatuses"] = statuses
        svc.status["observedGeneration"] = svc.spec["generation"]
        svc.status["terminalCondition"] = _condition("Ready", SUCCEEDED)

    def _bump(self, svc: _Service) -> None:
        svc.spec["generation"] = str(int(svc.spec["generation"]) + 1)
        svc.spec["updateTime"] = _now()
        svc.spec.pop("etag", None)
        svc.spec["etag"] = _etag(svc.spec)

    def _create_revision(
        self, svc: _Service, rev: str, *, ready: bool | None, image: str | None = None
    ) -> None:
        name = svc.spec["name"]
        template = copy.deepcopy(svc.spec["template"])
        now = _now()
        state = PENDING if ready is None else (SUCCEEDED if ready else FAILED)
        self.revisions[f"{name}/revisions/{rev}"] = {
            "name": f"{name}/revisions/{rev}",
            "uid": str(uuid.uuid4()),
            "generation": "1",
            "labels": dict(template.get("labels") or {}),
            "annotations": dict(template.get("annotations") or {}),
            "createTime": now,
            "updateTime": now,
            "launchStage": 4,  # google.api.LaunchStage.GA
            "service": name,
            "containers": copy.deepcopy(template.get("containers") or []),
            "maxInstanceRequestConcurrency": template.get("maxInstanceRequestConcurrency", 80),
            "timeout": template.get("timeout", "300s"),
            "serviceAccount": template.get("serviceAccount", ""),
            "reconciling": ready is None,
            "conditions": _conditions(state),
            "observedGeneration": "1",
            "logUri": f"https://console.cloud.google.com/logs/viewer?resource=cloud_run_revision/{rev}",
            "etag": _etag({"rev": rev, "now": now}),
        }
        self._templates[f"{name}/revisions/{rev}"] = template

    def _suffix(self) -> str:
        return "".join(self._rng.choice(string.ascii_lowercase) for _ in range(3))

    # -- rendering ------------------------------------------------------------------------

    def _render(self, svc: _Service, *, pending: bool | None = None) -> dict[str, Any]:
        out = copy.deepcopy(svc.spec)
        out.update(copy.deepcopy(svc.status))
        if pending is None:
            pending = any(
                not op.done for op in self.operations.values() if op.service == svc.spec["name"]
            )
        out["reconciling"] = pending
        if pending:
            out["terminalCondition"] = _condition("Ready", RECONCILING)
        out["conditions"] = [
            _condition("RoutesReady", RECONCILING if pending else SUCCEEDED),
            _condition("ConfigurationsReady", RECONCILING if pending else SUCCEEDED),
        ]
        out["uri"] = f"https://{_short(svc.spec['name'])}-abc123-an.a.run.app"
        out["urls"] = [out["uri"]]
        return out

    def _render_operation(self, op: Operation) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": op.name,
            "metadata": {"@type": SERVICE_TYPE, **self._render(self.services[op.service])},
            "done": op.done,
        }
        if op.done and op.error is not None:
            out["error"] = dict(op.error)
        elif op.done and op.response is not None:
            out["response"] = {"@type": SERVICE_TYPE, **op.response}
        return out


def _allocation(value: Any) -> int:
    if isinstance(value, str):
        return _ALLOCATION.get(value, 0)
    return int(value or 0)


def _condition(kind: str, state: int, message: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "state": state, "lastTransitionTime": _now()}
    if message:
        out["message"] = message
        out["severity"] = 1
    return out


def _conditions(state: int, message: str = "") -> list[dict[str, Any]]:
    return [
        _condition("Ready", state, message),
        _condition("ContainerHealthy", state, message),
        _condition("ResourcesAvailable", SUCCEEDED if state != PENDING else PENDING),
    ]


def _state(revision: dict[str, Any]) -> int:
    for cond in revision.get("conditions", []):
        if cond.get("type") == "Ready":
            return int(cond.get("state", 0))
    return 0


def _canon(template: Any) -> str:
    return json.dumps(template or {}, sort_keys=True)


def _image(spec: dict[str, Any]) -> str:
    containers = (spec.get("template") or {}).get("containers") or [{}]
    return str(containers[0].get("image", ""))


def _image_of_revision(rev: dict[str, Any]) -> str:
    containers = rev.get("containers") or [{}]
    return str(containers[0].get("image", ""))
