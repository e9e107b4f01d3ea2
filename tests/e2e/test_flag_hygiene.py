"""The flag-hygiene starter template under act: a workflow_dispatch run audits a flag export
committed in the consumer, finds the Dart code still reading a stale release flag, and opens
its issue in the GitHub fake (the real PyGithub talks to it); a second run opens no other.

The consumer copies workflow-templates/flag-hygiene.yml with `input` and `now` added, so no
LaunchDarkly is asked and the clock is fixed.

The hourly gate job: the template's scheduled run looks at a flag rollout in progress on the
LaunchDarkly fake, judged on a real Prometheus with recorded metrics (`now` pinned to them),
moves it on, then stops at a person's change of the targeting and fails the job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from release_actions.app.flag_gate import run_flag_gate
from release_actions.app.flag_rollout import FlagRolloutRequest
from release_actions.app.world import WorldRequest
from release_actions.simulation.clock import VirtualClock
from tests.e2e.act_harness import ActRun, make_consumer, run_act, starter_template
from tests.fakes.github import GitHubFake
from tests.fakes.launchdarkly import API_TOKEN, LaunchDarklyFake
from tests.fakes.launchdarkly import PROJECT as LD_PROJECT
from tests.integration.prometheus_server import PrometheusServer
from tests.integration.test_flag_gate import serve
from tests.integration.test_flag_rollout import (
    FLAG,
    QUERIES,
    START,
    STEP_SECONDS,
    _server,
    _traffic,
    guarded,
    session_for,
    weights,
)

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
    return starter_template("flag-hygiene", {"input": "flags.json", "now": NOW}, replace=True)


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


# -- the guarded rollout gate, the hourly job -------------------------------------------------------


GATE_POLICY = {
    "feature_flags": {
        "launchdarkly": {"project": LD_PROJECT},
        "guard": {"step_seconds": STEP_SECONDS, "queries": {"prometheus": QUERIES}},
    }
}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    yield from _server(tmp_path_factory.mktemp("gate-prometheus"), _traffic(on_errors_from_50=0.4))


@pytest.fixture
def launchdarkly(tmp_path: Path) -> Iterator[LaunchDarklyFake]:
    with LaunchDarklyFake() as fake:
        fake.add_flag(FLAG, on={"production": False, "staging": True})
        yield fake


def gate_template(server: PrometheusServer, now: float) -> bytes:
    """The starter template as a consumer keeps it, the run pinned to recorded metrics."""

    def gated(doc: Any) -> None:
        assert doc["jobs"]["flags"]["with"]["rollout-gate"] is True

    return starter_template(
        "flag-hygiene",
        {
            "audit": False,
            "provider-settings": f"url={server.url}",
            "now": datetime.fromtimestamp(now, UTC).isoformat(),
        },
        edit=gated,
    )


def gate_run(
    tmp_path: Path, server: PrometheusServer, fake: LaunchDarklyFake, now: float
) -> ActRun:
    consumer = make_consumer(
        tmp_path,
        "release",
        repo=REPO,
        files={
            ".github/workflows/flag-hygiene.yml": gate_template(server, now),
            ".github/release-policy.yml": json.dumps(GATE_POLICY).encode(),
        },
    )
    return run_act(
        consumer,
        event_name="schedule",
        event={
            "repository": {"full_name": REPO, "default_branch": "main"},
            "schedule": "17 * * * *",
        },
        workflow=".github/workflows/flag-hygiene.yml",
        env={"LAUNCHDARKLY_BASE_URL": fake.url, "LAUNCHDARKLY_PROJECT": LD_PROJECT},
        secrets={"LD_API_KEY": API_TOKEN},
    )


def test_the_hourly_gate_moves_a_rollout_on_and_stops_at_a_persons_change(
    tmp_path: Path, prometheus: PrometheusServer, launchdarkly: LaunchDarklyFake
) -> None:
    # Someone started the rollout (`flags rollout KEY --gate`): 25 % on since START.
    started = run_flag_gate(
        session_for(launchdarkly, tmp_path),
        guarded(),
        FlagRolloutRequest(
            FLAG,
            WorldRequest(provider="prometheus", provider_settings=(f"url={prometheus.url}",)),
            gate=True,
        ),
        clock=VirtualClock(START),
    )
    assert started.action == "started"

    # The scheduled run after the step's two minutes: one look, and on to 50 %.
    run = gate_run(tmp_path / "first", prometheus, launchdarkly, START + STEP_SECONDS + 30)
    assert run.returncode == 0, run.log[-8000:]
    assert "Traceback" not in run.log, run.log[-8000:]
    assert f"`{FLAG}` advanced (step 2/4, 1 look): holding until" in run.log, run.log[-8000:]
    assert '::set-output:: rollouts=[{"flag":"new-booking-flow","action":"advanced"' in run.log
    assert "Summary - ## Guarded flag rollouts" in run.log
    # The hourly run is the gate's alone: the weekly audit does not run.
    assert "/Flag audit]" not in run.log
    assert weights(launchdarkly) == {True: 50_000, False: 50_000}

    # A person sets 40 % in the UI: the next run stops, changes nothing, and fails the job.
    serve(launchdarkly, 40)
    stopped = gate_run(tmp_path / "second", prometheus, launchdarkly, START + STEP_SECONDS + 90)
    assert stopped.returncode != 0, stopped.log[-8000:]
    assert "Traceback" not in stopped.log, stopped.log[-8000:]
    assert "is at 40% now, but the rollout left it at 50%" in stopped.log, stopped.log[-8000:]
    assert weights(launchdarkly) == {True: 40_000, False: 60_000}
