"""`metrics export`'s gathering with the real PyGithub against the GitHub fake, counting every request."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from release_actions.app.metrics_gather import Gathered, gather
from release_actions.app.session import Session
from release_actions.core.policy import Policy, default_policy
from release_actions.gha import Runtime
from tests.fakes.github import GitHubFake
from tests.integration.fake_github import fake_github_env

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = NOW - timedelta(days=365)
KINDS = ("regular", "hotfix", "security", "config", "infrastructure")
STATUSES = ("success", "failure", "rolled_back")


# -- the document's format, checked on its own ------------------------------------------------


def _is_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return False
    return when.tzinfo is not None


def check_document(doc: Any) -> list[str]:
    """Every way ``doc`` departs from the `metrics export` format (empty: none)."""
    bad: list[str] = []
    if not isinstance(doc, dict):
        return ["not an object"]
    for key in ("generated_at", "since"):
        if not _is_time(doc.get(key)):
            bad.append(f"{key}: not an ISO 8601 time with an offset")
    for key in ("environment", "repository"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            bad.append(f"{key}: not a name")
    if not isinstance(doc.get("deployments"), list) or not isinstance(doc.get("blockers"), list):
        return [*bad, "deployments or blockers: not a list"]
    for i, dep in enumerate(doc["deployments"]):
        at = f"deployments[{i}]"
        want = {"id", "version", "kind", "sha", "started_at", "finished_at", "status"}
        want |= {"commits", "canary", "rollback"}
        if set(dep) != want:
            bad.append(f"{at}: keys {sorted(set(dep) ^ want)}")
            continue
        if not isinstance(dep["id"], int) or not isinstance(dep["version"], str):
            bad.append(f"{at}: id or version")
        if dep["kind"] not in KINDS or dep["status"] not in STATUSES:
            bad.append(f"{at}: kind {dep['kind']!r} or status {dep['status']!r}")
        if dep["canary"] not in ("passed", "failed", None):
            bad.append(f"{at}.canary: {dep['canary']!r}")
        if not (dep["sha"] is None or (isinstance(dep["sha"], str) and len(dep["sha"]) == 40)):
            bad.append(f"{at}.sha: {dep['sha']!r}")
        if not _is_time(dep["started_at"]) or not _is_time(dep["finished_at"]):
            bad.append(f"{at}: started_at or finished_at")
        for j, commit in enumerate(dep["commits"]):
            if set(commit) != {"sha", "committed_at"} or not _is_time(commit["committed_at"]):
                bad.append(f"{at}.commits[{j}]: {commit!r}")
        rollback = dep["rollback"]
        if rollback is not None:
            if not {"record", "detected_at", "recovered_at", "trigger"} <= set(rollback):
                bad.append(f"{at}.rollback: keys {sorted(rollback)}")
            elif not _is_time(rollback["detected_at"]) or not (
                rollback["recovered_at"] is None or _is_time(rollback["recovered_at"])
            ):
                bad.append(f"{at}.rollback: times")
        if (rollback is not None) != (dep["status"] == "rolled_back"):
            bad.append(f"{at}: status {dep['status']} with rollback {rollback!r}")
    for i, blocker in enumerate(doc["blockers"]):
        at = f"blockers[{i}]"
        if set(blocker) != {"number", "opened_at", "version"}:
            bad.append(f"{at}: keys {sorted(blocker)}")
        elif not isinstance(blocker["number"], int) or not _is_time(blocker["opened_at"]):
            bad.append(f"{at}: number or opened_at")
    return bad


def assert_valid(doc: dict[str, Any]) -> None:
    assert check_document(doc) == []
    # And as the one who reads it reads it.
    from release_actions.core.dora import parse_history

    history = parse_history(json.loads(json.dumps(doc)), "export")
    assert len(history.deployments) == len(doc["deployments"])


# -- seeding a year of history, as the writers write it ------------------------------------------


def seeded_payload(
    version: str,
    sha: str | None,
    started: datetime,
    *,
    kind: str = "regular",
    status: str = "success",
    canary: str | None = "passed",
    record: str | None = None,
    rollback: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A payload as integrations/release_history.py writes it."""
    return {
        "version": version,
        "kind": kind,
        "sha": sha,
        "stage": "production",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": (started + timedelta(minutes=25)).isoformat(timespec="seconds"),
        "status": status,
        "canary": canary,
        "record": record,
        "rollback": rollback,
        "run_url": f"https://github.com/octo/app/actions/runs/{int(started.timestamp())}",
    }


