"""`mobile play start|advance|halt|resume|complete` as the CLI, against the Play, GitHub and Slack fakes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from release_actions.mobile.play import play_clients
from release_actions.mobile.state import DEFAULT_BRANCH, state_path
from tests.conftest import CliResult, RunCli
from tests.fakes.github import GitHubFake
from tests.fakes.play import PACKAGE, PlayFake
from tests.fakes.play import TOKEN as TOKEN_PLAY
from tests.fakes.slack import SlackFake
from tests.integration.mobile.test_credentials import key_json

pytestmark = pytest.mark.integration

REPO = "triptrip/app"
TOKEN = "ghs_mobiletoken"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PATH = state_path("android", PACKAGE)
# Short stages so a whole rollout fits in a few virtual hours.
POLICY = """\
mobile:
  judge: threshold
  stages:
    android:
      - {fraction: 0.01, min_hours: 2}
      - {fraction: 0.05, min_hours: 2}
      - {fraction: 1.0}
"""


@pytest.fixture
def play() -> Iterator[PlayFake]:
    with PlayFake() as fake:
        fake.release("production", 100)
        fake.release("internal", 101, name="4.2.0")
        fake.latest_end = T0 + timedelta(days=3)
        yield fake


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake(repos=(REPO,), token=TOKEN) as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def env(play: PlayFake, github: GitHubFake, slack: SlackFake, tmp_path: Path) -> dict[str, str]:
    return {
        "PLAY_SERVICE_ACCOUNT_JSON": key_json(f"{play.url}/token"),
        "PLAY_API_ENDPOINT": play.url,
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_ACTOR": "mika",
        "RUNNER_TEMP": str(tmp_path),
        "SLACK_WEBHOOK_URL": slack.webhook_url,
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_WRITES": "0",
    }


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "release-policy.yml"
    path.write_text(POLICY)
    return path


def healthy(play: PlayFake, hours: range, *, new_crash: float = 0.001) -> None:
    for h in hours:
        play.add_vitals(101, T0 + timedelta(hours=h), users=2000, crash_rate=new_crash)
        play.add_vitals(100, T0 + timedelta(hours=h), users=90000, crash_rate=0.001)


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours, minutes=17)).isoformat()


def mobile(run_cli: RunCli, env: dict[str, str], *args: str) -> tuple[CliResult, dict[str, Any]]:
    r = run_cli("mobile", "play", *args, "--package", PACKAGE, "--json", env=env)
    # With --json, standard output is the JSON alone: the key's masks go to standard error.
    assert r.stdout.strip(), r.stderr
    return r, json.loads(r.stdout)


def saved(github: GitHubFake) -> dict[str, Any]:
    text = github.file_at(DEFAULT_BRANCH, PATH, repo=REPO)
    assert text is not None
    return dict(json.loads(text))


def test_start_from_internal_is_idempotent(
    run_cli: RunCli, env: dict[str, str], play: PlayFake, github: GitHubFake, policy: Path
) -> None:
    args = ("start", "--version-code", "101", "--from-track", "internal", "--policy", str(policy))
    r, data = mobile(run_cli, env, *args, "--at", at(0))
    assert r.code == 0, r.stderr
    assert (data["decision"], data["fraction"], data["changed"]) == ("started", 0.01, True)
    assert play.committed("production")[0] == {
        "versionCodes": ["101"],
        "status": "inProgress",
        "userFraction": 0.01,
        "name": "4.2.0",
    }
    assert r.outputs["decision"] == "started" and r.outputs["fraction"] == "0.01"
    state = saved(github)
    assert (state["version_code"], state["previous_version_code"]) == ("101", "100")
    assert state["started_at"] == T0.timestamp()  # on the hour, as Play's vitals are
    commits, log = len(play.commits), len(github.log(DEFAULT_BRANCH, repo=REPO))

    again, data = mobile(run_cli, env, *args, "--at", at(0.5))
    assert again.code == 0, again.stderr
    assert (data["decision"], data["changed"]) == ("held", False)
    assert "Already started" in data["reason"]
    assert len(play.commits) == commits  # no edit committed
    assert len(github.log(DEFAULT_BRANCH, repo=REPO)) == log  # no state written


def test_start_uploads_the_bundle_with_notes_from_the_changelog(
    run_cli: RunCli, env: dict[str, str], play: PlayFake, tmp_path: Path, policy: Path
) -> None:
    bundle = tmp_path / "app.aab"
    bundle.write_bytes(b"PK fake bundle versionCode=102")
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(
        "# Changelog\n\n## [4.3.0] - 2026-03-01\n\n### Added\n\n- Offline maps\n\n"
        "### Fixed\n\n- Login on tablets\n"
    )
    r, data = mobile(
        run_cli,
        env,
        "start",
        "--version-code",
        "102",
        "--version",
        "4.3.0",
        "--bundle",
        str(bundle),
        "--changelog",
        str(changelog),
        "--state-file",
        str(tmp_path / "gate.json"),
        "--policy",
        str(policy),
        "--at",
        at(0),
    )
    assert r.code == 0, r.stderr
    release = play.committed("production")[0]
    assert (release["versionCodes"], release["userFraction"]) == (["102"], 0.01)
    languages = {n["language"]: n["text"] for n in release["releaseNotes"]}
    assert set(languages) == {"ja-JP", "en-US"}
    assert "Offline maps" in languages["en-US"] and "Login on tablets" in languages["en-US"]
    assert set(data["release_notes"]) == {"ja-JP", "en-US"}
    assert 102 in play.bundles


def test_advance_holds_advances_then_halts_on_a_crash_spike(
    run_cli: RunCli,
    env: dict[str, str],
    play: PlayFake,
    github: GitHubFake,
    slack: SlackFake,
    policy: Path,
) -> None:
    healthy(play, range(2))
    play.add_vitals(101, T0 + timedelta(hours=2), users=3000, crash_rate=0.06)
    play.add_vitals(100, T0 + timedelta(hours=2), users=90000, crash_rate=0.001)
    base = ("--policy", str(policy))
    r, _ = mobile(run_cli, env, "start", "--version-code", "101", "--from-track", "internal",
                  *base, "--at", at(0))  # fmt: skip
    assert r.code == 0, r.stderr

    # Hour 1: one healthy hour of two at 1 %: held. No --version-code: the gate's own.
    r, data = mobile(run_cli, env, "advance", *base, "--at", at(1))
    assert r.code == 0, r.stderr
    assert (data["decision"], data["fraction"], data["hours_judged"]) == ("held", 0.01, 1)
    assert data["version_code"] == "101"
    # The same hour again takes in nothing and changes nothing, in Play or in the state.
    commits, log = len(play.commits), len(github.log(DEFAULT_BRANCH, repo=REPO))
    r, data = mobile(run_cli, env, "advance", *base, "--at", at(1.5))
    assert (r.code, data["decision"], data["hours_judged"]) == (0, "held", 1)
    assert len(play.commits) == commits
    assert saved(github)["hours"] == saved(github)["hours"][:1]

    # Hour 2: two healthy hours: on to 5 %.
    r, data = mobile(run_cli, env, "advance", *base, "--at", at(2))
    assert r.code == 0, r.stderr
    assert (data["decision"], data["fraction"], data["stage"]) == ("advanced", 0.05, 1)
    assert play.committed("production")[0]["userFraction"] == 0.05
    assert r.outputs["decision"] == "advanced" and r.outputs["stage"] == "1"
    assert "Mobile rollout of `com.triptrip.app`" in r.summary
    assert len(github.log(DEFAULT_BRANCH, repo=REPO)) == log + 1

    # Hour 3: 6 % of the new version's users crashed: halted, recorded, announced.
    r, data = mobile(run_cli, env, "advance", *base, "--at", at(3))
    assert r.code == 1, r.stderr
    assert data["ok"] is False and data["decision"] == "halted"
    assert play.committed("production")[0]["status"] == "halted"
    record = data["record"]
    assert record["id"] == "RB-2026-001"
    assert (record["from_version"], record["to_version"]) == ("101", "100")
    assert record["trigger"]["type"] == "automatic"
    assert r.outputs["record-id"] == "RB-2026-001"
    deployments = github.repo(REPO).deployments
    assert [d["task"] for d in deployments] == ["rollback"]
    assert [m.via for m in slack.messages] == ["webhook"]
    assert "RB-2026-001" in json.dumps(slack.messages[0].payload)
    assert saved(github)["decision"] == "halted"

    # Later looks report the halt and exit 0: an hourly schedule does not fail every hour.
    r, data = mobile(run_cli, env, "advance", *base, "--at", at(4))
    assert (r.code, data["decision"], data["changed"]) == (0, "halted", False)
    assert len(github.repo(REPO).deployments) == 1


def test_two_advances_at_once_save_once(
    run_cli: RunCli, env: dict[str, str], play: PlayFake, github: GitHubFake, policy: Path
) -> None:
    """Both read the state, both look; the second to save is refused (not a fast-forward),
    reads the first's state again and looks again: the same hour, so nothing new."""
    healthy(play, range(3))
    base = ("--policy", str(policy))
    r, _ = mobile(run_cli, env, "start", "--version-code", "101", "--from-track", "internal",
                  *base, "--at", at(0))  # fmt: skip
    assert r.code == 0, r.stderr
    log = len(github.log(DEFAULT_BRANCH, repo=REPO))
    barrier = threading.Barrier(2, timeout=90)
    results: list[tuple[CliResult, dict[str, Any]]] = []

    # Both runs read the state before either saves: the fake holds each first read.
    from tests.fakes import github as github_fake

    original = github_fake.GitHubFake.handle
    reads = {"n": 0}

    def handle(self: Any, method: str, raw_path: str, *a: Any, **kw: Any) -> Any:
        if method == "GET" and "/git/blobs/" in raw_path and reads["n"] < 2:
            reads["n"] += 1
            barrier.wait()
        return original(self, method, raw_path, *a, **kw)

    def one() -> None:
        # Two processes, as two scheduled jobs are: nothing in-process is shared but the fakes.
        # With the version code given, the gate's own read is each run's first.
        import os
        import subprocess
        import sys

        n = len(threading.enumerate())
        child = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
            **env,
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(policy.parent / f"out-{threading.get_ident()}-{n}"),
            "GITHUB_STEP_SUMMARY": str(policy.parent / f"sum-{threading.get_ident()}-{n}"),
        }
        done = subprocess.run(
            [sys.executable, "-m", "release_actions", "mobile", "play", "advance",
             "--version-code", "101", *base, "--at", at(2), "--package", PACKAGE, "--json"],
            env=child, capture_output=True, text=True, timeout=150,
        )  # fmt: skip
        r = CliResult(done.returncode, done.stdout, done.stderr, Path(child["GITHUB_OUTPUT"]),
                      Path(child["GITHUB_STEP_SUMMARY"]))  # fmt: skip
        results.append((r, json.loads(done.stdout) if done.stdout.strip() else {}))

    try:
        github_fake.GitHubFake.handle = handle  # type: ignore[method-assign]
        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
    finally:
        github_fake.GitHubFake.handle = original  # type: ignore[method-assign]
    shown = [(r.code, data, r.stderr[-2000:]) for r, data in results]
    assert sorted(data["decision"] for _, data in results) == ["advanced", "held"], shown
    assert all(r.code == 0 for r, _ in results)
    assert sorted(data["fraction"] for _, data in results) == [0.05, 0.05]
    # The first look's commit advanced; the second's, on top of it, adds no hour and no
    # stage (only its own `last_look`). Play moved once: the loser's edit was stale (409),
    # and its retry from a fresh read found 5 % already there.
    commits = github.log(DEFAULT_BRANCH, repo=REPO)
    assert len(commits) == log + 2
    assert saved(github)["stage_index"] == 1 and len(saved(github)["hours"]) == 2
    assert saved(github)["stages"][0]["result"] == "passed"
    moved = [c for c in play.commits if c["tracks"]["production"][0].get("userFraction") == 0.05]
    assert len(moved) == 1
    assert sorted(data["attempts"] for _, data in results) == [1, 2]


