"""The policy: defaults equal the source document, bad files name file, line and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from release_actions.core.policy import Policy, default_policy, load_policy, parse_policy
from release_actions.core.yamlpos import load_yaml
from release_actions.errors import PolicyError
from tests.conftest import backend_missing

SEED = Path(__file__).resolve().parents[3].parent / "shared" / "seed"
FIGURES = Path(__file__).resolve().parents[2] / "fixtures" / "source_figures.yml"


def _seed_text() -> str:
    """The source document; outside CI a clone without it skips these checks, in CI they fail."""
    docs = sorted(SEED.glob("*.txt"))
    if not docs:
        backend_missing(f"the source document (expected in {SEED})")
    return docs[0].read_text(encoding="utf-8")


def _at(data: object, key: str) -> object:
    for part in key.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]  # type: ignore[index]
    return data


@pytest.mark.parametrize(
    "row", YAML(typ="safe").load(FIGURES.read_text()), ids=lambda r: f"§{r['section']} {r['key']}"
)
def test_every_default_equals_the_source_figure(row: dict) -> None:  # type: ignore[type-arg]
    """On any clone: the defaults equal the table of the source's figures (tests/fixtures).

    Where the source document is (CI), the tests below check the defaults against it too,
    so the table cannot drift from the document unnoticed.
    """
    assert _at(default_policy().model_dump(mode="json"), row["key"]) == row["value"], row["what"]


def _seed_yaml_after(heading: str) -> dict:  # type: ignore[type-arg]
    """The first ```yaml block after a heading of the source document."""
    text = _seed_text()
    start = text.index(heading)
    block = re.search(r"```yaml\n(.*?)```", text[start:], re.S)
    assert block is not None
    return YAML(typ="safe").load(block.group(1))  # type: ignore[no-any-return]


def test_calendar_defaults_equal_section_2_4() -> None:
    doc = _seed_yaml_after("### 2.4")["release_calendar"]
    cal = default_policy().calendar
    assert doc["regular_releases"]["day"].lower() in cal.release_window.days
    assert doc["regular_releases"]["time"] == f"{cal.release_window.start} JST"
    assert cal.timezone == "Asia/Tokyo"
    assert [(p["start"], p["end"]) for p in doc["blocked_periods"]] == [
        (p.start, p.end) for p in cal.blocked_periods
    ]
    doc_traffic = [
        tuple(s.strip() for s in period.split("#")[0].split(" to "))
        for group in doc["high_traffic_caution"]
        for period in group["periods"]
    ]
    assert doc_traffic == [(p.start, p.end) for p in cal.high_traffic_periods]
    (maint,) = doc["maintenance_windows"]
    (window,) = cal.maintenance_windows
    assert maint["day"].lower() == window.day
    assert maint["time"] == f"{window.start}-{window.end} JST"


def test_trigger_defaults_equal_section_6_1() -> None:
    doc = {t["name"]: t for t in _seed_yaml_after("### 6.1")["auto_rollback_triggers"]}
    trig = default_policy().monitor.triggers

    def number(text: str) -> float:
        return float(re.search(r"[0-9.]+", text).group())  # type: ignore[union-attr]

    def seconds(text: str) -> int:
        return int(number(text) * 60) if "minute" in text else int(number(text))

    assert trig.error_rate_percent.threshold == number(doc["Error Rate Spike"]["condition"])
    assert trig.error_rate_percent.window_seconds == seconds(doc["Error Rate Spike"]["duration"])
    assert trig.p99_latency_ms.threshold == number(
        doc["Latency Degradation"]["condition"].replace("p99", "")
    )
    assert trig.p99_latency_ms.window_seconds == seconds(doc["Latency Degradation"]["duration"])
    assert trig.health_check_failures.threshold == number(doc["Health Check Failures"]["condition"])
    assert trig.health_check_failures.window_seconds == seconds(
        doc["Health Check Failures"]["duration"]
    )
    assert trig.pod_restarts.threshold == number(doc["Crash Loop"]["condition"])
    assert trig.pod_restarts.window_seconds == seconds(doc["Crash Loop"]["duration"])


def test_analysis_defaults_equal_section_4_3_and_4_4() -> None:
    text = _seed_text()
    ts = text[text.index("const defaultConfig") :]
    a = default_policy().canary.analysis
    assert f"maxErrorRateDiff: {a.max_error_rate_diff_points:g}," in ts
    assert f"maxLatencyDiff: {a.max_p99_diff_percent:g}," in ts
    assert f"minRequestCount: {a.min_requests}," in ts
    assert f"analysisDuration: {a.analysis_seconds}," in ts
    argo = text[text.index("### 4.4") : text.index("## 5.")]
    assert f"result[0] >= {a.min_success_rate:g}" in argo
    assert f"result[0] < {a.max_p99_ms:g}" in argo
    assert argo.count(f"failureLimit: {a.failure_limit}") == 2
    weights = [int(w) for w in re.findall(r"setWeight: (\d+)", argo)]
    assert weights == [s.weight for s in default_policy().canary.resolved_steps()]
    assert argo.count(f"interval: {a.interval_seconds // 60}m") == 2


def test_cadences_equal_section_4_4_and_6_3() -> None:
    text = _seed_text()
    monitor = text[text.index("### 6.3") :]
    a = default_policy().canary.analysis
    check = f"checkInterval: {a.sequential_interval_seconds * 1000},"
    assert check in monitor
    assert f"checkInterval: {default_policy().monitor.interval_seconds * 1000}," in monitor
    # The sequential judge looks 6 times as often as the threshold judge; the error limit
    # keeps standing for the same 4 minutes of provider outage.
    assert a.cadence("threshold") == 60 and a.cadence("sequential") == 10
    assert a.error_limit(60) == a.consecutive_error_limit == 4
    assert a.error_limit(10) == 24
    assert a.error_limit(7) == 35  # rounded up, never shorter than 4 minutes
    assert a.error_limit(120) == 4  # never fewer than the count itself


def test_hotfix_defaults_equal_section_7() -> None:
    hotfix = default_policy().release_type("hotfix")
    text = _seed_text()
    assert (
        f"--duration={hotfix.monitor_seconds} --alert-threshold={hotfix.alert_threshold_percent:g}"
        in text
    )
    assert f"BRANCH =~ {default_policy().branches.hotfix_pattern.lstrip('^')}" in text.replace(
        "^hotfix", "hotfix"
    )


def test_a_partial_file_merges_over_the_defaults() -> None:
    located = load_yaml("release_types:\n  hotfix:\n    monitor_seconds: 900\n", "p.yml")
    policy = parse_policy(located.data, "p.yml", located.lines)
    assert policy.release_type("hotfix").monitor_seconds == 900
    assert policy.release_type("hotfix").canary == "optional"  # the rest of hotfix stays
    assert policy.release_type("regular").monitor_seconds == 300


def test_a_new_release_type_starts_from_regular() -> None:
    located = load_yaml("release_types:\n  experiment:\n    description: lab\n", "p.yml")
    policy = parse_policy(located.data, "p.yml", located.lines)
    assert policy.release_type("experiment").blocked_periods == "block"


BAD = """\
calendar:
  timezone: Mars/Olympus
  blocked_periods:
    - name: winter
      start: 02-30
      end: 01-04
release_types:
  hotfix:
    monitr_seconds: 3
canary:
  steps:
    - {weight: 50}
    - {weight: 20}
"""


def test_errors_name_file_line_and_key() -> None:
    located = load_yaml(BAD, "policy.yml")
    with pytest.raises(PolicyError) as exc:
        parse_policy(located.data, "policy.yml", located.lines)
    found = {(i.line, i.key) for i in exc.value.issues}
    assert (2, "calendar.timezone") in found
    assert (5, "calendar.blocked_periods.0.start") in found
    assert (9, "release_types.hotfix.monitr_seconds") in found
    assert any(line == 11 and key.startswith("canary.steps") for line, key in found)
    assert exc.value.file == "policy.yml" and exc.value.line == 2
    assert "policy.yml:9: `release_types.hotfix.monitr_seconds`: unknown key" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: [1, 2\n", 2), ("a: 1\na: 2\n", 2), ("x:\n\t- y\n", 2), ("- just\n- a list\n", 1)],
)
def test_not_yaml_or_not_a_mapping(text: str, line: int) -> None:
    def load() -> None:
        located = load_yaml(text, "p.yml")
        parse_policy(located.data, "p.yml", located.lines)

    with pytest.raises(PolicyError) as exc:
        load()
    assert exc.value.issues and exc.value.issues[0].line == line


def test_load_policy_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "missing.yml")


def test_load_policy_uses_the_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_policy() == default_policy()
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github/release-policy.yml").write_text("calendar:\n  timezone: UTC\n")
    assert load_policy().calendar.timezone == "UTC"


def test_schema_describes_sources() -> None:
    schema = Policy.model_json_schema()
    text = str(schema)
    for section in ("§1.4", "§2.4", "§3.4", "§4.3", "§6.1", "§7"):
        assert section in text


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

yaml_ish = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "calendar",
                    "timezone",
                    "release_types",
                    "hotfix",
                    "canary",
                    "steps",
                    "weight",
                    "blocked_periods",
                    "start",
                    "end",
                    "name",
                    "monitor",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@given(yaml_ish)
@settings(max_examples=300)
def test_any_data_is_a_policy_or_a_policy_error(data: object) -> None:
    try:
        policy = parse_policy(data, "p.yml")
    except PolicyError as exc:
        assert exc.issues and all(i.path == "p.yml" for i in exc.issues)
    else:
        assert policy.version == 1


@given(st.text(max_size=200))
@settings(max_examples=300)
def test_any_text_loads_or_names_a_line(text: str) -> None:
    try:
        located = load_yaml(text, "p.yml")
        parse_policy(located.data, "p.yml", located.lines)
    except PolicyError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.line is None or 1 <= issue.line <= text.count("\n") + 2


def test_readiness_defaults_equal_section_3_1() -> None:
    text = _seed_text()
    checklist = text[text.index("### 3.1") : text.index("### 3.2")]
    readiness = default_policy().readiness
    assert f"コードカバレッジ {readiness.min_coverage_percent:g}%以上" in checklist
    assert f"PRレビュー完了（{readiness.min_approvals}名以上承認）" in checklist


def test_environments_and_region_equal_sections_3_2_and_3_4() -> None:
    text = _seed_text()
    policy = default_policy()
    environments = _seed_yaml_after("### 3.4")["environments"]
    for name, rtype in policy.release_types.items():
        # §3.4 names production and production-hotfix; §3.3 gives security and
        # infrastructure approval chains of their own, which need environments of their own.
        assert rtype.environment in environments or (
            rtype.environment == f"production-{name}" and rtype.approval == "manual"
        ), name
    assert f"REGISTRY: {policy.deploy.cloudrun.region}-docker.pkg.dev" in text
    assert f"--timeout={policy.deploy.kubernetes.rollout_timeout_seconds}s" in text
    k8s = text[text.index("### 4.2") : text.index("### 4.3")]
    assert f"namespace: {policy.deploy.kubernetes.namespace}" in k8s
    assert (
        f"name: {policy.deploy.kubernetes.deployment}{policy.deploy.kubernetes.canary_suffix}"
        in k8s
    )
    assert (
        f'{policy.deploy.kubernetes.istio.canary_header.name}:\n              exact: "{policy.deploy.kubernetes.istio.canary_header.value}"'
        in k8s
    )  # type: ignore[union-attr]


def test_adding_a_company_period_keeps_the_documents_periods(tmp_path: Path) -> None:
    """Source §2.4's three blocked periods stay blocked when a file adds its own."""
    from datetime import datetime

    from release_actions.core.calendar import Decision, check

    path = tmp_path / "p.yml"
    path.write_text(
        "calendar:\n  blocked_periods:\n"
        "    - {name: Company offsite, start: '10-01', end: '10-03'}\n"
        "    - {name: Obon, start: '08-10', end: '08-18'}\n"
    )
    policy = load_policy(path)
    names = [p.name for p in policy.calendar.blocked_periods]
    assert names == ["New Year holidays", "Golden Week", "Obon", "Company offsite"]
    assert policy.calendar.blocked_periods[2].start == "08-10", "a named entry is replaced"
    at = datetime.fromisoformat("2026-12-29T10:00:00+09:00")
    assert check(policy, "regular", at).decision is Decision.BLOCKED


def test_replace_drops_the_defaults_of_a_named_list(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text(
        "replace: [calendar.blocked_periods]\ncalendar:\n  blocked_periods:\n"
        "    - {name: Company offsite, start: '10-01', end: '10-03'}\n"
    )
    assert [p.name for p in load_policy(path).calendar.blocked_periods] == ["Company offsite"]


def test_replace_names_only_lists_that_merge(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("version: 1\nreplace:\n  - calendar.release_window.days\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    (issue,) = info.value.issues
    assert (issue.key, issue.line) == ("replace.0", 3)
    assert "`calendar.blocked_periods`, `calendar.high_traffic_periods`" in issue.message


def test_other_lists_replace_the_defaults(tmp_path: Path) -> None:
    """Release days are an allow-list: merging would widen the window unasked."""
    path = tmp_path / "p.yml"
    path.write_text("calendar:\n  release_window:\n    days: [wednesday]\n")
    assert load_policy(path).calendar.release_window.days == ["wednesday"]