def record_payload(
    number: int, version: str, previous: str, when: datetime, *, trigger: str = "automatic"
) -> dict[str, Any]:
    """A rollback record as integrations/records.py files it (§6.4 and the run facts)."""
    return {
        "id": f"RB-{when.year}-{number:03d}",
        "provisional_id": f"RB-{when.year}-P-{number}-1-abcdef",
        "timestamp": when.astimezone().isoformat(timespec="seconds"),
        "deployment": "triptrip-api",
        "from_version": version,
        "to_version": previous,
        "trigger": {"type": trigger, "reason": "Error rate 7.2% > 5%", "metrics": {}},
        "duration": {"rollback_seconds": 40.0, "recovery_seconds": 120.0},
        "recovered": True,
        "environment": "production",
        "release": version,
    }


@dataclass
class Year:
    """What was seeded: each release's version, commits and fate, oldest first."""

    fake: GitHubFake
    versions: list[str] = field(default_factory=list)
    commits: dict[str, list[str]] = field(default_factory=dict)
    rolled_back: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    before: str = ""
    blockers: list[tuple[int, datetime]] = field(default_factory=list)
    starts: dict[str, datetime] = field(default_factory=dict)


def seed_year(fake: GitHubFake, count: int = 400) -> Year:
    """``count`` releases over the last year, one before it; every 25th rolled back with
    its record, every 20th a hotfix (in `production-hotfix`), blockers now and then."""
    year = Year(fake)
    step = timedelta(days=365) / (count + 1)
    first = SINCE + step / 2
    # The release before the range, which the oldest in the range is compared with.
    sha = fake.commit("main", {"app.txt": "v0"}, message="v0", date=SINCE - timedelta(days=3))
    fake.add_deployment(
        sha,
        task="release",
        payload=seeded_payload("v0.0.0", sha, SINCE - timedelta(days=2)),
        created_at=SINCE - timedelta(days=2),
        statuses=[("success", "v0.0.0 released")],
    )
    year.before = sha
    number = 0
    previous = "v0.0.0"
    for i in range(count):
        started = first + i * step
        version = f"v1.{i // 10}.{i % 10}"
        made = [
            fake.commit(
                "main",
                {"app.txt": f"{version}.{n}"},
                message=f"{version} change {n}",
                date=started - timedelta(hours=3 - n),
            )
            for n in range(1 + i % 3)
        ]
        kind = "hotfix" if i % 20 == 7 else "security" if i % 50 == 11 else "regular"
        environment = "production-hotfix" if kind == "hotfix" else "production"
        payload = seeded_payload(version, made[-1], started, kind=kind)
        if i % 25 == 3:
            number += 1
            detected = started + timedelta(minutes=12)
            record = record_payload(number, version, previous, detected)
            record["environment"] = environment
            payload.update(status="rolled_back", canary="failed", record=record["id"])
            fake.add_deployment(
                made[-1],
                task="release",
                environment=environment,
                payload=payload,
                created_at=started + timedelta(minutes=25),
            )
            fake.add_deployment(
                made[-1],
                task="rollback",
                environment=environment,
                payload=record,
                created_at=detected + timedelta(minutes=1),
            )
            year.rolled_back[version] = record["id"]
        else:
            fake.add_deployment(
                made[-1],
                task="release",
                environment=environment,
                payload=payload,
                created_at=started + timedelta(minutes=25),
            )
            previous = version
        year.versions.append(version)
        year.commits[version] = made
        year.kinds[version] = kind
        year.starts[version] = started
        if i % 13 == 5:
            opened = started - timedelta(days=1)
            issue = fake.add_issue(
                f"Blocker before {version}", labels=["release-blocker"], created_at=opened
            )
            year.blockers.append((issue["number"], opened))
    # Not blockers of the year: one older, a pull request, an issue without the label.
    fake.add_issue("Old", labels=["release-blocker"], created_at=SINCE - timedelta(days=30))
    fake.add_pull("fix/blocker", title="Fix", labels=["release-blocker"])
    fake.add_issue("Unrelated", labels=["bug"], created_at=NOW - timedelta(days=3))
    return year


