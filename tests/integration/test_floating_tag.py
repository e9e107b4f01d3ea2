"""`release floating-tag`: `v1` follows the newest v1.x.y release, never backwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RunCli
from tests.fakes.github import GitHubFake

REPO = "triptrip/release-actions"


@pytest.fixture
def fake() -> Iterator[GitHubFake]:
    with GitHubFake(repos=(REPO,)) as github:
        yield github


def env(fake: GitHubFake) -> dict[str, str]:
    return {
        "GITHUB_API_URL": fake.url,
        "GITHUB_TOKEN": "ghs_token",
        "GITHUB_REPOSITORY": REPO,
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_WRITES": "0",
    }


def tag(fake: GitHubFake, name: str, content: str) -> str:
    sha = fake.commit("main", {"VERSION": content}, message=name, repo=REPO)
    fake.set_ref(name, sha, tag=True, repo=REPO)
    return sha


def v1(fake: GitHubFake) -> str | None:
    return fake.repo(REPO).refs.get("v1")


def test_created_then_moved_then_left_alone(fake: GitHubFake, run_cli: RunCli) -> None:
    first = tag(fake, "v1.0.0", "1.0.0")
    created = run_cli("release", "floating-tag", "--tag", "v1.0.0", env=env(fake))
    assert created.code == 0, created.stdout + created.stderr
    assert created.outputs == {"moved": "true", "floating-tag": "v1", "sha": first}
    assert v1(fake) == first
    second = tag(fake, "v1.1.0", "1.1.0")
    assert (
        run_cli("release", "floating-tag", "--tag", "v1.1.0", env=env(fake)).outputs["moved"]
        == "true"
    )
    assert v1(fake) == second
    again = run_cli("release", "floating-tag", "--tag", "v1.1.0", env=env(fake))
    assert again.outputs["moved"] == "false" and "already points" in again.stdout


def test_prereleases_and_older_patches_do_not_move_it(fake: GitHubFake, run_cli: RunCli) -> None:
    newest = tag(fake, "v1.3.0", "1.3.0")
    run_cli("release", "floating-tag", "--tag", "v1.3.0", env=env(fake))
    tag(fake, "v1.4.0-rc.1", "rc")
    rc = run_cli("release", "floating-tag", "--tag", "v1.4.0-rc.1", env=env(fake))
    assert rc.outputs["moved"] == "false" and "pre-release" in rc.stdout
    tag(fake, "v1.2.9", "old patch")
    old = run_cli("release", "floating-tag", "--tag", "v1.2.9", env=env(fake))
    assert old.outputs["moved"] == "false" and "v1.3.0 is higher" in old.stdout
    assert v1(fake) == newest


def test_a_new_major_gets_its_own_tag(fake: GitHubFake, run_cli: RunCli) -> None:
    one = tag(fake, "v1.9.0", "1.9.0")
    run_cli("release", "floating-tag", "--tag", "v1.9.0", env=env(fake))
    two = tag(fake, "v2.0.0", "2.0.0")
    run_cli("release", "floating-tag", "--tag", "v2.0.0", env=env(fake))
    assert fake.repo(REPO).refs["v2"] == two and v1(fake) == one
