"""A rollback opens its status page incident and resolves it once recovered (source §10.3),
against the Statuspage fake; a status page that is down never changes the rollback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release_actions.app import status_page
from release_actions.metrics.retry import RetryPolicy
from tests.conftest import CliResult, RunCli
from tests.fakes.statuspage import API_KEY, PAGE_ID, StatuspageFake
from tests.integration.deploys import Cli, Stack, assert_known_good, start_target

pytestmark = pytest.mark.integration

MARKER = "release-actions:rollback:triptrip-api@v1.5.2"
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


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rollback path's patience, in milliseconds instead of seconds."""
    monkeypatch.setattr(status_page, "ROLLBACK_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(
        status_page,
        "ROLLBACK_RETRY",
        RetryPolicy(attempts=3, total_seconds=5, backoff_initial=0.01, jitter=0.0),
    )


def page_env(fake: StatuspageFake) -> dict[str, str]:
    return {"STATUSPAGE_BASE_URL": fake.base_url, "STATUSPAGE_API_KEY": API_KEY}


def rehearse(run_cli: RunCli, policy: Path, env: dict[str, str], *args: str) -> CliResult:
    return run_cli("rehearse", "--policy", str(policy), *args, env=env)


def posts(fake: StatuspageFake) -> list[dict[str, Any]]:
    return [r.body["incident"] for r in fake.requests if r.method == "POST"]


def patches(fake: StatuspageFake) -> list[dict[str, Any]]:
    return [r.body["incident"] for r in fake.requests if r.method == "PATCH"]


# -- the "done when" -------------------------------------------------------------------------


def test_a_rehearsed_rollback_opens_one_incident_and_resolves_it(
    run_cli: RunCli, fake: StatuspageFake, policy: Path
) -> None:
    api = fake.component_id("TripTrip API")

    r = rehearse(
        run_cli, policy, page_env(fake), "--scenario", "error-spike", "--status-page", "--json"
    )

    assert r.code == 1, r.stdout + r.stderr  # rolled back, as without a status page
    data = json.loads(r.stdout)
    assert data["decision"] == "rolled_back" and data["rollback"]["recovered"] is True
    assert [(m, p.split("/")[-1] if m == "PATCH" else p) for m, p in fake.writes()] == [
        ("POST", INCIDENTS),
        ("PATCH", data["status_page"]["incident"]["id"]),
    ]
    (opened,) = posts(fake)
    assert opened["name"] == "Performance Degradation"
    assert opened["status"] == "investigating"
    assert "**Affected Services**: TripTrip API" in opened["body"]
    assert (opened["component_ids"], opened["components"]) == (
        [api],
        {api: "degraded_performance"},
    )
    ours = opened["metadata"]["release_actions"]
    # Opened as the rollback began, before its record existed: customers read it while the
    # service recovers, not after the recovery check.
    assert ours["marker"] == MARKER and "record_id" not in ours
    assert ours["reason"] == data["rollback"]["trigger"]["reason"]
    assert "“Performance Degradation” as the rollback began" in r.stderr
    (resolved,) = patches(fake)
    assert resolved["status"] == "resolved"
    assert resolved["components"] == {api: "operational"}
    assert "**Duration**: 1 minute 30 seconds" in resolved["body"]  # 30 s rollback + 60 s
    assert f"**Root Cause**: {data['rollback']['trigger']['reason']}" in resolved["body"]
    (incident,) = fake.incidents.values()
    assert incident["status"] == "resolved" and fake.status_of("TripTrip API") == "operational"
    assert data["status_page"]["action"] == "opened_and_resolved"
    shown = [line for line in (r.stdout + r.stderr).splitlines() if API_KEY in line]
    assert shown == [f"::add-mask::{API_KEY}"], "masked the moment it is read, shown nowhere"


def test_an_unrecovered_rollback_leaves_one_incident_open_across_reruns(
    run_cli: RunCli, fake: StatuspageFake, policy: Path
) -> None:
    env = page_env(fake)

    first = rehearse(run_cli, policy, env, "--scenario", "provider-down", "--status-page")
    second = rehearse(run_cli, policy, env, "--scenario", "provider-down", "--status-page")

    assert (first.code, second.code) == (1, 1)
    assert len(posts(fake)) == 1 and patches(fake) == [], "no second incident, nothing resolved"
    (incident,) = fake.incidents.values()
    assert incident["status"] == "investigating"
    assert fake.status_of("TripTrip API") == "degraded_performance"
    assert "stays open until recovery is confirmed" in first.stdout
    assert f"incident {incident['id']} for this rollback is already open" in second.stdout

    # A rerun of the same version whose recovery passes resolves the open incident.
    third = rehearse(run_cli, policy, env, "--scenario", "error-spike", "--status-page")

    assert third.code == 1
    assert len(posts(fake)) == 1 and len(patches(fake)) == 1
    assert incident["status"] == "resolved" and fake.status_of("TripTrip API") == "operational"


