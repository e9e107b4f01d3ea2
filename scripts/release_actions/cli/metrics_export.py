"""`release-actions metrics export`: the release history as one JSON document, within the GitHub API budget."""

from __future__ import annotations

from pathlib import Path

import click

from release_actions.app.metrics_gather import DEFAULT_CACHE, Gathered
from release_actions.cli import Session, pass_state
from release_actions.cli.branch import policy_option


def cost_line(gathered: Gathered) -> str:
    """``GitHub requests: 4; rate limit left: 996/1000``: what this run cost."""
    if gathered.rate_remaining is None or gathered.rate_limit is None:
        left = "unknown"
    else:
        left = f"{gathered.rate_remaining}/{gathered.rate_limit}"
    return f"GitHub requests: {gathered.requests}; rate limit left: {left}"


def summary_markdown(gathered: Gathered) -> str:
    doc = gathered.document
    deployments = doc["deployments"]
    rolled_back = sum(1 for d in deployments if d["status"] == "rolled_back")
    failed = sum(1 for d in deployments if d["status"] == "failure")
    return (
        "### Release history\n\n"
        f"`{doc['repository']}`, environment `{doc['environment']}`, since {doc['since']}: "
        f"{len(deployments)} deployment(s) ({rolled_back} rolled back, {failed} failed), "
        f"{len(doc['blockers'])} blocker(s).\n\n"
        f"{cost_line(gathered)}.\n"
    )


@click.command("export")
@click.option(
    "--since",
    default="365d",
    show_default=True,
    metavar="AGE|DATE",
    help="From this far back (`365d`, `12w`, `48h`) or this date (YYYY-MM-DD in the "
    "policy's time zone, or ISO 8601).",
)
@click.option(
    "--environment",
    default=None,
    help="The environment whose deployments are counted [default: the policy's "
    "reporting.environment]; for that one, every release type's production deploys count.",
)
@click.option(
    "--repository",
    "--repo",
    "repository",
    default=None,
    metavar="OWNER/NAME",
    help="Repository [default: GITHUB_REPOSITORY].",
)
@click.option(
    "--cache",
    "cache_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CACHE,
    show_default=True,
    help="The incremental cache between runs (keep it with actions/cache): deployments "
    "read, compares, ETags. A rerun over the same period costs a few requests.",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the document to this file [default: standard output].",
)
@policy_option
@pass_state
def export(
    state: Session,
    since: str,
    environment: str | None,
    repository: str | None,
    cache_path: Path,
    output_path: Path | None,
    policy_path: Path | None,
) -> None:
    """Export the release history: `{"deployments": [...], "blockers": [...]}`.

    Each deployment has `id`, `version`, `kind`, `sha`, `started_at`, `finished_at`,
    `status` (success, failure, rolled_back), `commits` (`sha`, `committed_at`: those
    first reaching production in it), `canary` (passed, failed, null) and `rollback`
    (null, or `record`, `detected_at`, `recovered_at`, `trigger`). Each blocker has
    `number`, `opened_at` and `version` (the release in staging when it was opened).
    Read from the release deployments that `canary run` writes (`task: release`), the
    rollback records, GitHub's compare and the issues labelled `reporting.blocker_label`.
    Prints the GitHub requests it made and the rate limit left.
    """
    from release_actions.app.metrics_gather import gather, parse_window
    from release_actions.core.policy import load_policy
    from release_actions.integrations.records import write_record_file

    if output_path is None:
        # Standard output carries the document: masks and annotations go to stderr.
        state.json = True
        state.runtime.commands_on_stderr()
    policy = load_policy(policy_path)
    start = parse_window(since, policy.calendar.tz)
    gathered = gather(
        state,
        policy,
        since=start,
        environment=environment,
        repository=repository,
        cache=cache_path,
    )
    line = cost_line(gathered)
    click.echo(line, file=state.runtime.err)
    state.runtime.summary(summary_markdown(gathered))
    if output_path is None:
        state.emit_json(gathered.document, document=True)
        return
    write_record_file(output_path, gathered.document)
    count = len(gathered.document["deployments"])
    state.say(f"{count} deployment(s) written to {output_path}")
