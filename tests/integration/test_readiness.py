"""Release readiness (source §3.1) from the GitHub API, through PyGithub against the fake."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from release_actions.integrations.readiness import (
    CoverageError,
    coverage_item,
    parse_coverage,
    percent_text,
)
from tests.conftest import RunCli
from tests.fakes.github import GitHubFake
from tests.integration.fake_github import fake_github_env

pytestmark = pytest.mark.integration

TAG = "v1.2.3"
CHANGELOG = """\
# Changelog

## [Unreleased]

## [1.2.3] - 2024-05-14

### Fixed

- Login no longer fails on Safari.

## [1.2.2] - 2024-05-07

### Fixed

- Something older.
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "repo"
    work.mkdir()
    (work / "CHANGELOG.md").write_text(CHANGELOG)
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def fake() -> Iterator[GitHubFake]:
    with GitHubFake() as f:
        yield f


def release(
    fake: GitHubFake,
    *,
    approvals: tuple[str, ...] = ("ann", "bob"),
    checks: tuple[tuple[str, str, str | None], ...] = (
        ("unit", "completed", "success"),
        ("e2e", "completed", "success"),
        ("docs", "completed", "skipped"),
    ),
) -> dict[str, Any]:
    """A merged pull request whose merge commit carries the tag, its reviews and checks."""
    pull = fake.add_pull("feature/login", title="Fix login", merged=True, user="carol")
    fake.set_ref(TAG, pull["merge_commit_sha"], tag=True)
    for login in approvals:
        fake.add_review(pull["number"], "APPROVED", user=login)
    for name, status, conclusion in checks:
        fake.add_check_run(TAG, name, status=status, conclusion=conclusion)
    return pull


def env_of(fake: GitHubFake, **extra: str) -> dict[str, str]:
    return fake_github_env(fake.url, "ghs_token", **extra)


def cobertura(covered: int, valid: int) -> str:
    return (
        '<?xml version="1.0" ?>\n'
        '<!DOCTYPE coverage SYSTEM "https://cobertura.sourceforge.net/xml/coverage-04.dtd">\n'
        f'<coverage version="7.5" lines-valid="{valid}" lines-covered="{covered}" '
        f'line-rate="{round(covered / valid, 4)}" branch-rate="0" timestamp="1">\n'
        "  <packages/>\n</coverage>\n"
    )


def coverage_json(percent: float) -> str:
    return json.dumps(
        {
            "meta": {"format": 3, "version": "7.5.0"},
            "files": {},
            "totals": {"covered_lines": 0, "num_statements": 0, "percent_covered": percent},
        }
    )


def lcov(hit: int, found: int) -> str:
    half = found // 2
    return (
        f"TN:\nSF:src/a.ts\nDA:1,1\nLF:{half}\nLH:{min(hit, half)}\nend_of_record\n"
        f"SF:src/b.ts\nLF:{found - half}\nLH:{hit - min(hit, half)}\nend_of_record\n"
    )


REPORTS: dict[str, tuple[Callable[[bool], str], str]] = {
    "cobertura": (lambda ok: cobertura(800 if ok else 799, 1000), "Cobertura XML"),
    "json": (lambda ok: coverage_json(80.0 if ok else 79.9), "coverage.py JSON"),
    "lcov": (lambda ok: lcov(800 if ok else 799, 1000), "LCOV"),
}


# -- the whole checklist through the CLI ----------------------------------------------------


def test_ready(fake: GitHubFake, workdir: Path, run_cli: RunCli) -> None:
    release(fake)
    (workdir / "coverage.xml").write_text(cobertura(850, 1000))
    result = run_cli("readiness", "--tag", TAG, "--coverage-file", "coverage.xml", env=env_of(fake))
    assert result.code == 0, result.stdout + result.stderr
    assert result.outputs == {"ready": "true", "failed": ""}
    summary = result.summary
    assert "### Release readiness of `v1.2.3` (source §3.1)" in summary
    assert "✅ **Ready**: all 4 automatic checks passed." in summary
    assert (
        "- [x] ✅ All tests pass (unit, integration, E2E): 3 check run(s) passed "
        "(1 skipped, 2 success)" in summary
    )
    assert "- [x] ✅ Code coverage 80 % or more: 85.00 % (Cobertura XML, 850 of 1000 lines" in (
        summary
    )
    assert (
        "- [x] ✅ Pull request reviewed (2 or more approvals): #1 has 2 approval(s) (ann, bob)"
        in (summary)
    )
    assert "- [x] ✅ CHANGELOG updated: `CHANGELOG.md:5` has `[1.2.3] - 2024-05-14`" in summary
    # The rest of §3.1, to confirm by hand.
    for item in ("Security scans (SAST/DAST) pass", "Rollback procedure confirmed"):
        assert f"- [ ] {item}" in summary
    assert "Lint and format checks pass (checked above when it runs as a check" in summary


