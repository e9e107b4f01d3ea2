"""`release-actions action run NAME`: an action's inputs as one CLI call, with its exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunCli


def _changelog(tmp_path: Path) -> Path:
    path = tmp_path / "CHANGELOG.md"
    path.write_text("# Changelog\n\n## [1.2.3] - 2026-12-01\n\n### Fixed\n\n- A bug.\n")
    return path


def test_a_failed_gate_fails_the_step(run_cli: RunCli, tmp_path: Path) -> None:
    """validate has no `fail-on-rollback`: its exit 1 is never swallowed."""
    env = {
        "INPUT_TAG": "v1.2.3",
        "INPUT_CHANGELOG": str(_changelog(tmp_path)),
        "INPUT_RELEASE_TYPE": "regular",
        "INPUT_AT": "2026-12-29T10:00:00+09:00",  # New Year holidays: blocked
        "INPUT_SKIP": "branch",
    }
    r = run_cli("action", "run", "validate", env=env)
    assert r.code == 1, r.stdout + r.stderr
    assert r.outputs["decision"] == "blocked"
    allowed = run_cli(
        "action", "run", "validate", env={**env, "INPUT_AT": "2026-12-08T10:00+09:00"}
    )
    assert allowed.code == 0, allowed.stdout + allowed.stderr
    assert allowed.outputs["version"] == "1.2.3"


@pytest.mark.parametrize(("fail", "code"), [("true", 1), ("false", 0), ("", 1)])
def test_fail_on_rollback_decides_whether_a_rollback_fails_the_step(
    run_cli: RunCli, fail: str, code: int
) -> None:
    env = {
        "INPUT_TARGET": "simulated",
        "INPUT_PROVIDER": "simulated",
        "INPUT_VERSION": "v2.0.0",
        "INPUT_SCENARIO": "error-spike",
        "INPUT_FAIL_ON_ROLLBACK": fail,
    }
    r = run_cli("action", "run", "canary", env=env)
    assert r.code == code, r.stdout + r.stderr
    assert r.outputs["decision"] == "rolled_back"


def test_a_bad_boolean_input_names_the_input(run_cli: RunCli) -> None:
    r = run_cli("action", "run", "rollback", env={"INPUT_FLAGS_ONLY": "yes"})
    assert r.code == 2
    assert "Input `flags-only` of `rollback` must be `true` or `false`, got `yes`" in r.stdout


def test_the_statuspage_command_input_picks_the_subcommand_and_its_inputs() -> None:
    from release_actions.cli.action import arguments, extras

    env = {
        "INPUT_COMMAND": "maintenance-start",
        "INPUT_END": "30m",
        "INPUT_COMPONENTS": "TripTrip API\n\nTripTrip Web\n",
        "INPUT_OUTCOME": "failure",  # not an input of `maintenance start`
        "INPUT_DRY_RUN": "true",
        "INPUT_AUTO": "false",
    }
    assert arguments("statuspage", env) == [
        *("statuspage", "maintenance", "start", "--end", "30m"),
        *("--component", "TripTrip API", "--component", "TripTrip Web", "--dry-run"),
    ]
    complete = {
        "INPUT_COMMAND": "maintenance-complete",
        "INPUT_INCIDENT_ID": "p3x",
        "INPUT_OUTCOME": "failure",
        "INPUT_DRY_RUN": "false",
    }
    assert arguments("statuspage", complete) == [
        *("statuspage", "maintenance", "complete", "--incident-id", "p3x", "--outcome", "failure"),
    ]
    # requests is a core dependency: no extra to install.
    assert extras("statuspage", env) == [] and extras("statuspage", complete) == []
