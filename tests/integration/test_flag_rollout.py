"""`flags rollout`: a flag's guarded rollout on the LaunchDarkly fake, judged on a real Prometheus."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from release_actions.app.flag_rollout import FlagRolloutRequest, run_flag_rollout
from release_actions.app.rollout import RolloutResult
from release_actions.app.session import Session
from release_actions.app.world import WorldRequest
from release_actions.canary.model import Decision
from release_actions.core.policy import Policy, default_policy
from release_actions.errors import ReleaseActionsError
from release_actions.gha import Runtime
from release_actions.simulation.clock import VirtualClock
from release_actions.targets.flag import STATE_PROPERTY
from tests.conftest import RunCli
from tests.fakes.launchdarkly import API_TOKEN, PROJECT, LaunchDarklyFake
from tests.integration.prometheus_server import (
    PrometheusServer,
    backfill,
    running_prometheus,
)

pytestmark = pytest.mark.integration

FLAG = "new-booking-flow"
SERVICE = "triptrip-api"
LABEL = "flag_variation_new_booking_flow"
# 2026-01-20 14:00 JST; 30 minutes of data at 10-second steps.
T0 = 1768885200
STEP = 10
STEPS = 180
STEP_SECONDS = 120
# The rollout starts after five minutes of data (preflight reads the stable track's last 300 s);
# its 50 % step begins two minutes later.
START = T0 + 400
AT_50 = START + STEP_SECONDS

SELECTOR = f'service="{SERVICE}",{LABEL}="{{{{ variation }}}}"'
QUERIES = {
    "requests": f"sum(increase(http_requests_total{{{SELECTOR}}}[{{{{ interval }}}}]))",
    "errors": f'sum(increase(http_requests_total{{{SELECTOR},code=~"5.."}}[{{{{ interval }}}}]))',
}


def _counter(labels: dict[str, str], rate: Callable[[int], float]) -> list[str]:
    """A counter rising by ``rate(t)`` each step: its traffic can change during the data."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total, lines = 0.0, []
    for i in range(STEPS + 1):
        ts = T0 + i * STEP
        lines.append(f"http_requests_total{{{inner}}} {total:g} {ts}")
        total += rate(ts)
    return lines


def _traffic(*, on_errors_from_50: float) -> str:
    """Users served `off`: 100 requests a step, 1 failing. Served `on`: 40, 0.4 failing, and
    ``on_errors_from_50`` failing from the moment the rollout reaches 50 %."""

    def on_errors(ts: int) -> float:
        return on_errors_from_50 if ts >= AT_50 else 0.4

    series = [
        ({"code": "200", LABEL: "off"}, lambda ts: 99.0),
        ({"code": "500", LABEL: "off"}, lambda ts: 1.0),
        ({"code": "200", LABEL: "on"}, lambda ts: 40.0 - on_errors(ts)),
        ({"code": "500", LABEL: "on"}, on_errors),
    ]
    lines = ["# TYPE http_requests counter"]
    for labels, rate in series:
        lines += _counter({"service": SERVICE, **labels}, rate)
    return "\n".join([*lines, "# EOF"]) + "\n"


def _server(tmp: Path, text: str) -> Iterator[PrometheusServer]:
    backfill(text, tmp / "data")
    with running_prometheus(tmp, data_dir=tmp / "data") as server:
        yield server


@pytest.fixture(scope="module")
def regressing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    yield from _server(tmp_path_factory.mktemp("regressing"), _traffic(on_errors_from_50=8.0))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    yield from _server(tmp_path_factory.mktemp("healthy"), _traffic(on_errors_from_50=0.4))


@pytest.fixture
def fake() -> Iterator[LaunchDarklyFake]:
    with LaunchDarklyFake() as server:
        # Off in production before the rollout: the known-good state is the flag off.
        server.add_flag(FLAG, on={"production": False, "staging": True})
        yield server


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def guarded(queries: dict[str, Any] | None = None) -> Policy:
    """The default policy with the guard's Prometheus templates and two-minute steps
    (a policy file holds the same; tests/unit/metrics/test_variation.py loads one)."""
    base = default_policy()
    flags = base.feature_flags
    guard = flags.guard.model_copy(
        update={
            "queries": {"prometheus": QUERIES} if queries is None else queries,
            "step_seconds": STEP_SECONDS,
        }
    )
    return base.model_copy(update={"feature_flags": flags.model_copy(update={"guard": guard})})


def env_for(fake: LaunchDarklyFake) -> dict[str, str]:
    return {
        "LD_API_KEY": API_TOKEN,
        "LAUNCHDARKLY_BASE_URL": fake.url,
        "LAUNCHDARKLY_PROJECT": PROJECT,
    }


