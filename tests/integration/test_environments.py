"""Environments as code (source §3.4) through PyGithub and the CLI, against the GitHub fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github

from release_actions.errors import PolicyError
from release_actions.integrations.environments import (
    EnvironmentsFileError,
    load_environments,
)
from tests.conftest import RunCli
from tests.fakes.github import GitHubFake
from tests.integration.fake_github import fake_github_env
from tests.integration.fake_github import raw as fake_raw

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "environments.yml"
ADMIN = "ghp_admin_token"


def seeded(fake: GitHubFake) -> GitHubFake:
    fake.add_user("tech-lead-1")
    fake.add_user("tech-lead-2")
    fake.add_team("octo", "release-managers", name="Release Managers")
    return fake


@pytest.fixture
def fake() -> Iterator[GitHubFake]:
    with GitHubFake() as f:
        yield seeded(f)


def env_of(fake: GitHubFake, token: str = ADMIN) -> dict[str, str]:
    return fake_github_env(fake.url, token, RELEASE_ACTIONS_GITHUB_TIMEOUT="5")


def raw(fake: GitHubFake, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return fake_raw(fake, method, path, body, token=ADMIN)


def reviewers_of(env: dict[str, Any]) -> list[tuple[str, str]]:
    rules = [r for r in env["protection_rules"] if r["type"] == "required_reviewers"]
    if not rules:
        return []
    return sorted(
        (r["type"], r["reviewer"].get("slug") or r["reviewer"]["login"])
        for r in rules[0]["reviewers"]
    )


# -- the file ------------------------------------------------------------------------------


def test_the_example_is_the_documents_configuration() -> None:
    config = load_environments(EXAMPLE)
    envs = config.spec.environments
    assert list(envs) == ["staging", "production", "production-hotfix"]
    staging, production, hotfix = envs.values()
    # release.yml runs on tag pushes (`v*`): staging and production admit that tag, which
    # the document's `protected_branches: true` alone refuses.
    for env in (staging, production):
        assert env.deployment_branch_policy is not None
        assert env.deployment_branch_policy.protected_branches is False
        assert ("v*", "tag") in [
            (p.name, p.type) for p in env.deployment_branch_policy.custom_branch_policies
        ]
    assert (staging.reviewers, staging.wait_timer) == ([], 0)
    assert production.deployment_branch_policy is not None
    assert [
        (p.name, p.type) for p in production.deployment_branch_policy.custom_branch_policies
    ] == [
        ("v*", "tag"),
        ("release/*", "branch"),
    ]
    assert [g.teams for g in production.reviewers] == [["release-managers"]]
    assert hotfix.deployment_branch_policy is not None
    assert hotfix.deployment_branch_policy.protected_branches is False
    assert [g.users for g in hotfix.reviewers] == [["tech-lead-1", "tech-lead-2"]]
    # Every approver of the default policy's release types has a mapping.
    assert set(config.spec.approvers) >= {
        "tech-lead",
        "security-team",
        "platform-team",
        "affected-teams",
    }
    assert config.warnings == ()


BAD = """\
environments:
  staging:
    deployment_branch_policy:
      protected_branches: true
    wait_timr: 5
  production:
    wait_timer: 50000
    reviewers:
      - teams: [release-managers]
        groups: [x]
