"""Options and the report shared by the commands that act on a target: canary run, monitor, rollback."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from release_actions.app.world import WorldRequest
from release_actions.cli import Session
from release_actions.cli.rehearse import ProgressPrinter, report_run
from release_actions.core.policy import Policy
from release_actions.simulation.traffic import DEFAULT_SEED
from release_actions.targets.factory import TARGET_KINDS, TargetOptions

if TYPE_CHECKING:
    from release_actions.canary.report import RunReport
    from release_actions.integrations.records import Published

F = TypeVar("F", bound=Callable[..., Any])

PROVIDERS = ("simulated", "prometheus", "datadog")
# Every target the factory builds; `simulated` is the rehearsal simulator.
TARGETS = TARGET_KINDS

# A version as targets use it: an image tag (OCI: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}) or a
# SemVer tag with its prefix, which may add `+` build metadata. Nothing else gets through:
# no whitespace or control character (a newline would start a workflow command), no `:`,
# `/` or `#`.
_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


class VersionParam(click.ParamType[str]):
    """A version or release tag, checked at the CLI boundary before anything runs or prints."""

    name = "version"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if _VERSION.fullmatch(text):
            return text
        shown = repr(text if len(text) <= 40 else text[:40] + "...")
        self.fail(
            f"{shown} is not a version: use letters, digits and `.`, `-`, `_`, `+`, starting "
            "with a letter or digit, at most 128 characters, such as `v1.5.2` or `2.0.0-rc.1`.",
            param,
            ctx,
        )


VERSION = VersionParam()

provider_option = click.option(
    "--provider",
    "provider_name",
    type=click.Choice(PROVIDERS),
    default="simulated",
    show_default=True,
    help="Metrics provider. `prometheus` and `datadog` take --provider-setting KEY=VALUE.",
)
# For commands that act on a target: no default, so that simulated traffic on a real
# target is always asked for by name (the policy's default provider is the simulator).
target_provider_option = click.option(
    "--provider",
    "provider_name",
    type=click.Choice(PROVIDERS),
    default=None,
    help="Metrics provider (default: the policy's metrics.provider). With a real target, "
    "`simulated` rehearses it under simulated traffic (--scenario) on a virtual clock.",
)
provider_setting_option = click.option(
    "--provider-setting",
    "provider_settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A provider setting, such as `url=http://prometheus:9090` or `service=api` "
    "(repeatable). Secrets come from the environment: DD_API_KEY, DD_APP_KEY, PROMETHEUS_TOKEN.",
)


def target_options(func: F) -> F:
    """Overrides of `deploy.<target>` in the policy, shared by canary run, monitor and rollback."""
    options = [
        click.option(
            "--namespace", default=None, help="Kubernetes / Argo: namespace (policy default)."
        ),
        click.option(
            "--deployment", default=None, help="Kubernetes: the stable Deployment's name."
        ),
        click.option("--rollout", default=None, help="Argo Rollouts: the Rollout's name."),
        click.option("--project", default=None, help="Cloud Run: Google Cloud project."),
        click.option("--region", default=None, help="Cloud Run: region."),
        click.option("--service", default=None, help="Cloud Run: service."),
        click.option(
            "--image",
            default=None,
            help="Cloud Run: image with `{version}` in it (default: the current image, retagged).",
        ),
        click.option(
            "--no-istio",
            "no_istio",
            is_flag=True,
            help="Kubernetes: split traffic by replica counts even when the policy names Istio.",
        ),
        click.option("--context", default=None, help="Kubernetes / Argo: kubeconfig context."),
        click.option(
            "--cloudrun-endpoint",
            default=None,
            metavar="URL",
            help="Cloud Run API endpoint (default: CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN, else "
            "Google's). A plain-http endpoint is an emulator and gets anonymous credentials.",
        ),
        click.option(
            "--poll-interval",
            type=click.FloatRange(min=0.001),
            default=None,
            help="Seconds between checks while a target settles (default: 2 for Kubernetes "
            "and Argo, 1 rising to 10 for Cloud Run).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def world_request(values: Mapping[str, Any], **extra: Any) -> WorldRequest:
    """The world options a command's decorators collected (provider, scenario, target)."""
    return WorldRequest(
        provider=values.get("provider_name"),
        provider_settings=tuple(values.get("provider_settings") or ()),
        scenario_name=values.get("scenario_name"),
        scenario_file=values.get("scenario_file"),
        seed=values.get("seed", DEFAULT_SEED),
        options=target_options_from(values),
        **extra,
    )


def progress_printer(
    state: Session, policy: Policy, provider: str | None, *, as_json: bool
) -> ProgressPrinter:
    """A line per interval; a progress bar in a terminal when the clock is real."""
    real_time = (provider or policy.metrics.provider) != "simulated"
    return ProgressPrinter(state, quiet=as_json, real_time=real_time)


def target_options_from(values: Mapping[str, Any]) -> TargetOptions:
    return TargetOptions(
        namespace=values.get("namespace"),
        deployment=values.get("deployment"),
        rollout=values.get("rollout"),
        project=values.get("project"),
        region=values.get("region"),
        service=values.get("service"),
        image=values.get("image"),
        istio=False if values.get("no_istio") else None,
        context=values.get("context"),
        cloudrun_endpoint=values.get("cloudrun_endpoint"),
        poll_interval=values.get("poll_interval"),
        state_file=values.get("state_file"),
    )


def record_options(func: F) -> F:
    """Where the rollback record goes besides the job summary."""
    options = [
        click.option(
            "--environment",
            default=None,
            help="GitHub environment of the deploy, for the record and messages "
            "(default: the policy's `regular` release type's, production).",
        ),
        click.option(
            "--record-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Write the rollback record here as JSON (default: in RUNNER_TEMP when set).",
        ),
        click.option(
            "--repo",
            "repository",
            default=None,
            metavar="OWNER/NAME",
            help="Repository whose deployments keep the records (default: GITHUB_REPOSITORY).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def report_with_record(
    state: Session,
    report: RunReport,
    published: Published | None,
    *,
    as_json: bool,
    title: str,
) -> None:
    """The run's report; the record's own facts and where it is kept follow it in the summary."""
    from release_actions.integrations.records import record_rows, where_kept

    try:
        report_run(state, report, as_json=as_json, title=title)
    finally:
        if published is not None:
            from release_actions.gha import markdown_table

            extra = [
                row
                for row in record_rows(published.record)
                if row[0] in ("release", "target", "environment", "actor", "run url")
            ]
            state.runtime.summary(
                f"\n#### Record {published.record['id']}: run\n\n"
                + markdown_table(["Field", "Value"], extra)
                + "\n"
                + where_kept(published.attached, published.path)
            )
