"""`metrics dora` and `metrics review` from the fixture history: the JSON, the report in the
job summary and `--report`, the periods, the errors; GitHub and Datadog stood in for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunCli

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "dora" / "history.json"
APRIL = ["--from", "2026-04-01", "--to", "2026-04-30"]


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No .github/release-policy.yml of this checkout: the source document's policy.
    monkeypatch.chdir(tmp_path)


def dora_json(run_cli: RunCli, *args: str) -> dict[str, Any]:
    r = run_cli("metrics", "dora", "--input", str(FIXTURE), *args, "--json")
    assert r.code == 0, r.stdout + r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def test_dora_json_has_the_figures_of_the_period(run_cli: RunCli) -> None:
    data = dora_json(run_cli, *APRIL)
    assert data["ok"] is True
    # The figures computed by hand in tests/unit/core/test_dora.py.
    assert data["deployments"] == 9
    assert data["days"] == 30
    assert data["deployment_frequency_per_day"] == pytest.approx(0.3)
    assert (data["lead_time_median_s"], data["lead_time_p90_s"]) == (10800, 86400)
    assert data["change_failure_rate_percent"] == pytest.approx(500 / 9)
    assert (data["restore_median_s"], data["restore_mean_s"]) == (1200, 2900)
    assert data["tiers"] == {
        "frequency": "high",
        "lead_time": "high",
        "change_failure_rate": "low",
        "restore": "elite",
    }
    assert set(data["targets"]) == {"year1", "year3"}
    assert set(data["quality"]) == {
        "deployment_success_rate_percent",
        "canary_success_rate_percent",
        "rollback_rate_percent",
        "mean_rollback_s",
        "blockers_per_release",
        "deployment_duration_median_s",
    }
    assert data["period"] == {
        "from": "2026-04-01",
        "to": "2026-04-30",
        "timezone": "Asia/Tokyo",
        "days": 30,
    }
    assert data["source"]["input"] == str(FIXTURE)
    assert data["source"]["requests"] is None
    assert data["datadog"] is None


def test_since_is_the_days_ending_today_in_the_policys_zone(run_cli: RunCli) -> None:
    # 2026-04-30T16:00Z is May 1 in Tokyo: the 31 days ending May 1 are April 1 to May 1.
    data = dora_json(run_cli, "--since", "31d", "--now", "2026-04-30T16:00:00Z")
    assert data["period"]["from"] == "2026-04-01"
    assert data["period"]["to"] == "2026-05-01"
    assert data["deployments"] == 10  # April's 9 and d11, on May 1 in Tokyo


def test_the_report_goes_to_the_summary_and_the_file(run_cli: RunCli, tmp_path: Path) -> None:
    report = tmp_path / "out" / "metrics.md"
    r = run_cli("metrics", "dora", "--input", str(FIXTURE), *APRIL, "--report", str(report))
    assert r.code == 0, r.stderr
    text = report.read_text("utf-8")
    assert r.summary == text
    assert r.outputs["report"] == str(report)
    assert json.loads(r.outputs["figures"])["deployments"] == 9
    assert text.startswith("## Release metrics: production, 2026-04-01 to 2026-04-30\n")
    assert "| Deployment frequency | 0.30/day (9 deployments in 30 days) | high |" in text
    assert "| Lead time for changes | 3h median, 1d p90 (11 commits) | high | < 1d: met |" in text
    assert "20m median, 48m 20s mean (3 restored); 1 without recovery | elite" in text
    assert "| Canary success rate | 71.4 % | > 90.0 %: **not met** |" in text
    assert text.count("xychart-beta") == 3
    assert 'x-axis ["2026-W14", "2026-W15", "2026-W16", "2026-W17", "2026-W18"]' in text
    assert "bar [3, 2, 2, 1, 1]" in text
    assert "line [3, 24.67, 1, 0, 12]" in text
    assert "| error_rate | 2 | 2 | 1h 10m |" in text
    # Times in the policy's zone: RB-2026-001 was detected at 01:05 on April 1 in Tokyo.
    assert "| RB-2026-001 | v1.3.0 | error_rate | error rate 4.2% > 1% | 2026-04-01 01:05 |" in text
    assert "| RB-2026-002 | v1.4.0 | manual | – | 2026-04-08 15:00 | **not restored** |" in text
    assert "| `c51` | v1.4.0 | 2d | 2026-04-06 14:30 | 2026-04-08 14:30 |" in text
    # The person's lines on standard output.
    assert "deployment frequency     0.30/day     high" in r.stdout


def test_a_period_without_data_says_so_and_is_never_elite(run_cli: RunCli) -> None:
    r = run_cli("metrics", "dora", "--input", str(FIXTURE), "--from", "2026-01-01", "--to",
                "2026-01-31")  # fmt: skip
    assert r.code == 0, r.stderr
    assert "| Lead time for changes | no commits | no data |" in r.summary
    assert "| Time to restore | no rollback restored | no data |" in r.summary
    assert "No rollback in the period." in r.summary
    assert "No commit reached production in the period." in r.summary
    assert "elite" not in r.summary.split("Tiers (DORA)")[0]


def test_text_from_the_history_cannot_break_a_table(run_cli: RunCli, tmp_path: Path) -> None:
    data = json.loads(FIXTURE.read_text("utf-8"))
    data["deployments"][3]["rollback"]["trigger"] = "error|rate\n## injected"
    history = tmp_path / "history.json"
    history.write_text(json.dumps(data), encoding="utf-8")
    r = run_cli("metrics", "dora", "--input", str(history), *APRIL)
    assert r.code == 0, r.stderr
    assert "| error\\|rate ## injected | 1 | 1 | 20m |" in r.summary
    assert "\n## injected" not in r.summary


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--since", "90d", "--from", "2026-04-01", "--to", "2026-04-30"], "not both"),
        (["--from", "2026-04-01"], "go together"),
        (["--since", "3w"], "number of days"),
        (["--now", "2026-05-01T10:00:00"], "no UTC offset"),
    ],
)
def test_a_period_that_is_not_one_is_refused(run_cli: RunCli, args: list[str], words: str) -> None:
    r = run_cli("metrics", "dora", "--input", str(FIXTURE), *args)
    assert r.code == 2, r.stdout + r.stderr
    assert words in r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert r.summary == ""


def test_a_bad_history_names_the_file_the_path_and_what_is_wrong(
    run_cli: RunCli, tmp_path: Path
) -> None:
    data = json.loads(FIXTURE.read_text("utf-8"))
    data["deployments"][3]["finished_at"] = "2026-04-01T01:00:00"
    history = tmp_path / "history.json"
    history.write_text(json.dumps(data), encoding="utf-8")
    r = run_cli("metrics", "dora", "--input", str(history), "--json", actions=False)
    assert r.code == 2
    error = json.loads(r.stdout)["error"]
    assert error["code"] == "dora_input"
    assert error["file"] == str(history)
    assert error["field"] == "deployments[3].finished_at"
    assert "has no UTC offset" in error["issues"][0]["message"]
    r = run_cli("metrics", "dora", "--input", str(history))
    assert f"file={history}" in r.stderr or str(history) in r.stderr
    assert "`deployments[3].finished_at`" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_a_missing_history_file(run_cli: RunCli, tmp_path: Path) -> None:
    r = run_cli("metrics", "dora", "--input", str(tmp_path / "nope.json"))
    assert r.code == 2
    assert "Cannot read the deployment history" in r.stdout + r.stderr
    assert "metrics export" in r.stderr


# -- GitHub and Datadog, stood in for -------------------------------------------------------


@pytest.fixture
def gathered(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`app.metrics_gather.gather` answering the fixture; its calls are recorded."""
    from release_actions.app.metrics_gather import Gathered

    calls: list[dict[str, Any]] = []

    def gather(session: Any, policy: Any, **kw: Any) -> Gathered:
        calls.append(kw)
        return Gathered(json.loads(FIXTURE.read_text("utf-8")), 7, 993, 1000)

    monkeypatch.setattr("release_actions.app.metrics_gather.gather", gather)
    return calls


