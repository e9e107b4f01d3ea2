"""Argo Rollouts as a deploy target, and the Rollout and AnalysisTemplate for teams that let Argo judge."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from hashlib import sha256
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Unpack

from release_actions.errors import TargetError
from release_actions.metrics.base import Track
from release_actions.targets.base import HealthSample, Preview, RollbackResult, TargetStatus
from release_actions.targets.k8s_util import (
    ANNOTATION_PREFIX,
    KNOWN_GOOD,
    MERGE_PATCH,
    KnownGood,
    annotation_ops,
    annotations_of,
    container_of,
    derivative,
    failure_of,
    image_for,
    image_version,
    normalize,
    pod_digests,
    revision,
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

    from release_actions.core.policy import IstioSettings, Policy

log = logging.getLogger(__name__)

GROUP, VERSION = "argoproj.io", "v1alpha1"
HASH_LABEL = "rollouts-pod-template-hash"
ARGO_REVISION = "rollout.argoproj.io/revision"
# On a blueGreen Rollout: which known-good record `promote` ended (a hash of its text). Argo
# marks the new ReplicaSet stable as soon as the active Service reaches it, before the hold;
# until this names the record in force, the new version is still on trial.
PROMOTED = ANNOTATION_PREFIX + "promoted"
BLUE_GREEN_PAUSE = "BlueGreenPause"
SHADOW_REFUSAL = (
    "Argo Rollouts mirrors traffic only from a canary step (`setMirrorRoute`), which needs "
    "`trafficRouting.managedRoutes` and routes that Argo manages in the VirtualService; "
    "release-actions does not drive that step"
)


def driven_steps(percent: int) -> list[dict[str, Any]]:
    """The steps of a Rollout that release-actions drives: go to ``percent``, then hold."""
    return [{"setWeight": percent}, {"pause": {}}]


class ArgoRolloutsTarget(WorkloadTarget):
    """An Argo Rollout that release-actions drives step by step (source §4.4, §6.2 option B).

    Design: Argo has no "set the weight to N" call, but it resets a Rollout to step 0 and
    clears its pauses whenever ``spec.strategy.canary.steps`` change. So ``set_weight(N)``
    writes the steps ``[{setWeight: N}, {pause: {}}]``: Argo moves the traffic (through its
    own Istio, SMI or ingress routing) and holds at the indefinite pause until the next
    call. The authored steps are kept in the known-good record and written back at
    promote and at rollback, so a GitOps tool sees the Rollout as it was authored
    afterwards. ``promote`` is ``kubectl argo rollouts promote --full`` (``status.promoteFull``),
    abort is ``status.abort: true`` as the plugin patches it, and rollback is abort followed
    by a real undo: the known-good pod template goes back into ``spec.template``, which abort
    alone leaves on the new version, ready to roll forward again.

    The Rollout's own spec decides its strategy: a ``strategy.blueGreen`` Rollout runs
    blue-green and nothing else, a ``strategy.canary`` one canary and rolling (``refusal``
    says so). On a blueGreen Rollout with ``autoPromotionEnabled: false``: ``begin`` sets the
    image, and Argo brings the new ReplicaSet up at full size behind the preview Service
    and pauses (``BlueGreenPause``); ``preview`` is that Service's in-cluster URL; ``switch``
    is ``kubectl argo rollouts promote`` (``status.pauseConditions: null``, and
    ``spec.paused: false`` when set), after which Argo points the active Service at the new
    ReplicaSet; ``rollback`` is abort and undo as for a canary: before the switch the
    active Service never left the old ReplicaSet, after it the undo is Argo's fast
    rollback, a selector switch back to the old ReplicaSet that ``scaleDownDelaySeconds``
    kept at full size. ``promote`` waits for Argo's own promotion (its post-promotion
    analysis) and records that the trial is over (``release-actions.dev/promoted``);
    scaling the old ReplicaSet down is Argo's, at the end of ``scaleDownDelaySeconds``.
    Shadow is refused (see ``SHADOW_REFUSAL``).
    """

    name = "argo-rollouts"
    kind = "rollout"
    strategies: ClassVar[frozenset[str]] = frozenset({"canary", "rolling", "blue-green"})

    def __init__(
        self, api_client: ApiClient, *, rollout: str, **options: Unpack[WorkloadOptions]
    ) -> None:
        super().__init__(api_client, name=rollout, **options)
        self.rollout = rollout

    # -- reading -------------------------------------------------------------------------------

    def _get(self) -> dict[str, Any]:
        ro = self.kube.retry(
            f"Reading {self.where}",
            lambda: self.kube.custom_object(
                GROUP, VERSION, self.namespace, "rollouts", self.rollout
            ),
        )
        if ro is None:
            raise TargetError(
                f"The Argo Rollout `{self.rollout}` does not exist in namespace `{self.namespace}`.",
                hint="Check the `rollout` and `namespace` inputs; `release-actions argo render` "
                "writes a Rollout for the source document's steps.",
            )
        return ro

    def _rs_by_hash(self, ro: Mapping[str, Any], pod_hash: str | None) -> dict[str, Any] | None:
        if not pod_hash:
            return None
        return next(
            (
                rs
                for rs in self._replica_sets(ro)
                if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == pod_hash
            ),
            None,
        )

    @staticmethod
    def _status(ro: Mapping[str, Any]) -> dict[str, Any]:
        return dict(ro.get("status") or {})

    def _in_progress(self, ro: Mapping[str, Any]) -> bool:
        status = self._status(ro)
        return bool(status.get("currentPodHash")) and status.get("currentPodHash") != status.get(
            "stableRS"
        )

    def _template_version(self, template: Mapping[str, Any]) -> str:
        return image_version(
            str(container_of(template, self.container, self.where).get("image", ""))
        )

    def _spec_template(self, ro: Mapping[str, Any]) -> dict[str, Any]:
        return dict((ro.get("spec") or {}).get("template") or {})

    def _steps(self, ro: Mapping[str, Any]) -> list[dict[str, Any]]:
        return list(
            (((ro.get("spec") or {}).get("strategy") or {}).get("canary") or {}).get("steps") or []
        )

    def _stable_template(self, ro: Mapping[str, Any]) -> dict[str, Any]:
        if not self._in_progress(ro):
            return self._spec_template(ro)
        rs = self._rs_by_hash(ro, self._status(ro).get("stableRS"))
        if rs is None:
            raise TargetError(
                f"The stable ReplicaSet ({self._status(ro).get('stableRS')}) of {self.where} is gone.",
                hint="Restore the previous version by hand (`kubectl argo rollouts undo`).",
            )
        return strip_label(rs["spec"]["template"], HASH_LABEL)

    @staticmethod
    def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        a, b = strip_label(a, HASH_LABEL), strip_label(b, HASH_LABEL)
        return bool(normalize(a) == normalize(b) or derivative(a, b))

    def _weight(self, ro: Mapping[str, Any]) -> int:
        status = self._status(ro)
        weights = ((status.get("canary") or {}).get("weights") or {}).get("canary")
        if isinstance(weights, dict) and "weight" in weights:
            return int(weights["weight"])
        if not self._in_progress(ro):
            return 0
        weight, index = 0, int(status.get("currentStepIndex") or 0)
        for step in self._steps(ro)[: index + 1]:
            if "setWeight" in step:
                weight = int(step["setWeight"])
        return weight

    # -- writing -------------------------------------------------------------------------------

    def _patch_object(self, body: Any, content_type: str) -> None:
        self.kube.patch_custom(
            GROUP,
            VERSION,
            self.namespace,
            "rollouts",
            self.rollout,
            body,
            content_type=content_type,
        )

    def _patch_status(self, what: str, body: dict[str, Any]) -> None:
        """As the kubectl plugin does: the status subresource, else (Argo < 0.10) the object."""

        def once() -> None:
            try:
                self.kube.patch_custom(
                    GROUP, VERSION, self.namespace, "rollouts", self.rollout, body, status=True
                )
            except Exception as exc:
                failure = failure_of(exc)
                if failure is None or failure.status != 404:
                    raise
                self.kube.patch_custom(
                    GROUP, VERSION, self.namespace, "rollouts", self.rollout, body
                )

        self.kube.retry(what, once)

    def _wait(self, what: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Until Argo has seen the latest spec and ``done`` holds; the Rollout then."""

        def check() -> tuple[bool, dict[str, Any]]:
            ro = self._get()
            observed = str(self._status(ro).get("observedGeneration", "")) == str(
                ro["metadata"].get("generation", "")
            )
            return observed and done(ro), ro

        def timed_out(ro: dict[str, Any]) -> TargetError:
            status = self._status(ro)
            return TargetError(
                f"{self.where} did not {what} within {self.rollout_timeout:g}s "
                f"(phase {status.get('phase')}: {status.get('message', '')}).",
                hint=f"`kubectl argo rollouts get rollout {self.rollout} -n {self.namespace}` shows why.",
            )

        return self._poll(check, timed_out)

    def _fail_if_aborted(self, ro: Mapping[str, Any]) -> None:
        status = self._status(ro)
        if status.get("abort"):
            raise TargetError(
                f"{self.where} was aborted: {status.get('message', '')}.",
                hint="Argo's own analysis or a person aborted it; release-actions rolls it back.",
            )

    # -- DeployTarget ----------------------------------------------------------------------------

    def status(self) -> TargetStatus:
        ro = self._get()
        record = self._record(ro)
        if _blue_green_of(ro) is not None:
            return self._bg_status(ro, record)
        return TargetStatus(
            stable_version=self._template_version(self._stable_template(ro)),
            canary_version=self._template_version(self._spec_template(ro))
            if self._in_progress(ro)
            else None,
            canary_weight=self._weight(ro) if self._in_progress(ro) else 0,
            known_good=record.version if record is not None else None,
            state=self._read_state(ro),
        )

    def begin(self, version: str) -> None:
        ro = self._get()
        template = self._spec_template(ro)
        image = image_for(
            version, str(container_of(template, self.container, self.where).get("image", ""))
        )
        if _blue_green_of(ro) is not None:
            self._bg_begin(ro, version, image)
            return
        if self._in_progress(ro):
            if self._template_version(template) != image_version(image):
                raise TargetError(
                    f"Canary {self._template_version(template)} is still in progress on {self.where}; "
                    f"cannot start {version}.",
                    hint="Roll it back or promote it first.",
                )
        elif self._template_version(template) == image_version(image):
            raise TargetError(f"{version} is already the stable version of {self.where}.")
        else:
            self._start(ro, version, image)
        self._wait(
            "reach the canary's first pause", lambda r: self._in_progress(r) and self._held(r)
        )

    def _start(self, ro: dict[str, Any], version: str, image: str) -> None:
        stable_hash = self._status(ro).get("stableRS")
        stable_rs = self._rs_by_hash(ro, stable_hash)
        pods = []
        if stable_hash:
            pods = self.kube.retry(
                "Listing the stable pods",
                lambda: self.kube.pods(self.namespace, f"{HASH_LABEL}={stable_hash}"),
            )
        template = self._spec_template(ro)
        blue_green = _blue_green_of(ro) is not None
        # A blueGreen Rollout has no steps to restore: None, so no rollback writes any.
        steps = None if blue_green else self._steps(ro)
        record = self._known_good_of(
            strip_label(template, HASH_LABEL),
            rollout=version,
            revision=revision(stable_rs, ARGO_REVISION) if stable_rs else None,
            pod_template_hash=stable_hash,
            digests=pod_digests(pods, self.container),
            replicas=int((ro.get("spec") or {}).get("replicas", 1)),
            steps=steps,
        )
        new_template = with_image(template, self.container, image, self.where)

        def change(current: dict[str, Any]) -> list[dict[str, Any]]:
            if self._in_progress(current) or not self._same(self._spec_template(current), template):
                raise TargetError(f"{self.where} changed while {version} was being started; retry.")
            return [
                *annotation_ops(current, {KNOWN_GOOD: record.to_json()}),
                {"op": "replace", "path": "/spec/template", "value": new_template},
                *([] if blue_green else _steps_ops(current, driven_steps(0))),
            ]

        # The record, the new template and the held steps go in one write: a run killed
        # here has either started the canary with its record or not started it at all.
        self._patch_guarded(f"Starting {version} on {self.where}", change)
        log.info("started %s on %s (known good: %s)", version, self.where, record.version)

    def _held(self, ro: Mapping[str, Any]) -> bool:
        """At the pause after the setWeight step: the weight is in place and Argo waits for us."""
        self._fail_if_aborted(ro)
        status = self._status(ro)
        paused = any(
            c.get("reason") == "CanaryPauseStep" for c in status.get("pauseConditions") or []
        )
        return paused and int(status.get("currentStepIndex") or 0) >= 1

    def set_weight(self, percent: int) -> None:
        check_weight(percent)
        ro = self._get()
        if not self._in_progress(ro):
            raise no_canary(self.where)
        self._fail_if_aborted(ro)
        self._patch_guarded(
            f"Setting the canary weight of {self.where} to {percent}%",
            lambda r: _steps_ops(r, driven_steps(percent)),
        )
        self._wait(f"reach {percent}%", lambda r: self._held(r) and self._weight(r) == percent)

    def promote(self) -> None:
        ro = self._get()
        if _blue_green_of(ro) is not None:
            self._bg_promote(ro)
            return
        if self._in_progress(ro):
            self._fail_if_aborted(ro)
            if not self._status(ro).get("promoteFull"):
                self._patch_status(f"Promoting {self.where}", {"status": {"promoteFull": True}})
            self._wait("become healthy on the new version", self._healthy)
        self._restore_steps()

    def _healthy(self, ro: Mapping[str, Any]) -> bool:
        self._fail_if_aborted(ro)
        return not self._in_progress(ro) and self._status(ro).get("phase") == "Healthy"

    def _restore_steps(self) -> bool:
        def change(ro: dict[str, Any]) -> list[dict[str, Any]]:
            record = self._record(ro)
            if record is None or record.steps is None:
                return []
            return _steps_ops(ro, record.steps)

        return self._patch_guarded(f"Restoring the authored steps of {self.where}", change)

    def rollback(self) -> RollbackResult:
        ro = self._get()
        record = self._record(ro)
        bad = self._template_version(self._spec_template(ro))
        target, recorded = self._rollback_target(ro, record)
        changed = False
        if self._in_progress(ro) and not self._status(ro).get("abort"):
            # §6.2 option B, step 1: traffic goes back to the stable ReplicaSet at once.
            self._patch_status(f"Aborting {self.where}", {"status": {"abort": True}})
            changed = True

        def undo(current: dict[str, Any]) -> list[dict[str, Any]]:
            ops: list[dict[str, Any]] = []
            if not self._same(self._spec_template(current), target.template):
                ops.append({"op": "replace", "path": "/spec/template", "value": target.template})
            if target.steps is not None:
                ops += _steps_ops(current, target.steps)
            if not recorded:
                ops += annotation_ops(current, {KNOWN_GOOD: target.to_json()})
            return ops

        # Step 2: the undo abort alone does not do. With the stable template back, Argo
        # skips the steps ("Rollback to stable") and clears the abort.
        changed |= self._patch_guarded(f"Restoring {target.version} on {self.where}", undo)
        ro = self._wait("observe the restored template", lambda r: True)
        if self._in_progress(ro):
            # The known-good template is not the stable ReplicaSet (the bad version was
            # promoted): go to it at once, without the steps and their pauses.
            self._patch_status(
                f"Promoting {target.version} on {self.where}", {"status": {"promoteFull": True}}
            )
            changed = True
        self._wait(f"become healthy on {target.version}", self._healthy)
        if not changed:
            return RollbackResult(
                False, None, target.version, f"already on the known-good version {target.version}"
            )
        return RollbackResult(
            True,
            bad if bad != target.version else None,
            target.version,
            f"{self.where} back on {target.version}",
        )

    def _rollback_target(
        self, ro: Mapping[str, Any], record: KnownGood | None
    ) -> tuple[KnownGood, bool]:
        """The record while it speaks for this Rollout, else the stable ReplicaSet's template."""
        template = self._spec_template(ro)
        if record is not None and (
            self._in_progress(ro)
            or self._same(template, record.template)
            or (
                record.rollout is not None
                and self._template_version(template) == image_version(record.rollout)
            )
        ):
            return record, True
        stable = self._stable_template(ro)
        if self._in_progress(ro) or not self._same(stable, template):
            return self._known_good_of(stable, rollout=self._template_version(template)), False
        # Nothing in progress and nothing recorded: the previous revision, as `undo` does.
        previous = self._previous_replica_set(ro, lambda t: self._same(template, t), ARGO_REVISION)
        if previous is None:
            raise TargetError(f'no revision found for rollout "{self.rollout}"')
        return (
            self._known_good_of(
                strip_label(previous["spec"]["template"], HASH_LABEL),
                rollout=self._template_version(template),
                revision=revision(previous, ARGO_REVISION),
            ),
            False,
        )

    # -- strategies and blue-green ---------------------------------------------------------------

    def refusal(self, strategy: str) -> str | None:
        """Why this Rollout cannot run ``strategy``: its own ``spec.strategy`` decides."""
        if strategy == "shadow":
            return SHADOW_REFUSAL
        why = super().refusal(strategy)
        if why is not None:
            return why
        ro = self._get()
        blue_green = _blue_green_of(ro)
        if strategy == "blue-green":
            if blue_green is None:
                return (
                    f"{self.where} is a canary Rollout (`spec.strategy.canary`), and Argo runs "
                    "the strategy the Rollout's own spec names; blue-green needs a Rollout with "
                    "`strategy.blueGreen` (`release-actions argo render --strategy blue-green` "
                    "writes one)"
                )
            if blue_green.get("autoPromotionEnabled") is not False:
                return (
                    f"{self.where} promotes automatically (`autoPromotionEnabled` is not "
                    "false): Argo would switch users to the new version as soon as the preview "
                    "is ready, before any smoke check; set `autoPromotionEnabled: false`"
                )
            return None
        if blue_green is not None:
            return (
                f"{self.where} is a blue-green Rollout (`spec.strategy.blueGreen`), and Argo "
                f"runs the strategy the Rollout's own spec names; `{strategy}` needs a Rollout "
                "with `strategy.canary` (`release-actions argo render --strategy canary`)"
            )
        return None

    def _bg_trial(self, ro: Mapping[str, Any]) -> bool:
        """A blue-green release under way: from ``begin`` until ``promote`` recorded its end.

        Argo's own view (``stableRS``) moves to the new ReplicaSet right after the switch
        (or after its post-promotion analysis), while release-actions still holds it on
        trial with the old ReplicaSet at full size; the known-good record says which
        release is on trial, and ``PROMOTED`` whether ``promote`` ended it.
        """
        if self._in_progress(ro):
            return True
        text = annotations_of(ro).get(KNOWN_GOOD)
        record = self._record(ro)
        if record is None or record.rollout is None or text is None:
            return False
        version = self._template_version(self._spec_template(ro))
        return (
            version == image_version(record.rollout)
            and version != record.version
            and annotations_of(ro).get(PROMOTED) != _digest(text)
        )

    @staticmethod
    def _bg_status_of(ro: Mapping[str, Any]) -> dict[str, Any]:
        return dict((ro.get("status") or {}).get("blueGreen") or {})

    def _bg_switched(self, ro: Mapping[str, Any]) -> bool:
        """The active Service selects the new ReplicaSet (Argo's status says which one it does)."""
        current = self._status(ro).get("currentPodHash")
        return bool(current) and self._bg_status_of(ro).get("activeSelector") == current

    def _bg_status(self, ro: Mapping[str, Any], record: KnownGood | None) -> TargetStatus:
        trial = self._bg_trial(ro)
        new = self._template_version(self._spec_template(ro))
        if trial and record is not None:
            stable = record.version
        else:
            stable = self._template_version(self._stable_template(ro))
        return TargetStatus(
            stable_version=stable,
            canary_version=new if trial else None,
            canary_weight=100 if trial and self._bg_switched(ro) else 0,
            known_good=record.version if record is not None else None,
            state=self._read_state(ro),
        )

    def _bg_begin(self, ro: dict[str, Any], version: str, image: str) -> None:
        current = self._template_version(self._spec_template(ro))
        if self._bg_trial(ro):
            if current != image_version(image):
                raise TargetError(
                    f"The blue-green release of {current} is still in progress on {self.where}; "
                    f"cannot start {version}.",
                    hint="Roll it back or promote it first.",
                )
        elif current == image_version(image):
            raise TargetError(f"{version} is already the stable version of {self.where}.")
        else:
            why = self.refusal("blue-green")
            if why is not None:
                raise TargetError(f"Cannot start {version} as blue-green: {why}.")
            self._start(ro, version, image)
        self._wait("bring the preview up at full size and pause before the switch", self._bg_held)

    def _bg_held(self, ro: Mapping[str, Any]) -> bool:
        """The new ReplicaSet is the preview and Argo waits before the switch (or is past it)."""
        self._fail_if_aborted(ro)
        status = self._status(ro)
        bg = _blue_green_of(ro) or {}
        current = status.get("currentPodHash")
        if bg.get("previewService") and self._bg_status_of(ro).get("previewSelector") != current:
            return False
        paused = any(
            c.get("reason") == BLUE_GREEN_PAUSE for c in status.get("pauseConditions") or []
        )
        return paused or self._bg_switched(ro)

    def preview(self) -> Preview | None:
        """The preview Service's in-cluster URL: it selects only the new ReplicaSet."""
        ro = self._get()
        bg = _blue_green_of(ro)
        if bg is None:
            return None
        if not self._bg_trial(ro):
            raise TargetError(
                f"No blue-green release is in progress on {self.where}, so there is nothing "
                "to preview.",
                hint="Call begin(version) first.",
            )
        service = bg.get("previewService")
        if not service:
            raise TargetError(
                f"{self.where} has no `previewService`, so nothing reaches the new version "
                "before the switch.",
                hint="Add `previewService` to `strategy.blueGreen` (`release-actions argo "
                "render --strategy blue-green` writes one), or set the policy's "
                "`deploy.blue_green.preview_url`.",
            )
        return Preview(
            url=f"http://{service}.{self.namespace}.svc.cluster.local",
            detail=f"Service `{service}`, which Argo points at the new ReplicaSet "
            f"({self._status(ro).get('currentPodHash')}) only",
        )

    def switch(self) -> None:
        """`kubectl argo rollouts promote`: Argo then points the active Service at the new one.

        As the plugin does for a blueGreen Rollout: ``status.pauseConditions: null`` through
        the status subresource, and ``spec.paused: false`` when the Rollout is paused by
        hand. A second call finds the active Service switched and sends nothing.
        """
        ro = self._get()
        if _blue_green_of(ro) is None:
            raise TargetError(
                f"{self.where} is a canary Rollout: there is no switch, only weights.",
                hint="Release it as `canary`, or render a blueGreen Rollout.",
            )
        if not self._bg_trial(ro):
            raise TargetError(
                f"No blue-green release is in progress on {self.where}, so there is nothing "
                "to switch to.",
                hint="Call begin(version) first.",
            )
        if not self._bg_switched(ro):
            ro = self._wait("pause before the switch", self._bg_held)
        if not self._bg_switched(ro):
            if self._status(ro).get("pauseConditions"):
                self._patch_status(f"Promoting {self.where}", {"status": {"pauseConditions": None}})
            if (ro.get("spec") or {}).get("paused"):
                self.kube.retry(
                    f"Unpausing {self.where}",
                    lambda: self._patch_object({"spec": {"paused": False}}, MERGE_PATCH),
                )
        self._wait("switch the active Service to the new ReplicaSet", self._bg_switched_ok)

    def _bg_switched_ok(self, ro: Mapping[str, Any]) -> bool:
        self._fail_if_aborted(ro)
        return self._bg_switched(ro)

    def _bg_promote(self, ro: dict[str, Any]) -> None:
        """After the hold: Argo's promotion done, and the trial recorded as ended."""
        if self._in_progress(ro):
            self._fail_if_aborted(ro)
            if not self._bg_switched(ro) and not self._status(ro).get("promoteFull"):
                # Not switched yet (promote without a switch): all at once, as `promote --full`.
                self._patch_status(f"Promoting {self.where}", {"status": {"promoteFull": True}})
            # Switched: Argo makes the new ReplicaSet stable once its post-promotion
            # analysis passes; an abort from that analysis fails here.
            self._wait("become healthy on the new version", self._healthy)

        def change(current: dict[str, Any]) -> list[dict[str, Any]]:
            text = annotations_of(current).get(KNOWN_GOOD)
            if text is None or self._in_progress(current) or not self._bg_trial(current):
                return []
            return annotation_ops(current, {PROMOTED: _digest(text)})

        self._patch_guarded(f"Recording the promotion on {self.where}", change)

    def abort(self) -> None:
        """`kubectl argo rollouts abort`: traffic back to stable, ``spec.template`` left as it is."""
        self._patch_status(f"Aborting {self.where}", {"status": {"abort": True}})

    def health(self, track: Track | None = None) -> HealthSample:
        ro = self._get()
        status = self._status(ro)
        base = selector_text((ro.get("spec") or {}).get("selector"))
        trial = _blue_green_of(ro) is not None and self._bg_trial(ro)
        record = self._record(ro) if trial else None
        if track is Track.CANARY:
            if not (self._in_progress(ro) or trial):
                return no_canary_health()
            selector = f"{base},{HASH_LABEL}={status.get('currentPodHash')}"
        elif track is Track.STABLE:
            # During a blue-green trial the old ReplicaSet is the stable one, whatever Argo
            # has marked stable since the switch.
            stable = (record.pod_template_hash if record else None) or status.get("stableRS")
            selector = f"{base},{HASH_LABEL}={stable}"
        else:
            selector = base
        return self._health([selector])


