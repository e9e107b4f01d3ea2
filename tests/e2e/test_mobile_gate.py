"""The mobile-gate.yml starter template under act: the hourly `advance` against the Play fake.

The rollout is started in-process (as mobile-release.yml's `start` would), three hours back;
the template's run then takes in those hours' vitals from the Play Developer Reporting fake,
advances Play's track to the next stage and saves the gate's state on the GitHub fake's
state branch. Play is reached through PLAY_API_ENDPOINT with a real service-account key
whose token URI is the fake's.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from release_actions.mobile.state import DEFAULT_BRANCH, state_path
from tests.conftest import RunCli
from tests.e2e.act_harness import make_consumer, run_act
from tests.e2e.act_harness import starter_template as template
from tests.fakes.github import GitHubFake
from tests.fakes.play import PACKAGE, PlayFake
from tests.fakes.slack import SlackFake
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
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
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


CONFIG_PATH = "config/app-version.json"
CONFIG = (
    "{\n"
    '  "minimumVersion": "4.0.0",\n'
    '  "recommendedVersion": "4.1.0",\n'
    '  "forceUpdate": false,\n'
    '  "updateMessage": "A new version is out.",\n'
    '  "storeUrls": {\n'
    '    "ios": "https://apps.apple.com/app/triptrip/id123456789",\n'
    '    "android": "https://play.google.com/store/apps/details?id=com.triptrip.app"\n'
    "  }\n"
    "}\n"
)
POLICY = Path(__file__).parent / "consumers" / "mobile" / ".github" / "release-policy.yml"


def _env(play: PlayFake, github: GitHubFake) -> dict[str, str]:
    return {
        "PLAY_SERVICE_ACCOUNT_JSON": key_json(f"{play.url}/token"),
        "PLAY_API_ENDPOINT": play.url,
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_WRITES": "0",
    }


def _gate_template(with_: dict[str, str], version_config: str | None) -> bytes:
    """mobile-gate.yml with the consumer's values; its version-config job kept only when asked."""

    def version_job(doc: Any) -> None:
        if version_config is None:
            del doc["jobs"]["version-config"]
        else:
            step = doc["jobs"]["version-config"]["steps"][-1]
            step["with"].update({"package": PACKAGE, "version-config": version_config})

    return template("mobile-gate", {"package": PACKAGE, **with_}, edit=version_job)


def _gate_run(
    tmp_path: Path,
    github: GitHubFake,
    play: PlayFake,
    env: dict[str, str],
    *,
    with_: dict[str, str] | None = None,
    version_config: str | None = None,
    slack: SlackFake | None = None,
    name: str = "run",
):  # type: ignore[no-untyped-def]
    workflow = _gate_template(with_ or {}, version_config)
    consumer = make_consumer(
        tmp_path / name, "mobile", repo=REPO, files={".github/workflows/mobile-gate.yml": workflow}
    )
    secrets = {"GITHUB_TOKEN": TOKEN, "PLAY_SERVICE_ACCOUNT_JSON": env["PLAY_SERVICE_ACCOUNT_JSON"]}
    if slack is not None:
        secrets["SLACK_WEBHOOK_URL"] = slack.webhook_url
    return run_act(
        consumer,
        event_name="workflow_dispatch",
        event={"repository": {"full_name": REPO}},
        workflow=".github/workflows/mobile-gate.yml",
        env={"GITHUB_API_URL": github.url, "PLAY_API_ENDPOINT": play.url},
        secrets=secrets,
    )


