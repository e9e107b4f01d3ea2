"""`release-actions hotfix`: bring a hotfix back to main and the release branch (source §7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from release_actions.integrations.cherry_pick import TargetResult


@click.group("hotfix")
def group() -> None:
    """Hotfixes (source §7): after the fix ships, cherry-pick it back."""


@group.command("cherry-pick")
@click.option(
    "--sha",
    "shas",
    multiple=True,
    help="A commit of the hotfix, oldest first; repeatable [default: the commits of "
    "`--source-branch` that the main branch does not have, from GitHub's compare].",
)
@click.option(
    "--source-branch",
    required=True,
    help="The hotfix branch, such as `hotfix/ABC-123-fix-login`; it names the pull requests "
    "and their branches (it need not exist any more).",
)
@click.option(
    "--to",
    "targets",
    multiple=True,
    help="A branch to bring the hotfix to; repeatable [default: the policy's main branch].",
)
@click.option(
    "--to-release-branch",
    default="auto",
    show_default=True,
    help="Also the release branch: `auto` takes the highest `release/vX.Y.Z` by SemVer "
    "(source §7.2: cherry-pick to the release branch), a branch name takes that one, `none` "
    "skips it.",
)
@click.option("--repo", default=None, help="OWNER/NAME [default: $GITHUB_REPOSITORY].")
@policy_option
@json_option
@pass_state
def cherry_pick(
    state: Session,
    shas: tuple[str, ...],
    source_branch: str,
    targets: tuple[str, ...],
    to_release_branch: str,
    repo: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Open pull requests that bring the hotfix's commits to each target branch.

    For each target, a branch `cherry-pick/<hotfix name>-to-<target>` gets the commits,
    picked as `git cherry-pick -x` would (through the API, no clone), and a pull request to
    the target is opened. A commit that conflicts still opens one, as a draft that says
    which files conflict and gives the git commands to finish by hand. A rerun finds the
    branch and pull request of an earlier run and opens nothing new.

    Output: `pull-requests`, a JSON list of {target, number, url, conflict} (`[]` when
    every target already had the commits).
    """
    from release_actions.core.policy import load_policy
    from release_actions.integrations import cherry_pick as cp
    from release_actions.integrations import github as gh

    source = cp.check_ref_name(source_branch, "`--source-branch`")
    policy = load_policy(policy_path)
    wanted = [cp.check_ref_name(t, "`--to`") for t in targets] or [policy.branches.main]
    release = to_release_branch.strip()
    if release not in ("auto", "none"):
        release = cp.check_ref_name(release, "`--to-release-branch`")
    _, repository = gh.open_repo(state.env, repo, state.runtime.mask)
    if release == "auto":
        found = cp.latest_release_branch(repository, policy)
        if found is None:
            state.runtime.annotate(
                "warning",
                "No release branch matches the policy's pattern "
                f"`{policy.branches.release_pattern}`; only {', '.join(wanted)} get the hotfix.",
            )
        else:
            wanted.append(found)
    elif release != "none":
        wanted.append(release)
    wanted = list(dict.fromkeys(wanted))

    if not shas:
        shas = tuple(cp.branch_commits(repository, policy.branches.main, source))
        if not shas:
            raise ReleaseActionsError(
                f"`{source}` has no commits that `{policy.branches.main}` lacks: nothing to "
                "cherry-pick.",
                hint="Pass the commits with `--sha`, or check the branch name.",
            )
    commits = cp.read_commits(repository, shas)
    trees = cp.Trees(repository)
    results = [
        cp.cherry_pick_to(repository, commits, source, target, trees=trees, dry_run=state.dry_run)
        for target in wanted
    ]
    listed = [r.to_output() for r in results if r.number is not None]
    state.runtime.set_output("pull-requests", json.dumps(listed))
    state.runtime.summary(_summary(source, results, dry_run=state.dry_run))
    for r in results:
        if r.conflict and r.url:
            state.runtime.annotate(
                "warning",
                f"The cherry-pick to {r.target} needs a hand: see {r.url}",
                title="Hotfix cherry-pick conflict",
            )
    if as_json:
        state.emit_json(
            {
                "dry_run": state.dry_run,
                "pull_requests": [r.to_output() for r in results],
                "commits": [c.sha for c in commits],
            }
        )
        return
    for r in results:
        state.say(_line(r, dry_run=state.dry_run))


def _line(result: TargetResult, *, dry_run: bool) -> str:
    if result.status == "up-to-date":
        return f"{result.target}: already has the hotfix; nothing to open"
    how = "with conflicts, as a draft" if result.conflict else "cleanly"
    if dry_run:
        return f"{result.target}: would open {result.branch} {how} (dry run, nothing written)"
    if result.status == "exists":
        return (
            f"{result.target}: pull request #{result.number} ({result.state}) exists: {result.url}"
        )
    return f"{result.target}: opened #{result.number} {how}: {result.url}"


def _summary(source: str, results: list[TargetResult], *, dry_run: bool) -> str:
    from release_actions.gha import markdown_table
    from release_actions.integrations.cherry_pick import code_span

    rows = []
    for r in results:
        if r.status == "up-to-date":
            pr, result = "none", "already has the hotfix"
        else:
            pr = f"[#{r.number}]({r.url})" if r.url else "(dry run)"
            result = "⚠️ conflicts, draft" if r.conflict else "✅ clean"
            if r.status == "exists":
                result += f" (exists, {r.state})"
        rows.append([r.target, pr, result])
    title = "Hotfix cherry-picks" + (" (dry run)" if dry_run else "")
    return f"### {title} of {code_span(source)} (source §7)\n\n" + markdown_table(
        ["Target", "Pull request", "Result"], rows
    )