def _blue_green_of(ro: Mapping[str, Any]) -> dict[str, Any] | None:
    """``spec.strategy.blueGreen``, or None for a canary Rollout."""
    strategy = (ro.get("spec") or {}).get("strategy") or {}
    bg = strategy.get("blueGreen")
    return dict(bg) if isinstance(bg, Mapping) else None


def _digest(text: str) -> str:
    return sha256(text.encode()).hexdigest()[:16]


def _steps_ops(ro: Mapping[str, Any], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    strategy = (ro.get("spec") or {}).get("strategy") or {}
    canary = strategy.get("canary")
    if canary is None:
        raise TargetError(
            f"rollout/{(ro.get('metadata') or {}).get('name')} has no canary strategy.",
            hint="release-actions drives canary Rollouts (`strategy: canary:`), as in source §4.4.",
        )
    if normalize(canary.get("steps") or []) == normalize(steps):
        return []
    op = "replace" if "steps" in canary else "add"
    return [{"op": op, "path": "/spec/strategy/canary/steps", "value": steps}]


# ------------------------------------------------------------------------------- rendering


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


DATADOG_QUERIES = {
    # Source §4.4, as written there.
    "success-rate": "sum:triptrip.http.request.count{service:{{args.service-name}},status_class:2xx} /\n"
    "sum:triptrip.http.request.count{service:{{args.service-name}}}\n",
    "latency-p99": "avg:triptrip.http.request.duration.99percentile{service:{{args.service-name}}}\n",
}
PROMETHEUS_QUERIES = {
    # The same two questions over the metric names the Prometheus provider reads.
    "success-rate": 'sum(rate(http_requests_total{service="{{args.service-name}}",code!~"5.."}[{{args.interval}}]))\n'
    '/\nsum(rate(http_requests_total{service="{{args.service-name}}"}[{{args.interval}}]))\n',
    "latency-p99": "histogram_quantile(0.99, sum by (le) (rate(\n"
    '  http_request_duration_seconds_bucket{service="{{args.service-name}}"}[{{args.interval}}]))) * 1000\n',
}


# Where the job of the sequential judge finds the policy that `argo render` read.
POLICY_MOUNT = "/etc/release-actions"
DEFAULT_IMAGE = "ghcr.io/triptrip/release-actions"


def _looks(analysis_seconds: int, interval_seconds: int, failure_limit: int) -> int:
    """Measurements of one step analysis: one analysis window, and always more than the limit.

    Argo refuses a step analysis whose metric has an interval and no count (it would run
    forever), and a count no larger than ``failureLimit`` could never fail.
    """
    return max(-(-analysis_seconds // interval_seconds), failure_limit + 1)


def _job_policy(policy: Policy) -> str:
    """The policy keys the sequential judge's job reads, as a policy file (the rest are defaults)."""
    from io import StringIO

    from ruamel.yaml import YAML

    from release_actions.core.policy import ANALYSIS_KEYS_COMMON, ANALYSIS_KEYS_READ

    keys = ANALYSIS_KEYS_COMMON | ANALYSIS_KEYS_READ["sequential"]
    analysis = policy.canary.analysis.model_dump(mode="json")
    data = {
        "canary": {"analysis": {k: v for k, v in analysis.items() if k in keys}},
        "metrics": policy.metrics.model_dump(mode="json"),
    }
    yaml = YAML()
    yaml.default_flow_style = False
    out = StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def render_argo(
    policy: Policy,
    *,
    name: str,
    namespace: str,
    provider: Literal["datadog", "prometheus"],
    service: str,
    replicas: int = 10,
    image: str | None = None,
    virtual_service: str | None = None,
    routes: tuple[str, ...] = ("primary",),
    canary_service: str | None = None,
    stable_service: str | None = None,
    prometheus_address: str = "http://prometheus.monitoring.svc:9090",
    template_name: str = "success-rate",
    judge: Literal["threshold", "sequential"] = "threshold",
    analysis_image: str | None = None,
    credentials_from: str = "release-actions-metrics",
    strategy: str | None = None,
    active_service: str | None = None,
    preview_service: str | None = None,
    port: int = 8080,
) -> str:
    """The Rollout, its AnalysisTemplate and the §4.2 Istio objects of the policy, as YAML.

    ``strategy`` (default: the policy's ``deploy.strategy``; ``rolling`` is a canary
    Rollout) picks the Rollout's kind. ``blue-green`` renders ``strategy.blueGreen``
    instead of steps and Istio objects: see ``_blue_green``.

    For teams that let Argo run the analysis (source §4.4): each step but the last sets the
    weight, pauses for the step's time and runs the analysis. ``judge="threshold"`` is the
    document's AnalysisTemplate with the policy's thresholds (defaults: success rate >= 0.99,
    p99 < 500 ms, every 1m, failureLimit 3); ``judge="sequential"`` is a job metric that runs
    ``release-actions canary analyze`` in ``analysis_image``, so Argo gets this project's
    judge and the job's exit code decides.

    Traffic goes through the Istio VirtualService ``virtual_service`` (default: the policy's
    ``deploy.kubernetes.istio``, else ``service``) and its route ``primary``, rendered as in
    §4.2 with the header route first. The split is by the DestinationRule's subsets, unless
    ``canary_service`` and ``stable_service`` are given (Argo's host-level split: the route
    goes to those two Services). ``virtual_service=""`` leaves traffic routing out.
    """
    from io import StringIO

    from ruamel.yaml import YAML
    from ruamel.yaml.scalarstring import LiteralScalarString

    from release_actions.core.policy import default_policy

    if provider not in ("datadog", "prometheus"):
        raise TargetError(f"Unknown analysis provider `{provider}`: use `datadog` or `prometheus`.")
    if judge not in ("threshold", "sequential"):
        raise TargetError(f"Unknown judge `{judge}`: use `threshold` or `sequential`.")
    if bool(canary_service) != bool(stable_service):
        raise TargetError(
            "Only one of `canary-service` and `stable-service` is set.",
            hint="Give both for a split between two Services, or neither for a split between "
            "the DestinationRule's subsets.",
        )
    if canary_service and canary_service == stable_service:
        raise TargetError(
            f"`canary-service` and `stable-service` are both `{canary_service}`: Argo needs two."
        )
    kind = _render_strategy(strategy if strategy is not None else policy.deploy.strategy)
    if kind == "blue-green" and (canary_service or stable_service or virtual_service):
        raise TargetError(
            "`canary-service`, `stable-service` and `virtual-service` belong to a canary "
            "Rollout; a blue-green Rollout routes by its two Services.",
            hint="Use `active-service` and `preview-service` with `strategy: blue-green`, or "
            "render `--strategy canary`.",
        )
    if kind == "canary" and (active_service or preview_service):
        raise TargetError(
            "`active-service` and `preview-service` belong to a blue-green Rollout.",
            hint="Render with `--strategy blue-green`, or use `canary-service` and "
            "`stable-service` for a canary's split between two Services.",
        )
    analysis = policy.canary.analysis
    interval = _duration(analysis.interval_seconds)
    labels = {"app": name}
    args = [{"name": "service-name", "value": service}]
    steps: list[dict[str, Any]] = []
    for step in policy.canary.resolved_steps():
        steps.append({"setWeight": step.weight})
        if step.pause_seconds:
            steps.append({"pause": {"duration": _duration(step.pause_seconds)}})
        if step.analysis and step.weight < 100:
            steps.append(
                {"analysis": {"templates": [{"templateName": template_name}], "args": list(args)}}
            )
    canary: dict[str, Any] = {"steps": steps, "abortScaleDownDelaySeconds": 30}
    documents: list[dict[str, Any]] = []
    track = (
        policy.metrics.prometheus.track_label
        if provider == "prometheus"
        else policy.metrics.datadog.track_tag
    )
    istio = policy.deploy.kubernetes.istio or default_policy().deploy.kubernetes.istio
    assert istio is not None  # the defaults have Istio (source §4.2)
    vs = (
        virtual_service
        if virtual_service is not None
        else (
            policy.deploy.kubernetes.istio.virtual_service
            if policy.deploy.kubernetes.istio
            else service
        )
    )
    rollout_strategy: dict[str, Any] = {"canary": canary}
    if kind == "blue-green":
        active = active_service or service
        rollout_strategy = {
            "blueGreen": _blue_green(
                policy,
                active=active,
                preview=preview_service or f"{active}-preview",
                analysis={"templates": [{"templateName": template_name}], "args": list(args)},
                track=track,
            )
        }
        services = (active, preview_service or f"{active}-preview")
        documents += [_service(svc, namespace, labels, port) for svc in services]
    elif vs:
        canary.update(
            _istio(
                name=name,
                namespace=namespace,
                labels=labels,
                virtual_service=vs,
                route=routes,
                host=service,
                canary_service=canary_service,
                stable_service=stable_service,
                istio=istio,
                documents=documents,
            )
        )
        # The project's queries tell the tracks apart by this label (source §4.2's `track`);
        # Argo puts it on the pods of each ReplicaSet while it is canary or stable.
        canary["canaryMetadata"] = {"labels": {track: "canary"}}
        canary["stableMetadata"] = {"labels": {track: "stable"}}
    rollout = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "api", "image": image or f"{name}:latest"}]},
            },
            "strategy": rollout_strategy,
            # AnalysisRunStrategy: the history limits belong to spec.analysis, not to the
            # canary's (background) analysis.
            "analysis": {"successfulRunHistoryLimit": 3, "unsuccessfulRunHistoryLimit": 3},
        },
    }
    looks = _looks(analysis.analysis_seconds, analysis.interval_seconds, analysis.failure_limit)

    def metric(metric_name: str, condition: str) -> dict[str, Any]:
        if provider == "datadog":
            source: dict[str, Any] = {
                "datadog": {
                    "apiVersion": "v1",
                    "query": LiteralScalarString(DATADOG_QUERIES[metric_name]),
                }
            }
        else:
            query = PROMETHEUS_QUERIES[metric_name].replace("{{args.interval}}", interval)
            source = {
                "prometheus": {"address": prometheus_address, "query": LiteralScalarString(query)}
            }
        return {
            "name": metric_name,
            "interval": interval,
            "count": looks,
            "successCondition": condition,
            "failureLimit": analysis.failure_limit,
            "provider": source,
        }

    if judge == "threshold":
        metrics = [
            metric("success-rate", f"result[0] >= {analysis.min_success_rate:g}"),
            metric("latency-p99", f"result[0] < {analysis.max_p99_ms:g}"),
        ]
    else:
        config = f"{template_name}-policy"
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": config, "namespace": namespace},
                "data": {"release-policy.yml": LiteralScalarString(_job_policy(policy))},
            }
        )
        metrics = [
            _job_metric(
                provider=provider,
                image=analysis_image or default_analysis_image(),
                config=config,
                prometheus_address=prometheus_address,
                secret=credentials_from,
                deadline_seconds=analysis.analysis_seconds + 600,
            )
        ]
    template = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": template_name, "namespace": namespace},
        "spec": {"args": [{"name": "service-name"}], "metrics": metrics},
    }
    yaml = YAML()
    yaml.default_flow_style = False
    out = StringIO()
    out.write(
        "# Generated by release-actions from the release policy (source §4.2, §4.4); "
        f"provider: {provider}, judge: {judge}, strategy: {kind}.\n"
    )
    yaml.dump_all([rollout, template, *documents], out)
    return out.getvalue()


