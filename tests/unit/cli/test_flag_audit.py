"""`flags audit` from an export file: the verdicts, code references by `git grep`, the report,
exit codes and errors; no request is made with `--input`."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunCli
from tests.support.flag_audit_cli import exported, git_checkout, write_export

NOW = "2026-04-06T10:00:00+09:00"  # 2026-04-06 01:00 UTC
POLICY = """\
feature_flags:
  catalog:
    - {key: new-booking-flow, kind: release, owner: alice, experiment_ends: null}
    - {key: checkout-ui-variant, kind: experiment, owner: triptrip/checkout, experiment_ends: "2026-01-10"}
    - {key: payment-gateway-enabled, kind: ops, owner: null, experiment_ends: null}
"""
DART = """\
class Flags {
  static const String newBookingFlow = 'new-booking-flow';
}
"""
TS = """\
export const FeatureFlags = {
  NEW_BOOKING_FLOW: 'new-booking-flow',
  PAYMENT_GATEWAY_ENABLED: 'payment-gateway-enabled',
} as const;
"""


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A consumer's checkout, the current directory: Dart and TypeScript using the flags, the
    policy's catalog and a committed export naming them all (neither counts as a use)."""
    folder = git_checkout(
        tmp_path / "app",
        {
            ".github/release-policy.yml": POLICY,
            "lib/feature_flags.dart": DART,
            "src/flags.ts": TS,
            "README.md": "No flags here.\n",
        },
    )
    write_export(
        folder / "flags.json",
        [
            exported("new-booking-flow", ga_at="2026-01-06T10:00:00+09:00"),
            exported("checkout-ui-variant", kind=None),
            exported(
                "payment-gateway-enabled",
                kind="ops",
                last_reviewed_at="2025-03-01T00:00:00Z",
                code_references=["services/pay/main.go:7"],
            ),
            exported(
                "premium-features", kind="permission", last_reviewed_at="2026-01-01T00:00:00Z"
            ),
        ],
    )
    monkeypatch.chdir(folder)
    return folder