# -- running it -----------------------------------------------------------------------------


def run(
    fake: GitHubFake,
    cache: Path | None,
    *,
    policy: Policy | None = None,
    since: datetime = SINCE,
    err: io.StringIO | None = None,
    **env: str,
) -> tuple[Gathered, int]:
    """Gather with a fresh session; also the requests the fake saw meanwhile."""
    full = {**fake_github_env(fake.url, "ghs_fake"), **env}
    session = Session(runtime=Runtime(env=full, out=io.StringIO(), err=err or io.StringIO()))
    seen = len(fake.requests)
    gathered = gather(session, policy or default_policy(), since=since, cache=cache)
    return gathered, len(fake.requests) - seen


def list_pages(fake: GitHubFake, start: int) -> int:
    return sum(
        1
        for r in fake.requests[start:]
        if r.path.endswith(("/deployments", "/issues")) and r.method == "GET"
    )


def test_a_year_costs_one_request_per_deployment_plus_pages_then_a_few(
    github: GitHubFake, tmp_path: Path
) -> None:
    year = seed_year(github)
    cache = tmp_path / "cache" / "metrics.json"

    first, seen = run(github, cache)

    pages = list_pages(github, 0)
    print(f"\nfirst run: {first.requests} requests ({pages} pages) for 400 deployments")
    assert first.requests == seen, "every request the fake saw is counted"
    assert first.requests <= 400 + pages
    assert pages <= 5 + 1 + 1, "release pages (and the one past the range), records, issues"
    doc = first.document
    assert_valid(doc)
    deps = doc["deployments"]
    assert [d["version"] for d in deps] == year.versions
    for dep in deps:
        assert [c["sha"] for c in dep["commits"]] == year.commits[dep["version"]], dep["version"]
        assert dep["kind"] == year.kinds[dep["version"]]
    assert deps[0]["commits"], "the oldest is compared with the release before the range"
    rolled = {d["version"]: d["rollback"]["record"] for d in deps if d["status"] == "rolled_back"}
    assert rolled == year.rolled_back
    one = next(d for d in deps if d["status"] == "rolled_back")
    assert one["rollback"]["trigger"] == {"type": "automatic", "reason": "Error rate 7.2% > 5%"}
    detected = datetime.fromisoformat(one["rollback"]["detected_at"])
    assert datetime.fromisoformat(one["rollback"]["recovered_at"]) - detected == timedelta(
        seconds=160
    )
    assert sum(1 for d in deps if d["kind"] == "hotfix") == 20, "production-hotfix counts"
    blockers = doc["blockers"]
    assert [b["number"] for b in blockers] == [n for n, _ in year.blockers]
    for blocker, (_, opened) in zip(blockers, year.blockers, strict=True):
        # No staging history: the next production deployment after it was opened.
        assert blocker["version"] == next(v for v in year.versions if year.starts[v] >= opened)
    assert (doc["environment"], doc["repository"]) == ("production", "octo/app")
    assert first.rate_limit == 5000 and first.rate_remaining == 5000 - first.requests

    second, seen = run(github, cache)

    print(f"second run: {second.requests} requests")
    assert second.requests == seen <= 5
    assert all(r.status == 304 for r in github.requests[-seen:])
    assert second.rate_remaining == first.rate_remaining, "a 304 costs no rate limit"
    same = {k: v for k, v in second.document.items() if k not in ("generated_at", "until")}
    assert same == {k: v for k, v in doc.items() if k not in ("generated_at", "until")}

    sha = github.commit("main", {"app.txt": "v2"}, message="v2", date=NOW - timedelta(hours=2))
    github.add_deployment(
        sha,
        task="release",
        payload=seeded_payload("v2.0.0", sha, NOW - timedelta(hours=1)),
        created_at=NOW - timedelta(minutes=30),
    )

    third, seen = run(github, cache)

    print(f"after one more deployment: {third.requests} requests")
    assert third.requests == seen <= 5
    new = third.document["deployments"][-1]
    assert new["version"] == "v2.0.0" and [c["sha"] for c in new["commits"]] == [sha]
    assert len(third.document["deployments"]) == 401


