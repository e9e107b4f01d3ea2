"""`release-actions readiness`: the pre-release checklist of source §3.1, from the GitHub API."""

from __future__ import annotations

import glob
from pathlib import Path

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.errors import ReleaseActionsError


@click.command("readiness")
@click.option(
    "--tag", required=True, help="The release tag, such as `v1.2.3`; its commit is checked."
)
@click.option("--repo", default=None, help="OWNER/NAME [default: $GITHUB_REPOSITORY].")
@click.option(
    "--changelog",
    "changelog_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("CHANGELOG.md"),
    show_default=True,
    help="The CHANGELOG that needs a dated section of the tag's version (source §3.1).",
)
@click.option(
    "--coverage-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Coverage report: Cobertura XML, JaCoCo XML, coverage.py JSON or LCOV (told apart by "
    "content), or a folder (a downloaded artifact) that holds exactly one. Without it, coverage "
    "is a warning: not measured.",
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    default=None,
    help="Lowest line coverage in % [default: the policy's readiness.min_coverage_percent, "
    "80 as in source §3.1].",
)
@click.option(
    "--min-approvals",
    type=click.IntRange(0),
    default=None,
    help="Approvals the commit's pull request needs [default: the policy's "
    "readiness.min_approvals, 2 as in source §3.1]; a reviewer's "
    "later CHANGES_REQUESTED cancels their approval.",
)
@click.option(
    "--required-check",
    "required_checks",
    multiple=True,
    help="A check run that must be on the commit and pass; repeatable [default: the "
    "policy's readiness.required_checks].",
)
@policy_option
@click.option(
    "--ignore-check",
    "ignore_checks",
    multiple=True,
    help="Leave out check runs matching this pattern (fnmatch), such as this workflow's own "
    "jobs; repeatable. The running job ($GITHUB_JOB) is left out by itself.",
)
@json_option
@pass_state
def command(
    state: Session,
    tag: str,
    repo: str | None,
    changelog_path: Path,
    coverage_file: Path | None,
    min_coverage: float | None,
    min_approvals: int | None,
    required_checks: tuple[str, ...],
    ignore_checks: tuple[str, ...],
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Check that TAG is ready to release, as source §3.1's checklist asks.

    Automatic: every check run on the tagged commit completed and passed (success, neutral
    or skipped; one still running fails), the commit's pull request has enough approvals,
    the CHANGELOG has the version's section, and coverage is high enough. The rest of the
    checklist is listed in the job summary to confirm by hand. Without a coverage report,
    coverage is a warning ("not measured"), which does not make the release not ready.

    Outputs: `ready` (true/false), `failed` (keys of the failed items, comma-separated;
    empty when ready). Exit 1 when not ready; exit 2 when a coverage folder holds no report
    or several.
    """
    from release_actions.core.policy import load_policy
    from release_actions.core.versions import Version
    from release_actions.integrations import github as gh
    from release_actions.integrations import readiness as rd

    policy = load_policy(policy_path)
    version = Version.parse(tag, prefix=policy.tag.prefix)
    if min_coverage is None:
        min_coverage = policy.readiness.min_coverage_percent
    if min_approvals is None:
        min_approvals = policy.readiness.min_approvals
    required_checks = required_checks or tuple(policy.readiness.required_checks)
    name = (repo or state.env.get("GITHUB_REPOSITORY", "")).strip()
    if not name:
        raise ReleaseActionsError(
            "No repository: pass `--repo OWNER/NAME` or set `GITHUB_REPOSITORY`.",
            hint="Inside GitHub Actions the runner sets GITHUB_REPOSITORY by itself.",
        )
    out = state.runtime
    if coverage_file is not None and coverage_file.is_dir():
        folder, coverage_file = coverage_file, rd.find_report(coverage_file)
        fmt = rd.parse_coverage(coverage_file).format
        out.annotate(
            "notice",
            f"Using `{coverage_file}` ({fmt}), the one coverage report in `{folder}`.",
            title="Coverage report",
        )
    # A caller (the release workflow) names its own input that would have given the report.
    missing = state.env.get("RELEASE_ACTIONS_COVERAGE_MISSING", "").strip()
    ignore = list(ignore_checks)
    own_job = state.env.get("GITHUB_JOB", "").strip()
    if own_job:
        # This job is a check run on the same commit, and it is still running.
        ignore.append(glob.escape(own_job))
    token = gh.resolve_token(state.env)
    state.runtime.mask(token)
    repository = gh.get_repo(gh.client(state.env, token), name)
    report = rd.assess(
        repository,
        tag,
        version,
        changelog=changelog_path,
        coverage_file=coverage_file,
        min_coverage=min_coverage,
        min_approvals=min_approvals,
        coverage_missing=missing or "pass `--coverage-file`",
        required_checks=required_checks,
        ignore_checks=ignore,
    )
    out.set_output("ready", report.ready)
    out.set_output("failed", ",".join(report.failed))
    out.summary(rd.render_markdown(report))
    for item in report.items:
        if item.status == "failed":
            out.annotate("error", f"{item.title}: {item.detail}", title=f"Not ready: {tag}")
        elif item.status == "warning":
            out.annotate("warning", f"{item.title}: {item.detail}", title=f"Not measured: {tag}")
    if as_json:
        state.emit_json(report.to_dict())
    else:
        state.say(rd.render_text(report))
    if not report.ready:
        raise check_failed()
