"""The fake Argo Rollouts controller for a ``strategy.blueGreen`` Rollout (argo-rollouts rollout/bluegreen.go).

Called by ``Cluster._sync_rollout`` under the cluster's lock, one reconciliation per call,
in the order the real controller takes (``rolloutBlueGreen``): the new ReplicaSet is found
or created, the preview Service's selector moves to it, the ReplicaSets are scaled (the
new one and the stable one to full size, the others down once their
``scale-down-deadline`` annotation has passed, ``scaleDownDelaySeconds`` after they
stopped being referenced), the ``BlueGreenPause`` is added once the new ReplicaSet is
fully available and its pre-promotion analysis passed, the active Service's selector
moves once the pause is cleared (``kubectl argo rollouts promote`` clears
``status.pauseConditions``) or the update is fast-tracked, post-promotion analysis runs,
and the new ReplicaSet becomes ``stableRS`` (``shouldFullPromote``). ``status.abort``
points the active Service back at ``stableRS``.

Simplifications: analyses end at once with ``Cluster.argo_analysis_phase`` (Successful,
or an abort); an aborted new ReplicaSet is scaled down at once (the real one waits
``abortScaleDownDelaySeconds``); ``previewReplicaCount``, ``autoPromotionSeconds`` pauses
that end by themselves, anti-affinity and ``rollbackWindow`` are not modelled.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.fakes.kubernetes_cluster import (
    ARGO_HASH,
    ARGO_REVISION,
    BY_KEY,
    _available,
    normalize,
    now_rfc3339,
    pod_template_defaults,
    revision_of,
    selector_text,
    template_hash,
    without_label,
)

if TYPE_CHECKING:
    from tests.fakes.kubernetes_cluster import Cluster

SCALE_DOWN_DEADLINE = "argo-rollouts.argoproj.io/scale-down-deadline"
MANAGED_BY = "argo-rollouts.argoproj.io/managed-by-rollouts"
PAUSE_REASON = "BlueGreenPause"
DEFAULT_SCALE_DOWN_DELAY = 30  # defaults.DefaultScaleDownDelaySeconds


def _deadline(rs: dict[str, Any]) -> datetime | None:
    text = ((rs.get("metadata") or {}).get("annotations") or {}).get(SCALE_DOWN_DEADLINE)
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _hash(rs: dict[str, Any] | None) -> str:
    return str(((rs or {}).get("metadata") or {}).get("labels", {}).get(ARGO_HASH, ""))


def _created(cluster: Cluster, rs: dict[str, Any]) -> tuple[str, int]:
    """Creation order: the timestamp, then the resourceVersion the object was added at (the
    fake's timestamps have whole seconds, and a test creates ReplicaSets within one)."""
    uid = rs["metadata"].get("uid")
    added = next(
        (
            e.rv
            for e in cluster.log
            if e.type == "ADDED" and e.obj.get("metadata", {}).get("uid") == uid
        ),
        0,
    )
    return str(rs["metadata"].get("creationTimestamp", "")), added


def _set_deadline(cluster: Cluster, rs: dict[str, Any], seconds: int) -> None:
    before = copy.deepcopy(rs)
    at = (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rs["metadata"].setdefault("annotations", {})[SCALE_DOWN_DEADLINE] = at
    cluster._write("replicasets", rs, before)


def _remove_deadline(cluster: Cluster, rs: dict[str, Any] | None) -> None:
    if rs is None or SCALE_DOWN_DEADLINE not in (rs["metadata"].get("annotations") or {}):
        return
    before = copy.deepcopy(rs)
    del rs["metadata"]["annotations"][SCALE_DOWN_DEADLINE]
    cluster._write("replicasets", rs, before)


def _switch(cluster: Cluster, svc: dict[str, Any], pod_hash: str, rollout: str) -> None:
    """service.go switchServiceSelector: the hash label into the selector, and the owner mark."""
    before = copy.deepcopy(svc)
    svc.setdefault("spec", {}).setdefault("selector", {})[ARGO_HASH] = pod_hash
    svc.setdefault("metadata", {}).setdefault("annotations", {})[MANAGED_BY] = rollout
    cluster._write("services", svc, before)


def _analysis(cluster: Cluster, status: dict[str, Any], key: str, name: str) -> str:
    """The phase of the pre- or post-promotion analysis of the current pod hash, run once."""
    bg = status.setdefault("blueGreen", {})
    run = bg.get(key)
    if not run:
        run = {"name": name, "status": cluster.argo_analysis_phase}
        bg[key] = run
    return str(run["status"])


def sync_blue_green(cluster: Cluster, ro: dict[str, Any]) -> None:
    before_ro = copy.deepcopy(ro)
    spec, meta = ro["spec"], ro["metadata"]
    ns, name = meta["namespace"], meta["name"]
    strategy = spec["strategy"]["blueGreen"]
    template = spec.get("template") or {}
    replicas = int(spec.get("replicas", 1))
    status: dict[str, Any] = copy.deepcopy(ro.get("status") or {})
    services = BY_KEY["/services"]
    active_name, preview_name = strategy.get("activeService", ""), strategy.get("previewService")
    active_svc = cluster._raw(services, ns, active_name)
    preview_svc = cluster._raw(services, ns, preview_name) if preview_name else None
    missing = (
        ("activeService", active_name)
        if active_svc is None
        else ("previewService", preview_name)
        if preview_name and preview_svc is None
        else None
    )
    if missing is not None:
        field, svc_name = missing
        status["phase"] = "Degraded"
        status["message"] = (
            f'InvalidSpec: The Rollout "{name}" is invalid: spec.strategy.blueGreen.{field}: '
            f'Invalid value: "{svc_name}": service "{svc_name}" not found'
        )
        ro["status"] = status
        if normalize(ro) != normalize(before_ro):
            cluster._store(BY_KEY["argoproj.io/rollouts"], ro, "MODIFIED")
        return
    assert active_svc is not None

    # getAllReplicaSetsAndSyncRevision: the ReplicaSet of the template, created if new.
    rss = cluster._owned("replicasets", ro)
    wanted = normalize(pod_template_defaults(template))
    new_rs = next(
        (rs for rs in rss if normalize(without_label(rs["spec"]["template"], ARGO_HASH)) == wanted),
        None,
    )
    old = [rs for rs in rss if rs is not new_rs]
    max_old = max((revision_of(rs, ARGO_REVISION) for rs in old), default=0)
    if new_rs is None:
        h = template_hash(template, int(status.get("collisionCount") or 0))
        new_rs = cluster._create_rs(ro, template, ARGO_HASH, h, {ARGO_REVISION: str(max_old + 1)})
    else:
        cluster._set_new_rs_annotations(ro, new_rs, max_old + 1, ARGO_REVISION)
    meta.setdefault("annotations", {})[ARGO_REVISION] = new_rs["metadata"]["annotations"][
        ARGO_REVISION
    ]
    pod_hash = _hash(new_rs)
    if not status.get("stableRS"):
        status["stableRS"] = pod_hash  # the first version is stable at once ("Initial deploy")
    if status.get("currentPodHash") != pod_hash:
        # CheckPodSpecChange -> resetRolloutStatus: a new template starts from scratch.
        for k in ("pauseConditions", "abort", "controllerPause", "promoteFull", "abortedAt"):
            status.pop(k, None)
        bg_status = status.setdefault("blueGreen", {})
        for k in ("prePromotionAnalysisRunStatus", "postPromotionAnalysisRunStatus"):
            bg_status.pop(k, None)
    status["currentPodHash"] = pod_hash
    stable_rs = next((rs for rs in rss if _hash(rs) == status["stableRS"]), None)
    if stable_rs is None and status["stableRS"] == pod_hash:
        stable_rs = new_rs
    if status.get("promoteFull"):
        status.pop("pauseConditions", None)
        status.pop("abort", None)

    now = datetime.now(UTC)
    new_deadline = _deadline(new_rs)
    within_delay = new_deadline is not None and new_deadline > now  # newRSWithinDelay
    rollback_to_stable = status["stableRS"] == pod_hash
    older = stable_rs is not None and _created(cluster, new_rs) < _created(cluster, stable_rs)
    fast_rollback = (rollback_to_stable or older) and (within_delay or rollback_to_stable)
    aborted = bool(status.get("abort"))
    paused = bool(spec.get("paused"))  # haltProgress: "user paused"

    if not paused and preview_svc is not None:  # reconcilePreviewService, before anything else
        _switch(cluster, preview_svc, pod_hash, name)

    # reconcileBlueGreenReplicaSets: deadlines off the new and stable ones, both at full
    # size (the new one down at once when aborted), the others down past their deadline.
    if not aborted:
        _remove_deadline(cluster, new_rs)
    if stable_rs is not None and stable_rs is not new_rs:
        _remove_deadline(cluster, stable_rs)
        cluster._scale(stable_rs, replicas, replicas)
    cluster._scale(new_rs, 0 if aborted and not rollback_to_stable else replicas, replicas)
    active_hash = str((active_svc.get("spec") or {}).get("selector", {}).get(ARGO_HASH, ""))
    preview_hash = str(
        ((preview_svc or {}).get("spec") or {}).get("selector", {}).get(ARGO_HASH, "")
    )
    delay = strategy.get("scaleDownDelaySeconds")
    delay = DEFAULT_SCALE_DOWN_DELAY if delay is None else int(delay)
    for rs in old:
        if rs is stable_rs or _hash(rs) in (active_hash, preview_hash):
            continue  # isReplicaSetReferenced
        if not int(rs["spec"].get("replicas") or 0):
            continue
        deadline = _deadline(rs)
        if deadline is None:
            _set_deadline(cluster, rs, delay)
        elif deadline <= now:
            cluster._scale(rs, 0, replicas)
    for rs in cluster._owned("replicasets", ro):
        cluster._sync_pods(rs)
    new_pods = cluster._owned("pods", new_rs)
    new_ready = int(new_rs["spec"].get("replicas") or 0) == replicas and (
        _available(new_pods) >= replicas
    )

    # reconcileBlueGreenPause, with the status as it was read (the promote's cleared pause
    # and the controllerPause it leaves are what let the switch below happen).
    auto = strategy.get("autoPromotionEnabled")
    needs_pause = auto is False or int(strategy.get("autoPromotionSeconds") or 0) > 0
    fast_tracked = (
        fast_rollback
        or bool(status.get("promoteFull"))
        or not active_hash
        or active_hash == pod_hash
    )
    conds = list(status.get("pauseConditions") or [])
    mine = next((c for c in conds if c.get("reason") == PAUSE_REASON), None)
    pre = strategy.get("prePromotionAnalysis")
    pre_done = True
    just_paused = False
    if not aborted and new_ready and not paused:
        if fast_tracked or not needs_pause:
            conds = [c for c in conds if c is not mine]
        else:
            if pre and (pre.get("templates") or []):
                phase = _analysis(
                    cluster, status, "prePromotionAnalysisRunStatus", f"{name}-{pod_hash}-pre"
                )
                pre_done = phase == "Successful"
                if phase in ("Failed", "Error"):
                    status["abort"] = aborted = True
                    status["message"] = (
                        "RolloutAborted: Rollout aborted update to revision "
                        f"{new_rs['metadata']['annotations'][ARGO_REVISION]}: metric failed"
                    )
            if pre_done and not aborted and mine is None and not status.get("controllerPause"):
                conds.append({"reason": PAUSE_REASON, "startTime": now_rfc3339()})
                just_paused = True
    if auto is False:  # CompletedBlueGreenPause: only a person (or release-actions) ends it
        completed = bool(status.get("controllerPause")) and mine is None and not just_paused
    else:
        completed = not just_paused

    # reconcileActiveService
    if not paused and new_ready:
        target = active_hash
        if fast_tracked or (completed and pre_done):
            target = pod_hash
        if aborted:
            target = status["stableRS"]
        if target and target != active_hash:
            _switch(cluster, active_svc, target, name)
            active_hash = target

    # Post-promotion analysis, once the active Service reaches the new ReplicaSet.
    post = strategy.get("postPromotionAnalysis")
    post_ok = True
    if post and (post.get("templates") or []) and not rollback_to_stable and not fast_rollback:
        post_ok = False
        if active_hash == pod_hash and not aborted:
            phase = _analysis(
                cluster, status, "postPromotionAnalysisRunStatus", f"{name}-{pod_hash}-post"
            )
            post_ok = phase == "Successful"
            if phase in ("Failed", "Error"):
                status["abort"] = aborted = True
                status["message"] = (
                    "RolloutAborted: Rollout aborted update to revision "
                    f"{new_rs['metadata']['annotations'][ARGO_REVISION]}: metric failed"
                )
                _switch(cluster, active_svc, status["stableRS"], name)
                active_hash = status["stableRS"]

    # shouldFullPromote and promoteStable.
    promoted = False
    if (
        active_hash == pod_hash
        and status["stableRS"] != pod_hash
        and (status.get("promoteFull") or fast_rollback or (not aborted and post_ok))
    ):
        status["stableRS"] = pod_hash
        conds = []
        status.pop("abort", None)
        status.pop("promoteFull", None)
        aborted = False
        promoted = True
    if status["stableRS"] == pod_hash:
        status.pop("promoteFull", None)
    if conds:
        status["pauseConditions"] = conds
        status["controllerPause"] = True
    else:
        status.pop("pauseConditions", None)
        status.pop("controllerPause", None)  # calculateBaseStatus does not carry it over

    active_rs = next(
        (rs for rs in cluster._owned("replicasets", ro) if _hash(rs) == active_hash), None
    )
    active_pods = cluster._owned("pods", active_rs) if active_rs is not None else []
    status["blueGreen"] = {
        **{k: v for k, v in (status.get("blueGreen") or {}).items() if k.endswith("RunStatus")},
        "activeSelector": active_hash,
        **({"previewSelector": preview_hash} if preview_svc is not None else {}),
    }
    status.update(
        {
            "replicas": len(active_pods),
            "updatedReplicas": len(new_pods),
            "readyReplicas": _available(active_pods),
            "availableReplicas": _available(active_pods),
            "observedGeneration": str(meta.get("generation", 1)),
            "selector": selector_text(
                active_rs["spec"]["selector"] if active_rs else spec.get("selector")
            ),
        }
    )
    # rolloututil.go CalculateRolloutPhase
    if aborted:
        status["phase"] = "Degraded"
        if not str(status.get("message", "")).startswith("RolloutAborted"):
            status["message"] = (
                "RolloutAborted: Rollout aborted update to revision "
                f"{new_rs['metadata']['annotations'][ARGO_REVISION]}"
            )
        status.setdefault("abortedAt", now_rfc3339())
    elif paused:
        status["phase"], status["message"] = "Paused", "manually paused"
    elif conds:
        status["phase"], status["message"] = "Paused", PAUSE_REASON
    elif len(new_pods) < replicas:
        status["phase"], status["message"] = "Progressing", "more replicas need to be updated"
    elif _available(new_pods) < len(new_pods):
        status["phase"] = "Progressing"
        status["message"] = "updated replicas are still becoming available"
    elif active_hash != pod_hash:
        status["phase"], status["message"] = "Progressing", "active service cutover pending"
    elif status["stableRS"] != pod_hash:
        status["phase"], status["message"] = "Progressing", "waiting for analysis to complete"
    else:
        status["phase"] = "Healthy"
        status.pop("message", None)
    if not aborted:
        status.pop("abortedAt", None)
    if promoted:
        cluster._cleanup(ro, new_rs, ARGO_REVISION)
    ro["status"] = status
    if normalize(ro) != normalize(before_ro):
        cluster._store(BY_KEY["argoproj.io/rollouts"], ro, "MODIFIED")
