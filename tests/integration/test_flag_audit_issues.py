"""`flags audit --open-issues` against the GitHub fake with the real PyGithub: one issue per
stale flag, found again by its marker on every run, closed once the flag is archived and its
last reference is gone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.github import GitHubFake
from tests.integration.deploys import Cli, github_env
from tests.integration.fake_github import raw
from tests.support.flag_audit_cli import commit_all, exported, git_checkout, write_export

NOW = "2026-06-01T10:00:00+09:00"
POLICY = """\
feature_flags:
  catalog:
    - {key: new-booking-flow, kind: release, owner: alice, experiment_ends: null}
    - {key: checkout-ui-variant, kind: experiment, owner: triptrip/checkout, experiment_ends: null}
    - {key: ai-trip-suggestions, kind: release, owner: bob, experiment_ends: null}
    - {key: payment-gateway-enabled, kind: ops, owner: alice, experiment_ends: null}
"""
DART = """\
class FeatureFlagService {
  static const String newBookingFlow = 'new-booking-flow';
}
"""


@pytest.fixture
def setup(tmp_path: Path, github: GitHubFake, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    github.add_user("alice")
    code = git_checkout(
        tmp_path / "app",
        {"lib/feature_flags.dart": DART, "src/checkout.ts": "flag('checkout-ui-variant')\n"},
    )
    policy = tmp_path / "release-policy.yml"
    policy.write_text(POLICY, encoding="utf-8")
    return {"code": code, "policy": policy, "export": tmp_path / "flags.json"}


def flags(booking_archived: bool = False) -> list[dict[str, Any]]:
    return [
        exported("new-booking-flow", ga_at="2026-01-06T10:00:00+09:00", archived=booking_archived),
        exported("checkout-ui-variant", "experiment", experiment_ended_at="2026-03-01T00:00:00Z"),
        exported("payment-gateway-enabled", "ops", last_reviewed_at="2026-01-01T00:00:00Z"),
    ]


def audit(cli: Cli, setup: dict[str, Any], *extra: str) -> Any:
    return cli(
        *extra,
        "flags",
        "audit",
        "--input",
        str(setup["export"]),
        "--checkout",
        str(setup["code"]),
        "--policy",
        str(setup["policy"]),
        "--now",
        NOW,
        "--open-issues",
        "--json",
    )


def stale_issues(github: GitHubFake) -> dict[str, dict[str, Any]]:
    out = {}
    for issue in github.issues():
        for key in ("new-booking-flow", "checkout-ui-variant", "ai-trip-suggestions"):
            if f"<!-- release-actions:stale-flag {key} -->" in (issue["body"] or ""):
                assert key not in out, f"two issues for {key}"
                out[key] = issue
    return out


def test_one_issue_per_stale_flag_on_every_run_closed_once_archived_and_unreferenced(
    tmp_path: Path, github: GitHubFake, setup: dict[str, Any]
) -> None:
    cli = Cli(tmp_path, github_env(github))
    write_export(setup["export"], flags())

    first = audit(cli, setup)
    assert first.code == 1, first.stderr
    data = json.loads(first.stdout)
    assert [(s["key"], s["action"]) for s in data["issues"]] == [
        ("checkout-ui-variant", "created"),
        ("new-booking-flow", "created"),
    ]
    assert first.outputs["changed"] == "true"
    issues = stale_issues(github)
    assert sorted(issues) == ["checkout-ui-variant", "new-booking-flow"]
    booking = issues["new-booking-flow"]
    assert booking["title"] == "Clean up the stale feature flag `new-booking-flow`"
    assert [label["name"] for label in booking["labels"]] == ["stale-flag"]
    assert [a["login"] for a in booking["assignees"]] == ["alice"]
    body = booking["body"]
    assert body.startswith("<!-- release-actions:stale-flag new-booking-flow -->\n")
    assert "- **Owner**: @alice\n" in body
    assert "- **Stale since**: 2026-04-06T01:00:00Z" in body
    for item in ("checks", "default value", "tests", "Archive the flag"):
        assert any(line.startswith("- [ ] ") and item in line for line in body.splitlines())
    assert "- `lib/feature_flags.dart:2`" in body
    team = issues["checkout-ui-variant"]
    assert team["assignees"] == []  # a team is mentioned, never assigned
    assert "- **Owner**: @triptrip/checkout\n" in team["body"]
    assert "- `src/checkout.ts:1`" in team["body"]
    label = github.repo().labels["stale-flag"]
    assert label["color"] == "d93f0b"

    # A person ticks an item; the next run finds both issues and writes nothing.
    ticked = body.replace(
        "- [ ] Remove the flag's default value", "- [x] Remove the flag's default value"
    )
    assert (
        raw(github, "PATCH", f"/repos/octo/app/issues/{booking['number']}", {"body": ticked})[0]
        == 200
    )
    writes = len(github.writes())
    second = audit(cli, setup)
    assert second.code == 1
    assert [s["action"] for s in json.loads(second.stdout)["issues"]] == ["unchanged", "unchanged"]
    assert second.outputs["changed"] == "false"
    assert len(github.writes()) == writes
    assert len(github.issues()) == 2

    # Archived, but the Dart code still reads it: the issue stays open, the archive ticked.
    write_export(setup["export"], flags(booking_archived=True))
    third = audit(cli, setup)
    assert third.code == 1  # checkout-ui-variant is still stale
    steps = {s["key"]: s for s in json.loads(third.stdout)["issues"]}
    assert steps["new-booking-flow"]["action"] == "updated"
    now_open = stale_issues(github)["new-booking-flow"]
    assert now_open["state"] == "open"
    assert "- [x] Archive the flag in LaunchDarkly" in now_open["body"]
    assert "- [x] Remove the flag's default value" in now_open["body"]  # the person's tick
    assert "- `lib/feature_flags.dart:2`" in now_open["body"]

    # The last reference goes: the issue is closed, as completed, with a comment.
    (setup["code"] / "lib" / "feature_flags.dart").write_text("class FeatureFlagService {}\n")
    commit_all(setup["code"], "remove new-booking-flow")
    fourth = audit(cli, setup)
    steps = {s["key"]: s for s in json.loads(fourth.stdout)["issues"]}
    assert steps["new-booking-flow"]["action"] == "closed"
    closed = stale_issues(github)["new-booking-flow"]
    assert (closed["state"], closed["state_reason"]) == ("closed", "completed")
    status, comments = raw(github, "GET", f"/repos/octo/app/issues/{closed['number']}/comments")
    assert status == 200
    assert "is archived and no code reference is left" in comments[-1]["body"]

    # And stays closed: nothing more is written.
    writes = len(github.writes())
    fifth = audit(cli, setup)
    assert [s["action"] for s in json.loads(fifth.stdout)["issues"]] == ["unchanged"]
    assert len(github.writes()) == writes
    assert len(github.issues()) == 2


def test_an_owner_who_cannot_be_assigned_is_named_in_the_body(
    tmp_path: Path, github: GitHubFake, setup: dict[str, Any]
) -> None:
    cli = Cli(tmp_path, github_env(github))
    write_export(setup["export"], [exported("ai-trip-suggestions", ga_at="2026-01-01T00:00:00Z")])
    result = audit(cli, setup)
    assert result.code == 1, result.stderr
    issue = stale_issues(github)["ai-trip-suggestions"]
    assert issue["assignees"] == []
    assert "- **Owner**: @bob (cannot be assigned in this repository)" in issue["body"]
    assert "None found: archive the flag in LaunchDarkly and this issue closes." in issue["body"]


def test_a_dry_run_writes_nothing(
    tmp_path: Path, github: GitHubFake, setup: dict[str, Any]
) -> None:
    cli = Cli(tmp_path, github_env(github))
    write_export(setup["export"], flags())
    result = audit(cli, setup, "--dry-run")
    assert result.code == 1
    assert [s["action"] for s in json.loads(result.stdout)["issues"]] == [
        "would create",
        "would create",
    ]
    assert github.writes() == []


def test_an_issue_closed_as_not_planned_is_left_closed(
    tmp_path: Path, github: GitHubFake, setup: dict[str, Any]
) -> None:
    cli = Cli(tmp_path, github_env(github))
    write_export(setup["export"], flags()[:1])
    assert audit(cli, setup).code == 1
    number = stale_issues(github)["new-booking-flow"]["number"]
    closing = {"state": "closed", "state_reason": "not_planned"}
    assert raw(github, "PATCH", f"/repos/octo/app/issues/{number}", closing)[0] == 200
    again = audit(cli, setup)
    (step,) = json.loads(again.stdout)["issues"]
    assert step["action"] == "dismissed"
    assert stale_issues(github)["new-booking-flow"]["state"] == "closed"


def test_a_flag_gone_from_the_export_closes_its_issue_once_no_reference_is_left(
    tmp_path: Path, github: GitHubFake, setup: dict[str, Any]
) -> None:
    cli = Cli(tmp_path, github_env(github))
    write_export(setup["export"], flags()[:2])
    assert audit(cli, setup).code == 1
    write_export(setup["export"], flags()[2:])  # deleted in LaunchDarkly
    left = audit(cli, setup)
    actions = {s["key"]: s["action"] for s in json.loads(left.stdout)["issues"]}
    assert actions == {"checkout-ui-variant": "left open", "new-booking-flow": "left open"}
    (setup["code"] / "src" / "checkout.ts").unlink()
    commit_all(setup["code"])
    done = audit(cli, setup)
    actions = {s["key"]: s["action"] for s in json.loads(done.stdout)["issues"]}
    assert actions == {"checkout-ui-variant": "closed", "new-booking-flow": "left open"}
