"""The release workflow's readiness job reads coverage from an artifact of the caller's run.

Under act, the pinned actions/download-artifact is a stand-in that copies
`$E2E_ARTIFACTS/<name>` into its `path`, as the real one unpacks the artifact a previous job
uploaded. Each run is the whole release (about a minute): readiness gates the build, so a
coverage miss must stop it before anything is built or deployed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.act_harness import ActRun, make_consumer, run_act
from tests.e2e.test_release_workflows import ALLOWED_AT, CHANGELOG, REPO, TOKEN, seed_tag, template
from tests.fakes.github import GitHubFake
from tests.fakes.slack import SlackFake

pytestmark = pytest.mark.e2e

TAG = "v1.6.0"


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake(repos=(REPO,), token=TOKEN) as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


def jacoco(missed: int, covered: int) -> str:
    """A Maven `jacoco:report` file: the report-level LINE counter is the build's coverage."""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd">'
        '<report name="webapp"><sessioninfo id="ci" start="1" dump="2"/>'
        '<package name="com/triptrip"><counter type="LINE" missed="0" covered="5"/></package>'
        '<counter type="INSTRUCTION" missed="10" covered="90"/>'
        f'<counter type="LINE" missed="{missed}" covered="{covered}"/></report>'
    )


def release(
    tmp_path: Path,
    github: GitHubFake,
    slack: SlackFake,
    *,
    report: str | None,
) -> ActRun:
    with_: dict[str, str] = {"policy": ".github/release-policy.yml", "at": ALLOWED_AT}
    artifacts = tmp_path / "artifacts"
    if report is not None:
        with_["coverage-artifact"] = "coverage"
        # What actions/upload-artifact of the caller's test job would hold: the report and
        # the HTML pages next to it.
        (artifacts / "coverage" / "html").mkdir(parents=True)
        (artifacts / "coverage" / "html" / "index.html").write_text("<!doctype html><p>x</p>")
        (artifacts / "coverage" / "jacoco.xml").write_text(report)
    consumer = make_consumer(
        tmp_path,
        "release",
        repo=REPO,
        files={
            ".github/workflows/release.yml": template("release", with_),
            ".github/release-policy.yml": b"deploy:\n  target: simulated\n",
            "CHANGELOG.md": CHANGELOG.format(version="1.6.0", body="### Added\n\n- x").encode(),
        },
    )
    return run_act(
        consumer,
        event_name="push",
        event={"ref": f"refs/tags/{TAG}", "repository": {"full_name": REPO}},
        workflow=".github/workflows/release.yml",
        env={"GITHUB_API_URL": github.url, "E2E_ARTIFACTS": str(artifacts)},
        secrets={"GITHUB_TOKEN": TOKEN, "SLACK_WEBHOOK_URL": slack.webhook_url},
    )


def test_a_jacoco_report_of_85_percent_passes_readiness(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    seed_tag(github, TAG)
    run = release(tmp_path, github, slack, report=jacoco(15, 85))
    assert run.returncode == 0, run.log[-6000:]
    assert "Using `" in run.log and "/jacoco.xml` (JaCoCo XML), the one coverage report" in run.log
    assert "ok   Code coverage 80 % or more: 85.00 % (JaCoCo XML, 85 of 100 lines" in run.log
    assert f"{TAG} (" in run.log and ": ready" in run.log
    assert github.release(TAG, REPO)["tag_name"] == TAG


def test_a_jacoco_report_of_60_percent_fails_the_release_before_the_build(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    seed_tag(github, TAG)
    run = release(tmp_path, github, slack, report=jacoco(40, 60))
    assert run.returncode != 0
    assert "FAIL Code coverage 80 % or more: 60.00 % < 80 % (JaCoCo XML, 60 of 100 lines" in (
        run.log
    )
    assert "NOT ready (coverage)" in run.log
    assert not (run.results / "build.log").exists()
    assert github.releases == [] and github.repo(REPO).deployments == []


def test_without_a_coverage_artifact_coverage_is_not_measured(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    seed_tag(github, TAG)
    run = release(tmp_path, github, slack, report=None)
    assert run.returncode == 0, run.log[-6000:]
    assert (
        "WARN Code coverage 80 % or more: not measured: the release workflow got no "
        "`coverage-artifact`" in run.log
    )
    assert github.release(TAG, REPO)["tag_name"] == TAG
