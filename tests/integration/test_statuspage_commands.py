"""`release-actions statuspage`: incidents and scheduled maintenance against the Statuspage fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import CliResult, RunCli
from tests.fakes.statuspage import API_KEY, PAGE_ID, StatuspageFake

pytestmark = pytest.mark.integration

INCIDENTS = f"/v1/pages/{PAGE_ID}/incidents"


@pytest.fixture
def fake() -> Iterator[StatuspageFake]:
    with StatuspageFake() as server:
        yield server


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "release-policy.yml"
    path.write_text(f"notifications:\n  status_page:\n    page_id: {PAGE_ID}\n", encoding="utf-8")
    return path


@pytest.fixture
def sp(run_cli: RunCli, fake: StatuspageFake, policy: Path) -> RunCli:
    """`release-actions statuspage ...` with the policy and the fake's key and URL."""

    def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        full = {"STATUSPAGE_BASE_URL": fake.base_url, "STATUSPAGE_API_KEY": API_KEY, **(env or {})}
        return run_cli("statuspage", *args, "--policy", str(policy), env=full)

    return run


OPEN = ("incident", "open", "--service", "triptrip-api", "--version", "v1.6.0")


# -- incidents -----------------------------------------------------------------------------------------


def test_open_then_rerun_finds_the_open_incident(sp: RunCli, fake: StatuspageFake) -> None:
    first = sp(*OPEN, "--reason", "error rate 5.2%")
    second = sp(*OPEN)

    assert (first.code, second.code) == (0, 0), first.stdout + first.stderr
    (incident,) = fake.incidents.values()
    assert first.outputs == {"incident-id": incident["id"], "action": "opened", "changed": "true"}
    assert second.outputs["action"] == "already_open" and second.outputs["changed"] == "false"
    assert second.outputs["incident-id"] == incident["id"]
    assert [m for m, _ in fake.writes()] == ["POST"]
    assert incident["metadata"]["release_actions"] == {
        "marker": "release-actions:rollback:triptrip-api@v1.6.0",
        "service": "triptrip-api",
        "version": "v1.6.0",
        "reason": "error rate 5.2%",
    }
    assert fake.status_of("TripTrip API") == "degraded_performance"
    assert f"Opened incident {incident['id']} “Performance Degradation”" in first.stdout


def test_a_dry_run_prints_the_exact_request_and_sends_nothing(
    sp: RunCli, fake: StatuspageFake
) -> None:
    r = sp(*OPEN, "--component", "TripTrip Web", "--dry-run")

    assert r.code == 0, r.stderr
    assert fake.requests == [], "a dry run reads nothing either"
    assert f"POST {fake.base_url}/pages/{PAGE_ID}/incidents" in r.stdout
    assert "Authorization: OAuth ***" in r.stdout
    body = json.loads(r.stdout[r.stdout.index("{") :])
    placeholder = '<id of component "TripTrip Web">'
    assert body["incident"]["component_ids"] == [placeholder]
    assert body["incident"]["components"] == {placeholder: "degraded_performance"}
    assert body["incident"]["name"] == "Performance Degradation"
    assert r.outputs["incident-id"] == "" and r.outputs["changed"] == "false"
    assert API_KEY not in r.stdout.replace(f"::add-mask::{API_KEY}", "")


def test_the_root_dry_run_and_json(run_cli: RunCli, fake: StatuspageFake, policy: Path) -> None:
    r = run_cli(
        "--dry-run", "statuspage", *OPEN, "--policy", str(policy), "--json",
        env={"STATUSPAGE_BASE_URL": fake.base_url},
    )  # fmt: skip

    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["ok"] is True and data["dry_run"] is True and data["action"] == "would_send"
    (request,) = data["requests"]
    assert request["method"] == "POST" and request["headers"]["Authorization"] == "OAuth ***"
    assert request["url"] == f"{fake.base_url}/pages/{PAGE_ID}/incidents"
    assert fake.requests == []


