"""`flags export`, `flags stage` and `flags advance` against the LaunchDarkly REST fake."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release_actions.errors import IntegrationError
from release_actions.integrations.launchdarkly import (
    SEMANTIC_PATCH,
    LaunchDarklyFlags,
    PatchConflictError,
)
from release_actions.metrics.retry import RetryPolicy
from tests.conftest import CliResult, RunCli
from tests.fakes.launchdarkly import API_TOKEN, PROJECT, LaunchDarklyFake

pytestmark = pytest.mark.integration

FLAG = "new-booking-flow"  # a release flag in the default catalog
OPS = "payment-gateway-enabled"  # an ops flag in the default catalog
DAY_MS = 24 * 3600 * 1000

POLICY = """\
feature_flags:
  catalog:
    - {key: new-booking-flow, kind: release, owner: triptrip/booking, experiment_ends: null}
    - {key: payment-gateway-enabled, kind: ops, owner: triptrip/payments, experiment_ends: null}
    - key: search-algorithm-variant
      kind: experiment
      owner: alice
      experiment_ends: "2026-03-01"
    - {key: retired-flag, kind: release, owner: null, experiment_ends: null}
"""


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The policy is the source document's unless a test writes one: never this checkout's.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake() -> Iterator[LaunchDarklyFake]:
    with LaunchDarklyFake() as server:
        yield server


def env_for(fake: LaunchDarklyFake, **extra: str) -> dict[str, str]:
    return {
        "LD_API_KEY": API_TOKEN,
        "LAUNCHDARKLY_BASE_URL": fake.url,
        "LAUNCHDARKLY_PROJECT": PROJECT,
        **extra,
    }


def client(fake: LaunchDarklyFake, sleeps: Sleeps | None = None) -> LaunchDarklyFlags:
    sleeps = sleeps or Sleeps()
    policy = RetryPolicy(
        attempts=4, total_seconds=60, backoff_initial=0.5, jitter=0.0, retry_after_cap=30,
        sleep=sleeps.sleep, clock=sleeps.clock,
    )  # fmt: skip
    return LaunchDarklyFlags(
        None, api_token=API_TOKEN, project=PROJECT, base_url=fake.url, retry=policy, timeout=5
    )


def patches(fake: LaunchDarklyFake) -> list[Any]:
    return [r for r in fake.requests if r.method == "PATCH"]


def new_flag(fake: LaunchDarklyFake, key: str = FLAG, **kw: Any) -> dict[str, Any]:
    kw.setdefault("on", {"production": False, "staging": False})
    return fake.add_flag(key, **kw)


def run_json(run_cli: RunCli, fake: LaunchDarklyFake, *args: str, **env: str) -> CliResult:
    return run_cli(*args, "--json", env=env_for(fake, **env))


# -- the client ------------------------------------------------------------------------------------


def test_list_flags_follows_next_links_and_asks_for_rules(fake: LaunchDarklyFake) -> None:
    for n in range(5):
        new_flag(fake, f"flag-{n}")
    new_flag(fake, "old-flag", archived=True)

    flags = client(fake).list_flags(archived=True, page_size=2)

    assert sorted(f["key"] for f in flags) == [*(f"flag-{n}" for n in range(5)), "old-flag"]
    assert all("rules" in f["environments"]["production"] for f in flags)  # summary=0
    listing = [r for r in fake.requests if r.path == f"/api/v2/flags/{PROJECT}"]
    assert [r.params.get("offset") for r in listing] == ["0", "2", "4", "0"]
    assert listing[-1].params["filter"] == "state:archived"
    assert all(r.params["summary"] == "0" for r in listing)


def test_status_and_audit_log(fake: LaunchDarklyFake) -> None:
    new_flag(fake)
    fake.set_status(FLAG, "production", "active", last_requested="2026-05-01T10:00:00Z")
    ld = client(fake)

    assert ld.flag_status(FLAG, "production")["name"] == "active"
    assert ld.flag_statuses("production")[FLAG]["lastRequested"] == "2026-05-01T10:00:00Z"
    ld.semantic_patch(FLAG, "production", [{"kind": "turnFlagOn"}], comment="on")
    ld.semantic_patch(FLAG, "staging", [{"kind": "turnFlagOn"}], comment="staging on")

    entries = ld.audit_log(FLAG, "production")
    assert [e["comment"] for e in entries] == ["on"]  # the spec keeps production's
    detail = ld.audit_entry(entries[0]["_id"])
    assert detail["currentVersion"]["environments"]["production"]["on"] is True
    assert detail["previousVersion"]["environments"]["production"]["on"] is False


def test_semantic_patch_sends_the_domain_model(fake: LaunchDarklyFake) -> None:
    new_flag(fake)

    flag = client(fake).semantic_patch(FLAG, "staging", [{"kind": "turnFlagOn"}], comment="c")

    assert flag["environments"]["staging"]["on"] is True and flag["_version"] == 2
    sent = patches(fake)[-1]
    assert sent.headers["content-type"] == SEMANTIC_PATCH
    assert sent.body == {
        "environmentKey": "staging",
        "comment": "c",
        "instructions": [{"kind": "turnFlagOn"}],
    }


def test_an_unknown_instruction_is_a_400_with_launchdarklys_message(
    fake: LaunchDarklyFake,
) -> None:
    new_flag(fake)
    with pytest.raises(IntegrationError, match=r"HTTP 400: invalid_request: Unsupported") as info:
        client(fake).semantic_patch(FLAG, "staging", [{"kind": "turnFlagSideways"}])
    assert "`turnFlagSideways`" in info.value.message
    assert not fake.is_on(FLAG, "staging") and fake.audit == []


def test_a_conflict_is_its_own_error(fake: LaunchDarklyFake) -> None:
    new_flag(fake)
    fake.conflict_next_patch()
    with pytest.raises(PatchConflictError, match="HTTP 409"):
        client(fake).semantic_patch(FLAG, "staging", [{"kind": "turnFlagOn"}])


def test_rate_limit_waits_for_the_reset_and_is_bounded(fake: LaunchDarklyFake) -> None:
    new_flag(fake)
    sleeps = Sleeps()
    ld = client(fake, sleeps)
    ld.now = time.time
    fake.rate_limit_next("PATCH", reset_in=2.0)

    ld.semantic_patch(FLAG, "staging", [{"kind": "turnFlagOn"}])

    assert fake.is_on(FLAG, "staging")
    assert len(sleeps.waits) == 1 and 1.0 < sleeps.waits[0] <= 2.0  # epoch ms, not seconds
    fake.rate_limit_next("GET", reset_in=1.0, times=10)
    with pytest.raises(IntegrationError, match=r"after 4 attempt\(s\): HTTP 429"):
        ld.get_flag(FLAG)


# -- flags export ----------------------------------------------------------------------------------


def test_export_reads_every_page(run_cli: RunCli, fake: LaunchDarklyFake, tmp_path: Path) -> None:
    for n in range(105):
        new_flag(fake, f"flag-{n:03}")
    new_flag(fake, "old-flag", archived=True)

    r = run_cli("flags", "export", "--output", "flags.json", env=env_for(fake))

    assert r.code == 0, r.stderr
    document = json.loads((tmp_path / "flags.json").read_text())
    assert len(document["flags"]) == 106 and r.outputs["count"] == "106"
    assert next(f for f in document["flags"] if f["key"] == "old-flag")["archived"] is True
    offsets = [r.params["offset"] for r in fake.requests if r.path == f"/api/v2/flags/{PROJECT}"]
    assert offsets == ["0", "100", "0"]  # two pages, then the archived flags


def test_export_fields_kind_and_warnings(
    run_cli: RunCli, fake: LaunchDarklyFake, tmp_path: Path
) -> None:
    (tmp_path / "policy.yml").write_text(POLICY)
    created = int(time.time() * 1000) - 200 * DAY_MS
    new_flag(fake, FLAG, tags=["release"], creation_date=created)
    new_flag(fake, OPS, tags=["release"], temporary=False)  # the catalog says ops
    new_flag(fake, "tagged-experiment", tags=["experiment"], temporary=False)
    new_flag(fake, "temporary-flag")
    new_flag(fake, "permanent-flag", temporary=False)
    new_flag(fake, "search-algorithm-variant", tags=["experiment"])
    new_flag(
        fake,
        "premium-features",
        tags=["permission"],
        temporary=False,
        custom_properties={"lastReviewedAt": {"name": "Last reviewed", "value": ["2026-02-01"]}},
    )

    r = run_json(run_cli, fake, "flags", "export", "--policy", "policy.yml")

    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    flags = {f["key"]: f for f in data["flags"]}
    assert [(k, f["kind"], f["kind_source"]) for k, f in sorted(flags.items())] == [
        ("new-booking-flow", "release", "catalog"),
        ("payment-gateway-enabled", "ops", "catalog"),
        ("permanent-flag", None, "unknown"),
        ("premium-features", "permission", "tags"),
        ("search-algorithm-variant", "experiment", "catalog"),
        ("tagged-experiment", "experiment", "tags"),
        ("temporary-flag", "release", "temporary"),
    ]
    booking = flags[FLAG]
    assert booking["owner"] == "triptrip/booking"
    assert booking["created_at"] == flags[FLAG]["created_at"].replace("Z", "+00:00")
    assert booking["created_at"].endswith("+00:00")
    assert (booking["ga_at"], booking["experiment_ended_at"], booking["last_reviewed_at"]) == (
        None,
        None,
        None,
    )
    assert booking["code_references"] == []
    assert booking["environments"]["production"] == {
        "on": False,
        "rollout_percent": None,
        "status": "inactive",  # created 200 days ago, never requested
        "last_requested": None,
    }
    assert flags["search-algorithm-variant"]["experiment_ended_at"] == "2026-03-01T00:00:00+09:00"
    assert flags["premium-features"]["last_reviewed_at"] == "2026-02-01T00:00:00+09:00"
    warnings = "\n".join(data["warnings"])
    assert "`payment-gateway-enabled`: the policy's catalog says `ops`" in warnings
    assert "tags say `release`" in warnings
    assert "`permanent-flag`: no kind" in warnings
    assert "`retired-flag` is in `feature_flags.catalog` but not in LaunchDarkly" in warnings
    assert "new-booking-flow" not in warnings  # catalog and tag agree
    # `flags audit` reads this document: every field as its parser wants it.
    from release_actions.core.flag_audit import parse_export

    parsed = {f.key: f for f in parse_export(data, "export")}
    assert parsed["premium-features"].last_reviewed_at is not None


def test_export_ga_at_from_the_audit_log(run_cli: RunCli, fake: LaunchDarklyFake) -> None:
    now = int(time.time() * 1000)
    new_flag(fake, FLAG, creation_date=now - 100 * DAY_MS)
    prod = fake.flags[(PROJECT, FLAG)]["environments"]["production"]
    prod["on"] = True
    prod["fallthrough"] = {
        "rollout": {
            "variations": [{"variation": 0, "weight": 50000}, {"variation": 1, "weight": 50000}]
        }
    }
    fake.add_audit_entry(FLAG, "production", now - 40 * DAY_MS, comment="50 %")
    prod["fallthrough"] = {"variation": 0}
    fake.add_audit_entry(FLAG, "production", now - 30 * DAY_MS, comment="GA")
    prod["rules"] = [{"_id": "r1", "clauses": [], "variation": 0}]
    fake.add_audit_entry(FLAG, "production", now - 10 * DAY_MS, comment="still GA")
    # Launched in staging with no audit-log entry: its last change is the date.
    new_flag(fake, "launched-flag")
    fake.flags[(PROJECT, "launched-flag")]["environments"]["production"]["lastModified"] = (
        now - 20 * DAY_MS
    )
    fake.set_status("launched-flag", "production", "launched")

    r = run_json(run_cli, fake, "flags", "export")

    assert r.code == 0, r.stderr
    flags = {f["key"]: f for f in json.loads(r.stdout)["flags"]}
    assert flags[FLAG]["ga_at"] == _iso(now - 30 * DAY_MS)
    assert flags[FLAG]["environments"]["production"]["rollout_percent"] == 100
    assert flags[FLAG]["stage"] == "ga"
    assert flags["launched-flag"]["ga_at"] == _iso(now - 20 * DAY_MS)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


# -- flags stage and advance -----------------------------------------------------------------------


def _rule(env: dict[str, Any]) -> list[tuple[str, str, list[Any], Any]]:
    out = []
    for rule in env["rules"]:
        (clause,) = rule["clauses"]
        serve = rule.get("variation")
        if serve is None:
            serve = {v["variation"]: v["weight"] for v in rule["rollout"]["variations"]}
        out.append((clause["attribute"], clause["op"], clause["values"], serve))
    return out


def _fallthrough(env: dict[str, Any]) -> Any:
    ft = env["fallthrough"]
    if "variation" in ft:
        return ft["variation"]
    return {v["variation"]: v["weight"] for v in ft["rollout"]["variations"]}


INTERNAL = ("email", "endsWith", ["@triptrip.com"], 0)
STEPS: list[tuple[list[str], str, dict[str, Any]]] = [
    (
        ["--to", "internal"],
        "internal",
        {"staging": (True, [INTERNAL], 1), "production": (False, [], 0)},
    ),
    (
        ["--to", "beta"],
        "beta",
        {
            "staging": (True, [INTERNAL], 1),
            "production": (True, [("betaTester", "in", [True], {0: 10000, 1: 90000})], 1),
        },
    ),
    *(
        (
            ["--to", "gradual", "--percent", str(p)],
            f"gradual {p} %",
            {
                "staging": (True, [INTERNAL], 1),
                "production": (True, [], {0: p * 1000, 1: 100000 - p * 1000}),
            },
        )
        for p in (25, 50, 75, 100)
    ),
    (["--to", "ga"], "ga", {"staging": (True, [INTERNAL], 1), "production": (True, [], 0)}),
]


def test_advance_through_every_stage_once_each(run_cli: RunCli, fake: LaunchDarklyFake) -> None:
    new_flag(fake)
    env = env_for(
        fake,
        GITHUB_SERVER_URL="https://github.com",
        GITHUB_REPOSITORY="triptrip/api",
        GITHUB_RUN_ID="42",
    )
    r = run_cli("flags", "stage", FLAG, env=env)
    assert (r.code, r.outputs["stage"]) == (0, "development"), r.stderr

    for args, label, targeting in STEPS:
        sent = len(patches(fake))
        r = run_cli("flags", "advance", FLAG, *args, "--reason", "on schedule", env=env)
        assert r.code == 0, r.stdout + r.stderr
        assert r.outputs == {"stage": label, "changed": "true"}, label
        assert len(patches(fake)) > sent
        for env_key, (on, rules, fallthrough) in targeting.items():
            got = fake.env(FLAG, env_key)
            assert (got["on"], _rule(got), _fallthrough(got)) == (on, rules, fallthrough), (
                label,
                env_key,
            )
        assert fake.audit[-1]["comment"] == (
            f"release-actions flags advance {FLAG} --to {label}: on schedule "
            "(https://github.com/triptrip/api/actions/runs/42)"
        )
        assert f"-> {label}" in r.summary and "```diff" in r.summary

        stage = run_cli("flags", "stage", FLAG, "--json", env=env)
        assert json.loads(stage.stdout)["stage"]["label"] == label

        sent = len(patches(fake))
        again = run_cli("flags", "advance", FLAG, *args, "--json", env=env)
        assert again.code == 0, again.stderr
        record = json.loads(again.stdout)
        assert (record["changed"], record["changes"], record["stage"]["label"]) == (
            False,
            [],
            label,
        )
        assert len(patches(fake)) == sent, f"a second run of {label} sent a PATCH"
        assert again.outputs["changed"] == "false"
        assert "nothing to change" in again.summary


def test_gradual_without_a_percent_is_the_next_step(
    run_cli: RunCli, fake: LaunchDarklyFake
) -> None:
    new_flag(fake)
    env = env_for(fake)
    for expected in ("gradual 25 %", "gradual 50 %", "gradual 75 %", "gradual 100 %"):
        r = run_cli("flags", "advance", FLAG, "--to", "gradual", env=env)
        assert r.code == 0 and r.outputs["stage"] == expected, r.stderr
    r = run_cli("flags", "advance", FLAG, "--to", "gradual", env=env)
    assert r.code == 2 and "--to ga" in r.stderr  # the hint


def test_advance_json_records_the_change(run_cli: RunCli, fake: LaunchDarklyFake) -> None:
    new_flag(fake)

    r = run_json(run_cli, fake, "flags", "advance", FLAG, "--to", "beta")

    assert r.code == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["ok"] is True and record["changed"] is True
    assert (record["from"]["label"], record["to"]["label"]) == ("development", "beta")
    assert (record["kind"], record["kind_source"]) == ("release", "catalog")
    by_env = {c["environment"]: c for c in record["changes"]}
    assert [i["kind"] for i in by_env["staging"]["instructions"]] == [
        "addRule",
        "updateFallthroughVariationOrRollout",
        "turnFlagOn",
    ]
    assert by_env["production"]["version"] == 3
    assert "+production: on" in record["diff"]
    assert "betaTester in [true] -> 10 % on (rollout)" in record["diff"]


def test_dry_run_sends_no_patch_and_shows_the_diff(run_cli: RunCli, fake: LaunchDarklyFake) -> None:
    new_flag(fake)
    for args in (["flags", "advance", FLAG, "--to", "ga", "--dry-run"],
                 ["--dry-run", "flags", "advance", FLAG, "--to", "ga"]):  # fmt: skip
        r = run_cli(*args, env=env_for(fake))
        assert r.code == 0, r.stderr
        assert patches(fake) == []
        assert "dry run, nothing sent" in r.stdout
        assert "-production: off" in r.stdout and "+production: on" in r.stdout
        assert "+  default rule: on" in r.stdout
        assert r.outputs == {"stage": "development", "changed": "false"}
    assert not fake.is_on(FLAG, "production")


def test_an_ops_flag_is_refused_for_gradual_without_force(
    run_cli: RunCli, fake: LaunchDarklyFake
) -> None:
    new_flag(fake, OPS)

    r = run_json(run_cli, fake, "flags", "advance", OPS, "--to", "gradual", "--percent", "25")

    assert r.code == 2
    error = json.loads(r.stdout)["error"]
    assert "`ops` flag (the policy's catalog)" in error["message"]
    assert "--force" in error["hint"]
    assert patches(fake) == []
    forced = run_cli(
        "flags", "advance", OPS, "--to", "gradual", "--percent", "25", "--force",
        env=env_for(fake),
    )  # fmt: skip
    assert forced.code == 0 and forced.outputs["stage"] == "gradual 25 %", forced.stderr
    assert run_cli("flags", "advance", OPS, "--to", "ga", env=env_for(fake)).code == 0


def test_moving_back_needs_force(run_cli: RunCli, fake: LaunchDarklyFake) -> None:
    new_flag(fake)
    env = env_for(fake)
    assert (
        run_cli("flags", "advance", FLAG, "--to", "gradual", "--percent", "50", env=env).code == 0
    )

    r = run_cli("flags", "advance", FLAG, "--to", "beta", env=env)
    assert r.code == 2 and "would move it back" in r.stdout  # the ::error:: line
    r = run_cli("flags", "advance", FLAG, "--to", "beta", "--force", env=env)
    assert r.code == 0 and r.outputs["stage"] == "beta", r.stderr


def test_an_instruction_launchdarkly_refuses_is_a_clear_error(
    run_cli: RunCli, fake: LaunchDarklyFake
) -> None:
    new_flag(fake)
    fake.unsupported.add("updateFallthroughVariationOrRollout")

    r = run_json(run_cli, fake, "flags", "advance", FLAG, "--to", "gradual", "--percent", "25")

    assert r.code == 2
    error = json.loads(r.stdout)["error"]
    assert error["code"] == "integration"
    assert "HTTP 400" in error["message"]
    assert "`updateFallthroughVariationOrRollout`" in error["message"]
    assert "Unsupported semantic patch instruction kind" in error["message"]
    assert not fake.is_on(FLAG, "production")


def test_a_conflict_reads_the_flag_again(run_cli: RunCli, fake: LaunchDarklyFake) -> None:
    new_flag(fake)

    def someone_turns_staging_on(flag: dict[str, Any]) -> None:
        flag["environments"]["staging"]["on"] = True

    fake.conflict_next_patch(someone_turns_staging_on)

    r = run_json(run_cli, fake, "flags", "advance", FLAG, "--to", "internal")

    assert r.code == 0, r.stdout + r.stderr
    record = json.loads(r.stdout)
    assert record["conflicts"] == 1
    (change,) = record["changes"]
    assert [i["kind"] for i in change["instructions"]] == [
        "addRule",
        "updateFallthroughVariationOrRollout",
    ]  # recomputed: staging was already on
    assert record["stage"]["label"] == "internal"


def test_conflicts_that_go_on_are_bounded(run_cli: RunCli, fake: LaunchDarklyFake) -> None:
    new_flag(fake)
    fake.conflict_next_patch(times=10)

    r = run_json(run_cli, fake, "flags", "advance", FLAG, "--to", "internal")

    assert r.code == 2
    assert "HTTP 409" in json.loads(r.stdout)["error"]["message"]
    assert len(patches(fake)) == 3


def test_a_rate_limited_patch_is_sent_again_after_the_reset(
    run_cli: RunCli, fake: LaunchDarklyFake
) -> None:
    new_flag(fake)
    fake.rate_limit_next("PATCH", reset_in=0.3)

    r = run_cli("flags", "advance", FLAG, "--to", "internal", env=env_for(fake))

    assert r.code == 0, r.stderr
    assert [p.method for p in patches(fake)] == ["PATCH", "PATCH"]
    assert fake.is_on(FLAG, "staging")


def test_no_token_says_which_variable(run_cli: RunCli, fake: LaunchDarklyFake) -> None:
    r = run_cli("flags", "stage", FLAG, env={"LAUNCHDARKLY_BASE_URL": fake.url})
    assert r.code == 2 and "LD_API_KEY" in r.stderr
