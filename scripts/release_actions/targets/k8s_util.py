"""Plumbing shared by the Kubernetes and Argo Rollouts targets: raw JSON calls, retries, records."""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from release_actions.errors import TargetError, require
from release_actions.targets.base import HealthSample

if TYPE_CHECKING:  # the SDK is an optional extra, imported only where it is used
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

T = TypeVar("T")

ANNOTATION_PREFIX = "release-actions.dev/"
KNOWN_GOOD = ANNOTATION_PREFIX + "known-good"
STATE = ANNOTATION_PREFIX + "state"
WEIGHT = ANNOTATION_PREFIX + "weight"
CANARY_OF = ANNOTATION_PREFIX + "canary-of"
VERSION = ANNOTATION_PREFIX + "version"
STRATEGY = ANNOTATION_PREFIX + "strategy"
SELECTOR = ANNOTATION_PREFIX + "selector"

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"

# Kubernetes answers these when trying again later can succeed; a 409 Conflict means
# "read again and redo", which every write here does on its retry.
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})

RBAC_HINT = (
    "Give the workflow's identity a Role in the namespace with `get`, `list`, `watch`, "
    "`create`, `update`, `patch` and `delete` on `deployments` and `replicasets` (group "
    "`apps`), `get`/`list` on `pods` and `events`, `get`/`update`/`patch` on "
    "`virtualservices` and `destinationrules` (`networking.istio.io`) and on `rollouts` "
    "and `rollouts/status` (`argoproj.io`), `get`/`patch` on `services` for blue-green "
    "without Istio, as the project's docs show."
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` tries per operation, exponential backoff with jitter."""

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0
    request_timeout: float = 30.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2.0**attempt)
        return float(base * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True)
class ApiFailure:
    """What an ApiException or a transport error says, read once."""

    status: int | None
    reason: str
    message: str

    @property
    def retryable(self) -> bool:
        if self.status is None:
            return True  # timeouts and connection errors
        if self.status == 409:
            return self.reason != "AlreadyExists"
        return self.status in RETRY_STATUSES

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"HTTP {self.status} {self.reason}: {self.message}"


def failure_of(exc: BaseException) -> ApiFailure | None:
    """The failure an exception from the client stands for; None if it is not one."""
    k8s = require("kubernetes", "kubernetes")
    if isinstance(exc, k8s.client.exceptions.ApiException):  # type: ignore[attr-defined]
        reason, message = str(exc.reason or ""), str(exc.body or exc.reason or "")
        try:
            body = json.loads(exc.body or "")
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict):
            reason = str(body.get("reason") or reason)
            message = str(body.get("message") or message)
        return ApiFailure(int(exc.status) if exc.status else None, reason, message)
    import urllib3

    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return ApiFailure(None, type(exc).__name__, f"{type(exc).__name__}: {exc}")
    return None


def target_error(what: str, failure: ApiFailure, *, hint: str | None = None) -> TargetError:
    if failure.status in (401, 403):
        hint = hint or (
            RBAC_HINT
            if failure.status == 403
            else "The cluster refused the credentials: refresh them (for GKE, "
            "`google-github-actions/get-gke-credentials` after `auth` with workload identity)."
        )
    return TargetError(f"{what} failed: {str(failure).rstrip('.')}.", hint=hint)


class Kube:
    """The official client's typed APIs, asked for raw JSON so that objects round-trip unchanged.

    Every call goes through ``retry``: 5xx, 429, timeouts, dropped connections and 409
    Conflict are tried again after a backoff, and each operation passed to ``retry``
    reads the object afresh, so a retried write is computed from the current state and a
    write that did land before its answer was lost is found already done.
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        client = require("kubernetes", "kubernetes").client  # type: ignore[attr-defined]
        self.api_client = api_client
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.policy = policy or RetryPolicy()
        self.sleep = sleep

    # -- the retry loop ---------------------------------------------------------------------

    def retry(self, what: str, operation: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return operation()
            except Exception as exc:
                failure = failure_of(exc)
                if failure is None:
                    raise
                if not failure.retryable or attempt + 1 >= self.policy.attempts:
                    hint = None
                    if failure.retryable:
                        hint = (
                            f"Tried {self.policy.attempts} times. The API server is overloaded "
                            "or unreachable; rerun the step, which resumes where this one stopped."
                        )
                    raise target_error(what, failure, hint=hint) from exc
                log.info(
                    "%s: %s; retrying (%d/%d)", what, failure, attempt + 1, self.policy.attempts
                )
                self.sleep(self.policy.delay(attempt))
                attempt += 1

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One request; the parsed JSON body (None when empty). Raises the client's errors."""
        response = fn(
            *args, _preload_content=False, _request_timeout=self.policy.request_timeout, **kwargs
        )
        data = response.data
        return json.loads(data) if data else None

    def find(self, fn: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        """A GET that answers None for 404 instead of raising."""
        try:
            return self.call(fn, *args)  # type: ignore[no-any-return]
        except Exception as exc:
            failure = failure_of(exc)
            if failure is not None and failure.status == 404:
                return None
            raise

    # -- Deployments, ReplicaSets, pods, events --------------------------------------------------

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.find(self.apps.read_namespaced_deployment, name, namespace)

    def patch_deployment(
        self, namespace: str, name: str, body: Any, content_type: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            self.apps.patch_namespaced_deployment, name, namespace, body, _content_type=content_type
        )
        return result

    def create_deployment(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call(self.apps.create_namespaced_deployment, namespace, body)  # type: ignore[no-any-return]

    def delete_deployment(self, namespace: str, name: str, uid: str | None = None) -> None:
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.call(self.apps.delete_namespaced_deployment, name, namespace, body=body)
        except Exception as exc:
            failure = failure_of(exc)
            if failure is None or failure.status != 404:
                raise

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.find(self.core.read_namespaced_service, name, namespace)

    def patch_service(
        self, namespace: str, name: str, body: Any, content_type: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            self.core.patch_namespaced_service, name, namespace, body, _content_type=content_type
        )
        return result

    def replica_sets(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        body = self.call(self.apps.list_namespaced_replica_set, namespace, label_selector=selector)
        return list((body or {}).get("items") or [])

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        body = self.call(self.core.list_namespaced_pod, namespace, label_selector=selector)
        return list((body or {}).get("items") or [])

    def events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        body = self.call(self.core.list_namespaced_event, namespace, field_selector=field_selector)
        return list((body or {}).get("items") or [])

    # -- custom objects -----------------------------------------------------------------------

    def custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any] | None:
        return self.find(
            self.custom.get_namespaced_custom_object, group, version, namespace, plural, name
        )

    def patch_custom(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: Any,
        *,
        content_type: str = MERGE_PATCH,
        status: bool = False,
    ) -> dict[str, Any]:
        fn = (
            self.custom.patch_namespaced_custom_object_status
            if status
            else self.custom.patch_namespaced_custom_object
        )
        result: dict[str, Any] = self.call(
            fn, group, version, namespace, plural, name, body, _content_type=content_type
        )
        return result


def api_client_from_env(env: Mapping[str, str], *, context: str | None = None) -> ApiClient:
    """An ApiClient from ``KUBECONFIG`` (one path or several), else the pod's service account."""
    k8s = require("kubernetes", "kubernetes")
    configuration = k8s.client.Configuration()  # type: ignore[attr-defined]
    kubeconfig = env.get("KUBECONFIG")
    default = Path(env.get("HOME") or "~").expanduser() / ".kube" / "config"
    inline = env.get("KUBE_CONFIG", "").strip()
    try:
        if inline and not kubeconfig:
            # A kubeconfig kept in a secret, as text or base64; it never touches the disk.
            k8s.config.load_kube_config_from_dict(  # type: ignore[attr-defined]
                _kubeconfig_dict(inline),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif kubeconfig or default.exists():
            k8s.config.load_kube_config(  # type: ignore[attr-defined]
                config_file=kubeconfig or str(default),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif env.get("KUBERNETES_SERVICE_HOST"):
            k8s.config.load_incluster_config(client_configuration=configuration)  # type: ignore[attr-defined]
        else:
            raise TargetError(
                "No Kubernetes credentials: `KUBECONFIG` is not set, there is no "
                f"{default}, and this is not running in a pod.",
                hint="Get cluster credentials in an earlier step, for GKE "
                "`google-github-actions/auth` (workload identity, `permissions: id-token: "
                "write`) then `google-github-actions/get-gke-credentials`.",
            )
    except k8s.config.ConfigException as exc:  # type: ignore[attr-defined]
        raise TargetError(
            f"Cannot load the Kubernetes configuration: {exc}.",
            hint="Check `KUBECONFIG` and the `context` input.",
        ) from exc
    return k8s.client.ApiClient(configuration)  # type: ignore[attr-defined,no-any-return]


