"""Release assets, checksums, generated notes and discussions: real PyGithub, the GitHub fake."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from github.Repository import Repository

from release_actions.core import assets as A
from release_actions.errors import IntegrationError
from release_actions.integrations import github as gh
from tests.conftest import RunCli
from tests.fakes.github import GitHubFake
from tests.integration.fake_github import fake_github_env

pytestmark = pytest.mark.integration

FAST = gh.ClientSettings(
    timeout=2,
    retries=2,
    backoff=0.01,
    backoff_max=0.05,
    max_wait=5,
    seconds_between_requests=0,
    seconds_between_writes=0,
)
UPLOADS = "/api/uploads/repos/octo/app/releases/*/assets"


@pytest.fixture
def fake() -> Iterator[GitHubFake]:
    with GitHubFake() as f:
        f.set_ref("v1.0.0", tag=True)
        yield f


@pytest.fixture
def repo(fake: GitHubFake) -> Repository:
    env = {"GITHUB_API_URL": fake.url, "GITHUB_TOKEN": "t"}
    return gh.get_repo(gh.client(env, settings=FAST), "octo/app")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "dist").mkdir(parents=True)
    (root / "dist" / "app-1.0.0.tar.gz").write_bytes(b"\x1f\x8b tarball " * 1000)
    (root / "dist" / "app-1.0.0.zip").write_bytes(b"PK zip")
    return root


def local(ws: Path, *patterns: str) -> list[A.LocalAsset]:
    return A.resolve_files(patterns or ("dist/*",), cwd=ws, workspace=ws)[0]


def uploads(fake: GitHubFake) -> list[tuple[str, str, int]]:
    return [
        (q.method, q.query.get("name", ""), q.status)
        for q in fake.requests
        if q.path.startswith("/api/uploads/")
    ]


# -- upload, rerun, replace ------------------------------------------------------------------


def test_files_are_uploaded_to_the_upload_url_with_their_types(
    fake: GitHubFake, repo: Repository, ws: Path
) -> None:
    files = local(ws)
    result = gh.publish_release(repo, "v1.0.0", "notes", assets=files)
    assert [(a.name, a.action) for a in result.assets] == [
        ("app-1.0.0.tar.gz", "uploaded"),
        ("app-1.0.0.zip", "uploaded"),
    ]
    stored = {a["name"]: a for a in fake.assets("v1.0.0")}
    for f in files:
        assert fake.asset_bytes("v1.0.0", f.name) == f.path.read_bytes()
        assert stored[f.name]["digest"] == f"sha256:{f.sha256}"
        assert stored[f.name]["content_type"] == f.content_type
    assert stored["app-1.0.0.tar.gz"]["content_type"] == "application/gzip"
    assert result.assets[0].url == stored["app-1.0.0.tar.gz"]["browser_download_url"]
    assert uploads(fake) == [
        ("POST", "app-1.0.0.tar.gz", 201),
        ("POST", "app-1.0.0.zip", 201),
    ]


def test_uploads_work_on_enterprise_server_paths(ws: Path) -> None:
    with GitHubFake(prefix="/api/v3") as fake:
        env = {"GITHUB_API_URL": fake.url, "GITHUB_TOKEN": "t"}
        repo = gh.get_repo(gh.client(env, settings=FAST), "octo/app")
        result = gh.publish_release(repo, "v1.0.0", "notes", assets=local(ws))
        assert [a["name"] for a in fake.assets("v1.0.0")] == [a.name for a in result.assets]


def test_a_rerun_with_the_same_files_changes_nothing(
    fake: GitHubFake, repo: Repository, ws: Path
) -> None:
    first = gh.publish_release(repo, "v1.0.0", "notes", assets=local(ws))
    before = len(fake.requests)
    again = gh.publish_release(repo, "v1.0.0", "notes", assets=local(ws))
    assert (again.created, again.changed) == (False, False)
    assert [(a.action, a.reason) for a in again.assets] == [
        ("unchanged", "same size and SHA-256"),
        ("unchanged", "same size and SHA-256"),
    ]
    assert [a.id for a in again.assets] == [a.id for a in first.assets]
    assert [q for q in fake.requests[before:] if q.method != "GET"] == []


def test_a_changed_file_is_replaced_and_others_are_left(
    fake: GitHubFake, repo: Repository, ws: Path
) -> None:
    first = gh.publish_release(repo, "v1.0.0", "notes", assets=local(ws))
    fake.add_asset("v1.0.0", "added-by-hand.txt", b"keep me")
    (ws / "dist" / "app-1.0.0.zip").write_bytes(b"PK rebuilt zip")
    before = len(fake.requests)
    again = gh.publish_release(repo, "v1.0.0", "notes", assets=local(ws))
    assert again.changed is True
    assert [(a.name, a.action, a.reason) for a in again.assets] == [
        ("app-1.0.0.tar.gz", "unchanged", "same size and SHA-256"),
        ("app-1.0.0.zip", "replaced", "its content changed"),
    ]
    assert again.assets[1].id != first.assets[1].id
    assert fake.asset_bytes("v1.0.0", "app-1.0.0.zip") == b"PK rebuilt zip"
    assert sorted(a["name"] for a in fake.assets("v1.0.0")) == [
        "added-by-hand.txt",
        "app-1.0.0.tar.gz",
        "app-1.0.0.zip",
    ]
    writes = [(q.method, q.path, q.status) for q in fake.requests[before:] if q.method != "GET"]
    assert writes == [
        ("DELETE", f"/repos/octo/app/releases/assets/{first.assets[1].id}", 204),
        ("POST", f"/api/uploads/repos/octo/app/releases/{first.id}/assets", 201),
    ]


def test_an_asset_without_a_digest_or_left_unfinished_is_replaced(
    fake: GitHubFake, repo: Repository, ws: Path
) -> None:
    files = local(ws)
    fake.add_release("v1.0.0")
    fake.add_asset("v1.0.0", files[0].name, files[0].path.read_bytes(), digest=False)
    fake.add_asset("v1.0.0", files[1].name, b"", state="starter")
    result = gh.publish_release(repo, "v1.0.0", "notes", assets=files)
    assert [(a.action, a.reason) for a in result.assets] == [
        ("replaced", "GitHub gave no digest to compare"),
        ("replaced", "an earlier upload was left unfinished (starter)"),
    ]
    assert [a["state"] for a in fake.assets("v1.0.0")] == ["uploaded", "uploaded"]
    assert fake.asset_bytes("v1.0.0", files[1].name) == files[1].path.read_bytes()


def test_a_502_that_leaves_a_starter_asset_is_settled_on_the_retry(
    fake: GitHubFake, repo: Repository, ws: Path
) -> None:
    fake.add_release("v1.0.0")
    files = local(ws, "dist/*.zip")
    # GitHub: "When an upstream failure occurs, you will receive a 502 Bad Gateway status.
    # This may leave an empty asset with a state of starter."
    fake.inject(
        "POST",
        UPLOADS,
        status=502,
        action=lambda: fake.add_asset("v1.0.0", files[0].name, b"", state="starter"),
    )
    result = gh.publish_release(repo, "v1.0.0", "notes", assets=files)
    assert [a.action for a in result.assets] == ["uploaded"]
    assert uploads(fake) == [("POST", files[0].name, s) for s in (502, 422, 201)]
    assert [(a["name"], a["state"]) for a in fake.assets("v1.0.0")] == [(files[0].name, "uploaded")]
    assert fake.asset_bytes("v1.0.0", files[0].name) == b"PK zip"


@pytest.mark.parametrize("status", [429, 503])
def test_a_transient_upload_error_is_retried_with_the_whole_file(
    fake: GitHubFake, repo: Repository, ws: Path, status: int
) -> None:
    if status == 429:
        fake.rate_limit("POST", UPLOADS, retry_after=1)
    else:
        fake.inject("POST", UPLOADS, status=503)
    files = local(ws, "dist/*.tar.gz")
    result = gh.publish_release(repo, "v1.0.0", "notes", assets=files)
    assert [a.action for a in result.assets] == ["uploaded"]
    assert uploads(fake) == [("POST", files[0].name, status), ("POST", files[0].name, 201)]
    assert fake.asset_bytes("v1.0.0", files[0].name) == files[0].path.read_bytes()


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_an_upload_that_keeps_failing_is_an_error_never_a_success(
    fake: GitHubFake, repo: Repository, ws: Path, status: int
) -> None:
    if status == 429:
        fake.rate_limit("POST", UPLOADS, retry_after=0, times=10)
    else:
        fake.inject("POST", UPLOADS, status=status, times=10)
    with pytest.raises(IntegrationError) as info:
        gh.publish_release(repo, "v1.0.0", "notes", assets=local(ws, "dist/*.zip"))
    assert "Uploading dist/app-1.0.0.zip to release v1.0.0 in octo/app failed" in (
        info.value.message
    )
    assert str(status) in info.value.message
    assert fake.assets("v1.0.0") == []
    assert len(uploads(fake)) == FAST.retries + 1


def test_a_short_upload_is_caught(fake: GitHubFake, repo: Repository, ws: Path) -> None:
    files = local(ws, "dist/*.zip")
    wrong = {
        "url": fake.api("/repos/octo/app/releases/assets/9"),
        "browser_download_url": "x",
        "id": 9,
        "name": files[0].name,
        "state": "uploaded",
        "size": 0,
        "digest": "sha256:" + hashlib.sha256(b"").hexdigest(),
    }
    fake.inject("POST", UPLOADS, status=201, body=wrong)
    with pytest.raises(IntegrationError, match="GitHub stored 0 bytes"):
        gh.publish_release(repo, "v1.0.0", "notes", assets=files)


def test_the_fake_refuses_a_second_asset_of_one_name(
    fake: GitHubFake, repo: Repository, ws: Path
) -> None:
    gh.publish_release(repo, "v1.0.0", "notes", assets=local(ws, "dist/*.zip"))
    release = repo.get_release(fake.release("v1.0.0")["id"])
    with pytest.raises(Exception) as info:
        release.upload_asset_from_memory(
            (ws / "dist" / "app-1.0.0.zip").open("rb"), 6, "app-1.0.0.zip"
        )
    assert getattr(info.value, "status", None) == 422
    assert info.value.data["errors"][0] == {  # type: ignore[attr-defined]
        "resource": "ReleaseAsset",
        "code": "already_exists",
        "field": "name",
    }


# -- body: checksums and generated notes ----------------------------------------------------


def test_checksums_follow_the_notes_in_sha256sum_format(
    fake: GitHubFake, repo: Repository, ws: Path
) -> None:
    files = local(ws)
    gh.publish_release(repo, "v1.0.0", "### Fixed\n\n- x\n", checksums=A.sha256sums(files))
    body = fake.release("v1.0.0")["body"]
    lines = "".join(f"{f.sha256}  {f.name}\n" for f in files)
    assert body == f"### Fixed\n\n- x\n\n### Checksums (SHA-256)\n\n```text\n{lines}```\n"


def test_crlf_notes_keep_their_line_endings(fake: GitHubFake, repo: Repository, ws: Path) -> None:
    files = local(ws, "dist/*.zip")
    gh.publish_release(repo, "v1.0.0", "### Fixed\r\n\r\n- x", checksums=A.sha256sums(files))
    body = fake.release("v1.0.0")["body"]
    assert "\n" not in body.replace("\r\n", "")
    assert body.startswith("### Fixed\r\n\r\n- x\r\n\r\n### Checksums")


def test_generated_notes_come_after_the_changelog_from_the_previous_release(
    fake: GitHubFake, repo: Repository
) -> None:
    fake.add_release("v0.9.0")
    fake.add_release("v0.10.0")  # higher than v0.9.0 by SemVer, not by text
    fake.add_release("v1.0.0-rc.1", prerelease=True)  # a final release starts at a final
    fake.add_release("v0.11.0", draft=True)  # drafts have no tag
    fake.add_pull("feature", title="Add the thing", merged=True, user="octocat")
    result = gh.publish_release(
        repo, "v1.0.0", "### Added\n\n- The thing\n", generate_release_notes=True
    )
    assert result.previous_tag == "v0.10.0"
    asked = [q.body for q in fake.requests if q.path.endswith("/releases/generate-notes")]
    assert asked == [{"tag_name": "v1.0.0", "previous_tag_name": "v0.10.0"}]
    body = fake.release("v1.0.0")["body"]
    root = fake.root
    assert body == (
        "### Added\n\n- The thing\n\n"
        "### Generated release notes\n\n"
        "#### What's Changed\n"
        f"* Add the thing by @octocat in {root}/octo/app/pull/1\n\n\n"
        f"**Full Changelog**: {root}/octo/app/compare/v0.10.0...v1.0.0\n"
    )
    again = gh.publish_release(
        repo, "v1.0.0", "### Added\n\n- The thing\n", generate_release_notes=True
    )
    assert again.changed is False


def test_a_prerelease_notes_start_at_the_previous_prerelease(
    fake: GitHubFake, repo: Repository
) -> None:
    fake.add_release("v0.9.0")
    fake.add_release("v1.0.0-rc.1", prerelease=True)
    fake.set_ref("v1.0.0-rc.2", tag=True)
    result = gh.publish_release(repo, "v1.0.0-rc.2", "", generate_release_notes=True)
    assert result.previous_tag == "v1.0.0-rc.1"
    body = fake.release("v1.0.0-rc.2")["body"]
    assert body.startswith("### Generated release notes\n\n**Full Changelog**: ")
    assert body.endswith("/compare/v1.0.0-rc.1...v1.0.0-rc.2\n")


def test_the_first_release_gets_notes_without_a_previous_tag(
    fake: GitHubFake, repo: Repository
) -> None:
    gh.publish_release(repo, "v1.0.0", "first", generate_release_notes=True)
    asked = [q.body for q in fake.requests if q.path.endswith("/releases/generate-notes")]
    assert asked == [{"tag_name": "v1.0.0"}]
    assert fake.release("v1.0.0")["body"].endswith("/octo/app/commits/v1.0.0\n")


# -- discussions -----------------------------------------------------------------------------


def test_a_discussion_is_opened_once(fake: GitHubFake, repo: Repository) -> None:
    result = gh.publish_release(repo, "v1.0.0", "notes", discussion_category="Announcements")
    assert result.discussion_url and "/octo/app/discussions/" in result.discussion_url
    created = next(q for q in fake.requests if q.method == "POST")
    assert created.body["discussion_category_name"] == "Announcements"
    again = gh.publish_release(repo, "v1.0.0", "notes", discussion_category="Announcements")
    assert (again.changed, again.discussion_url) == (False, result.discussion_url)
    edited = gh.publish_release(repo, "v1.0.0", "new notes", discussion_category="Announcements")
    patch = [q.body for q in fake.requests if q.method == "PATCH"]
    assert len(patch) == 1 and "discussion_category_name" not in patch[0]
    assert edited.discussion_url == result.discussion_url


def test_a_published_draft_gets_its_discussion(fake: GitHubFake, repo: Repository) -> None:
    gh.publish_release(repo, "v1.0.0", "notes", draft=True)
    result = gh.publish_release(repo, "v1.0.0", "notes", discussion_category="General")
    assert result.discussion_url
    assert fake.release("v1.0.0")["discussion_url"] == result.discussion_url


def test_an_unknown_category_creates_nothing_and_says_what_to_do(
    fake: GitHubFake, repo: Repository
) -> None:
    with pytest.raises(IntegrationError) as info:
        gh.publish_release(repo, "v1.0.0", "notes", discussion_category="announcements")
    assert "`announcements`" in info.value.message and "404" in info.value.message
    assert "discussions: write" in (info.value.hint or "")
    assert fake.releases == []


def test_a_draft_cannot_ask_for_a_discussion(fake: GitHubFake, repo: Repository) -> None:
    with pytest.raises(IntegrationError, match="draft"):
        gh.publish_release(repo, "v1.0.0", "notes", draft=True, discussion_category="General")
    assert [q.path for q in fake.requests] == ["/repos/octo/app"]  # get_repo, then nothing


# -- idempotence of the release itself ------------------------------------------------------


def test_a_rerun_that_must_move_latest_still_writes(fake: GitHubFake, repo: Repository) -> None:
    gh.publish_release(repo, "v1.0.0", "notes")
    fake.add_release("v2.0.0")
    assert gh.publish_release(repo, "v1.0.0", "notes").changed is False  # v2 stays latest
    forced = gh.publish_release(repo, "v1.0.0", "notes", make_latest=True)
    assert forced.changed is True
    assert fake.latest_tag() == "v1.0.0"


# -- the command line -----------------------------------------------------------------------

CHANGELOG = "# Changelog\n\n## [1.0.0] - 2024-05-14\n\n### Added\n\n- Assets\n"


@pytest.fixture
def workdir(ws: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (ws / "CHANGELOG.md").write_text(CHANGELOG)
    monkeypatch.chdir(ws)
    return ws


def cli_env(fake: GitHubFake, ws: Path) -> dict[str, str]:
    return fake_github_env(fake.url, "ghs_fake", GITHUB_WORKSPACE=str(ws))


def test_cli_attaches_files_with_checksums_and_reruns_idempotently(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    fake.add_release("v0.9.0")
    args = ["release", "publish", "--tag", "v1.0.0", "--checksums", "both", "--generate-notes"]
    args += ["--files", "dist/*.tar.gz\ndist/*.zip", "--files", "dist/*.zip"]
    first = run_cli(*args, env=cli_env(fake, workdir))
    assert first.code == 0, first.stdout + first.stderr
    assert json.loads(first.outputs["assets"]) == [
        {"name": a["name"], "url": a["browser_download_url"], "action": "uploaded"}
        for a in fake.assets("v1.0.0")
    ]
    assert [a["name"] for a in fake.assets("v1.0.0")] == [
        "app-1.0.0.tar.gz",
        "app-1.0.0.zip",
        "SHA256SUMS",
    ]
    sums = fake.asset_bytes("v1.0.0", "SHA256SUMS").decode()
    body = fake.release("v1.0.0")["body"]
    assert body.startswith("### Added\n\n- Assets\n\n### Generated release notes\n\n")
    assert body.endswith(f"### Checksums (SHA-256)\n\n```text\n{sums}```\n")
    assert first.outputs["changed"] == "true"
    assert "| [SHA256SUMS](" in first.summary
    assert "uploaded  app-1.0.0.zip (6 bytes; new)" in first.stdout

    again = run_cli(*args, "--json", env=cli_env(fake, workdir), actions=False)
    assert again.code == 0, again.stdout + again.stderr
    data = json.loads(again.stdout)
    assert (data["changed"], data["created"]) == (False, False)
    assert [(a["name"], a["action"]) for a in data["assets"]] == [
        ("app-1.0.0.tar.gz", "unchanged"),
        ("app-1.0.0.zip", "unchanged"),
        ("SHA256SUMS", "unchanged"),
    ]
    assert data["assets"][1]["sha256"] == hashlib.sha256(b"PK zip").hexdigest()
    assert again.outputs["changed"] == "false"
    text = run_cli(*args, env=cli_env(fake, workdir))
    assert "Left unchanged release v1.0.0 in octo/app (latest; nothing changed)" in text.stdout


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ("dist/*.jar", "`dist/*.jar` matched no file"),
        ("../*", "outside the workspace"),
    ],
)
def test_cli_refuses_bad_files_before_writing_anything(
    fake: GitHubFake, workdir: Path, run_cli: RunCli, files: str, expected: str
) -> None:
    (workdir.parent / "secret").write_text("s")
    result = run_cli(
        "release", "publish", "--tag", "v1.0.0", "--files", files, env=cli_env(fake, workdir)
    )
    assert result.code == 2
    assert expected in result.stdout + result.stderr
    assert result.output_pairs == []
    assert fake.requests == []


def test_cli_unmatched_files_can_be_a_warning(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    result = run_cli(
        "release",
        "publish",
        "--tag",
        "v1.0.0",
        "--files",
        "dist/*.zip,dist/*.jar",
        "--no-fail-on-unmatched-files",
        env=cli_env(fake, workdir),
    )
    assert result.code == 0, result.stdout + result.stderr
    assert "::warning" in result.stdout and "`dist/*.jar` matched no file" in result.stdout
    assert [a["name"] for a in fake.assets("v1.0.0")] == ["app-1.0.0.zip"]


def test_cli_checksums_need_files_and_discussions_no_draft(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    env = cli_env(fake, workdir)
    no_files = run_cli("release", "publish", "--tag", "v1.0.0", "--checksums", "body", env=env)
    assert no_files.code == 2 and "no files were given" in no_files.stdout + no_files.stderr
    draft = ["--draft", "--discussion-category", "General"]
    refused = run_cli("release", "publish", "--tag", "v1.0.0", *draft, env=env)
    assert refused.code == 2 and "`--discussion-category`" in refused.stderr
    assert fake.requests == []


def test_cli_upload_outage_exits_2_with_no_outputs(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    fake.inject("POST", UPLOADS, status=503, times=10)
    result = run_cli(
        "release", "publish", "--tag", "v1.0.0", "--files", "dist/*", env=cli_env(fake, workdir)
    )
    assert result.code == 2
    assert "503" in result.stdout and "Uploading dist/app-1.0.0.tar.gz" in result.stdout
    assert result.output_pairs == [] and result.summary == ""


def test_cli_dry_run_lists_the_files_and_uploads_nothing(
    fake: GitHubFake, workdir: Path, run_cli: RunCli
) -> None:
    result = run_cli(
        "--dry-run",
        "release",
        "publish",
        "--tag",
        "v1.0.0",
        "--files",
        "dist/*.zip",
        "--checksums",
        "asset",
        "--json",
        env=cli_env(fake, workdir),
        actions=False,
    )
    assert result.code == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert [(a["name"], a["path"]) for a in data["assets"]] == [
        ("app-1.0.0.zip", "dist/app-1.0.0.zip"),
        ("SHA256SUMS", "SHA256SUMS"),
    ]
    assert {q.method for q in fake.requests} == {"GET"}


def test_the_fake_serves_uploads_only_on_the_uploads_path(fake: GitHubFake) -> None:
    import urllib.error
    import urllib.request

    rel = fake.add_release("v1.0.0")

    def post(url: str, data: bytes = b"bytes") -> int:
        req = urllib.request.Request(url, data=data, method="POST")
        req.add_header("Authorization", "Bearer t")
        req.add_header("Content-Type", "application/octet-stream")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return err.code

    api_host = fake.api(f"/repos/octo/app/releases/{rel['id']}/assets?name=a.bin")
    assert post(api_host, b"{}") == 404  # the API host takes no uploads
    upload = rel["upload_url"].split("{")[0]
    assert post(upload) == 422  # no name
    assert post(upload + "?name=a.bin") == 201
    assert post(upload + "?name=a.bin") == 422  # already_exists
    assert fake.asset_bytes("v1.0.0", "a.bin") == b"bytes"
