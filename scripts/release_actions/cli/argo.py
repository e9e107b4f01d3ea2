"""`release-actions argo`: the Rollout, AnalysisTemplate and Istio objects of the policy, for teams that let Argo judge (source §4.4)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from release_actions.cli import Session, pass_state
from release_actions.cli.branch import policy_option
from release_actions.core.policy import load_policy


@click.group("argo")
def group() -> None:
    """Argo Rollouts manifests from the release policy (source §4.4)."""


@group.command("render")
@click.option(
    "--provider",
    type=click.Choice(["datadog", "prometheus"]),
    required=True,
    help="Where Argo's AnalysisTemplate reads its metrics (source §4.4 uses Datadog).",
)
@click.option("--name", default=None, help="Rollout name (default: deploy.argo.rollout).")
@click.option("--namespace", default=None, help="Namespace (default: deploy.argo.namespace).")
@click.option(
    "--service",
    default=None,
    help="`service-name` argument of the analysis (default: metrics.service).",
)
@click.option("--image", default=None, help="Container image (default: NAME:latest).")
@click.option(
    "--replicas", type=click.IntRange(min=1), default=10, show_default=True, help="Replicas."
)
@click.option(
    "--virtual-service",
    default=None,
    help="Istio VirtualService for traffic routing, rendered with its `primary` route "
    "(default: deploy.kubernetes.istio.virtual_service, else the service name; `` for none).",
)
@click.option(
    "--canary-service",
    default=None,
    help="With --stable-service: split between these two Services (Argo's host-level split) "
    "instead of the DestinationRule's subsets (deploy.kubernetes.istio).",
)
@click.option(
    "--stable-service", default=None, help="With --canary-service: the stable track's Service."
)
@click.option(
    "--judge",
    type=click.Choice(["threshold", "sequential"]),
    default="threshold",
    show_default=True,
    help="`threshold`: the AnalysisTemplate of source §4.4 with the policy's conditions "
    "(the default, whatever canary.analysis.judge says); `sequential`: a job metric that runs "
    "`release-actions canary analyze --judge sequential` with this policy (a ConfigMap), so "
    "Argo uses this project's judge and the job's exit code decides.",
)
@click.option(
    "--analysis-image",
    default=None,
    help="With --judge sequential: the image that has release-actions "
    "(default: ghcr.io/triptrip/release-actions:<installed version>).",
)
@click.option(
    "--metrics-secret",
    default="release-actions-metrics",
    show_default=True,
    help="With --judge sequential: Secret whose keys become the job's environment "
    "(DD_API_KEY, DD_APP_KEY or PROMETHEUS_TOKEN); optional.",
)
@click.option(
    "--strategy",
    type=click.Choice(["canary", "blue-green", "rolling"]),
    default=None,
    help="The Rollout's strategy (default: deploy.strategy). `blue-green` renders "
    "`strategy.blueGreen` with the active and preview Services, no automatic promotion, "
    "the hold as `scaleDownDelaySeconds` (deploy.blue_green.hold_seconds, else "
    "monitor.duration_seconds) and the AnalysisTemplate before and after the switch; "
    "`rolling` is a canary Rollout. Shadow has no Rollout here: Argo mirrors only from a "
    "canary step that needs managed routes.",
)
@click.option(
    "--active-service",
    default=None,
    help="With blue-green: the Service that takes user traffic (default: the service name).",
)
@click.option(
    "--preview-service",
    default=None,
    help="With blue-green: the Service that reaches only the new version, for the smoke "
    "checks (default: ACTIVE-preview).",
)
@click.option(
    "--port",
    type=click.IntRange(min=1, max=65535),
    default=8080,
    show_default=True,
    help="With blue-green: the container port the two Services send to.",
)
@click.option(
    "--prometheus-address",
    default="http://prometheus.monitoring.svc:9090",
    show_default=True,
    help="Prometheus address Argo queries (with --provider prometheus).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the YAML here (default: standard output).",
)
@policy_option
@pass_state
def render(
    state: Session,
    provider: str,
    name: str | None,
    namespace: str | None,
    service: str | None,
    image: str | None,
    replicas: int,
    virtual_service: str | None,
    canary_service: str | None,
    stable_service: str | None,
    judge: str,
    analysis_image: str | None,
    metrics_secret: str,
    strategy: str | None,
    active_service: str | None,
    preview_service: str | None,
    port: int,
    prometheus_address: str,
    output: Path | None,
    policy_path: Path | None,
) -> None:
    """Print a Rollout with the policy's steps, its AnalysisTemplate and Istio objects.

    The steps, interval, failure limit, success rate and p99 conditions all come from the
    policy (defaults: 5/20/50/100 %, every 1m for 5m, failureLimit 3, >= 0.99, < 500 ms).
    The VirtualService and DestinationRule are those of source §4.2 (deploy.kubernetes.istio),
    with the named route `primary` that the Rollout's traffic routing refers to. With
    `--strategy blue-green` (or deploy.strategy blue-green) the Rollout is a blueGreen one
    with its two Services instead of steps and Istio objects.
    """
    from release_actions.targets.argo import render_argo

    policy = load_policy(policy_path)
    text = render_argo(
        policy,
        name=name or policy.deploy.argo.rollout,
        namespace=namespace or policy.deploy.argo.namespace,
        provider="datadog" if provider == "datadog" else "prometheus",
        service=service or policy.metrics.service,
        replicas=replicas,
        image=image,
        virtual_service=virtual_service,
        canary_service=canary_service,
        stable_service=stable_service,
        prometheus_address=prometheus_address,
        judge="sequential" if judge == "sequential" else "threshold",
        analysis_image=analysis_image,
        credentials_from=metrics_secret,
        strategy=strategy,
        active_service=active_service,
        preview_service=preview_service,
        port=port,
    )
    if output is None:
        click.echo(text, file=state.runtime.out, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, output)
    state.runtime.set_output("file", str(output))
    blue_green = (strategy or policy.deploy.strategy) == "blue-green"
    others = "Services" if blue_green else "Istio objects"
    state.say(f"wrote {output} (Rollout, AnalysisTemplate and {others}, provider {provider})")
