"""The state behind the Kubernetes fake: objects, resource versions, a watch log, and the controllers.

No HTTP here: ``Cluster`` is what the API server stores plus what the deployment
controller, the ReplicaSet controller, the kubelet and a minimal Argo Rollouts controller
would do to it. Every method takes the one lock, so the HTTP threads, the ticker thread
and a test poking at the state see one consistent cluster.

What the controllers do, and where it comes from:

- Deployments (k8s.io/kubernetes pkg/controller/deployment): the ReplicaSet whose pod
  template equals the Deployment's (ignoring ``pod-template-hash``) is the new one; a new
  template creates ``NAME-HASH`` owned by the Deployment (``controller: true``), a template
  equal to an older ReplicaSet reuses it with the next revision and records the old one
  in ``deployment.kubernetes.io/revision-history``; Deployment annotations are copied to
  the new ReplicaSet except the controller's own; old ReplicaSets beyond
  ``revisionHistoryLimit`` are deleted once the rollout is complete; status and the
  ``Available``/``Progressing`` conditions use the real reasons, including
  ``ProgressDeadlineExceeded``; a paused Deployment starts no rollout.
- Pods follow a ``PodBehaviour`` chosen by image: ready at once, after a delay, never;
  restarting; failing readiness probes (``Unhealthy`` events, as the kubelet records).
- Rollouts (argoproj/argo-rollouts rollout/canary.go): steps ``setWeight``, ``pause``
  (with or without duration) and ``analysis``; a changed template or changed steps resets
  to step 0 and clears pauses and abort; a template equal to the stable ReplicaSet skips
  all steps ("Rollback to stable"); ``status.promoteFull`` and ``status.abort`` as the
  kubectl plugin sets them; ``stableRS``, ``currentPodHash``, ``canary.weights``.
  A ``blueGreen`` Rollout is synced by tests/fakes/kubernetes_bluegreen.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.kubernetes_patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
POD_TEMPLATE_HASH = "pod-template-hash"
ARGO_HASH = "rollouts-pod-template-hash"
ARGO_REVISION = "rollout.argoproj.io/revision"
# The Deployment annotations the controller keeps to itself (deployment_util.go annotationsToSkip).
SKIP_COPY = {
    LAST_APPLIED,
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deployment.kubernetes.io/error-selector-overlapping-with",
    "deployment.kubernetes.io/selector-updated-at",
}
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand alphanums


# ------------------------------------------------------------------------ resource types


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    status_subresource: bool = True
    custom: bool = False  # a CRD: no strategic merge patch, list items carry kind/apiVersion
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """How error messages name the resource: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", "namespace", False, ("ns",)),
    ResourceType("", "v1", "pods", "Pod", "pod", short_names=("po",), categories=("all",)),
    ResourceType(
        "", "v1", "services", "Service", "service", short_names=("svc",), categories=("all",)
    ),
    ResourceType(
        "", "v1", "events", "Event", "event", short_names=("ev",), status_subresource=False
    ),
    ResourceType(
        "",
        "v1",
        "configmaps",
        "ConfigMap",
        "configmap",
        short_names=("cm",),
        status_subresource=False,
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        "deployment",
        short_names=("deploy",),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        "replicaset",
        short_names=("rs",),
        categories=("all",),
    ),
    ResourceType(
        "networking.istio.io",
        "v1beta1",
        "virtualservices",
        "VirtualService",
        "virtualservice",
        short_names=("vs",),
        custom=True,
    ),
    ResourceType(
        "networking.istio.io",
        "v1beta1",
        "destinationrules",
        "DestinationRule",
        "destinationrule",
        short_names=("dr",),
        custom=True,
    ),
    ResourceType(
        "argoproj.io",
        "v1alpha1",
        "rollouts",
        "Rollout",
        "rollout",
        short_names=("ro",),
        custom=True,
        categories=("all",),
    ),
    ResourceType(
        "argoproj.io",
        "v1alpha1",
        "analysistemplates",
        "AnalysisTemplate",
        "analysistemplate",
        short_names=("at",),
        status_subresource=False,
        custom=True,
    ),
)
BY_KEY = {rt.key: rt for rt in RESOURCES}


def resource(group: str, plural: str) -> ResourceType | None:
    return BY_KEY.get(f"{group}/{plural}")


# -------------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error the API server answers with a ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(rt: ResourceType, name: str, kind: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "kind": kind or rt.plural}
    if rt.group:
        out["group"] = rt.group
    return out


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{rt.group_resource} "{name}" not found', details=_details(rt, name)
    )


def namespace_not_found(name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'namespaces "{name}" not found',
        details={"name": name, "kind": "namespaces"},
    )


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{rt.group_resource} "{name}" already exists',
        details=_details(rt, name),
    )


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        details=_details(rt, name),
    )


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid, with one cause per (field, message) as the API server lists them."""
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    details = _details(rt, name, rt.kind)
    details["causes"] = [
        {"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes
    ]
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}', details=details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# ----------------------------------------------------------------------------- selectors


_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9._-]*)|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split_requirements(text: str) -> list[str]:
    out, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        out.append(current)
    return out


def _label_requirement(
    neg: bool, key: str, op: str | None, value: str | None, setop: str | None, values: str | None
) -> Callable[[dict[str, str]], bool]:
    if neg:
        return lambda labels: key not in labels
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == value
    if op == "!=":
        return lambda labels: labels.get(key) != value
    if setop:
        members = {v.strip() for v in (values or "").split(",") if v.strip()}
        if setop == "in":
            return lambda labels: labels.get(key) in members
        return lambda labels: labels.get(key) not in members
    return lambda labels: key in labels


def label_matcher(text: str | None) -> Callable[[dict[str, str]], bool]:
    """A label selector in the API's text form (``a=b,c!=d,e in (f,g),!h``)."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for part in _split_requirements(text or ""):
        m = _REQUIREMENT.match(part)
        if m is None:
            raise bad_request(f"unable to parse requirement: {part!r}")
        checks.append(
            _label_requirement(
                bool(m["neg"]), m["key"], m["op"], m["value"], m["setop"], m["values"]
            )
        )
    return lambda labels: all(c(labels) for c in checks)