def test_start_after_a_crash_between_update_and_commit(
    run_cli: RunCli, env: dict[str, str], play: PlayFake, github: GitHubFake, policy: Path
) -> None:
    """A runner killed after tracks.update: its edit never commits; the rerun gets there."""
    publisher, _ = play_clients(Credentials(token=TOKEN_PLAY), endpoint=play.url)
    edits = publisher.edits()
    edit = edits.insert(packageName=PACKAGE, body={}).execute()["id"]
    edits.tracks().update(
        packageName=PACKAGE,
        editId=edit,
        track="production",
        body={
            "track": "production",
            "releases": [
                {"versionCodes": ["101"], "status": "inProgress", "userFraction": 0.01},
                {"versionCodes": ["100"], "status": "completed"},
            ],
        },
    ).execute()
    assert play.committed("production") == [{"versionCodes": ["100"], "status": "completed"}]

    args = ("start", "--version-code", "101", "--from-track", "internal", "--policy", str(policy))
    r, data = mobile(run_cli, env, *args, "--at", at(0))
    assert r.code == 0, r.stderr
    assert (data["decision"], data["fraction"]) == ("started", 0.01)
    assert play.committed("production")[0]["status"] == "inProgress"
    assert saved(github)["version_code"] == "101"
    # The abandoned edit is stale: committing it now is refused and changes nothing.
    with pytest.raises(Exception, match="409"):
        edits.commit(packageName=PACKAGE, editId=edit).execute()


