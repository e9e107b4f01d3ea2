"""Rollback records RB-YYYY-NNN in GitHub: numbering across runs, the race, listing, GitHub failures."""

from __future__ import annotations

import json
import re
import socket
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
    assign_numbers,
    next_id,
    record_markdown,
    status_description,
)
from tests.fakes.github import GitHubFake
from tests.integration.deploys import (
    Cli,
    github_env,
    github_writes,
    rollback_deployments,
    statuses,
)

pytestmark = pytest.mark.integration

TOKYO = ZoneInfo("Asia/Tokyo")
PROVISIONAL = re.compile(r"^RB-2026-P-4242-1-[0-9a-f]{6}$")
CANARY = (
    "canary",
    "run",
    "--target",
    "simulated",
    "--version",
    "v1.5.2",
    "--scenario",
    "error-spike",
)


def closed_port() -> int:
    """A port nothing listens on: GitHub unreachable, not merely answering errors."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def github_down(github: GitHubFake) -> dict[str, str]:
    return {**github_env(github), "GITHUB_API_URL": f"http://127.0.0.1:{closed_port()}"}


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


def test_numbers_follow_the_order_of_deployment_ids() -> None:
    """A claim holds when it is above every earlier number; otherwise the next free one."""
    entries = [
        (10, {"id": "RB-2026-005"}),  # the old scheme (no provisional id): holds
        (11, {"id": "RB-2026-005"}),  # the old scheme, lost its race: superseded, no record
        (12, {"id": "RB-2026-005", "provisional_id": "a"}),  # lost: the next free number
        (13, {"id": "RB-2026-P-1-1-abcdef", "provisional_id": "b"}),  # provisional
        (14, {"id": "RB-2026-009", "provisional_id": "c"}),  # a floor above: holds
        (15, {"id": "RB-2026-P-1-1-abcdef", "provisional_id": "b"}),  # a retried POST
        (16, {"id": "RB-2027-P-2-1-012345", "provisional_id": "d"}),
    ]
    assert assign_numbers(reversed(entries)) == {
        10: "RB-2026-005",
        11: None,
        12: "RB-2026-006",
        13: "RB-2026-007",
        14: "RB-2026-009",
        15: None,
        16: "RB-2027-001",
    }


def test_a_claim_taken_meanwhile_gets_the_next_number(github: GitHubFake) -> None:
    """Another rollback claims RB-2026-002 between our reading and our write."""
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
    assert len(rollback_deployments(github)) == 3, "no superseded claims, no retries"
    (status,) = statuses(github, rollback_deployments(github)[-1])
    assert status["state"] == "success" and status["description"].startswith("RB-2026-003: ")
    assert [r.id for r in store(github).records()] == ["RB-2026-003", "RB-2026-002", "RB-2026-001"]


def test_concurrent_rollbacks_get_two_numbers(github: GitHubFake) -> None:
    """Both read the store before either writes, so both expect RB-2026-001."""
    results: dict[str, str] = {}
    expected: list[str] = []
    barrier = threading.Barrier(2)
    when = datetime(2026, 1, 20, 14, 30, tzinfo=TOKYO)

    def one(name: str) -> None:
        mine = store(github)
        expected.append(mine.next_id(when))
        barrier.wait()
        attached = mine.attach(record(expected[-1], deployment=name))
        assert attached.ok, attached.error
        results[name] = attached.record["id"]

    threads = [threading.Thread(target=one, args=(n,)) for n in ("svc-a", "svc-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert expected == ["RB-2026-001", "RB-2026-001"]
    assert sorted(results.values()) == ["RB-2026-001", "RB-2026-002"]
    deps = rollback_deployments(github)
    assert len(deps) == 2, "one deployment per rollback: nothing superseded, nothing retried"
    listed = {r.record["deployment"]: r.id for r in store(github).records()}
    assert listed == results
    first = min(deps, key=lambda d: d["id"])
    assert results[first["payload"]["deployment"]] == "RB-2026-001", "the earlier deployment"
    for dep in deps:
        (status,) = statuses(github, dep)
        name = dep["payload"]["deployment"]
        assert status["description"] == f"{results[name]}: v1.5.2 -> v1.5.1"


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
    data = json.loads(listed.stdout)["records"]
    assert [r["id"] for r in data] == ["RB-2026-003", "RB-2026-002", "RB-2026-001"]
    assert data[1]["github"]["environment"] == "staging"
    assert data[0]["to_version"] == "v1.5.0"
    assert listed.outputs["latest-id"] == "RB-2026-003"

    production = cli("rollback", "records", "--environment", "production")
    assert production.outputs["count"] == "2"
    assert "RB-2026-003" in production.stdout and "RB-2026-002" not in production.stdout
    assert "| RB-2026-001 |" in production.summary

    since = cli("rollback", "records", "--since", "2026-02-01", "--json")
    assert [r["id"] for r in json.loads(since.stdout)["records"]] == ["RB-2026-003", "RB-2026-002"]


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
    data = json.loads(r.stdout)["records"]
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

    r = Cli(tmp_path, github_env(github))(*CANARY, "--record-file", str(record_file))

    assert r.code == 1, "rolled back: 1, as without GitHub; never 2 for a failed record"
    data = json.loads(record_file.read_text())
    assert data["id"] == r.outputs["record-id"]
    assert PROVISIONAL.match(data["id"]), data["id"]
    assert r.outputs["record-file"] == str(record_file)
    assert "not attached to GitHub" in r.stdout and "503" in r.stdout
    assert "rollback records sync" in r.stdout
    assert rollback_deployments(github) == []
    assert "### Rollback record" in r.summary


def test_github_unreachable_gives_provisional_ids_that_never_clash(
    tmp_path: Path, github: GitHubFake
) -> None:
    """GitHub already holds RB-2026-001 and 002; two rollbacks that cannot reach it."""
    (tmp_path / "up").mkdir()
    up = Cli(tmp_path / "up", github_env(github))
    assert [up(*CANARY).outputs["record-id"] for _ in range(2)] == ["RB-2026-001", "RB-2026-002"]

    down = Cli(tmp_path, github_down(github))
    files = [tmp_path / "rb-1.json", tmp_path / "rb-2.json"]
    runs = [down(*CANARY, "--record-file", str(f)) for f in files]

    ids = [r.outputs["record-id"] for r in runs]
    assert all(PROVISIONAL.match(i) for i in ids), ids
    assert ids[0] != ids[1]
    for r, f in zip(runs, files, strict=True):
        assert r.code == 1 and r.outputs["record-file"] == str(f)
        data = json.loads(f.read_text())
        assert data["id"] == data["provisional_id"] == r.outputs["record-id"]
    assert len(rollback_deployments(github)) == 2


def test_records_sync_files_provisional_records_once(tmp_path: Path, github: GitHubFake) -> None:
    (tmp_path / "up").mkdir()
    up = Cli(tmp_path / "up", github_env(github))
    for _ in range(2):
        up(*CANARY)
    down = Cli(tmp_path, github_down(github))
    files = [tmp_path / "rb-1.json", tmp_path / "rb-2.json"]
    provisional = []
    for f in files:
        down(*CANARY, "--record-file", str(f))
        provisional.append(json.loads(f.read_text())["id"])

    synced = up("rollback", "records", "sync", *map(str, files))

    assert synced.code == 0, synced.stdout + synced.stderr
    assert synced.outputs["record-ids"] == "RB-2026-003,RB-2026-004"
    for f, pid, final in zip(files, provisional, ["RB-2026-003", "RB-2026-004"], strict=True):
        data = json.loads(f.read_text())
        assert (data["id"], data["provisional_id"]) == (final, pid)
        assert data["github"]["deployment_id"]
    listed = json.loads(up("rollback", "records", "--json").stdout)["records"]
    assert [(r["id"], r.get("provisional_id")) for r in listed[:2]] == [
        ("RB-2026-004", provisional[1]),
        ("RB-2026-003", provisional[0]),
    ]
    assert [r["id"] for r in listed] == ["RB-2026-004", "RB-2026-003", "RB-2026-002", "RB-2026-001"]

    writes = github_writes(github)
    again = up("rollback", "records", "sync", *map(str, files))
    assert again.code == 0, again.stdout + again.stderr
    assert again.outputs["record-ids"] == "RB-2026-003,RB-2026-004"
    assert github_writes(github) == writes, "a record already filed is not filed twice"
    assert "already filed" in again.stdout


def test_annotate_adds_root_cause_follow_ups_and_postmortem(cli: Cli, github: GitHubFake) -> None:
    assert cli(*CANARY).outputs["record-id"] == "RB-2026-001"
    args = (
        "rollback", "records", "annotate", "RB-2026-001",
        "--root-cause", "Database connection pool exhaustion due to query timeout",
        "--follow-up", "Increase connection pool size",
        "--follow-up", "Add query timeout",
        "--postmortem", "https://notion.so/triptrip/PM-2026-001",
    )  # fmt: skip

    first = cli(*args)
    assert first.code == 0, first.stdout + first.stderr
    writes = github_writes(github)
    second = cli(*args)
    assert second.code == 0 and "unchanged" in second.stdout
    assert github_writes(github) == writes, "the same annotation twice changes nothing"

    listed = cli("rollback", "records", "--json")
    (rec,) = json.loads(listed.stdout)["records"]
    assert rec["id"] == "RB-2026-001"
    assert rec["root_cause"] == "Database connection pool exhaustion due to query timeout"
    assert rec["follow_up_actions"] == ["Increase connection pool size", "Add query timeout"]
    assert rec["postmortem_link"] == "https://notion.so/triptrip/PM-2026-001"
    assert rec["impact"]["affected_users"] == "not measured"
    table = cli("rollback", "records").summary
    assert "Database connection pool exhaustion" in table and "Add query timeout" in table
    assert "https://notion.so/triptrip/PM-2026-001" in table

    more = cli("rollback", "records", "annotate", "RB-2026-001", "--follow-up", "Update alerts")
    assert more.code == 0
    (rec,) = json.loads(cli("rollback", "records", "--json").stdout)["records"]
    assert rec["follow_up_actions"][-1] == "Update alerts" and len(rec["follow_up_actions"]) == 3
    assert rec["root_cause"].startswith("Database connection pool")

    missing = cli("rollback", "records", "annotate", "RB-2026-009", "--root-cause", "x")
    assert missing.code == 2 and "RB-2026-009" in missing.stdout + missing.stderr


def test_impact_of_an_automatic_rollback_is_the_canarys_requests_and_errors(
    cli: Cli, tmp_path: Path
) -> None:
    record_file = tmp_path / "rb.json"
    r = cli(*CANARY, "--record-file", str(record_file), "--json")
    assert r.code == 1
    outcome = json.loads(r.stdout)
    steps = [s["evidence"]["canary"] for s in outcome["steps"] if s["evidence"].get("canary")]
    requests_ = round(sum(float(c["requests"]) for c in steps))
    errors = round(sum(float(c["errors"]) for c in steps))
    assert requests_ > 0 and errors > 0

    data = json.loads(record_file.read_text())
    impact = data["impact"]
    assert (impact["affected_requests"], impact["failed_requests"]) == (requests_, errors)
    assert impact["affected_users"] == "not measured"
    assert "count users" in impact["affected_users_note"]
    for key in ("root_cause", "follow_up_actions", "postmortem_link"):
        assert key in data
    shown = record_markdown(data, attached=None, path=record_file)
    for text in ("Impact", f"{requests_} requests", "Root cause", "Follow-up", "Postmortem"):
        assert text in shown, text


def test_a_forbidden_token_gets_the_permissions_to_add(tmp_path: Path, github: GitHubFake) -> None:
    github.inject("POST", "/repos/octo/app/deployments", status=403, times=5)
    r = Cli(tmp_path, github_env(github))(
        "canary", "run", "--target", "simulated", "--version", "v1.5.2", "--scenario", "error-spike"
    )
    assert r.code == 1
    assert "deployments: write" in r.stdout