def _field_requirement(
    path: list[str], negate: bool, value: str
) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        node: Any = obj
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        found = "" if node is None else str(node)
        return (found != value) if negate else (found == value)

    return check


def field_matcher(text: str | None) -> Callable[[dict[str, Any]], bool]:
    """A field selector: ``metadata.name=web,reason=Unhealthy`` (equality and inequality)."""
    checks: list[Callable[[dict[str, Any]], bool]] = []
    for part in text.split(",") if text else []:
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if m is None:
            raise bad_request(f"invalid field selector: {part!r}")
        checks.append(_field_requirement(m[1].split("."), m[2] == "!=", m[3]))
    return lambda obj: all(c(obj) for c in checks)


def selector_text(selector: dict[str, Any] | None) -> str:
    """A LabelSelector object as the text form, as kubectl sends it."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        else:
            parts.append(f"!{key}")
    return ",".join(parts)


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    return label_matcher(selector_text(selector))(labels) if selector else False


# -------------------------------------------------------------------------------- helpers


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize(value: Any) -> Any:
    """A value with null and empty members removed: how Go's ``Semantic.DeepEqual`` sees it."""
    if isinstance(value, dict):
        out = {k: normalize(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [], "")}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def without_label(template: dict[str, Any] | None, label: str) -> dict[str, Any]:
    out = copy.deepcopy(template or {})
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(label, None)
    return out


def template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """A pod-template-hash: FNV-32a of the template, spelled with the safe alphabet.

    The real controller hashes a spew dump of the Go struct; any stable hash of the
    template serves, since clients only read the label back, never recompute it.
    """
    data = json.dumps(normalize(template), sort_keys=True).encode() + str(collision_count).encode()
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(h))


def revision_of(obj: dict[str, Any], key: str = REVISION) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(key, "0"))
    except ValueError:
        return 0


def controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _pod_spec_defaults(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            image = str(c.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
            c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for p in c.get("ports") or []:
                p.setdefault("protocol", "TCP")


def pod_template_defaults(template: dict[str, Any]) -> dict[str, Any]:
    """The API server's defaults for a pod template (SetObjectDefaults_PodTemplateSpec, in part)."""
    out = copy.deepcopy(template or {})
    _pod_spec_defaults(out.setdefault("spec", {}))
    return out


def parse_duration(value: Any) -> float | None:
    """An Argo pause duration: ``30`` (seconds), ``"30s"``, ``"2m"``, ``"1h"``."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)?", str(value).strip())
    if m is None:
        return None
    return float(m[1]) * {"s": 1, "m": 60, "h": 3600, None: 1}[m[2]]


def percent_of(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        raw = int(value[:-1]) * total / 100
        return math.ceil(raw) if round_up else math.floor(raw)
    return int(value or 0)


# ------------------------------------------------------------------------- pod behaviour


@dataclass(frozen=True)
class PodBehaviour:
    """What the pods of an image do, for the kubelet this fake plays.

    ``ready=False`` pods never pass their readiness probe (an ``Unhealthy`` event counts
    up every ``probe_period`` seconds); ``ready_after`` delays readiness; ``restarts`` is
    the restart count a pod starts with and ``restart_every`` adds one every so many
    seconds, as a crash-looping container does.
    """

    ready: bool = True
    ready_after: float = 0.0
    restarts: int = 0
    restart_every: float | None = None
    probe_period: float = 0.25


@dataclass
class WatchEvent:
    rv: int
    key: str
    type: str
    obj: dict[str, Any]


@dataclass
class _PodClock:
    created: float
    last_restart: float
    last_probe: float


@dataclass
class _Progress:
    new_rs: str
    updated: int
    available: int
    at: float


# --------------------------------------------------------------------------------- cluster


@dataclass
class Cluster:
    """Stored objects, the watch log and the controllers; all state under ``lock``."""

    deadline_scale: float = 0.005
    argo_analysis_phase: str = "Successful"
    lock: threading.RLock = field(default_factory=threading.RLock)
    behaviours: dict[str, PodBehaviour] = field(default_factory=dict)
    stuck: set[tuple[str, str]] = field(default_factory=set)
    log: list[WatchEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)
        self._rv = 1000
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            rt.key: {} for rt in RESOURCES
        }
        self._pods: dict[str, _PodClock] = {}
        self._progress: dict[str, _Progress] = {}
        self._random = random.Random(4)
        self._cluster_ips = 0  # the next Service's ClusterIP in 10.96.0.0/12
        with self.lock:
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self._store(
                    BY_KEY["/namespaces"],
                    {
                        "metadata": {"name": ns},
                        "spec": {"finalizers": ["kubernetes"]},
                        "status": {"phase": "Active"},
                    },
                    "ADDED",
                )

    # -- storage -------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _store(self, rt: ResourceType, obj: dict[str, Any], event: str) -> dict[str, Any]:
        """Write ``obj`` as the stored object: new resourceVersion, a watch event, wake watchers."""
        meta = obj.setdefault("metadata", {})
        if event == "ADDED":
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            if rt.plural not in ("namespaces", "events", "configmaps", "services", "pods"):
                meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._next_rv()
        obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version
        key = (meta.get("namespace", ""), meta["name"])
        if event == "DELETED":
            self._objects[rt.key].pop(key, None)
        else:
            self._objects[rt.key][key] = obj
        self.log.append(WatchEvent(self._rv, rt.key, event, copy.deepcopy(obj)))
        self.changed.notify_all()
        return copy.deepcopy(obj)

    def _raw(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any] | None:
        return self._objects[rt.key].get((ns if rt.namespaced else "", name))

    def _all(
        self, plural: str, ns: str | None = None, group: str | None = None
    ) -> list[dict[str, Any]]:
        rt = next(
            r for r in RESOURCES if r.plural == plural and (group is None or r.group == group)
        )
        return [o for (n, _), o in self._objects[rt.key].items() if ns is None or n == ns]

    def find(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self._raw(rt, ns, name)
            return copy.deepcopy(obj) if obj is not None else None

    def get(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self.find(rt, ns, name)
        if obj is None:
            raise not_found(rt, name)
        return obj

    def select(
        self,
        rt: ResourceType,
        ns: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        labels = label_matcher(label_selector)
        fields = field_matcher(field_selector)
        with self.lock:
            items = [
                copy.deepcopy(o)
                for (n, _), o in sorted(self._objects[rt.key].items())
                if (ns is None or n == ns)
                and labels((o.get("metadata") or {}).get("labels") or {})
                and fields(o)
            ]
            return items, self.resource_version

    # -- client writes ---------------------------------------------------------------------

    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if rt.namespaced and self._raw(BY_KEY["/namespaces"], "", ns) is None:
            raise namespace_not_found(ns)

    def create(
        self, rt: ResourceType, ns: str, body: Any, *, dry_run: bool = False
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(self._random.choices(_SAFE, k=5))
        name = meta.get("name")
        if not name:
            raise invalid(
                rt, "", [("metadata.name", "Required value: name or generateName is required")]
            )
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", ns):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        for server_field in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "managedFields",
        ):
            meta.pop(server_field, None)
        with self.lock:
            self._check_namespace(rt, ns)
            if self._raw(rt, ns, name) is not None:
                raise already_exists(rt, name)
            if rt.status_subresource and rt.plural != "namespaces":
                obj.pop("status", None)
            self._validate(rt, obj, None)
            self._defaults(rt, obj)
            if dry_run:
                return obj
            stored = self._store(rt, obj, "ADDED")
            self.reconcile()
            return stored

    def replace(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        with self.lock:
            current = self._raw(rt, ns, name)
            if current is None:
                raise not_found(rt, name)
            return self._update(
                rt, current, copy.deepcopy(body), subresource=subresource, dry_run=dry_run
            )

    def patch(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        kind = content_type.split(";")[0].strip()
        with self.lock:
            current = self._raw(rt, ns, name)
            if current is None:
                raise not_found(rt, name)
            try:
                if kind == "application/json-patch+json":
                    new = apply_json_patch(current, patch)
                elif kind == "application/merge-patch+json":
                    new = apply_merge_patch(current, patch)
                elif kind == "application/strategic-merge-patch+json" and not rt.custom:
                    new = apply_strategic_merge_patch(current, patch)
                else:
                    accepted = "application/json-patch+json, application/merge-patch+json"
                    if not rt.custom:
                        accepted += ", application/strategic-merge-patch+json"
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        f"the body of the request was in an unknown format - accepted media types "
                        f"include: {accepted}, application/apply-patch+yaml",
                    )
            except PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from None
            if not isinstance(new, dict):
                raise bad_request("the patch produced something that is not an object")
            return self._update(rt, current, new, subresource=subresource, dry_run=dry_run)

    def _update(
        self,
        rt: ResourceType,
        current: dict[str, Any],
        new: dict[str, Any],
        *,
        subresource: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        meta = current["metadata"]
        name = meta["name"]
        wanted_rv = (new.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != meta["resourceVersion"]:
            raise conflict(rt, name)
        if subresource == "status":
            merged = copy.deepcopy(current)
            merged["status"] = new.get("status")
            if merged["status"] is None:
                merged.pop("status")
        else:
            merged = new
            nmeta = merged.setdefault("metadata", {})
            if nmeta.get("name", name) != name:
                raise bad_request(
                    f"the name of the object ({nmeta.get('name')}) does not match the name on the URL ({name})"
                )
            for server_field in (
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
            ):
                if server_field in meta:
                    nmeta[server_field] = meta[server_field]
                else:
                    nmeta.pop(server_field, None)
            if rt.status_subresource:
                if "status" in current:
                    merged["status"] = copy.deepcopy(current["status"])
                else:
                    merged.pop("status", None)
            if rt.plural == "services":
                _keep_cluster_ip(merged, current)
            self._validate(rt, merged, current)
            self._defaults(rt, merged)
        merged["metadata"]["resourceVersion"] = meta["resourceVersion"]
        merged["kind"], merged["apiVersion"] = rt.kind, rt.api_version
        if normalize(merged) == normalize(current):
            return copy.deepcopy(current)  # a no-op write keeps the resourceVersion, as etcd does
        spec_changed = normalize(merged.get("spec")) != normalize(current.get("spec"))
        if subresource != "status" and spec_changed and "generation" in merged["metadata"]:
            merged["metadata"]["generation"] += 1
        if dry_run:
            return merged
        stored = self._store(rt, merged, "MODIFIED")
        self.reconcile()
        return stored

    def delete(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        *,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        with self.lock:
            current = self._raw(rt, ns, name)
            if current is None:
                raise not_found(rt, name)
            pre = preconditions or {}
            if (
                pre.get("resourceVersion")
                and pre["resourceVersion"] != current["metadata"]["resourceVersion"]
            ):
                raise conflict(rt, name)
            if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
                raise conflict(rt, name)
            deleted = copy.deepcopy(current)
            if dry_run:
                return deleted
            self._delete(rt, current)
            self.reconcile()
            return deleted

    def _delete(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Delete and let the garbage collector take what the object owned (background)."""
        meta = obj["metadata"]
        self._store(rt, copy.deepcopy(obj), "DELETED")
        if rt.plural == "namespaces":
            for other in RESOURCES:
                if other.namespaced:
                    for o in [
                        o for (n, _), o in self._objects[other.key].items() if n == meta["name"]
                    ]:
                        self._store(other, copy.deepcopy(o), "DELETED")
            return
        uid = meta["uid"]
        for owned_type in ("replicasets", "pods"):
            ort = BY_KEY[("apps" if owned_type == "replicasets" else "") + "/" + owned_type]
            for o in list(self._all(owned_type, meta.get("namespace"))):
                refs = (o.get("metadata") or {}).get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs):
                    self._delete(ort, o)
        if rt.plural == "pods":
            self._pods.pop(uid, None)

    # -- validation and defaults ------------------------------------------------------------

    def _validate(
        self, rt: ResourceType, obj: dict[str, Any], current: dict[str, Any] | None
    ) -> None:
        name = obj["metadata"].get("name", "")
        causes: list[tuple[str, str]] = []
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) or len(name) > 253:
            causes.append(
                (
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
                    "consist of lower case alphanumeric characters, '-' or '.', and must start and "
                    "end with an alphanumeric character",
                )
            )
        if rt.plural in ("deployments", "replicasets"):
            spec = obj.get("spec") or {}
            selector = spec.get("selector")
            template = spec.get("template") or {}
            labels = (template.get("metadata") or {}).get("labels") or {}
            if not selector:
                causes.append(("spec.selector", "Required value"))
            elif not selector_matches(selector, labels):
                causes.append(
                    (
                        "spec.template.metadata.labels",
                        f"Invalid value: {json.dumps(labels)}: "
                        "`selector` does not match template `labels`",
                    )
                )
            containers = (template.get("spec") or {}).get("containers") or []
            if not containers:
                causes.append(("spec.template.spec.containers", "Required value"))
            for i, c in enumerate(containers):
                if not c.get("name"):
                    causes.append((f"spec.template.spec.containers[{i}].name", "Required value"))
                if not c.get("image"):
                    causes.append((f"spec.template.spec.containers[{i}].image", "Required value"))
            for key in ("replicas", "revisionHistoryLimit"):
                if isinstance(spec.get(key), int) and spec[key] < 0:
                    causes.append(
                        (
                            f"spec.{key}",
                            f"Invalid value: {spec[key]}: must be greater than or equal to 0",
                        )
                    )
            if current is not None and normalize(
                (current.get("spec") or {}).get("selector")
            ) != normalize(selector):
                causes.append(
                    ("spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable")
                )
        if rt.plural == "services":
            causes += _service_causes(obj, current)
        if causes:
            raise invalid(rt, name, causes)
        if rt.plural == "virtualservices":
            _istio_webhook(obj)

    def _defaults(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if not rt.custom:
            # Built-in objects pass through Go structs: a null (such as the
            # `creationTimestamp: null` kubectl sends in pod templates) comes back absent.
            _drop_nulls(obj)
        spec = obj.get("spec")
        if rt.plural == "deployments" and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
            spec["template"] = pod_template_defaults(spec.get("template") or {})
        elif rt.plural == "replicasets" and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            spec["template"] = pod_template_defaults(spec.get("template") or {})
        elif rt.plural == "pods" and isinstance(spec, dict):
            _pod_spec_defaults(spec)
        elif rt.plural == "rollouts" and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
        elif rt.plural == "services" and isinstance(spec, dict):
            self._service_defaults(obj, spec)

    def _service_defaults(self, obj: dict[str, Any], spec: dict[str, Any]) -> None:
        """SetDefaults_Service and the ClusterIP allocator, for a ClusterIP Service."""
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            if not spec.get("clusterIP"):
                self._cluster_ips += 1
                n = self._cluster_ips
                spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})

    # -- controllers -------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Run the controllers until nothing changes (each sync writes only what differs)."""
        with self.lock:
            for _ in range(6):
                before = self._rv
                self._kubelet()
                for d in list(self._all("deployments")):
                    if (
                        self._raw(
                            BY_KEY["apps/deployments"],
                            d["metadata"]["namespace"],
                            d["metadata"]["name"],
                        )
                        is d
                    ):
                        self._sync_deployment(d)
                for ro in list(self._all("rollouts")):
                    if (
                        self._raw(
                            BY_KEY["argoproj.io/rollouts"],
                            ro["metadata"]["namespace"],
                            ro["metadata"]["name"],
                        )
                        is ro
                    ):
                        self._sync_rollout(ro)
                if self._rv == before:
                    return

    def _write(self, plural: str, obj: dict[str, Any], before: Any) -> dict[str, Any]:
        """Store a controller's change to a live object, if there is one."""
        if normalize(obj) != normalize(before):
            rt = next(r for r in RESOURCES if r.plural == plural)
            self._store(rt, obj, "MODIFIED")
        return obj

    # ReplicaSets and pods --------------------------------------------------------------------

    def _owned(self, plural: str, owner: dict[str, Any]) -> list[dict[str, Any]]:
        uid = owner["metadata"]["uid"]
        items = [
            o for o in self._all(plural, owner["metadata"]["namespace"]) if controller_uid(o) == uid
        ]
        return sorted(
            items, key=lambda o: (o["metadata"]["creationTimestamp"], o["metadata"]["name"])
        )

    def _owner_ref(self, owner: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _create_rs(
        self,
        owner: dict[str, Any],
        template: dict[str, Any],
        hash_label: str,
        hash_value: str,
        annotations: dict[str, str],
    ) -> dict[str, Any]:
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels[hash_label] = hash_value
        rs_template = copy.deepcopy(template)
        rs_template.setdefault("metadata", {})["labels"] = dict(labels)
        selector = copy.deepcopy(owner["spec"].get("selector") or {"matchLabels": {}})
        selector.setdefault("matchLabels", {})[hash_label] = hash_value
        rs: dict[str, Any] = {
            "metadata": {
                "name": f"{owner['metadata']['name']}-{hash_value}",
                "namespace": owner["metadata"]["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [self._owner_ref(owner)],
            },
            "spec": {"replicas": 0, "selector": selector, "template": rs_template},
            "status": {"replicas": 0},
        }
        self._defaults(BY_KEY["apps/replicasets"], rs)
        self._store(BY_KEY["apps/replicasets"], rs, "ADDED")
        return rs

    def _pod_behaviour(self, pod: dict[str, Any]) -> PodBehaviour:
        for c in (pod.get("spec") or {}).get("containers") or []:
            if c.get("image") in self.behaviours:
                return self.behaviours[c["image"]]
        return PodBehaviour()

    def _sync_pods(self, rs: dict[str, Any]) -> None:
        """The ReplicaSet controller: as many pods as ``spec.replicas``, newest deleted first."""
        pods = [p for p in self._owned("pods", rs) if not p["metadata"].get("deletionTimestamp")]
        want = int(rs["spec"].get("replicas") or 0)
        while len(pods) > want:
            victim = pods.pop()
            self._delete(BY_KEY["/pods"], victim)
        while len(pods) < want:
            pods.append(self._create_pod(rs))
        before = copy.deepcopy(rs)
        ready = sum(1 for p in pods if _pod_ready(p))
        status: dict[str, Any] = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        rs["status"] = {k: v for k, v in status.items() if v or k == "replicas"}
        self._write("replicasets", rs, before)

    def _create_pod(self, rs: dict[str, Any]) -> dict[str, Any]:
        template = rs["spec"]["template"]
        name = f"{rs['metadata']['name']}-{''.join(self._random.choices(_SAFE, k=5))}"
        pod: dict[str, Any] = {
            "metadata": {
                "name": name,
                "namespace": rs["metadata"]["namespace"],
                "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [self._owner_ref(rs)],
            },
            "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": "fake-node"},
        }
        behaviour = self._pod_behaviour(pod)
        now = time.monotonic()
        pod["status"] = self._pod_status(pod, behaviour, ready=False, restarts=behaviour.restarts)
        self._store(BY_KEY["/pods"], pod, "ADDED")
        self._pods[pod["metadata"]["uid"]] = _PodClock(now, now, now)
        self._kubelet_pod(pod, now)
        return pod

    def _pod_status(
        self, pod: dict[str, Any], behaviour: PodBehaviour, *, ready: bool, restarts: int
    ) -> dict[str, Any]:
        started = pod["metadata"].get("creationTimestamp") or now_rfc3339()
        flag = "True" if ready else "False"
        statuses = []
        for c in pod["spec"].get("containers") or []:
            image = str(c.get("image", ""))
            digest = hashlib.sha256(image.encode()).hexdigest()
            repo = (
                image.split("@")[0].rsplit(":", 1)[0]
                if ":" in image.rsplit("/", 1)[-1]
                else image.split("@")[0]
            )
            status: dict[str, Any] = {
                "name": c.get("name"),
                "image": image,
                "imageID": f"{repo}@sha256:{digest}",
                "ready": ready,
                "restartCount": restarts,
                "started": True,
                "state": {"running": {"startedAt": started}},
                "containerID": f"containerd://{digest[:40]}",
            }
            if restarts:
                status["lastState"] = {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": started,
                        "finishedAt": started,
                    }
                }
            statuses.append(status)
        return {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": flag},
                {"type": "ContainersReady", "status": flag},
                {"type": "PodScheduled", "status": "True"},
            ],
            "hostIP": "10.0.0.1",
            "podIP": f"10.1.{self._random.randint(0, 254)}.{self._random.randint(1, 254)}",
            "startTime": started,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        }

    def _kubelet(self) -> None:
        now = time.monotonic()
        for pod in list(self._all("pods")):
            self._kubelet_pod(pod, now)

    def _kubelet_pod(self, pod: dict[str, Any], now: float) -> None:
        clock = self._pods.get(pod["metadata"]["uid"])
        if clock is None:
            return
        behaviour = self._pod_behaviour(pod)
        restarts = _restarts(pod)
        if behaviour.restart_every and now - clock.last_restart >= behaviour.restart_every:
            restarts += 1
            clock.last_restart = now
        ready = behaviour.ready and now - clock.created >= behaviour.ready_after
        if not behaviour.ready and now - clock.last_probe >= behaviour.probe_period:
            clock.last_probe = now
            self._count_event(
                pod,
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503",
                1,
            )
        if ready == _pod_ready(pod) and restarts == _restarts(pod):
            return
        before = copy.deepcopy(pod)
        status = self._pod_status(pod, behaviour, ready=ready, restarts=restarts)
        status["podIP"] = (pod.get("status") or {}).get("podIP", status["podIP"])
        pod["status"] = status
        self._write("pods", pod, before)

    def _count_event(self, pod: dict[str, Any], reason: str, message: str, n: int) -> None:
        meta = pod["metadata"]
        rt = BY_KEY["/events"]
        name = f"{meta['name']}.{reason.lower()}"
        event = self._raw(rt, meta["namespace"], name)
        stamp = now_rfc3339()
        if event is None:
            container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "")
            self._store(
                rt,
                {
                    "metadata": {"name": name, "namespace": meta["namespace"]},
                    "involvedObject": {
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "name": meta["name"],
                        "namespace": meta["namespace"],
                        "uid": meta["uid"],
                        "fieldPath": f"spec.containers{{{container}}}",
                    },
                    "reason": reason,
                    "message": message,
                    "type": "Warning",
                    "count": n,
                    "firstTimestamp": stamp,
                    "lastTimestamp": stamp,
                    "source": {"component": "kubelet", "host": "fake-node"},
                    "reportingComponent": "kubelet",
                },
                "ADDED",
            )
        else:
            event = copy.deepcopy(event)
            event["count"] = int(event.get("count") or 0) + n
            event["lastTimestamp"] = stamp
            self._store(rt, event, "MODIFIED")

    # Deployments ---------------------------------------------------------------------------------

    def _sync_deployment(self, d: dict[str, Any]) -> None:
        before_d = copy.deepcopy(d)
        spec, meta = d["spec"], d["metadata"]
        template = spec["template"]
        rss = self._owned("replicasets", d)
        new_rs = next(
            (
                rs
                for rs in rss
                if normalize(without_label(rs["spec"]["template"], POD_TEMPLATE_HASH))
                == normalize(template)
            ),
            None,
        )
        old = [rs for rs in rss if rs is not new_rs]
        max_old = max((revision_of(rs) for rs in old), default=0)
        desired = int(spec.get("replicas", 1))
        paused = bool(spec.get("paused"))
        if not paused:
            if new_rs is None:
                annotations = {
                    k: v for k, v in (meta.get("annotations") or {}).items() if k not in SKIP_COPY
                }
                surge = percent_of(
                    spec["strategy"].get("rollingUpdate", {}).get("maxSurge", 0),
                    desired,
                    round_up=True,
                )
                annotations.update(
                    {
                        REVISION: str(max_old + 1),
                        DESIRED_REPLICAS: str(desired),
                        MAX_REPLICAS: str(desired + surge),
                    }
                )
                h = template_hash(template, int((d.get("status") or {}).get("collisionCount") or 0))
                new_rs = self._create_rs(d, template, POD_TEMPLATE_HASH, h, annotations)
            else:
                self._set_new_rs_annotations(d, new_rs, max_old + 1, REVISION)
            annotations = meta.setdefault("annotations", {})
            annotations[REVISION] = new_rs["metadata"]["annotations"][REVISION]
            if normalize(d) != normalize(before_d):
                self._store(BY_KEY["apps/deployments"], d, "MODIFIED")
                before_d = copy.deepcopy(d)
            self._scale(new_rs, desired, desired)
            new_available = _available(self._owned("pods", new_rs))
            remaining = (
                0 if spec["strategy"].get("type") == "Recreate" else max(0, desired - new_available)
            )
            for rs in sorted(old, key=revision_of, reverse=True):
                keep = min(int(rs["spec"].get("replicas") or 0), remaining)
                remaining -= keep
                self._scale(rs, keep, desired)
        for rs in self._owned("replicasets", d):
            self._sync_pods(rs)
        self._deployment_status(d, new_rs, paused)
        if normalize(d) != normalize(before_d):
            self._store(BY_KEY["apps/deployments"], d, "MODIFIED")

    def _scale(self, rs: dict[str, Any], replicas: int, desired: int) -> None:
        if int(rs["spec"].get("replicas") or 0) == replicas:
            return
        before = copy.deepcopy(rs)
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1
        if replicas:
            rs["metadata"].setdefault("annotations", {})[DESIRED_REPLICAS] = str(desired)
        self._write("replicasets", rs, before)

    def _set_new_rs_annotations(
        self, owner: dict[str, Any], rs: dict[str, Any], new_revision: int, key: str
    ) -> None:
        """SetNewReplicaSetAnnotations: copy the owner's annotations, raise the revision."""
        before = copy.deepcopy(rs)
        annotations = rs["metadata"].setdefault("annotations", {})
        changed = False
        for k, v in (owner["metadata"].get("annotations") or {}).items():
            if k in SKIP_COPY or k == ARGO_REVISION or annotations.get(k) == v:
                continue
            annotations[k] = v
            changed = True
        old = annotations.get(key)
        if old is None or int(old) < new_revision:
            annotations[key] = str(new_revision)
            changed = True
            if old is not None and key == REVISION:
                history = annotations.get(REVISION_HISTORY)
                annotations[REVISION_HISTORY] = f"{history},{old}" if history else old
        if changed:
            self._write("replicasets", rs, before)

    def _deployment_status(
        self, d: dict[str, Any], new_rs: dict[str, Any] | None, paused: bool
    ) -> None:
        spec, meta = d["spec"], d["metadata"]
        desired = int(spec.get("replicas", 1))
        all_pods = [p for rs in self._owned("replicasets", d) for p in self._owned("pods", rs)]
        new_pods = self._owned("pods", new_rs) if new_rs is not None else []
        total, updated = len(all_pods), len(new_pods)
        available = _available(all_pods)
        max_unavailable = percent_of(
            spec["strategy"].get("rollingUpdate", {}).get("maxUnavailable", 0),
            desired,
            round_up=False,
        )
        status = dict(d.get("status") or {})
        status.update(
            {
                "observedGeneration": meta.get("generation", 1),
                "replicas": total,
                "updatedReplicas": updated,
                "readyReplicas": sum(1 for p in all_pods if _pod_ready(p)),
                "availableReplicas": available,
                "unavailableReplicas": max(0, desired - available),
            }
        )
        status = {k: v for k, v in status.items() if v or k in ("observedGeneration", "conditions")}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        stamp = now_rfc3339()

        def set_condition(kind: str, flag: str, reason: str, message: str) -> None:
            old = conditions.get(kind)
            if old and old["status"] == flag and old["reason"] == reason:
                return
            transition = old["lastTransitionTime"] if old and old["status"] == flag else stamp
            conditions[kind] = {
                "type": kind,
                "status": flag,
                "lastUpdateTime": stamp,
                "lastTransitionTime": transition,
                "reason": reason,
                "message": message,
            }

        if available >= desired - max_unavailable:
            set_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            set_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        rs_name = new_rs["metadata"]["name"] if new_rs else meta["name"]
        complete = updated == desired and total == desired and available == desired
        uid = meta["uid"]
        if paused:
            set_condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
            self._progress.pop(uid, None)
        elif complete:
            set_condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
            self._progress.pop(uid, None)
        else:
            now = time.monotonic()
            progress = self._progress.get(uid)
            if progress is None or (progress.new_rs, progress.updated, progress.available) != (
                rs_name,
                updated,
                available,
            ):
                self._progress[uid] = progress = _Progress(rs_name, updated, available, now)
            deadline = float(spec.get("progressDeadlineSeconds", 600)) * self.deadline_scale
            if (meta["namespace"], meta["name"]) in self.stuck or now - progress.at > deadline:
                set_condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rs_name}" has timed out progressing.',
                )
            else:
                old = conditions.get("Progressing")
                if not (
                    old
                    and old["status"] == "True"
                    and old["reason"] == "ReplicaSetUpdated"
                    and old["message"].startswith(f'ReplicaSet "{rs_name}"')
                ):
                    conditions.pop("Progressing", None)
                    if updated == 0:
                        set_condition(
                            "Progressing",
                            "True",
                            "NewReplicaSetCreated",
                            f'Created new replica set "{rs_name}"',
                        )
                    else:
                        set_condition(
                            "Progressing",
                            "True",
                            "ReplicaSetUpdated",
                            f'ReplicaSet "{rs_name}" is progressing.',
                        )
        order = ["Available", "Progressing"]
        status["conditions"] = [conditions[k] for k in order if k in conditions]
        d["status"] = status
        if complete and not paused:
            self._cleanup(d, new_rs)

    def _cleanup(
        self, owner: dict[str, Any], new_rs: dict[str, Any] | None, key: str = REVISION
    ) -> None:
        limit = owner["spec"].get("revisionHistoryLimit")
        if limit is None:
            limit = 10
        old = [rs for rs in self._owned("replicasets", owner) if rs is not new_rs]
        old.sort(key=lambda rs: revision_of(rs, key))
        for rs in old[: max(0, len(old) - int(limit))]:
            if int(rs["spec"].get("replicas") or 0) == 0 and not self._owned("pods", rs):
                self._delete(BY_KEY["apps/replicasets"], rs)

    # Argo Rollouts -----------------------------------------------------------------------------------

    def _sync_rollout(self, ro: dict[str, Any]) -> None:
        if (ro["spec"].get("strategy") or {}).get("blueGreen") is not None:
            from tests.fakes.kubernetes_bluegreen import sync_blue_green

            sync_blue_green(self, ro)
            return
        before_ro = copy.deepcopy(ro)
        spec, meta = ro["spec"], ro["metadata"]
        template = spec.get("template") or {}
        canary = (spec.get("strategy") or {}).get("canary") or {}
        steps: list[dict[str, Any]] = list(canary.get("steps") or [])
        replicas = int(spec.get("replicas", 1))
        status: dict[str, Any] = copy.deepcopy(ro.get("status") or {})
        rss = self._owned("replicasets", ro)
        wanted = normalize(pod_template_defaults(template))
        new_rs = next(
            (
                rs
                for rs in rss
                if normalize(without_label(rs["spec"]["template"], ARGO_HASH)) == wanted
            ),
            None,
        )
        old = [rs for rs in rss if rs is not new_rs]
        max_old = max((revision_of(rs, ARGO_REVISION) for rs in old), default=0)
        if new_rs is None:
            h = template_hash(template, int(status.get("collisionCount") or 0))
            new_rs = self._create_rs(ro, template, ARGO_HASH, h, {ARGO_REVISION: str(max_old + 1)})
        else:
            self._set_new_rs_annotations(ro, new_rs, max_old + 1, ARGO_REVISION)
        meta.setdefault("annotations", {})[ARGO_REVISION] = new_rs["metadata"]["annotations"][
            ARGO_REVISION
        ]
        pod_hash = new_rs["metadata"]["labels"][ARGO_HASH]
        step_hash = template_hash({"steps": steps})
        count = len(steps)
        if not status.get("stableRS"):
            status["stableRS"] = pod_hash
            status["currentStepIndex"] = count
        if status.get("currentPodHash") != pod_hash or status.get("currentStepHash") != step_hash:
            for k in ("pauseConditions", "abort", "controllerPause", "promoteFull", "abortedAt"):
                status.pop(k, None)
            status["currentStepIndex"] = count if status["stableRS"] == pod_hash else 0
        status["currentPodHash"], status["currentStepHash"] = pod_hash, step_hash
        if status.get("promoteFull"):
            status.pop("pauseConditions", None)
            status.pop("abort", None)
            status["currentStepIndex"] = count
        index = int(status.get("currentStepIndex") or 0)
        weight = 0
        message = ""
        aborted = bool(status.get("abort"))

        def new_pods_ready() -> bool:
            wanted = int(new_rs["spec"].get("replicas") or 0)
            return _available(self._owned("pods", new_rs)) >= wanted

        if aborted:
            index = count if status["stableRS"] == pod_hash else 0
            message = f"RolloutAborted: Rollout aborted update to revision {new_rs['metadata']['annotations'][ARGO_REVISION]}"
        elif not spec.get("paused"):
            while index < count:
                step = steps[index]
                if "setWeight" in step:
                    weight = int(step["setWeight"])
                    self._scale_rollout(
                        ro, new_rs, old, status["stableRS"], replicas, weight, canary
                    )
                    if not new_pods_ready():
                        break
                    index += 1
                elif "pause" in step:
                    conds = status.get("pauseConditions") or []
                    mine = next((c for c in conds if c.get("reason") == "CanaryPauseStep"), None)
                    duration = parse_duration((step.get("pause") or {}).get("duration"))
                    if mine is not None:
                        started = datetime.strptime(
                            mine["startTime"], "%Y-%m-%dT%H:%M:%SZ"
                        ).replace(tzinfo=UTC)
                        if (
                            duration is not None
                            and (datetime.now(UTC) - started).total_seconds() >= duration
                        ):
                            status["pauseConditions"] = [c for c in conds if c is not mine] or None
                            status["controllerPause"] = False
                            index += 1
                            continue
                        break
                    if status.get("controllerPause"):
                        status["controllerPause"] = False  # the pause was cleared: promoted past it
                        index += 1
                        continue
                    status["pauseConditions"] = [
                        *conds,
                        {"reason": "CanaryPauseStep", "startTime": now_rfc3339()},
                    ]
                    status["controllerPause"] = True
                    break
                elif "analysis" in step:
                    if self.argo_analysis_phase != "Successful":
                        status["abort"] = aborted = True
                        message = f"RolloutAborted: Rollout aborted update to revision {new_rs['metadata']['annotations'][ARGO_REVISION]}: metric failed"
                        break
                    index += 1
                else:
                    index += 1
            weight = _weight_at(steps, index)
        status["currentStepIndex"] = index
        if status.get("pauseConditions") is None:
            status.pop("pauseConditions", None)
        if aborted:
            weight = 0
        promoted = False
        if (
            not aborted
            and not spec.get("paused")
            and index >= count
            and status["stableRS"] != pod_hash
        ):
            # Past the last step the canary grows to full size, then becomes the stable one.
            weight = 100
            self._scale_rollout(ro, new_rs, old, status["stableRS"], replicas, 100, canary)
            if new_pods_ready():
                status["stableRS"] = pod_hash
                promoted = True
        if status["stableRS"] == pod_hash:
            weight = 0
            self._scale(new_rs, replicas, replicas)
            for rs in old:
                self._scale(rs, 0, replicas)
        else:
            self._scale_rollout(ro, new_rs, old, status["stableRS"], replicas, weight, canary)
        for rs in self._owned("replicasets", ro):
            self._sync_pods(rs)
        if status["stableRS"] == pod_hash:
            status.pop("promoteFull", None)  # done: Argo clears it once the canary is stable
        all_pods = [p for rs in self._owned("replicasets", ro) for p in self._owned("pods", rs)]
        new_pods = self._owned("pods", new_rs)
        status.update(
            {
                "replicas": len(all_pods),
                "updatedReplicas": len(new_pods),
                "readyReplicas": sum(1 for p in all_pods if _pod_ready(p)),
                "availableReplicas": _available(all_pods),
                "observedGeneration": str(meta.get("generation", 1)),
                "selector": selector_text(spec.get("selector")),
            }
        )
        if canary.get("trafficRouting"):
            status["canary"] = {
                "weights": {
                    "canary": {"weight": weight, "podTemplateHash": pod_hash},
                    "stable": {"weight": 100 - weight, "podTemplateHash": status["stableRS"]},
                }
            }
        else:
            status["canary"] = {}
        if aborted:
            status["phase"], status["message"] = "Degraded", message
            status.setdefault("abortedAt", now_rfc3339())
        elif spec.get("paused") or status.get("pauseConditions"):
            status["phase"], status["message"] = "Paused", "CanaryPauseStep"
        elif (
            status["stableRS"] == pod_hash
            and _available(new_pods) >= replicas
            and len(all_pods) == replicas
        ):
            status["phase"] = "Healthy"
            status.pop("message", None)
        else:
            status["phase"], status["message"] = "Progressing", "more replicas need to be updated"
        if promoted:
            self._cleanup(ro, new_rs, ARGO_REVISION)
        ro["status"] = status
        if normalize(ro) != normalize(before_ro):
            self._store(BY_KEY["argoproj.io/rollouts"], ro, "MODIFIED")

    def _scale_rollout(
        self,
        ro: dict[str, Any],
        new_rs: dict[str, Any],
        old: list[dict[str, Any]],
        stable_hash: str,
        replicas: int,
        weight: int,
        canary: dict[str, Any],
    ) -> None:
        canary_count = math.ceil(replicas * weight / 100)
        stable_count = replicas if canary.get("trafficRouting") else replicas - canary_count
        self._scale(new_rs, canary_count, replicas)
        for rs in old:
            keep = stable_count if rs["metadata"]["labels"].get(ARGO_HASH) == stable_hash else 0
            self._scale(rs, keep, replicas)

    # -- test controls ------------------------------------------------------------------------

    def pods_of(self, ns: str, selector: str) -> list[dict[str, Any]]:
        return self.select(BY_KEY["/pods"], ns, label_selector=selector)[0]

    def restart_pods(self, ns: str, selector: str, n: int = 1) -> None:
        """Add ``n`` restarts to every container of the pods the selector picks."""
        with self.lock:
            match = label_matcher(selector)
            for pod in self._all("pods", ns):
                if match(pod["metadata"].get("labels") or {}):
                    before = copy.deepcopy(pod)
                    for c in (pod.get("status") or {}).get("containerStatuses") or []:
                        c["restartCount"] = int(c.get("restartCount") or 0) + n
                    self._write("pods", pod, before)

    def fail_probes(self, ns: str, selector: str, n: int = 1) -> None:
        """Record ``n`` readiness-probe failures for each pod the selector picks."""
        with self.lock:
            match = label_matcher(selector)
            for pod in self._all("pods", ns):
                if match(pod["metadata"].get("labels") or {}):
                    self._count_event(
                        pod,
                        "Unhealthy",
                        "Readiness probe failed: HTTP probe failed with statuscode: 503",
                        n,
                    )

    def events_since(self, rv: int) -> Iterable[WatchEvent]:
        return [e for e in self.log if e.rv > rv]


