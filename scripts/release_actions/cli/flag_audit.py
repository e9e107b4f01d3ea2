"""`release-actions flags audit`: stale and review-due feature flags (source §5.5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option

if TYPE_CHECKING:
    from release_actions.app.flag_audit import AuditResult

_SHOWN_STATUS = {
    "stale": "stale",
    "unknown_kind": "kind unknown",
    "review_due": "review due",
    "ok": "ok",
    "archived": "archived",
}


@click.command("audit")
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="A flag export (`flags export --json`) to audit; no request is made. "
    "[default: ask LaunchDarkly through `flags export`]",
)
@click.option(
    "--now",
    default=None,
    metavar="TIME",
    help="Audit as of this ISO 8601 time with an offset, such as `2026-04-01T09:00:00+09:00` "
    "[default: $RELEASE_ACTIONS_NOW, else the clock].",
)
@click.option(
    "--checkout",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    metavar="DIR",
    help="The git checkout searched for each flag's key (`git grep -F`, every file type).",
)
@click.option(
    "--open-issues",
    is_flag=True,
    help="Open or update one issue per stale flag (label `stale-flag`, assigned to its "
    "owner) and close the issue of a flag archived with no reference left. "
    "Needs `permissions: issues: write`.",
)
@click.option(
    "--repo",
    default=None,
    metavar="OWNER/NAME",
    help="The repository of the issues [default: $GITHUB_REPOSITORY].",
)
@policy_option
@json_option
@pass_state
def audit_command(
    state: Session,
    input_path: Path | None,
    now: str | None,
    checkout: Path,
    open_issues: bool,
    repo: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Say which feature flags are stale or due for review (source §5.5), and when.

    A release flag is stale `feature_flags.retention.release_days` (90) after its general
    availability, an experiment flag `experiment_days` (30) after the experiment ended. Ops
    and permission flags are permanent: their review is due when the last one (or, never
    reviewed, the flag's creation) is more than `review_days` (365) ago. Archived flags are
    neither. A flag whose kind is unknown (not in the catalog, no tag) is reported and fails
    the check. Each flag's code references are its key's matches in the checkout (`git grep
    -F`, every language) plus those the export lists.

    Exit 0 when no flag is stale, 1 when one is (or has an unknown kind), 2 on an error.
    Outputs: `stale`, `review-due` and `unknown-kind` (JSON lists of keys) and `changed`
    (`true` when `--open-issues` wrote anything).
    """
    from release_actions.app import flag_audit as app
    from release_actions.core.policy import load_policy

    policy = load_policy(policy_path)
    request = app.AuditRequest(
        input_path=input_path,
        now=app.parse_now(now, state.env),
        checkout=checkout,
        policy_path=policy_path,
        open_issues=open_issues,
        repo=repo,
    )
    result = app.run(state, policy, request)

    out = state.runtime.set_output
    out("stale", json.dumps(result.keys("stale")))
    out("review-due", json.dumps(result.keys("review_due")))
    out("unknown-kind", json.dumps(result.keys("unknown_kind")))
    out("changed", "true" if result.changed else "false")
    state.runtime.summary(summary(result))
    for verdict in result.verdicts:
        if verdict.status in ("stale", "unknown_kind"):
            title = "Stale feature flag" if verdict.stale else "Feature flag of unknown kind"
            state.runtime.annotate("warning", f"`{verdict.key}`: {verdict.reason}", title=title)
    if as_json:
        state.emit_json(result.to_dict())
    else:
        for line in lines(result):
            state.say(line)
    if result.failed:
        raise check_failed()


def _counts(result: AuditResult) -> str:
    parts = [
        f"{len(result.keys(status))} {shown}"
        for status, shown in _SHOWN_STATUS.items()
        if status != "ok"
    ]
    return f"{len(result.verdicts)} flag(s): " + ", ".join(parts)


def lines(result: AuditResult) -> list[str]:
    """The report for a person: one line per flag, its reason under it."""
    from release_actions.core.flag_audit import iso

    out = [f"Flag audit at {iso(result.now)} ({result.source}): {_counts(result)}"]
    width = max([len(v.key) for v in result.verdicts] + [4])
    out.append(f"  {'flag':<{width}}  {'kind':<10}  {'status':<12}  {'due':<10}  references")
    for v in result.verdicts:
        due = (iso(v.due_at) or "-")[:10]
        out.append(
            f"  {v.key:<{width}}  {v.flag.kind or '?':<10}  {_SHOWN_STATUS[v.status]:<12}  "
            f"{due:<10}  {len(v.code_references)}"
        )
        out.append(f"  {'':<{width}}  {v.reason}")
    for step in result.issues or []:
        number = f" #{step.number}" if step.number is not None else ""
        out.append(f"  issue{number} ({step.key}): {step.action}: {step.detail}")
    if result.issues is not None and not result.issues:
        out.append("  issues: none to open, update or close")
    return out


def summary(result: AuditResult) -> str:
    """The job summary: the counts as a chart, a table of the flags, the issues."""
    from release_actions.core.flag_audit import iso
    from release_actions.gha import markdown_table

    title = "### Feature flag audit" + (" (dry run)" if result.dry_run else "")
    parts = [f"{title}\n\nAt {iso(result.now)}, from {result.source}: {_counts(result)}.\n"]
    counts = {s: len(result.keys(s)) for s in _SHOWN_STATUS}
    if sum(1 for n in counts.values() if n) > 1:
        pie = [f'    "{_SHOWN_STATUS[s]}" : {n}' for s, n in counts.items() if n]
        parts.append(
            "```mermaid\npie showData title Flags by status\n" + "\n".join(pie) + "\n```\n"
        )
    rows = []
    for v in result.verdicts:
        refs = ", ".join(f"`{r}`" for r in v.code_references[:5])
        if len(v.code_references) > 5:
            refs += f" and {len(v.code_references) - 5} more"
        rows.append(
            [
                f"`{v.key}`",
                v.flag.kind or "unknown",
                v.flag.owner or "-",
                ("**" + _SHOWN_STATUS[v.status] + "**")
                if v.status in ("stale", "unknown_kind")
                else _SHOWN_STATUS[v.status],
                (iso(v.due_at) or "-")[:10],
                refs or "none",
                v.reason,
            ]
        )
    if rows:
        parts.append(
            markdown_table(
                ["Flag", "Kind", "Owner", "Status", "Due", "Code references", "Why"], rows
            )
        )
    if result.issues:
        issue_rows = [
            [
                f"`{s.key}`",
                f"[#{s.number}]({s.url})" if s.url else "-",
                s.action,
                s.detail,
            ]
            for s in result.issues
        ]
        parts.append("\n" + markdown_table(["Flag", "Issue", "Action", "Detail"], issue_rows))
    return "\n".join(parts)
