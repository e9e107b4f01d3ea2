"""The validate, changelog and github-release actions under act, as a consumer uses them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.act_harness import make_consumer, run_act
from tests.fakes.github import GitHubFake

pytestmark = pytest.mark.e2e

ALLOWED_AT = "2026-12-01T10:00:00+09:00"  # a Tuesday at 10:00 JST
BLOCKED_AT = "2026-12-29T10:00:00+09:00"  # New Year holidays
TOKEN = "ghs_e2etoken"


def changelog(version: str, body: str) -> bytes:
    return (
        "# Changelog\n\n## [Unreleased]\n\n"
        f"## [{version}] - 2026-11-30\n\n{body}\n\n"
        "## [1.5.0] - 2026-11-01\n\n### Added\n\n- Search.\n"
    ).encode()


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake(repos=("triptrip/webapp",), token=TOKEN) as fake:
        yield fake


def _run(
    tmp_path: Path, github: GitHubFake, tag: str, body: str, at: str, version: str | None = None
) -> tuple[Path, object]:
    version = version or tag.removeprefix("v")
    consumer = make_consumer(tmp_path, "gate", files={"CHANGELOG.md": changelog(version, body)})
    run = run_act(
        consumer,
        event_name="push",
        event={"ref": f"refs/tags/{tag}", "repository": {"full_name": "triptrip/webapp"}},
        workflow=".github/workflows/release.yml",
        env={"GITHUB_API_URL": github.url},
        variables={"RELEASE_AT": at},
        secrets={"GITHUB_TOKEN": TOKEN},
    )
    return consumer, run


def test_good_tag_publishes_the_release(tmp_path: Path, github: GitHubFake) -> None:
    body = "### Added\n\n- Trip sharing with friends."
    _, run = _run(tmp_path, github, "v1.6.0", body, ALLOWED_AT)
    assert run.returncode == 0, run.log[-4000:]  # type: ignore[attr-defined]
    release = github.release("v1.6.0", "triptrip/webapp")
    assert release["body"].startswith(body + "\n\n### Checksums (SHA-256)\n")
    assert release["prerelease"] is False and release["draft"] is False
    assert github.latest_tag("triptrip/webapp") == "v1.6.0"
    assert run.result("GATE_VALID") == "true" and run.result("GATE_DECISION") == "allowed"  # type: ignore[attr-defined]
    assert run.result("NOTES_BODY") == body and run.result("notes-file") == body  # type: ignore[attr-defined]
    assert run.result("RELEASE_CREATED") == "true" and run.result("RELEASE_ID") == str(
        release["id"]
    )  # type: ignore[attr-defined]
    assert "| tag | ✅ pass |" in run.log  # type: ignore[attr-defined]
    build = b"webapp build\n"
    name = "webapp-linux-amd64.tar.gz"
    assert github.asset_bytes("v1.6.0", name, "triptrip/webapp") == build
    sums = f"{hashlib.sha256(build).hexdigest()}  {name}\n"
    assert github.asset_bytes("v1.6.0", "SHA256SUMS", "triptrip/webapp") == sums.encode()
    assets = json.loads(run.result("RELEASE_ASSETS"))  # type: ignore[attr-defined]
    assert [(a["name"], a["action"]) for a in assets] == [
        (name, "uploaded"),
        ("SHA256SUMS", "uploaded"),
    ]
    assert run.result("RELEASE_CHANGED") == "true"  # type: ignore[attr-defined]


def test_hostile_changelog_and_prerelease_pass_through_inert(
    tmp_path: Path, github: GitHubFake
) -> None:
    marker = tmp_path / "pwned"
    body = (
        "### Fixed\r\n\r\n"
        f'- $(touch {marker}) and `touch {marker}` and ";touch {marker};#\r\n'
        "EOF\r\n"
        "pwned=1\r\n"
        "::set-output name=pwned::1\r\n"
        f"::set-env name=PWNED::1\r\n"
        "- ${{ github.token }} ${{ secrets.GITHUB_TOKEN }}"
    )
    _, run = _run(tmp_path, github, "v1.7.0-rc.1", body, ALLOWED_AT)
    assert run.returncode == 0, run.log[-4000:]  # type: ignore[attr-defined]
    assert not marker.exists()
    release = github.release("v1.7.0-rc.1", "triptrip/webapp")
    # Byte for byte, CRLF included; the checksums block that follows keeps the CRLF.
    assert release["body"].startswith(body + "\r\n\r\n### Checksums (SHA-256)\r\n")
    assert release["prerelease"] is True  # rc is a pre-release
    # The step output went through act's own $GITHUB_OUTPUT reader, which drops the CR of
    # each CRLF; GitHub's runner keeps it (tests/support/runner_files.py mirrors the
    # runner, and tests/unit/gha proves the exact round trip there). The release body and
    # the body file above did not pass through act's reader and are byte for byte.
    assert run.result("NOTES_BODY") == body.replace("\r\n", "\n")  # type: ignore[attr-defined]
    assert run.result("notes-file") == body  # type: ignore[attr-defined]
    assert run.result("GATE_PRERELEASE") == "true"  # type: ignore[attr-defined]
    env = run.environment  # type: ignore[attr-defined]
    assert "PWNED" not in env and "pwned" not in env
    assert TOKEN not in release["body"]


def test_blocked_period_refuses_before_anything_is_published(
    tmp_path: Path, github: GitHubFake
) -> None:
    _, run = _run(tmp_path, github, "v1.6.0", "### Added\n\n- x", BLOCKED_AT)
    assert run.returncode != 0
    assert github.releases == []
    assert run.result("GATE_DECISION") == "blocked" and run.result("GATE_VALID") == "false"  # type: ignore[attr-defined]
    assert "New Year holidays" in run.log  # type: ignore[attr-defined]


def test_invalid_tag_with_shell_metacharacters_is_refused(
    tmp_path: Path, github: GitHubFake
) -> None:
    marker = tmp_path / "pwned-tag"
    tag = f"v1.6.0$(touch${{IFS}}{marker})"
    _, run = _run(tmp_path, github, tag, "### Added\n\n- x", ALLOWED_AT, version="1.6.0")
    assert run.returncode != 0
    assert not marker.exists()
    assert github.releases == []
    assert run.result("GATE_VALID") == "false"  # type: ignore[attr-defined]
