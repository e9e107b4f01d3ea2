"""`--json`: one JSON object on standard output, on success and on failure, and one exit-code
convention for every command (docs/cli-conventions.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from release_actions.cli import EXIT_ERROR, EXIT_INTERNAL, cli, error_code, exit_code_of
from release_actions.errors import (
    IntegrationError,
    MetricsError,
    PolicyError,
    ReleaseActionsError,
    TargetError,
)
from tests.conftest import RunCli

ROOT = Path(__file__).resolve().parents[3]
CHANGELOG = ROOT / "examples" / "webapp" / "CHANGELOG.md"
MISSING = "missing/release-policy.yml"


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A command that gets past its failure must not touch this checkout.
    monkeypatch.chdir(tmp_path)


def _commands() -> Iterator[tuple[str, click.Command]]:
    """Every command of the tree, groups that run on their own included."""

    def walk(command: click.Command, path: list[str]) -> Iterator[tuple[str, click.Command]]:
        if path:
            yield " ".join(path), command
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, [*path, name])

    yield from walk(cli, [])


JSON_COMMANDS = sorted(
    path for path, c in _commands() if any(p.name == "as_json" for p in c.params)
)

# A real failure of each command (not a usage error), its error code, and the exit code 2.
FAILURES: dict[str, tuple[list[str], str]] = {
    "abort": (["--reason", "r", "--policy", MISSING], "policy"),
    "branch check": (["main", "--policy", MISSING], "policy"),
    "calendar check": (["--policy", MISSING], "policy"),
    "canary analyze": (["--policy", MISSING], "policy"),
    "canary run": (["--version", "v1.2.3", "--policy", MISSING], "policy"),
    "changelog check": (["v1.0.0", "--file", MISSING], "changelog"),
    "control": (["--action", "status", "--policy", MISSING], "policy"),
    "changelog extract": (["v1.0.0", "--file", MISSING], "changelog"),
    "changelog lint": (["--file", MISSING], "changelog"),
    "changelog release": (["v1.0.0", "--file", MISSING], "changelog"),
    "db deploy": (["--dir", "."], "migration"),
    "db lint": (["--dir", MISSING], "migration"),
    "db resolve": (["x", "--applied"], "migration"),
    "db rollback": (["--to", "x"], "migration"),
    "db status": (["--dir", "."], "migration"),
    "db verify": (["--dir", "."], "migration"),
    "environments apply": (["--file", MISSING], "environments_file"),
    "environments plan": (["--file", MISSING], "environments_file"),
    "environments validate": (["--file", MISSING], "environments_file"),
    "flags advance": (["new-booking-flow", "--to", "ga", "--policy", MISSING], "policy"),
    "flags export": (["--policy", MISSING], "policy"),
    "flags stage": (["new-booking-flow", "--policy", MISSING], "policy"),
    "flags rollout": (["new-booking-flow", "--policy", MISSING], "policy"),
    "hotfix cherry-pick": (["--source-branch", "hotfix/X-1-y", "--policy", MISSING], "policy"),
    "metrics dora": (["--input", MISSING], "release_metrics"),
    "metrics review": (["--input", MISSING], "release_metrics"),
    "mobile notes": (
        ["--version", "1.0.0", "--changelog", MISSING, "--store", "play"],
        "changelog",
    ),
    **{
        f"mobile play {name}": (
            ["--package", "com.example.app", "--version-code", "7", "--policy", MISSING]
            + (["--reason", "r"] if name in ("halt", "resume", "complete") else []),
            "policy",
        )
        for name in ("status", "start", "advance", "halt", "resume", "complete")
    },
    **{
        f"mobile appstore {name}": (
            ["--app-id", "1", "--version", "1.0.0", "--policy", MISSING]
            + (["--reason", "r"] if name in ("pause", "resume", "complete") else []),
            "policy",
        )
        for name in ("status", "advance", "pause", "resume", "complete")
    },
    "mobile appstore notes": (
        ["--app-id", "1", "--version", "1.0.0", "--changelog", MISSING],
        "changelog",
    ),
    "mobile rollout": (
        [
            *("--command", "advance", "--platform", "android"),
            *("--package", "com.example.app", "--version-code", "7", "--policy", MISSING),
        ],
        "policy",
    ),
    "mobile version-check": (
        ["--config", MISSING, "--version", "1.0.0", "--platform", "ios"],
        "version_config",
    ),
    "mobile version-config bump": ([MISSING, "--recommended", "1.0.0"], "version_config"),
    "mobile version-config publish": (
        ["--config", MISSING, "--to", "firebase", "--firebase-project", "p"],
        "version_config",
    ),
    "mobile version-config propose": (["--config", "c.json", "--platform", "android"], "usage"),
    "mobile version-config validate": ([MISSING], "version_config"),
    "monitor": (["--policy", MISSING], "policy"),
    "notify": (["--event", "released"], "bad_parameter"),
    "policy get": (["no.such.key"], "policy"),
    "policy show": (["--policy", MISSING], "policy"),
    "policy validate": ([MISSING], "policy"),
    "promote": (["--reason", "r", "--policy", MISSING], "policy"),
    "readiness": (["--tag", "v1.2.3", "--policy", MISSING], "policy"),
    "rehearse": (["--policy", MISSING], "policy"),
    "release floating-tag": (["--tag", "v1.2.3"], "error"),
    "release pin-actions": (["--sha", "0" * 40, "--dir", MISSING], "bad_parameter"),
    "release publish": (["--tag", "v1.2.3", "--changelog", MISSING], "changelog"),
    "rollback": (["--policy", MISSING], "policy"),
    "flags audit": (["--input", MISSING], "flag_audit"),
    "train cut": (["--now", "2026-01-14T10:05:00"], "train"),
    "train due": (["--now", "2026-01-14T10:05:00"], "train"),
    "train schedule": (["--policy", MISSING], "policy"),
    "train ship": (["--now", "2026-01-14T10:05:00"], "train"),
    "train stage": (["--now", "2026-01-14T10:05:00"], "train"),
    "train freeze-check": (["--base", "release/v1.4.0", "--now", "2026-01-14"], "train"),
    "train plan": (["--policy", MISSING], "policy"),
    "rollback records": (["--policy", MISSING], "policy"),
    "rollback records annotate": (["RB-2026-001"], "error"),
    "rollback records sync": ([MISSING], "bad_parameter"),
    "status": (["--policy", MISSING], "policy"),
    "statuspage incident open": (
        ["--service", "triptrip-api", "--version", "v1.5.2", "--policy", MISSING],
        "policy",
    ),
    "statuspage incident update": (
        ["--incident-id", "x", "--status", "identified", "--body", "b", "--policy", MISSING],
        "policy",
    ),
    # The source names no page: `page_id` is null in the default policy.
    "statuspage incident resolve": (["--incident-id", "x"], "error"),
    "statuspage maintenance schedule": (["--policy", MISSING], "policy"),
    "statuspage maintenance start": (["--policy", MISSING], "policy"),
    "statuspage maintenance complete": (["--incident-id", "x", "--policy", MISSING], "policy"),
    "validate": (["--policy", MISSING], "policy"),
    "version bump": (["nope", "major"], "invalid_version"),
    "version compare": (["x", "1.0.0"], "invalid_version"),
    "version validate": ([], "missing_parameter"),
}


def _envelope(stdout: str) -> dict[str, Any]:
    data = json.loads(stdout)
    assert isinstance(data, dict)
    return data


def _check_failure(r: Any, command: str, code: str) -> dict[str, Any]:
    assert r.code == EXIT_ERROR, r.stdout + r.stderr
    data = _envelope(r.stdout)
    assert data["ok"] is False and data["exit_code"] == r.code, data
    assert data["command"] == command, data
    error = data["error"]
    assert error["code"] == code, error
    assert set(error) >= {"code", "type", "message", "field", "file", "line", "hint"}
    assert error["message"]
    return data


def test_every_command_with_json_has_a_failure_case() -> None:
    missing = sorted(set(JSON_COMMANDS) - set(FAILURES))
    assert not missing, f"add a failure case to FAILURES for: {', '.join(missing)}"
    assert len(JSON_COMMANDS) >= 30


@pytest.mark.parametrize("command", JSON_COMMANDS)
def test_a_failure_prints_the_envelope(run_cli: RunCli, command: str) -> None:
    args, code = FAILURES.get(command, (["--policy", MISSING], "policy"))
    r = run_cli(*command.split(), *args, "--json", actions=False)
    _check_failure(r, command, code)


@pytest.mark.parametrize("command", JSON_COMMANDS)
def test_a_usage_error_prints_the_envelope(run_cli: RunCli, command: str) -> None:
    r = run_cli(*command.split(), "--json", "--no-such-option", actions=False)
    data = _check_failure(r, command, "no_such_option")
    assert data["error"]["field"] == "--no-such-option"
    assert f"{command} --help" in data["error"]["hint"]


def test_a_policy_error_names_file_line_and_field(run_cli: RunCli, tmp_path: Path) -> None:
    policy = tmp_path / "release-policy.yml"
    policy.write_text("canary:\n  stpes: argo\n", encoding="utf-8")
    r = run_cli("calendar", "check", "--policy", str(policy), "--json", actions=False)
    error = _check_failure(r, "calendar check", "policy")["error"]
    assert (error["file"], error["line"], error["field"]) == (str(policy), 2, "canary.stpes")
    assert error["issues"][0]["message"].startswith("unknown key")
    assert "did you mean 'steps'?" in error["issues"][0]["message"]


def test_an_unknown_command_says_the_nearest_one(run_cli: RunCli) -> None:
    r = run_cli("canray", "--json", actions=False)
    data = _check_failure(r, "", "no_such_command")
    assert "Did you mean 'canary'?" in data["error"]["message"]
    r = run_cli("canary", "analyse", actions=False)
    assert r.code == EXIT_ERROR and "Did you mean 'analyze'?" in r.stderr


# Success and "the check said no" print the command's result with `ok` in it.
SUCCESSES: list[tuple[list[str], int, dict[str, Any]]] = [
    (["version", "validate", "v1.2.3"], 0, {"version": "1.2.3"}),
    (["version", "validate", "v1"], 1, {"valid": False}),
    (["version", "compare", "1.0.0", "1.1.0"], 0, {"result": -1}),
    (["version", "bump", "1.2.3", "minor", "--prefix", "v"], 0, {"tag": "v1.3.0"}),
    (["changelog", "lint", "--file", str(CHANGELOG)], 0, {"errors": 0}),
    (["changelog", "check", "1.6.0", "--file", str(CHANGELOG)], 0, {"released": True}),
    (["changelog", "check", "9.9.9", "--file", str(CHANGELOG)], 1, {"released": False}),
    (["changelog", "extract", "1.6.0", "--file", str(CHANGELOG)], 0, {"date": "2026-11-24"}),
    (["branch", "check", "main"], 0, {"ok": True}),
    (["branch", "check", "feature/x", "--expect", "hotfix"], 1, {"ok": False}),
    (["calendar", "check", "--at", "2026-12-01T10:30:00+09:00"], 0, {"decision": "allowed"}),
    (["calendar", "check", "--at", "2026-12-29T10:30:00+09:00"], 1, {"decision": "blocked"}),
    (["policy", "get", "deploy.target"], 0, {"value": "simulated"}),
    (["policy", "validate", str(ROOT / "examples" / "release-policy.yml")], 0, {"valid": True}),
    (["environments", "validate", "--file", str(ROOT / "examples" / "environments.yml")], 0, {}),
    (["rehearse", "--scenario", "healthy"], 0, {"decision": "promoted"}),
    (["rehearse", "--scenario", "error-spike", "--no-monitor"], 1, {"decision": "rolled_back"}),
]


@pytest.mark.parametrize(("args", "code", "expected"), SUCCESSES, ids=lambda v: str(v))
def test_a_result_has_ok_and_the_exit_code_agrees(
    run_cli: RunCli, args: list[str], code: int, expected: dict[str, Any]
) -> None:
    r = run_cli(*args, "--json", actions=False)
    assert r.code == code, r.stdout + r.stderr
    data = _envelope(r.stdout)
    assert data["ok"] is (code == 0)
    assert "error" not in data and "exit_code" not in data
    assert expected.items() <= data.items(), data


def test_a_document_prints_as_it_is(run_cli: RunCli) -> None:
    r = run_cli("policy", "show", "--json", actions=False)
    assert r.code == 0
    assert "ok" not in json.loads(r.stdout)  # the policy itself, which can be saved as one


def test_a_json_command_with_nothing_to_report_still_prints_one_object(run_cli: RunCli) -> None:
    r = run_cli("--dry-run", "changelog", "release", "9.0.0", "--file", str(CHANGELOG), "--json")
    assert r.code == 0, r.stderr
    assert _envelope(r.stdout)["written"] is False


@pytest.mark.parametrize(
    ("exc", "exit_code", "code"),
    [
        (PolicyError("x"), EXIT_ERROR, "policy"),
        (IntegrationError("x"), EXIT_ERROR, "integration"),
        (MetricsError("x"), EXIT_ERROR, "metrics"),
        (TargetError("x"), EXIT_ERROR, "target"),
        (ReleaseActionsError("x"), EXIT_ERROR, "error"),
        (click.UsageError("x"), EXIT_ERROR, "usage"),
        (click.FileError("f"), EXIT_ERROR, "file"),  # click says 1; 1 is a check that said no
        (click.exceptions.Abort(), 130, "interrupted"),
        (KeyError("x"), EXIT_INTERNAL, "internal"),
    ],
)
def test_the_one_mapping_of_errors_to_exit_codes(
    exc: BaseException, exit_code: int, code: str
) -> None:
    assert exit_code_of(exc) == exit_code
    assert error_code(exc) == code


def test_an_unexpected_error_is_the_envelope_with_exit_3(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import release_actions.core.versions as versions

    def boom(*_: object, **__: object) -> None:
        raise KeyError("x")

    monkeypatch.setattr(versions.Version, "parse", boom)
    r = run_cli("version", "validate", "v1.0.0", "--json", actions=False)
    assert r.code == EXIT_INTERNAL
    data = _envelope(r.stdout)
    assert data["error"]["code"] == "internal" and data["exit_code"] == EXIT_INTERNAL


def test_a_stream_of_json_lines_gets_nothing_added() -> None:
    import io

    from release_actions.app.session import Session
    from release_actions.gha import Runtime

    out = io.StringIO()
    state = Session(Runtime(env={}, out=out, err=io.StringIO()))
    state.stream_json({"phase": "running"})
    state.stream_json({"phase": "promoted"})
    state.finish_json(0)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"phase": "running"},
        {"phase": "promoted"},
    ]