def test_thresholds_come_from_the_policy(fake: GitHubFake, workdir: Path, run_cli: RunCli) -> None:
    release(fake)
    (workdir / "coverage.xml").write_text(cobertura(850, 1000))
    # The document's 80 % (the policy default) passes 85 %; a policy asking 90 % fails it.
    ok = run_cli("readiness", "--tag", TAG, "--coverage-file", "coverage.xml", env=env_of(fake))
    assert ok.code == 0, ok.stdout + ok.stderr
    (workdir / "policy.yml").write_text(
        "readiness:\n  min_coverage_percent: 90\n  min_approvals: 3\n"
    )
    strict = run_cli(
        "readiness",
        "--tag",
        TAG,
        "--coverage-file",
        "coverage.xml",
        "--policy",
        "policy.yml",
        env=env_of(fake),
    )
    assert strict.code == 1
    assert set(strict.outputs["failed"].split(",")) == {"coverage", "approvals"}
    # A flag still wins over the policy.
    flags = run_cli(
        "readiness",
        "--tag",
        TAG,
        "--coverage-file",
        "coverage.xml",
        "--policy",
        "policy.yml",
        "--min-coverage",
        "80",
        "--min-approvals",
        "2",
        env=env_of(fake),
    )
    assert flags.code == 0


def test_missing_approvals(fake: GitHubFake, workdir: Path, run_cli: RunCli) -> None:
    release(fake, approvals=("ann",))
    result = run_cli("readiness", "--tag", TAG, env=env_of(fake))
    assert result.code == 1
    assert result.outputs == {"ready": "false", "failed": "approvals"}
    assert "#1 has 1 approval(s) (ann), 2 needed" in result.summary
    assert "❌ **Not ready**: 1 of 4 automatic checks failed, 1 not measured." in result.summary
    assert "::error title=Not ready%3A v1.2.3::Pull request reviewed" in result.stdout


