"""What the Kubernetes and Argo Rollouts targets share: one workload object, its ReplicaSets, pods and annotations."""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Self, TypedDict, TypeVar

from release_actions.errors import TargetError
from release_actions.targets.base import DeployTarget, HealthSample, keep_unread_marks, mark_ids
from release_actions.targets.k8s_util import (
    JSON_PATCH,
    KNOWN_GOOD,
    MERGE_PATCH,
    STATE,
    KnownGood,
    Kube,
    RetryPolicy,
    annotation_ops,
    annotations_of,
    api_client_from_env,
    container_of,
    health_of,
    image_version,
    now_rfc3339,
    owned_by,
    parse_state,
    revision,
    selector_text,
)

if TYPE_CHECKING:  # the SDK is an optional extra, imported only where it is used
    from kubernetes.client import ApiClient

T = TypeVar("T")


class WorkloadOptions(TypedDict, total=False):
    """What every workload target takes besides the name of its object; see WorkloadTarget."""

    namespace: str
    container: str | None
    rollout_timeout: float
    poll_interval: float
    retry: RetryPolicy | None
    sleep: Callable[[float], None]
    monotonic: Callable[[], float]


class WorkloadTarget(DeployTarget):
    """A target whose stable version is one object's pod template: a Deployment or a Rollout.

    The object (``kind``/``deployment`` in ``namespace``) carries the known-good record and
    the engine's saved state as annotations; every write to it is a JSON patch computed
    from a fresh read and guarded by that read's ``resourceVersion``. An adapter says how
    to read the object (``_get``) and how to patch it (``_patch_object``); the rest is here.

    ``container`` names the container whose image is the version (default: the only one);
    ``rollout_timeout`` bounds each wait for the controller, polled every ``poll_interval``
    seconds; ``retry`` paces the retries of failed API calls. ``sleep`` and ``monotonic``
    are the clock, for tests.
    """

    kind: str  # as kubectl names it in `kind/name`

    def __init__(
        self,
        api_client: ApiClient,
        *,
        name: str,
        namespace: str = "default",
        container: str | None = None,
        rollout_timeout: float = 600.0,
        poll_interval: float = 2.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = Kube(api_client, policy=retry, sleep=sleep)
        self.namespace = namespace
        self.deployment = name
        self.container = container
        self.rollout_timeout = rollout_timeout
        self.poll_interval = poll_interval
        self.sleep = sleep
        self.monotonic = monotonic
        # Ids of the saved state's marks this process has read or written (see save_state).
        self._seen_marks: set[str] = set()

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        namespace: str | None = None,
        context: str | None = None,
        **options: Any,
    ) -> Self:
        """A target with credentials from ``KUBECONFIG`` (or ``~/.kube/config``, or the pod)."""
        return cls(
            api_client_from_env(env, context=context),
            namespace=namespace or env.get("K8S_NAMESPACE") or "default",
            **options,
        )

    @property
    def where(self) -> str:
        return f"{self.kind}/{self.deployment} in namespace `{self.namespace}`"

    # -- what an adapter supplies ---------------------------------------------------------------

    @abstractmethod
    def _get(self) -> dict[str, Any]:
        """The object, read afresh; a missing one is a ``TargetError`` that says what to check."""

    @abstractmethod
    def _patch_object(self, body: Any, content_type: str) -> None:
        """One PATCH of the object, without retries."""

    # -- reading -------------------------------------------------------------------------------

    def _record(self, obj: Mapping[str, Any]) -> KnownGood | None:
        return KnownGood.parse(annotations_of(obj).get(KNOWN_GOOD), self.where)

    def _replica_sets(self, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The ReplicaSets ``obj`` owns (its selector alone may match others')."""
        selector = selector_text((obj.get("spec") or {}).get("selector"))
        items = self.kube.retry(
            f"Listing the ReplicaSets of {self.where}",
            lambda: self.kube.replica_sets(self.namespace, selector),
        )
        return [rs for rs in items if owned_by(rs, obj)]

    def _previous_replica_set(
        self,
        obj: Mapping[str, Any],
        is_current: Callable[[Mapping[str, Any]], bool],
        revision_key: str,
    ) -> dict[str, Any] | None:
        """The newest ReplicaSet of ``obj`` whose template is not the current one: what
        `rollout undo` goes back to."""
        rss = sorted(
            self._replica_sets(obj), key=lambda rs: revision(rs, revision_key), reverse=True
        )
        return next((rs for rs in rss if not is_current(rs["spec"]["template"])), None)

    def _known_good_of(self, template: dict[str, Any], **fields: Any) -> KnownGood:
        """A known-good record of ``template``, stamped now; its version is its image's tag."""
        image = str(container_of(template, self.container, self.where).get("image", ""))
        return KnownGood(
            version=image_version(image),
            image=image,
            template=template,
            recorded_at=now_rfc3339(),
            **fields,
        )

    def _pods(self, selector: str) -> list[dict[str, Any]]:
        return self.kube.retry(
            f"Listing pods `{selector}`", lambda: self.kube.pods(self.namespace, selector)
        )

    def _health(self, selectors: list[str]) -> HealthSample:
        """Restarts and failed probes of the pods that ``selectors`` match."""
        pods = [p for s in selectors for p in self._pods(s)]
        events = self.kube.retry(
            f"Listing the pod events in namespace `{self.namespace}`",
            lambda: self.kube.events(self.namespace, "involvedObject.kind=Pod,reason=Unhealthy"),
        )
        return health_of(pods, events, " | ".join(selectors))

    def _poll(
        self,
        check: Callable[[], tuple[bool, T]],
        timed_out: Callable[[T], TargetError],
        *,
        timeout: float | None = None,
        interval: float | None = None,
    ) -> T:
        """Call ``check`` until it says done, and return what it saw then.

        After ``timeout`` (default: the rollout timeout) ``timed_out`` turns the last thing
        seen into the error; ``check`` raises itself when waiting longer cannot help.
        """
        deadline = self.monotonic() + (self.rollout_timeout if timeout is None else timeout)
        while True:
            done, seen = check()
            if done:
                return seen
            if self.monotonic() >= deadline:
                raise timed_out(seen)
            self.sleep(self.poll_interval if interval is None else interval)

    # -- writing -------------------------------------------------------------------------------

    def _patch_guarded(
        self, what: str, change: Callable[[dict[str, Any]], list[dict[str, Any]]]
    ) -> bool:
        """Apply ``change`` (JSON patch operations computed from a fresh read) under a
        ``resourceVersion`` precondition; a 409 reads again and recomputes. True if written."""

        def once() -> bool:
            obj = self._get()
            ops = change(obj)
            if not ops:
                return False
            guard = {
                "op": "replace",
                "path": "/metadata/resourceVersion",
                "value": obj["metadata"]["resourceVersion"],
            }
            self._patch_object([guard, *ops], JSON_PATCH)
            return True

        return self.kube.retry(what, once)

    # -- DeployTarget ----------------------------------------------------------------------------

    def _read_state(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The saved state on ``obj``; its marks count as read by this process from now on."""
        state = parse_state(annotations_of(obj).get(STATE))
        self._seen_marks |= mark_ids(state)
        return state

    def save_state(self, state: Mapping[str, Any] | None) -> None:
        """Write the state under the read's ``resourceVersion``, keeping marks not yet read.

        Another process (`abort`, `promote`, `rollback`) may write a mark between this
        process's read and this save; a plain write would drop it, and the operator's abort
        would be ignored. The write is computed from a fresh read, puts back each mark this
        process has not read, and a 409 reads again.
        """
        if state is None:
            self.kube.retry(
                f"Saving the rollout state on {self.where}",
                lambda: self._patch_object(
                    {"metadata": {"annotations": {STATE: None}}}, MERGE_PATCH
                ),
            )
            return
        wanted = dict(state)

        def change(obj: dict[str, Any]) -> list[dict[str, Any]]:
            stored = parse_state(annotations_of(obj).get(STATE))
            merged = keep_unread_marks(stored, wanted, self._seen_marks)
            text = json.dumps(merged, sort_keys=True, separators=(",", ":"))
            return annotation_ops(obj, {STATE: text})

        self._patch_guarded(f"Saving the rollout state on {self.where}", change)
        self._seen_marks |= mark_ids(wanted)


def check_weight(percent: int) -> None:
    if not 0 <= percent <= 100:
        raise TargetError(f"Canary weight must be 0 to 100, got {percent}.")


def no_canary(where: str) -> TargetError:
    return TargetError(
        f"No canary is in progress on {where}, so there is no weight to set.",
        hint="Call begin(version) first.",
    )


def no_canary_health() -> HealthSample:
    """The canary track's health while there is no canary: not ready, nothing counted."""
    return HealthSample(
        ready=False, restarts=0, health_check_failures=0, details={"pods": 0, "note": "no canary"}
    )