"""


def test_a_bad_file_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "environments.yml"
    path.write_text(BAD)
    with pytest.raises(EnvironmentsFileError) as info:
        load_environments(path)
    found = {(i.line, i.key): i.message for i in info.value.issues}
    assert found[(5, "environments.staging.wait_timr")].startswith(
        "unknown key (valid here: deployment_branch_policy, reviewers, wait_timer"
    )
    assert "43200" in found[(7, "environments.production.wait_timer")]
    assert found[(10, "environments.production.reviewers.0.groups")] == (
        "unknown key (valid here: users, teams)"
    )
    assert all(i.path == str(path) for i in info.value.issues)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (
            "environments:\n  prod:\n    deployment_branch_policy: {}\n",
            "environments.prod.deployment_branch_policy",
            "leave `deployment_branch_policy` out",
        ),
        (
            "environments:\n  prod:\n    prevent_self_review: true\n",
            "environments.prod",
            "needs `reviewers`",
        ),
        (
            "environments:\n  prod:\n    reviewers:\n      - users: [a, b, c, d]\n"
            "      - teams: [e, f, g]\n",
            "environments.prod",
            "up to 6",
        ),
        (
            "environments:\n  prod:\n    reviewers:\n      - users: ['bad login!']\n",
            "environments.prod.reviewers.0",
            "not a GitHub login",
        ),
        ("- just a list\n", "(document)", "expected an `environments:` mapping"),
    ],
)
def test_rules_github_would_refuse_are_caught_in_the_file(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    path = tmp_path / "e.yml"
    path.write_text(text)
    with pytest.raises(EnvironmentsFileError) as info:
        load_environments(path)
    (issue,) = info.value.issues
    assert issue.key == key and words in issue.message
    assert issue.line is not None


def test_a_missing_or_broken_file_is_an_environments_error(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentsFileError, match="does not exist"):
        load_environments(tmp_path / "nope.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("environments:\n  staging: [\n")
    with pytest.raises(PolicyError) as info:
        load_environments(broken)
    assert isinstance(info.value, EnvironmentsFileError)
    assert info.value.issues[0].line is not None


def test_the_cli_reports_a_bad_file_as_annotations(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "environments.yml"
    path.write_text(BAD)
    result = run_cli("environments", "validate", "--file", str(path))
    assert result.code == 2
    assert f"::error file={path},line=5," in result.stdout
    assert "`environments.staging.wait_timr`: unknown key" in result.stdout


# -- plan and apply --------------------------------------------------------------------------


def test_plan_shows_the_diff_and_writes_nothing(fake: GitHubFake, run_cli: RunCli) -> None:
    result = run_cli(
        "environments", "plan", "--file", str(EXAMPLE), env=env_of(fake), actions=False
    )
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "3 to create, 0 to update, 0 unchanged (8 API write(s) to make)" in out
    assert "+ staging (new)\n    deployment branches: branch and tag patterns" in out
    assert "+ branch policy v* (tag)" in out
    assert "reviewers: team octo/release-managers" in out
    assert "reviewers: user tech-lead-1, user tech-lead-2" in out
    assert "+ branch policy release/* (branch)" in out
    assert "+ branch policy hotfix/* (branch)" in out
    assert result.outputs == {"changes": "8"}
    assert "| production | reviewers | (new) | team octo/release-managers |" in result.summary
    assert "| staging | branch policy | (none) | v* (tag) |" in result.summary
    assert "[!WARNING]" not in result.summary
    assert fake.writes() == []


def test_apply_creates_the_documents_environments(fake: GitHubFake, run_cli: RunCli) -> None:
    result = run_cli("environments", "apply", "--file", str(EXAMPLE), env=env_of(fake))
    assert result.code == 0, result.stderr + result.stdout
    assert result.outputs == {"changes": "8"}
    writes = [(q.method, q.path) for q in fake.writes()]
    policies = "deployment-branch-policies"
    assert writes == [
        ("PUT", "/repos/octo/app/environments/staging"),
        ("POST", f"/repos/octo/app/environments/staging/{policies}"),
        ("POST", f"/repos/octo/app/environments/staging/{policies}"),
        ("PUT", "/repos/octo/app/environments/production"),
        ("POST", f"/repos/octo/app/environments/production/{policies}"),
        ("POST", f"/repos/octo/app/environments/production/{policies}"),
        ("PUT", "/repos/octo/app/environments/production-hotfix"),
        ("POST", f"/repos/octo/app/environments/production-hotfix/{policies}"),
    ]
    # Tag policies go in with their type (POST .../deployment-branch-policies {name, type}).
    posted = [q.body for q in fake.writes() if q.method == "POST"]
    assert {"name": "v*", "type": "tag"} in posted
    # Reviewers went in as ids, resolved through GET /users and GET /orgs/{org}/teams.
    put = next(q for q in fake.requests if q.path.endswith("/production-hotfix"))
    ids = sorted(r["id"] for r in put.body["reviewers"])
    assert ids == sorted(u["id"] for u in fake.users.values())
    assert {(q.method, q.path) for q in fake.requests} >= {
        ("GET", "/users/tech-lead-1"),
        ("GET", "/orgs/octo/teams/release-managers"),
    }

    staging = fake.environment("staging")
    assert staging["deployment_branch_policy"] == {
        "protected_branches": False,
        "custom_branch_policies": True,
    }
    assert reviewers_of(staging) == []
    assert fake.branch_policies("staging") == [
        {"name": "hotfix/*", "type": "branch"},
        {"name": "v*", "type": "tag"},
    ]
    production = fake.environment("production")
    assert production["deployment_branch_policy"] == {
        "protected_branches": False,
        "custom_branch_policies": True,
    }
    assert reviewers_of(production) == [("Team", "release-managers")]
    assert fake.branch_policies("production") == [
        {"name": "release/*", "type": "branch"},
        {"name": "v*", "type": "tag"},
    ]
    hotfix = fake.environment("production-hotfix")
    assert reviewers_of(hotfix) == [("User", "tech-lead-1"), ("User", "tech-lead-2")]
    assert fake.branch_policies("production-hotfix") == [{"name": "hotfix/*", "type": "branch"}]
    assert all(r["type"] != "wait_timer" for r in hotfix["protection_rules"])

    # The real client reads back what apply wrote.
    repo = Github(base_url=fake.url, auth=Auth.Token(ADMIN), retry=None).get_repo("octo/app")
    env = repo.get_environment("production")
    (rule,) = [r for r in env.protection_rules if r.type == "required_reviewers"]
    assert [getattr(r.reviewer, "slug", None) for r in rule.reviewers] == ["release-managers"]
    assert env.deployment_branch_policy.custom_branch_policies is True
    assert repo.get_environments().totalCount == 3


def test_a_second_apply_writes_nothing(fake: GitHubFake, run_cli: RunCli) -> None:
    env = env_of(fake)
    assert run_cli("environments", "apply", "--file", str(EXAMPLE), env=env).code == 0
    before = len(fake.writes())
    again = run_cli("environments", "apply", "--file", str(EXAMPLE), env=env, actions=False)
    assert again.code == 0, again.stderr
    assert len(fake.writes()) == before
    assert again.outputs == {"changes": "0"}
    assert "0 created, 0 updated, 3 unchanged (0 API write(s) made)" in again.stdout
    assert "= production (no changes)" in again.stdout
    check = run_cli(
        "environments", "plan", "--file", str(EXAMPLE), "--exit-code", env=env, actions=False
    )
    assert check.code == 0 and "nothing to change" in check.summary


def test_drift_is_planned_then_put_back(fake: GitHubFake, run_cli: RunCli) -> None:
    env = env_of(fake)
    assert run_cli("environments", "apply", "--file", str(EXAMPLE), env=env).code == 0
    # Someone edits production by hand: a wait timer, no reviewers, an extra pattern.
    status, _ = raw(
        fake,
        "PUT",
        "/repos/octo/app/environments/production",
        {
            "wait_timer": 30,
            "reviewers": [],
            "deployment_branch_policy": {
                "protected_branches": False,
                "custom_branch_policies": True,
            },
        },
    )
    assert status == 200
    status, _ = raw(
        fake,
        "POST",
        "/repos/octo/app/environments/production/deployment-branch-policies",
        {"name": "main"},
    )
    assert status == 200
    drift = run_cli(
        "environments", "plan", "--file", str(EXAMPLE), "--exit-code", env=env, actions=False
    )
    assert drift.code == 1
    assert "~ production\n" in drift.stdout
    assert "wait timer: 30 min -> 0 min" in drift.stdout
    assert "reviewers: none -> team octo/release-managers" in drift.stdout
    assert "- branch policy main (branch)" in drift.stdout
    assert drift.outputs == {"changes": "2"}
    before = len(fake.writes())
    fixed = run_cli("environments", "apply", "--file", str(EXAMPLE), env=env)
    assert fixed.code == 0 and fixed.outputs == {"changes": "2"}
    assert [(q.method, q.path.rsplit("/", 2)[-2]) for q in fake.writes()[before:]] == [
        ("PUT", "environments"),
        ("DELETE", "deployment-branch-policies"),
    ]
    assert fake.branch_policies("production") == [
        {"name": "release/*", "type": "branch"},
        {"name": "v*", "type": "tag"},
    ]
    assert reviewers_of(fake.environment("production")) == [("Team", "release-managers")]


def test_switching_to_patterns_adds_them_after_the_switch(
    fake: GitHubFake, run_cli: RunCli, tmp_path: Path
) -> None:
    status, _ = raw(
        fake,
        "PUT",
        "/repos/octo/app/environments/staging",
        {"deployment_branch_policy": {"protected_branches": True, "custom_branch_policies": False}},
    )
    assert status == 200
    path = tmp_path / "e.yml"
    path.write_text(
        "environments:\n  staging:\n    deployment_branch_policy:\n"
        "      custom_branch_policies: [main, {name: 'v*', type: tag}]\n    wait_timer: 5\n"
    )
    result = run_cli("environments", "apply", "--file", str(path), env=env_of(fake))
    assert result.code == 0, result.stderr
    assert fake.branch_policies("staging") == [
        {"name": "main", "type": "branch"},
        {"name": "v*", "type": "tag"},
    ]
    rules = fake.environment("staging")["protection_rules"]
    assert {"type": "wait_timer", "wait_timer": 5}.items() <= rules[0].items()
    assert run_cli("environments", "plan", "--file", str(path), env=env_of(fake)).outputs == {
        "changes": "0"
    }


def test_environments_not_in_the_file_are_left_alone(fake: GitHubFake, run_cli: RunCli) -> None:
    assert raw(fake, "PUT", "/repos/octo/app/environments/preview", {})[0] == 200
    result = run_cli("environments", "apply", "--file", str(EXAMPLE), env=env_of(fake))
    assert result.code == 0
    assert "Not in the file, left as they are: `preview`." in result.summary
    assert fake.environment("preview")["name"] == "preview"


# -- workflow triggers against the environments' policies ------------------------------------

TAG_WORKFLOW = """\
name: deploy
on:
  push:
    tags: ["v*"]
