"""`release-actions statuspage`: incidents and scheduled maintenance against the Statuspage fake."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

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


# -- maintenance around work that begins now (the db-migration workflow) ---------------------------


def _jst(when: datetime) -> str:
    return when.astimezone(ZoneInfo("Asia/Tokyo")).isoformat(timespec="minutes")


def test_start_with_an_end_schedules_from_now_when_nothing_was_announced(
    sp: RunCli, fake: StatuspageFake
) -> None:
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    first = sp("maintenance", "start", "--end", "45m")
    again = sp("maintenance", "start", "--end", "45m")

    assert (first.code, again.code) == (0, 0), first.stdout + first.stderr
    (maintenance,) = fake.incidents.values()
    assert first.outputs == {
        "incident-id": maintenance["id"],
        "action": "scheduled_and_started",
        "changed": "true",
    }
    assert [r.body["incident"]["status"] for r in fake.requests if r.method != "GET"] == [
        "scheduled",
        "in_progress",
    ]
    start = datetime.fromisoformat(maintenance["scheduled_for"])
    end = datetime.fromisoformat(maintenance["scheduled_until"])
    assert before <= start <= datetime.now(UTC) and end - start == timedelta(minutes=45)
    # Announced as it starts: no reminder of something already under way.
    assert maintenance["scheduled_remind_prior"] is False
    assert maintenance["status"] == "in_progress"
    assert fake.status_of("TripTrip API") == fake.status_of("TripTrip Web") == "under_maintenance"
    # A rerun (the job run again) finds it in progress: nothing sent, the same id.
    assert again.outputs == {
        "incident-id": maintenance["id"],
        "action": "nothing",
        "changed": "false",
    }
    assert "Scheduled maintenance" in first.summary and "from now and started" in first.summary


def test_start_with_an_end_starts_the_maintenance_announced_for_now(
    sp: RunCli, fake: StatuspageFake
) -> None:
    now = datetime.now(UTC)
    # Tonight's window has begun; next week's is also announced; a third begins in 10
    # minutes (the job was approved just before its window) but the one under way is first.
    announced = sp(
        "maintenance", "schedule", "--start", _jst(now - timedelta(minutes=5)),
        "--end", _jst(now + timedelta(hours=1)),
    )  # fmt: skip
    sp(
        "maintenance", "schedule", "--start", _jst(now + timedelta(days=7)),
        "--end", _jst(now + timedelta(days=7, hours=4)),
    )  # fmt: skip
    writes = len(fake.writes())

    r = sp("maintenance", "start", "--end", "30m")

    assert r.code == 0, r.stdout + r.stderr
    assert r.outputs["incident-id"] == announced.outputs["incident-id"]
    assert r.outputs["action"] == "started"
    assert [m for m, _ in fake.writes()[writes:]] == ["PATCH"], "nothing new announced"
    assert [m["status"] for m in fake.created()] == ["in_progress", "scheduled"]


@pytest.mark.parametrize(
    ("begins_in", "started"),
    [(timedelta(minutes=10), True), (timedelta(hours=2), False)],
)
def test_a_window_that_begins_soon_is_started_early_a_later_one_is_not(
    sp: RunCli, fake: StatuspageFake, begins_in: timedelta, started: bool
) -> None:
    now = datetime.now(UTC)
    announced = sp(
        "maintenance", "schedule", "--start", _jst(now + begins_in),
        "--end", _jst(now + begins_in + timedelta(hours=1)),
    )  # fmt: skip

    r = sp("maintenance", "start", "--end", "30m")

    assert r.code == 0, r.stdout + r.stderr
    assert (r.outputs["incident-id"] == announced.outputs["incident-id"]) is started
    assert r.outputs["action"] == ("started" if started else "scheduled_and_started")
    assert len(fake.incidents) == (1 if started else 2)


def test_complete_after_failed_work_completes_and_says_so(sp: RunCli, fake: StatuspageFake) -> None:
    started = sp("maintenance", "start", "--end", "30m")
    ident = started.outputs["incident-id"]

    r = sp("maintenance", "complete", "--incident-id", ident, "--outcome", "failure")

    assert r.code == 0, r.stdout + r.stderr
    assert r.outputs == {"incident-id": ident, "action": "completed", "changed": "true"}
    assert fake.incidents[ident]["status"] == "completed"
    assert fake.status_of("TripTrip API") == "operational"
    assert "ended in `failure`" in r.summary and "did not succeed" in r.summary
    # The page's text is for customers: the same as after a success.
    assert fake.requests[-1].body["incident"]["body"] == "Scheduled maintenance has been completed."


def test_the_action_runs_start_and_complete_from_its_inputs(
    run_cli: RunCli, fake: StatuspageFake, policy: Path
) -> None:
    env = {
        "STATUSPAGE_BASE_URL": fake.base_url,
        "STATUSPAGE_API_KEY": API_KEY,
        "INPUT_POLICY": str(policy),
        "INPUT_COMMAND": "maintenance-start",
        "INPUT_END": "20m",
        "INPUT_COMPONENTS": "TripTrip API\n",
        "INPUT_IMPACT": "Bookings are read-only.",
        "INPUT_DRY_RUN": "false",
    }
    started = run_cli("action", "run", "statuspage", env=env)
    ident = started.outputs.get("incident-id", "")
    completed = run_cli(
        "action", "run", "statuspage",
        env={**env, "INPUT_COMMAND": "maintenance-complete", "INPUT_INCIDENT_ID": ident,
             "INPUT_OUTCOME": "success"},
    )  # fmt: skip

    assert (started.code, completed.code) == (0, 0), started.stdout + started.stderr
    (maintenance,) = fake.incidents.values()
    assert ident == maintenance["id"] and maintenance["status"] == "completed"
    assert maintenance["component_ids"] == [fake.component_id("TripTrip API")]
    assert (
        "**Expected Impact**: Bookings are read-only."
        in maintenance["incident_updates"][-1]["body"]
    )
    assert "did not succeed" not in completed.summary


def test_a_dry_run_start_with_an_end_shows_both_requests(sp: RunCli, fake: StatuspageFake) -> None:
    r = sp("maintenance", "start", "--end", "30m", "--dry-run")

    assert r.code == 0, r.stderr
    assert fake.requests == []
    assert f"POST {fake.base_url}/pages/{PAGE_ID}/incidents" in r.stdout
    assert "PATCH " in r.stdout and "<id of the maintenance scheduled above>" in r.stdout
    assert '"status": "in_progress"' in r.stdout


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--end", "30m", "--incident-id", "abc"), "Only one of `--incident-id` or `--end`"),
        (("--component", "TripTrip API"), "`--component` and `--impact` go with `--end`"),
        (("--end", "2000-01-01T00:00"), "must be after now"),
        (("--end", "soon"), "neither a length of time nor an ISO 8601 time"),
    ],
)
def test_start_with_an_end_refuses_what_does_not_fit(
    sp: RunCli, fake: StatuspageFake, args: tuple[str, ...], error: str
) -> None:
    r = sp("maintenance", "start", *args)

    assert r.code == 2
    assert error in r.stdout + r.stderr
    assert fake.writes() == []


def test_a_page_that_is_down_fails_the_start_within_the_short_budget(
    sp: RunCli, fake: StatuspageFake
) -> None:
    fake.fail_next(503, times=100, message="Service Unavailable")
    began = time.monotonic()

    r = sp("maintenance", "start", "--end", "30m")

    assert r.code == 2
    assert "HTTP 503: Service Unavailable" in r.stdout
    assert time.monotonic() - began < 30
    assert fake.writes() == []
