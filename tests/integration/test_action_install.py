"""actions/_lib/run.sh for real: the lock's hashes are enforced, the version is the release tag's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import backend_missing
from tests.e2e.act_harness import release_actions_snapshot

pytestmark = pytest.mark.integration

GIT = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]


def _tree(dest: Path) -> Path:
    """This checkout's files (tracked and new), as a runner's copy of the action has them."""
    shutil.copytree(release_actions_snapshot(), dest)
    return dest


def _run_sh(tree: Path, temp: Path, installer: str, *args: str) -> subprocess.CompletedProcess[str]:
    tools = Path(sys.executable).parent
    if (
        installer == "uv"
        and shutil.which("uv", path=f"{tools}{os.pathsep}{os.environ['PATH']}") is None
    ):
        backend_missing("uv (pip install uv)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELEASE_ACTIONS", "GITHUB_"))}
    env.update(
        PATH=f"{tools}{os.pathsep}{env['PATH']}",
        RUNNER_TEMP=str(temp),
        RELEASE_ACTIONS_INSTALLER=installer,
        RELEASE_ACTIONS_PYTHON=sys.executable,
    )
    return subprocess.run(
        ["bash", str(tree / "actions" / "_lib" / "run.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_package_whose_hash_differs_from_the_lock_is_refused(
    tmp_path: Path, installer: str
) -> None:
    tree = _tree(tmp_path / "release-actions")
    base = tree / "actions" / "_lib" / "lock" / "base.txt"
    text = base.read_text()
    # Every hash of click's entry: the wheel the installer fetches no longer matches any.
    block = re.search(r"^click==\S+ \\\n(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", text, re.M)
    assert block is not None
    tampered = re.sub(
        r"sha256:([0-9a-f])",
        lambda m: "sha256:" + "0123456789abcdef"[(int(m.group(1), 16) + 1) % 16],
        block.group(0),
    )
    base.write_text(text.replace(block.group(0), tampered))

    r = _run_sh(tree, tmp_path / "runner", installer, "version", "validate", "v1.2.3")
    assert r.returncode != 0, r.stdout + r.stderr
    assert "did not match the sha256 in release-actions' lock" in r.stderr
    assert re.search(r"hash mismatch|do not match the hashes", r.stderr, re.I), r.stderr
    assert "v1.2.3" not in r.stdout


def test_version_is_the_release_tag_in_a_checkout_and_in_its_github_tarball(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "checkout")
    for name in ("build", "scripts/release_actions.egg-info"):
        shutil.rmtree(tree / name, ignore_errors=True)
    subprocess.run([*GIT, "init", "-q"], cwd=tree, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=tree, check=True)
    subprocess.run([*GIT, "commit", "-qm", "release"], cwd=tree, check=True)
    subprocess.run([*GIT, "tag", "-a", "v9.8.7", "-m", "v9.8.7"], cwd=tree, check=True)

    r = _run_sh(tree, tmp_path / "runner-checkout", "uv", "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "release-actions, version 9.8.7"

    # What a runner downloads for `uses: ...@v9.8.7`: `git archive` of the tag, no .git, with
    # .git_archival.txt filled in (export-subst).
    tarball = tmp_path / "tarball"
    tarball.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "v9.8.7"], cwd=tree, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tarball)], input=archive, check=True)
    assert "describe-name: v9.8.7" in (tarball / ".git_archival.txt").read_text()
    r = _run_sh(tarball, tmp_path / "runner-tarball", "uv", "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "release-actions, version 9.8.7"