def _render_strategy(strategy: str) -> Literal["canary", "blue-green"]:
    if strategy in ("canary", "rolling"):
        return "canary"  # rolling is a canary Rollout that the target sends straight to 100 %
    if strategy == "blue-green":
        return "blue-green"
    if strategy == "shadow":
        raise TargetError(
            "`argo render` has no shadow Rollout: Argo mirrors traffic only from a canary "
            "step (`setMirrorRoute`), which needs `trafficRouting.managedRoutes` and routes "
            "that Argo manages in the VirtualService, and release-actions does not drive it.",
            hint="Render `--strategy canary` or `--strategy blue-green` (shadow's `then`), or "
            "run the shadow on the `kubernetes` target with Istio.",
        )
    raise TargetError(f"Unknown strategy `{strategy}`: use `canary`, `blue-green` or `rolling`.")


def _blue_green(
    policy: Policy,
    *,
    active: str,
    preview: str,
    analysis: dict[str, Any],
    track: str,
) -> dict[str, Any]:
    """``strategy.blueGreen`` with the policy's hold and the canary's AnalysisTemplate.

    Argo brings the new ReplicaSet up at full size behind ``preview`` and waits
    (``autoPromotionEnabled: false``) until release-actions promotes it after the smoke
    checks; ``prePromotionAnalysis`` must pass before it even pauses there, and
    ``postPromotionAnalysis`` runs after the switch, aborting back to the old ReplicaSet on
    a failure. The old ReplicaSet stays at full size for ``scaleDownDelaySeconds``, the
    hold (``deploy.blue_green.hold_seconds``, else ``monitor.duration_seconds``), so a
    rollback within it is a selector switch, not a scale-up.
    """
    if active == preview:
        # validation.go ValidateRolloutStrategyBlueGreen: DuplicatedServicesBlueGreenMessage.
        raise TargetError(
            f"`active-service` and `preview-service` are both `{active}`: Argo needs two."
        )
    hold = policy.deploy.blue_green.hold_seconds or policy.monitor.duration_seconds
    return {
        "activeService": active,
        "previewService": preview,
        "autoPromotionEnabled": False,
        "scaleDownDelaySeconds": hold,
        "prePromotionAnalysis": copy.deepcopy(analysis),
        "postPromotionAnalysis": copy.deepcopy(analysis),
        # As canaryMetadata and stableMetadata do for a canary: the project's queries tell
        # the new version's pods from the old ones' by this label.
        "previewMetadata": {"labels": {track: "canary"}},
        "activeMetadata": {"labels": {track: "stable"}},
    }