def test_a_longer_period_than_the_cache_holds_is_read_past_it_once(
    github: GitHubFake, tmp_path: Path
) -> None:
    year = seed_year(github, count=250)
    cache = tmp_path / "metrics.json"
    recent, _ = run(github, cache, since=NOW - timedelta(days=100))
    assert 0 < len(recent.document["deployments"]) < 250

    whole, seen = run(github, cache)

    assert [d["version"] for d in whole.document["deployments"]] == year.versions
    compared = len(year.versions) - len(recent.document["deployments"])
    pages = list_pages(github, len(github.requests) - seen)
    assert whole.requests == seen == compared + pages, "the older compares, and the pages"
    again, seen = run(github, cache)
    assert again.requests == seen == 3


def test_a_cache_that_cannot_be_written_is_a_warning(github: GitHubFake, tmp_path: Path) -> None:
    seed_year(github, count=2)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    err = io.StringIO()

    gathered, _ = run(github, blocked / "metrics.json", err=err)

    assert len(gathered.document["deployments"]) == 2
    assert "could not be written" in err.getvalue()


def test_a_token_that_may_not_read_deployments_gets_the_permissions_to_give(
    github: GitHubFake,
) -> None:
    from release_actions.errors import IntegrationError

    github.inject("GET", "/repos/octo/app/deployments", status=403)
    with pytest.raises(IntegrationError) as caught:
        run(github, None)
    assert "may not read it (403)" in caught.value.message
    assert caught.value.hint is not None and "deployments: read" in caught.value.hint


def test_a_retried_request_counts_each_time_it_is_sent(github: GitHubFake, tmp_path: Path) -> None:
    seed_year(github, count=3)
    github.inject("GET", "/repos/octo/app/issues", status=502, times=1)

    gathered, seen = run(
        github,
        None,
        RELEASE_ACTIONS_GITHUB_RETRIES="2",
        RELEASE_ACTIONS_GITHUB_BACKOFF="0",
    )

    assert gathered.requests == seen
    assert [r.status for r in github.requests if r.path.endswith("/issues")] == [502, 200]
    assert len(gathered.document["deployments"]) == 3


def test_a_rollback_by_a_later_watch_turns_a_successful_release_rolled_back(
    github: GitHubFake,
) -> None:
    a = github.commit("main", {"f": "1"}, date=NOW - timedelta(days=5))
    github.add_deployment(
        a, task="release", payload=seeded_payload("v1.0.0", a, NOW - timedelta(days=4))
    )
    b = github.commit("main", {"f": "2"}, date=NOW - timedelta(days=3))
    started = NOW - timedelta(days=2)
    github.add_deployment(b, task="release", payload=seeded_payload("v1.1.0", b, started))
    # `monitor`, an hour after the release job ended `success`, rolled it back.
    record = record_payload(1, "v1.1.0", "v1.0.0", started + timedelta(hours=1), trigger="manual")
    github.add_deployment(b, task="rollback", payload=record)
    # A record of another environment's release of the same version is not this one's.
    other = record_payload(2, "v1.1.0", "v1.0.0", started + timedelta(hours=2))
    other["environment"] = "europe"
    github.add_deployment(b, task="rollback", environment="europe", payload=other)

    gathered, _ = run(github, None)

    assert_valid(gathered.document)
    first, second = gathered.document["deployments"]
    assert (first["status"], first["rollback"]) == ("success", None)
    assert second["status"] == "rolled_back"
    assert second["rollback"]["record"] == f"RB-{record['timestamp'][:4]}-001"
    assert second["rollback"]["trigger"]["type"] == "manual"
    assert second["rollback"]["detected_at"] == record["timestamp"]


