"""Publishing GitHub Releases through the real PyGithub client, against the GitHub fake."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from github.Repository import Repository

from release_actions.errors import IntegrationError, InvalidVersionError, MissingExtraError
from release_actions.integrations import github as gh
from tests.conftest import RunCli
from tests.fakes.github import GitHubFake

pytestmark = pytest.mark.integration

# Tiny waits keep the retry tests fast; the logic under test is the same.
FAST = gh.ClientSettings(
    timeout=1,
    retries=3,
    backoff=0.01,
    backoff_max=0.05,
    max_wait=5,
    per_page=10,
    seconds_between_requests=0,
    seconds_between_writes=0,
)


@pytest.fixture
def fake() -> Iterator[GitHubFake]:
    with GitHubFake() as f:
        yield f


def connect(fake: GitHubFake, token: str = "t", settings: gh.ClientSettings = FAST) -> Repository:
    env = {"GITHUB_API_URL": fake.url, "GITHUB_TOKEN": token}
    return gh.get_repo(gh.client(env, settings=settings), "octo/app")


@pytest.fixture
def repo(fake: GitHubFake) -> Repository:
    return connect(fake)


def calls(fake: GitHubFake, method: str, path: str = "/repos/octo/app/releases") -> list[int]:
    return [q.status for q in fake.requests if q.method == method and q.path == path]


# -- the client --------------------------------------------------------------------------


def test_client_needs_a_token_and_says_which_permissions() -> None:
    with pytest.raises(IntegrationError) as info:
        gh.client({"GITHUB_API_URL": "http://127.0.0.1:9"})
    assert "`GITHUB_TOKEN`" in info.value.message
    assert "permissions:\n  contents: write" in (info.value.hint or "")
    assert "${{ secrets.GITHUB_TOKEN }}" in (info.value.hint or "")


def test_token_precedence() -> None:
    assert gh.resolve_token({"GITHUB_TOKEN": "a", "GH_TOKEN": "b"}) == "a"
    assert gh.resolve_token({"GITHUB_TOKEN": " ", "GH_TOKEN": "b"}) == "b"
    assert gh.resolve_token({"GITHUB_TOKEN": "a"}, token="c") == "c"


def test_api_url_defaults_to_github_com_and_rejects_nonsense() -> None:
    assert gh.api_url({}) == "https://api.github.com"
    assert gh.api_url({"GITHUB_API_URL": "https://ghe.example/api/v3/"}) == (
        "https://ghe.example/api/v3"
    )
    with pytest.raises(IntegrationError, match="GITHUB_API_URL"):
        gh.api_url({"GITHUB_API_URL": "ghe.example"})


def test_client_settings_from_env() -> None:
    settings = gh.ClientSettings.from_env(
        {"RELEASE_ACTIONS_GITHUB_TIMEOUT": "30", "RELEASE_ACTIONS_GITHUB_BACKOFF": "0.5"}
    )
    assert (settings.timeout, settings.backoff, settings.retries) == (30, 0.5, 4)
    for var, value in (
        ("RELEASE_ACTIONS_GITHUB_TIMEOUT", "0"),
        ("RELEASE_ACTIONS_GITHUB_RETRIES", "2.5"),
        ("RELEASE_ACTIONS_GITHUB_MAX_WAIT", "-1"),
    ):
        with pytest.raises(IntegrationError, match=var):
            gh.ClientSettings.from_env({var: value})


def test_the_api_url_and_token_reach_the_server() -> None:
    with GitHubFake(token="s3cret", prefix="/api/v3") as fake:
        repo = connect(fake, token="s3cret")
        gh.publish_release(repo, "v1.0.0", "notes")
        assert fake.requests[0].path == "/repos/octo/app"
        assert fake.requests[0].headers["authorization"] == "token s3cret"
        assert fake.requests[0].headers["user-agent"].startswith("release-actions/")
        assert fake.release("v1.0.0")["body"] == "notes"


def test_missing_pygithub_is_a_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "github", None)
    with pytest.raises(MissingExtraError, match="github"):
        gh.client({"GITHUB_TOKEN": "t"})


def test_version_validate_does_not_import_pygithub() -> None:
    code = (
        "import sys; from release_actions.cli import main;"
        "rc = main(['version', 'validate', 'v1.2.3'], env={});"
        "import release_actions.cli.release;"
        "print(rc, 'github' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "0 False"


# -- create, update, idempotence -----------------------------------------------------------


def test_creates_a_release_with_the_body_exactly(fake: GitHubFake, repo: Repository) -> None:
    body = "### Fixed\r\n\r\n- `$(id)` is not run\r\nEOF\r\n::set-output name=x::y"
    result = gh.publish_release(repo, "v1.2.3", body)
    assert (result.created, result.updated, result.draft) == (True, False, False)
    assert (result.prerelease, result.make_latest) == (False, True)
    assert result.upload_url.endswith("/assets{?name,label}")
    rel = fake.release("v1.2.3")
    assert rel["body"] == body
    assert (rel["id"], rel["name"], rel["html_url"]) == (result.id, "v1.2.3", result.html_url)
    assert fake.latest_tag() == "v1.2.3"


def test_a_rerun_updates_instead_of_creating_a_second(fake: GitHubFake, repo: Repository) -> None:
    first = gh.publish_release(repo, "v1.2.3", "first", name="One")
    second = gh.publish_release(repo, "v1.2.3", "second")
    assert second.id == first.id
    assert (second.created, second.updated) == (False, True)
    assert [r["body"] for r in fake.releases] == ["second"]
    assert fake.releases[0]["name"] == "One"  # an existing title is kept unless one is given
    assert calls(fake, "POST") == [201]
    assert calls(fake, "PATCH", f"/repos/octo/app/releases/{first.id}") == [200]


def test_a_draft_is_found_through_the_list_and_published(
    fake: GitHubFake, repo: Repository
) -> None:
    draft = fake.add_release("v2.0.0", draft=True, body="draft notes")
    for n in range(12):  # pushes the draft to the second page (per_page 10)
        fake.add_release(f"v1.0.{n}", make_latest="false")
    result = gh.publish_release(repo, "v2.0.0", "final notes")
    assert (result.id, result.created, result.draft) == (draft["id"], False, False)
    assert len([r for r in fake.releases if r["tag_name"] == "v2.0.0"]) == 1
    assert fake.release("v2.0.0")["body"] == "final notes"
    assert fake.latest_tag() == "v2.0.0"
    assert [q.query.get("page", "1") for q in fake.requests if q.method == "GET"][-2:] == ["1", "2"]


def test_a_draft_rerun_stays_one_draft(fake: GitHubFake, repo: Repository) -> None:
    first = gh.publish_release(repo, "v1.0.0", "a", draft=True)
    second = gh.publish_release(repo, "v1.0.0", "b", draft=True)
    assert second.id == first.id and second.draft and not second.make_latest
    assert [(r["draft"], r["body"]) for r in fake.releases] == [(True, "b")]
    assert fake.latest_tag() is None


def test_a_published_release_is_not_turned_back_into_a_draft(
    fake: GitHubFake, repo: Repository
) -> None:
    fake.add_release("v1.0.0", body="out")
    with pytest.raises(IntegrationError, match="already published"):
        gh.publish_release(repo, "v1.0.0", "x", draft=True)
    assert fake.release("v1.0.0")["body"] == "out"


def test_duplicate_drafts_update_the_oldest_and_are_reported(
    fake: GitHubFake, repo: Repository
) -> None:
    old = fake.add_release("v1.0.0", draft=True)
    extra = fake.add_release("v1.0.0", draft=True)
    result = gh.publish_release(repo, "v1.0.0", "notes", draft=True)
    assert result.id == old["id"]
    assert result.duplicates == (extra["id"],)


def test_a_lost_create_race_updates_the_winner(fake: GitHubFake, repo: Repository) -> None:
    fake.inject(
        "POST",
        "/repos/octo/app/releases",
        action=lambda: fake.add_release("v1.0.0", body="theirs"),
    )
    result = gh.publish_release(repo, "v1.0.0", "ours")
    assert (result.created, result.updated) == (False, True)
    assert [(r["tag_name"], r["body"]) for r in fake.releases] == [("v1.0.0", "ours")]
    assert calls(fake, "POST") == [422]


# -- prerelease and latest -----------------------------------------------------------------


@pytest.mark.parametrize("tag", ["v2.0.0-rc.1", "v2.0.0-alpha", "v2.0.0-beta.2", "v2.0.0-0"])
def test_any_prerelease_identifier_makes_a_prerelease(
    fake: GitHubFake, repo: Repository, tag: str
) -> None:
    fake.add_release("v1.0.0")
    result = gh.publish_release(repo, tag, "notes")
    assert (result.prerelease, result.make_latest) == (True, False)
    assert fake.release(tag)["prerelease"] is True
    assert fake.latest_tag() == "v1.0.0"


def test_prerelease_can_be_forced_either_way(fake: GitHubFake, repo: Repository) -> None:
    assert gh.publish_release(repo, "v1.0.0", "x", prerelease=True).prerelease is True
    assert gh.publish_release(repo, "v2.0.0-rc.1", "x", prerelease=False).prerelease is False
    assert fake.release("v2.0.0-rc.1")["prerelease"] is False


def test_not_latest_when_a_higher_release_exists_on_a_later_page(
    fake: GitHubFake, repo: Repository
) -> None:
    fake.add_release("v3.0.0")
    for n in range(24):  # newest first: v3.0.0 ends up on the third page
        fake.add_release(f"v0.1.{n}", make_latest="false")
    result = gh.publish_release(repo, "v2.5.0", "backport")
    assert result.make_latest is False
    assert "v3.0.0" in result.latest_reason
    assert fake.latest_tag() == "v3.0.0"
    assert fake.release("v2.5.0")["prerelease"] is False


def test_latest_when_it_is_the_highest(fake: GitHubFake, repo: Repository) -> None:
    fake.add_release("v9.0.0")
    fake.add_release("v10.0.0-rc.1", prerelease=True)  # pre-releases do not count
    fake.add_release("v11.0.0", draft=True)  # nor do drafts
    fake.add_release("not-a-version")  # nor tags that are not SemVer
    result = gh.publish_release(repo, "v10.0.0", "notes")  # above v9 by SemVer, not by text
    assert result.make_latest is True
    assert fake.latest_tag() == "v10.0.0"


def test_make_latest_can_be_forced(fake: GitHubFake, repo: Repository) -> None:
    fake.add_release("v3.0.0")
    assert gh.publish_release(repo, "v2.0.1", "x", make_latest=True).make_latest is True
    assert fake.latest_tag() == "v2.0.1"
    assert gh.publish_release(repo, "v4.0.0", "x", make_latest=False).make_latest is False
    assert fake.latest_tag() == "v2.0.1"


def test_plan_release_only_reads(fake: GitHubFake, repo: Repository) -> None:
    fake.add_release("v3.0.0")
    plan = gh.plan_release(repo, "v2.0.0")
    assert (plan.action, plan.make_latest, plan.prerelease) == ("create", False, False)
    assert {q.method for q in fake.requests} == {"GET"}


def test_tag_prefix_and_invalid_tags(fake: GitHubFake, repo: Repository) -> None:
    result = gh.publish_release(repo, "release-1.0.0-rc.1", "x", tag_prefix="release-")
    assert result.prerelease is True
    with pytest.raises(InvalidVersionError):
        gh.publish_release(repo, "v1.0", "x")
    assert [r["tag_name"] for r in fake.releases] == ["release-1.0.0-rc.1"]


# -- errors, retries, timeouts -------------------------------------------------------------


def test_unknown_repository_is_404_with_a_hint(fake: GitHubFake) -> None:
    client = gh.client({"GITHUB_API_URL": fake.url, "GITHUB_TOKEN": "t"}, settings=FAST)
    with pytest.raises(IntegrationError) as info:
        gh.get_repo(client, "octo/nope")
    assert "octo/nope" in info.value.message and "404" in info.value.message
    assert "permissions:" in (info.value.hint or "")
    with pytest.raises(IntegrationError, match="OWNER/NAME"):
        gh.get_repo(client, "octo")


def test_bad_token_is_401_with_the_permissions_yaml() -> None:
    with GitHubFake(token="good") as fake:
        with pytest.raises(IntegrationError) as info:
            connect(fake, token="bad")
        assert "rejected the token" in info.value.message and "401" in info.value.message
        assert "contents: write" in (info.value.hint or "")


def test_read_only_token_is_403_with_the_permissions_yaml() -> None:
    with GitHubFake(token="rw", read_only_tokens=["ro"]) as fake:
        repo = connect(fake, token="ro")
        with pytest.raises(IntegrationError) as info:
            gh.publish_release(repo, "v1.0.0", "x")
        assert "403" in info.value.message
        assert "Resource not accessible by integration" in info.value.message
        assert "permissions:\n  contents: write" in (info.value.hint or "")
        assert fake.releases == []


def test_other_422_carries_githubs_message(fake: GitHubFake, repo: Repository) -> None:
    fake.inject(
        "POST",
        "/repos/octo/app/releases",
        status=422,
        body={
            "message": "Validation Failed",
            "errors": [{"resource": "Release", "code": "custom", "message": "body is too long"}],
            "documentation_url": "https://docs.github.com/rest",
            "status": "422",
        },
    )
    with pytest.raises(IntegrationError) as info:
        gh.publish_release(repo, "v1.0.0", "x")
    assert "Validation Failed: body is too long" in info.value.message
    assert "Creating release v1.0.0" in info.value.message


def test_429_waits_for_retry_after_then_succeeds(fake: GitHubFake, repo: Repository) -> None:
    fake.rate_limit("GET", "/repos/octo/app/releases", retry_after=1)
    started = time.monotonic()
    result = gh.publish_release(repo, "v1.0.0", "x")
    assert time.monotonic() - started >= 1.0
    assert result.created
    assert calls(fake, "GET") == [429, 200]


def test_a_rate_limit_reset_too_far_away_fails_at_once(fake: GitHubFake, repo: Repository) -> None:
    fake.rate_limit("GET", "/repos/octo/app/releases", retry_after=None, primary=True)
    started = time.monotonic()
    with pytest.raises(IntegrationError) as info:
        gh.publish_release(repo, "v1.0.0", "x")
    assert time.monotonic() - started < 3
    assert "rate limit" in info.value.message
    assert "RELEASE_ACTIONS_GITHUB_MAX_WAIT" in (info.value.hint or "")
    assert fake.releases == []


def test_retry_after_too_long_fails_at_once(fake: GitHubFake, repo: Repository) -> None:
    fake.rate_limit("POST", "/repos/octo/app/releases", retry_after=600)
    started = time.monotonic()
    with pytest.raises(IntegrationError, match="600 s"):
        gh.publish_release(repo, "v1.0.0", "x")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_then_succeeds(fake: GitHubFake, repo: Repository, status: int) -> None:
    fake.inject("POST", "/repos/octo/app/releases", status=status, times=2)
    result = gh.publish_release(repo, "v1.0.0", "x")
    assert result.created
    assert calls(fake, "POST") == [status, status, 201]
    assert len(fake.releases) == 1


def test_persistent_5xx_becomes_an_integration_error(fake: GitHubFake, repo: Repository) -> None:
    fake.inject("GET", "/repos/octo/app/releases", status=502, times=50)
    with pytest.raises(IntegrationError) as info:
        gh.publish_release(repo, "v1.0.0", "x")
    assert "502" in info.value.message and "retry" in info.value.message
    assert "githubstatus.com" in (info.value.hint or "")
    assert calls(fake, "GET") == [502] * (FAST.retries + 1)


def test_a_timed_out_create_that_went_through_is_not_duplicated(
    fake: GitHubFake, repo: Repository
) -> None:
    # GitHub creates the release but answers after the client gave up; the retried POST
    # gets 422 already_exists and the publisher updates the release it made.
    fake.inject("POST", "/repos/octo/app/releases", delay=1.6)
    result = gh.publish_release(repo, "v1.0.0", "ours")
    assert [(r["tag_name"], r["body"]) for r in fake.releases] == [("v1.0.0", "ours")]
    assert result.id == fake.releases[0]["id"]
    deadline = time.monotonic() + 3  # the slow first answer is logged once it is sent
    while len(calls(fake, "POST")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(calls(fake, "POST")) == [201, 422]


def test_persistent_timeouts_become_an_integration_error(fake: GitHubFake) -> None:
    settings = gh.ClientSettings(**{**FAST.__dict__, "retries": 1})
    repo = connect(fake, settings=settings)
    fake.inject("GET", "/repos/octo/app/releases", delay=1.3, times=2)
    started = time.monotonic()
    with pytest.raises(IntegrationError) as info:
        gh.publish_release(repo, "v1.0.0", "x")
    assert 2.0 <= time.monotonic() - started < 4.0
    assert "did not answer in time" in info.value.message
    assert "RELEASE_ACTIONS_GITHUB_TIMEOUT" in (info.value.hint or "")


def test_an_unreachable_server_is_an_integration_error() -> None:
    settings = gh.ClientSettings(**{**FAST.__dict__, "retries": 0})
    client = gh.client(
        {"GITHUB_API_URL": "http://127.0.0.1:9", "GITHUB_TOKEN": "t"}, settings=settings
    )
    with pytest.raises(IntegrationError, match="cannot reach GitHub"):
        gh.get_repo(client, "octo/app")


# -- the command line ---------------------------------------------------------------------

CHANGELOG_BODY = (
    "### Security\r\n"
    "\r\n"
    "- Quote `$(id)` and `` `whoami` `` in scripts\r\n"
    "- A heredoc that ends early:\r\n"
    "\r\n"
    "```sh\r\n"
    'cat <<EOF >> "$GITHUB_OUTPUT"\r\n'
    "body=$(cat notes)\r\n"
    "EOF\r\n"
    "```\r\n"
    "\r\n"
    "EOF\r\n"
    "::set-output name=latest::true\r\n"
    "::add-mask::nothing\r\n"
    "- Unicode: 日本語 — ok"
)
CHANGELOG = (
    "# Changelog\r\n\r\n## [Unreleased]\r\n\r\n"
    "## [1.2.0] - 2024-05-14\r\n\r\n" + CHANGELOG_BODY + "\r\n\r\n"
    "## [1.2.0-rc.1] - 2024-05-07\r\n\r\n### Added\r\n\r\n- Candidate\r\n\r\n"
    "## [1.1.0] - 2024-04-02\r\n\r\n### Fixed\r\n\r\n- Old\r\n\r\n"
    "[unreleased]: https://github.com/octo/app/compare/v1.2.0...HEAD\r\n"
)
OUTPUT_KEYS = [
    "id",
    "url",
    "upload-url",
    "created",
    "prerelease",
    "latest",
    "changed",
    "assets",
    "discussion-url",
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "repo"
    work.mkdir()
    (work / "CHANGELOG.md").write_bytes(CHANGELOG.encode("utf-8"))
    monkeypatch.chdir(work)
    return work


def cli_env(fake: GitHubFake, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_API_URL": fake.url,
        "GITHUB_TOKEN": "ghs_fake_token",
        "GITHUB_REPOSITORY": "octo/app",
        "RELEASE_ACTIONS_GITHUB_RETRIES": "1",
        "RELEASE_ACTIONS_GITHUB_BACKOFF": "0.01",
        "RELEASE_ACTIONS_GITHUB_TIMEOUT": "5",
        **extra,
    }


def test_cli_publishes_the_changelog_section_byte_for_byte(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    result = run_cli("release", "publish", "--tag", "v1.2.0", env=cli_env(fake))
    assert result.code == 0, result.stderr
    assert fake.release("v1.2.0")["body"] == CHANGELOG_BODY
    pairs = result.output_pairs
    assert [name for name, _ in pairs] == OUTPUT_KEYS
    rel = fake.release("v1.2.0")
    assert dict(pairs) == {
        "id": str(rel["id"]),
        "url": rel["html_url"],
        "upload-url": rel["upload_url"],
        "created": "true",
        "prerelease": "false",
        "latest": "true",
        "changed": "true",
        "assets": "[]",
        "discussion-url": "",
    }
    delimiters = re.findall(r"^[a-z-]+<<(.+)$", result.output_file.read_text(), re.MULTILINE)
    assert len(delimiters) == len(OUTPUT_KEYS) == len(set(delimiters))
    assert all(re.fullmatch(r"ghadelimiter_[0-9a-f]{32}", d) for d in delimiters)
    assert "::add-mask::ghs_fake_token" in result.stdout
    assert "::set-output" not in result.stdout
    assert "| Latest | yes (it is the highest release) |" in result.summary
    assert "Created release v1.2.0 in octo/app (latest)" in result.stdout


def test_cli_rerun_updates_and_rc_is_a_prerelease(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    env = cli_env(fake)
    assert run_cli("release", "publish", "--tag", "v1.2.0", env=env).code == 0
    again = run_cli("release", "publish", "--tag", "v1.2.0", "--name", "Spring", env=env)
    assert again.code == 0
    assert again.outputs["created"] == "false"
    assert [(r["tag_name"], r["name"]) for r in fake.releases] == [("v1.2.0", "Spring")]
    rc = run_cli("release", "publish", "--tag", "v1.2.0-rc.1", env=env)
    assert rc.code == 0, rc.stderr
    assert (rc.outputs["prerelease"], rc.outputs["latest"]) == ("true", "false")
    assert fake.release("v1.2.0-rc.1")["body"] == "### Added\r\n\r\n- Candidate"
    old = run_cli("release", "publish", "--tag", "v1.1.0", "--json", env=env, actions=False)
    assert old.code == 0
    assert '"latest_reason": "v1.2.0 is a higher release"' in old.stdout
    assert old.outputs["latest"] == "false"
    assert fake.latest_tag() == "v1.2.0"


def test_cli_body_file_is_used_exactly(
    fake: GitHubFake, workdir: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_bytes(b"line\r\nEOF\r\n$(id)\n")
    result = run_cli(
        "release",
        "publish",
        "--tag",
        "v9.9.9",
        "--body-file",
        str(notes),
        "--draft",
        env=cli_env(fake),
    )
    assert result.code == 0, result.stderr
    assert fake.release("v9.9.9")["body"] == "line\r\nEOF\r\n$(id)\n"
    assert fake.release("v9.9.9")["draft"] is True
    both = run_cli(
        "release",
        "publish",
        "--tag",
        "v9.9.9",
        "--body-file",
        str(notes),
        "--changelog",
        "CHANGELOG.md",
        env=cli_env(fake),
    )
    assert both.code == 2 and "Only one of `--changelog` or `--body-file`" in both.stderr


def test_cli_dry_run_writes_nothing(fake: GitHubFake, workdir: Path, run_cli: RunCli) -> None:
    fake.add_release("v2.0.0")
    result = run_cli("--dry-run", "release", "publish", "--tag", "v1.2.0", env=cli_env(fake))
    assert result.code == 0, result.stderr
    assert "Would create release v1.2.0 in octo/app (not latest: v2.0.0 is a higher release" in (
        result.stdout
    )
    assert {q.method for q in fake.requests} == {"GET"}
    assert [r["tag_name"] for r in fake.releases] == ["v2.0.0"]
    assert result.output_pairs == []
    offline = cli_env(fake)
    del offline["GITHUB_TOKEN"]
    seen = len(fake.requests)
    quiet = run_cli("--dry-run", "release", "publish", "--tag", "v1.2.0", env=offline)
    assert quiet.code == 0 and "Would publish release v1.2.0" in quiet.stdout
    assert len(fake.requests) == seen


@pytest.mark.parametrize(
    ("argv", "env_change", "expected"),
    [
        (["--tag", "v1.2.0"], {"GITHUB_TOKEN": ""}, "No GitHub token"),
        (["--tag", "v1.2.0"], {"GITHUB_REPOSITORY": ""}, "No repository"),
        (["--tag", "v1.2.0", "--repo", "octo/missing"], {}, "404"),
        (["--tag", "1.2.0"], {}, "must start with `v`"),
        (["--tag", "v1.3.0"], {}, "no section for 1.3.0"),
    ],
)
def test_cli_errors_exit_2_with_a_message(
    fake: GitHubFake,
    workdir: Path,
    run_cli: RunCli,
    argv: list[str],
    env_change: dict[str, str],
    expected: str,
) -> None:
    env = {k: v for k, v in {**cli_env(fake), **env_change}.items() if v}
    result = run_cli("release", "publish", *argv, env=env)
    assert result.code == 2
    assert expected in result.stdout + result.stderr
    assert result.stdout.count("::error") == 1
    assert result.output_pairs == []
    assert fake.releases == []


def test_cli_github_outage_exits_2_and_writes_no_outputs(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    fake.inject("POST", "/repos/octo/app/releases", status=503, times=5)
    result = run_cli("release", "publish", "--tag", "v1.2.0", env=cli_env(fake))
    assert result.code == 2
    assert "503" in result.stdout
    assert result.output_pairs == [] and result.summary == ""
    assert calls(fake, "POST") == [503, 503]  # RELEASE_ACTIONS_GITHUB_RETRIES=1
