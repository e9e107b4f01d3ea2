"""`mobile appstore advance|pause|resume|notes` as the CLI: App Store Connect, Sentry, GitHub, Slack fakes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from release_actions.mobile.state import DEFAULT_BRANCH, state_path
from tests.conftest import CliResult, RunCli
from tests.fakes.appstore import (
    APP_ID,
    ISSUER_ID,
    KEY_ID,
    OTHER_KEY_PEM,
    PRIVATE_KEY_PEM,
    AppStoreFake,
)
from tests.fakes.github import GitHubFake
from tests.fakes.sentry import ORG, PROJECT_ID, SentryFake
from tests.fakes.sentry import TOKEN as SENTRY_TOKEN
from tests.fakes.slack import SlackFake

pytestmark = pytest.mark.integration

REPO = "triptrip/app"
TOKEN = "ghs_mobiletoken"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PATH = state_path("ios", APP_ID)
RELEASE = "com.triptrip.app@{version}+{version_code}"
NEW = "com.triptrip.app@4.2.0+421"
PREV = "com.triptrip.app@4.1.0+410"
# Apple's own days (the default iOS stages); the source's thresholds as written.
POLICY = "mobile:\n  judge: threshold\n"


@pytest.fixture
def appstore() -> Iterator[AppStoreFake]:
    # 4.1.0 is what users outside the phased release still run; Apple marks it replaced as
    # soon as 4.2.0 goes live.
    with AppStoreFake() as fake:
        fake.add_version("4.1.0", build="410", state="REPLACED_WITH_NEW_VERSION", phased=None)
        fake.add_version(
            "4.2.0", build="421", phased="ACTIVE", day=1, locales={"ja": "", "en-US": ""}
        )
        yield fake


@pytest.fixture
def sentry() -> Iterator[SentryFake]:
    # The previous version, steady at 99.9 % crash-free users for the whole month of a test.
    with SentryFake() as fake:
        for h in range(-1, 24 * 30):
            fake.add(PREV, T0 + timedelta(hours=h), users=20000, crashed=20)
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
def env(
    appstore: AppStoreFake,
    sentry: SentryFake,
    github: GitHubFake,
    slack: SlackFake,
    tmp_path: Path,
) -> dict[str, str]:
    return {
        "APP_STORE_CONNECT_KEY_ID": KEY_ID,
        "APP_STORE_CONNECT_ISSUER_ID": ISSUER_ID,
        "APP_STORE_CONNECT_PRIVATE_KEY": PRIVATE_KEY_PEM,
        "APP_STORE_CONNECT_API_URL": appstore.url,
        "SENTRY_URL": sentry.url,
        "SENTRY_AUTH_TOKEN": SENTRY_TOKEN,
        "SENTRY_ORG": ORG,
        "SENTRY_PROJECT": PROJECT_ID,
        "SENTRY_RELEASE": RELEASE,
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


def healthy(sentry: SentryFake, hours: range, *, users: int = 5000, crashed: int = 5) -> None:
    for h in hours:
        sentry.add(NEW, T0 + timedelta(hours=h), users=users, crashed=crashed)


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours, minutes=17)).isoformat()


def mobile(run_cli: RunCli, env: dict[str, str], *args: str) -> tuple[CliResult, dict[str, Any]]:
    r = run_cli("mobile", "appstore", *args, "--app-id", APP_ID, "--json", env=env)
    assert r.stdout.strip(), r.stderr
    return r, json.loads(r.stdout)


def advance(
    run_cli: RunCli, env: dict[str, str], policy: Path, hours: float
) -> tuple[CliResult, dict[str, Any]]:
    return mobile(
        run_cli, env, "advance", "--version", "4.2.0", "--policy", str(policy), "--at", at(hours)
    )


def saved(github: GitHubFake) -> dict[str, Any]:
    text = github.file_at(DEFAULT_BRANCH, PATH, repo=REPO)
    assert text is not None
    return dict(json.loads(text))


def phased_patches(appstore: AppStoreFake) -> list[str]:
    return [
        r.body["data"]["attributes"]["phasedReleaseState"]
        for r in appstore.patches()
        if "/appStoreVersionPhasedReleases/" in r.path
    ]


def test_day_one_holds_and_follows_apples_days(
    run_cli: RunCli,
    env: dict[str, str],
    appstore: AppStoreFake,
    sentry: SentryFake,
    github: GitHubFake,
    policy: Path,
) -> None:
    healthy(sentry, range(30))
    r, data = advance(run_cli, env, policy, 0)
    assert r.code == 0, r.stderr
    assert (data["decision"], data["fraction"], data["stage"]) == ("started", 0.01, 0)
    state = saved(github)
    assert (state["platform"], state["version_code"], state["version_name"]) == (
        "ios",
        "421",
        "4.2.0",
    )

    # Day 1, hour 1: healthy, and Apple is still on 1 %: held, nothing sent to Apple.
    r, data = advance(run_cli, env, policy, 1)
    assert r.code == 0, r.stderr
    assert (data["decision"], data["fraction"], data["hours_judged"]) == ("held", 0.01, 1)
    assert data["judgement"]["verdict"] == "ok"
    # The same hour again takes in nothing and writes no state.
    log = len(github.log(DEFAULT_BRANCH, repo=REPO))
    r, data = advance(run_cli, env, policy, 1.5)
    assert (r.code, data["decision"], data["hours_judged"]) == (0, "held", 1)
    assert len(github.log(DEFAULT_BRANCH, repo=REPO)) == log

    # Apple moves to day 2 (2 %) on its own: the gate follows, and never moves Apple's days.
    appstore.set_day("4.2.0", 2)
    r, data = advance(run_cli, env, policy, 24)
    assert r.code == 0, r.stderr
    assert (data["fraction"], data["stage"]) == (0.02, 1)
    assert data["decision"] in ("held", "advanced")
    assert saved(github)["stages"][0]["reason"] == "Apple's phased release moved on"
    assert phased_patches(appstore) == []
    # Both releases named from the template: the new build's and the previous version's.
    queried = {q for rq in sentry.requests for q in rq.params.get("query", [])}
    assert queried == {f'release:"{NEW}"', f'release:"{PREV}"'}


@pytest.mark.parametrize("judge", ["threshold", "sequential"])
def test_crash_spike_pauses_once_then_resume_by_hand(
    run_cli: RunCli,
    env: dict[str, str],
    appstore: AppStoreFake,
    sentry: SentryFake,
    github: GitHubFake,
    slack: SlackFake,
    policy: Path,
    judge: str,
) -> None:
    # 94 % crash-free is past the absolute 99 % limit: either judge halts on it alone.
    policy.write_text(f"mobile:\n  judge: {judge}\n")
    healthy(sentry, range(1))
    sentry.add(NEW, T0 + timedelta(hours=1), users=3000, crashed=180)  # 94 % crash-free
    r, _ = advance(run_cli, env, policy, 0)
    assert r.code == 0, r.stderr
    r, data = advance(run_cli, env, policy, 1)
    assert (r.code, data["decision"]) == (0, "held"), r.stderr

    r, data = advance(run_cli, env, policy, 2)
    assert r.code == 1, r.stderr
    assert data["ok"] is False and data["decision"] == "halted"
    assert appstore.phased_state("4.2.0") == "PAUSED"
    assert phased_patches(appstore) == ["PAUSED"]
    record = data["record"]
    assert record["id"] == "RB-2026-001"
    assert record["from_version"] == "421" and record["trigger"]["type"] == "automatic"
    assert r.outputs["record-id"] == "RB-2026-001"
    assert [d["task"] for d in github.repo(REPO).deployments] == ["rollback"]
    assert [m.via for m in slack.messages] == ["webhook"]
    assert "RB-2026-001" in json.dumps(slack.messages[0].payload)
    assert saved(github)["decision"] == "halted"

    # The next scheduled look reports the halt and exits 0: no second record, no notice.
    r, data = advance(run_cli, env, policy, 3)
    assert (r.code, data["decision"], data["changed"]) == (0, "halted", False), r.stderr
    assert data["record"] is None and data["warnings"] == []
    assert len(github.repo(REPO).deployments) == 1 and len(slack.messages) == 1
    assert phased_patches(appstore) == ["PAUSED"]

    # A person resumes it; Apple's days go on from where they were.
    args = ("--version", "4.2.0", "--policy", str(policy))
    r, data = mobile(run_cli, env, "resume", "--reason", "crash fixed server-side", *args,
                     "--at", at(4))  # fmt: skip
    assert r.code == 0, r.stderr
    assert appstore.phased_state("4.2.0") == "ACTIVE"
    state = saved(github)
    assert state["decision"] == "running"
    assert state["resumed"][0]["by"] == "mika"
    assert state["resumed"][0]["reason"] == "crash fixed server-side"
    assert phased_patches(appstore) == ["PAUSED", "ACTIVE"]


def test_a_spike_after_a_quiet_hour_still_pauses(
    run_cli: RunCli,
    env: dict[str, str],
    appstore: AppStoreFake,
    sentry: SentryFake,
    policy: Path,
) -> None:
    healthy(sentry, range(1))  # hour 1: no sessions at all (night, 1 % of users)
    sentry.add(NEW, T0 + timedelta(hours=2), users=3000, crashed=180)
    advance(run_cli, env, policy, 0)
    # Sentry never fills hour 1; the look after the source's data lag (6 hours) passes it.
    for hour in (1, 2, 3, 9):
        r, data = advance(run_cli, env, policy, hour)
    assert (r.code, data["decision"]) == (1, "halted"), data["reason"]
    assert appstore.phased_state("4.2.0") == "PAUSED"


def test_pause_by_hand_needs_a_reason_and_is_recorded(
    run_cli: RunCli, env: dict[str, str], appstore: AppStoreFake, github: GitHubFake, policy: Path
) -> None:
    args = ("--version", "4.2.0", "--policy", str(policy))
    r, data = mobile(run_cli, env, "pause", *args, "--at", at(0))
    assert r.code == 2 and data["error"]["code"] == "usage"
    r, data = mobile(run_cli, env, "pause", "--reason", "payments broken", *args, "--at", at(0))
    assert r.code == 1, r.stderr
    assert data["decision"] == "halted" and data["record"]["trigger"]["type"] == "manual"
    assert appstore.phased_state("4.2.0") == "PAUSED"
    assert saved(github)["reason"] == "Halted by mika: payments broken"


def test_a_long_pause_warns_before_apples_30_days(
    run_cli: RunCli,
    env: dict[str, str],
    appstore: AppStoreFake,
    sentry: SentryFake,
    policy: Path,
) -> None:
    sentry.add(NEW, T0, users=3000, crashed=180)
    advance(run_cli, env, policy, 0)
    r, _ = advance(run_cli, env, policy, 1)
    assert r.code == 1, r.stderr

    appstore.pause_for("4.2.0", 10)
    r, data = advance(run_cli, env, policy, 24 * 10)
    assert (r.code, data["decision"], data["warnings"]) == (0, "halted", [])

    # Apple reports 26 days paused in all: past the policy's 25, 4 days before Apple resumes.
    appstore.pause_for("4.2.0", 26)
    r, data = advance(run_cli, env, policy, 24 * 26)
    assert (r.code, data["decision"]) == (0, "halted"), r.stderr
    [warning] = data["warnings"]
    assert "paused for 26 days" in warning and "4 days left" in warning
    assert "::warning" in r.stderr and "paused for 26 days" in r.stderr


@pytest.mark.parametrize(
    ("change", "rejection", "words"),
    [
        ({"clock_ahead": 3600}, "expired", "clock"),
        ({"APP_STORE_CONNECT_PRIVATE_KEY": OTHER_KEY_PEM}, "bad signature", "revoked"),
        ({"APP_STORE_CONNECT_KEY_ID": "WRONGKID00"}, "wrong kid", "APP_STORE_CONNECT_KEY_ID"),
    ],
)
def test_a_key_apple_refuses_is_a_clear_error(
    run_cli: RunCli,
    env: dict[str, str],
    appstore: AppStoreFake,
    policy: Path,
    change: dict[str, Any],
    rejection: str,
    words: str,
) -> None:
    ahead = change.pop("clock_ahead", 0)
    if ahead:
        # Apple's clock an hour ahead of the runner's: every token is expired when it arrives.
        appstore.now = lambda: time.time() + ahead
    r, data = advance(run_cli, {**env, **change}, policy, 0)
    assert r.code == 2, r.stderr
    error = data["error"]
    assert "HTTP 401" in error["message"] and "NOT_AUTHORIZED" in error["message"]
    assert "APP_STORE_CONNECT_PRIVATE_KEY" in error["hint"] and words in error["hint"]
    assert appstore.rejections and set(appstore.rejections) == {rejection}
    assert appstore.patches() == []
    # The keys show only where Actions is told to mask them.
    secret = PRIVATE_KEY_PEM.splitlines()[1]
    shown = [line for line in (r.stdout + r.stderr).splitlines() if secret in line]
    assert all(line.startswith("::add-mask::") for line in shown), shown


def test_a_key_that_is_not_a_key(run_cli: RunCli, env: dict[str, str], policy: Path) -> None:
    bad = {**env, "APP_STORE_CONNECT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nx\n"}
    r, data = advance(run_cli, bad, policy, 0)
    assert r.code == 2, r.stderr
    assert "not a PEM private key" in data["error"]["message"]
    assert "AuthKey_KEYID.p8" in data["error"]["hint"]


CHANGELOG = """\
# Changelog