jobs:
  build:
    runs-on: ubuntu-latest
    steps: [{run: make}]
  deploy:
    runs-on: ubuntu-latest
    environment: production
    steps: [{run: ./deploy.sh}]
"""

BRANCH_ONLY = """\
environments:
  production:
    deployment_branch_policy:
      custom_branch_policies: ["release/*"]
"""


def workflows(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "workflows"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yml").write_text(text)
    return folder


def test_a_tag_triggered_job_warns_against_a_branch_only_environment(
    fake: GitHubFake, run_cli: RunCli, tmp_path: Path
) -> None:
    folder = workflows(tmp_path, deploy=TAG_WORKFLOW)
    path = tmp_path / "e.yml"
    path.write_text(BRANCH_ONLY)
    args = ("environments", "plan", "--file", str(path), "--workflows", str(folder))
    result = run_cli(*args, env=env_of(fake))
    assert result.code == 0, result.stderr + result.stdout
    wf = folder / "deploy.yml"
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("::warning ")]
    assert line.startswith(f"::warning file={wf},line=11,"), line
    assert "`production`" in line and "tag" in line and "release/*" in line
    assert "[!WARNING]" in result.summary and "deploy.yml" in result.summary

    # The example's production admits the tag `v*`: no warning.
    example = run_cli(
        "environments",
        "plan",
        "--file",
        str(EXAMPLE),
        "--workflows",
        str(folder),
        env=env_of(fake),
    )
    assert example.code == 0, example.stderr
    assert "::warning" not in example.stdout


def test_a_call_of_the_release_workflow_is_checked_for_staging_too(
    fake: GitHubFake, run_cli: RunCli, tmp_path: Path
) -> None:
    # The consuming repository's workflow only calls release.yml; that one deploys to
    # `staging` and to the release type's environment.
    caller = """\
