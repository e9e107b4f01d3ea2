"""`metrics review --open-issue` against the GitHub fake with the real PyGithub: one issue per
month, found again by its marker (not its title), updated by a rerun, never opened twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fakes.github import GitHubFake
from tests.integration.deploys import Cli, github_env
from tests.integration.fake_github import raw

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dora" / "history.json"
MARKER = "<!-- release-actions:release-review 2026-04 -->"


def review(cli: Cli, history: Path, *extra: str) -> Any:
    return cli(
        *extra, "metrics", "review", "--input", str(history), "--month", "2026-04",
        "--open-issue", "--json",
    )  # fmt: skip


def test_one_issue_per_month_updated_by_the_next_run(tmp_path: Path, github: GitHubFake) -> None:
    cli = Cli(tmp_path, github_env(github))
    history = tmp_path / "history.json"
    history.write_text(FIXTURE.read_text("utf-8"), encoding="utf-8")

    first = review(cli, history)
    assert first.code == 0, first.stderr
    step = json.loads(first.stdout)["issue"]
    assert step["action"] == "created"
    (issue,) = github.issues()
    assert issue["title"] == "Release review 2026-04"
    assert [label["name"] for label in issue["labels"]] == ["release-review"]
    assert issue["body"].startswith(MARKER + "\n## Release review 2026-04\n")
    assert "| Deployments | 0 | 1 ↑ | 1 → | 9 ↑ | better |" in issue["body"]
    assert "a rerun for the same month updates this issue" in issue["body"]
    assert first.outputs["issue"] == str(issue["number"])
    assert first.outputs["issue-url"].endswith(f"/octo/app/issues/{issue['number']}")
    assert github.repo().labels["release-review"]["color"] == "0e8a16"

    # The review meeting ticks an agenda item; the same figures then write nothing.
    number = issue["number"]
    ticked = issue["body"].replace("- [ ] **Metrics**", "- [x] **Metrics**")
    assert ticked != issue["body"]
    raw(github, "PATCH", f"/repos/octo/app/issues/{number}", {"body": ticked})
    writes = len(github.writes())
    again = review(cli, history)
    assert json.loads(again.stdout)["issue"]["action"] == "unchanged"
    assert len(github.writes()) == writes

    # A person retitles and closes it; a late deployment changes the figures: the run finds
    # it by its marker, updates the body and the title, and leaves it closed.
    raw(github, "PATCH", f"/repos/octo/app/issues/{number}",
        {"title": "April review (done)", "state": "closed"})  # fmt: skip
    data = json.loads(history.read_text("utf-8"))
    data["deployments"][-2]["status"] = "failure"  # d9
    history.write_text(json.dumps(data), encoding="utf-8")
    third = review(cli, history)
    assert third.code == 0, third.stderr
    assert json.loads(third.stdout)["issue"]["action"] == "updated"
    (issue,) = github.issues()
    assert issue["number"] == number
    assert issue["title"] == "Release review 2026-04"
    assert issue["state"] == "closed"
    assert "| Deployment success rate | 33.3 % |" in issue["body"]
    assert "- [x] **Metrics**" in issue["body"]  # the tick survives the update
    assert "- [ ] **Incidents**" in issue["body"]

    # Another month is another issue; another environment another one again.
    may = cli("metrics", "review", "--input", str(history), "--month", "2026-05", "--open-issue")
    assert may.code == 0, may.stderr
    dry = review(cli, history, "--dry-run")
    assert json.loads(dry.stdout)["issue"]["action"] == "unchanged"
    other = cli(
        "metrics", "review", "--input", str(history), "--month", "2026-04", "--open-issue",
        "--environment", "staging",
    )  # fmt: skip
    assert other.code == 0, other.stderr
    titles = sorted(i["title"] for i in github.issues())
    assert titles == [
        "Release review 2026-04",
        "Release review 2026-04 (staging)",
        "Release review 2026-05",
    ]


def test_a_dry_run_opens_nothing(tmp_path: Path, github: GitHubFake) -> None:
    cli = Cli(tmp_path, github_env(github))
    r = review(cli, FIXTURE, "--dry-run")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["issue"]["action"] == "would create"
    assert github.issues() == []
    assert r.outputs["issue"] == ""
