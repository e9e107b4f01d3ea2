"""Build a deploy target by name from the policy, command-line overrides and the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from release_actions.errors import ReleaseActionsError, TargetError, require
from release_actions.targets.base import DeployTarget

if TYPE_CHECKING:
    from release_actions.core.policy import Policy

TARGET_KINDS = ("simulated", "kubernetes", "argo", "cloudrun")
# Where gcloud takes a Cloud Run endpoint override from; release-actions reads the same.
CLOUDRUN_ENDPOINT_ENV = "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN"
PROJECT_ENV = ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "GCLOUD_PROJECT")


@dataclass(frozen=True)
class TargetOptions:
    """Command-line overrides of ``policy.deploy.<kind>``; None keeps the policy's value.

    ``istio=False`` splits Kubernetes traffic by replica counts even when the policy names
    a VirtualService (``--no-istio``). ``poll_interval`` paces the waits for a rollout or an
    operation (seconds). ``cloudrun_endpoint`` points the Cloud Run client elsewhere (an
    emulator or a regional endpoint); without it ``CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN`` is read.
    """

    namespace: str | None = None
    deployment: str | None = None
    rollout: str | None = None
    project: str | None = None
    region: str | None = None
    service: str | None = None
    image: str | None = None
    istio: bool | None = None
    context: str | None = None
    cloudrun_endpoint: str | None = None
    poll_interval: float | None = None
    state_file: Path | None = None


def _kinds() -> str:
    return ", ".join(f"`{k}`" for k in TARGET_KINDS)


def check_kind(kind: str) -> str:
    """The kind, normalised; an unknown one is an error that lists the valid kinds."""
    key = (kind or "").strip().lower()
    if key not in TARGET_KINDS:
        from release_actions.core.yamlpos import did_you_mean

        near = did_you_mean(key, TARGET_KINDS)
        raise ReleaseActionsError(
            f"Unknown deploy target `{kind}`: "
            + (f"{near} " if near else "")
            + f"Use one of {_kinds()}.",
            hint="Set `--target` (the action input `target`) or `deploy.target` in the policy.",
        )
    return key


def strategy_refusal(kind: str, strategy: str, policy: Policy) -> str | None:
    """Why target ``kind``, as the policy sets it up, cannot run ``strategy``; None if it can.

    Known before anything is deployed, so `policy check` and the first step of a release
    refuse it with the reason; the target checks again against what it finds (an Argo
    Rollout's own strategy, a VirtualService that is not there).
    """
    if strategy != "shadow":
        return None
    if kind == "cloudrun":
        return (
            "Cloud Run has no traffic mirroring: its traffic split sends each request to "
            "exactly one revision, so a shadow cannot get a copy"
        )
    if kind == "argo":
        return (
            "Argo Rollouts mirrors only through a `setMirrorRoute` step with managed routes, "
            "which release-actions does not drive yet; use the kubernetes target with Istio"
        )
    if kind == "kubernetes" and policy.deploy.kubernetes.istio is None:
        return (
            "shadow mirrors requests through an Istio VirtualService "
            "(`deploy.kubernetes.istio`); a Kubernetes Service cannot copy them"
        )
    return None


def make_target(
    kind: str,
    policy: Policy,
    env: Mapping[str, str],
    *,
    options: TargetOptions | None = None,
    clock: Any = None,
    api_client: Any = None,
    **overrides: Any,
) -> DeployTarget:
    """The target ``kind`` with settings from ``policy.deploy.<kind>``, overridden by ``options``.

    Credentials come from the environment: ``KUBECONFIG`` (or ``~/.kube/config``, or the
    pod's service account) for ``kubernetes`` and ``argo``; application default credentials
    for ``cloudrun`` (google-github-actions/auth with workload identity writes them, so no
    JSON key is stored). SDKs are imported only for the kind that is built. ``api_client``
    replaces the Kubernetes client built from the environment; ``clock`` is the simulated
    target's. Keyword ``overrides`` are TargetOptions fields, for callers without one.
    """
    key = check_kind(kind)
    opts = options or TargetOptions()
    if overrides:
        opts = TargetOptions(**{**vars(opts), **overrides})
    if key == "simulated":
        return _simulated(opts, clock)
    if key == "kubernetes":
        return _kubernetes(policy, env, opts, api_client)
    if key == "argo":
        return _argo(policy, env, opts, api_client)
    return _cloudrun(policy, env, opts)


def target_label(target: DeployTarget) -> str:
    """What the records and messages call the deployed thing: Deployment, Rollout or service.

    A Cloud Run service has no Deployment, and its ``deployment`` is the target's name.
    """
    service = getattr(target, "service", None)
    if isinstance(service, str) and service:
        return service
    return target.deployment


def _simulated(opts: TargetOptions, clock: Any) -> DeployTarget:
    from release_actions.simulation.clock import VirtualClock
    from release_actions.targets.simulated import SimulatedTarget

    return SimulatedTarget(
        clock or VirtualClock(),
        state_file=opts.state_file,
        deployment=opts.deployment or "triptrip-api",
    )


def _kube_client(
    env: Mapping[str, str], opts: TargetOptions, api_client: Any, context: str | None
) -> Any:
    if api_client is not None:
        return api_client
    from release_actions.targets.k8s_util import api_client_from_env

    return api_client_from_env(env, context=opts.context or context)


def _kubernetes(
    policy: Policy, env: Mapping[str, str], opts: TargetOptions, api_client: Any
) -> DeployTarget:
    from release_actions.targets.kubernetes import KubernetesTarget

    s = policy.deploy.kubernetes
    shadow = policy.deploy.shadow
    istio = s.istio if opts.istio is not False else None
    if opts.istio is True and istio is None:
        raise ReleaseActionsError(
            "`--istio` needs `deploy.kubernetes.istio` in the policy (the VirtualService and "
            "its subsets).",
            hint="Add the section (source §4.2), or leave `--istio` out to split by replicas.",
        )
    extra: dict[str, Any] = {}
    if opts.poll_interval is not None:
        extra["poll_interval"] = opts.poll_interval
    return KubernetesTarget(
        _kube_client(env, opts, api_client, s.context),
        namespace=opts.namespace or s.namespace,
        deployment=opts.deployment or s.deployment,
        container=s.container,
        istio_virtual_service=istio.virtual_service if istio else None,
        istio_destination_rule=istio.destination_rule if istio else None,
        stable_subset=istio.stable_subset if istio else "stable",
        canary_subset=istio.canary_subset if istio else "canary",
        canary_header=(
            (istio.canary_header.name, istio.canary_header.value)
            if istio and istio.canary_header
            else None
        ),
        replicas_total=s.replicas_total,
        canary_suffix=s.canary_suffix,
        track_label=s.track_label,
        rollout_timeout=float(s.rollout_timeout_seconds),
        service=s.service,
        preview_service=s.preview_service,
        shadow_env=(shadow.pod_env.name, shadow.pod_env.value) if shadow.pod_env else None,
        **extra,
    )


def _argo(
    policy: Policy, env: Mapping[str, str], opts: TargetOptions, api_client: Any
) -> DeployTarget:
    from release_actions.targets.argo import ArgoRolloutsTarget

    s = policy.deploy.argo
    extra: dict[str, Any] = {}
    if opts.poll_interval is not None:
        extra["poll_interval"] = opts.poll_interval
    return ArgoRolloutsTarget(
        _kube_client(env, opts, api_client, s.context),
        namespace=opts.namespace or s.namespace,
        rollout=opts.rollout or s.rollout,
        container=policy.deploy.kubernetes.container,
        rollout_timeout=float(s.rollout_timeout_seconds),
        **extra,
    )


def cloudrun_endpoint(env: Mapping[str, str], flag: str | None) -> str | None:
    """The API endpoint to use: the flag, else gcloud's override variable; None for Google's."""
    raw = (flag or env.get(CLOUDRUN_ENDPOINT_ENV) or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    if not parts.netloc:
        raise ReleaseActionsError(
            f"`{raw}` is not a Cloud Run API endpoint.",
            hint="Give a URL such as `https://asia-northeast1-run.googleapis.com`.",
        )
    # gcloud's overrides end in `/` (and v1 ones in a path); the v2 client wants the host.
    return f"{parts.scheme}://{parts.netloc}"


def _cloudrun(policy: Policy, env: Mapping[str, str], opts: TargetOptions) -> DeployTarget:
    from release_actions.targets.cloudrun import CloudRunTarget

    s = policy.deploy.cloudrun
    endpoint = cloudrun_endpoint(env, opts.cloudrun_endpoint)
    project = opts.project or s.project or next((env[k] for k in PROJECT_ENV if env.get(k)), None)
    extra: dict[str, Any] = {"timeout": float(s.timeout_seconds), "tag": s.canary_tag}
    if opts.poll_interval is not None:
        extra["poll_initial"] = opts.poll_interval
        extra["poll_max"] = max(opts.poll_interval, min(10.0, opts.poll_interval * 8))
    region = opts.region or s.region
    service = opts.service or s.service
    image = opts.image or s.image
    if endpoint is not None and endpoint.startswith("http://"):
        # Plain HTTP is never Google's API: it is an emulator (or a test's fake), which
        # takes anonymous credentials, as the Google Cloud emulators' clients do.
        if not project:
            raise TargetError(
                "A Cloud Run emulator endpoint needs a project: pass `--project`.",
            )
        run_v2: Any = require("google.cloud.run_v2", "cloudrun")
        credentials_mod: Any = require("google.auth.credentials", "cloudrun")
        client_options: Any = require("google.api_core.client_options", "cloudrun")
        credentials = credentials_mod.AnonymousCredentials()
        options = client_options.ClientOptions(api_endpoint=endpoint)
        return CloudRunTarget(
            run_v2.ServicesClient(
                credentials=credentials, transport="rest", client_options=options
            ),
            run_v2.RevisionsClient(
                credentials=credentials, transport="rest", client_options=options
            ),
            project=project,
            region=region,
            service=service,
            image=image,
            **extra,
        )
    return CloudRunTarget.from_env(
        region=region, service=service, project=project, image=image, endpoint=endpoint, **extra
    )