def test_a_dry_run_resolve_shows_what_it_would_look_up(sp: RunCli, fake: StatuspageFake) -> None:
    r = sp("incident", "resolve", "--service", "triptrip-api", "--version", "v1.6.0", "--dry-run")

    assert r.code == 0, r.stderr
    assert fake.requests == []
    marked = "<id of the open incident marked release-actions:rollback:triptrip-api@v1.6.0>"
    assert f"PATCH {fake.base_url}/pages/{PAGE_ID}/incidents/{marked}" in r.stdout
    assert '"status": "resolved"' in r.stdout


def test_update_finds_the_incident_by_service_and_version(sp: RunCli, fake: StatuspageFake) -> None:
    sp(*OPEN)

    r = sp(
        "incident", "update", "--service", "triptrip-api", "--version", "v1.6.0",
        "--status", "identified", "--body", "A bad release; rolled back.",
        "--component-status", "partial_outage",
    )  # fmt: skip

    assert r.code == 0, r.stdout + r.stderr
    (incident,) = fake.incidents.values()
    (_, path) = fake.writes()[-1]
    assert path == f"{INCIDENTS}/{incident['id']}"
    assert fake.requests[-1].body == {
        "incident": {
            "status": "identified",
            "body": "A bad release; rolled back.",
            "components": {fake.component_id("TripTrip API"): "partial_outage"},
        }
    }
    assert incident["status"] == "identified"


def test_resolve_uses_the_kept_reason_and_a_rerun_sends_nothing(
    sp: RunCli, fake: StatuspageFake
) -> None:
    sp(*OPEN, "--reason", "error rate 5.2%")
    (incident,) = fake.incidents.values()

    first = sp("incident", "resolve", "--incident-id", incident["id"], "--duration", "12 minutes")
    again = sp("incident", "resolve", "--incident-id", incident["id"])
    by_marker = sp("incident", "resolve", "--service", "triptrip-api", "--version", "v1.6.0")

    assert (first.code, again.code, by_marker.code) == (0, 0, 0), first.stderr
    patch = [r for r in fake.requests if r.method == "PATCH"]
    assert len(patch) == 1
    sent = patch[0].body["incident"]
    assert sent["status"] == "resolved"
    assert "**Duration**: 12 minutes\n**Root Cause**: error rate 5.2%" in sent["body"]
    assert sent["components"] == {fake.component_id("TripTrip API"): "operational"}
    assert again.outputs["action"] == "nothing" and "resolved already" in again.stdout
    assert by_marker.outputs["action"] == "nothing"
    assert fake.status_of("TripTrip API") == "operational"


def test_resolving_someone_elses_incident_needs_a_root_cause(
    sp: RunCli, fake: StatuspageFake
) -> None:
    sp(*OPEN)
    (incident,) = fake.incidents.values()
    incident["metadata"] = {}

    r = sp("incident", "resolve", "--incident-id", incident["id"])

    assert r.code == 2
    assert "root cause is not known" in r.stdout and "--root-cause" in r.stderr
    assert [m for m, _ in fake.writes()] == ["POST"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--component", "TripTrip APP"), "Unknown status page component `TripTrip APP`"),
        ((), "is not in `notifications.status_page.services`"),
    ],
)
def test_components_are_checked_before_anything_is_sent(
    sp: RunCli, fake: StatuspageFake, args: tuple[str, ...], error: str
) -> None:
    service = "triptrip-api" if args else "payments"
    r = sp("incident", "open", "--service", service, "--version", "v1.6.0", *args)

    assert r.code == 2 and error in r.stdout
    assert fake.requests == []


def test_a_component_the_page_lacks_is_named(
    sp: RunCli, fake: StatuspageFake, tmp_path: Path
) -> None:
    fake.components = {k: v for k, v in fake.components.items() if v["name"] != "TripTrip Web"}

    r = sp("incident", "open", "--service", "triptrip-web", "--version", "v1.6.0", "--json")

    assert r.code == 2
    error = json.loads(r.stdout)["error"]
    assert error["code"] == "integration"
    assert "has no component `TripTrip Web`" in error["message"]
    assert fake.incidents == {}