on:
  push:
    tags: ["v*"]
jobs:
  release:
    uses: triptrip/release-actions/.github/workflows/release.yml@v1
    with:
      release-type: regular
"""
    folder = workflows(tmp_path, release=caller)
    path = tmp_path / "e.yml"
    path.write_text(
        "environments:\n  staging:\n    deployment_branch_policy:\n"
        "      protected_branches: true\n  production:\n    deployment_branch_policy:\n"
        "      custom_branch_policies: [{name: 'v*', type: tag}]\n"
    )
    result = run_cli(
        "environments", "plan", "--file", str(path), "--workflows", str(folder), env=env_of(fake)
    )
    assert result.code == 0, result.stderr
    warnings = [ln for ln in result.stdout.splitlines() if ln.startswith("::warning ")]
    assert len(warnings) == 1, warnings
    assert f"file={folder / 'release.yml'},line=6," in warnings[0]
    assert "`staging`" in warnings[0] and "protected branches" in warnings[0]


def test_a_branch_triggered_job_warns_against_a_tag_only_environment(
    fake: GitHubFake, run_cli: RunCli, tmp_path: Path
) -> None:
    hotfix = TAG_WORKFLOW.replace('tags: ["v*"]', 'branches: ["hotfix/**"]')
    folder = workflows(tmp_path, hotfix=hotfix)
    path = tmp_path / "e.yml"
    path.write_text(
        "environments:\n  production:\n    deployment_branch_policy:\n"
        "      custom_branch_policies: [{name: 'v*', type: tag}]\n"
    )
    result = run_cli(
        "environments", "plan", "--file", str(path), "--workflows", str(folder), env=env_of(fake)
    )
    assert result.code == 0, result.stderr
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("::warning ")]
    assert "`production`" in line and "admits no branch" in line


# -- environments from the policy's release types (source §3.3) -------------------------------

POLICY = """\
release_types:
  security:
    environment: production-security
  infrastructure:
    environment: production-infrastructure