def _kubeconfig_dict(text: str) -> dict[str, Any]:
    """`KUBE_CONFIG` as a mapping, whether the secret holds YAML or base64 of it."""
    import base64
    import binascii
    import contextlib

    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    candidates = [text]
    with contextlib.suppress(binascii.Error, UnicodeDecodeError):
        candidates.append(base64.b64decode(text, validate=True).decode("utf-8"))
    for candidate in candidates:
        try:
            data = YAML(typ="safe").load(candidate)
        except YAMLError:
            continue
        if isinstance(data, dict) and "clusters" in data:
            return data
    raise TargetError(
        "`KUBE_CONFIG` holds neither a kubeconfig nor base64 of one.",
        hint="Store the kubeconfig file's text, or `base64 -w0` of it, in the secret.",
    )


# ------------------------------------------------------------------------------ templates


def normalize(value: Any) -> Any:
    """A value without null or empty members: how Go's semantic equality sees API objects."""
    if isinstance(value, dict):
        out = {k: normalize(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [], "")}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def strip_label(template: Mapping[str, Any] | None, label: str) -> dict[str, Any]:
    """A deep copy of a pod template without one label (the controller's hash label)."""
    out: dict[str, Any] = json.loads(json.dumps(template or {}))
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(label, None)
    for key in ("creationTimestamp",):
        (out.get("metadata") or {}).pop(key, None)
    return out


