"""The strategy of a release, resolved once (source §4.1): where it comes from, what refuses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_actions.core.policy import default_policy, parse_policy
from release_actions.core.settings import Overrides, resolve
from release_actions.core.yamlpos import load_yaml
from release_actions.errors import PolicyError
from tests.conftest import RunCli


def policy_of(text: str):  # type: ignore[no-untyped-def]
    located = load_yaml(text, "policy.yml")
    return parse_policy(located.data, "policy.yml", located.lines)


def test_default_is_the_canary_of_the_release_workflow() -> None:
    settings = resolve(default_policy())
    assert settings.strategy == "canary"
    assert [s.op for s in settings.steps] == ["weight"] * 4


def test_a_release_type_names_its_own_strategy() -> None:
    policy = policy_of("release_types:\n  security:\n    strategy: blue-green\n")
    security = resolve(policy, Overrides(release_type="security"))
    assert security.strategy == "blue-green"
    assert "release type `security`" in security.strategy_source
    assert [(s.op, s.weight) for s in security.steps] == [("preview", 0), ("switch", 100)]
    # The other types keep the service's strategy.
    assert resolve(policy, Overrides(release_type="regular")).strategy == "canary"


def test_the_flag_wins_over_the_type_and_the_service() -> None:
    policy = policy_of(
        "deploy:\n  strategy: blue-green\nrelease_types:\n  regular:\n    strategy: shadow\n"
    )
    assert resolve(policy).strategy == "shadow"
    assert resolve(policy, Overrides(strategy="canary")).strategy == "canary"
    assert resolve(policy, Overrides(release_type="hotfix")).strategy == "blue-green"


def test_hold_defaults_to_the_watch_of_the_type() -> None:
    bg = resolve(default_policy(), Overrides(strategy="blue-green"))
    assert bg.steps[-1].pause_seconds == 300  # §6.3
    hotfix = resolve(default_policy(), Overrides(strategy="blue-green", release_type="hotfix"))
    assert hotfix.steps[-1].pause_seconds == 1800  # §7.3: a hotfix is watched 30 minutes
    policy = policy_of("deploy:\n  blue_green:\n    hold_seconds: 900\n    preview_seconds: 60\n")
    steps = resolve(policy, Overrides(strategy="blue-green")).steps
    assert (steps[0].pause_seconds, steps[1].pause_seconds) == (60, 900)


def test_shadow_step_is_the_mirror_of_the_policy() -> None:
    policy = policy_of("deploy:\n  shadow:\n    mirror_percent: 25\n    duration_seconds: 120\n")
    (step,) = resolve(policy, Overrides(strategy="shadow")).steps
    assert (step.op, step.weight, step.pause_seconds, step.analysis) == ("mirror", 25, 120, True)


def test_a_high_traffic_period_turns_a_policy_blue_green_into_a_canary() -> None:
    policy = policy_of("deploy:\n  strategy: blue-green\n")
    staged = resolve(policy, Overrides(staged=True))
    assert staged.strategy == "canary"
    assert "high-traffic period" in staged.strategy_source
    with pytest.raises(PolicyError, match="requires a staged rollout"):
        resolve(policy, Overrides(staged=True, strategy="blue-green"))


def test_rolling_is_refused_where_a_canary_is_required() -> None:
    with pytest.raises(PolicyError, match="requires a canary"):
        resolve(default_policy(), Overrides(strategy="rolling"))
    hotfix = resolve(default_policy(), Overrides(strategy="rolling", release_type="hotfix"))
    assert hotfix.strategy == "rolling"
    assert [s.weight for s in hotfix.steps] == [100]


def test_staging_is_always_rolling() -> None:
    settings = resolve(default_policy(), Overrides(strategy="blue-green", stage="staging"))
    assert settings.strategy == "rolling"


@pytest.mark.parametrize(
    ("target", "policy_text", "why"),
    [
        ("cloudrun", "", "Cloud Run has no traffic mirroring"),
        ("kubernetes", "deploy:\n  kubernetes:\n    istio: null\n", "Istio VirtualService"),
    ],
)
def test_shadow_is_refused_where_nothing_can_mirror(
    target: str, policy_text: str, why: str
) -> None:
    policy = policy_of(policy_text or "version: 1\n")
    with pytest.raises(PolicyError, match=why):
        resolve(policy, Overrides(strategy="shadow", target=target))
    # Blue-green runs on all of them.
    assert resolve(policy, Overrides(strategy="blue-green", target=target)).strategy == "blue-green"


def test_a_bad_strategy_or_smoke_check_names_the_line() -> None:
    with pytest.raises(PolicyError) as exc:
        policy_of("release_types:\n  regular:\n    strategy: blue_green\n")
    assert exc.value.issues[0].line == 3
    assert exc.value.issues[0].key == "release_types.regular.strategy"
    with pytest.raises(PolicyError) as exc:
        policy_of("deploy:\n  blue_green:\n    smoke:\n      - {name: api, path: health}\n")
    issue = exc.value.issues[0]
    assert issue.line == 4 and issue.key.startswith("deploy.blue_green.smoke.0.path")
    assert "starts with `/`" in issue.message


def test_canary_steps_cannot_smuggle_a_switch() -> None:
    with pytest.raises(PolicyError, match="move weights only"):
        policy_of("canary:\n  steps:\n    - {weight: 100, op: switch}\n")


def test_smoke_checks_merge_by_name_with_the_default() -> None:
    policy = policy_of(
        "deploy:\n  blue_green:\n    smoke:\n      - {name: api, path: /api/v1/ping, body: pong}\n"
    )
    names = [c.name for c in policy.deploy.blue_green.smoke]
    assert names == ["health", "api"]


def test_policy_validate_refuses_a_strategy_its_target_cannot_run(
    run_cli: RunCli, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "deploy:\n  target: cloudrun\nrelease_types:\n  security:\n    strategy: shadow\n"
        "  regular:\n    strategy: blue-green\n",
        encoding="utf-8",
    )
    r = run_cli("policy", "validate", str(policy), actions=False)
    assert r.code == 2
    assert f"{policy}:5: error: `release_types.security.strategy`" in r.stderr + r.stdout
    assert "Cloud Run has no traffic mirroring" in r.stderr + r.stdout
    assert "regular" not in r.stderr + r.stdout  # blue-green runs on Cloud Run
    policy.write_text("deploy:\n  target: cloudrun\n  strategy: blue-green\n", encoding="utf-8")
    assert run_cli("policy", "validate", str(policy)).code == 0
