"""The command line others script against: version, changelog, calendar, branch, policy, validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunCli

CHANGELOG = Path(__file__).resolve().parents[3] / "examples" / "webapp" / "CHANGELOG.md"


def test_version_validate_json(run_cli: RunCli) -> None:
    r = run_cli("version", "validate", "v1.2.3-rc.1+b7", "--json", actions=False)
    assert r.code == 0
    assert json.loads(r.stdout) == {
        "ok": True,
        "version": "1.2.3-rc.1+b7",
        "major": 1,
        "minor": 2,
        "patch": 3,
        "prerelease": "rc.1",
        "build": "b7",
        "is_prerelease": True,
    }
    assert r.outputs["is-prerelease"] == "true" and r.outputs["valid"] == "true"


@pytest.mark.parametrize("tag", ["1.2", "v01.2.3", "v1.2.3$(id)", "v1.2.3\nx=1", ""])
def test_version_validate_invalid_exits_1(run_cli: RunCli, tag: str) -> None:
    r = run_cli("version", "validate", tag)
    assert r.code == 1
    assert "::error::" in r.stdout
    assert r.output_pairs == [("valid", "false")]  # no half-written version keys


def test_version_validate_prefix(run_cli: RunCli) -> None:
    assert run_cli("version", "validate", "1.2.3", "--prefix", "v").code == 1
    assert run_cli("version", "validate", "v1.2.3", "--prefix", "v").code == 0


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("1.0.0-rc.1", "1.0.0", "-1"),
        ("v2.0.0", "1.9.9", "1"),
        ("1.0.0+a", "1.0.0+b", "0"),
        ("1.0.0-alpha.10", "1.0.0-alpha.9", "1"),
        ("1.0.0-alpha", "1.0.0-1", "1"),
    ],
)
def test_version_compare(run_cli: RunCli, a: str, b: str, want: str) -> None:
    r = run_cli("version", "compare", a, b)
    assert (r.code, r.stdout.strip()) == (0, want)


def test_version_compare_bad_input_is_exit_2(run_cli: RunCli) -> None:
    r = run_cli("version", "compare", "1.0", "1.0.0")
    assert r.code == 2 and "not a SemVer" in r.stdout + r.stderr


def test_version_bump(run_cli: RunCli) -> None:
    r = run_cli("version", "bump", "1.2.3", "minor", "--pre", "rc", "--prefix", "v")
    assert r.stdout.strip() == "v1.3.0-rc.1" and r.outputs["tag"] == "v1.3.0-rc.1"


def test_changelog_extract_is_byte_exact(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "CHANGELOG.md"
    body = "### Fixed\r\n\r\n- `$(id)` and `whoami`\r\nEOF\r\n::set-output name=pwned::1\r\n- ${{ github.token }}"
    path.write_bytes(f"# Changelog\r\n\r\n## [1.0.0] - 2026-01-01\r\n\r\n{body}\r\n".encode())
    notes = tmp_path / "notes.md"
    r = run_cli("changelog", "extract", "v1.0.0", "--file", str(path), "--output-file", str(notes))
    assert r.code == 0
    assert notes.read_bytes() == body.encode()
    assert r.output_pairs == [
        ("body-file", str(notes.resolve())),
        ("body", body),
        ("date", "2026-01-01"),
        ("line", "3"),
    ]
    # In Actions the body is echoed between stop-commands so its `::` lines stay inert.
    assert r.stdout.startswith("::stop-commands::")


def test_changelog_extract_plain_stdout(run_cli: RunCli) -> None:
    r = run_cli("changelog", "extract", "1.5.2", "--file", str(CHANGELOG), actions=False)
    assert r.stdout == "### Fixed\n\n- Database connection pool exhaustion under query timeouts.\n"


def test_changelog_extract_missing_section(run_cli: RunCli) -> None:
    r = run_cli("changelog", "extract", "9.9.9", "--file", str(CHANGELOG))
    assert r.code == 2
    assert "::error file=" in r.stdout and "no section for 9.9.9" in r.stdout
    assert r.output_pairs == []


def test_changelog_extract_big_body(run_cli: RunCli, tmp_path: Path) -> None:
    body = "\n".join(f"- item {i} " + "x" * 100 for i in range(10_000))  # ~1 MiB
    path = tmp_path / "CHANGELOG.md"
    path.write_text(f"## [1.0.0] - 2026-01-01\n\n{body}\n")
    r = run_cli("changelog", "extract", "1.0.0", "--file", str(path), actions=False)
    assert r.code == 0 and r.outputs["body"] == body


def test_changelog_check_and_lint(run_cli: RunCli, tmp_path: Path) -> None:
    assert run_cli("changelog", "check", "1.6.0", "--file", str(CHANGELOG)).code == 0
    assert run_cli("changelog", "check", "1.7.0", "--file", str(CHANGELOG)).code == 1
    assert run_cli("changelog", "lint", "--file", str(CHANGELOG)).code == 0
    bad = tmp_path / "bad.md"
    bad.write_text("# Changelog\n\n## [1.0.0] - 2026-01-01\n- a\n\n## [1.1.0] - 2026-02-01\n- b\n")
    r = run_cli("changelog", "lint", "--file", str(bad))
    assert r.code == 1
    assert f"::error file={bad},line=6::" in r.stdout


def test_changelog_release_writes_atomically(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "CHANGELOG.md"
    path.write_bytes(CHANGELOG.read_bytes())
    r = run_cli("changelog", "release", "1.7.0", "--file", str(path), "--date", "2026-12-01")
    assert r.code == 0
    text = path.read_text()
    assert (
        "## [Unreleased]\n\n## [1.7.0] - 2026-12-01\n\n### Added\n\n- Trip sharing with friends."
        in text
    )
    assert "[1.7.0]: https://github.com/triptrip/webapp/compare/v1.6.0...v1.7.0" in text
    again = run_cli("changelog", "release", "1.7.0", "--file", str(path), "--date", "2026-12-01")
    assert again.code == 2 and path.read_text() == text  # refused, file untouched


def test_changelog_release_dry_run_writes_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "CHANGELOG.md"
    path.write_bytes(CHANGELOG.read_bytes())
    r = run_cli("--dry-run", "changelog", "release", "1.7.0", "--file", str(path))
    assert r.code == 0 and path.read_bytes() == CHANGELOG.read_bytes()


def test_calendar_check_json_and_exit_codes(run_cli: RunCli) -> None:
    r = run_cli(
        "calendar", "check", "--type", "regular", "--at", "2026-12-29T10:00:00+09:00", "--json"
    )
    data = json.loads(r.stdout.split("\n::error")[0])
    assert r.code == 1 and data["decision"] == "blocked" and data["require_staged_rollout"] is True
    assert all(isinstance(x, str) for x in data["reasons"])
    ok = run_cli("calendar", "check", "--at", "2026-12-01T10:00:00+09:00", "--json", actions=False)
    assert ok.code == 0 and json.loads(ok.stdout)["decision"] == "allowed"
    caution = run_cli(
        "calendar",
        "check",
        "--type",
        "hotfix",
        "--at",
        "2026-12-29T10:00Z",
        "--json",
        actions=False,
    )
    assert caution.code == 0 and json.loads(caution.stdout)["decision"] == "caution"


def test_calendar_bad_time_and_type(run_cli: RunCli) -> None:
    bad = run_cli("calendar", "check", "--at", "next tuesday")
    assert bad.code == 2 and "ISO 8601" in bad.stderr
    unknown = run_cli("calendar", "check", "--type", "weekly")
    assert unknown.code == 2 and "`regular`" in unknown.stdout


def test_branch_check(run_cli: RunCli) -> None:
    good = run_cli("branch", "check", "refs/heads/hotfix/ABC-123-fix-login")
    assert good.code == 0 and good.outputs["kind"] == "hotfix"
    bad = run_cli("branch", "check", "hotfix/fix-login")
    assert bad.code == 1 and "ABC-123" in bad.stdout


def test_policy_commands(run_cli: RunCli, tmp_path: Path) -> None:
    schema = run_cli("policy", "schema")
    assert json.loads(schema.stdout)["title"].startswith("release-actions")
    shown = run_cli("policy", "show", "--json", actions=False)
    assert json.loads(shown.stdout)["calendar"]["timezone"] == "Asia/Tokyo"
    bad = tmp_path / "release-policy.yml"
    bad.write_text("calendar:\n  timezone: Asia/Tokyo\n  release_window:\n    dayz: [tuesday]\n")
    r = run_cli("policy", "validate", str(bad))
    assert r.code == 2
    assert (
        f"::error file={bad},line=4,title=Invalid release policy::`calendar.release_window.dayz`"
        in r.stdout
    )
    assert run_cli("policy", "validate", str(tmp_path / "missing.yml")).code == 2


def test_validate_passes_and_writes_outputs(run_cli: RunCli) -> None:
    r = run_cli(
        "validate",
        "--changelog",
        str(CHANGELOG),
        "--at",
        "2026-12-01T10:00:00+09:00",
        env={"GITHUB_REF": "refs/tags/v1.6.0"},
    )
    assert r.code == 0, r.stdout + r.stderr
    assert r.outputs["valid"] == "true" and r.outputs["version"] == "1.6.0"
    assert r.outputs["decision"] == "allowed" and r.outputs["environment"] == "production"
    assert "| tag | ✅ pass |" in r.summary and "| changelog | ✅ pass |" in r.summary


def test_validate_reports_every_failure(run_cli: RunCli) -> None:
    r = run_cli(
        "validate",
        "--tag",
        "v1.7.0",
        "--changelog",
        str(CHANGELOG),
        "--at",
        "2026-12-29T10:00:00+09:00",
        "--ref",
        "refs/tags/v1.7.0",
    )
    assert r.code == 1
    assert r.outputs["valid"] == "false" and r.outputs["decision"] == "blocked"
    assert "| changelog | ❌ fail |" in r.summary and "| calendar | ❌ fail |" in r.summary
    assert r.stdout.count("::error") == 2


def test_validate_high_traffic_requires_canary(run_cli: RunCli) -> None:
    r = run_cli(
        "validate",
        "--tag",
        "v1.6.0",
        "--changelog",
        str(CHANGELOG),
        "--type",
        "hotfix",
        "--at",
        "2026-07-21T10:00:00+09:00",
        "--skip",
        "branch",
    )
    assert r.code == 0
    assert r.outputs["require-staged-rollout"] == "true" and r.outputs["canary"] == "required"


def test_unexpected_errors_exit_3_with_a_hint(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import release_actions.core.versions as versions

    def boom(*_: object, **__: object) -> None:
        raise KeyError("x")

    monkeypatch.setattr(versions.Version, "parse", boom)
    r = run_cli("version", "validate", "v1.0.0", actions=False)
    assert r.code == 3 and "rerun with -vv" in r.stderr


def test_version_validate_does_not_import_heavy_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from release_actions.cli import main; rc = main(['version','validate','v1.2.3'], env={});"
        "heavy = [m for m in ('github', 'kubernetes', 'google', 'datadog_api_client', 'jinja2',"
        " 'pydantic', 'requests', 'ruamel') if m in sys.modules];"
        "print('HEAVY=' + ','.join(heavy), rc, file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "v1.2.3: valid, a release of 1.2.3\n"
    assert out.stderr.strip() == "HEAVY= 0"


def test_validate_refuses_a_tag_whose_prefix_is_not_the_policys(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """`V1.2.3` is not a release tag when the policy's prefix is `v` (the default)."""
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## [1.2.3] - 2026-12-01\n\n- A fix.\n")
    r = run_cli(
        "validate", "--tag", "V1.2.3", "--changelog", str(changelog),
        "--skip", "calendar", "--skip", "branch",
    )  # fmt: skip
    assert r.code == 1
    assert "it must start with `v`" in r.stdout
    assert r.outputs["valid"] == "false"
