"""`flags rollout --gate`: the guarded rollout one look per run, on the LaunchDarkly fake and a
real Prometheus, the virtual clock moved between runs as a schedule would move the real one."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from release_actions.app.flag_gate import run_flag_gate, run_flag_gates
from release_actions.app.flag_rollout import FlagRolloutRequest
from release_actions.app.world import WorldRequest
from release_actions.canary.gate_report import GateLook
from release_actions.core.policy import Policy
from release_actions.simulation.clock import VirtualClock
from release_actions.targets.flag import STATE_PROPERTY, FlagApi, launchdarkly_api
from tests.conftest import RunCli
from tests.fakes.launchdarkly import PROJECT, LaunchDarklyFake
from tests.integration.prometheus_server import PrometheusServer
from tests.integration.test_flag_rollout import (
    FLAG,
    QUERIES,
    START,
    STEP_SECONDS,
    _server,
    _traffic,
    env_for,
    guarded,
    session_for,
    weights,
)

pytestmark = pytest.mark.integration

EVERY = 60  # the schedule: a run a minute, two looks per two-minute step


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    yield from _server(tmp_path_factory.mktemp("gate-healthy"), _traffic(on_errors_from_50=0.4))


@pytest.fixture(scope="module")
def regressing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    yield from _server(tmp_path_factory.mktemp("gate-regressing"), _traffic(on_errors_from_50=8.0))


@pytest.fixture
def fake() -> Iterator[LaunchDarklyFake]:
    with LaunchDarklyFake() as server:
        server.add_flag(FLAG, on={"production": False, "staging": True})
        yield server


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def request(server: PrometheusServer, tmp_path: Path, flag: str = FLAG) -> FlagRolloutRequest:
    return FlagRolloutRequest(
        flag,
        WorldRequest(provider="prometheus", provider_settings=(f"url={server.url}",)),
        record_file=tmp_path / "record.json",
        gate=True,
    )


def look(
    fake: LaunchDarklyFake,
    server: PrometheusServer,
    tmp_path: Path,
    at: float,
    *,
    api: FlagApi | None = None,
    policy: Policy | None = None,
) -> GateLook:
    """One scheduled run of the gate at ``at``: a new session, engine and judge."""
    return run_flag_gate(
        session_for(fake, tmp_path),
        policy or guarded(),
        request(server, tmp_path),
        clock=VirtualClock(at),
        api=api,
    )


def saved(fake: LaunchDarklyFake, flag: str = FLAG) -> dict[str, Any]:
    prop = fake.flags[(PROJECT, flag)]["customProperties"][STATE_PROPERTY]
    data: dict[str, Any] = json.loads(prop["value"][0])
    return data


def patches(fake: LaunchDarklyFake) -> int:
    return len([r for r in fake.requests if r.method == "PATCH"])


def serve(fake: LaunchDarklyFake, percent: int, flag: str = FLAG) -> None:
    """Someone edits the production fallthrough in the UI."""
    flag_doc = fake.flags[(PROJECT, flag)]
    on, off = (0, 1) if flag_doc["variations"][0]["value"] is True else (1, 0)
    flag_doc["environments"]["production"]["fallthrough"] = {
        "rollout": {
            "variations": [
                {"variation": on, "weight": percent * 1000},
                {"variation": off, "weight": 100_000 - percent * 1000},
            ]
        }
    }


def test_each_run_makes_one_look_and_the_rollout_reaches_100_percent(
    fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    runs: list[GateLook] = []
    at = float(START)
    while not runs or runs[-1].action not in ("promoted", "rolled_back"):
        runs.append(look(fake, healthy, tmp_path, at))
        assert len(runs) < 20, [r.action for r in runs]
        at += EVERY
    # Started at 25 % with no look; then a look a run: hold, and move on once the step's
    # two minutes are up.
    assert [(r.action, r.percent, r.looked) for r in runs] == [
        ("started", 25, 0),
        ("holding", 25, 1),
        ("advanced", 50, 1),
        ("holding", 50, 1),
        ("advanced", 75, 1),
        ("holding", 75, 1),
        ("advanced", 100, 1),
        ("holding", 100, 1),
        ("promoted", 100, 1),
    ]
    assert all(r.ok for r in runs)
    first = runs[0]
    assert first.until == pytest.approx(START + STEP_SECONDS)
    assert "holding until" in first.reason
    assert weights(fake) == {True: 100_000}
    assert fake.is_on(FLAG, "production")
    state = saved(fake)
    assert state["done"] is True
    assert state["state"]["decision"] == "promoted"
    # The looks kept for the chart: every look, with each variation's counts.
    kept = state["state"]["gate"]["looks"]
    assert [k["weight"] for k in kept] == [25, 25, 50, 50, 75, 75, 100, 100]
    assert all(k["canary"][0] > 0 for k in kept)
    # Ended: a later run changes nothing and says so.
    before = patches(fake)
    after = look(fake, healthy, tmp_path, at + EVERY)
    assert after.action == "ended" and after.ok
    assert patches(fake) == before


def test_the_step_keeps_its_start_and_the_judge_its_evidence_across_runs(
    fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    look(fake, healthy, tmp_path, START)
    started = saved(fake)["state"]
    look(fake, healthy, tmp_path, START + EVERY)
    held = saved(fake)["state"]
    # The step did not restart: same start, the window of the next look begins where this
    # one ended, and the judge's counts grew by the one look.
    assert held["step_started_at"] == started["step_started_at"]
    assert held["gate"]["start"] == START
    assert held["gate"]["prev"] == START + EVERY
    judge = held["gate"]["judge"]
    assert judge["judge"] == "sequential"
    assert judge["intervals"] == 1
    assert judge["totals"]["canary_requests"] == pytest.approx(240, rel=0.05)
    assert held["gate"]["tally"]["intervals"] == 1
    look(fake, healthy, tmp_path, START + 2 * EVERY)
    judge = saved(fake)["state"]["gate"]["judge"]
    # Moved on to 50 %: the step's own evidence starts again, the rollout's stays.
    assert judge["intervals"] == 2
    assert judge["step_intervals"] == 0


def test_a_run_too_soon_after_the_last_look_measures_nothing(
    fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    look(fake, healthy, tmp_path, START)
    look(fake, healthy, tmp_path, START + EVERY)
    state = saved(fake)["state"]
    again = look(fake, healthy, tmp_path, START + EVERY + 5)
    assert again.action == "skipped" and again.ok
    assert again.looked == 0
    assert saved(fake)["state"]["gate"] == state["gate"]


def test_a_regression_sets_the_flag_back_to_the_last_safe_percentage(
    fake: LaunchDarklyFake, regressing: PrometheusServer, tmp_path: Path
) -> None:
    runs = [look(fake, regressing, tmp_path, START + k * EVERY) for k in range(3)]
    assert [r.action for r in runs] == ["started", "holding", "advanced"]
    failed = look(fake, regressing, tmp_path, START + 3 * EVERY)
    assert failed.action == "rolled_back"
    assert failed.exit_code == 1 and failed.looked == 1
    assert "error rate is higher" in failed.reason
    assert failed.percent == 25
    assert weights(fake) == {True: 25_000, False: 75_000}
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["id"].startswith("RB-")
    assert record["from_version"] == f"{FLAG} on for 50%"
    assert record["to_version"] == f"{FLAG} on for 25%"
    assert failed.record is not None and failed.record["id"] == record["id"]
    before = patches(fake)
    ended = look(fake, regressing, tmp_path, START + 10 * EVERY)
    assert ended.action == "ended" and ended.exit_code == 1
    assert patches(fake) == before


def test_a_person_changing_the_targeting_stops_the_gate(
    fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    look(fake, healthy, tmp_path, START)
    look(fake, healthy, tmp_path, START + EVERY)
    state = saved(fake)
    serve(fake, 40)
    before = patches(fake)
    stopped = look(fake, healthy, tmp_path, START + 2 * EVERY)
    assert stopped.action == "stopped" and stopped.exit_code == 1
    assert "is at 40% now, but the rollout left it at 25%" in stopped.reason
    assert stopped.hint is not None and "set the production fallthrough back to 25%" in stopped.hint
    # Nothing overwritten: the person's 40 % and the state as the last look left it.
    assert patches(fake) == before
    assert weights(fake) == {True: 40_000, False: 60_000}
    assert saved(fake) == state
    # Put back, the gate goes on from where it was.
    serve(fake, 25)
    assert look(fake, healthy, tmp_path, START + 2 * EVERY).action == "advanced"


def test_a_flag_turned_off_by_a_person_stops_the_gate(
    fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    look(fake, healthy, tmp_path, START)
    fake.flags[(PROJECT, FLAG)]["environments"]["production"]["on"] = False
    stopped = look(fake, healthy, tmp_path, START + EVERY)
    assert stopped.action == "stopped"
    assert "is at 0% now" in stopped.reason
    assert not fake.is_on(FLAG, "production")


class Racing:
    """A client whose first save lets another run's whole look happen first: two scheduled
    runs that overlap, the second having read the state before the first one saved."""

    def __init__(self, inner: FlagApi, other: Callable[[], GateLook]) -> None:
        self.inner = inner
        self.other = other
        self.other_look: GateLook | None = None

    def get_flag(self, flag_key: str) -> dict[str, Any]:
        return self.inner.get_flag(flag_key)

    def semantic_patch(
        self,
        flag_key: str,
        environment: str,
        instructions: list[dict[str, Any]],
        *,
        comment: str | None = None,
    ) -> dict[str, Any]:
        return self.inner.semantic_patch(flag_key, environment, instructions, comment=comment)

    def json_patch(
        self, flag_key: str, patch: list[dict[str, Any]], *, comment: str | None = None
    ) -> dict[str, Any]:
        if self.other_look is None:
            self.other_look = self.other()
        return self.inner.json_patch(flag_key, patch, comment=comment)


def test_overlapping_runs_do_not_advance_twice(
    fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    look(fake, healthy, tmp_path, START)
    look(fake, healthy, tmp_path, START + EVERY)
    at = START + 2 * EVERY  # the 25 % step's time is up: a look moves on to 50 %
    api = launchdarkly_api(env_for(fake), project=PROJECT, base_url=fake.url)
    racing = Racing(api, lambda: look(fake, healthy, tmp_path, at))
    second = look(fake, healthy, tmp_path, at, api=racing)
    assert racing.other_look is not None and racing.other_look.action == "advanced"
    assert second.action == "conflict" and second.exit_code == 1
    assert "wrote nothing" in second.reason
    # One advance, by the first run: 50 %, the 25 % step passed once, one look of each run
    # that saved.
    assert weights(fake) == {True: 50_000, False: 50_000}
    state = saved(fake)["state"]
    assert state["step_index"] == 1
    assert [s["weight"] for s in state["steps"]] == [25]
    assert len(state["gate"]["looks"]) == 2


def test_two_runs_starting_the_same_rollout_start_it_once(
    fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    api = launchdarkly_api(env_for(fake), project=PROJECT, base_url=fake.url)
    racing = Racing(api, lambda: look(fake, healthy, tmp_path, START))
    second = look(fake, healthy, tmp_path, START, api=racing)
    assert racing.other_look is not None and racing.other_look.action == "started"
    assert second.action == "conflict"
    assert weights(fake) == {True: 25_000, False: 75_000}


def test_all_looks_at_the_rollouts_in_progress_only(
    fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    fake.add_flag("quiet-flag", on={"production": False, "staging": False})
    fake.add_flag("other-flag", on={"production": False, "staging": False})
    look(fake, healthy, tmp_path, START)
    world = request(healthy, tmp_path).world
    looks = run_flag_gates(
        session_for(fake, tmp_path), guarded(), [], world, clock=VirtualClock(START + EVERY)
    )
    assert [(g.flag, g.action) for g in looks] == [(FLAG, "holding")]
    assert not fake.is_on("quiet-flag", "production")


# -- the command line ---------------------------------------------------------------------------


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yml"
    data = {
        "feature_flags": {
            "guard": {"step_seconds": STEP_SECONDS, "queries": {"prometheus": QUERIES}}
        }
    }
    path.write_text(yaml.safe_dump(data), "utf-8")
    return path


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def cli_gate(
    run_cli: RunCli,
    fake: LaunchDarklyFake,
    server: PrometheusServer,
    tmp_path: Path,
    at: float,
    *args: str,
) -> Any:
    return run_cli(
        "flags",
        "rollout",
        *args,
        "--gate",
        "--now",
        iso(at),
        "--provider",
        "prometheus",
        "--provider-setting",
        f"url={server.url}",
        "--policy",
        str(policy_file(tmp_path)),
        env=env_for(fake),
    )


def test_the_cli_starts_a_rollout_then_looks_at_every_one_in_progress(
    run_cli: RunCli, fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    started = cli_gate(run_cli, fake, healthy, tmp_path, START, FLAG)
    assert started.code == 0, started.stderr
    assert started.outputs["decision"] == "started"
    assert started.outputs["flag-percent"] == "25"
    assert f"`{FLAG}` started (step 1/4, 0 looks): holding until" in started.stdout
    r = cli_gate(run_cli, fake, healthy, tmp_path, START + EVERY, "--all", "--json")
    assert r.code == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["ok"] is True
    (row,) = body["rollouts"]
    assert row["flag"] == FLAG and row["action"] == "holding" and row["looked"] == 1
    assert json.loads(r.outputs["rollouts"]) == body["rollouts"]
    summary = r.summary
    assert "| Flag | This run | Step | Percent on | Since | Holding until / decision |" in summary
    assert f"| `{FLAG}` | ⏳ holding | 1/4 | 25% |" in summary


def test_the_summary_charts_each_rollouts_error_rate_per_variation(
    run_cli: RunCli, fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    for k in range(4):
        r = cli_gate(run_cli, fake, healthy, tmp_path, START + k * EVERY, "--all" if k else FLAG)
        assert r.code == 0, r.stderr
    summary = r.summary
    assert "```mermaid" in summary and "xychart-beta" in summary
    assert f"{FLAG}: error rate per look (%), on red, off blue" in summary
    assert '"25% 1m", "25% 2m", "50% 3m"' in summary


def test_the_cli_exits_1_when_the_gate_is_stopped(
    run_cli: RunCli, fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    assert cli_gate(run_cli, fake, healthy, tmp_path, START, FLAG).code == 0
    serve(fake, 60)
    r = cli_gate(run_cli, fake, healthy, tmp_path, START + EVERY, "--all")
    assert r.code == 1
    assert "✋ stopped" in r.summary
    assert "::error title=Guarded flag rollouts::" in r.stdout
    assert "is at 60% now" in r.stdout


def test_nothing_in_progress_is_nothing_to_do(
    run_cli: RunCli, fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    r = cli_gate(run_cli, fake, healthy, tmp_path, START, "--all")
    assert r.code == 0, r.stderr
    assert "No guarded flag rollout is in progress" in r.stdout
    assert "No guarded flag rollout is in progress" in r.summary
    assert r.outputs["rollouts"] == "[]"
    assert patches(fake) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--all",), "`--all` belongs to `--gate`"),
        (("--now", "2026-01-20T14:00:00+09:00", FLAG), "`--now` belongs to `--gate`"),
        (("--gate", "--all", FLAG), "Only one of KEY or `--all`"),
        (("--gate",), "Missing argument KEY"),
        (("--gate", "--all", "--record-file", "r.json"), "`--record-file` names one file"),
    ],
)
def test_usage_errors(run_cli: RunCli, args: tuple[str, ...], message: str) -> None:
    r = run_cli("flags", "rollout", *args)
    assert r.code == 2
    assert message in r.stderr


def test_the_gate_refuses_simulated_metrics(run_cli: RunCli, fake: LaunchDarklyFake) -> None:
    r = run_cli("flags", "rollout", FLAG, "--gate", "--provider", "simulated", env=env_for(fake))
    assert r.code == 2
    assert "rehearse --flag --gate" in r.stderr
    assert patches(fake) == 0
