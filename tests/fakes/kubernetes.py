"""An HTTP fake of the Kubernetes API server, with its controllers, that kubectl itself accepts.

Standard library only: a ``ThreadingHTTPServer`` in a background thread speaking the API
server's JSON: discovery (``/version``, ``/api``, ``/apis``, ``/api/v1``,
``/apis/GROUP/VERSION`` — plain ``APIGroupList`` JSON, which kubectl accepts after asking
for aggregated discovery first), namespaces, Pods, Events, Services, ConfigMaps,
Deployments (with the ``status`` and ``scale`` subresources), ReplicaSets, Istio
VirtualServices and DestinationRules, Argo Rollouts and AnalysisTemplates. It serves
GET, LIST (``labelSelector``, ``fieldSelector``), WATCH (chunked JSON events, from a
``resourceVersion`` or with ``sendInitialEvents``), POST, PUT (409 on a stale
``resourceVersion``), PATCH (JSON, merge and strategic merge; 415 for strategic merge on
custom resources, as the real server), DELETE (owned objects go with it), ``dryRun=All``,
``Table`` answers for ``kubectl get``, and ``Status`` objects for errors. The controllers
are in tests/fakes/kubernetes_cluster.py.

In a test::

    with KubernetesFake() as fake:
        fake.cluster.behaviours["api:bad"] = PodBehaviour(ready=False)
        fake.inject("PATCH", "/apis/apps/v1/namespaces/*/deployments/*", unavailable())
        api = fake.api_client()              # a kubernetes.client.ApiClient aimed at the fake
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")   # for kubectl

On its own, for a person to try kubectl and the CLI against it::

    python -m tests.fakes.kubernetes --port 8001 --seed-document
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import fnmatch
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes._http import FakeHandler
from tests.fakes.kubernetes_cluster import (
    BY_KEY,
    RESOURCES,
    ApiError,
    Cluster,
    PodBehaviour,
    ResourceType,
    bad_request,
    field_matcher,
    label_matcher,
    resource,
    selector_text,
)
from tests.fakes.kubernetes_protobuf import ProtobufError
from tests.fakes.kubernetes_protobuf import decode as decode_protobuf

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "Fault",
    "KubernetesFake",
    "PodBehaviour",
    "RecordedRequest",
    "conflict",
    "server_error",
    "slow",
    "unavailable",
]

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Fault:
    """One injected answer: after ``delay`` seconds, either ``status`` (the request is not
    applied) or, with ``status=None``, the real answer (the request is applied late, as by
    a server that answered after the client gave up)."""

    status: int | None = None
    reason: str = ""
    message: str = ""
    delay: float = 0.0


def server_error(status: int = 500) -> Fault:
    reason = {500: "InternalError", 502: "BadGateway", 504: "Timeout"}.get(status, "InternalError")
    return Fault(status, reason, "Internal error occurred: etcdserver: request timed out")


def unavailable() -> Fault:
    return Fault(503, "ServiceUnavailable", "the server is currently unable to handle the request")


def conflict() -> Fault:
    return Fault(
        409,
        "Conflict",
        "Operation cannot be fulfilled: the object has been modified; please apply your "
        "changes to the latest version and try again",
    )


def slow(seconds: float) -> Fault:
    """Answer (and apply) only after ``seconds``: past a client's timeout, a timeout."""
    return Fault(None, delay=seconds)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, vs in self.query.items() for v in vs)
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")


@dataclass
class _Route:
    rt: ResourceType
    namespace: str
    name: str | None
    subresource: str | None


