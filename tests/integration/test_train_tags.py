"""`train stage` and `train ship` against the GitHub fake: rc and final tags at the branch head."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import RunCli
from tests.fakes.github import GitHubFake

REPO = "triptrip/webapp"
THURSDAY = "2027-01-07T10:05:00+09:00"  # staging of the train cut on Wed 2027-01-06
GW_THURSDAY = "2027-05-06T10:06:00+09:00"  # Golden Week's moved production, and a staging


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


def branch(fake: GitHubFake, version: str, text: str = "") -> str:
    return fake.commit(
        f"release/v{version}", {"VERSION": text or version}, message=version, repo=REPO
    )


def refs(fake: GitHubFake) -> dict[str, str]:
    return dict(fake.repo(REPO).refs)


def test_stage_tags_rc_1_then_keeps_it_then_rc_2_after_a_fix(
    fake: GitHubFake, run_cli: RunCli
) -> None:
    head = branch(fake, "1.4.0")
    first = run_cli("train", "stage", "--version", "1.4.0", env=env(fake))
    assert first.code == 0, first.stdout + first.stderr
    assert first.outputs == {
        "tag": "v1.4.0-rc.1",
        "sha": head,
        "changed": "true",
        "branch": "release/v1.4.0",
        "version": "1.4.0",
    }
    assert refs(fake)["v1.4.0-rc.1"] == head
    again = run_cli("train", "stage", "--version", "v1.4.0", env=env(fake))
    assert again.code == 0 and again.outputs["changed"] == "false"
    assert again.outputs["tag"] == "v1.4.0-rc.1" and "already at the head" in again.stdout
    fixed = branch(fake, "1.4.0", "1.4.0 with a fix")
    second = run_cli("train", "stage", "--version", "1.4.0", "--json", env=env(fake))
    assert second.code == 0, second.stderr
    data = json.loads(second.stdout)
    assert (data["tag"], data["sha"], data["changed"]) == ("v1.4.0-rc.2", fixed, True)
    assert refs(fake)["v1.4.0-rc.1"] == head  # the first rc stays where it was


def test_an_annotated_rc_at_the_head_counts_and_rc_numbers_are_compared_as_numbers(
    fake: GitHubFake, run_cli: RunCli
) -> None:
    old = branch(fake, "1.4.0")
    fake.set_ref("v1.4.0-rc.9", old, tag=True, repo=REPO)
    head = branch(fake, "1.4.0", "next")
    tag_object = fake.add_annotated_tag("v1.4.0-rc.10", head, message="by hand", repo=REPO)
    assert refs(fake)["v1.4.0-rc.10"] == tag_object != head
    r = run_cli("train", "stage", "--version", "1.4.0", env=env(fake))
    assert (r.code, r.outputs["tag"], r.outputs["sha"]) == (0, "v1.4.0-rc.10", head)
    assert r.outputs["changed"] == "false"
    newer = branch(fake, "1.4.0", "newer")
    r = run_cli("train", "stage", "--version", "1.4.0", env=env(fake))
    assert (r.outputs["tag"], r.outputs["sha"]) == ("v1.4.0-rc.11", newer)


def test_without_a_version_the_train_of_now_picks_its_branch(
    fake: GitHubFake, run_cli: RunCli
) -> None:
    branch(fake, "1.3.0")
    head = branch(fake, "1.4.0")
    fake.set_ref("release/notes", head, repo=REPO)  # not a train branch
    r = run_cli("train", "stage", "--now", THURSDAY, env=env(fake))
    assert r.code == 0, r.stdout + r.stderr
    assert (r.outputs["tag"], r.outputs["branch"]) == ("v1.4.0-rc.1", "release/v1.4.0")


def test_golden_week_ships_the_older_branch_and_stages_the_newer_one(
    fake: GitHubFake, run_cli: RunCli
) -> None:
    # Cut Wed 04-28 (1.4.0, staged Thu 04-29); cut Wed 05-05 (1.5.0). On Thu 05-06 the first
    # ships (Tuesday was in Golden Week) and the second goes to staging.
    old = branch(fake, "1.4.0")
    fake.set_ref("v1.4.0-rc.1", old, tag=True, repo=REPO)
    new = branch(fake, "1.5.0")
    ship = run_cli("train", "ship", "--now", GW_THURSDAY, env=env(fake))
    assert ship.code == 0, ship.stdout + ship.stderr
    assert ship.outputs == {
        "tag": "v1.4.0",
        "sha": old,
        "changed": "true",
        "branch": "release/v1.4.0",
        "version": "1.4.0",
        "freeze-exceptions": "[]",
    }
    stage = run_cli("train", "stage", "--now", GW_THURSDAY, env=env(fake))
    assert (stage.outputs["tag"], stage.outputs["sha"]) == ("v1.5.0-rc.1", new)
    assert refs(fake)["v1.4.0"] == old and refs(fake)["v1.5.0-rc.1"] == new


def test_ship_is_idempotent_and_refuses_a_tag_at_another_commit(
    fake: GitHubFake, run_cli: RunCli
) -> None:
    head = branch(fake, "1.4.0")
    fake.set_ref("v1.4.0-rc.1", head, tag=True, repo=REPO)
    assert (
        run_cli("train", "ship", "--version", "1.4.0", env=env(fake)).outputs["changed"] == "true"
    )
    again = run_cli("train", "ship", "--version", "1.4.0", env=env(fake))
    assert (again.code, again.outputs["changed"], again.outputs["sha"]) == (0, "false", head)
    moved = branch(fake, "1.4.0", "a late commit")
    before = refs(fake)
    refused = run_cli("train", "ship", "--version", "1.4.0", env=env(fake))
    assert refused.code == 2
    text = refused.stdout + refused.stderr
    assert "v1.4.0 already exists" in text and head[:12] in text and moved[:12] in text
    assert "hotfix" in text
    assert refs(fake) == before and refused.outputs == {}


def test_ship_warns_when_the_head_was_never_staged(fake: GitHubFake, run_cli: RunCli) -> None:
    branch(fake, "1.4.0")
    r = run_cli("train", "ship", "--version", "1.4.0", env=env(fake))
    assert r.code == 0 and r.outputs["changed"] == "true"
    assert "::warning title=Release train%3A ship::No rc tag of v1.4.0" in r.stdout


def test_stage_after_ship_and_a_missing_branch_are_refused(
    fake: GitHubFake, run_cli: RunCli
) -> None:
    head = branch(fake, "1.4.0")
    fake.set_ref("v1.4.0", head, tag=True, repo=REPO)
    r = run_cli("train", "stage", "--version", "1.4.0", env=env(fake))
    assert r.code == 2 and "has shipped" in r.stdout + r.stderr
    r = run_cli("train", "ship", "--version", "1.9.0", env=env(fake))
    assert r.code == 2 and "`release/v1.9.0` does not exist" in r.stdout + r.stderr
    empty = GitHubFake(repos=(REPO,)).start()
    try:
        r = run_cli("train", "ship", "--now", THURSDAY, env=env(empty))
        assert r.code == 2 and "No release branch of this train" in r.stdout + r.stderr
    finally:
        empty.stop()


def test_dry_run_tags_nothing(fake: GitHubFake, run_cli: RunCli) -> None:
    branch(fake, "1.4.0")
    before = refs(fake)
    r = run_cli("--dry-run", "train", "ship", "--version", "1.4.0", env=env(fake))
    assert r.code == 0 and "Would tag v1.4.0" in r.stdout
    assert r.outputs["changed"] == "false" and refs(fake) == before
    assert fake.writes() == []


def test_a_refused_token_says_which_permission(fake: GitHubFake, run_cli: RunCli) -> None:
    branch(fake, "1.4.0")
    ro = GitHubFake(repos=(REPO,), read_only_tokens=("ghs_ro",))
    ro.start()
    try:
        ro.commit("release/v1.4.0", {"VERSION": "x"}, repo=REPO)
        r = run_cli(
            "train", "stage", "--version", "1.4.0", env={**env(ro), "GITHUB_TOKEN": "ghs_ro"}
        )
        assert r.code == 2 and "contents: write" in r.stdout + r.stderr
    finally:
        ro.stop()


def test_ship_names_the_freeze_exceptions_in_the_release_notice(
    fake: GitHubFake, run_cli: RunCli
) -> None:
    from tests.fakes.slack import SlackFake

    branch(fake, "1.4.0")
    excepted = fake.add_pull(
        "feature/fares",
        base="release/v1.4.0",
        title="feat: the new fare table",
        merged=True,
        labels=["freeze-exception"],
        repo=REPO,
    )
    fake.add_pull("fix/login", base="release/v1.4.0", title="fix: login", merged=True, repo=REPO)
    with SlackFake() as slack:
        notified = {**env(fake), "SLACK_WEBHOOK_URL": slack.webhook_url}
        r = run_cli("train", "ship", "--version", "1.4.0", "--json", env=notified)
        assert r.code == 0, r.stdout + r.stderr
        assert [e["number"] for e in json.loads(r.stdout)["freeze_exceptions"]] == [
            excepted["number"]
        ]
        assert r.outputs["freeze-exceptions"] == json.dumps([excepted["number"]])
        (message,) = slack.messages
        assert f"Freeze exception #{excepted['number']}: feat: the new fare table" in message.text
        assert "fix: login" not in message.text
        # Once: a rerun finds the tag and sends nothing.
        again = run_cli("train", "ship", "--version", "1.4.0", env=notified)
        assert again.code == 0 and again.outputs["changed"] == "false"
        assert len(slack.messages) == 1
