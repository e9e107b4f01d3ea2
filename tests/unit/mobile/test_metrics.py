"""Retention and business criteria: hold on a drop, hold when not measured, halt only if asked."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from release_actions.errors import MetricsError, NoDataError
from release_actions.metrics.base import MetricsProvider, Track, TrafficSample
from release_actions.mobile.judge import Check, Judgement, Verdict
from release_actions.mobile.metrics import NotSimulated, VersionMetrics, VersionRef
from release_actions.mobile.policy import MobilePolicy
from release_actions.mobile.report import MobileReport, summary_markdown
from release_actions.mobile.rollout import HOUR, MemoryStateStore, MobileGate, _with_metrics
from release_actions.mobile.simulator import (
    MobileWorld,
    SimulatedReviews,
    SimulatedStore,
    SimulatedVitals,
    load_mobile_scenario,
    simulate,
)

RETENTION = 'avg(app_d1_retention_percent{version_code="{{ version_code }}",os="{{ platform }}"})'
REVENUE = "avg:app.revenue_per_user{version:{{ version }}}"


class Answers(MetricsProvider):
    """A provider whose single-value answers are scripted per resolved query."""

    name = "prometheus"

    def __init__(self, answers: dict[str, float | Exception]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, float, float, str]] = []

    def query(
        self, track: Track | None, start: float, end: float, *, slow_ms: float | None = None
    ) -> TrafficSample:
        raise AssertionError("not used")

    def is_online(self) -> bool:
        return True

    def scalar(
        self, query: str, start: float, end: float, *, what: str, reduce: str = "avg"
    ) -> float:
        self.asked.append((query, start, end, reduce))
        answer = self.answers.get(query, NoDataError(f"no series for {what}", query=query))
        if isinstance(answer, Exception):
            raise answer
        return answer


def retention_query(code: str, platform: str = "android") -> str:
    return f'avg(app_d1_retention_percent{{version_code="{code}",os="{platform}"}})'


def policy(**criteria: Any) -> MobilePolicy:
    return MobilePolicy.model_validate(criteria)


NEW, PREV = VersionRef("1052", "1.5.2"), VersionRef("1051", "1.5.1")


def read(p: MobilePolicy, provider: MetricsProvider | None, *, fraction: float = 0.2, **kw: Any):  # type: ignore[no-untyped-def]
    metrics = VersionMetrics(p, {} if provider is None else {"prometheus": provider})
    return metrics.readings(
        fraction=fraction,
        start=kw.get("start", 0.0),
        end=kw.get("end", 48 * HOUR),
        platform="android",
        new=kw.get("new", NEW),
        previous=kw.get("previous", PREV),
    )


def test_the_source_defaults_retention_at_least_the_previous_version_from_20_percent() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION})
    assert p.retention is not None
    assert (p.retention.compare, p.retention.max_drop, p.retention.from_fraction) == (
        "points",
        0.0,
        0.2,
    )
    assert p.retention.halt is False
    b = policy(business={"provider": "datadog", "query": REVENUE}).business
    assert b is not None and (b.compare, b.from_fraction) == ("percent", 0.5)


def test_a_misspelt_variable_is_refused_when_the_policy_loads() -> None:
    with pytest.raises(ValidationError, match="undefined variable `versoin`"):
        policy(retention={"provider": "prometheus", "query": "x{v='{{ versoin }}'}"})


def test_equal_or_better_retention_passes_with_its_figures() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION})
    provider = Answers({retention_query("1052"): 41.0, retention_query("1051"): 40.5})
    (r,) = read(p, provider)
    assert r.status == "passed" and not r.holds
    assert (r.new, r.previous, r.drop) == (41.0, 40.5, -0.5)
    assert r.queries == {"new": retention_query("1052"), "previous": retention_query("1051")}
    assert "41 for 1052 vs 40.5 for 1051 over 48 h" in r.detail
    # Both versions over the same window: the stage so far.
    assert {(a[1], a[2]) for a in provider.asked} == {(0.0, 48 * HOUR)}


def test_a_drop_past_the_tolerance_holds_but_does_not_halt() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION, "max_drop": 1.0})
    within = Answers({retention_query("1052"): 39.6, retention_query("1051"): 40.5})
    assert read(p, within)[0].status == "passed"
    past = Answers({retention_query("1052"): 39.0, retention_query("1051"): 40.5})
    (r,) = read(p, past)
    assert r.status == "failed" and r.holds and not r.halts
    assert r.drop == pytest.approx(1.5)
    assert "drop 1.5 points; hold past 1 points" in r.detail


def test_halt_true_halts_on_a_drop() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION, "halt": True})
    (r,) = read(p, Answers({retention_query("1052"): 30.0, retention_query("1051"): 40.0}))
    assert r.halts


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        (NoDataError("Prometheus returned no series"), "no data for the new version (1052)"),
        (MetricsError("Prometheus did not answer after 3 attempt(s)"), "the query failed"),
    ],
)
def test_a_query_fault_is_not_measured_and_holds_never_passes(fault: Exception, why: str) -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION, "halt": True})
    (r,) = read(p, Answers({retention_query("1052"): fault, retention_query("1051"): 40.0}))
    assert r.status == "not measured" and r.holds
    assert not r.halts  # a fault is never evidence against the version
    assert why in r.detail
    assert r.new is None and r.previous is None


def test_no_provider_for_the_criterion_is_not_measured() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION})
    (r,) = read(p, None)
    assert r.status == "not measured"
    assert "no `prometheus` metrics provider" in r.detail


def test_before_its_stage_the_criterion_is_not_queried() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION})
    provider = Answers({})
    (r,) = read(p, provider, fraction=0.05)
    assert r.status == "not checked" and not r.holds
    assert "from the 20% stage" in r.detail
    assert provider.asked == []


def test_the_first_hour_of_a_stage_waits() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION})
    (r,) = read(p, Answers({}), start=0.0, end=HOUR / 2)
    assert r.status == "waiting" and r.holds


def test_no_previous_version_is_not_checked() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION})
    (r,) = read(p, Answers({}), previous=None)
    assert r.status == "not checked" and not r.holds


def test_percent_and_lower_is_better() -> None:
    revenue = {
        "provider": "prometheus",
        "query": 'sum(rev{v="{{ version }}"})',
        "max_drop": 5,
        "from_fraction": 0.2,
    }
    p = policy(business=revenue)
    (r,) = read(p, Answers({'sum(rev{v="1.5.2"})': 9.0, 'sum(rev{v="1.5.1"})': 10.0}))
    assert r.status == "failed" and r.drop == pytest.approx(10.0)
    churn = policy(business={**revenue, "higher_is_better": False, "compare": "points"})
    (r,) = read(churn, Answers({'sum(rev{v="1.5.2"})': 9.0, 'sum(rev{v="1.5.1"})': 10.0}))
    assert r.status == "passed" and r.drop == pytest.approx(-1.0)
    (r,) = read(p, Answers({'sum(rev{v="1.5.2"})': -1.0, 'sum(rev{v="1.5.1"})': 0.0}))
    assert r.status == "failed" and r.drop == math.inf
    assert r.to_dict()["drop"] is None  # JSON has no infinity


def test_a_version_the_store_does_not_name_is_not_measured() -> None:
    p = policy(business={"provider": "prometheus", "query": 'sum(rev{v="{{ version }}"})'})
    answers = Answers({'sum(rev{v="1.5.2"})': 9.0})
    (r,) = read(p, answers, fraction=0.5, previous=VersionRef("1051"))
    assert r.status == "not measured"
    assert "the store does not name 1051: use `version_code`" in r.detail


def _judgement(verdict: Verdict) -> Judgement:
    return Judgement(verdict, "No regression shown.", "crash", [Check("crash", "passed", "")], {})


def test_readings_turn_ok_into_hold_and_leave_a_vitals_halt_alone() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION, "halt": True})
    failing = read(p, Answers({retention_query("1052"): 30.0, retention_query("1051"): 40.0}))
    unmeasured = read(p, Answers({}))
    held = _with_metrics(_judgement(Verdict.OK), unmeasured)
    assert held.verdict is Verdict.HOLD and held.check == "retention"
    assert held.reason.startswith("Held: retention not measured: no data")
    assert held.evidence["metrics"][0]["status"] == "not measured"
    assert [c.name for c in held.checks] == ["crash", "retention"]
    assert _with_metrics(_judgement(Verdict.OK), failing).verdict is Verdict.HALT
    vitals = _with_metrics(Judgement(Verdict.HALT, "Crashes.", "crash ratio", [], {}), unmeasured)
    assert vitals.verdict is Verdict.HALT and vitals.reason == "Crashes."


def _gate(p: MobilePolicy, provider: MetricsProvider) -> tuple[MobileWorld, MobileGate]:
    _, scenario = load_mobile_scenario("healthy")
    world = MobileWorld(scenario, 3)
    gate = MobileGate(
        SimulatedStore(world),
        SimulatedVitals(world),
        SimulatedReviews(world),
        p,
        MemoryStateStore(),
        metrics=VersionMetrics(p, {"prometheus": provider}),
    )
    return world, gate


def test_the_gate_holds_the_20_percent_stage_on_a_retention_drop_and_shows_it() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION})
    provider = Answers({retention_query("1052"): 38.0, retention_query("1051"): 40.0})
    world, gate = _gate(p, provider)
    gate.advance(world.now)
    actions = []
    for _ in range(24 * 8):
        world.step()
        actions.append(gate.advance(world.now))
    state = gate.state
    assert state is not None
    assert state.decision == "running"  # held, never halted
    assert [s["fraction"] for s in state.stages] == [0.01, 0.05]
    last = actions[-1]
    assert last.action == "held" and "retention failed" in last.reason
    assert state.last_look is not None
    assert state.last_look["metrics"][0]["new"] == 38.0
    # The 1 % and 5 % stages did not ask.
    assert all(start >= state.stage_started_at for _, start, _, _ in provider.asked)
    md = summary_markdown(MobileReport(state, "held"), title="Rollout")
    assert "Retention and business metrics" in md
    assert "| retention | current (last look) | failed | 38 | 40 | 2 | 0 |" in md


def test_the_gate_advances_when_retention_holds_up_and_keeps_the_figures() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION})
    provider = Answers({retention_query("1052"): 40.0, retention_query("1051"): 40.0})
    world, gate = _gate(p, provider)
    gate.advance(world.now)
    for _ in range(24 * 8):
        world.step()
        gate.advance(world.now)
    state = gate.state
    assert state is not None and state.decision == "completed"
    twenty = next(s for s in state.stages if s["fraction"] == 0.2)
    assert twenty["evidence"]["metrics"][0]["status"] == "passed"
    assert any(c["name"] == "retention" for c in twenty["evidence"]["checks"])
    md = summary_markdown(MobileReport(state, "completed"), title="Rollout")
    assert "| retention | 20% | passed | 40 | 40 | 0 | 0 |" in md


def test_a_rehearsal_does_not_simulate_the_metrics_and_is_not_held_by_them() -> None:
    p = policy(retention={"provider": "prometheus", "query": RETENTION})
    _, scenario = load_mobile_scenario("healthy")
    run = simulate(scenario, p, seed=1)
    assert run.decision == "completed"
    (r,) = NotSimulated(p).readings(
        fraction=0.2, start=0, end=HOUR, platform="android", new=NEW, previous=PREV
    )
    assert r.status == "not checked" and "rehearsal" in r.detail


def _session(env: dict[str, str]):  # type: ignore[no-untyped-def]
    import io

    from release_actions.app.session import Session
    from release_actions.gha import Runtime

    out = io.StringIO()
    return Session(Runtime(env={"GITHUB_ACTIONS": "true", **env}, out=out, err=io.StringIO())), out


def test_the_gate_gets_the_policy_providers_or_says_why_not() -> None:
    from release_actions.app.mobile_metrics import version_metrics
    from release_actions.core.policy import default_policy

    base = default_policy()
    mobile = policy(
        retention={"provider": "prometheus", "query": RETENTION},
        business={"provider": "datadog", "query": REVENUE},
    )
    p = base.model_copy(update={"mobile": mobile})
    session, out = _session({"PROMETHEUS_URL": "http://prometheus.test:9090"})
    metrics = version_metrics(session, p)
    assert set(metrics.providers) == {"prometheus"}
    assert metrics.providers["prometheus"].address() == "http://prometheus.test:9090"
    assert "DD_API_KEY" in metrics.unavailable["datadog"]
    assert "::warning" in out.getvalue() and "hold their stages" in out.getvalue()
    (_, business) = metrics.readings(
        fraction=0.5, start=0, end=2 * HOUR, platform="android", new=NEW, previous=PREV
    )
    assert business.status == "not measured"
    assert business.detail.startswith("the `datadog` provider cannot be used")