class KubernetesFake:
    """The API server on 127.0.0.1, a controller tick thread, and the test's levers."""

    def __init__(self, *, minor: int = 30, port: int = 0, tick: float = 0.05) -> None:
        self.minor = minor
        self.cluster = Cluster()
        self.requests: list[RecordedRequest] = []
        self._faults: list[tuple[str, str, list[Fault]]] = []
        self._faults_lock = threading.Lock()
        self._stopping = threading.Event()
        self._tick = tick
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KubernetesFake:
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="k8s-fake",
            daemon=True,
        )
        tick = threading.Thread(target=self._ticker, name="k8s-fake-controllers", daemon=True)
        self._threads = [serve, tick]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self.cluster.lock:
            self.cluster.changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> KubernetesFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ticker(self) -> None:
        # Time-driven controller work: pods that become ready later, timed pauses,
        # progress deadlines, crash loops.
        while not self._stopping.wait(self._tick):
            self.cluster.reconcile()

    # -- levers for tests ----------------------------------------------------------------------

    def inject(self, method: str, path: str, *faults: Fault) -> None:
        """Answer the next requests to ``method path`` (a glob) with ``faults``, in order."""
        with self._faults_lock:
            self._faults.append((method.upper(), path, list(faults)))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._faults_lock:
            for m, pattern, queue in self._faults:
                if m == method and queue and fnmatch.fnmatchcase(path, pattern):
                    return queue.pop(0)
        return None

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [
            r for r in self.requests if r.method == method and fnmatch.fnmatchcase(r.path, path)
        ]

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        """A kubeconfig for kubectl and the official client: ``server: URL``, any token."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2), "utf-8")  # JSON is YAML
        return path

    def api_client(self) -> ApiClient:
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"authorization": "fake-token"}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    def add_namespace(self, name: str) -> None:
        with contextlib.suppress(ApiError):
            self.cluster.create(BY_KEY["/namespaces"], "", {"metadata": {"name": name}})

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj``, or replace the stored one (a test's setup, not kubectl apply)."""
        group, _, _version = obj["apiVersion"].rpartition("/")
        rt = next(r for r in RESOURCES if r.group == group and r.kind == obj["kind"])
        ns = obj["metadata"].get("namespace", "default") if rt.namespaced else ""
        if self.cluster.find(rt, ns, obj["metadata"]["name"]) is None:
            return self.cluster.create(rt, ns, obj)
        body = json.loads(json.dumps(obj))
        body["metadata"].pop("resourceVersion", None)
        return self.cluster.replace(rt, ns, obj["metadata"]["name"], body)

    def get(
        self, plural: str, namespace: str, name: str, *, group: str | None = None
    ) -> dict[str, Any]:
        rt = _type_for(plural, group)
        return self.cluster.get(rt, namespace, name)

    def find(
        self, plural: str, namespace: str, name: str, *, group: str | None = None
    ) -> dict[str, Any] | None:
        return self.cluster.find(_type_for(plural, group), namespace, name)

    def list(
        self,
        plural: str,
        namespace: str | None,
        selector: str | None = None,
        *,
        group: str | None = None,
    ) -> list[dict[str, Any]]:
        return self.cluster.select(_type_for(plural, group), namespace, label_selector=selector)[0]

    def mark_stuck(self, namespace: str, name: str, stuck: bool = True) -> None:
        """Make a Deployment's rollout exceed its progress deadline (or stop doing so)."""
        with self.cluster.lock:
            if stuck:
                self.cluster.stuck.add((namespace, name))
            else:
                self.cluster.stuck.discard((namespace, name))
        self.cluster.reconcile()

    def wait_settled(self, timeout: float = 5.0) -> None:
        """Until the controllers have nothing left to do now (no write in two ticks)."""
        deadline = time.monotonic() + timeout
        last = self.cluster.resource_version
        while time.monotonic() < deadline:
            time.sleep(self._tick * 2.5)
            current = self.cluster.resource_version
            if current == last:
                return
            last = current

    # -- discovery -------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return {
            "major": "1",
            "minor": str(self.minor),
            "gitVersion": f"v1.{self.minor}.0",
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.23.4",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def api_versions(self) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
            ],
        }

    def api_groups(self) -> dict[str, Any]:
        groups: dict[str, list[str]] = {}
        for rt in RESOURCES:
            if rt.group and rt.version not in groups.setdefault(rt.group, []):
                groups[rt.group].append(rt.version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                    "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                }
                for g, vs in groups.items()
            ],
        }

    def api_resources(self, group: str, version: str) -> dict[str, Any] | None:
        types = [rt for rt in RESOURCES if rt.group == group and rt.version == version]
        if not types:
            return None
        resources: list[dict[str, Any]] = []
        for rt in types:
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": VERBS,
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            if rt.status_subresource:
                resources.append(
                    {
                        "name": f"{rt.plural}/status",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if rt.plural in ("deployments", "replicasets"):
                resources.append(
                    {
                        "name": f"{rt.plural}/scale",
                        "singularName": "",
                        "namespaced": True,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    # -- routing --------------------------------------------------------------------------------

    def route(self, path: str) -> _Route | dict[str, Any] | None:
        """A resource route, a discovery document, or None for an unknown path."""
        parts = [p for p in path.split("/") if p]
        if path in ("/version", "/version/"):
            return self.version()
        if parts == ["api"]:
            return self.api_versions()
        if parts == ["apis"]:
            return self.api_groups()
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if not rest:
            return self.api_resources(group, version)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and resource(group, rest[2]) is not None:
            namespace, rest = rest[1], rest[2:]
        rt = resource(group, rest[0])
        if rt is None or rt.version != version or len(rest) > 3:
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return _Route(rt, namespace, name, sub)


def _type_for(plural: str, group: str | None) -> ResourceType:
    return next(r for r in RESOURCES if r.plural == plural and (group is None or r.group == group))


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2 or (unit == "m" and seconds >= 120):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _table(rt: ResourceType, items: list[dict[str, Any]], rv: str) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table, the answer kubectl asks for when it prints columns."""
    columns: list[tuple[str, str]] = [("Name", "string")]
    if rt.plural == "deployments":
        columns += [("Ready", "string"), ("Up-to-date", "integer"), ("Available", "integer")]
    elif rt.plural == "replicasets":
        columns += [("Desired", "integer"), ("Current", "integer"), ("Ready", "integer")]
    elif rt.plural == "pods":
        columns += [("Ready", "string"), ("Status", "string"), ("Restarts", "integer")]
    elif rt.plural == "services":
        columns += [("Type", "string"), ("Cluster-IP", "string"), ("Port(s)", "string")]
    columns.append(("Age", "string"))
    rows = []
    for obj in items:
        meta, status, spec = obj["metadata"], obj.get("status") or {}, obj.get("spec") or {}
        cells: list[Any] = [meta["name"]]
        if rt.plural == "deployments":
            cells += [
                f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
                status.get("updatedReplicas", 0),
                status.get("availableReplicas", 0),
            ]
        elif rt.plural == "replicasets":
            cells += [
                spec.get("replicas", 0),
                status.get("replicas", 0),
                status.get("readyReplicas", 0),
            ]
        elif rt.plural == "pods":
            cs = status.get("containerStatuses") or []
            cells += [
                f"{sum(1 for c in cs if c.get('ready'))}/{len(cs)}",
                status.get("phase", "Pending"),
                sum(int(c.get("restartCount") or 0) for c in cs),
            ]
        elif rt.plural == "services":
            cells += [
                spec.get("type", "ClusterIP"),
                spec.get("clusterIP", "<none>"),
                ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
                or "<none>",
            ]
        cells.append(_age(meta.get("creationTimestamp")))
        partial = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
        }
        rows.append({"cells": cells, "object": partial})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [
            {
                "name": n,
                "type": t,
                "format": "name" if n == "Name" else "",
                "description": n,
                "priority": 0,
            }
            for n, t in columns
        ],
        "rows": rows,
    }


def _list_kind(rt: ResourceType) -> str:
    return f"{rt.kind}List"


class _Handler(FakeHandler):
    fake: KubernetesFake
    server_version = "kube-apiserver-fake"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing ---------------------------------------------------------------------------

    def _send(self, code: int, payload: Any) -> None:
        self.send_json(code, payload, [("Cache-Control", "no-cache, private")])

    def _body(self) -> Any:
        raw = self.read_body()
        if not raw:
            return None
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0]
        if content_type == "application/vnd.kubernetes.protobuf":
            try:
                return decode_protobuf(raw)
            except ProtobufError as exc:
                raise ApiError(415, "UnsupportedMediaType", str(exc)) from None
        if "json" not in content_type:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json, application/vnd.kubernetes.protobuf; got {content_type}",
            )
        try:
            return json.loads(raw)
        except ValueError:
            raise bad_request(f"the body of the request is not JSON: {raw[:80]!r}") from None

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        headers = self.header_map()
        try:
            body = self._body()
        except ApiError as exc:
            self.fake.requests.append(RecordedRequest(method, url.path, query, headers, None))
            self._send(exc.code, exc.status())
            return
        self.fake.requests.append(RecordedRequest(method, url.path, query, headers, body))
        fault = self.fake._take_fault(method, url.path)
        if fault is not None:
            time.sleep(fault.delay)
            if fault.status is not None:
                self._send(
                    fault.status, ApiError(fault.status, fault.reason, fault.message).status()
                )
                return
        try:
            self._dispatch(method, url.path, {k: v[-1] for k, v in query.items()}, body)
        except ApiError as exc:
            self._send(exc.code, exc.status())

    def _dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        fake = self.fake
        found = fake.route(path)
        if found is None:
            if path.startswith("/openapi"):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if path in ("/healthz", "/readyz", "/livez"):
                self._send(200, "ok")
                return
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if isinstance(found, dict):
            if method != "GET":
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            self._send(200, found)
            return
        rt, ns, name, sub = found.rt, found.namespace, found.name, found.subresource
        if rt.namespaced and not ns and (name is not None or method == "POST"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub is not None and not (
            (sub == "status" and rt.status_subresource)
            or (sub == "scale" and rt.plural in ("deployments", "replicasets"))
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        cluster = fake.cluster
        dry_run = query.get("dryRun") == "All"
        as_table = "as=Table" in (self.headers.get("Accept") or "")
        if method == "GET" and name is None:
            if query.get("watch") in ("true", "1"):
                self._watch(rt, ns or None, query)
                return
            items, rv = cluster.select(
                rt,
                ns or None,
                label_selector=query.get("labelSelector"),
                field_selector=query.get("fieldSelector"),
            )
            if as_table:
                self._send(200, _table(rt, items, rv))
                return
            if not rt.custom:
                for item in items:
                    item.pop("kind", None)
                    item.pop("apiVersion", None)
            self._send(
                200,
                {
                    "kind": _list_kind(rt),
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                },
            )
            return
        if method == "POST":
            if name is not None:
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            self._send(201, cluster.create(rt, ns, body, dry_run=dry_run))
            return
        if name is None:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if sub == "scale":
            self._scale(method, rt, ns, name, body, dry_run)
            return
        if method == "GET":
            obj = cluster.get(rt, ns, name)
            self._send(
                200, _table(rt, [obj], obj["metadata"]["resourceVersion"]) if as_table else obj
            )
        elif method == "PUT":
            self._send(200, cluster.replace(rt, ns, name, body, subresource=sub, dry_run=dry_run))
        elif method == "PATCH":
            content_type = self.headers.get("Content-Type") or ""
            self._send(
                200,
                cluster.patch(rt, ns, name, content_type, body, subresource=sub, dry_run=dry_run),
            )
        elif method == "DELETE":
            options = body if isinstance(body, dict) else {}
            deleted = cluster.delete(
                rt, ns, name, preconditions=options.get("preconditions"), dry_run=dry_run
            )
            details = {"name": name, "kind": rt.plural, "uid": deleted["metadata"]["uid"]}
            if rt.group:
                details["group"] = rt.group
            self._send(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                },
            )

    def _scale(
        self, method: str, rt: ResourceType, ns: str, name: str, body: Any, dry_run: bool
    ) -> None:
        cluster = self.fake.cluster

        def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
            meta = obj["metadata"]
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    k: meta[k]
                    for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                    if k in meta
                },
                "spec": {"replicas": obj["spec"].get("replicas", 1)},
                "status": {
                    "replicas": (obj.get("status") or {}).get("replicas", 0),
                    "selector": selector_text(obj["spec"].get("selector")),
                },
            }

        with cluster.lock:
            current = cluster.get(rt, ns, name)
            if method == "GET":
                self._send(200, scale_of(current))
                return
            if method == "PATCH":
                from tests.fakes.kubernetes_patch import apply_json_patch, apply_merge_patch

                kind = (self.headers.get("Content-Type") or "").split(";")[0]
                base = scale_of(current)
                new = (
                    apply_json_patch(base, body)
                    if kind == "application/json-patch+json"
                    else apply_merge_patch(base, body)
                )
            elif method == "PUT":
                new = body
            else:
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            patch = {"spec": {"replicas": int(new["spec"]["replicas"])}}
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if rv:
                patch["metadata"] = {"resourceVersion": rv}
            updated = cluster.patch(
                rt, ns, name, "application/merge-patch+json", patch, dry_run=dry_run
            )
            self._send(200, scale_of(updated))

    # -- watch --------------------------------------------------------------------------------

    def _chunk(self, payload: Any) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, rt: ResourceType, ns: str | None, query: dict[str, str]) -> None:
        cluster = self.fake.cluster
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"))

        def matches(obj: dict[str, Any]) -> bool:
            meta = obj.get("metadata") or {}
            return (
                (ns is None or meta.get("namespace", "") == ns)
                and labels(meta.get("labels") or {})
                and fields(obj)
            )

        timeout = float(query.get("timeoutSeconds") or 1800)
        initial_events = query.get("sendInitialEvents") == "true"
        with cluster.lock:
            since = query.get("resourceVersion")
            initial: list[dict[str, Any]] = []
            if not since or since == "0" or initial_events:
                initial = cluster.select(rt, ns)[0]
                start = int(cluster.resource_version)
            else:
                start = int(since)
            position = bisect.bisect_right(cluster.log, start, key=lambda e: e.rv)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        deadline = time.monotonic() + timeout
        try:
            for obj in initial:
                if matches(obj):
                    self._chunk({"type": "ADDED", "object": obj})
            if initial_events:
                self._chunk(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": rt.kind,
                            "apiVersion": rt.api_version,
                            "metadata": {
                                "resourceVersion": str(start),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    }
                )
            while not self.fake._stopping.is_set() and time.monotonic() < deadline:
                with cluster.changed:
                    if position >= len(cluster.log):
                        cluster.changed.wait(0.2)
                    events = cluster.log[position:]
                    position += len(events)
                for event in events:
                    if event.key == rt.key and matches(event.obj):
                        self._chunk({"type": event.type, "object": event.obj})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.close_connection = True


# ------------------------------------------------------------------------------ on its own


def seed_document(fake: KubernetesFake, namespace: str = "triptrip") -> None:
    """The source document's §4.2 objects: stable Deployment, VirtualService, DestinationRule."""
    fake.add_namespace(namespace)
    for obj in document_objects(namespace):
        fake.apply(obj)


def document_objects(
    namespace: str = "triptrip",
    *,
    name: str = "triptrip-api",
    image: str = "asia-northeast1-docker.pkg.dev/triptrip-production/triptrip-api:v1.2.0",
    replicas: int = 10,
    revision_history_limit: int = 10,
    istio: bool = True,
) -> Iterator[dict[str, Any]]:
    labels = {"app": name, "track": "stable"}
    yield {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": revision_history_limit,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {"prometheus.io/scrape": "true"},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "api",
                            "image": image,
                            "ports": [{"containerPort": 3000}],
                            "env": [{"name": "DEPLOYMENT_TRACK", "value": "stable"}],
                            "resources": {
                                "requests": {"cpu": "200m", "memory": "256Mi"},
                                "limits": {"cpu": "1000m", "memory": "512Mi"},
                            },
                        }
                    ]
                },
            },
        },
    }
    if not istio:
        return
    yield {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": [name],
            "http": [
                {
                    "match": [{"headers": {"x-canary": {"exact": "true"}}}],
                    "route": [{"destination": {"host": name, "subset": "canary"}}],
                },
                {
                    "route": [
                        {"destination": {"host": name, "subset": "stable"}, "weight": 100},
                        {"destination": {"host": name, "subset": "canary"}, "weight": 0},
                    ]
                },
            ],
        },
    }
    yield {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "host": name,
            "subsets": [
                {"name": "stable", "labels": {"track": "stable"}},
                {"name": "canary", "labels": {"track": "canary"}},
            ],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.kubernetes",
        description="Serve the Kubernetes API fake until interrupted, for kubectl and release-actions.",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)"
    )
    parser.add_argument(
        "--minor", type=int, default=30, help="Kubernetes minor version to report (27-33)"
    )
    parser.add_argument(
        "--kubeconfig", type=Path, default=None, help="where to write the kubeconfig"
    )
    parser.add_argument("--namespace", default="default", help="the kubeconfig context's namespace")
    parser.add_argument(
        "--seed-document",
        action="store_true",
        help="create the source document's triptrip-api Deployment, VirtualService and DestinationRule",
    )
    args = parser.parse_args(argv)
    fake = KubernetesFake(minor=args.minor, port=args.port).start()
    if args.seed_document:
        seed_document(fake)
    # A kubeconfig of its own in a temporary folder: never a stray file in the checkout.
    kubeconfig = args.kubeconfig or Path(tempfile.mkdtemp(prefix="kubernetes-fake-")) / "kubeconfig"
    fake.write_kubeconfig(kubeconfig, namespace=args.namespace)
    print(f"Kubernetes API fake at {fake.url}", flush=True)
    print(f"kubeconfig: {kubeconfig}", flush=True)
    print(
        f"try: KUBECONFIG={kubeconfig} kubectl --cache-dir=$(mktemp -d) get deploy,rs -A",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