def _service(name: str, namespace: str, labels: dict[str, str], port: int) -> dict[str, Any]:
    """A Service of a blue-green Rollout; Argo adds ``rollouts-pod-template-hash`` to its selector."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": dict(labels),
            "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}],
        },
    }


def default_analysis_image() -> str:
    """The project's image at the installed version, which runs the sequential judge's job."""
    from release_actions import __version__

    return f"{DEFAULT_IMAGE}:{__version__}"


def _istio(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    virtual_service: str,
    route: tuple[str, ...],
    host: str,
    canary_service: str | None,
    stable_service: str | None,
    istio: IstioSettings,
    documents: list[dict[str, Any]],
) -> dict[str, Any]:
    """The canary's traffic routing, with the §4.2 VirtualService (and DestinationRule) it names."""
    primary = route[0] if route else "primary"
    routing: dict[str, Any] = {"virtualService": {"name": virtual_service, "routes": [primary]}}
    strategy: dict[str, Any] = {"trafficRouting": {"istio": routing}}

    def to(track: Literal["canary", "stable"]) -> dict[str, Any]:
        if canary_service and stable_service:
            return {"host": canary_service if track == "canary" else stable_service}
        return {
            "host": host,
            "subset": istio.canary_subset if track == "canary" else istio.stable_subset,
        }

    if canary_service and stable_service:
        # Host-level split: Argo requires both Services (validation.go, requireCanaryStableServices).
        strategy["canaryService"] = canary_service
        strategy["stableService"] = stable_service
    else:
        rule = istio.destination_rule or virtual_service
        routing["destinationRule"] = {
            "name": rule,
            "canarySubsetName": istio.canary_subset,
            "stableSubsetName": istio.stable_subset,
        }
        # Argo adds each ReplicaSet's rollouts-pod-template-hash to these labels.
        documents.append(
            {
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "DestinationRule",
                "metadata": {"name": rule, "namespace": namespace},
                "spec": {
                    "host": host,
                    "subsets": [
                        {"name": istio.stable_subset, "labels": dict(labels)},
                        {"name": istio.canary_subset, "labels": dict(labels)},
                    ],
                },
            }
        )
    http: list[dict[str, Any]] = []
    if istio.canary_header is not None:
        header = istio.canary_header
        http.append(
            {
                "name": "canary-header",
                "match": [{"headers": {header.name: {"exact": header.value}}}],
                "route": [{"destination": to("canary")}],
            }
        )
    # Argo sets these weights; it starts all stable.
    http.append(
        {
            "name": primary,
            "route": [
                {"destination": to("stable"), "weight": 100},
                {"destination": to("canary"), "weight": 0},
            ],
        }
    )
    documents.insert(
        0,
        {
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": virtual_service, "namespace": namespace},
            "spec": {"hosts": [host], "http": http},
        },
    )
    return strategy