def same_template(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, label: str = "pod-template-hash"
) -> bool:
    return bool(normalize(strip_label(a, label)) == normalize(strip_label(b, label)))


def derivative(sparse: Any, full: Any) -> bool:
    """Whether every field set in ``sparse`` has the same value in ``full`` (defaults ignored).

    Argo's ``undo`` compares a Rollout's template, as written, with a ReplicaSet's, which
    the API server has filled with defaults; this is its ``Semantic.DeepDerivative``.
    """
    if isinstance(sparse, dict):
        if not isinstance(full, dict):
            return not normalize(sparse)
        return all(
            derivative(v, full.get(k))
            for k, v in sparse.items()
            if normalize(v) not in (None, {}, [], "")
        )
    if isinstance(sparse, list):
        return (
            isinstance(full, list)
            and len(sparse) == len(full)
            and all(derivative(a, b) for a, b in zip(sparse, full, strict=True))
        )
    if sparse in (None, ""):
        return True
    return bool(sparse == full)


def selector_text(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector as the text a LIST takes: ``app=api,track=stable,tier in (a,b)``."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), ",".join(expr.get("values") or [])
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": f"{key}",
            }.get(str(op), f"!{key}")
        )
    return ",".join(parts)


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = (owner.get("metadata") or {}).get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def annotations_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def revision(obj: Mapping[str, Any], key: str = "deployment.kubernetes.io/revision") -> int:
    try:
        return int(annotations_of(obj).get(key, "0"))
    except ValueError:
        return 0


# ---------------------------------------------------------------------------------- images