def test_blockers_belong_to_the_release_in_staging_when_they_were_opened(
    github: GitHubFake,
) -> None:
    sha = github.commit("main", {"f": "1"}, date=NOW - timedelta(days=20))
    for version, days in (("v1.0.0-rc.1", 14), ("v1.1.0-rc.1", 7)):
        staged = seeded_payload(version, sha, NOW - timedelta(days=days), canary=None)
        staged["stage"] = "staging"
        github.add_deployment(sha, task="release", environment="staging", payload=staged)
    github.add_deployment(
        sha, task="release", payload=seeded_payload("v1.0.0", sha, NOW - timedelta(days=10))
    )
    early = github.add_issue("Before staging", labels=["release-blocker"],
                             created_at=NOW - timedelta(days=16))  # fmt: skip
    first = github.add_issue("In rc.1", labels=["release-blocker"],
                             created_at=NOW - timedelta(days=12))  # fmt: skip
    second = github.add_issue("In 1.1 rc", labels=["release-blocker"],
                              created_at=NOW - timedelta(days=2))  # fmt: skip

    gathered, _ = run(github, None)

    assert_valid(gathered.document)
    assert [d["version"] for d in gathered.document["deployments"]] == ["v1.0.0"]
    assert [(b["number"], b["version"]) for b in gathered.document["blockers"]] == [
        (early["number"], "v1.0.0"),  # before any staging deploy: the next production one
        (first["number"], "v1.0.0-rc.1"),
        (second["number"], "v1.1.0-rc.1"),
    ]


# -- the writer: what a production rollout leaves, read back --------------------------------------


def test_the_writers_deployment_reads_back_with_every_field(github: GitHubFake) -> None:
    from release_actions.canary.model import Decision, Outcome, StepResult, StepStatus
    from release_actions.core.settings import Overrides, resolve
    from release_actions.integrations.github import client, get_repo
    from release_actions.integrations.release_history import (
        release_payload,
        rollback_summary,
        write_release,
    )

    base = github.commit("main", {"f": "0"}, date=NOW - timedelta(days=3))
    github.add_deployment(
        base, task="release", payload=seeded_payload("v1.0.0", base, NOW - timedelta(days=2))
    )
    head = github.commit("main", {"f": "1"}, date=NOW - timedelta(days=1))
    settings = resolve(default_policy(), Overrides(release_type="hotfix", provider="prometheus"))
    started = (NOW - timedelta(hours=2)).timestamp()
    judged = StepResult(0, 5, 60, True, StepStatus.TRIGGERED, "error rate", started, started + 300)
    record = record_payload(1, "v1.1.0", "v1.0.0", NOW - timedelta(hours=1, minutes=50))
    outcome = Outcome(
        Decision.ROLLED_BACK, "v1.1.0", "error rate", started, started + 600,
        steps=[judged], record=record,
    )  # fmt: skip
    run_url = "https://github.com/octo/app/actions/runs/77"
    payload = release_payload(
        settings, outcome, version="v1.1.0", sha=head, finished=started + 900, run_url=run_url
    )
    assert payload is not None
    repo = get_repo(client(fake_github_env(github.url, "ghs_fake")), "octo/app")

    dep_id = write_release(repo, payload, environment=settings.environment, log_url=run_url)

    written = github.repo().deployments[-1]
    assert (written["id"], written["task"], written["environment"]) == (
        dep_id,
        "release",
        "production-hotfix",
    )
    assert written["production_environment"] is True and written["sha"] == head
    (status,) = github.repo().deployment_statuses[dep_id]
    assert (status["state"], status["description"], status["log_url"]) == (
        "failure",
        f"v1.1.0 rolled back ({record['id']})",
        run_url,
    )
    # The record never reached GitHub: the release's own copy of its times stands in.
    gathered, _ = run(github, None)
    assert_valid(gathered.document)
    old, new = gathered.document["deployments"]
    assert old["version"] == "v1.0.0"
    assert new == {
        "id": dep_id,
        "version": "v1.1.0",
        "kind": "hotfix",
        "sha": head,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "finished_at": datetime.fromtimestamp(started + 900, UTC).isoformat(),
        "status": "rolled_back",
        "commits": [{"sha": head, "committed_at": (NOW - timedelta(days=1)).isoformat()}],
        "canary": "failed",
        "rollback": rollback_summary(record),
    }


