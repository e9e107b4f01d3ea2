"""Kubernetes as a deploy target: stable and canary Deployments, weights through Istio or replica counts."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

from release_actions.errors import TargetError
from release_actions.metrics.base import Track
from release_actions.targets.base import HealthSample, Preview, RollbackResult, TargetStatus
from release_actions.targets.k8s_util import (
    CANARY_OF,
    JSON_PATCH,
    KNOWN_GOOD,
    MERGE_PATCH,
    SELECTOR,
    STATE,
    STRATEGY,
    VERSION,
    WEIGHT,
    KnownGood,
    Kube,
    RetryPolicy,
    annotation_ops,
    annotations_of,
    canary_replicas,
    container_of,
    failure_of,
    image_for,
    image_version,
    now_rfc3339,
    owned_by,
    pod_digests,
    revision,
    same_template,
    selector_text,
    strip_label,
    with_image,
)
from release_actions.targets.workload import (
    WorkloadOptions,
    WorkloadTarget,
    check_weight,
    no_canary,
    no_canary_health,
)

if TYPE_CHECKING:  # the SDK is an optional extra, imported only where it is used
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

ISTIO = ("networking.istio.io", "v1beta1")
POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
HEADER_ROUTE = "release-actions-canary-header"
# What `kubectl rollout undo` keeps from the Deployment rather than the ReplicaSet
# (k8s.io/kubectl/pkg/polymorphichelpers/rollback.go annotationsToSkip).
UNDO_KEEP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


def rollout_state(deployment: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether a Deployment finished rolling out, as `kubectl rollout status` decides it.

    Done when the controller saw the latest generation, every replica is updated,
    no old replica is left and the updated ones are available. ``ProgressDeadlineExceeded``
    raises: the controller has given up, so waiting longer would only hide the failure.
    """
    meta, spec, status = (deployment.get(k) or {} for k in ("metadata", "spec", "status"))
    name = meta.get("name")
    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return False, "waiting for the deployment spec update to be observed"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            raise TargetError(
                f'Deployment "{name}" exceeded its progress deadline: {cond.get("message", "")}',
                hint=f"Its new pods do not become available; see `kubectl describe deployment/{name}` "
                "and the pods' events (image pull, crash loop, failing readiness probe).",
            )
    want = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < want:
        return False, f"{updated} out of {want} new replicas have been updated"
    if total > updated:
        return False, f"{total - updated} old replicas are pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas are available"
    return True, f'deployment "{name}" successfully rolled out'


def _family(strategy: str) -> str:
    """Strategies that leave the same things behind: a rolling release is a one-step canary."""
    return "canary" if strategy in ("canary", "rolling") else strategy


@dataclass(frozen=True)
class UndoResult:
    """What `rollout_undo` did, in kubectl's words."""

    changed: bool
    from_revision: int | None
    to_revision: int
    message: str
    forced: str | None = None
    """Why the version is not known-good, when the undo went there on purpose."""


def _unsafe_versions(status: TargetStatus) -> Callable[[str], str | None]:
    """Why a version must not be rolled back to, or None: the rule of `--to-revision`.

    A version that a recorded rollback left is bad by record; one newer (by SemVer) than the
    known-good one is what the known-good replaced. An older version may be a deliberate
    step further back, and a tag that is not SemVer cannot be ordered, so those pass.
    """
    from release_actions.core.versions import Version
    from release_actions.errors import InvalidVersionError

    state = status.state or {}
    left = set()
    if state.get("decision") in ("rolled_back", "failed") and state.get("version"):
        left.add(str(state["version"]))
    record = state.get("record")
    if isinstance(record, Mapping) and record.get("from_version"):
        left.add(str(record["from_version"]))

    def parse(text: str) -> Version | None:
        try:
            return Version.parse(text.removeprefix("v").removeprefix("V"))
        except InvalidVersionError:
            return None

    known = status.known_good
    known_v = parse(known) if known else None

    def why(version: str) -> str | None:
        if version in left:
            return f"{version} is the version a recorded rollback left"
        mine = parse(version)
        if known_v is not None and mine is not None and known_v < mine:
            return f"{version} is newer than the known-good {known}"
        return None

    return why


