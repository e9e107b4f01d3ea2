"""Rollback records RB-YYYY-NNN in GitHub: numbering across runs, the race, listing, GitHub failures."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from release_actions.canary.model import RollbackRecord
from release_actions.integrations.records import (
    DESCRIPTION_LIMIT,
    RecordStore,
    next_id,
    status_description,
    winners,
)
from tests.fakes.github import GitHubFake
from tests.integration.deploys import Cli, github_env, rollback_deployments, statuses

pytestmark = pytest.mark.integration

TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture
def cli(tmp_path: Path, github: GitHubFake) -> Cli:
    return Cli(tmp_path, github_env(github))


def record(record_id: str = "RB-2026-001", **changes: Any) -> dict[str, Any]:
    data = RollbackRecord(
        id=record_id,
        timestamp="2026-01-20T14:30:00+09:00",
        deployment="triptrip-api",
        from_version="v1.5.2",
        to_version="v1.5.1",
        trigger_type="automatic",
        reason="Error rate exceeded 5% threshold",
        metrics={"error_rate": "7.2%", "p99_latency": "450ms"},
        detection_seconds=120,
        rollback_seconds=45,
        recovery_seconds=180,
    ).to_dict()
    data.update(changes)
    return data


def store(github: GitHubFake, environment: str = "production") -> RecordStore:
    return RecordStore.from_env(github_env(github), environment=environment)


# -- numbering ---------------------------------------------------------------------------------------


def test_numbering_continues_across_runs(cli: Cli, github: GitHubFake) -> None:
    args = (
        "canary",
        "run",
        "--target",
        "simulated",
        "--version",
        "v1.5.2",
        "--scenario",
        "error-spike",
    )
    first, second = cli(*args), cli(*args)

    assert (first.code, second.code) == (1, 1)
    assert first.outputs["record-id"] == "RB-2026-001"
    assert second.outputs["record-id"] == "RB-2026-002"
    ids = [d["payload"]["id"] for d in rollback_deployments(github)]
    assert ids == ["RB-2026-001", "RB-2026-002"]
    for dep in rollback_deployments(github):
        (status,) = statuses(github, dep)
        assert status["description"] == f"{dep['payload']['id']}: v1.5.2 -> v1.5.1"


def test_a_new_year_starts_again_at_001() -> None:
    assert next_id(2027, ["RB-2026-041", "RB-2026-042"]) == "RB-2027-001"
    assert next_id(2026, ["RB-2026-041", "RB-2026-042", "junk"]) == "RB-2026-043"
    assert next_id(2026, ["RB-2026-999"]) == "RB-2026-1000"


def test_the_earlier_deployment_wins_a_tie() -> None:
    claims = [(10, "RB-2026-005"), (11, "RB-2026-006"), (12, "RB-2026-005"), (13, "RB-2026-007")]
    assert winners(claims) == {10, 11, 13}
    assert winners([(5, "RB-2025-009"), (6, "RB-2026-001")]) == {5, 6}


def test_the_race_is_lost_by_the_later_deployment_which_renumbers(github: GitHubFake) -> None:
    """Another rollback claims RB-2026-002 between our listing and our write."""
    ours = store(github)
    ours.attach(record("RB-2026-001"))

    def competitor() -> None:
        body = {"ref": "main", "task": "rollback", "environment": "production",
                "required_contexts": [], "payload": record("RB-2026-002", deployment="other")}  # fmt: skip
        response = requests.post(
            github.api("/repos/octo/app/deployments"),
            json=body,
            headers={"Authorization": "token t"},
            timeout=5,
        )
        assert response.status_code == 201

    github.inject("POST", "/repos/octo/app/deployments", action=competitor)

    attached = ours.attach(record("RB-2026-002"))

    assert attached.ok and attached.record["id"] == "RB-2026-003"
    assert attached.renumbered_from == ["RB-2026-002"]
    loser = next(
        d for d in rollback_deployments(github) if d["id"] < attached.deployment_id
        and d["payload"]["id"] == "RB-2026-002" and d["payload"]["deployment"] == "triptrip-api"
    )  # fmt: skip
    assert statuses(github, loser)[-1]["state"] == "inactive"
    listed = [(r.id, r.valid) for r in store(github).records()]
    assert listed == [
        ("RB-2026-003", True),
        ("RB-2026-002", False),
        ("RB-2026-002", True),
        ("RB-2026-001", True),
    ]
    assert [r.id for r in store(github).records() if r.valid] == [
        "RB-2026-003",
        "RB-2026-002",
        "RB-2026-001",
    ]


def test_concurrent_rollbacks_never_share_an_id(github: GitHubFake) -> None:
    results: list[str] = []
    barrier = threading.Barrier(3)

    def one(n: int) -> None:
        mine = store(github)
        barrier.wait()
        attached = mine.attach(record("RB-2026-001", deployment=f"svc-{n}"))
        assert attached.ok, attached.error
        results.append(attached.record["id"])

    threads = [threading.Thread(target=one, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert sorted(results) == ["RB-2026-001", "RB-2026-002", "RB-2026-003"]
    valid = [r for r in store(github).records() if r.valid]
    assert sorted(r.id for r in valid) == sorted(results)
    for r in valid:
        dep = next(d for d in rollback_deployments(github) if d["id"] == r.deployment_id)
        assert statuses(github, dep)[-1]["state"] == "success"


def test_description_fits_githubs_limit() -> None:
    long = record("RB-2026-001", from_version="v1.5.2-" + "x" * 200)
    text = status_description(long)
    assert len(text) == DESCRIPTION_LIMIT and text.startswith("RB-2026-001: v1.5.2-x")
    assert status_description(record()) == "RB-2026-001: v1.5.2 -> v1.5.1"


# -- listing -----------------------------------------------------------------------------------------


def test_rollback_records_lists_newest_first(cli: Cli, github: GitHubFake) -> None:
    store(github).attach(record("RB-2026-001", timestamp="2026-01-20T14:30:00+09:00"))
    store(github, "staging").attach(record("RB-2026-002", timestamp="2026-02-03T09:00:00+09:00"))
    store(github).attach(
        record("RB-2026-003", timestamp="2026-03-01T10:00:00+09:00", to_version="v1.5.0")
    )

    listed = cli("rollback", "records", "--json")
    assert listed.code == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [r["id"] for r in data] == ["RB-2026-003", "RB-2026-002", "RB-2026-001"]
    assert data[1]["github"]["environment"] == "staging"
    assert data[0]["to_version"] == "v1.5.0"
    assert listed.outputs["latest-id"] == "RB-2026-003"

    production = cli("rollback", "records", "--environment", "production")
    assert production.outputs["count"] == "2"
    assert "RB-2026-003" in production.stdout and "RB-2026-002" not in production.stdout
    assert "| RB-2026-001 |" in production.summary

    since = cli("rollback", "records", "--since", "2026-02-01", "--json")
    assert [r["id"] for r in json.loads(since.stdout)] == ["RB-2026-003", "RB-2026-002"]


def test_records_are_paginated(cli: Cli, github: GitHubFake) -> None:
    repo = github.repo()
    for n in range(1, 106):
        repo.deployments.append(
            {
                "id": 5000 + n,
                "sha": repo.refs["main"],
                "ref": "main",
                "task": "rollback",
                "payload": record(f"RB-2026-{n:03d}"),
                "original_environment": "production",
                "environment": "production",
                "description": "",
                "created_at": "2026-01-20T05:30:00Z",
                "updated_at": "2026-01-20T05:30:00Z",
                "transient_environment": False,
                "production_environment": True,
            }
        )
    r = cli("rollback", "records", "--json")
    data = json.loads(r.stdout)
    assert len(data) == 105 and data[0]["id"] == "RB-2026-105" and data[-1]["id"] == "RB-2026-001"
    pages = {q.query.get("page") for q in github.requests if q.path.endswith("/deployments")}
    assert "2" in pages
    assert store(github).next_id(datetime(2026, 5, 1, tzinfo=TOKYO)) == "RB-2026-106"


def test_records_without_a_token_say_what_to_set(tmp_path: Path) -> None:
    r = Cli(tmp_path, {"GITHUB_REPOSITORY": "octo/app"})("rollback", "records")
    assert r.code == 2 and "GITHUB_TOKEN" in r.stdout + r.stderr


# -- GitHub failures are warnings ---------------------------------------------------------------------


def test_canary_rollback_with_github_down_still_writes_the_record_file(
    tmp_path: Path, github: GitHubFake
) -> None:
    github.inject("*", "/repos/octo/app*", status=503, times=100)
    record_file = tmp_path / "out" / "record.json"

    r = Cli(tmp_path, github_env(github))(
        "canary", "run", "--target", "simulated", "--version", "v1.5.2",
        "--scenario", "error-spike", "--record-file", str(record_file),
    )  # fmt: skip

    assert r.code == 1, "rolled back: 1, as without GitHub; never 2 for a failed record"
    data = json.loads(record_file.read_text())
    assert data["id"] == r.outputs["record-id"] == "RB-2026-001"
    assert r.outputs["record-file"] == str(record_file)
    assert "not attached to GitHub" in r.stdout and "503" in r.stdout
    assert rollback_deployments(github) == []
    assert "### Rollback record" in r.summary


def test_a_forbidden_token_gets_the_permissions_to_add(tmp_path: Path, github: GitHubFake) -> None:
    github.inject("POST", "/repos/octo/app/deployments", status=403, times=5)
    r = Cli(tmp_path, github_env(github))(
        "canary", "run", "--target", "simulated", "--version", "v1.5.2", "--scenario", "error-spike"
    )
    assert r.code == 1
    assert "deployments: write" in r.stdout