def test_a_wrong_key_fails_with_the_status_and_what_to_do(sp: RunCli, fake: StatuspageFake) -> None:
    r = sp(*OPEN, "--json", env={"STATUSPAGE_API_KEY": "sp-wrong-key"})

    assert r.code == 2
    error = json.loads(r.stdout)["error"]
    assert "HTTP 401: Could not authenticate" in error["message"]
    assert "STATUSPAGE_API_KEY" in error["hint"]


def test_no_page_is_a_clear_error(run_cli: RunCli, fake: StatuspageFake) -> None:
    r = run_cli("statuspage", *OPEN, env={"STATUSPAGE_API_KEY": API_KEY})

    assert r.code == 2
    assert "`notifications.status_page.page_id` is null" in r.stdout
    assert fake.requests == []


# -- scheduled maintenance -----------------------------------------------------------------------------


def test_maintenance_defaults_to_the_next_sunday_night_window(
    sp: RunCli, fake: StatuspageFake
) -> None:
    first = sp("maintenance", "schedule")
    again = sp("maintenance", "schedule")

    assert (first.code, again.code) == (0, 0), first.stdout + first.stderr
    (maintenance,) = fake.incidents.values()
    start = datetime.fromisoformat(maintenance["scheduled_for"])
    end = datetime.fromisoformat(maintenance["scheduled_until"])
    assert start.strftime("%A %H:%M %z") == "Sunday 02:00 +0900"
    assert (end - start).total_seconds() == 4 * 3600
    assert maintenance["status"] == "scheduled" and maintenance["name"] == (
        "[Scheduled] System Maintenance"
    )
    body = maintenance["incident_updates"][0]["body"]
    assert f"**Scheduled Time**: {start:%Y-%m-%d} 02:00 - {start:%Y-%m-%d} 06:00 JST" in body
    assert "**Affected Services**: TripTrip API, TripTrip Web" in body
    assert again.outputs["action"] == "already_scheduled"
    assert [m for m, _ in fake.writes()] == ["POST"]


def test_maintenance_start_and_complete_move_the_components(
    sp: RunCli, fake: StatuspageFake
) -> None:
    scheduled = sp(
        "maintenance", "schedule", "--start", "2027-01-10T02:00", "--end", "2027-01-10T03:30",
        "--component", "TripTrip API", "--impact", "Bookings are read-only.",
    )  # fmt: skip
    started = sp("maintenance", "start")
    again = sp("maintenance", "start", "--incident-id", scheduled.outputs["incident-id"])
    assert fake.status_of("TripTrip API") == "under_maintenance"
    completed = sp("maintenance", "complete")

    assert (scheduled.code, started.code, again.code, completed.code) == (0, 0, 0, 0)
    (maintenance,) = fake.incidents.values()
    assert maintenance["scheduled_for"] == "2027-01-10T02:00:00+09:00"
    assert (
        "**Expected Impact**: Bookings are read-only."
        in (maintenance["incident_updates"][-1]["body"])
    )
    assert [u["status"] for u in maintenance["incident_updates"]] == [
        "completed",
        "in_progress",
        "scheduled",
    ]
    assert again.outputs["action"] == "nothing"
    assert fake.status_of("TripTrip API") == "operational"
    assert fake.status_of("TripTrip Web") == "operational", "only the named component"


def test_start_without_a_maintenance_says_what_to_pass(sp: RunCli) -> None:
    r = sp("maintenance", "start")

    assert r.code == 2
    assert "No maintenance scheduled by release-actions is upcoming" in r.stdout
    assert "--incident-id" in r.stderr


def test_start_and_end_go_together(sp: RunCli, fake: StatuspageFake) -> None:
    r = sp("maintenance", "schedule", "--start", "2027-01-10T02:00")

    assert r.code == 2 and "`--start` and `--end` go together" in r.stderr
    assert fake.requests == []