def test_without_input_github_is_read_and_its_cost_said(
    run_cli: RunCli, gathered: list[dict[str, Any]], tmp_path: Path
) -> None:
    cache = tmp_path / "cache.json"
    r = run_cli("metrics", "dora", *APRIL, "--cache", str(cache), "--repo", "triptrip/webapp")
    assert r.code == 0, r.stderr
    assert "GitHub: 7 requests; rate limit 993 of 1000 left" in r.stdout
    assert "GitHub: 7 requests; rate limit 993 of 1000 left." in r.summary
    (call,) = gathered
    # From the evening before the period: a deployment that started then finished in it.
    assert call["since"].isoformat() == "2026-03-31T00:00:00+09:00"
    assert call["until"].isoformat() == "2026-05-01T00:00:00+09:00"
    assert call["environment"] == "production"
    assert call["repository"] == "triptrip/webapp"
    assert call["cache"] == cache
    data = dora_json(run_cli, *APRIL)  # with --input: no call
    assert len(gathered) == 1
    assert data["deployments"] == 9


def test_the_review_reads_github_once_for_its_four_months(
    run_cli: RunCli, gathered: list[dict[str, Any]]
) -> None:
    r = run_cli("metrics", "review", "--month", "2026-04", "--environment", "staging", "--json")
    assert r.code == 0, r.stderr
    (call,) = gathered
    assert call["since"].isoformat() == "2025-12-31T00:00:00+09:00"
    assert call["environment"] == "staging"
    data = json.loads(r.stdout)
    assert data["source"]["requests"] == 7