def test_a_production_rollout_writes_its_release_and_export_reads_it(
    stack: Any, tmp_path: Path, github: GitHubFake
) -> None:
    """run_session end to end on the Kubernetes fake and the GitHub fake: the release
    deployment is written after the record, and the rolled-back one is linked to it."""
    from release_actions.app.rollout import RolloutRequest, run_session
    from release_actions.app.world import World, WorldRequest, pick_scenario
    from release_actions.canary.model import Decision
    from release_actions.canary.smoke import SimulatedProber
    from release_actions.core.settings import Overrides, resolve
    from release_actions.metrics.simulated import SimulatedProvider
    from release_actions.simulation.clock import VirtualClock
    from release_actions.simulation.traffic import Simulation
    from release_actions.targets.recording import RecordingTarget
    from tests.integration.deploys import NAME, RUN_URL, github_env, start_target

    deploy = start_target("kubernetes-istio", stack, tmp_path)
    policy = default_policy()
    # A rollout judged by a real provider, as far as the history writer can tell: the
    # traffic is the scenario's, on a clock started when the release began.
    settings = resolve(policy, Overrides(target="kubernetes", provider="prometheus"))
    env = {**github_env(github), **deploy.env}

    def world(scenario: str, began: datetime, good: str) -> World:
        clock = VirtualClock(began.timestamp())
        target = RecordingTarget(deploy.target(), clock, deployment=NAME, virtual_clock=True)
        _, chosen = pick_scenario(scenario, None)
        simulation = Simulation(chosen, target, clock, seed=7, good_version=good)
        target.health_model = simulation.health
        return World(
            target, SimulatedProvider(simulation), clock, NAME, {}, None,
            SimulatedProber(simulation), simulation,
        )  # fmt: skip

    def rollout(version: str, scenario: str, began: datetime, good: str) -> Decision:
        session = Session(runtime=Runtime(env=env, out=io.StringIO(), err=io.StringIO()))
        request = RolloutRequest(version, Overrides(target="kubernetes"), WorldRequest())
        result = run_session(session, policy, request, settings, world(scenario, began, good))
        assert result.outcome is not None
        return result.outcome.decision

    good = github.commit("main", {"app": "1.3.0"}, date=NOW - timedelta(hours=5))
    github.set_ref("v1.3.0", good, tag=True)
    bad = github.commit("main", {"app": "1.4.0"}, date=NOW - timedelta(hours=3))
    github.set_ref("v1.4.0", bad, tag=True)

    assert rollout("v1.3.0", "healthy", NOW - timedelta(hours=4), "v1.2.0") is Decision.PROMOTED
    assert rollout("v1.4.0", "error-spike", NOW - timedelta(hours=2), "v1.3.0") in (
        Decision.ROLLED_BACK,
        Decision.FAILED,
    )

    released = [d for d in github.repo().deployments if d["task"] == "release"]
    assert [d["payload"]["version"] for d in released] == ["v1.3.0", "v1.4.0"]
    first, second = (d["payload"] for d in released)
    assert {k: first[k] for k in ("kind", "sha", "stage", "status", "canary", "record")} == {
        "kind": "regular",
        "sha": good,
        "stage": "production",
        "status": "success",
        "canary": "passed",
        "record": None,
    }
    assert first["run_url"] == RUN_URL and first["finished_at"] > first["started_at"]
    (record,) = [d for d in github.repo().deployments if d["task"] == "rollback"]
    assert (second["status"], second["canary"], second["sha"]) == ("rolled_back", "failed", bad)
    assert second["record"] == record["payload"]["id"]
    assert record["id"] < released[1]["id"], "the release is written after its record"
    states = [github.repo().deployment_statuses[d["id"]][-1]["state"] for d in released]
    assert states == ["success", "failure"]

    gathered, _ = run(github, None)

    assert_valid(gathered.document)
    one, two = gathered.document["deployments"]
    assert (one["status"], one["rollback"], [c["sha"] for c in one["commits"]]) == (
        "success",
        None,
        [good],
    )
    assert two["status"] == "rolled_back" and [c["sha"] for c in two["commits"]] == [bad]
    assert two["rollback"]["record"] == record["payload"]["id"]
    assert two["rollback"]["detected_at"] == record["payload"]["timestamp"]