## [4.3.0] - 2026-03-01

### Added

- Offline maps
- Trip sharing with friends

### Fixed

- Login on tablets

## [4.2.0] - 2026-02-20

### Fixed

- Crash on launch
"""


def test_whats_new_from_the_changelog_once_per_locale(
    run_cli: RunCli, env: dict[str, str], appstore: AppStoreFake, tmp_path: Path
) -> None:
    appstore.add_version(
        "4.3.0",
        build="430",
        state="PREPARE_FOR_SUBMISSION",
        phased="INACTIVE",
        locales={"ja": "", "en-US": "Old notes"},
    )
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(CHANGELOG)
    args = ("notes", "--version", "4.3.0", "--changelog", str(changelog))
    r, data = mobile(run_cli, env, *args)
    assert r.code == 0, r.stderr
    assert data["changed"] is True and set(data["release_notes"]) == {"ja", "en-US"}
    texts = appstore.whats_new("4.3.0")
    assert texts == data["release_notes"]
    en = texts["en-US"]
    assert en is not None and "Offline maps" in en and "Login on tablets" in en
    assert "New features:" in en and "App Store" in en
    assert texts["ja"] is not None and "【新機能】" in texts["ja"]
    assert len(appstore.patches()) == 2  # one PATCH per locale
    assert r.outputs["changed"] == "true"

    again, data = mobile(run_cli, env, *args)
    assert again.code == 0, again.stderr
    assert data["changed"] is False
    assert len(appstore.patches()) == 2  # a rerun sends nothing


def test_whats_new_is_cut_at_an_entry_within_4000_characters(
    run_cli: RunCli, env: dict[str, str], appstore: AppStoreFake, tmp_path: Path
) -> None:
    appstore.add_version(
        "4.3.0", build="430", state="PREPARE_FOR_SUBMISSION", phased="INACTIVE",
        locales={"en-US": ""},
    )  # fmt: skip
    entries = "".join(f"- Improvement number {i}: {'x' * 80}\n" for i in range(60))
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(f"# Changelog\n\n## [4.3.0] - 2026-03-01\n\n### Changed\n\n{entries}")
    r, data = mobile(run_cli, env, "notes", "--version", "4.3.0", "--changelog", str(changelog),
                     "--locale", "en")  # fmt: skip
    assert r.code == 0, r.stderr
    text = appstore.whats_new("4.3.0")["en-US"]
    assert text is not None and len(text) <= 4000 and data["characters"]["en-US"] == len(text)
    assert text.rstrip().endswith("Download the latest version from the App Store.")
    assert "Improvement number 0:" in text and "Improvement number 59:" not in text
    assert "::warning" in r.stderr and "allows 4000 characters" in r.stderr


def test_whats_new_of_a_live_version_says_when_it_can_be_set(
    run_cli: RunCli, env: dict[str, str], appstore: AppStoreFake, tmp_path: Path
) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(CHANGELOG)
    r, data = mobile(run_cli, env, "notes", "--version", "4.2.0", "--changelog", str(changelog))
    assert r.code == 2, r.stderr
    assert "HTTP 409" in data["error"]["message"]
    assert "before review" in data["error"]["hint"]
    assert appstore.whats_new("4.2.0") == {"ja": None, "en-US": None}


@pytest.mark.parametrize("previous", [True, False])
def test_a_doubled_crash_rate_pauses_only_against_the_previous_version(
    run_cli: RunCli,
    env: dict[str, str],
    appstore: AppStoreFake,
    sentry: SentryFake,
    github: GitHubFake,
    policy: Path,
    previous: bool,
) -> None:
    # 0.3 % of 4.1.0's users crash, 0.8 % of 4.2.0's: 99.2 % crash-free stays above the
    # absolute 99 % limit, so only the comparison with the previous version can catch it.
    policy.write_text("mobile:\n  judge: sequential\n")
    sentry.hours.clear()
    for h in range(-1, 12):
        sentry.add(PREV, T0 + timedelta(hours=h), users=20000, crashed=60)
        sentry.add(NEW, T0 + timedelta(hours=h), users=5000, crashed=40)
    if not previous:
        # A first release: nothing else was ever live, so there is nothing to compare with.
        del appstore.versions[appstore._find("4.1.0")]
    r, data = advance(run_cli, env, policy, 0)
    assert r.code == 0, r.stderr
    assert data["previous_version_code"] == ("410" if previous else None)
    assert data["reason"].endswith("compared with 410." if previous else "no previous version.")
    decisions = []
    for hour in range(1, 9):
        r, data = advance(run_cli, env, policy, hour)
        decisions.append(data["decision"])
        if data["decision"] == "halted":
            break
    if not previous:
        assert r.code == 0, r.stderr
        assert "halted" not in decisions and appstore.phased_state("4.2.0") == "ACTIVE"
        assert phased_patches(appstore) == []
        # Eight hours, 40,000 users, and all the judge can say is that 4.2.0 misses the
        # advance criteria: it holds the stage, and the phased release goes on.
        assert data["judgement"]["verdict"] == "hold"
        assert "vs previous n/a of 0" in data["judgement"]["reason"]
        return
    # One hour of 5,000 users is enough: 40 crashed where 4.1.0's rate predicts 15.
    assert (r.code, decisions) == (1, ["halted"]), r.stderr
    assert appstore.phased_state("4.2.0") == "PAUSED"
    assert phased_patches(appstore) == ["PAUSED"]
    judgement = data["judgement"]
    assert judgement["check"] == "crash ratio"
    assert "more of its users crash than the previous version's" in judgement["reason"]
    assert "vs previous 99.70 % of 20,000" in judgement["reason"]
    # The evidence names the previous version: the state, the record's way back, the stage.
    state = saved(github)
    assert (state["previous_version_code"], state["previous_version_name"]) == ("410", "4.1.0")
    assert (data["record"]["from_version"], data["record"]["to_version"]) == ("421", "410")
    evidence = state["stages"][0]["evidence"]
    assert (evidence["prev_users"], evidence["prev_crashed"]) == (20000, 60)
    assert evidence["crash_ratio"] > 2