@pytest.fixture
def datadog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[Any, ...]]:
    sent: list[tuple[Any, ...]] = []

    def submit(figures: Any, tags: Any, env: Any) -> list[str]:
        sent.append((figures, tags, env))
        return [f"release_actions.dora.{name}" for name in figures]

    monkeypatch.setattr("release_actions.integrations.dora_datadog.submit", submit)
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "release-policy.yml").write_text("reporting:\n  datadog: true\n")
    return sent


def test_the_policy_sends_the_figures_to_datadog(
    run_cli: RunCli, datadog: list[tuple[Any, ...]]
) -> None:
    data = dora_json(run_cli, *APRIL)
    assert data["datadog"] == "submitted"
    assert (
        "Datadog: submitted 17 gauges (environment:production)"
        in run_cli("metrics", "dora", "--input", str(FIXTURE), *APRIL).stdout
    )
    assert len(datadog) == 2  # one for each run
    figures, tags, env = datadog[0]
    assert figures["deployments"] == 9
    assert figures["lead_time_median_s"] == 10800
    assert "restore_median_s" in figures and "days" not in figures
    assert all(isinstance(v, float) for v in figures.values())
    assert tags == ["environment:production"]
    assert env["GITHUB_ACTIONS"] == "true"


def test_a_dry_run_sends_nothing(run_cli: RunCli, datadog: list[tuple[Any, ...]]) -> None:
    r = run_cli("--dry-run", "metrics", "dora", "--input", str(FIXTURE), *APRIL)
    assert r.code == 0, r.stderr
    assert datadog == []
    assert "Datadog: would submit" in r.stdout


# -- metrics review ---------------------------------------------------------------------------


