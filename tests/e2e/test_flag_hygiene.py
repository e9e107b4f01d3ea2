"""The flag-hygiene starter template under act: a workflow_dispatch run audits a flag export
committed in the consumer, finds the Dart code still reading a stale release flag, and opens
its issue in the GitHub fake (the real PyGithub talks to it); a second run opens no other.

The consumer copies workflow-templates/flag-hygiene.yml with `input` and `now` added, so no
LaunchDarkly is asked and the clock is fixed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.e2e.act_harness import ROOT, ActRun, make_consumer, run_act
from tests.fakes.github import GitHubFake

pytestmark = pytest.mark.e2e

REPO = "triptrip/webapp"
TOKEN = "ghs_e2etoken"
NOW = "2026-06-01T09:00:00+09:00"
MARKER = "<!-- release-actions:stale-flag new-booking-flow -->"
POLICY = """\
deploy:
  target: simulated
feature_flags:
  catalog:
    - {key: new-booking-flow, kind: release, owner: alice, experiment_ends: null}
    - {key: payment-gateway-enabled, kind: ops, owner: triptrip/payments, experiment_ends: null}
"""
DART = """\
class FeatureFlagService {
  static const String newBookingFlow = 'new-booking-flow';
  static const String paymentGateway = 'payment-gateway-enabled';
}
"""


def export() -> bytes:
    def flag(key: str, kind: str, **fields: Any) -> dict[str, Any]:
        return {
            "key": key,
            "kind": kind,
            "owner": None,
            "archived": False,
            "created_at": "2025-09-01T00:00:00Z",
            "ga_at": None,
            "experiment_ended_at": None,
            "last_reviewed_at": None,
            "code_references": [],
            "stage": None,
            "environments": {"production": {"on": True}},
            **fields,
        }

    flags = [
        flag("new-booking-flow", "release", ga_at="2026-01-06T10:00:00+09:00", stage="GA"),
        flag("payment-gateway-enabled", "ops", last_reviewed_at="2026-01-05T00:00:00Z"),
    ]
    return (json.dumps({"flags": flags}, indent=2) + "\n").encode()


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake(repos=(REPO,), token=TOKEN) as fake:
        fake.add_user("alice")
        yield fake


def template() -> bytes:
    yaml = YAML()
    doc = yaml.load((ROOT / "workflow-templates" / "flag-hygiene.yml").read_text())
    doc["jobs"]["flags"]["with"] = {"input": "flags.json", "now": NOW}
    out = StringIO()
    yaml.dump(doc, out)
    return out.getvalue().encode()


def dispatch(tmp_path: Path, github: GitHubFake) -> ActRun:
    consumer = make_consumer(
        tmp_path,
        "release",
        repo=REPO,
        files={
            ".github/workflows/flag-hygiene.yml": template(),
            ".github/release-policy.yml": POLICY.encode(),
            "flags.json": export(),
            "lib/infrastructure/feature_flags/feature_flag_service.dart": DART.encode(),
        },
    )
    return run_act(
        consumer,
        event_name="workflow_dispatch",
        event={"repository": {"full_name": REPO, "default_branch": "main"}, "inputs": {}},
        workflow=".github/workflows/flag-hygiene.yml",
        env={"GITHUB_API_URL": github.url},
        secrets={"GITHUB_TOKEN": TOKEN},
    )


def test_a_dispatched_run_opens_one_issue_for_the_stale_flag(
    tmp_path: Path, github: GitHubFake
) -> None:
    run = dispatch(tmp_path / "first", github)
    # A stale flag fails the check (exit 1): the job is red until the flag is cleaned up.
    assert run.returncode != 0, run.log[-8000:]
    assert "Traceback" not in run.log, run.log[-8000:]
    assert "`new-booking-flow`: release flag: general availability 2026-01-06" in run.log
    (issue,) = github.issues(repo=REPO)
    assert issue["title"] == "Clean up the stale feature flag `new-booking-flow`"
    assert [label["name"] for label in issue["labels"]] == ["stale-flag"]
    assert [a["login"] for a in issue["assignees"]] == ["alice"]
    body = issue["body"]
    assert body.startswith(MARKER)
    assert "- **Stage**: GA" in body
    assert "- [ ] Archive the flag in LaunchDarkly" in body
    # The Dart code is a reference; the policy's catalog and the export are not.
    assert "- `lib/infrastructure/feature_flags/feature_flag_service.dart:2`" in body
    assert "### Code references (1)" in body

    again = dispatch(tmp_path / "again", github)
    assert again.returncode != 0, again.log[-8000:]
    assert "flag new-booking-flow: issue unchanged: up to date" in again.log, again.log[-8000:]
    assert len(github.issues(repo=REPO)) == 1