def test_halt_resume_complete_by_hand(
    run_cli: RunCli, env: dict[str, str], play: PlayFake, github: GitHubFake, policy: Path
) -> None:
    base = ("--policy", str(policy))
    mobile(run_cli, env, "start", "--version-code", "101", "--from-track", "internal", *base,
           "--at", at(0))  # fmt: skip
    r, data = mobile(run_cli, env, "halt", *base, "--at", at(1))
    assert r.code == 2 and data["error"]["code"] == "usage"  # --reason is required

    r, data = mobile(run_cli, env, "halt", "--reason", "payments broken", *base, "--at", at(1))
    assert r.code == 1, r.stderr
    assert data["decision"] == "halted" and data["record"]["trigger"]["type"] == "manual"
    assert saved(github)["reason"] == "Halted by mika: payments broken"
    assert play.committed("production")[0]["status"] == "halted"

    r, data = mobile(run_cli, env, "resume", "--reason", "fixed server-side", *base, "--at", at(2))
    assert r.code == 0, r.stderr
    assert play.committed("production")[0]["status"] == "inProgress"
    assert saved(github)["resumed"][0]["by"] == "mika"

    r, data = mobile(run_cli, env, "complete", "--reason", "all good", *base, "--at", at(3))
    assert (r.code, data["decision"], data["fraction"]) == (0, "completed", 1.0)
    assert play.committed("production") == [
        {"versionCodes": ["101"], "status": "completed", "name": "4.2.0"}
    ]
    r, data = mobile(run_cli, env, "status", *base)
    assert (r.code, data["decision"], data["store"]["state"]) == (0, "completed", "completed")


