"""The GitHub fake against the real PyGithub client: shapes, pagination, rules and faults."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github, GithubException, UnknownObjectException

from tests.fakes import github as github_fakes
from tests.fakes.github import GitHubFake

pytestmark = pytest.mark.integration

# The fake module's own fixture, the way other test modules can take it.
github_fake = github_fakes.github_fake

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake() -> Iterator[GitHubFake]:
    with GitHubFake() as f:
        yield f


def client(fake: GitHubFake, token: str = "t", **kw: Any) -> Github:
    kw.setdefault("retry", None)
    return Github(
        base_url=fake.url,
        auth=Auth.Token(token),
        seconds_between_requests=None,
        seconds_between_writes=None,
        **kw,
    )


def raw(
    fake: GitHubFake,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = "t",
) -> tuple[int, dict[str, str], Any]:
    """A request without PyGithub, to see exactly what the fake answers."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(fake.url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read()
            return (
                resp.status,
                {k.lower(): v for k, v in resp.headers.items()},
                (json.loads(text) if text else None),
            )
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, {k.lower(): v for k, v in err.headers.items()}, json.loads(text)


def test_missing_token_gets_401_in_githubs_shape(fake: GitHubFake) -> None:
    status, headers, body = raw(fake, "GET", "/repos/octo/app", token=None)
    assert status == 401
    assert body == {
        "message": "Requires authentication",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert fake.requests[-1].status == 401


def test_a_configured_token_rejects_others_as_bad_credentials() -> None:
    with GitHubFake(token="right") as fake:
        assert raw(fake, "GET", "/repos/octo/app", token="right")[0] == 200
        status, _, body = raw(fake, "GET", "/repos/octo/app", token="wrong")
        assert (status, body["message"]) == (401, "Bad credentials")


def test_repository_shape_and_unknown_repository(fake: GitHubFake) -> None:
    repo = client(fake).get_repo("octo/app")
    assert (repo.full_name, repo.default_branch, repo.owner.login) == ("octo/app", "main", "octo")
    assert repo.url == fake.url + "/repos/octo/app"
    with pytest.raises(UnknownObjectException) as info:
        client(fake).get_repo("octo/nope")
    assert info.value.status == 404
    assert info.value.data["message"] == "Not Found"


def test_rate_limit_headers_on_every_answer(fake: GitHubFake) -> None:
    _, first, _ = raw(fake, "GET", "/repos/octo/app")
    _, second, _ = raw(fake, "GET", "/repos/octo/app")
    assert first["x-ratelimit-limit"] == "5000"
    assert int(second["x-ratelimit-remaining"]) == int(first["x-ratelimit-remaining"]) - 1
    assert second["x-ratelimit-resource"] == "core"
    assert int(first["x-ratelimit-reset"]) > time.time()


def test_releases_list_paginates_with_link_headers_on_the_fakes_own_host(
    fake: GitHubFake,
) -> None:
    for n in range(65):
        fake.add_release(f"v1.0.{n}", body=f"notes {n}")
    status, headers, page1 = raw(fake, "GET", "/repos/octo/app/releases")
    assert status == 200 and len(page1) == 30
    assert page1[0]["tag_name"] == "v1.0.64"  # newest first, as GitHub lists them
    links = {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', headers["link"])}
    assert set(links) == {"next", "last"}
    assert links["next"].startswith(f"http://127.0.0.1:{fake.port}/repos/octo/app/releases?")
    assert "page=2" in links["next"] and "page=3" in links["last"]

    tags = [r.tag_name for r in client(fake).get_repo("octo/app").get_releases()]
    assert tags == [f"v1.0.{n}" for n in reversed(range(65))]
    pages = [q.query.get("page", "1") for q in fake.requests if q.path.endswith("/releases")]
    assert pages[-3:] == ["1", "2", "3"]

    _, headers, last = raw(fake, "GET", "/repos/octo/app/releases?per_page=20&page=4")
    assert [r["tag_name"] for r in last] == [f"v1.0.{n}" for n in (4, 3, 2, 1, 0)]
    assert 'rel="prev"' in headers["link"] and 'rel="next"' not in headers["link"]


def test_repositories_id_links_resolve_like_github_s(fake: GitHubFake) -> None:
    fake.add_release("v1.0.0")
    repo_id = fake.repo().id
    status, _, body = raw(fake, "GET", f"/repositories/{repo_id}/releases")
    assert status == 200 and body[0]["tag_name"] == "v1.0.0"


def test_release_shape_create_update_delete(fake: GitHubFake) -> None:
    repo = client(fake).get_repo("octo/app")
    rel = repo.create_git_release(
        "v1.0.0", "One", "line 1\r\nline 2 `$(id)`", target_commitish="main"
    )
    assert (rel.tag_name, rel.name, rel.body) == ("v1.0.0", "One", "line 1\r\nline 2 `$(id)`")
    assert rel.upload_url.endswith(f"/releases/{rel.id}/assets{{?name,label}}")
    assert rel.html_url == f"{fake.root}/octo/app/releases/tag/v1.0.0"
    assert rel.published_at is not None and rel.author.login == "github-actions[bot]"
    _, _, body = raw(fake, "GET", f"/repos/octo/app/releases/{rel.id}")
    for key in (
        "url",
        "assets_url",
        "upload_url",
        "tarball_url",
        "zipball_url",
        "node_id",
        "created_at",
        "published_at",
        "assets",
        "immutable",
    ):
        assert key in body
    updated = rel.update_release("Uno", "new body", prerelease=True)
    assert (updated.name, updated.body, updated.prerelease) == ("Uno", "new body", True)
    assert fake.release("v1.0.0")["body"] == "new body"
    rel.delete_release()
    assert fake.releases == []
    assert raw(fake, "GET", f"/repos/octo/app/releases/{rel.id}")[0] == 404


def test_drafts_are_listed_but_not_found_by_tag(fake: GitHubFake) -> None:
    draft = fake.add_release("v2.0.0", draft=True)
    repo = client(fake).get_repo("octo/app")
    with pytest.raises(UnknownObjectException):
        repo.get_release("v2.0.0")
    assert [r.id for r in repo.get_releases()] == [draft["id"]]
    assert "/releases/tag/untagged-" in draft["html_url"]
    assert draft["published_at"] is None
    published = repo.get_release(draft["id"]).update_release("v2.0.0", "body", draft=False)
    assert published.published_at is not None
    assert repo.get_release("v2.0.0").id == draft["id"]


def test_duplicate_published_tag_is_422_already_exists(fake: GitHubFake) -> None:
    fake.add_release("v1.0.0")
    status, _, body = raw(fake, "POST", "/repos/octo/app/releases", {"tag_name": "v1.0.0"})
    assert status == 422
    assert body == {
        "message": "Validation Failed",
        "errors": [{"resource": "Release", "code": "already_exists", "field": "tag_name"}],
        "documentation_url": "https://docs.github.com/rest/releases/releases#create-a-release",
        "status": "422",
    }
    # Drafts have no tag yet, so GitHub lets two drafts share one.
    fake.add_release("v3.0.0", draft=True)
    assert (
        raw(fake, "POST", "/repos/octo/app/releases", {"tag_name": "v3.0.0", "draft": True})[0]
        == 201
    )


def test_create_release_validates_its_input(fake: GitHubFake) -> None:
    status, _, body = raw(fake, "POST", "/repos/octo/app/releases", {"name": "x"})
    assert status == 422 and body["errors"][0]["code"] == "missing_field"
    status, _, body = raw(
        fake, "POST", "/repos/octo/app/releases", {"tag_name": "v1", "make_latest": "yes"}
    )
    assert status == 422 and "make_latest" in body["message"]
    status, _, _ = raw(fake, "POST", "/repos/octo/app/releases", {"tag_name": "v1", "draft": "no"})
    assert status == 422


def test_make_latest_decides_the_latest_release(fake: GitHubFake) -> None:
    repo = client(fake).get_repo("octo/app")
    with pytest.raises(UnknownObjectException):
        repo.get_latest_release()
    repo.create_git_release("v1.0.0", "v1.0.0", "a")
    assert repo.get_latest_release().tag_name == "v1.0.0"
    repo.create_git_release("v0.9.1", "v0.9.1", "b", make_latest="false")
    assert fake.latest_tag() == "v1.0.0"
    # Pre-releases and drafts are never latest, whatever make_latest says.
    repo.create_git_release("v2.0.0-rc.1", "rc", "c", prerelease=True, make_latest="true")
    repo.create_git_release("v2.0.0", "v2.0.0", "d", draft=True, make_latest="true")
    assert fake.latest_tag() == "v1.0.0"
    newer = repo.create_git_release("v1.1.0", "v1.1.0", "e")
    assert repo.get_latest_release().tag_name == "v1.1.0"
    newer.update_release("v1.1.0", "e", make_latest="false")
    assert fake.latest_tag() == "v1.0.0"
    repo.get_release("v0.9.1").update_release("v0.9.1", "b", make_latest="true")
    assert fake.latest_tag() == "v0.9.1"
    repo.get_release("v0.9.1").delete_release()
    assert fake.latest_tag() == "v1.1.0"  # legacy fallback: the newest eligible one
    draft = next(r for r in repo.get_releases() if r.tag_name == "v2.0.0")
    draft.update_release("v2.0.0", "d", draft=False)  # newly published: latest by default
    assert fake.latest_tag() == "v2.0.0"


def test_faults_answer_in_order_then_run_out(fake: GitHubFake) -> None:
    fake.inject("GET", "/repos/*/releases", status=502, times=2)
    assert raw(fake, "GET", "/repos/octo/app/releases")[0] == 502
    status, _, body = raw(fake, "GET", "/repos/octo/app/releases")
    assert (status, body["message"]) == (502, "Server Error")
    assert raw(fake, "GET", "/repos/octo/app/releases")[0] == 200
    assert raw(fake, "GET", "/repos/octo/app")[0] == 200  # path did not match
    assert fake.faults == []


def test_rate_limit_fault_has_githubs_headers(fake: GitHubFake) -> None:
    fake.rate_limit("GET", "/repos/octo/app", retry_after=7)
    status, headers, body = raw(fake, "GET", "/repos/octo/app")
    assert status == 429
    assert headers["retry-after"] == "7"
    assert "secondary rate limit" in body["message"]
    fake.rate_limit(primary=True, retry_after=None, status=403)
    status, headers, body = raw(fake, "GET", "/repos/octo/app")
    assert status == 403 and headers["x-ratelimit-remaining"] == "0"
    assert "retry-after" not in headers
    assert "API rate limit exceeded" in body["message"]


def test_a_slow_fault_times_the_client_out_but_still_does_the_work(fake: GitHubFake) -> None:
    fake.inject("POST", "/repos/octo/app/releases", delay=1.5)
    gh = client(fake, timeout=1)
    repo = gh.get_repo("octo/app")
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        repo.create_git_release("v1.0.0", "v1.0.0", "body")
    assert time.monotonic() - started < 1.4
    deadline = time.monotonic() + 3
    while not fake.repo().releases and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r["tag_name"] for r in fake.releases] == ["v1.0.0"]


def test_fault_action_runs_before_the_real_answer(fake: GitHubFake) -> None:
    fake.inject("POST", "/repos/octo/app/releases", action=lambda: fake.add_release("v1.0.0"))
    with pytest.raises(GithubException) as info:
        client(fake).get_repo("octo/app").create_git_release("v1.0.0", "v1.0.0", "mine")
    assert info.value.status == 422


def test_read_only_token_cannot_write() -> None:
    with GitHubFake(token="rw", read_only_tokens=["ro"]) as fake:
        status, _, body = raw(
            fake, "POST", "/repos/octo/app/releases", {"tag_name": "v1"}, token="ro"
        )
        assert (status, body["message"]) == (403, "Resource not accessible by integration")
        assert raw(fake, "GET", "/repos/octo/app/releases", token="ro")[0] == 200
        assert fake.releases == []


def test_enterprise_server_prefix() -> None:
    with GitHubFake(prefix="/api/v3") as fake:
        assert fake.url.endswith("/api/v3")
        repo = client(fake).get_repo("octo/app")
        for n in range(35):
            fake.add_release(f"v0.0.{n}")
        assert len(list(repo.get_releases())) == 35
        req = urllib.request.Request(
            fake.root + "/repos/octo/app", headers={"Authorization": "token t"}
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 404


def test_deployments_and_statuses(fake: GitHubFake) -> None:
    repo = client(fake).get_repo("octo/app")
    first = repo.create_deployment(
        "main",
        environment="staging",
        production_environment=False,
        auto_merge=False,
        required_contexts=[],
        payload={"v": 1},
    )
    assert (first.ref, first.sha, first.environment) == (
        "main",
        fake.repo().refs["main"],
        "staging",
    )
    assert first.payload == {"v": 1}
    first.create_status("success", target_url="https://ci/1", description="ok")
    second = repo.create_deployment("main", environment="staging", production_environment=False)
    second.create_status("in_progress")
    second.create_status("success")
    # auto_inactive: the earlier successful deployment of the environment goes inactive.
    assert [s.state for s in first.get_statuses()] == ["inactive", "success"]
    assert [s.state for s in second.get_statuses()] == ["success", "in_progress"]
    prod = repo.create_deployment("main")
    assert prod.production_environment is True and prod.environment == "production"
    assert [d.id for d in repo.get_deployments(environment="staging")] == [second.id, first.id]
    assert [d.id for d in repo.get_deployments()] == [prod.id, second.id, first.id]
    status, _, body = raw(fake, "POST", "/repos/octo/app/deployments", {"ref": "nope"})
    assert (status, body["message"]) == (422, "No ref found for: nope")
    status, _, body = raw(
        fake, "POST", f"/repos/octo/app/deployments/{prod.id}/statuses", {"state": "done"}
    )
    assert status == 422


def test_check_runs_latest_per_name_by_default(fake: GitHubFake) -> None:
    fake.add_check_run("main", "test", conclusion="failure")
    fake.add_check_run("main", "test", conclusion="success")
    fake.add_check_run("main", "lint", status="in_progress")
    commit = client(fake).get_repo("octo/app").get_commit("main")
    runs = commit.get_check_runs()
    assert runs.totalCount == 2
    assert sorted((r.name, r.status, r.conclusion) for r in runs) == [
        ("lint", "in_progress", None),
        ("test", "completed", "success"),
    ]
    assert commit.get_check_runs(filter="all").totalCount == 3
    assert [r.name for r in commit.get_check_runs(check_name="lint")] == ["lint"]
    status, _, body = raw(fake, "GET", "/repos/octo/app/commits/main/check-runs?per_page=1")
    assert status == 200 and body["total_count"] == 2 and len(body["check_runs"]) == 1


def test_pulls_reviews_and_commit_pulls(fake: GitHubFake) -> None:
    repo = client(fake).get_repo("octo/app")
    fake.set_ref("feature/a")
    pr = repo.create_pull(base="main", head="feature/a", title="Add a", body="why", draft=True)
    assert (pr.number, pr.head.ref, pr.base.ref, pr.draft) == (1, "feature/a", "main", True)
    with pytest.raises(GithubException) as info:
        repo.create_pull(base="main", head="octo:feature/a", title="again")
    assert (
        info.value.data["errors"][0]["message"]
        == "A pull request already exists for octo:feature/a."
    )
    merged = fake.add_pull("feature/b", title="Merged", merged=True)
    assert [p.number for p in repo.get_pulls()] == [1]
    assert [p.number for p in repo.get_pulls(state="all")] == [merged["number"], 1]
    assert [p.number for p in repo.get_pulls(state="all", head="octo:feature/b")] == [2]
    fake.add_review(1, "CHANGES_REQUESTED", user="ann")
    fake.add_review(1, "APPROVED", user="bob")
    assert [(r.user.login, r.state) for r in repo.get_pull(1).get_reviews()] == [
        ("ann", "CHANGES_REQUESTED"),
        ("bob", "APPROVED"),
    ]
    merge_sha = merged["merge_commit_sha"]
    assert [p.number for p in repo.get_commit(merge_sha).get_pulls()] == [2]
    with pytest.raises(UnknownObjectException):
        repo.get_pull(99)


def test_state_round_trips_through_a_dump(fake: GitHubFake) -> None:
    fake.add_release("v1.0.0", body="one")
    fake.add_release("v1.1.0-rc.1", prerelease=True)
    data = json.loads(json.dumps(fake.state()))
    with GitHubFake(repos=()) as other:
        other.load_state(data)
        assert [r["tag_name"] for r in other.releases] == ["v1.0.0", "v1.1.0-rc.1"]
        assert other.latest_tag() == "v1.0.0"
        created = other.add_release("v1.1.0")
        assert created["id"] > max(r["id"] for r in fake.releases)


def test_runs_on_its_own_and_dumps_state_for_other_processes(tmp_path: Path) -> None:
    state_file = tmp_path / "github.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.github",
            "--port",
            "0",
            "--repo",
            "acme/api",
            "--state-file",
            str(state_file),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+", url)
        gh = Github(
            base_url=url,
            auth=Auth.Token("t"),
            seconds_between_writes=None,
            seconds_between_requests=None,
        )
        gh.get_repo("acme/api").create_git_release("v1.0.0", "v1.0.0", "from afar")
        state = json.loads(state_file.read_text())
        assert [r["body"] for r in state["repos"]["acme/api"]["releases"]] == ["from afar"]
        assert state["latest"]["acme/api"] == "v1.0.0"
        # The side door queues faults from another process.
        req = urllib.request.Request(
            url + "/_fake/faults",
            method="POST",
            data=json.dumps({"method": "GET", "path": "/repos/acme/api", "status": 503}).encode(),
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 201
        with pytest.raises(GithubException) as info:
            Github(base_url=url, auth=Auth.Token("t"), retry=None).get_repo("acme/api")
        assert info.value.status == 503
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_the_module_fixture_serves_a_started_fake(github_fake: GitHubFake) -> None:
    assert raw(github_fake, "GET", "/repos/octo/app")[0] == 200
