"""The GitHub fake's assignees: who can be assigned, and issues created and edited with them."""

from __future__ import annotations

from tests.fakes.github import GitHubFake
from tests.integration.fake_github import raw


def test_only_known_users_can_be_assigned(github: GitHubFake) -> None:
    github.add_user("alice")
    assert raw(github, "GET", "/repos/octo/app/assignees/alice")[0] == 204
    assert raw(github, "GET", "/repos/octo/app/assignees/mallory")[0] == 404


def test_an_issue_is_created_and_edited_with_assignees(github: GitHubFake) -> None:
    github.add_user("alice")
    github.add_user("Bob")
    status, issue = raw(
        github, "POST", "/repos/octo/app/issues", {"title": "t", "assignees": ["alice"]}
    )
    assert status == 201
    assert issue["assignee"]["login"] == "alice"
    assert [a["login"] for a in issue["assignees"]] == ["alice"]
    path = f"/repos/octo/app/issues/{issue['number']}"
    status, edited = raw(github, "PATCH", path, {"assignees": ["alice", "bob"]})
    assert status == 200
    assert [a["login"] for a in edited["assignees"]] == ["alice", "Bob"]
    status, edited = raw(github, "PATCH", path, {"title": "u"})
    assert [a["login"] for a in edited["assignees"]] == ["alice", "Bob"]  # left as they were
    status, edited = raw(github, "PATCH", path, {"assignees": []})
    assert (edited["assignee"], edited["assignees"]) == (None, [])


def test_an_unknown_assignee_is_refused_and_nothing_is_created(github: GitHubFake) -> None:
    status, body = raw(
        github, "POST", "/repos/octo/app/issues", {"title": "t", "assignees": ["ghost"]}
    )
    assert status == 422
    assert body["errors"][0] == {"resource": "Issue", "code": "invalid", "field": "assignees"}
    assert github.issues() == []