def test_an_hour_play_never_fills_is_passed_once_play_is_fresh_past_it(
    run_cli: RunCli, env: dict[str, str], play: PlayFake, github: GitHubFake, policy: Path
) -> None:
    """Hour 1 has no rows of 101 (no user of it that hour): waited for while Play's
    `freshnessInfo` ends before it, passed as observed by no one once it ends after."""
    healthy(play, range(3))
    play.vitals = [
        r for r in play.vitals if (r.version_code, r.start) != (101, T0 + timedelta(hours=1))
    ]
    play.latest_end = T0 + timedelta(hours=1)
    base = ("--policy", str(policy))
    r, _ = mobile(run_cli, env, "start", "--version-code", "101", "--from-track", "internal",
                  *base, "--at", at(0))  # fmt: skip
    assert r.code == 0, r.stderr

    # Play's hourly data ends at 11:00: hour 1 (11:00-12:00) may still come. Held on it.
    r, data = mobile(run_cli, env, "advance", *base, "--at", at(3))
    assert r.code == 0, r.stderr
    assert (data["decision"], data["fraction"], data["hours_judged"]) == ("held", 0.01, 1)
    assert "cannot read vitals from play" in data["reason"]
    assert play.committed("production")[0]["userFraction"] == 0.01

    # Play is complete to 13:00 and hour 1 is still empty: kept as no one's, and passed.
    play.latest_end = T0 + timedelta(hours=3)
    r, data = mobile(run_cli, env, "advance", *base, "--at", at(3.5))
    assert r.code == 0, r.stderr
    assert (data["decision"], data["fraction"], data["hours_judged"]) == ("advanced", 0.05, 3)
    hours = saved(github)["hours"]
    assert [h.get("missing", []) for h in hours] == [[], ["new"], []]
    assert hours[1]["new"] == [0, 0, 0] and hours[1]["prev"][0] == 90000
    stage = saved(github)["stages"][0]
    assert (stage["new_users"], stage["unobserved_hours"]) == (4000, 1)


def test_hours_play_never_fills_alone_never_advance(
    run_cli: RunCli, env: dict[str, str], play: PlayFake, github: GitHubFake, policy: Path
) -> None:
    """No rows of 101 at all, and Play fresh past every hour: held, waiting for users."""
    healthy(play, range(3))
    play.vitals = [r for r in play.vitals if r.version_code != 101]
    base = ("--policy", str(policy))
    r, _ = mobile(run_cli, env, "start", "--version-code", "101", "--from-track", "internal",
                  *base, "--at", at(0))  # fmt: skip
    assert r.code == 0, r.stderr
    r, data = mobile(run_cli, env, "advance", *base, "--at", at(3))
    assert r.code == 0, r.stderr
    assert (data["decision"], data["fraction"], data["hours_judged"]) == ("held", 0.01, 3)
    assert "waiting for users" in data["reason"]
    assert play.committed("production")[0]["userFraction"] == 0.01
    assert [h["missing"] for h in saved(github)["hours"]] == [["new"]] * 3