def test_review_defaults_to_the_month_that_just_ended(run_cli: RunCli) -> None:
    r = run_cli(
        "metrics", "review", "--input", str(FIXTURE), "--now", "2026-05-01T10:00:00+09:00",
        "--json",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["month"] == "2026-04"
    assert list(data["months"]) == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert data["deployments"] == 9
    assert data["issue"] is None
    lead = next(row for row in data["trend"] if row["key"] == "lead_time_median_s")
    assert [c["value"] for c in lead["months"]] == [None, 86400, 136799, 10800]
    assert lead["last_month"] == "better"


def test_review_summary_has_the_trend_table_and_the_report(run_cli: RunCli) -> None:
    r = run_cli("metrics", "review", "--input", str(FIXTURE), "--month", "2026-04")
    assert r.code == 0, r.stderr
    text = r.summary
    assert text.startswith("## Release review 2026-04\n")
    assert "<!-- release-actions:release-review" not in text  # the marker is the issue's
    assert "| Figure | 2026-01 | 2026-02 | 2026-03 | 2026-04 | 2026-04 vs. before |" in text
    assert "| Deployments | 0 | 1 ↑ | 1 → | 9 ↑ | better |" in text
    assert "| Lead time for changes (median) | – | 1d | 1d 13h ↑ | 3h ↓ | better |" in text
    assert "| Change failure rate | – | 0.0 % | 0.0 % → | 55.6 % ↑ | worse |" in text
    assert "### Release metrics: production, 2026-04-01 to 2026-04-30" in text
    assert "- [ ] **Incidents**" in text
    assert r.outputs["issue"] == "" and r.outputs["issue-url"] == ""


def test_review_month_is_checked(run_cli: RunCli) -> None:
    r = run_cli("metrics", "review", "--input", str(FIXTURE), "--month", "2026-4")
    assert r.code == 2
    assert "not a month such as `2026-11`" in r.stdout + r.stderr


def test_the_templates_render_strictly() -> None:
    import jinja2

    from release_actions.app.metrics import render

    with pytest.raises(jinja2.UndefinedError):
        render("dora_report.md.j2", {"level": 2})


def test_the_docs_sample_is_the_commands_output(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    root = FIXTURE.parents[3]
    monkeypatch.chdir(root)  # the sample names the fixture by its path in the repository
    r = run_cli(
        "metrics", "dora", "--input", "tests/fixtures/dora/history.json", "--from", "2026-04-01",
        "--to", "2026-04-30",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    page = (root / "docs" / "metrics.md").read_text("utf-8")
    m = re.search(
        r"<!-- BEGIN sample metrics dora -->\n(.*?)<!-- END sample metrics dora -->", page, re.S
    )
    assert m is not None
    assert m[1] == r.summary, "regenerate the sample in docs/metrics.md with the command above it"


def test_a_release_type_the_policy_adds_is_a_kind_of_deployment(
    run_cli: RunCli, tmp_path: Path
) -> None:
    # The writer records the release type; a policy's own type must not make the whole
    # history unreadable (it did: only the source's five were accepted).
    data = json.loads(FIXTURE.read_text("utf-8"))
    data["deployments"][3]["kind"] = "data-fix"
    history = tmp_path / "history.json"
    history.write_text(json.dumps(data), encoding="utf-8")
    r = run_cli("metrics", "dora", "--input", str(history), *APRIL, "--json", actions=False)
    assert r.code == 2 and json.loads(r.stdout)["error"]["field"] == "deployments[3].kind"
    regular = dict(json.loads(FIXTURE.read_text("utf-8"))["deployments"][3])
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "release-policy.yml").write_text(
        "release_types:\n  data-fix:\n    description: Data repair\n    approval: manual\n"
        "    approvers: [tech-lead]\n    environment: production\n    canary: optional\n"
        "    blocked_periods: warn\n    outside_release_window: allow\n"
        "    maintenance_windows: warn\n    high_traffic_periods: staged\n"
        "    strategy: null\n    monitor_seconds: 300\n"
    )
    r = run_cli("metrics", "dora", "--input", str(history), *APRIL, "--json", actions=False)
    assert r.code == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["deployments"] == 9
    assert regular["kind"] != "hotfix"  # so the change failure rate is the fixture's
    assert json.loads(r.stdout)["change_failure_rate_percent"] == pytest.approx(55.6, abs=0.05)