"""

APPROVERS = """\
approvers:
  tech-lead:
    users: [tech-lead-1, tech-lead-2]
  security-team:
    teams: [security]
environments:
  staging:
    deployment_branch_policy:
      custom_branch_policies: [{name: 'v*', type: tag}]
"""


def seed_teams(fake: GitHubFake) -> None:
    for slug in ("security", "platform", "payments", "search"):
        fake.add_team("octo", slug)


def test_release_types_generate_environments_with_mapped_reviewers(
    fake: GitHubFake, run_cli: RunCli, tmp_path: Path
) -> None:
    seed_teams(fake)
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    path = tmp_path / "e.yml"
    path.write_text(APPROVERS)
    args = (
        "environments",
        "apply",
        "--file",
        str(path),
        "--from-policy",
        "--policy",
        str(policy),
        "--reviewer",
        "platform-team=team:platform",
        "--reviewer",
        "affected-teams=team:octo/payments",
        "--reviewer",
        "affected-teams=team:search",
    )
    result = run_cli(*args, env=env_of(fake), actions=False)
    assert result.code == 0, result.stderr + result.stdout
    names = sorted(e["name"] for e in fake.repo().environments.values())
    assert names == [
        "production",
        "production-hotfix",
        "production-infrastructure",
        "production-security",
        "staging",
    ]
    # approval: automatic -> no reviewers; manual -> the approvers, mapped.
    assert reviewers_of(fake.environment("production")) == []
    assert reviewers_of(fake.environment("production-hotfix")) == [
        ("User", "tech-lead-1"),
        ("User", "tech-lead-2"),
    ]
    assert reviewers_of(fake.environment("production-security")) == [
        ("Team", "security"),
        ("User", "tech-lead-1"),
        ("User", "tech-lead-2"),
    ]
    assert reviewers_of(fake.environment("production-infrastructure")) == [
        ("Team", "payments"),
        ("Team", "platform"),
        ("Team", "search"),
    ]
    # Generated environments admit the release tags (`v*`, the policy's tag prefix).
    assert fake.branch_policies("production-security") == [{"name": "v*", "type": "tag"}]
    # GitHub has no order of reviewers: the output says what that means for §3.3's chain.
    out = result.stdout
    assert "production-security: release type security" in out
    assert "any one of them" in out and "security-team then tech-lead" in out
    again = run_cli(*args, env=env_of(fake))
    assert again.outputs == {"changes": "0"}


def test_an_unmapped_approver_is_an_error_naming_it(
    fake: GitHubFake, run_cli: RunCli, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    path = tmp_path / "e.yml"
    path.write_text(APPROVERS)
    result = run_cli(
        "environments",
        "plan",
        "--file",
        str(path),
        "--from-policy",
        "--policy",
        str(policy),
        env=env_of(fake),
        actions=False,
    )
    assert result.code == 2
    assert "`affected-teams`, `platform-team`" in result.stderr
    assert "infrastructure" in result.stderr and "--reviewer" in result.stderr
    assert fake.writes() == []


def test_release_types_that_share_an_environment_but_not_approvals_are_an_error(
    fake: GitHubFake, run_cli: RunCli, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text("release_types:\n  security:\n    environment: production\n")
    path = tmp_path / "e.yml"
    path.write_text(APPROVERS)
    result = run_cli(
        "environments",
        "plan",
        "--file",
        str(path),
        "--from-policy",
        "--policy",
        str(policy),
        "--reviewer",
        "platform-team=team:platform",
        "--reviewer",
        "affected-teams=team:search",
        env=env_of(fake),
        actions=False,
    )
    assert result.code == 2
    assert "`production`" in result.stderr and "`security`" in result.stderr
    assert "`regular`" in result.stderr


# -- errors ------------------------------------------------------------------------------


def test_403_says_the_token_needs_administration_write(run_cli: RunCli) -> None:
    with GitHubFake(admin_tokens=[ADMIN]) as fake:
        seeded(fake)
        result = run_cli(
            "environments", "apply", "--file", str(EXAMPLE), env=env_of(fake, token="ghs_job")
        )
        assert result.code == 2
        assert "the token may not manage environments (403 Resource not accessible by " in (
            result.stdout
        )
        assert "GitHub wants administration=write" in result.stdout
        hint = result.stderr
        assert "`administration: write`" in hint and "`permissions:` block cannot" in hint
        assert "GitHub App installation token" in hint
        assert "fine-grained personal access token" in hint
        assert "${{ secrets.ENVIRONMENTS_ADMIN_TOKEN }}" in hint
        assert fake.repo().environments == {}
        assert result.outputs == {}  # an error writes no outputs
        # Reading needs no admin: plan works with the same token.
        plan = run_cli(
            "environments", "plan", "--file", str(EXAMPLE), env=env_of(fake, token="ghs_job")
        )
        assert plan.code == 0 and plan.outputs == {"changes": "8"}


def test_403_on_reading_asks_for_actions_read(fake: GitHubFake, run_cli: RunCli) -> None:
    fake.inject("GET", "/repos/octo/app/environments", status=403)
    result = run_cli(
        "environments", "plan", "--file", str(EXAMPLE), env=env_of(fake), actions=False
    )
    assert result.code == 2
    assert "the token may not read environments (403 Forbidden)" in result.stderr
    assert "permissions:\n  actions: read" in result.stderr


@pytest.mark.parametrize(
    ("yaml_text", "message", "line"),
    [
        (
            "environments:\n  prod:\n    reviewers:\n      - teams:\n          - no-such-team\n",
            "Team `no-such-team` was not found in the organization `octo` (404).",
            5,
        ),
        (
            "environments:\n  prod:\n    reviewers:\n      - users: [tech-lead-1, ghost-9]\n",
            "User `ghost-9` does not exist on GitHub (404).",
            4,
        ),
    ],
)
def test_unknown_reviewers_are_404_with_file_and_line(
    fake: GitHubFake, run_cli: RunCli, tmp_path: Path, yaml_text: str, message: str, line: int
) -> None:
    path = tmp_path / "e.yml"
    path.write_text(yaml_text)
    result = run_cli("environments", "plan", "--file", str(path), env=env_of(fake))
    assert result.code == 2
    assert f"::error file={path},line={line}::{message}" in result.stdout
    assert fake.writes() == []


def test_no_repository_is_a_plain_error(fake: GitHubFake, run_cli: RunCli) -> None:
    env = env_of(fake)
    del env["GITHUB_REPOSITORY"]
    result = run_cli("environments", "plan", "--file", str(EXAMPLE), env=env, actions=False)
    assert result.code == 2 and "`--repo OWNER/NAME`" in result.stderr


def test_dry_run_apply_writes_nothing(fake: GitHubFake, run_cli: RunCli) -> None:
    result = run_cli(
        "--dry-run",
        "environments",
        "apply",
        "--file",
        str(EXAMPLE),
        env=env_of(fake),
        actions=False,
    )
    assert result.code == 0 and "(dry run: nothing written)" in result.stdout
    assert fake.writes() == []


def test_json_plan(fake: GitHubFake, run_cli: RunCli) -> None:
    result = run_cli(
        "environments", "plan", "--file", str(EXAMPLE), "--json", env=env_of(fake), actions=False
    )
    data = json.loads(result.stdout)
    assert data["changes"] == 8 and data["applied"] is False
    assert [e["action"] for e in data["environments"]] == ["create"] * 3
    assert data["environments"][1]["add_patterns"] == [
        {"name": "release/*", "type": "branch"},
        {"name": "v*", "type": "tag"},
    ]


# -- the fake speaks GitHub's environments API -------------------------------------------


def test_fake_environment_rules_follow_github(fake: GitHubFake) -> None:
    status, body = raw(fake, "GET", "/repos/octo/app/environments")
    assert (status, body) == (200, {"total_count": 0, "environments": []})
    assert raw(fake, "GET", "/repos/octo/app/environments/nope")[0] == 404
    both = {"protected_branches": True, "custom_branch_policies": True}
    status, body = raw(
        fake, "PUT", "/repos/octo/app/environments/x", {"deployment_branch_policy": both}
    )
    assert status == 422 and body["errors"][0]["field"] == "deployment_branch_policy"
    status, _ = raw(fake, "PUT", "/repos/octo/app/environments/x", {"wait_timer": 43201})
    assert status == 422
    team = fake.teams["octo/release-managers"]
    seven = [{"type": "Team", "id": team["id"]}] * 7
    assert raw(fake, "PUT", "/repos/octo/app/environments/x", {"reviewers": seven})[0] == 422
    unknown = [{"type": "User", "id": 1}]
    assert raw(fake, "PUT", "/repos/octo/app/environments/x", {"reviewers": unknown})[0] == 422
    # Protected branches: the pattern endpoints answer 404, as GitHub's do.
    protected = {"protected_branches": True, "custom_branch_policies": False}
    assert (
        raw(fake, "PUT", "/repos/octo/app/environments/x", {"deployment_branch_policy": protected})[
            0
        ]
        == 200
    )
    policies = "/repos/octo/app/environments/x/deployment-branch-policies"
    assert raw(fake, "GET", policies)[0] == 404
    assert raw(fake, "POST", policies, {"name": "main"})[0] == 404
    custom = {"protected_branches": False, "custom_branch_policies": True}
    raw(fake, "PUT", "/repos/octo/app/environments/x", {"deployment_branch_policy": custom})
    status, made = raw(fake, "POST", policies, {"name": "release/*"})
    assert status == 200 and set(made) == {"id", "node_id", "name", "type"}
    # The same pattern again: 303 to the one there is (urllib follows it with a GET).
    status, again = raw(fake, "POST", policies, {"name": "release/*"})
    assert status == 200 and again["id"] == made["id"]
    assert [q.status for q in fake.requests[-2:]] == [303, 200]
    # Tags too: `type: tag` (GitHub's default is `branch`); anything else is a 422.
    status, tag = raw(fake, "POST", policies, {"name": "v*", "type": "tag"})
    assert status == 200 and (tag["name"], tag["type"]) == ("v*", "tag")
    assert raw(fake, "POST", policies, {"name": "v*", "type": "release"})[0] == 422
    assert raw(fake, "DELETE", f"{policies}/{tag['id']}")[0] == 204
    status, listed = raw(fake, "GET", policies)
    assert listed["total_count"] == 1 and listed["branch_policies"][0]["name"] == "release/*"
    assert raw(fake, "DELETE", f"{policies}/{made['id']}")[0] == 204
    # Names are case-insensitive, as on GitHub.
    assert raw(fake, "GET", "/repos/octo/app/environments/X")[1]["name"] == "x"
    assert raw(fake, "DELETE", "/repos/octo/app/environments/x")[0] == 204


def test_fake_users_and_teams(fake: GitHubFake) -> None:
    status, user = raw(fake, "GET", "/users/TECH-LEAD-1")
    assert status == 200 and user["login"] == "tech-lead-1" and user["type"] == "User"
    assert raw(fake, "GET", "/users/nobody")[0] == 404
    status, team = raw(fake, "GET", "/orgs/octo/teams/release-managers")
    assert status == 200 and team["name"] == "Release Managers"
    assert team["organization"]["login"] == "octo"
    assert raw(fake, "GET", "/orgs/other/teams/release-managers")[0] == 404