def image_version(image: str) -> str:
    """What a release calls the version an image runs: its tag, else its digest, else itself."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return digest or image


def image_repository(image: str) -> str:
    name = image.partition("@")[0]
    head, _, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def image_for(version: str, current_image: str) -> str:
    """The image of ``version``: a full reference as given, a bare tag on the current repository."""
    if "/" in version or ":" in version or "@" in version:
        return version
    return f"{image_repository(current_image)}:{version}"


def container_of(template: Mapping[str, Any], name: str | None, where: str) -> dict[str, Any]:
    containers = list(((template.get("spec") or {}).get("containers")) or [])
    if not containers:
        raise TargetError(f"{where} has no containers.")
    if name is None:
        return dict(containers[0])
    for c in containers:
        if c.get("name") == name:
            return dict(c)
    raise TargetError(
        f"{where} has no container `{name}`.",
        hint="Set `container` to one of: " + ", ".join(f"`{c.get('name')}`" for c in containers),
    )


def with_image(
    template: Mapping[str, Any], container: str | None, image: str, where: str
) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(template))
    chosen = container_of(out, container, where)["name"]
    for c in out["spec"]["containers"]:
        if c.get("name") == chosen:
            c["image"] = image
    return out


def pod_digests(pods: Iterable[Mapping[str, Any]], container: str | None) -> list[str]:
    """The image digests the kubelet reports for the chosen container (``imageID``)."""
    out: set[str] = set()
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        for status in statuses:
            if container is not None and status.get("name") != container:
                continue
            image_id = str(status.get("imageID") or "")
            if "@" in image_id:
                out.add(image_id.rsplit("@", 1)[1])
            if container is None:
                break
    return sorted(out)


# ------------------------------------------------------------------------- known-good record


@dataclass(frozen=True)
class KnownGood:
    """What ``begin`` recorded, so that a rollback restores exactly it and nothing else.

    ``template`` is the whole pod template, so the record works even when Kubernetes kept no
    old ReplicaSet (``revisionHistoryLimit: 0``); ``rollout`` is the version whose rollout
    the record belongs to, which tells a record still in force from one a later change by
    hand has overtaken.
    """

    version: str
    image: str
    template: dict[str, Any]
    rollout: str | None = None
    revision: int | None = None
    pod_template_hash: str | None = None
    digests: list[str] = field(default_factory=list)
    replicas: int | None = None
    steps: list[dict[str, Any]] | None = None
    recorded_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str | None, where: str) -> KnownGood | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (TypeError, ValueError) as exc:
            raise TargetError(
                f"The annotation `{KNOWN_GOOD}` on {where} is not a known-good record: {exc}.",
                hint=f"Remove it (`kubectl annotate ... {KNOWN_GOOD}-`); the next rollback then "
                "goes to the previous revision, as `kubectl rollout undo` does.",
            ) from exc


def parse_state(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        log.warning("ignoring an unreadable `%s` annotation", STATE)
        return None
    return value if isinstance(value, dict) else None


def annotation_ops(
    obj: Mapping[str, Any], values: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """JSON patch operations that set (or, for None, remove) annotations."""
    current = annotations_of(obj)
    if not ((obj.get("metadata") or {}).get("annotations")):
        wanted = {k: v for k, v in values.items() if v is not None}
        return [{"op": "add", "path": "/metadata/annotations", "value": wanted}] if wanted else []
    ops: list[dict[str, Any]] = []
    for key, value in values.items():
        path = json_pointer("metadata", "annotations", key)
        if value is None:
            if key in current:
                ops.append({"op": "remove", "path": path})
        elif current.get(key) != value:
            ops.append({"op": "add", "path": path, "value": value})
    return ops


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


# ---------------------------------------------------------------------------------- health


def pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def health_of(
    pods: list[dict[str, Any]], events: Iterable[Mapping[str, Any]], selector: str
) -> HealthSample:
    """Restarts (containers' ``restartCount``) and readiness failures (kubelet ``Unhealthy`` events).

    Both are cumulative over the pods that exist now, as the triggers want; a pod replaced
    takes its counts with it, which the triggers read as a reset.
    """
    names = {p["metadata"]["name"] for p in pods}
    restarts = sum(
        int(c.get("restartCount") or 0)
        for p in pods
        for c in (p.get("status") or {}).get("containerStatuses") or []
    )
    failures = 0
    for event in events:
        if (event.get("involvedObject") or {}).get("name") in names:
            series = event.get("series") or {}
            failures += int(series.get("count") or event.get("count") or 1)
    not_ready = sorted(p["metadata"]["name"] for p in pods if not pod_ready(p))
    return HealthSample(
        ready=bool(pods) and not not_ready,
        restarts=restarts,
        health_check_failures=failures,
        details={"selector": selector, "pods": len(pods), "not_ready": not_ready[:10]},
    )


def canary_replicas(percent: int, total: int) -> int:
    """Canary pods for ``percent`` of ``total``: at least one while the weight is above 0."""
    if percent <= 0:
        return 0
    return min(total, max(1, math.ceil(total * percent / 100)))
