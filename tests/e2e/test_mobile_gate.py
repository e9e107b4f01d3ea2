"""The mobile-gate.yml starter template under act: the hourly `advance` against the Play fake.

The rollout is started in-process (as mobile-release.yml's `start` would), three hours back;
the template's run then takes in those hours' vitals from the Play Developer Reporting fake,
advances Play's track to the next stage and saves the gate's state on the GitHub fake's
state branch. Play is reached through PLAY_API_ENDPOINT with a real service-account key
whose token URI is the fake's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from release_actions.mobile.state import DEFAULT_BRANCH, state_path
from tests.conftest import RunCli
from tests.e2e.act_harness import make_consumer, run_act
from tests.e2e.test_release_workflows import template
from tests.fakes.github import GitHubFake
from tests.fakes.play import PACKAGE, PlayFake
from tests.integration.mobile.test_credentials import key_json

pytestmark = pytest.mark.e2e

REPO = "triptrip/app"
TOKEN = "ghs_e2etoken"
HOUR = 3600


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake(repos=(REPO,), token=TOKEN) as fake:
        yield fake


@pytest.fixture
def play() -> Iterator[PlayFake]:
    with PlayFake() as fake:
        fake.release("production", 100)
        fake.release("internal", 101, name="4.2.0")
        yield fake


def test_the_gate_template_advances_a_healthy_rollout(
    tmp_path: Path, github: GitHubFake, play: PlayFake, run_cli: RunCli
) -> None:
    hour = datetime.fromtimestamp(time.time() // HOUR * HOUR, UTC)
    started = hour - timedelta(hours=3)
    for h in range(3):
        play.add_vitals(101, started + timedelta(hours=h), users=2000, crash_rate=0.001)
        play.add_vitals(100, started + timedelta(hours=h), users=90000, crash_rate=0.001)
    key = key_json(f"{play.url}/token")
    env = {
        "PLAY_SERVICE_ACCOUNT_JSON": key,
        "PLAY_API_ENDPOINT": play.url,
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_WRITES": "0",
    }
    policy = Path(__file__).parent / "consumers" / "mobile" / ".github" / "release-policy.yml"
    started_run = run_cli(
        *("mobile", "play", "start", "--package", PACKAGE, "--version-code", "101"),
        *("--from-track", "internal", "--policy", str(policy), "--at", started.isoformat()),
        env=env,
    )
    assert started_run.code == 0, started_run.stderr

    # The template as a consumer keeps it, with its own package name.
    workflow = template("mobile-gate", {"package": PACKAGE})
    consumer = make_consumer(
        tmp_path, "mobile", repo=REPO, files={".github/workflows/mobile-gate.yml": workflow}
    )
    run = run_act(
        consumer,
        event_name="workflow_dispatch",
        event={"repository": {"full_name": REPO}},
        workflow=".github/workflows/mobile-gate.yml",
        env={"GITHUB_API_URL": github.url, "PLAY_API_ENDPOINT": play.url},
        secrets={"GITHUB_TOKEN": TOKEN, "PLAY_SERVICE_ACCOUNT_JSON": key},
    )
    assert run.returncode == 0, run.log[-8000:]
    # The mobile action's outputs, as act logs them (the reusable workflow's nested outputs
    # are not read here).
    assert "::set-output:: decision=advanced" in run.log, run.log[-8000:]
    assert "::set-output:: fraction=0.05" in run.log
    assert "::set-output:: record-id=" in run.log
    assert play.committed("production")[0] == {
        "versionCodes": ["101"],
        "status": "inProgress",
        "userFraction": 0.05,
        "name": "4.2.0",
    }
    saved = json.loads(
        github.file_at(DEFAULT_BRANCH, state_path("android", PACKAGE), repo=REPO) or "{}"
    )
    assert (saved["stage_index"], len(saved["hours"])) == (1, 3)
