"""A typo in a policy key or value is named with its file and line, and the nearest valid one."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_actions.core.policy import Policy, default_policy, load_policy
from release_actions.core.yamlpos import did_you_mean, keys_at
from release_actions.errors import PolicyError

# (policy file, line, dotted key, what the message says)
TYPOS: list[tuple[str, int, str, str]] = [
    ("canary:\n  stpes: argo\n", 2, "canary.stpes", "unknown key: did you mean 'steps'?"),
    ("calender:\n  timezone: UTC\n", 1, "calender", "unknown key: did you mean 'calendar'?"),
    (
        "canary:\n  analysis:\n    min_requets: 3\n",
        3,
        "canary.analysis.min_requets",
        "did you mean 'min_requests'?",
    ),
    (
        "monitor:\n  triggers:\n    error_rate_percnt:\n      threshold: 1\n",
        3,
        "monitor.triggers.error_rate_percnt",
        "did you mean 'error_rate_percent'?",
    ),
    (
        "release_types:\n  hotfix:\n    monitr_seconds: 60\n",
        3,
        "release_types.hotfix.monitr_seconds",
        "did you mean 'monitor_seconds'?",
    ),
    (
        "release_types:\n  canary-only:\n    aproval: manual\n",
        3,
        "release_types.canary-only.aproval",
        "did you mean 'approval'?",
    ),
    (
        "canary:\n  steps:\n    - wieght: 100\n",
        3,
        "canary.steps.0.wieght",
        "did you mean 'weight'?",
    ),
    (
        "calendar:\n  maintenance_windows:\n    - day: sunday\n      start: '01:00'\n"
        "      end: '02:00'\n      purpos: x\n",
        6,
        "calendar.maintenance_windows.0.purpos",
        "did you mean 'purpose'?",
    ),
    (
        "deploy:\n  kubernetes:\n    istio:\n      virtual_servce: api\n",
        4,
        "deploy.kubernetes.istio.virtual_servce",
        "did you mean 'virtual_service'?",
    ),
    (
        "deploy:\n  environments:\n    staging:\n      kubernetes:\n        contxt: staging\n",
        5,
        "deploy.environments.staging.kubernetes.contxt",
        "did you mean 'context'?",
    ),
    (
        "metrics:\n  prometheus:\n    service_lable: app\n",
        3,
        "metrics.prometheus.service_lable",
        "did you mean 'service_label'?",
    ),
    # Values from a fixed set.
    (
        "canary:\n  analysis:\n    judge: treshold\n",
        3,
        "canary.analysis.judge",
        "did you mean 'threshold'?",
    ),
    ("canary:\n  steps: agro\n", 2, "canary.steps", "did you mean 'argo'?"),
    ("deploy:\n  target: kubernets\n", 2, "deploy.target", "did you mean 'kubernetes'?"),
    ("metrics:\n  provider: prometeus\n", 2, "metrics.provider", "did you mean 'prometheus'?"),
    (
        "canary:\n  analysis:\n    on_error: rolback\n",
        3,
        "canary.analysis.on_error",
        "did you mean 'rollback'?",
    ),
    (
        "release_types:\n  hotfix:\n    blocked_periods: blok\n",
        3,
        "release_types.hotfix.blocked_periods",
        "did you mean 'block'?",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "says"), TYPOS, ids=[t[2] for t in TYPOS])
def test_a_typo_is_named_with_the_nearest_valid_one(
    tmp_path: Path, text: str, line: int, key: str, says: str
) -> None:
    path = tmp_path / "release-policy.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    issue = next(i for i in exc.value.issues if i.key == key)
    assert (issue.path, issue.line) == (str(path), line)
    assert says in issue.message, issue.message


def test_a_key_near_nothing_lists_the_keys_of_its_level(tmp_path: Path) -> None:
    path = tmp_path / "release-policy.yml"
    path.write_text("tag:\n  zzz: 1\n", encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    (issue,) = exc.value.issues
    assert "did you mean" not in issue.message
    assert "`allow_build_metadata`, `prefix`" in issue.message


def test_an_unknown_release_type_says_the_nearest() -> None:
    with pytest.raises(PolicyError, match="did you mean 'hotfix'"):
        default_policy().release_type("hotfx")


def test_keys_at_follows_models_lists_and_dicts() -> None:
    assert "steps" in keys_at(Policy, ("canary",))
    assert "weight" in keys_at(Policy, ("canary", "steps", 0))
    assert "approval" in keys_at(Policy, ("release_types", "anything"))
    assert "virtual_service" in keys_at(Policy, ("deploy", "kubernetes", "istio"))
    assert keys_at(Policy, ("no", "such")) == []


def test_did_you_mean_says_nothing_for_a_word_near_nothing() -> None:
    assert did_you_mean("stpes", ["steps", "analysis"]) == "did you mean 'steps'?"
    assert did_you_mean("zzz", ["steps", "analysis"]) == ""