_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _keep_cluster_ip(new: dict[str, Any], current: dict[str, Any]) -> None:
    """An update that leaves the ClusterIP out keeps the allocated one, as the API server does."""
    spec, old = new.get("spec"), current.get("spec") or {}
    if isinstance(spec, dict):
        for key in ("clusterIP", "clusterIPs"):
            if not spec.get(key) and old.get(key):
                spec[key] = copy.deepcopy(old[key])


def _service_causes(obj: dict[str, Any], current: dict[str, Any] | None) -> list[tuple[str, str]]:
    """ValidateService, in part: ports, selector values, the immutable ClusterIP."""
    spec = obj.get("spec") or {}
    causes: list[tuple[str, str]] = []
    if spec.get("type", "ClusterIP") != "ExternalName" and not spec.get("ports"):
        causes.append(("spec.ports", "Required value"))
    for key, value in (spec.get("selector") or {}).items():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                (
                    f"spec.selector[{key}]",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist '
                    "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
    old_ip = ((current or {}).get("spec") or {}).get("clusterIP")
    if old_ip and spec.get("clusterIP") not in (None, "", old_ip):
        causes.append(
            (
                "spec.clusterIPs[0]",
                f'Invalid value: ["{spec.get("clusterIP")}"]: may not change once set',
            )
        )
    return causes


def _istio_webhook(vs: dict[str, Any]) -> None:
    """What istiod's validating webhook refuses in an HTTP route's mirror (pkg/config/validation)."""
    errors: list[str] = []
    for route in (vs.get("spec") or {}).get("http") or []:
        if route.get("mirror") is not None and route.get("mirrors"):
            errors.append("HTTP route cannot contain both mirror and mirrors")
        mirror = route.get("mirror")
        if mirror is not None and not (isinstance(mirror, dict) and mirror.get("host")):
            errors.append("destination must have a host")
        for key in ("mirrorPercentage", "mirrorPercent"):
            if key not in route:
                continue
            raw = route[key]
            value = raw.get("value") if isinstance(raw, dict) else raw
            if not isinstance(value, int | float) or not 0 <= value <= 100:
                errors.append(f"percentage {value} is not in range 0..100")
    if errors:
        raise ApiError(
            400,
            "BadRequest",
            'admission webhook "validation.istio.io" denied the request: configuration is '
            "invalid: " + "; ".join(errors),
        )


def _drop_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for v in value.values():
            _drop_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _drop_nulls(v)


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _restarts(pod: dict[str, Any]) -> int:
    return sum(
        int(c.get("restartCount") or 0)
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    )


def _available(pods: list[dict[str, Any]]) -> int:
    return sum(1 for p in pods if _pod_ready(p))


def _weight_at(steps: list[dict[str, Any]], index: int) -> int:
    """The canary weight once steps before ``index`` ran: the last ``setWeight`` among them."""
    weight = 0
    for step in steps[: min(index + 1, len(steps))]:
        if "setWeight" in step:
            weight = int(step["setWeight"])
    return weight