def _job_metric(
    *,
    provider: str,
    image: str,
    config: str,
    prometheus_address: str,
    secret: str,
    deadline_seconds: int,
) -> dict[str, Any]:
    """A job metric that runs the sequential judge once over the last analysis window.

    Argo counts a job that succeeds as a successful measurement and a failed one as failed;
    `canary analyze` exits 0 only when the canary passes. No retries (a failed analysis run
    again could pass by chance), no interval (one measurement), failureLimit 0.
    """
    command = [
        "release-actions",
        "canary",
        "analyze",
    ]
    args = [
        "--provider",
        provider,
        "--judge",
        "sequential",
        "--policy",
        f"{POLICY_MOUNT}/release-policy.yml",
        "--provider-setting",
        "service={{args.service-name}}",
    ]
    if provider == "prometheus":
        args += ["--provider-setting", f"url={prometheus_address}"]
    container: dict[str, Any] = {
        "name": "analyze",
        "image": image,
        "command": command,
        "args": args,
        # DD_API_KEY and DD_APP_KEY, or PROMETHEUS_TOKEN, when the provider needs them.
        "envFrom": [{"secretRef": {"name": secret, "optional": True}}],
        "volumeMounts": [{"name": "policy", "mountPath": POLICY_MOUNT, "readOnly": True}],
    }
    return {
        "name": "sequential-judge",
        "failureLimit": 0,
        "provider": {
            "job": {
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": deadline_seconds,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [container],
                            "volumes": [{"name": "policy", "configMap": {"name": config}}],
                        }
                    },
                }
            }
        },
    }