class KubernetesTarget(WorkloadTarget):
    """The source document's §4.2 canary: ``NAME`` (stable) and ``NAME-canary`` Deployments.

    Traffic moves through an Istio VirtualService when one is named (the weighted route
    of §4.2 and its ``x-canary: true`` header route), otherwise through replica counts
    (canary pods ≈ weight × total, at least one while the weight is above 0). ``begin``
    records the stable Deployment's pod template, revision and image digest as
    ``release-actions.dev/known-good``; ``rollback`` restores exactly that template, in one
    write guarded by ``resourceVersion``, so a second run, a concurrent run or a retry finds
    it done. The engine's saved progress lives next to it as ``release-actions.dev/state``.

    ``kubectl rollout undo`` copies a ReplicaSet's annotations back onto the Deployment;
    the Deployment controller copies this target's annotations onto each new ReplicaSet,
    so an undo by hand can bring back an older record. The record names the rollout it
    belongs to, and one that a later change has overtaken is not used.

    Blue-green and shadow use the same two Deployments. The canary Deployment says which
    strategy created it (``release-actions.dev/strategy``), so a later run, even one that
    was not told the strategy, rolls it back, promotes it or reports it as what it is.

    - Blue-green with Istio: the canary starts at the full size behind weight 0 and the
      header route (the preview); ``switch`` sets 0/100 in one update of the
      VirtualService, and the stable Deployment keeps its size until ``promote``.
    - Blue-green without Istio: the Service (``service``, default the Deployment's name)
      is the switch. Its selector cannot say ``track!=canary``, so it must name the stable
      track: ``begin`` adds the stable pods' own ``track_label`` value to it (the old
      selector is kept in ``release-actions.dev/selector`` and put back when the release
      ends, since a replica canary needs the Service to select both tracks). The stable pod
      template must therefore carry that label; the target refuses rather than adds it,
      because relabelling would restart every stable pod, and a rollback to the recorded
      template would drop the label again and leave the Service selecting nothing.
      ``preview_service`` names an optional Service of the user's that selects only the
      canary track, for smoke checks from inside the cluster.
    - Shadow (Istio only): the weighted route gets ``mirror`` (the stable destination with
      the canary subset) and ``mirrorPercentage``; users keep 100 % on stable. The shadow's
      pods get ``shadow_env`` so the application can skip its side effects.
    """

    name = "kubernetes"
    kind = "deployment"
    strategies: ClassVar[frozenset[str]] = frozenset({"canary", "rolling", "blue-green", "shadow"})

    def __init__(
        self,
        api_client: ApiClient,
        *,
        deployment: str,
        istio_virtual_service: str | None = None,
        istio_destination_rule: str | None = None,
        istio_api_version: str = ISTIO[1],
        stable_subset: str = "stable",
        canary_subset: str = "canary",
        canary_header: tuple[str, str] | None = ("x-canary", "true"),
        replicas_total: int | None = None,
        canary_suffix: str = "-canary",
        track_label: str = "track",
        service: str | None = None,
        preview_service: str | None = None,
        shadow_env: tuple[str, str] | None = None,
        **options: Unpack[WorkloadOptions],
    ) -> None:
        super().__init__(api_client, name=deployment, **options)
        self.canary_name = deployment + canary_suffix
        self.virtual_service = istio_virtual_service
        self.destination_rule = istio_destination_rule or istio_virtual_service
        self.istio_version = istio_api_version
        self.stable_subset = stable_subset
        self.canary_subset = canary_subset
        self.canary_header = canary_header
        self.replicas_total = replicas_total
        self.track_label = track_label
        # Not `service`: records name a target by its `service` attribute when it has one.
        self.service_name = service or deployment
        self.preview_service = preview_service
        self.shadow_env = shadow_env

    # -- reading -------------------------------------------------------------------------------

    def _get(self) -> dict[str, Any]:
        """The stable Deployment."""
        d = self.kube.retry(
            f"Reading {self.where}", lambda: self.kube.deployment(self.namespace, self.deployment)
        )
        if d is None:
            raise TargetError(
                f"The stable Deployment `{self.deployment}` does not exist in namespace `{self.namespace}`.",
                hint="Check the `deployment` and `namespace` inputs; the first release of a "
                "service is a plain `kubectl apply`, not a canary.",
            )
        return d

    def _canary(self) -> dict[str, Any] | None:
        return self.kube.retry(
            f"Reading deployment/{self.canary_name}",
            lambda: self.kube.deployment(self.namespace, self.canary_name),
        )

    def _template(self, d: Mapping[str, Any]) -> dict[str, Any]:
        return dict((d.get("spec") or {}).get("template") or {})

    def _image(self, d: Mapping[str, Any]) -> str:
        name = (d.get("metadata") or {}).get("name", "")
        return str(
            container_of(self._template(d), self.container, f"deployment/{name}").get("image", "")
        )

    def _version(self, d: Mapping[str, Any] | None) -> str | None:
        return image_version(self._image(d)) if d is not None else None

    def _total(self, stable: Mapping[str, Any], record: KnownGood | None) -> int:
        if self.replicas_total is not None:
            return self.replicas_total
        if record is not None and record.replicas is not None:
            return record.replicas
        return int((stable.get("spec") or {}).get("replicas", 1))

    def _stable_selector(self, stable: Mapping[str, Any]) -> str:
        spec_selector = (stable.get("spec") or {}).get("selector") or {}
        text = selector_text(spec_selector)
        if self.track_label not in (spec_selector.get("matchLabels") or {}):
            # A stable selector that does not pin the track also matches canary pods.
            text += f",{self.track_label}!={self.canary_subset}"
        return text

    # -- the VirtualService ----------------------------------------------------------------------

    def _vs(self) -> dict[str, Any] | None:
        if self.virtual_service is None:
            return None
        name = self.virtual_service
        vs = self.kube.retry(
            f"Reading virtualservice/{name}",
            lambda: self.kube.custom_object(
                ISTIO[0], self.istio_version, self.namespace, "virtualservices", name
            ),
        )
        if vs is None:
            raise TargetError(
                f"The Istio VirtualService `{name}` does not exist in namespace `{self.namespace}`.",
                hint="Create it as in the source document §4.2 (a weighted route to subsets "
                "`stable` and `canary`), or leave `istio-virtual-service` empty to split "
                "traffic by replica counts.",
            )
        return vs

    def _weighted_routes(self, http: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for route in http:
            subsets = [
                ((d.get("destination") or {}).get("subset")) for d in route.get("route") or []
            ]
            if self.stable_subset in subsets and all(
                s in (self.stable_subset, self.canary_subset) for s in subsets
            ):
                out.append(route)
        return out

    def _vs_weight(self, vs: Mapping[str, Any]) -> int:
        for route in self._weighted_routes(list((vs.get("spec") or {}).get("http") or [])):
            for d in route.get("route") or []:
                if (d.get("destination") or {}).get("subset") == self.canary_subset:
                    return int(d.get("weight") or 0)
        return 0

    def _vs_mirror(self, vs: Mapping[str, Any]) -> int:
        """The share of requests the weighted route copies to the canary subset (a shadow)."""
        for route in self._weighted_routes(list((vs.get("spec") or {}).get("http") or [])):
            if (route.get("mirror") or {}).get("subset") != self.canary_subset:
                continue
            if "mirrorPercentage" in route:
                return round(float((route["mirrorPercentage"] or {}).get("value") or 0))
            if "mirrorPercent" in route:  # Istio's deprecated integer form
                return int(route["mirrorPercent"] or 0)
            return 100  # Istio: without a percentage, everything is mirrored
        return 0

    def _routes_for(
        self, vs: Mapping[str, Any], percent: int, *, header: bool, mirror: int | None = None
    ) -> list[dict[str, Any]]:
        """The VirtualService's http routes with the weights set; other routes kept as they are.

        ``mirror`` above 0 copies that share of the weighted route's requests to the canary
        subset; 0 removes this target's mirror (one to another destination is the user's
        and stays); None leaves the mirror as it is.
        """
        http: list[dict[str, Any]] = copy.deepcopy(list((vs.get("spec") or {}).get("http") or []))
        weighted = self._weighted_routes(http)
        if not weighted:
            raise TargetError(
                f"The VirtualService `{self.virtual_service}` has no route to subset "
                f"`{self.stable_subset}` whose destinations are only `{self.stable_subset}` and "
                f"`{self.canary_subset}`.",
                hint="Add the weighted route of the source document §4.2: `route:` with "
                f"`subset: {self.stable_subset}` (weight 100) and `subset: {self.canary_subset}` (weight 0).",
            )
        stable_destination: dict[str, Any] = {}
        for route in weighted:
            dests = route["route"]
            stable = next(d for d in dests if d["destination"].get("subset") == self.stable_subset)
            stable_destination = stable["destination"]
            canary = next(
                (d for d in dests if d["destination"].get("subset") == self.canary_subset), None
            )
            if canary is None:
                canary = {
                    "destination": {
                        **copy.deepcopy(stable["destination"]),
                        "subset": self.canary_subset,
                    }
                }
                dests.append(canary)
            stable["weight"], canary["weight"] = 100 - percent, percent
            if mirror is not None:
                self._set_mirror(route, stable["destination"], mirror)
        http = [r for r in http if r.get("name") != HEADER_ROUTE]
        if header and self.canary_header is not None and not self._has_header_route(http):
            key, value = self.canary_header
            http.insert(
                0,
                {
                    "name": HEADER_ROUTE,
                    "match": [{"headers": {key: {"exact": value}}}],
                    "route": [
                        {
                            "destination": {
                                **copy.deepcopy(stable_destination),
                                "subset": self.canary_subset,
                            }
                        }
                    ],
                },
            )
        return http

    def _set_mirror(self, route: dict[str, Any], stable: Mapping[str, Any], percent: int) -> None:
        ours = (route.get("mirror") or {}).get("subset") == self.canary_subset
        if percent <= 0:
            if ours:
                for key in ("mirror", "mirrorPercentage", "mirrorPercent"):
                    route.pop(key, None)
            return
        if route.get("mirrors") or (route.get("mirror") and not ours):
            raise TargetError(
                f"The weighted route of the VirtualService `{self.virtual_service}` already "
                f"mirrors to {route.get('mirror') or route.get('mirrors')}; a shadow would "
                "replace that mirror.",
                hint="Remove that mirror for the shadow release, or release as `canary`.",
            )
        route["mirror"] = {**copy.deepcopy(dict(stable)), "subset": self.canary_subset}
        route["mirrorPercentage"] = {"value": float(percent)}
        # The deprecated integer field next to the double one: Istio would use one of two.
        route.pop("mirrorPercent", None)

    def _has_header_route(self, http: list[dict[str, Any]]) -> bool:
        assert self.canary_header is not None
        key, value = self.canary_header
        for route in http:
            subsets = {(d.get("destination") or {}).get("subset") for d in route.get("route") or []}
            for match in route.get("match") or []:
                if ((match.get("headers") or {}).get(key) or {}).get(
                    "exact"
                ) == value and subsets == {self.canary_subset}:
                    return True
        return False

    def _route(self, percent: int, *, header: bool, mirror: int | None = None) -> bool:
        """Set the VirtualService's weights (and mirror, see ``_routes_for``) in one update;
        True if it changed. No-op without Istio."""
        if self.virtual_service is None:
            return False
        name = self.virtual_service

        def once() -> bool:
            vs = self._vs()
            assert vs is not None
            http = self._routes_for(vs, percent, header=header, mirror=mirror)
            if http == (vs.get("spec") or {}).get("http"):
                return False
            patch = {
                "metadata": {"resourceVersion": vs["metadata"]["resourceVersion"]},
                "spec": {"http": http},
            }
            self.kube.call(
                self.kube.custom.patch_namespaced_custom_object,
                ISTIO[0],
                self.istio_version,
                self.namespace,
                "virtualservices",
                name,
                patch,
                _content_type=MERGE_PATCH,
            )
            return True

        what = f"Setting the weights of virtualservice/{name} to {100 - percent}/{percent}"
        if mirror:
            what += f" and mirroring {mirror}% to subset {self.canary_subset}"
        changed = self.kube.retry(what, once)
        if changed:
            log.info(
                "virtualservice/%s: stable %d%%, canary %d%%%s",
                name,
                100 - percent,
                percent,
                "" if mirror is None else f", mirrored {mirror}%",
            )
        return changed

    def _check_destination_rule(
        self, stable: Mapping[str, Any], canary_labels: Mapping[str, str]
    ) -> None:
        """Both subsets must exist and select the right pods, or Istio sends traffic nowhere."""
        if self.destination_rule is None:
            return
        name = self.destination_rule
        dr = self.kube.retry(
            f"Reading destinationrule/{name}",
            lambda: self.kube.custom_object(
                ISTIO[0], self.istio_version, self.namespace, "destinationrules", name
            ),
        )
        example = (
            f"subsets: [{{name: {self.stable_subset}, labels: {{{self.track_label}: {self.stable_subset}}}}}, "
            f"{{name: {self.canary_subset}, labels: {{{self.track_label}: {self.canary_subset}}}}}]"
        )
        if dr is None:
            raise TargetError(
                f"The Istio DestinationRule `{name}` does not exist in namespace `{self.namespace}`.",
                hint=f"Create it as in the source document §4.2: {example}",
            )
        subsets = {
            s.get("name"): dict(s.get("labels") or {})
            for s in (dr.get("spec") or {}).get("subsets") or []
        }
        stable_labels = (self._template(stable).get("metadata") or {}).get("labels") or {}
        for subset, labels in (
            (self.stable_subset, stable_labels),
            (self.canary_subset, canary_labels),
        ):
            wanted = subsets.get(subset)
            if wanted is None or any(labels.get(k) != v for k, v in wanted.items()):
                raise TargetError(
                    f"The DestinationRule `{name}` has no subset `{subset}` that selects the "
                    f"{subset} pods (labels {dict(labels)}); its subsets are {subsets}.",
                    hint=f"Use the subsets of the source document §4.2: {example}",
                )

    # -- the Service (blue-green without Istio) -------------------------------------------------

    def _strategy_of(self, canary: Mapping[str, Any] | None) -> str:
        """The strategy of the rollout under way: the one its canary Deployment was created
        for (older canaries say nothing and are canaries), else this object's."""
        if canary is None:
            return self.strategy
        return annotations_of(canary).get(STRATEGY) or "canary"

    def _service_switch(self, canary: Mapping[str, Any] | None) -> bool:
        """Whether the Service's selector is what moves the traffic of this rollout."""
        return self.virtual_service is None and self._strategy_of(canary) == "blue-green"

    def _service(self) -> dict[str, Any] | None:
        name = self.service_name
        return self.kube.retry(
            f"Reading service/{name}", lambda: self.kube.service(self.namespace, name)
        )

    def _stable_track(self, stable: Mapping[str, Any]) -> str:
        """The stable pods' own track label value: what the Service selects for stable."""
        labels = (self._template(stable).get("metadata") or {}).get("labels") or {}
        track = labels.get(self.track_label)
        if not track or track == self.canary_subset:
            raise TargetError(
                f"The pods of {self.where} have no `{self.track_label}` label other than "
                f"`{self.canary_subset}` (their labels: {dict(labels)}), so the Service "
                f"`{self.service_name}` cannot tell them from the new version's pods.",
                hint=f"Add `{self.track_label}: {self.stable_subset}` to the Deployment's pod "
                "template labels (`spec.template.metadata.labels`) and let it roll out before "
                "the release: a Service selector cannot exclude a label (`!=`). Or route "
                "through Istio (`deploy.kubernetes.istio`).",
            )
        return str(track)

    def _check_service(self, stable: Mapping[str, Any]) -> str:
        """The stable track value, once the Service is known to select the stable pods by it;
        refused before anything changes otherwise."""
        track = self._stable_track(stable)
        service = self._service()
        if service is None:
            raise TargetError(
                f"The Service `{self.service_name}` does not exist in namespace `{self.namespace}`; "
                "blue-green without Istio switches traffic by its selector.",
                hint="Name the Service in front of the Deployment (`service`), or route through "
                "Istio (`deploy.kubernetes.istio`).",
            )
        selector = dict((service.get("spec") or {}).get("selector") or {})
        labels = (self._template(stable).get("metadata") or {}).get("labels") or {}
        others = {k: v for k, v in selector.items() if k != self.track_label}
        if not others or any(labels.get(k) != v for k, v in others.items()):
            raise TargetError(
                f"The Service `{self.service_name}` (selector {selector}) does not select the "
                f"pods of {self.where} (labels {dict(labels)}).",
                hint="Blue-green switches that Service's selector between the stable and new "
                "pods: name the Service that serves this Deployment (`service`).",
            )
        return track

    def _service_to(self, track: str, *, pin: bool) -> bool:
        """Point the Service at pods of ``track`` in one write; True if it changed.

        ``pin`` adds the track to a selector that has none (``begin`` and ``switch``), the
        old selector kept in an annotation; otherwise a selector without one already
        selects what the Service selected before the release, and is left alone. A missing
        Service is left alone too: a rollback still takes the new version away.
        """

        def change(service: dict[str, Any]) -> list[dict[str, Any]]:
            selector = dict((service.get("spec") or {}).get("selector") or {})
            if selector.get(self.track_label) == track:
                return []
            ops: list[dict[str, Any]] = []
            if self.track_label not in selector:
                if not pin:
                    return []
                if SELECTOR not in annotations_of(service):
                    text = json.dumps(selector, sort_keys=True, separators=(",", ":"))
                    ops += annotation_ops(service, {SELECTOR: text})
            op = "replace" if "selector" in (service.get("spec") or {}) else "add"
            ops.append(
                {"op": op, "path": "/spec/selector", "value": {**selector, self.track_label: track}}
            )
            return ops

        changed = self._patch_service(
            f"Pointing service/{self.service_name} at `{self.track_label}={track}`", change
        )
        if changed:
            log.info("service/%s now selects %s=%s", self.service_name, self.track_label, track)
        return changed

    def _service_back(self, stable: Mapping[str, Any]) -> bool:
        """The Service back on the stable track if it selects the canary's; True if it changed.

        Only then is the stable track needed: a rollback after a refused ``begin`` (stable
        pods without the label) has nothing to move and must not fail on it.
        """
        service = self._service()
        selector = ((service or {}).get("spec") or {}).get("selector") or {}
        if selector.get(self.track_label) != self.canary_subset:
            return False
        return self._service_to(self._stable_track(stable), pin=False)

    def _restore_service(self) -> bool:
        """Give the Service back the selector it had before the release pinned a track."""

        def change(service: dict[str, Any]) -> list[dict[str, Any]]:
            saved = annotations_of(service).get(SELECTOR)
            if saved is None:
                return []
            try:
                original = json.loads(saved)
            except ValueError:
                original = None
            ops = annotation_ops(service, {SELECTOR: None})
            if isinstance(original, dict):
                op = "replace" if "selector" in (service.get("spec") or {}) else "add"
                ops.insert(0, {"op": op, "path": "/spec/selector", "value": original})
            return ops

        return self._patch_service(f"Restoring the selector of service/{self.service_name}", change)

    def _patch_service(
        self, what: str, change: Callable[[dict[str, Any]], list[dict[str, Any]]]
    ) -> bool:
        """As ``_patch_guarded``, for the Service; nothing to do when it does not exist."""
        name = self.service_name

        def once() -> bool:
            service = self.kube.service(self.namespace, name)
            if service is None:
                return False
            ops = change(service)
            if not ops:
                return False
            guard = {
                "op": "replace",
                "path": "/metadata/resourceVersion",
                "value": service["metadata"]["resourceVersion"],
            }
            self.kube.patch_service(self.namespace, name, [guard, *ops], JSON_PATCH)
            return True

        return self.kube.retry(what, once)

    # -- writing -----------------------------------------------------------------------------------

    def _scale(self, name: str, replicas: int, weight: int | None = None) -> bool:
        def once() -> bool:
            d = self.kube.deployment(self.namespace, name)
            if d is None:
                return False
            same_weight = weight is None or annotations_of(d).get(WEIGHT) == str(weight)
            if int(d["spec"].get("replicas", 1)) == replicas and same_weight:
                return False
            patch: dict[str, Any] = {"spec": {"replicas": replicas}}
            if weight is not None:
                patch["metadata"] = {"annotations": {WEIGHT: str(weight)}}
            self.kube.patch_deployment(self.namespace, name, patch, MERGE_PATCH)
            return True

        return self.kube.retry(f"Scaling deployment/{name} to {replicas}", once)

    def _wait_rollout(self, name: str) -> None:
        def check() -> tuple[bool, str]:
            d = self.kube.retry(
                f"Reading deployment/{name}", lambda: self.kube.deployment(self.namespace, name)
            )
            if d is None:
                raise TargetError(f"deployment/{name} disappeared while rolling out.")
            if (d.get("spec") or {}).get("paused"):
                raise TargetError(
                    f"deployment/{name} is paused, so its rollout cannot finish.",
                    hint=f"Resume it: `kubectl rollout resume deployment/{name} -n {self.namespace}`.",
                )
            return rollout_state(d)

        self._poll(
            check,
            lambda message: TargetError(
                f"deployment/{name} did not finish rolling out within {self.rollout_timeout:g}s: {message}.",
                hint="Raise the rollout timeout, or look at the new pods (`kubectl get pods`).",
            ),
        )

    def _canary_body(
        self, stable: Mapping[str, Any], image: str, version: str, replicas: int
    ) -> dict[str, Any]:
        spec: dict[str, Any] = copy.deepcopy(dict(stable.get("spec") or {}))
        template = with_image(spec["template"], self.container, image, self.where)
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        stable_track = labels.get(self.track_label)
        labels[self.track_label] = self.canary_subset
        for c in template["spec"]["containers"]:
            for env in c.get("env") or []:
                # §4.2: the canary's pods say which track they are (DEPLOYMENT_TRACK).
                if (
                    env.get("name") == "DEPLOYMENT_TRACK"
                    and stable_track
                    and env.get("value") == stable_track
                ):
                    env["value"] = self.canary_subset
        if self.strategy == "shadow" and self.shadow_env is not None:
            # The shadow answers copies of real requests: this tells the application so,
            # for it to skip side effects (payments, e-mails, writes).
            key, value = self.shadow_env
            chosen = container_of(template, self.container, self.where)["name"]
            for c in template["spec"]["containers"]:
                if c.get("name") == chosen:
                    envs = [e for e in c.get("env") or [] if e.get("name") != key]
                    c["env"] = [*envs, {"name": key, "value": value}]
        match = dict((spec.get("selector") or {}).get("matchLabels") or {})
        match[self.track_label] = self.canary_subset
        spec["selector"] = {**(spec.get("selector") or {}), "matchLabels": match}
        spec["template"] = template
        spec["replicas"] = replicas
        spec.pop("paused", None)
        meta_labels = dict(((stable.get("metadata") or {}).get("labels")) or {})
        meta_labels[self.track_label] = self.canary_subset
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self.canary_name,
                "namespace": self.namespace,
                "labels": meta_labels,
                "annotations": {
                    CANARY_OF: self.deployment,
                    VERSION: version,
                    WEIGHT: "0",
                    STRATEGY: self.strategy,
                },
            },
            "spec": spec,
        }

    def _patch_object(self, body: Any, content_type: str) -> None:
        self.kube.patch_deployment(self.namespace, self.deployment, body, content_type)

    def _delete_canary(self) -> bool:
        def once() -> bool:
            canary = self.kube.deployment(self.namespace, self.canary_name)
            if canary is None:
                return False
            self.kube.delete_deployment(
                self.namespace, self.canary_name, uid=canary["metadata"]["uid"]
            )
            return True

        return self.kube.retry(f"Deleting deployment/{self.canary_name}", once)

    # -- DeployTarget ----------------------------------------------------------------------------

    def status(self) -> TargetStatus:
        stable = self._get()
        canary = self._canary()
        record = self._record(stable)
        mirrored = 0
        if canary is None:
            weight = 0
        elif self.virtual_service is not None:
            vs = self._vs()
            weight = self._vs_weight(vs) if vs is not None else 0
            mirrored = self._vs_mirror(vs) if vs is not None else 0
        elif self._service_switch(canary):
            service = self._service()
            selector = ((service or {}).get("spec") or {}).get("selector") or {}
            weight = 100 if selector.get(self.track_label) == self.canary_subset else 0
        else:
            weight = int(annotations_of(canary).get(WEIGHT) or 0)
        return TargetStatus(
            stable_version=self._version(stable),
            canary_version=self._version(canary),
            canary_weight=weight,
            known_good=record.version if record is not None else None,
            state=self._read_state(stable),
            mirror_percent=mirrored,
        )

    def refusal(self, strategy: str) -> str | None:
        if strategy == "shadow" and self.virtual_service is None:
            return (
                "shadow mirrors requests through an Istio VirtualService "
                "(`deploy.kubernetes.istio`); a Kubernetes Service cannot copy them"
            )
        if strategy == "blue-green" and self.virtual_service is None:
            # Read now, so pre-flight says it before a notice goes out or anything changes.
            try:
                self._check_service(self._get())
            except TargetError as exc:
                return exc.message.rstrip(".") + (f" ({exc.hint})" if exc.hint else "")
        return super().refusal(strategy)

    def begin(self, version: str) -> None:
        stable = self._get()
        if (stable.get("spec") or {}).get("paused"):
            raise TargetError(
                f"{self.where} is paused.",
                hint=f"Resume it first: `kubectl rollout resume deployment/{self.deployment} -n {self.namespace}`.",
            )
        canary = self._canary()
        strategy = self.strategy
        why = self.refusal(strategy)
        if why is not None:
            raise TargetError(f"Cannot release as `{strategy}`: {why}.")
        image = image_for(version, self._image(stable))
        if canary is not None and _family(self._strategy_of(canary)) != _family(strategy):
            raise TargetError(
                f"A `{self._strategy_of(canary)}` release of {self._version(canary)} is in "
                f"progress on {self.where}; it cannot go on as `{strategy}`.",
                hint="Finish it with the strategy it began with, or roll it back first.",
            )
        if canary is not None and self._image(canary) != image:
            raise TargetError(
                f"Canary {self._version(canary)} is still in progress on {self.where}; cannot start {version}.",
                hint="Roll it back (`release-actions canary run` does so for an abandoned "
                "rollout) or promote it first.",
            )
        if canary is None and self._image(stable) == image:
            raise TargetError(
                f"{version} is already the stable version of {self.where}.",
                hint="Deploy a new version, or roll back first to rehearse it again.",
            )
        stable_track = None
        if self._service_switch(canary):
            stable_track = self._check_service(stable)  # refused before anything changes
        record = self._record(stable)
        if not (
            record is not None
            and record.rollout == version
            and same_template(record.template, self._template(stable))
        ):
            self._record_known_good(version)
            stable = self._get()
            record = self._record(stable)
        total = self._total(stable, record)
        canary_labels = {
            **((self._template(stable).get("metadata") or {}).get("labels") or {}),
            self.track_label: self.canary_subset,
        }
        self._check_destination_rule(stable, canary_labels)
        if stable_track is not None and canary is None:
            # Before the new pods exist: a Service selecting `app` alone would send them users.
            self._service_to(stable_track, pin=True)
        if strategy == "blue-green":
            replicas = total  # the whole new version stands ready before it gets any user
        elif self.virtual_service is not None:
            replicas = 1
        else:
            replicas = 0
        if canary is None:
            body = self._canary_body(stable, image, version, replicas)

            def create() -> None:
                try:
                    self.kube.create_deployment(self.namespace, body)
                except Exception as exc:
                    failure = failure_of(exc)
                    if failure is None or failure.reason != "AlreadyExists":
                        raise

            self.kube.retry(f"Creating deployment/{self.canary_name}", create)
            log.info(
                "created deployment/%s (%s, %d of %d pods)",
                self.canary_name,
                image,
                replicas,
                total,
            )
        elif strategy == "blue-green" and int(canary["spec"].get("replicas", 1)) < total:
            self._scale(self.canary_name, total)
        if self.virtual_service is not None:
            vs = self._vs()
            assert vs is not None
            # Resuming keeps the weight (and mirror) the rollout had; a new one starts at 0 %.
            # A shadow gets no header route: whoever sent the header would get its answers.
            self._route(
                self._vs_weight(vs) if canary is not None else 0,
                header=strategy != "shadow",
                mirror=None if canary is not None else 0,
            )
        self._wait_rollout(self.canary_name)

    def _record_known_good(self, version: str) -> None:
        stable = self._get()
        template = strip_label(self._template(stable), POD_TEMPLATE_HASH)
        rss = self._replica_sets(stable)
        current = next((rs for rs in rss if same_template(rs["spec"]["template"], template)), None)
        pods = self._pods(self._stable_selector(stable))
        record = KnownGood(
            version=self._version(stable) or "",
            image=self._image(stable),
            template=template,
            rollout=version,
            revision=revision(current)
            if current
            else int(annotations_of(stable).get(REVISION) or 0) or None,
            pod_template_hash=(current or {})
            .get("metadata", {})
            .get("labels", {})
            .get(POD_TEMPLATE_HASH),
            digests=pod_digests(pods, self.container),
            replicas=self.replicas_total or int(stable["spec"].get("replicas", 1)),
            recorded_at=now_rfc3339(),
        )

        def change(d: dict[str, Any]) -> list[dict[str, Any]]:
            if not same_template(self._template(d), template):
                raise TargetError(
                    f"{self.where} changed while its known-good version was being recorded.",
                    hint="Another deploy is running against it; let it finish, then retry.",
                )
            return annotation_ops(d, {KNOWN_GOOD: record.to_json()})

        self._patch_guarded(f"Recording the known-good version on {self.where}", change)
        log.info(
            "recorded %s (revision %s) as known-good on %s",
            record.version,
            record.revision,
            self.where,
        )

    def set_weight(self, percent: int) -> None:
        check_weight(percent)
        stable = self._get()
        canary = self._canary()
        if canary is None:
            raise no_canary(self.where)
        total = self._total(stable, self._record(stable))
        if self.virtual_service is not None:
            # The canary's pods grow before traffic moves to them and shrink after it left.
            want = max(1, canary_replicas(percent, total))
            growing = want > int(canary["spec"].get("replicas", 1))
            if growing:
                self._scale(self.canary_name, want, percent)
                self._wait_rollout(self.canary_name)
            self._route(percent, header=True)
            if not growing:
                self._scale(self.canary_name, want, percent)
            return
        want_canary = canary_replicas(percent, total)
        # Below 100 % one stable pod stays, or a small weight would send everything to the canary.
        want_stable = total - want_canary if percent >= 100 else max(1, total - want_canary)
        if want_canary >= int(canary["spec"].get("replicas", 0)):
            self._scale(self.canary_name, want_canary, percent)
            self._wait_rollout(self.canary_name)
            self._scale(self.deployment, want_stable)
            self._wait_rollout(self.deployment)
        else:
            self._scale(self.deployment, want_stable)
            self._wait_rollout(self.deployment)
            self._scale(self.canary_name, want_canary, percent)
            self._wait_rollout(self.canary_name)

    def promote(self) -> None:
        canary = self._canary()
        service_switch = self._service_switch(canary)
        if canary is None:
            # Promoted already (or rolled back): only make sure traffic is all on stable.
            if self.virtual_service is not None:
                self._route(0, header=False, mirror=0)
            elif service_switch:
                self._restore_service()
            return
        if self._strategy_of(canary) == "shadow":
            raise TargetError(
                f"The shadow {self._version(canary)} on {self.where} served no user, so it "
                "cannot be promoted.",
                hint="Withdraw it, then release the version as `canary` or `blue-green`.",
            )
        stable = self._get()
        total = self._total(stable, self._record(stable))
        images = {c["name"]: c.get("image") for c in self._template(canary)["spec"]["containers"]}

        def change(d: dict[str, Any]) -> list[dict[str, Any]]:
            template = copy.deepcopy(self._template(d))
            for c in template["spec"]["containers"]:
                c["image"] = images.get(c["name"], c.get("image"))
            ops: list[dict[str, Any]] = []
            if not same_template(template, self._template(d)):
                ops.append({"op": "replace", "path": "/spec/template", "value": template})
            if int(d["spec"].get("replicas", 1)) != total:
                ops.append({"op": "replace", "path": "/spec/replicas", "value": total})
            return ops

        # Blue-green: the new version serves everyone meanwhile, so the stable Deployment
        # rolls to it without users, and traffic comes back only once it has rolled out.
        self._patch_guarded(f"Promoting {self._version(canary)} on {self.where}", change)
        self._wait_rollout(self.deployment)
        self._route(0, header=False, mirror=0)
        if service_switch:
            self._service_back(self._get())
        self._delete_canary()
        if service_switch:
            self._restore_service()
        log.info("promoted %s on %s", self._version(canary), self.where)

    def preview(self) -> Preview | None:
        canary = self._canary()
        if canary is None:
            return None
        version = self._version(canary)
        if self.virtual_service is not None:
            vs = self._vs()
            assert vs is not None
            http = list((vs.get("spec") or {}).get("http") or [])
            if self.canary_header is None or not self._has_header_route(http):
                return None
            key, value = self.canary_header
            hosts = list((vs.get("spec") or {}).get("hosts") or [])
            host = (
                f"`{hosts[0]}`" if hosts else f"the hosts of virtualservice/{self.virtual_service}"
            )
            return Preview(
                headers={key: value},
                detail=f"requests to {host} with the header `{key}: {value}` reach {version} "
                f"(virtualservice/{self.virtual_service})",
            )
        if self.preview_service is None:
            return None
        return self._preview_service(canary, version)

    def _preview_service(self, canary: Mapping[str, Any], version: str | None) -> Preview:
        """The user's Service that selects only the new version's pods, as a cluster URL."""
        name = self.preview_service
        assert name is not None
        service = self.kube.retry(
            f"Reading service/{name}", lambda: self.kube.service(self.namespace, name)
        )
        labels = (self._template(canary).get("metadata") or {}).get("labels") or {}
        selector = dict(((service or {}).get("spec") or {}).get("selector") or {})
        if (
            service is None
            or not selector
            or any(labels.get(k) != v for k, v in selector.items())
            or selector.get(self.track_label) != self.canary_subset
        ):
            raise TargetError(
                f"The preview Service `{name}` in namespace `{self.namespace}` "
                + ("does not exist" if service is None else f"(selector {selector})")
                + f" does not select only the new version's pods (labels {dict(labels)}).",
                hint=f"Give it a selector with `{self.track_label}: {self.canary_subset}` "
                "and the Deployment's other labels, or leave `preview_service` empty.",
            )
        ports = list((service.get("spec") or {}).get("ports") or [])
        port = int(ports[0].get("port") or 80) if ports else 80
        url = f"http://{name}.{self.namespace}.svc.cluster.local"
        if port != 80:
            url += f":{port}"
        return Preview(
            url=url,
            detail=f"service/{name} reaches only {version}, from inside the cluster",
        )

    def switch(self) -> None:
        stable = self._get()
        canary = self._canary()
        if canary is None:
            raise TargetError(
                f"No new version is running on {self.where}, so there is nothing to switch to.",
                hint="Call begin(version) first (blue-green).",
            )
        if self._strategy_of(canary) == "shadow":
            raise TargetError(
                f"{self._version(canary)} runs as a shadow on {self.where}; it takes no users.",
                hint="Withdraw it, then release the version as `blue-green`.",
            )
        if self.virtual_service is None:
            self._check_service(stable)  # switching back must be possible before switching
        total = self._total(stable, self._record(stable))
        # Everything moves at once: the new version must be able to carry all of it first.
        if int(canary["spec"].get("replicas", 1)) < total:
            self._scale(self.canary_name, total)
        self._wait_rollout(self.canary_name)
        if self.virtual_service is not None:
            self._route(100, header=True)
            return
        self._service_to(self.canary_subset, pin=True)

    def mirror(self, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise TargetError(f"The mirrored share must be 0 to 100 %, got {percent}.")
        why = self.refusal("shadow")
        if why is not None:
            raise TargetError(f"Cannot mirror traffic on {self.where}: {why}.")
        stable = self._get()
        canary = self._canary()
        if canary is None:
            raise TargetError(
                f"No shadow is running on {self.where}, so there is nothing to mirror to.",
                hint="Call begin(version) first (shadow).",
            )
        if self._strategy_of(canary) != "shadow":
            # Copies to a version users already reach would double their side effects.
            raise TargetError(
                f"{self._version(canary)} on {self.where} is a `{self._strategy_of(canary)}` "
                "release, not a shadow, so no requests are copied to it.",
                hint="Release the version as `shadow` to mirror traffic to it.",
            )
        total = self._total(stable, self._record(stable))
        want = total if percent >= 100 else max(1, canary_replicas(percent, total))
        # As with weights: the shadow grows before the copies come, shrinks after they stop.
        growing = want > int(canary["spec"].get("replicas", 1))
        if growing:
            self._scale(self.canary_name, want)
            self._wait_rollout(self.canary_name)
        self._route(0, header=False, mirror=percent)
        if not growing:
            self._scale(self.canary_name, want)

    def withdraw(self) -> RollbackResult:
        canary = self._canary()
        if self._strategy_of(canary) != "shadow":
            return self.rollback()
        stable = self._get()
        shadow = self._version(canary)
        # The mirror goes before the pods it copies to; the stable Deployment is not touched.
        changed = self._route(0, header=False, mirror=0)
        changed |= self._delete_canary()
        on = self._version(stable)
        if not changed:
            return RollbackResult(False, None, on, f"no shadow is running on {self.where}")
        what = f"the shadow {shadow}" if shadow else "the shadow"
        return RollbackResult(
            True, shadow, on, f"{what} withdrawn from {self.where}, still on {on}"
        )

    def rollback(self) -> RollbackResult:
        stable = self._get()
        canary = self._canary()
        if (stable.get("spec") or {}).get("paused"):
            raise TargetError(
                f"you cannot rollback a paused deployment; resume it first with "
                f"'kubectl rollout resume deployment/{self.deployment} -n {self.namespace}' and try again",
            )
        record = self._record(stable)
        target, recorded = self._rollback_target(stable, canary, record)
        bad = self._version(canary) if canary is not None else self._version(stable)
        total = self._total(stable, target)
        service_switch = self._service_switch(canary)
        # Traffic leaves the canary first, in one update, before anything is scaled.
        changed = self._route(0, header=False, mirror=0)
        if service_switch:
            changed |= self._service_back(stable)

        def change(d: dict[str, Any]) -> list[dict[str, Any]]:
            ops: list[dict[str, Any]] = []
            if not same_template(self._template(d), target.template):
                ops.append({"op": "replace", "path": "/spec/template", "value": target.template})
            if int(d["spec"].get("replicas", 1)) != total:
                ops.append({"op": "replace", "path": "/spec/replicas", "value": total})
            if not recorded:
                # The template and the record travel in one write: a concurrent run then
                # either sees both or gets a 409 and reads them, never undoes twice.
                ops += annotation_ops(d, {KNOWN_GOOD: target.to_json()})
            return ops

        changed |= self._patch_guarded(f"Restoring {target.version} on {self.where}", change)
        self._wait_rollout(self.deployment)
        changed |= self._delete_canary()
        if service_switch:
            changed |= self._restore_service()
        if not changed:
            return RollbackResult(
                changed=False,
                from_version=None,
                to_version=target.version,
                detail=f"already on the known-good version {target.version}",
            )
        detail = f"{self.where} back on {target.version}"
        if target.revision:
            detail += f" (the template of revision {target.revision})"
        return RollbackResult(
            changed=True, from_version=bad, to_version=target.version, detail=detail
        )

    def _rollback_target(
        self, stable: dict[str, Any], canary: dict[str, Any] | None, record: KnownGood | None
    ) -> tuple[KnownGood, bool]:
        """The known-good record if it still speaks for this Deployment, else the previous revision.

        A record applies while its rollout is under way (a canary exists), when the stable
        Deployment already runs it, or when it runs the version the record's rollout
        promoted. Anything else is a change made since by hand: that is undone as
        `kubectl rollout undo` would, and the result recorded (second value False).
        """
        template = self._template(stable)
        if record is not None and (
            canary is not None
            or same_template(record.template, template)
            or (
                record.rollout is not None
                and self._version(stable)
                == image_version(image_for(record.rollout, self._image(stable)))
            )
        ):
            return record, True
        previous = self._previous_replica_set(
            stable, lambda t: same_template(t, template), REVISION
        )
        if previous is None:
            limit = (stable.get("spec") or {}).get("revisionHistoryLimit")
            hint = "Nothing recorded a known-good version (no release-actions rollout began here)."
            if limit == 0:
                hint += (
                    " `revisionHistoryLimit: 0` keeps no old ReplicaSet to return to: set it "
                    "above 0 (the default is 10)."
                )
            raise TargetError(
                f'no rollout history found for deployment "{self.deployment}"', hint=hint
            )
        return (
            self._known_good_of(
                strip_label(previous["spec"]["template"], POD_TEMPLATE_HASH),
                rollout=self._version(stable),
                revision=revision(previous),
                pod_template_hash=previous["metadata"].get("labels", {}).get(POD_TEMPLATE_HASH),
                replicas=self.replicas_total or int(stable["spec"].get("replicas", 1)),
            ),
            False,
        )

    def health(self, track: Track | None = None) -> HealthSample:
        stable = self._get()
        selectors: list[str] = []
        if track in (None, Track.STABLE):
            selectors.append(self._stable_selector(stable))
        if track in (None, Track.CANARY):
            canary = self._canary()
            if canary is not None:
                selectors.append(selector_text(canary["spec"].get("selector")))
            elif track is Track.CANARY:
                return no_canary_health()
        return self._health(selectors)

    # -- kubectl's undo ------------------------------------------------------------------------

    def wait_rolled_out(
        self, timeout_seconds: float | None = None, poll: float | None = None
    ) -> str:
        """As `kubectl rollout status` after an undo: until the Deployment has rolled out.

        Returns kubectl's last line (``deployment "NAME" successfully rolled out``).
        ``timeout_seconds`` defaults to the rollout timeout, ``poll`` to the poll interval.
        """
        timeout = self.rollout_timeout if timeout_seconds is None else timeout_seconds

        def check() -> tuple[bool, str]:
            d = self.kube.retry(
                f"Reading {self.where}",
                lambda: self.kube.deployment(self.namespace, self.deployment),
            )
            if d is None:
                raise TargetError(f"{self.where} disappeared during the rollback.")
            return rollout_state(d)

        return self._poll(
            check,
            lambda message: TargetError(
                f"{self.where} did not finish rolling back within {timeout:g}s: {message}.",
                hint="Look at its pods (`kubectl get pods`) and events.",
            ),
            timeout=timeout,
            interval=poll or None,
        )

    def undo_to_revision(
        self,
        to_revision: int,
        *,
        timeout_seconds: float | None = None,
        poll: float | None = None,
        report: Callable[[str], None] | None = None,
        force: bool = False,
    ) -> RollbackResult:
        """`kubectl rollout undo --to-revision=N` and `kubectl rollout status`, with kubectl's
        result and errors (0: the previous revision), without kubectl's flip.

        A revision whose version a recorded rollback left, or that is newer than the
        known-good one, is refused: `--to-revision 0` after a rollback is the bad version.
        ``force`` does it anyway, and the version is then not recorded as known-good.
        ``report`` gets each line kubectl would print, as it happens (default: the log), so
        a caller that shows them shows the undo even when the wait after it fails.
        """
        say = report or log.info
        before = self.status()
        unsafe = _unsafe_versions(before)

        def check(version: str) -> str | None:
            why = unsafe(version)
            if why and not force:
                raise TargetError(
                    f"Refusing to roll {self.where} back to revision {to_revision} "
                    f"({version}): {why}. Nothing was changed.",
                    hint="`release-actions rollback` (no `--to-revision`) goes to the known-good "
                    "version; add `--force` to go to this revision on purpose (it is then "
                    "recorded as not known-good).",
                )
            return why

        undo = rollout_undo(
            self.kube.api_client,
            self.namespace,
            self.deployment,
            to_revision,
            retry=self.kube.policy,
            check=check,
        )
        if not undo.changed:
            say(f"deployment.apps/{self.deployment} {undo.message}")
            return RollbackResult(False, None, before.stable_version, undo.message)
        say(f"deployment.apps/{self.deployment} rolled back")
        say(self.wait_rolled_out(timeout_seconds, poll))
        after = self.status()
        detail = f"{self.where} back on revision {undo.to_revision} (was {undo.from_revision})"
        if undo.forced:
            detail += f"; forced: {after.stable_version} is not known-good ({undo.forced})"
        return RollbackResult(True, before.stable_version, after.stable_version, detail)


# ------------------------------------------------------------------------------ rollout undo


def rollout_undo(
    api_client: ApiClient,
    namespace: str,
    deployment: str,
    to_revision: int | None = None,
    *,
    record_known_good: bool = True,
    retry: RetryPolicy | None = None,
    check: Callable[[str], str | None] | None = None,
) -> UndoResult:
    """`kubectl rollout undo deployment/NAME [--to-revision=N]`, with kubectl's result and errors.

    The same ReplicaSet is chosen (the second-newest revision, or ``to_revision``), the
    same template (without ``pod-template-hash``) and annotations are written in the same
    JSON patch, so the controller numbers revisions as after kubectl. Two differences, both
    for safety: the patch carries the ``resourceVersion`` it was computed from (a
    concurrent change gets a 409, and the undo is recomputed), and with
    ``record_known_good`` the restored template is also recorded as known-good, so that
    `KubernetesTarget.rollback` afterwards keeps it instead of flipping back. ``check`` sees
    the chosen revision's version before anything changes: it raises to refuse, or returns
    why the version is not known-good (then it is not recorded as such).
    """
    kube = Kube(api_client, policy=retry)
    if to_revision is not None and to_revision < 0:
        raise TargetError(f"unable to find specified revision {to_revision} in history")
    where = f"deployment/{deployment} in namespace `{namespace}`"

    def once() -> UndoResult:
        d = kube.deployment(namespace, deployment)
        if d is None:
            raise TargetError(
                f'deployments.apps "{deployment}" not found in namespace `{namespace}`.',
                hint="Check the `deployment` and `namespace` inputs.",
            )
        selector = selector_text(d["spec"].get("selector"))
        rss = [rs for rs in kube.replica_sets(namespace, selector) if owned_by(rs, d)]
        chosen = _revision_for_undo(d, rss, to_revision or 0)
        if d["spec"].get("paused"):
            raise TargetError(
                f"you cannot rollback a paused deployment; resume it first with 'kubectl rollout "
                f"resume deployment/{deployment} -n {namespace}' and try again"
            )
        target_revision = revision(chosen)
        if same_template(chosen["spec"]["template"], d["spec"]["template"]):
            return UndoResult(
                False,
                revision(d),
                target_revision,
                f"skipped rollback (current template already matches revision {to_revision or 0})",
            )
        template = strip_label(chosen["spec"]["template"], POD_TEMPLATE_HASH)
        image = str(container_of(template, None, where).get("image", ""))
        forced = check(image_version(image)) if check is not None else None
        current = annotations_of(d)
        wanted = {k: v for k, v in current.items() if k in UNDO_KEEP}
        wanted.update({k: v for k, v in annotations_of(chosen).items() if k not in UNDO_KEEP})
        # This project's own annotations stay as the Deployment has them: a ReplicaSet's
        # copy is an old one, and bringing it back would resurrect an old record or state.
        for key in (KNOWN_GOOD, STATE):
            wanted.pop(key, None)
            if key in current:
                wanted[key] = current[key]
        if record_known_good and not forced:
            wanted[KNOWN_GOOD] = KnownGood(
                version=image_version(image),
                image=image,
                template=template,
                rollout=image_version(
                    str(container_of(d["spec"]["template"], None, where).get("image", ""))
                ),
                revision=target_revision,
                pod_template_hash=chosen["metadata"].get("labels", {}).get(POD_TEMPLATE_HASH),
                replicas=int(d["spec"].get("replicas", 1)),
                recorded_at=now_rfc3339(),
            ).to_json()
        patch = [
            {
                "op": "replace",
                "path": "/metadata/resourceVersion",
                "value": d["metadata"]["resourceVersion"],
            },
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": wanted},
        ]
        kube.patch_deployment(namespace, deployment, patch, JSON_PATCH)
        return UndoResult(True, revision(d), target_revision, "rolled back", forced)

    return kube.retry(f"Rolling back {where}", once)


def _revision_for_undo(
    d: Mapping[str, Any], rss: list[dict[str, Any]], to_revision: int
) -> dict[str, Any]:
    """kubectl's deploymentRevision: revision N, or the second-newest for 0."""
    latest: tuple[int, dict[str, Any] | None] = (-1, None)
    previous: tuple[int, dict[str, Any] | None] = (-1, None)
    for rs in rss:
        v = revision(rs)
        if to_revision == 0:
            if latest[0] < v:
                previous, latest = latest, (v, rs)
            elif previous[0] < v:
                previous = (v, rs)
        elif to_revision == v:
            return rs
    name = (d.get("metadata") or {}).get("name")
    if to_revision > 0:
        raise TargetError(
            f"unable to find specified revision {to_revision} in history",
            hint=f"`kubectl rollout history deployment/{name}` lists the revisions kept.",
        )
    if previous[1] is None:
        hint = None
        if (d.get("spec") or {}).get("revisionHistoryLimit") == 0:
            hint = (
                "`revisionHistoryLimit: 0` keeps no old ReplicaSet to return to: set it above 0 "
                "(the default is 10), or roll back with the known-good record a release-actions "
                "rollout keeps."
            )
        raise TargetError(f'no rollout history found for deployment "{name}"', hint=hint)
    return previous[1]