def audit(run_cli: RunCli, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_cli("flags", "audit", *args, env=env)


def test_the_audit_reports_stale_first_with_references_and_exits_1(
    run_cli: RunCli, checkout: Path
) -> None:
    result = audit(run_cli, "--input", "flags.json", "--now", NOW, "--json")
    assert result.code == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is False
    flags = data["flags"]
    assert [f["key"] for f in flags] == [
        "checkout-ui-variant",  # ended 2026-01-10 (the catalog's date, JST) + 30 days
        "new-booking-flow",  # GA 2026-01-06 10:00 JST + 90 days = now
        "payment-gateway-enabled",  # reviewed 2025-03-01, due 2026-03-01
        "premium-features",
    ]
    first, booking, payment, premium = flags
    assert first["kind"] == "experiment" and first["stale"] is True
    assert first["due_at"] == "2026-02-08T15:00:00Z"
    assert booking["stale"] is True
    assert booking["due_at"] == "2026-04-06T01:00:00Z"
    assert booking["code_references"] == ["lib/feature_flags.dart:2", "src/flags.ts:2"]
    assert payment["stale"] is False and payment["review_due"] is True
    assert payment["code_references"] == ["src/flags.ts:3", "services/pay/main.go:7"]
    assert premium["status"] == "ok" and premium["due_at"] == "2027-01-01T00:00:00Z"
    for f in flags:
        assert {"key", "kind", "stale", "review_due", "due_at", "reason", "code_references"} <= set(
            f
        )
    assert data["stale"] == ["checkout-ui-variant", "new-booking-flow"]
    assert data["issues"] is None
    assert json.loads(result.outputs["stale"]) == ["checkout-ui-variant", "new-booking-flow"]
    assert json.loads(result.outputs["review-due"]) == ["payment-gateway-enabled"]
    assert result.outputs["changed"] == "false"
    assert "::warning title=Stale feature flag::`new-booking-flow`" in result.stderr


def test_a_day_earlier_nothing_is_stale_and_it_exits_0(run_cli: RunCli, checkout: Path) -> None:
    write_export(
        checkout / "flags.json",
        [exported("new-booking-flow", ga_at="2026-01-06T10:00:00+09:00")],
    )
    result = audit(run_cli, "--input", "flags.json", "--now", "2026-04-05T10:00:00+09:00")
    assert result.code == 0, result.stderr
    assert "new-booking-flow" in result.stdout
    assert "stale on 2026-04-06 (90 days after)" in result.stdout


def test_now_comes_from_release_actions_now(run_cli: RunCli, checkout: Path) -> None:
    write_export(checkout / "flags.json", [exported("new-booking-flow", ga_at=NOW)])
    result = audit(
        run_cli, "--input", "flags.json", "--json", env={"RELEASE_ACTIONS_NOW": "2026-07-05T01:00Z"}
    )
    assert result.code == 1
    assert json.loads(result.stdout)["now"] == "2026-07-05T01:00:00Z"


def test_the_summary_has_the_table_and_a_chart(run_cli: RunCli, checkout: Path) -> None:
    result = audit(run_cli, "--input", "flags.json", "--now", NOW)
    summary = result.summary
    assert "### Feature flag audit" in summary
    assert "| `new-booking-flow` | release | alice | **stale** | 2026-04-06 |" in summary
    assert "```mermaid\npie showData title Flags by status" in summary
    assert '"stale" : 2' in summary


def test_a_flag_of_unknown_kind_fails_the_audit(run_cli: RunCli, checkout: Path) -> None:
    write_export(checkout / "flags.json", [exported("dark-mode-enabled", kind=None)])
    result = audit(run_cli, "--input", "flags.json", "--now", NOW, "--json")
    assert result.code == 1
    (flag,) = json.loads(result.stdout)["flags"]
    assert flag["status"] == "unknown_kind" and flag["stale"] is None
    assert json.loads(result.outputs["unknown-kind"]) == ["dark-mode-enabled"]


def test_a_bad_field_is_named_with_file_index_and_key(run_cli: RunCli, checkout: Path) -> None:
    write_export(
        checkout / "flags.json",
        [exported("a"), exported("b", ga_at="2026-01-06 10:00")],
    )
    result = audit(run_cli, "--input", "flags.json", "--now", NOW, "--json")
    assert result.code == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "flag_export"
    assert error["file"] == "flags.json"
    assert error["field"] == "flags[1].ga_at"
    assert "has no UTC offset" in error["message"]


def test_a_missing_export_file_and_a_bad_now_exit_2(run_cli: RunCli, checkout: Path) -> None:
    missing = audit(run_cli, "--input", "nope.json", "--json")
    assert missing.code == 2
    assert json.loads(missing.stdout)["error"]["code"] == "flag_audit"
    bad_now = audit(run_cli, "--input", "flags.json", "--now", "2026-04-06T10:00", "--json")
    assert bad_now.code == 2
    error = json.loads(bad_now.stdout)["error"]
    assert error["code"] == "flag_audit"
    assert "has no UTC offset" in error["message"]


def test_outside_a_git_checkout_it_says_to_check_out(
    run_cli: RunCli, checkout: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "not-git"
    elsewhere.mkdir()
    result = audit(
        run_cli, "--input", "flags.json", "--now", NOW, "--checkout", str(elsewhere), "--json"
    )
    assert result.code == 2
    error = json.loads(result.stdout)["error"]
    assert "`git grep` cannot search" in error["message"]
    assert "actions/checkout" in error["hint"]


def test_without_input_it_asks_flags_export(
    run_cli: RunCli, checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []

    def export_flags(session: Any, policy: Any, project: Any) -> dict[str, Any]:
        calls.append((session, policy, project))
        return {"flags": [exported("new-booking-flow", ga_at="2026-01-01T00:00:00Z")]}

    module = types.ModuleType("release_actions.app.flag_lifecycle")
    module.export_flags = export_flags  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "release_actions.app.flag_lifecycle", module)
    result = audit(run_cli, "--now", NOW, "--json")
    assert result.code == 1, result.stdout
    assert len(calls) == 1 and calls[0][2] is None
    assert calls[0][1].feature_flags.catalog[0].key == "new-booking-flow"
    data = json.loads(result.stdout)
    assert data["source"] == "LaunchDarkly project `triptrip`"
    assert data["flags"][0]["owner"] == "alice"  # from the catalog


def test_the_export_and_the_policy_are_not_references(run_cli: RunCli, checkout: Path) -> None:
    """Both list every key; only code that uses a flag is a reference."""
    write_export(checkout / "flags.json", [exported("checkout-ui-variant", kind="experiment")])
    result = audit(run_cli, "--input", "flags.json", "--now", NOW, "--json")
    (flag,) = json.loads(result.stdout)["flags"]
    assert flag["code_references"] == []


def test_the_flags_action_runs_the_audit_with_github_only_for_issues() -> None:
    from release_actions.cli.action import arguments, extras

    env = {
        "INPUT_INPUT": "flags.json",
        "INPUT_NOW": "",
        "INPUT_OPEN_ISSUES": "true",
        "INPUT_POLICY": "",
    }
    assert arguments("flags", env) == ["flags", "audit", "--input", "flags.json", "--open-issues"]
    assert extras("flags", env) == ["github"]
    assert extras("flags", {**env, "INPUT_OPEN_ISSUES": "false"}) == []