def test_the_gate_template_halts_on_a_crash_spike_and_stays_halted(
    tmp_path: Path, github: GitHubFake, play: PlayFake, slack: SlackFake, run_cli: RunCli
) -> None:
    hour = datetime.fromtimestamp(time.time() // HOUR * HOUR, UTC)
    started = hour - timedelta(hours=3)
    for h in range(3):
        # 6 % of the new version's users crash, against 0.1 % of the previous one's.
        play.add_vitals(101, started + timedelta(hours=h), users=3000, crash_rate=0.06)
        play.add_vitals(100, started + timedelta(hours=h), users=90000, crash_rate=0.001)
    env = _env(play, github)
    r = run_cli(
        *("mobile", "play", "start", "--package", PACKAGE, "--version-code", "101"),
        *("--from-track", "internal", "--policy", str(POLICY), "--at", started.isoformat()),
        env=env,
    )
    assert r.code == 0, r.stderr

    run = _gate_run(tmp_path, github, play, env, slack=slack, name="first")
    # The look that halts exits 1: the job, and the run, fail.
    assert run.returncode != 0, run.log[-8000:]
    assert "::set-output:: decision=halted" in run.log, run.log[-8000:]
    assert play.committed("production")[0]["status"] == "halted"
    deployments = github.repo(REPO).deployments
    assert [d["task"] for d in deployments] == ["rollback"]
    record = re.search(r"::set-output:: record-id=(RB-\d{4}-\d{3})", run.log)
    assert record is not None, run.log[-8000:]
    assert [m.via for m in slack.messages] == ["webhook"]
    assert record[1] in json.dumps(slack.messages[0].payload)
    saved = json.loads(
        github.file_at(DEFAULT_BRANCH, state_path("android", PACKAGE), repo=REPO) or "{}"
    )
    assert saved["decision"] == "halted"

    # The next scheduled run (the look's time does not matter to a halted gate) reports the
    # halt and succeeds, with no second record and no second notice.
    again = _gate_run(tmp_path, github, play, env, slack=slack, name="second")
    assert again.returncode == 0, again.log[-8000:]
    assert "::set-output:: decision=halted" in again.log
    assert "record-id=RB" not in again.log
    assert len(github.repo(REPO).deployments) == 1
    assert len(slack.messages) == 1
    assert play.committed("production")[0]["status"] == "halted"


def test_a_completed_rollout_proposes_raising_recommended_version(
    tmp_path: Path, github: GitHubFake, play: PlayFake, run_cli: RunCli
) -> None:
    github.commit("main", {CONFIG_PATH: CONFIG}, message="Version config", repo=REPO)
    hour = datetime.fromtimestamp(time.time() // HOUR * HOUR, UTC)
    started = hour - timedelta(hours=5)
    for h in range(5):
        play.add_vitals(101, started + timedelta(hours=h), users=2000, crash_rate=0.001)
        play.add_vitals(100, started + timedelta(hours=h), users=90000, crash_rate=0.001)
    env = _env(play, github)
    base = ("--package", PACKAGE, "--policy", str(POLICY))
    r = run_cli(*("mobile", "play", "start", *base, "--version-code", "101"),
                *("--from-track", "internal", "--at", started.isoformat()), env=env)  # fmt: skip
    assert r.code == 0, r.stderr
    # Two hours at 1 %: on to 5 %, three hours before the scheduled run.
    at = (started + timedelta(hours=2)).isoformat()
    r = run_cli("mobile", "play", "advance", *base, "--at", at, env=env)
    assert r.code == 0 and r.outputs["decision"] == "advanced", r.stderr

    run = _gate_run(tmp_path, github, play, env, version_config=CONFIG_PATH)
    assert run.returncode == 0, run.log[-8000:]
    assert "::set-output:: decision=completed" in run.log, run.log[-8000:]
    assert play.committed("production")[0]["status"] == "completed"
    pulls = github.repo(REPO).pulls
    assert len(pulls) == 1, run.log[-8000:]
    bumped = github.file_at("release-actions/version-config", CONFIG_PATH, repo=REPO)
    assert bumped == CONFIG.replace(
        '"recommendedVersion": "4.1.0"', '"recommendedVersion": "4.2.0"'
    )
    assert github.file_at("main", CONFIG_PATH, repo=REPO) == CONFIG
    assert "::set-output:: pull-request-number=1" in run.log


def test_a_rollout_that_does_not_complete_proposes_nothing(
    tmp_path: Path, github: GitHubFake, play: PlayFake, run_cli: RunCli
) -> None:
    """The gate advances (not completed): the version-config job runs and proposes nothing."""
    github.commit("main", {CONFIG_PATH: CONFIG}, message="Version config", repo=REPO)
    hour = datetime.fromtimestamp(time.time() // HOUR * HOUR, UTC)
    started = hour - timedelta(hours=3)
    for h in range(3):
        play.add_vitals(101, started + timedelta(hours=h), users=2000, crash_rate=0.001)
        play.add_vitals(100, started + timedelta(hours=h), users=90000, crash_rate=0.001)
    env = _env(play, github)
    r = run_cli(
        *("mobile", "play", "start", "--package", PACKAGE, "--version-code", "101"),
        *("--from-track", "internal", "--policy", str(POLICY), "--at", started.isoformat()),
        env=env,
    )
    assert r.code == 0, r.stderr
    run = _gate_run(tmp_path, github, play, env, version_config=CONFIG_PATH)
    assert run.returncode == 0, run.log[-8000:]
    assert "::set-output:: decision=advanced" in run.log
    assert github.repo(REPO).pulls == []
