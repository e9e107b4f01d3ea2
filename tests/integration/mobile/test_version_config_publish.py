"""`mobile version-config publish`: a pull request through PyGithub against the GitHub fake, and
Remote Config through google-auth's real JWT grant against the Remote Config fake."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth, Github

from release_actions.errors import IntegrationError
from release_actions.integrations.github import propose_file, read_file
from tests.conftest import RunCli
from tests.fakes.github import Fault, GitHubFake
from tests.fakes.remote_config import PROJECT, RemoteConfigFake
from tests.integration.fake_github import fake_github_env, raw

pytestmark = pytest.mark.integration

PATH = "config/app-version.json"
# CRLF line endings, two-space indentation and a trailing comment-free layout the bump keeps.
CONFIG = (
    "{\r\n"
    '  "minimumVersion": "1.5.0",\r\n'
    '  "recommendedVersion": "1.6.0",\r\n'
    '  "forceUpdate": true,\r\n'
    '  "updateMessage": "重要なセキュリティアップデートがあります。",\r\n'
    '  "storeUrls": {\r\n'
    '    "ios": "https://apps.apple.com/app/triptrip/id123456789",\r\n'
    '    "android": "https://play.google.com/store/apps/details?id=com.triptrip.app"\r\n'
    "  }\r\n"
    "}\r\n"
)
BUMPED = CONFIG.replace('"recommendedVersion": "1.6.0"', '"recommendedVersion": "1.7.0"')
BRANCH = "release-actions/version-config"


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake() as fake:
        fake.commit("main", {PATH: CONFIG, "README.md": "app\n"}, message="Initial")
        yield fake


def repo_of(fake: GitHubFake):  # type: ignore[no-untyped-def]
    gh = Github(
        base_url=fake.url,
        auth=Auth.Token("t"),
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    return gh.get_repo("octo/app")


def propose(fake: GitHubFake, text: str = BUMPED, **kw: str):  # type: ignore[no-untyped-def]
    kw.setdefault("title", "Version config: recommendedVersion 1.7.0")
    kw.setdefault("body", "Raises it.")
    return propose_file(
        repo_of(fake), path=PATH, text=text, branch=BRANCH, message="Raise it", **kw
    )


# -- the fake's endpoints -------------------------------------------------------------------


def test_contents_get_put_and_the_sha_rules(github: GitHubFake) -> None:
    status, body = raw(github, "GET", f"/repos/octo/app/contents/{PATH}")
    assert status == 200 and body["type"] == "file" and body["encoding"] == "base64"
    assert base64.b64decode(body["content"]).decode() == CONFIG
    sha = body["sha"]
    new = base64.b64encode(b"x\n").decode()
    status, body = raw(
        github, "PUT", f"/repos/octo/app/contents/{PATH}", {"message": "m", "content": new}
    )
    assert status == 422 and '"sha" wasn\'t supplied' in body["message"]
    status, body = raw(
        github,
        "PUT",
        f"/repos/octo/app/contents/{PATH}",
        {"message": "m", "content": new, "sha": "0" * 40},
    )
    assert status == 409 and "does not match" in body["message"]
    status, body = raw(
        github,
        "PUT",
        f"/repos/octo/app/contents/{PATH}",
        {"message": "m", "content": new, "sha": sha},
    )
    assert status == 200 and body["commit"]["message"] == "m"
    assert github.file_at("main", PATH) == "x\n"
    status, body = raw(
        github, "PUT", "/repos/octo/app/contents/new.txt", {"message": "m", "content": new}
    )
    assert status == 201
    assert raw(github, "GET", "/repos/octo/app/contents/nope.txt")[0] == 404
    assert raw(github, "GET", "/repos/octo/app/contents/config")[0] == 404  # a directory


def test_read_file_with_pygithub(github: GitHubFake) -> None:
    text, sha = read_file(repo_of(github), PATH) or ("", "")
    assert text == CONFIG and len(sha) == 40
    assert read_file(repo_of(github), "missing.json") is None


# -- propose_file ---------------------------------------------------------------------------


def test_opens_a_pull_request_with_the_one_file_change(github: GitHubFake) -> None:
    main_before = github.repo().refs["main"]
    proposal = propose(github)
    assert proposal.created_branch and proposal.created_pull and proposal.committed
    assert proposal.pull_number == 1 and proposal.pull_url.endswith("/octo/app/pull/1")
    assert github.file_at(BRANCH, PATH) == BUMPED  # byte for byte, CRLF included
    assert github.file_at(BRANCH, "README.md") == "app\n"
    assert github.repo().refs["main"] == main_before  # main is not touched
    pull = github.repo().pulls[0]
    assert (pull["head_ref"], pull["base_ref"], pull["title"]) == (
        BRANCH,
        "main",
        "Version config: recommendedVersion 1.7.0",
    )
    # The branch was made from main's head through the refs API.
    assert github.log(BRANCH)[1]["sha"] == main_before


def test_a_rerun_with_the_same_content_changes_nothing(github: GitHubFake) -> None:
    propose(github)
    writes = len(github.writes())
    again = propose(github)
    assert not again.changed and again.pull_number == 1
    assert "already up to date" in again.reason
    assert len(github.writes()) == writes


def test_same_branch_new_content_updates_the_pull_request(github: GitHubFake) -> None:
    propose(github)
    newer = CONFIG.replace('"recommendedVersion": "1.6.0"', '"recommendedVersion": "1.8.0"')
    update = propose(github, newer, title="Version config: recommendedVersion 1.8.0")
    assert update.changed and not update.created_pull and update.edited_pull
    assert update.pull_number == 1 and len(github.repo().pulls) == 1
    pull = github.repo().pulls[0]
    assert pull["title"] == "Version config: recommendedVersion 1.8.0"
    assert pull["head_sha"] == github.repo().refs[BRANCH]
    assert github.file_at(BRANCH, PATH) == newer


def test_nothing_to_propose_when_main_already_has_it(github: GitHubFake) -> None:
    proposal = propose(github, CONFIG)
    assert not proposal.changed and proposal.pull_number is None
    assert BRANCH not in github.repo().refs and not github.writes()


def test_a_branch_left_from_a_closed_proposal_starts_again_from_main(github: GitHubFake) -> None:
    propose(github)
    github.repo().pulls[0]["state"] = "closed"
    github.commit("main", {"other.txt": "o\n"}, message="Meanwhile")
    proposal = propose(github)
    assert proposal.created_pull and proposal.pull_number == 2
    assert github.log(BRANCH)[1]["sha"] == github.repo().refs["main"]
    assert github.file_at(BRANCH, "other.txt") == "o\n"


def test_a_write_in_between_is_read_again(github: GitHubFake) -> None:
    """Someone changes the file on the branch between our read and our write: 409, read again."""
    propose(github)
    newer = BUMPED.replace("1.7.0", "1.9.0")
    github.faults.append(
        Fault(
            "PUT",
            f"/repos/octo/app/contents/{PATH}",
            409,
            {"message": f"{PATH} does not match", "documentation_url": ""},
        )
    )
    proposal = propose(github, newer)
    assert proposal.committed and github.file_at(BRANCH, PATH) == newer


def test_a_read_only_token_is_told_the_permission(github: GitHubFake) -> None:
    github.read_only_tokens.add("t")
    with pytest.raises(IntegrationError, match="not allowed") as info:
        propose(github)
    assert "contents: write" in (info.value.hint or "")


# -- the command ----------------------------------------------------------------------------


def test_the_command_opens_then_reruns_idempotently(github: GitHubFake, run_cli: RunCli) -> None:
    env = fake_github_env(github.url, "ghs_fake")
    args = (
        "mobile",
        "version-config",
        "publish",
        "--config",
        f"./{PATH}",
        "--recommended",
        "1.7.0",
    )
    r = run_cli(*args, env=env)
    assert r.code == 0, r.stderr
    assert r.outputs["changed"] == "true"
    assert r.outputs["pull-request-number"] == "1"
    assert r.outputs["branch"] == BRANCH
    assert r.outputs["recommended-version"] == "1.7.0"
    assert "pull request #1" in r.summary
    assert github.file_at(BRANCH, PATH) == BUMPED
    pull = github.repo().pulls[0]
    assert "`recommendedVersion`: 1.6.0 → 1.7.0" in pull["body"]
    again = run_cli(*args, "--json", env=env, actions=False)
    assert again.code == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["ok"] is True and data["changed"] is False
    assert data["pull_request"]["number"] == 1 and data["pull_request"]["created"] is False
    assert len(github.repo().pulls) == 1


def test_the_command_refuses_to_lower_a_version(github: GitHubFake, run_cli: RunCli) -> None:
    env = fake_github_env(github.url, "ghs_fake")
    r = run_cli(
        "mobile",
        "version-config",
        "publish",
        "--config",
        PATH,
        "--recommended",
        "1.5.5",
        "--json",
        env=env,
        actions=False,
    )
    assert r.code == 2
    assert json.loads(r.stdout)["error"]["code"] == "version_config"
    assert not github.writes()


def test_the_command_dry_run_writes_nothing(github: GitHubFake, run_cli: RunCli) -> None:
    env = fake_github_env(github.url, "ghs_fake")
    r = run_cli(
        "--dry-run",
        "mobile",
        "version-config",
        "publish",
        "--config",
        PATH,
        "--minimum",
        "1.6.0",
        env=env,
    )
    assert r.code == 0, r.stderr
    assert "dry run" in r.stdout and not github.writes()


def test_the_command_names_a_missing_file(github: GitHubFake, run_cli: RunCli) -> None:
    env = fake_github_env(github.url, "ghs_fake")
    r = run_cli(
        "mobile",
        "version-config",
        "publish",
        "--config",
        "app.json",
        "--recommended",
        "1.7.0",
        "--json",
        env=env,
        actions=False,
    )
    assert r.code == 2
    assert "`app.json` is not on `main` in octo/app" in json.loads(r.stdout)["error"]["message"]


# -- Firebase Remote Config -----------------------------------------------------------------


@pytest.fixture
def remote() -> Iterator[RemoteConfigFake]:
    with RemoteConfigFake() as fake:
        yield fake


def key_json(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "fedcba9876543210",
            "private_key": pem,
            "client_email": "releaser@triptrip-prod.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )


def test_firebase_publishes_the_validated_config(
    remote: RemoteConfigFake, run_cli: RunCli, tmp_path: Path
) -> None:
    config = tmp_path / "app-version.json"
    config.write_bytes(CONFIG.encode())
    env = {
        "FIREBASE_SERVICE_ACCOUNT_JSON": key_json(f"{remote.url}/token"),
        "FIREBASE_REMOTE_CONFIG_URL": remote.url,
        "FIREBASE_PROJECT": PROJECT,
    }
    args = (
        "mobile",
        "version-config",
        "publish",
        "--config",
        str(config),
        "--to",
        "firebase",
        "--recommended",
        "1.7.0",
    )
    r = run_cli(*args, env=env)
    assert r.code == 0, r.stderr
    assert r.outputs["changed"] == "true"
    assert remote.value("app_version_config") == {
        "minimumVersion": "1.5.0",
        "recommendedVersion": "1.7.0",
        "forceUpdate": True,
        "updateMessage": "重要なセキュリティアップデートがあります。",
        "storeUrls": {
            "ios": "https://apps.apple.com/app/triptrip/id123456789",
            "android": "https://play.google.com/store/apps/details?id=com.triptrip.app",
        },
    }
    assert config.read_bytes() == CONFIG.encode()  # the local file is not rewritten
    claims = jwt.decode(remote.assertions[0], options={"verify_signature": False})
    assert claims["iss"] == "releaser@triptrip-prod.iam.gserviceaccount.com"
    assert "::add-mask::fedcba9876543210" in r.stdout
    again = run_cli(*args, "--parameter", "app_version_config", "--json", env=env, actions=False)
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["changed"] is False
    assert len(remote.puts()) == 1


def test_firebase_without_a_project(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "app-version.json"
    config.write_text(CONFIG)
    r = run_cli(
        "mobile",
        "version-config",
        "publish",
        "--config",
        str(config),
        "--to",
        "firebase",
        "--json",
        actions=False,
    )
    assert r.code == 2
    assert "--firebase-project ID" in json.loads(r.stdout)["error"]["message"]