def test_a_rehearsal_writes_no_release(stack: Any, tmp_path: Path, github: GitHubFake) -> None:
    from release_actions.canary.model import Decision, Outcome
    from release_actions.core.settings import Overrides, resolve
    from release_actions.integrations.release_history import record_release

    policy = default_policy()
    runtime = Runtime(env=fake_github_env(github.url, "ghs_fake"), out=io.StringIO(),
                      err=io.StringIO())  # fmt: skip
    done = Outcome(Decision.PROMOTED, "v1.0.0", "ok", NOW.timestamp() - 60, NOW.timestamp())
    for overrides in (
        Overrides(target="kubernetes", provider="simulated"),  # a rehearsal
        Overrides(target="simulated"),
    ):
        settings = resolve(policy, overrides)
        assert (
            record_release(runtime, settings, done, version="v1.0.0", finished=NOW.timestamp())
            is None
        )
    held = replace(done, decision=Decision.HELD)
    real = resolve(policy, Overrides(target="kubernetes", provider="prometheus"))
    assert record_release(runtime, real, held, version="v1.0.0", finished=NOW.timestamp()) is None
    assert github.requests == [], "nothing asked, nothing written"


# -- the command ------------------------------------------------------------------------------


def test_export_writes_the_document_and_says_what_it_cost(
    github: GitHubFake, tmp_path: Path
) -> None:
    from release_actions.cli.metrics_export import export

    seed_year(github, count=12)
    summary = tmp_path / "summary.md"
    env = {
        **fake_github_env(github.url, "ghs_fake"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    cache = tmp_path / "metrics-cache.json"

    def export_once(*args: str) -> tuple[str, str]:
        out, err = io.StringIO(), io.StringIO()
        session = Session(runtime=Runtime(env=env, out=out, err=err))
        export.main(
            ["--since", "365d", "--cache", str(cache), *args], obj=session, standalone_mode=False
        )
        session.finish_json(0)
        session.runtime.flush()
        return out.getvalue(), err.getvalue()

    out, err = export_once()

    doc = json.loads(out)
    assert_valid(doc)
    assert len(doc["deployments"]) == 12
    assert "::add-mask::" not in out, "standard output carries the document alone"
    # A compare for each deployment, a page for each list (releases, records, issues).
    first = f"GitHub requests: {12 + 3}; rate limit left: {5000 - 15}/5000"
    assert first in err and first in summary.read_text()
    assert cache.exists()

    written = tmp_path / "deployments.json"
    out, err = export_once("--output", str(written))

    assert "GitHub requests: 3; rate limit left: 4985/5000" in err
    assert json.loads(written.read_text())["deployments"] == doc["deployments"]
    assert f"12 deployment(s) written to {written}" in out


def test_a_blocker_opened_before_the_period_counts_for_its_release_in_it(
    github: GitHubFake,
) -> None:
    # A train stages on Thursday and ships on Tuesday: the blocker of the period's first
    # release was opened before the period. (Failed before: blockers began at `since`.)
    since = NOW - timedelta(days=10)
    sha = github.commit("main", {"f": "1"}, date=NOW - timedelta(days=30))
    github.add_deployment(
        sha, task="release", payload=seeded_payload("v1.0.0", sha, NOW - timedelta(days=20))
    )
    github.add_deployment(
        sha, task="release", payload=seeded_payload("v1.1.0", sha, NOW - timedelta(days=8))
    )
    old = github.add_issue("Blocked 1.0", labels=["release-blocker"],
                           created_at=NOW - timedelta(days=22))  # fmt: skip
    staged = github.add_issue("Blocked 1.1", labels=["release-blocker"],
                              created_at=NOW - timedelta(days=13))  # fmt: skip

    gathered, _ = run(github, None, since=since)

    assert_valid(gathered.document)
    assert [d["version"] for d in gathered.document["deployments"]] == ["v1.1.0"]
    assert [(b["number"], b["version"]) for b in gathered.document["blockers"]] == [
        (staged["number"], "v1.1.0")
    ]
    assert old["number"] not in [b["number"] for b in gathered.document["blockers"]]


def test_a_staging_deploy_dates_the_candidate_its_blockers_belong_to(github: GitHubFake) -> None:
    # The release candidate's time in staging is what §11.2's "blockers found in staging"
    # are counted against; it is written, and it is no deployment of the four keys.
    # (Failed before: staging wrote nothing, so every blocker fell back to the next release.)
    from release_actions.canary.model import Decision, Outcome
    from release_actions.core.settings import Overrides, resolve
    from release_actions.integrations.release_history import record_release

    policy = default_policy()
    sha = github.commit("main", {"f": "1"}, date=NOW - timedelta(days=9))
    env = {**fake_github_env(github.url, "ghs_fake"), "GITHUB_SHA": sha}
    runtime = Runtime(env=env, out=io.StringIO(), err=io.StringIO())
    staged = Outcome(
        Decision.PROMOTED, "v1.4.0-rc.1", "ok", NOW.timestamp() - 7 * 86400 - 60,
        NOW.timestamp() - 7 * 86400,
    )  # fmt: skip
    staging = resolve(
        policy, Overrides(target="kubernetes", provider="prometheus", stage="staging")
    )
    written = record_release(
        runtime, staging, staged, version="v1.4.0-rc.1", finished=staged.ended_at
    )
    assert written is not None
    blocker = github.add_issue("Blocks 1.4", labels=["release-blocker"],
                               created_at=NOW - timedelta(days=5))  # fmt: skip
    github.add_deployment(
        sha, task="release", payload=seeded_payload("v1.4.0", sha, NOW - timedelta(days=2))
    )

    gathered, _ = run(github, None)

    assert [d["version"] for d in gathered.document["deployments"]] == ["v1.4.0"]
    assert [(b["number"], b["version"]) for b in gathered.document["blockers"]] == [
        (blocker["number"], "v1.4.0-rc.1")
    ]
    from zoneinfo import ZoneInfo

    from release_actions.core import dora

    history = dora.parse_history(gathered.document, "the gathered history")
    period = dora.since_period(30, NOW.date(), ZoneInfo("UTC"), "UTC")
    figures = dora.compute(history, period, policy.reporting)
    assert [b.number for b in figures.blockers] == [blocker["number"]]
    assert figures.quality()["blockers_per_release"] == 1.0, "the rc's blocker is 1.4.0's"