def test_without_the_opt_in_a_rehearsal_sends_nothing(
    run_cli: RunCli, fake: StatuspageFake, policy: Path
) -> None:
    r = rehearse(run_cli, policy, page_env(fake), "--scenario", "error-spike")

    assert r.code == 1
    assert fake.requests == []
    assert "a rehearsal leaves page `kctbh9vrtdwd` alone (opt in: `rehearse --status-page`)" in (
        r.stdout
    )
    assert "it would open “Performance Degradation” with TripTrip API degraded_performance" in (
        r.stdout
    )


@pytest.mark.parametrize(
    ("policy_text", "env_key", "note"),
    [
        ("", True, None),  # the default: no page, and no line about it on every rollback
        (
            # A policy file merges over the source's services: an empty list unmaps one.
            f"notifications:\n  status_page:\n    page_id: {PAGE_ID}\n"
            "    services: {triptrip-api: []}\n",
            True,
            "`triptrip-api` has no component in `notifications.status_page.services`",
        ),
        (
            f"notifications:\n  status_page:\n    page_id: {PAGE_ID}\n",
            False,
            "`STATUSPAGE_API_KEY` is not set",
        ),
    ],
)
def test_nothing_to_send_is_a_note(
    run_cli: RunCli,
    fake: StatuspageFake,
    tmp_path: Path,
    policy_text: str,
    env_key: bool,
    note: str | None,
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(policy_text or "version: 1\n", encoding="utf-8")
    env = page_env(fake) if env_key else {"STATUSPAGE_BASE_URL": fake.base_url}

    r = rehearse(run_cli, policy, env, "--scenario", "error-spike", "--status-page")

    assert r.code == 1
    assert fake.requests == []
    if note is None:
        assert "status page" not in r.stdout.lower()
    else:
        assert f"status page: {note}" in r.stdout
    assert "title=Status page" not in r.stdout + r.stderr


# -- the status page down: the rollback as without it ---------------------------------------------


def _down(fake: StatuspageFake, how: str) -> dict[str, str]:
    env = page_env(fake)
    if how == "refused":
        with StatuspageFake() as gone:
            env["STATUSPAGE_BASE_URL"] = gone.base_url
    elif how == "500":
        fake.fail_next(500, times=100)
    else:
        fake.hang_next(3.0, times=100)
    return env


@pytest.mark.parametrize("how", ["refused", "500", "timeout"])
def test_a_rehearsal_with_the_status_page_down_rolls_back_as_without_it(
    run_cli: RunCli, fake: StatuspageFake, policy: Path, how: str
) -> None:
    without = rehearse(run_cli, policy, {}, "--scenario", "error-spike", "--json")

    r = rehearse(
        run_cli, policy, _down(fake, how), "--scenario", "error-spike", "--status-page", "--json"
    )

    assert r.code == without.code == 1, r.stderr
    data, expected = json.loads(r.stdout), json.loads(without.stdout)
    assert data["rollback"] == expected["rollback"]
    assert data["status_page"]["action"] == "failed"
    assert (
        "::warning title=Status page::Rolled back and recorded, but the status page was not "
        in (r.stderr)
    )


@pytest.mark.parametrize("how", ["refused", "500", "timeout"])
def test_a_canary_rollback_with_the_status_page_down_still_rolls_back_and_records(
    stack: Stack,
    tmp_path: Path,
    cli: Cli,
    fake: StatuspageFake,
    policy: Path,
    how: str,
) -> None:
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    record_file = tmp_path / "record.json"

    r = cli(
        "canary", "run", *deploy.args, "--version", "v1.3.0", "--provider", "simulated",
        "--scenario", "error-spike", "--policy", str(policy), "--record-file", str(record_file),
        env={**deploy.env, **_down(fake, how)},
    )  # fmt: skip

    assert r.code == 1, r.stdout + r.stderr  # rolled back: 1, as without a status page
    assert_known_good("kubernetes-istio", deploy.live())
    record = json.loads(record_file.read_text())
    assert r.outputs["record-id"] == record["id"] == "RB-2026-001"
    assert "::warning title=Status page::Rolled back and recorded" in r.stdout
    assert fake.incidents == {}


# -- the real targets' rollbacks ------------------------------------------------------------------------


def test_a_canary_rollback_on_a_real_target_opens_and_resolves_its_incident(
    stack: Stack, tmp_path: Path, cli: Cli, fake: StatuspageFake, policy: Path
) -> None:
    deploy = start_target("kubernetes-istio", stack, tmp_path)

    r = cli(
        "canary", "run", *deploy.args, "--version", "v1.3.0", "--provider", "simulated",
        "--scenario", "error-spike", "--policy", str(policy), "--json",
        env={**deploy.env, **page_env(fake)},
    )  # fmt: skip

    assert r.code == 1, r.stderr
    (opened,) = posts(fake)
    ours = opened["metadata"]["release_actions"]
    assert ours["marker"] == "release-actions:rollback:triptrip-api@v1.3.0"
    assert [p["status"] for p in patches(fake)] == ["resolved"]
    assert json.loads(r.stdout)["status_page"]["action"] == "opened_and_resolved"


def test_a_manual_rollback_opens_an_incident_that_resolve_closes_later(
    stack: Stack, tmp_path: Path, cli: Cli, fake: StatuspageFake, policy: Path
) -> None:
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    target = deploy.target()
    target.begin("v1.3.0")
    target.set_weight(20)
    env = {**deploy.env, **page_env(fake)}

    r = cli(
        "rollback", *deploy.args, "--reason", "error rate 7.2% after the deploy",
        "--policy", str(policy), env=env,
    )  # fmt: skip

    assert r.code == 0, r.stdout + r.stderr
    assert_known_good("kubernetes-istio", deploy.live())
    (opened,) = posts(fake)
    assert opened["metadata"]["release_actions"]["marker"] == (
        "release-actions:rollback:triptrip-api@v1.3.0"
    )
    assert patches(fake) == [], "no recovery check ran: the incident stays open"
    assert "statuspage incident resolve --service triptrip-api --version v1.3.0" in r.stdout

    done = cli(
        "statuspage", "incident", "resolve", "--service", "triptrip-api", "--version", "v1.3.0",
        "--policy", str(policy), env=env,
    )  # fmt: skip

    assert done.code == 0, done.stdout + done.stderr
    (resolved,) = patches(fake)
    assert "**Root Cause**: error rate 7.2% after the deploy" in resolved["body"]
    assert fake.status_of("TripTrip API") == "operational"


# -- the incident opens as the rollback begins, beside it ------------------------------------------


def _opener(fake: StatuspageFake, **env: str) -> status_page.IncidentOpener:
    import io

    from release_actions.app.session import Session
    from release_actions.core.policy import Policy, default_policy_data
    from release_actions.gha import Runtime

    data = default_policy_data()
    data["notifications"]["status_page"]["page_id"] = PAGE_ID
    session = Session(
        runtime=Runtime(env={**page_env(fake), **env}, out=io.StringIO(), err=io.StringIO())
    )
    return status_page.IncidentOpener(
        session,
        Policy.model_validate(data),
        service="triptrip-api",
        version="v1.5.2",
        target_name="kubernetes",
    )


def test_the_incident_opens_as_the_rollback_begins_and_never_holds_it(
    fake: StatuspageFake,
) -> None:
    import time

    from release_actions.canary.model import Event

    fake.hang_next(1.5)  # a slow status page
    opener = _opener(fake)
    seen: list[str] = []
    listen = opener.listener(lambda e: seen.append(e.kind))

    began = time.monotonic()
    listen(Event("interval", 0.0, "a look"))
    assert posts(fake) == [] and opener.wait() is None, "only a rollback opens an incident"
    listen(Event("rollback", 60.0, "rolling back: error rate 7.1% > 5%"))
    handed_back = time.monotonic() - began

    assert handed_back < 0.5, "the rollback goes on while the page answers"
    assert seen == ["interval", "rollback"], "the engine's own listener still hears everything"
    opened = opener.wait()
    assert opened is not None and opened.action == "opened"
    (sent,) = posts(fake)
    assert sent["metadata"]["release_actions"]["marker"] == MARKER
    assert sent["metadata"]["release_actions"]["reason"] == "error rate 7.1% > 5%"
    listen(Event("rollback", 61.0, "rolling back: again"))
    assert len(posts(fake)) == 1, "one incident per rollback session"


def test_an_opener_that_failed_leaves_the_incident_to_after_rollback(
    fake: StatuspageFake,
) -> None:
    from release_actions.canary.model import Event

    fake.fail_next(500, times=10)
    opener = _opener(fake)
    opener.on_event(Event("rollback", 60.0, "rolling back: error rate"))
    assert opener.wait() is None
    assert opener.error and "500" in opener.error
    assert posts(fake) == [], "a 500 made nothing"


def test_no_key_or_a_rehearsal_without_the_opt_in_opens_nothing(fake: StatuspageFake) -> None:
    from release_actions.canary.model import Event

    opener = _opener(fake, STATUSPAGE_API_KEY="")
    opener.on_event(Event("rollback", 60.0, "rolling back: x"))
    rehearsal = _opener(fake)
    rehearsal.target_name = "simulated"
    rehearsal.on_event(Event("rollback", 60.0, "rolling back: x"))
    assert opener.wait() is None and rehearsal.wait() is None
    assert fake.requests == []