def session_for(fake: LaunchDarklyFake, tmp_path: Path) -> Session:
    import io

    env = {**env_for(fake), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    return Session(runtime=Runtime(env=env, out=io.StringIO(), err=io.StringIO()))


def rollout(
    fake: LaunchDarklyFake,
    server: PrometheusServer | None,
    tmp_path: Path,
    policy: Policy | None = None,
) -> RolloutResult:
    url = server.url if server is not None else "http://127.0.0.1:9"
    return run_flag_rollout(
        session_for(fake, tmp_path),
        policy or guarded(),
        FlagRolloutRequest(
            FLAG,
            WorldRequest(provider="prometheus", provider_settings=(f"url={url}",)),
            record_file=tmp_path / "record.json",
        ),
        clock=VirtualClock(START),
    )


def weights(fake: LaunchDarklyFake) -> dict[bool, int]:
    """The production fallthrough's rollout weights by variation value (thousandths of %)."""
    flag = fake.flags[(PROJECT, FLAG)]
    fall = flag["environments"]["production"]["fallthrough"]
    values = [v["value"] for v in flag["variations"]]
    if "variation" in fall:
        return {values[fall["variation"]]: 100_000}
    return {values[w["variation"]]: w["weight"] for w in fall["rollout"]["variations"]}


def test_a_flag_whose_on_variation_errs_at_50_percent_is_set_back_to_25(
    fake: LaunchDarklyFake, regressing: PrometheusServer, tmp_path: Path
) -> None:
    result = rollout(fake, regressing, tmp_path)
    outcome = result.outcome
    assert outcome is not None and outcome.decision is Decision.ROLLED_BACK
    assert [s.weight for s in outcome.steps] == [25, 50]
    assert [s.status.value for s in outcome.steps] == ["passed", "failed"]
    # LaunchDarkly itself: 25 % on, 75 % off, the flag still on.
    assert weights(fake) == {True: 25_000, False: 75_000}
    assert fake.is_on(FLAG, "production")
    # The judge read each variation with its own query.
    evidence = outcome.steps[-1].evidence["judge"]["evidence"]["queries"]
    assert f'{LABEL}="on"' in evidence["canary"]["errors"]
    assert f'{LABEL}="off"' in evidence["stable"]["errors"]
    assert "track=" not in evidence["canary"]["requests"]
    # The rollback record, with the flag's percentages, and no kill switch thrown.
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["id"].startswith("RB-")
    assert "25%" in json.dumps(record) and "50%" in json.dumps(record)
    assert result.context["flag"]["percent"] == 25
    # The state is on the flag: a second run resumes it and changes nothing.
    assert STATE_PROPERTY in fake.flags[(PROJECT, FLAG)]["customProperties"]
    patches = len(fake.requests)
    again = rollout(fake, regressing, tmp_path)
    assert again.already_done
    assert weights(fake) == {True: 25_000, False: 75_000}
    assert not [r for r in fake.requests[patches:] if r.method == "PATCH"]


def test_a_healthy_flag_reaches_100_percent_on(
    fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    result = rollout(fake, healthy, tmp_path)
    outcome = result.outcome
    assert outcome is not None
    assert outcome.decision is Decision.PROMOTED, outcome.reason
    assert [s.weight for s in outcome.steps] == [25, 50, 75, 100]
    assert weights(fake) == {True: 100_000}
    assert fake.is_on(FLAG, "production")
    assert result.published is None  # no rollback, no record
    assert result.context["flag"]["percent"] == 100


def test_a_template_without_variation_is_refused_with_the_policy_key(
    fake: LaunchDarklyFake, tmp_path: Path
) -> None:
    blind = {**QUERIES, "errors": 'sum(increase(http_requests_total{code=~"5.."}[1m]))'}
    with pytest.raises(ReleaseActionsError) as caught:
        rollout(fake, None, tmp_path, guarded({"prometheus": blind}))
    assert "`feature_flags.guard.queries.prometheus.errors`" in caught.value.message
    assert "{{ variation }}" in caught.value.message
    # Refused before anything changed on LaunchDarkly.
    assert not [r for r in fake.requests if r.method == "PATCH"]
    assert not fake.is_on(FLAG, "production")


def test_no_guard_queries_for_the_provider_is_refused_by_the_cli(
    run_cli: RunCli, fake: LaunchDarklyFake
) -> None:
    r = run_cli(
        "flags",
        "rollout",
        FLAG,
        "--provider",
        "prometheus",
        "--provider-setting",
        "url=http://127.0.0.1:9",
        env=env_for(fake),
    )
    assert r.code != 0
    assert "`feature_flags.guard.queries.prometheus` is not set" in r.stdout + r.stderr
    assert not [q for q in fake.requests if q.method == "PATCH"]


@pytest.mark.parametrize(
    ("scenario", "decision", "percent"),
    [("flag-healthy", "promoted", 100), ("flag-regression", "rolled_back", 25)],
)
def test_the_simulated_provider_rehearses_the_real_flag(
    run_cli: RunCli, fake: LaunchDarklyFake, scenario: str, decision: str, percent: int
) -> None:
    args = ("flags", "rollout", FLAG, "--provider", "simulated", "--scenario", scenario)
    r = run_cli(*args, "--json", env=env_for(fake))
    assert r.code == (0 if decision == "promoted" else 1), r.stderr
    body = json.loads(r.stdout)
    assert body["decision"] == decision
    assert r.outputs["flag-percent"] == str(percent)
    on = percent * 1000
    assert weights(fake) == ({True: on} if percent == 100 else {True: on, False: 100_000 - on})
    # Resumed from the state on the flag: nothing changes the second time.
    patches = len([q for q in fake.requests if q.method == "PATCH"])
    again = run_cli(*args, env=env_for(fake))
    assert again.code == r.code
    assert len([q for q in fake.requests if q.method == "PATCH"]) == patches


def test_a_flag_rollout_does_not_need_the_kill_switch_flags(
    fake: LaunchDarklyFake, healthy: PrometheusServer, tmp_path: Path
) -> None:
    """Its rollback sets the flag's percentage back and throws no kill switch, so pre-flight
    does not ask LaunchDarkly for the policy's kill-switch flags (one that does not exist
    would stop a canary before it starts)."""
    policy = guarded()
    ld = policy.feature_flags.launchdarkly.model_copy(update={"kill_switch": ["no-such-flag"]})
    flags = policy.feature_flags.model_copy(update={"launchdarkly": ld})
    result = rollout(fake, healthy, tmp_path, policy.model_copy(update={"feature_flags": flags}))
    assert result.outcome is not None
    assert result.outcome.decision is Decision.PROMOTED, result.outcome.reason
