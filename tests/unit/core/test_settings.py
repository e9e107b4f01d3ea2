"""The effective settings: resolved once from policy, release type, preset and overrides."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from release_actions.cli.action import extras
from release_actions.core.policy import (
    ANALYSIS_KEYS_READ,
    default_policy,
    default_policy_data,
    load_policy,
)
from release_actions.core.settings import Overrides, resolve
from release_actions.errors import PolicyError, PolicyWarning


def test_regular_release_runs_the_argo_steps_with_the_documents_watch() -> None:
    s = resolve(default_policy())
    assert [step.weight for step in s.steps] == [5, 20, 50, 100]
    assert s.environment == "production"
    assert s.canary == "required"
    assert (s.monitor.duration_seconds, s.monitor.interval_seconds) == (300, 10)
    assert s.monitor.triggers.error_rate_percent.threshold == 5.0
    assert s.cadence_seconds == 10


def test_a_hotfix_watches_30_minutes_at_half_a_percent() -> None:
    s = resolve(default_policy(), Overrides(release_type="hotfix"))
    assert s.environment == "production-hotfix"
    assert s.monitor.duration_seconds == 1800
    assert s.monitor.triggers.error_rate_percent.threshold == 0.5
    assert s.monitor.triggers.error_rate_percent.window_seconds == 120
    # `policy` reads an optional canary as "run it"; `auto` skips it (source §7.1).
    assert [step.weight for step in s.steps] == [5, 20, 50, 100]
    auto = resolve(default_policy(), Overrides(release_type="hotfix", canary="auto"))
    assert [(step.weight, step.analysis) for step in auto.steps] == [(100, False)]


def test_a_high_traffic_period_makes_the_canary_required() -> None:
    s = resolve(default_policy(), Overrides(release_type="hotfix", canary="auto", staged=True))
    assert s.canary == "required"
    assert [step.weight for step in s.steps] == [5, 20, 50, 100]
    with pytest.raises(PolicyError, match="requires a canary in a high-traffic period"):
        resolve(default_policy(), Overrides(release_type="hotfix", steps="direct", staged=True))


def test_direct_steps_are_refused_where_the_type_requires_a_canary() -> None:
    with pytest.raises(PolicyError, match="`regular` requires a canary"):
        resolve(default_policy(), Overrides(release_type="regular", steps="direct"))
    assert resolve(default_policy(), Overrides(steps="workflow")).steps[0].weight == 10


def test_a_type_that_skips_the_canary_goes_direct_unless_always() -> None:
    data = default_policy_data()
    data["release_types"]["config"]["canary"] = "skip"
    from release_actions.core.policy import Policy

    policy = Policy.model_validate(data)
    assert [s.weight for s in resolve(policy, Overrides(release_type="config")).steps] == [100]
    forced = resolve(policy, Overrides(release_type="config", canary="always"))
    assert [s.weight for s in forced.steps] == [5, 20, 50, 100]


def test_explicit_overrides_win() -> None:
    s = resolve(
        default_policy(),
        Overrides(
            release_type="hotfix",
            monitor_seconds=60,
            monitor_interval_seconds=5,
            error_rate_threshold_percent=2.0,
            judge="threshold",
            environment="prod-eu",
        ),
    )
    assert (s.monitor.duration_seconds, s.monitor.interval_seconds) == (60, 5)
    assert s.monitor.triggers.error_rate_percent.threshold == 2.0
    assert (s.judge, s.analysis.judge, s.cadence_seconds) == ("threshold", "threshold", 60)
    assert s.environment == "prod-eu"


@pytest.mark.parametrize(("cadence", "looks"), [(10, 24), (60, 4), (30, 8), (1, 240), (600, 4)])
def test_the_error_limit_is_four_minutes_at_any_cadence(cadence: int, looks: int) -> None:
    s = resolve(default_policy())
    assert s.error_limit_seconds == 240
    assert s.error_limit(cadence) == looks


def _policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "release-policy.yml"
    path.write_text(text)
    return path


def test_extras_follow_the_policy_when_the_input_is_empty(tmp_path: Path) -> None:
    path = _policy_file(
        tmp_path,
        "deploy:\n  target: kubernetes\nmetrics:\n  provider: datadog\n"
        "calendar:\n  holidays:\n    country: JP\n",
    )
    env = {"INPUT_POLICY": str(path)}
    for action in ("canary", "monitor", "rollback"):
        assert extras(action, env) == ["datadog", "github", "kubernetes", "slack"], action
    assert extras("validate", env) == ["holidays"]
    # An input names the same thing the policy would: the same install.
    assert extras("canary", {**env, "INPUT_PROVIDER": "datadog"}) == extras("canary", env)
    assert extras(
        "canary", {**env, "INPUT_TARGET": "cloudrun", "INPUT_PROVIDER": "prometheus"}
    ) == [
        "cloudrun",
        "github",
        "slack",
    ]
    assert "db" in extras("rollback", {**env, "INPUT_APPLIED_MIGRATIONS": "a,b"})
    assert extras("validate", {}) == []


def test_a_key_of_the_unused_judge_warns_with_file_and_line(tmp_path: Path) -> None:
    path = _policy_file(
        tmp_path,
        "canary:\n  analysis:\n    min_requests: 50\n    max_error_rate_diff_points: 100\n",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_policy(path)
    issues = [w.message.issue for w in caught if isinstance(w.message, PolicyWarning)]
    assert [(i.key, i.line) for i in issues] == [("canary.analysis.max_error_rate_diff_points", 4)]
    assert "`sequential`" in issues[0].message and "`threshold` judge" in issues[0].message


def test_keys_the_judge_or_target_reads_do_not_warn(tmp_path: Path) -> None:
    threshold = _policy_file(
        tmp_path,
        "canary:\n  analysis:\n    judge: threshold\n    max_error_rate_diff_points: 1\n"
        "    pass_error_ratio: 2\n",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_policy(threshold)
    keys = [w.message.issue.key for w in caught if isinstance(w.message, PolicyWarning)]
    assert keys == ["canary.analysis.pass_error_ratio"]
    argo = _policy_file(
        tmp_path, "deploy:\n  target: argo\ncanary:\n  analysis:\n    min_success_rate: 0.98\n"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_policy(argo)
    assert not [w for w in caught if isinstance(w.message, PolicyWarning)]


def test_every_analysis_key_has_a_reader() -> None:
    from release_actions.core.policy import ANALYSIS_KEYS_COMMON, AnalysisPolicy

    read = set(ANALYSIS_KEYS_COMMON).union(*ANALYSIS_KEYS_READ.values())
    assert read == set(AnalysisPolicy.model_fields)


def test_each_stage_deploys_to_its_own_target(tmp_path: Path) -> None:
    path = _policy_file(
        tmp_path,
        "deploy:\n  target: kubernetes\n  kubernetes:\n    context: prod\n    namespace: app\n"
        "  environments:\n    staging:\n      kubernetes:\n        context: stg\n",
    )
    policy = load_policy(path)
    production = resolve(policy)
    staging = resolve(policy, Overrides(stage="staging"))
    assert production.policy.deploy.kubernetes.context == "prod"
    assert staging.policy.deploy.kubernetes.context == "stg"
    assert staging.policy.deploy.kubernetes.namespace == "app", "merged over `deploy`"
    assert [s.weight for s in staging.steps] == [100] and staging.environment == "staging"
    assert staging.skipped is None


def test_a_real_target_with_no_staging_entry_never_deploys_staging_to_production(
    tmp_path: Path,
) -> None:
    policy = load_policy(_policy_file(tmp_path, "deploy:\n  target: kubernetes\n"))
    staging = resolve(policy, Overrides(stage="staging"))
    assert staging.skipped is not None and "deploy.environments.staging" in staging.skipped
    # The simulator has no production to harm: a fresh simulated deploy is staging.
    assert resolve(default_policy(), Overrides(stage="staging")).skipped is None
