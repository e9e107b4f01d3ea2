"""The release-metrics starter template under act: a workflow_dispatch run reports DORA's four
keys over 90 days in the job summary and opens the April review's issue in the GitHub fake
(the real PyGithub talks to it); a second run finds it by its marker and opens no other.

The consumer copies workflow-templates/release-metrics.yml with `input` and `now` added, so
the history is the committed fixture (no deployment is read from GitHub) and the clock is
fixed on May 1, 10:00 in Tokyo: the review is of April.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.act_harness import ROOT, ActRun, make_consumer, run_act, starter_template
from tests.fakes.github import GitHubFake

pytestmark = pytest.mark.e2e

REPO = "triptrip/webapp"
TOKEN = "ghs_e2etoken"
NOW = "2026-05-01T10:00:00+09:00"
MARKER = "<!-- release-actions:release-review 2026-04 -->"
HISTORY = ROOT / "tests" / "fixtures" / "dora" / "history.json"
POLICY = """\
deploy:
  target: simulated
"""


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake(repos=(REPO,), token=TOKEN) as fake:
        yield fake


def template() -> bytes:
    return starter_template("release-metrics", {"input": "history.json", "now": NOW}, replace=True)


def dispatch(tmp_path: Path, github: GitHubFake) -> ActRun:
    consumer = make_consumer(
        tmp_path,
        "release",
        repo=REPO,
        files={
            ".github/workflows/release-metrics.yml": template(),
            ".github/release-policy.yml": POLICY.encode(),
            "history.json": HISTORY.read_bytes(),
        },
    )
    return run_act(
        consumer,
        event_name="workflow_dispatch",
        event={"repository": {"full_name": REPO, "default_branch": "main"}, "inputs": {}},
        workflow=".github/workflows/release-metrics.yml",
        env={"GITHUB_API_URL": github.url},
        secrets={"GITHUB_TOKEN": TOKEN},
    )


def test_a_dispatched_run_reports_and_opens_the_months_review_once(
    tmp_path: Path, github: GitHubFake
) -> None:
    run = dispatch(tmp_path / "first", github)
    assert run.returncode == 0, run.log[-8000:]
    assert "Traceback" not in run.log, run.log[-8000:]
    # The report job's summary: the 90 days ending May 1 in Tokyo (February 1 to May 1).
    assert "Summary - ## Release metrics: production, 2026-02-01 to 2026-05-01" in run.log
    assert "90 calendar days in Asia/Tokyo" in run.log
    assert "| Deployment frequency | 0.13/day (12 deployments in 90 days) |" in run.log
    assert "xychart-beta" in run.log
    # The review job's summary: April against January to March.
    assert "Summary - ## Release review 2026-04" in run.log
    assert "| Deployments | 0 | 1 ↑ | 1 → | 9 ↑ | better |" in run.log
    (issue,) = github.issues(repo=REPO)
    assert issue["title"] == "Release review 2026-04"
    assert [label["name"] for label in issue["labels"]] == ["release-review"]
    body = issue["body"]
    assert body.startswith(MARKER)
    assert "### Release metrics: production, 2026-04-01 to 2026-04-30" in body
    assert "| Lead time for changes | 3h median, 1d p90 (11 commits) | high | < 1d: met |" in body

    again = dispatch(tmp_path / "again", github)
    assert again.returncode == 0, again.log[-8000:]
    assert "review issue: unchanged: Release review 2026-04" in again.log, again.log[-8000:]
    assert len(github.issues(repo=REPO)) == 1