def test_a_later_changes_requested_cancels_an_approval(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    pull = release(fake, approvals=("ann", "bob", "dave"))
    number = pull["number"]
    fake.add_review(number, "CHANGES_REQUESTED", user="bob")
    fake.add_review(number, "COMMENTED", user="ann")  # a comment keeps the approval
    fake.add_review(number, "APPROVED", user="carol")  # the author's own does not count
    result = run_cli("readiness", "--tag", TAG, "--json", env=env_of(fake), actions=False)
    assert result.code == 1
    data = json.loads(result.stdout)
    approvals = next(i for i in data["items"] if i["key"] == "approvals")
    assert approvals["approved_by"] == ["ann", "dave"]
    assert approvals["changes_requested_by"] == ["bob"]
    assert approvals["ok"] is False
    assert approvals["detail"] == "#1 has 2 approval(s) (ann, dave); changes requested by bob"
    # Approving again settles it.
    fake.add_review(number, "APPROVED", user="bob")
    again = run_cli("readiness", "--tag", TAG, env=env_of(fake))
    assert again.code == 0 and again.outputs["ready"] == "true"


@pytest.mark.parametrize(
    ("checks", "args", "detail"),
    [
        (
            (("unit", "completed", "success"), ("e2e", "completed", "failure")),
            (),
            "failed: `e2e` (failure)",
        ),
        (
            (("unit", "completed", "success"), ("lint", "in_progress", None)),
            (),
            "still running: `lint`",
        ),
        (
            (("unit", "completed", "cancelled"),),
            (),
            "failed: `unit` (cancelled)",
        ),
        (
            (("lint", "completed", "success"),),
            ("--required-check", "unit", "--required-check", "lint"),
            "required but missing: `unit`",
        ),
        ((), (), "no check runs on the commit"),
    ],
)
def test_failing_pending_and_missing_checks(
    fake: GitHubFake,
    workdir: Path,
    run_cli: RunCli,
    checks: tuple[tuple[str, str, str | None], ...],
    args: tuple[str, ...],
    detail: str,
) -> None:
    release(fake, checks=checks)
    result = run_cli("readiness", "--tag", TAG, *args, env=env_of(fake))
    assert result.code == 1
    assert result.outputs == {"ready": "false", "failed": "checks"}
    assert detail in result.summary


def test_the_latest_run_of_a_check_counts(fake: GitHubFake, workdir: Path, run_cli: RunCli) -> None:
    release(fake, checks=(("unit", "completed", "failure"), ("unit", "completed", "success")))
    assert run_cli("readiness", "--tag", TAG, env=env_of(fake)).code == 0


def test_the_running_job_and_ignored_checks_are_left_out(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    release(
        fake,
        checks=(
            ("unit", "completed", "success"),
            ("readiness", "in_progress", None),
            ("release / deploy", "queued", None),
        ),
    )
    env = env_of(fake, GITHUB_JOB="readiness")
    result = run_cli("readiness", "--tag", TAG, "--ignore-check", "release / *", env=env)
    assert result.code == 0, result.summary
    assert "1 check run(s) passed" in result.summary


def test_missing_changelog_section(fake: GitHubFake, workdir: Path, run_cli: RunCli) -> None:
    release(fake)
    (workdir / "CHANGELOG.md").write_text(
        CHANGELOG.replace("## [1.2.3] - 2024-05-14", "## [1.2.4] - 2024-05-14")
    )
    result = run_cli("readiness", "--tag", TAG, env=env_of(fake))
    assert result.code == 1
    assert result.outputs == {"ready": "false", "failed": "changelog"}
    assert "CHANGELOG.md has no section for 1.2.3." in result.summary
    nothing = run_cli(
        "readiness", "--tag", TAG, "--changelog", "NOPE.md", env=env_of(fake), actions=False
    )
    assert nothing.code == 1 and "NOPE.md does not exist" in nothing.stdout


def test_coverage_below_the_minimum_fails_the_cli(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    release(fake)
    (workdir / "lcov.info").write_text(lcov(799, 1000))
    result = run_cli("readiness", "--tag", TAG, "--coverage-file", "lcov.info", env=env_of(fake))
    assert result.code == 1 and result.outputs["failed"] == "coverage"
    assert (
        "❌ Code coverage 80 % or more: 79.90 % < 80 % (LCOV, 799 of 1000 lines" in result.summary
    )
    lower = run_cli(
        "readiness",
        "--tag",
        TAG,
        "--coverage-file",
        "lcov.info",
        "--min-coverage",
        "75",
        env=env_of(fake),
    )
    assert lower.code == 0


def test_no_pull_request_means_no_approvals(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    fake.set_ref(TAG, "main", tag=True)
    fake.add_check_run(TAG, "unit")
    result = run_cli("readiness", "--tag", TAG, env=env_of(fake))
    assert result.code == 1 and result.outputs["failed"] == "approvals"
    assert "no pull request contains the commit" in result.summary


def test_an_unknown_tag_is_an_error(fake: GitHubFake, workdir: Path, run_cli: RunCli) -> None:
    result = run_cli("readiness", "--tag", "v9.9.9", env=env_of(fake), actions=False)
    assert result.code == 2
    assert "Tag `v9.9.9` does not exist in octo/app" in result.stderr
    assert result.outputs == {}
    bad = run_cli("readiness", "--tag", "latest", env=env_of(fake), actions=False)
    assert bad.code == 2 and "`latest` is not a release tag" in bad.stderr


def test_untrusted_check_names_stay_inert(fake: GitHubFake, workdir: Path, run_cli: RunCli) -> None:
    release(fake, checks=(("<img src=x> `@team` | x", "completed", "failure"),))
    result = run_cli("readiness", "--tag", TAG, env=env_of(fake))
    assert result.code == 1
    assert "failed: ``<img src=x> `@team` | x`` (failure)" in result.summary


# -- coverage reports ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(REPORTS))
@pytest.mark.parametrize(("ok", "shown"), [(True, "80.00 %"), (False, "79.90 %")])
def test_coverage_79_9_fails_and_80_passes_in_every_format(
    tmp_path: Path, kind: str, ok: bool, shown: str
) -> None:
    make, name = REPORTS[kind]
    path = tmp_path / f"report.{kind}"
    path.write_text(make(ok))
    item = coverage_item(path, 80.0)
    assert item.ok is ok
    assert item.detail.startswith(shown) and name in item.detail
    assert parse_coverage(path).format == name


def test_the_format_is_told_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "coverage.txt"
    path.write_text("\ufeff" + cobertura(9, 10))
    assert parse_coverage(path).percent == 90.0
    path.write_text(cobertura(9, 10).replace(' lines-valid="10" lines-covered="9"', ""))
    assert parse_coverage(path).percent == pytest.approx(90.0)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("hello", "not a coverage report"),
        ("<report/>", "no report-level"),
        ("<html/>", "neither Cobertura"),
        ("<coverage", "not well-formed"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><coverage line-rate="1"/>', "declares XML entities"),
        ('{"totals": {}}', "no `totals.percent_covered`"),
        ("SF:a\nLF:0\nLH:0\nend_of_record\n", "counts no lines"),
    ],
)
def test_unreadable_reports_say_why(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "r"
    path.write_text(text)
    with pytest.raises(CoverageError, match=words.replace("(", r"\(")):
        parse_coverage(path)
    item = coverage_item(path, 80.0)
    assert item.ok is False and words in item.detail
    assert coverage_item(tmp_path / "missing.xml", 80.0).ok is False


def test_a_near_miss_is_not_rounded_up_to_the_minimum() -> None:
    assert percent_text(79.996, 80.0) == "79.996 %"
    assert percent_text(80.0, 80.0) == "80.00 %"
    assert percent_text(85.123, 80.0) == "85.12 %"


# -- coverage not measured, or found in a folder --------------------------------------------


def jacoco(missed: int, covered: int) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd">'
        '<report name="webapp"><package name="p">'
        '<counter type="LINE" missed="0" covered="1"/></package>'
        f'<counter type="LINE" missed="{missed}" covered="{covered}"/></report>'
    )


def test_no_coverage_is_a_warning_not_a_pass(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    release(fake)
    result = run_cli("readiness", "--tag", TAG, "--json", env=env_of(fake))
    # The policy does not require a measurement, so the release is still ready.
    assert result.code == 0, result.stdout + result.stderr
    assert result.outputs == {"ready": "true", "failed": ""}
    assert (
        "✅ **Ready**: 3 of 4 automatic checks passed, 1 not measured (see ⚠️ below)."
        in result.summary
    )
    not_measured = "- [ ] ⚠️ Code coverage 80 % or more: not measured: pass `--coverage-file`"
    assert not_measured in result.summary
    assert "Code coverage 80 % or more (not" not in result.summary  # not a manual item as well
    assert (
        "::warning title=Not measured%3A v1.2.3::Code coverage 80 %25 or more: not measured"
        in result.stderr  # with --json, stdout is only the JSON
    )
    report = json.loads(result.stdout)
    coverage = next(i for i in report["items"] if i["key"] == "coverage")
    assert coverage["ok"] is None and coverage["status"] == "warning"
    assert report["warnings"] == ["coverage"]
    assert "Code coverage 80 % or more" not in report["manual"]


def test_the_caller_says_which_input_was_missing(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    release(fake)
    hint = "the release workflow got no `coverage-artifact`"
    result = run_cli(
        "readiness", "--tag", TAG, env=env_of(fake, RELEASE_ACTIONS_COVERAGE_MISSING=hint)
    )
    assert result.code == 0, result.stdout + result.stderr
    assert f"⚠️ Code coverage 80 % or more: not measured: {hint}" in result.summary


def test_the_report_in_a_downloaded_artifact_folder(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    release(fake)
    artifact = workdir / "artifact"
    (artifact / "html").mkdir(parents=True)
    (artifact / "html" / "index.html").write_text("<!doctype html><p>85 %</p>")
    (artifact / "jacoco.xml").write_text(jacoco(15, 85))
    result = run_cli("readiness", "--tag", TAG, "--coverage-file", "artifact", env=env_of(fake))
    assert result.code == 0, result.stdout + result.stderr
    assert "::notice title=Coverage report::Using `artifact/jacoco.xml` (JaCoCo XML)" in (
        result.stdout
    )
    assert (
        "- [x] ✅ Code coverage 80 % or more: 85.00 % (JaCoCo XML, 85 of 100 lines, "
        "`artifact/jacoco.xml`)" in result.summary
    )
    (artifact / "jacoco.xml").write_text(jacoco(40, 60))
    low = run_cli("readiness", "--tag", TAG, "--coverage-file", "artifact", env=env_of(fake))
    assert low.code == 1 and low.outputs["failed"] == "coverage"
    assert "60.00 % < 80 % (JaCoCo XML" in low.summary


def test_a_folder_with_several_reports_or_none_is_an_error(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    release(fake)
    artifact = workdir / "artifact"
    artifact.mkdir()
    (artifact / "jacoco.xml").write_text(jacoco(15, 85))
    (artifact / "lcov.info").write_text(lcov(850, 1000))
    several = run_cli("readiness", "--tag", TAG, "--coverage-file", "artifact", env=env_of(fake))
    assert several.code == 2
    text = several.stdout + several.stderr
    assert "2 coverage reports" in text
    assert "`jacoco.xml` (JaCoCo XML)" in text and "`lcov.info` (LCOV)" in text
    (artifact / "jacoco.xml").unlink()
    (artifact / "lcov.info").write_text("just text\n")
    none = run_cli("readiness", "--tag", TAG, "--coverage-file", "artifact", env=env_of(fake))
    assert none.code == 2
    assert "no coverage report" in none.stdout and "`lcov.info`" in none.stdout
