"""The GitHub fake's conditional requests, as GitHub documents them: ETag, If-None-Match, 304."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.fakes.github import GitHubFake

pytestmark = pytest.mark.integration


def get(fake: GitHubFake, path: str, etag: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(fake.url + path, headers={"Authorization": "Bearer t"})
    if etag:
        req.add_header("If-None-Match", etag)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_an_unchanged_list_is_304_with_no_body_and_no_rate_limit_spent(
    github: GitHubFake,
) -> None:
    github.add_deployment("main", task="release", payload={"version": "v1"})
    status, headers, body = get(github, "/repos/octo/app/deployments?task=release")
    assert status == 200 and json.loads(body)[0]["payload"] == {"version": "v1"}
    etag = headers["etag"]
    assert etag.startswith('W/"')
    remaining = headers["x-ratelimit-remaining"]

    status, headers, body = get(github, "/repos/octo/app/deployments?task=release", etag)

    assert (status, body, headers["etag"]) == (304, b"", etag)
    assert headers["x-ratelimit-remaining"] == remaining, "a 304 is not counted"
    # The strong form of the same tag, or a list of tags holding it, matches as well.
    assert get(github, "/repos/octo/app/deployments?task=release", etag[2:])[0] == 304
    assert get(github, "/repos/octo/app/deployments?task=release", f'"x", {etag}')[0] == 304

    github.add_deployment("main", task="release", payload={"version": "v2"})
    status, headers, body = get(github, "/repos/octo/app/deployments?task=release", etag)

    assert status == 200 and headers["etag"] != etag
    assert [d["payload"]["version"] for d in json.loads(body)] == ["v2", "v1"]
    assert int(headers["x-ratelimit-remaining"]) == int(remaining) - 1


def test_seeded_history_keeps_its_dates(github: GitHubFake) -> None:
    dep = github.add_deployment(
        "main",
        task="rollback",
        environment="production-hotfix",
        created_at="2026-01-20T01:00:00Z",
        statuses=[("success", "RB-2026-001: v2 -> v1")],
    )
    issue = github.add_issue("Blocker", labels=["release-blocker"],
                                  created_at="2026-01-19T09:00:00Z")  # fmt: skip

    assert (dep["created_at"], dep["environment"], dep["task"]) == (
        "2026-01-20T01:00:00Z",
        "production-hotfix",
        "rollback",
    )
    (status,) = github.repo().deployment_statuses[dep["id"]]
    assert (status["state"], status["created_at"]) == ("success", "2026-01-20T01:00:00Z")
    assert issue["created_at"] == issue["updated_at"] == "2026-01-19T09:00:00Z"
    listed = get(github, "/repos/octo/app/issues?labels=release-blocker&since=2026-01-19T00:00:00Z")
    assert [i["number"] for i in json.loads(listed[2])] == [issue["number"]]
