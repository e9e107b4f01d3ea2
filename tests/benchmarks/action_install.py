"""How long the composite actions take to get the CLI ready: cold, warm, a later job, a later step.

    python tests/benchmarks/action_install.py [--repeat 3] [--ref HEAD]

Runs actions/_lib/run.sh the way the jobs of one workflow run do, on a copy of this checkout
(or of the commit given with --ref, to measure an older run.sh), with uv and with pip, for the
core alone (`version validate`), `kubernetes` and `all`, and prints a Markdown table of medians:

- first job, cold: a fresh RUNNER_TEMP and an empty download cache (a hosted runner);
- first job, warm: a fresh RUNNER_TEMP and the installer's download cache already filled
  (a self-hosted runner, or a runner image that carries the cache);
- later job: a fresh RUNNER_TEMP where the environment the first job saved is restored (what
  actions/cache does: a zstd tarball unpacked; the download from GitHub's cache service, about
  the archive's size at 100+ MB/s on a hosted runner, comes on top), then the step runs;
- later step: the next step of the same job.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETS = {"(core)": "", "kubernetes": "kubernetes", "all": "all"}


def snapshot(ref: str | None, dest: Path) -> Path:
    """The files of the checkout (tracked and new, not ignored) or of commit `ref`."""
    if ref:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", ref], cwd=ROOT, check=True, capture_output=True
        ).stdout
        dest.mkdir(parents=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return dest
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


class Bench:
    def __init__(self, tree: Path, work: Path, installer: str, extras: str) -> None:
        self.tree, self.work, self.installer, self.extras = tree, work, installer, extras
        self.count = 0

    def env(self, runner_temp: Path, cache: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASE_ACTIONS")}
        env.update(
            RUNNER_TEMP=str(runner_temp),
            RELEASE_ACTIONS_INSTALLER=self.installer,
            RELEASE_ACTIONS_EXTRAS=self.extras,
            UV_CACHE_DIR=str(cache / "uv"),
            PIP_CACHE_DIR=str(cache / "pip"),
        )
        return env

    def step(self, env: dict[str, str], before: Callable[[], None] | None = None) -> float:
        start = time.perf_counter()
        if before is not None:
            before()
        subprocess.run(
            [
                "bash",
                str(self.tree / "actions" / "_lib" / "run.sh"),
                "version",
                "validate",
                "v1.2.3",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start

    def fresh(self, name: str) -> Path:
        self.count += 1
        path = self.work / f"{self.installer}-{self.extras or 'core'}-{name}-{self.count}"
        path.mkdir()
        return path

    def run(self, repeat: int) -> tuple[float, float, float, float, int]:
        cold, warm, later_job, later_step = [], [], [], []
        size = 0
        warm_cache = self.fresh("warm-cache")
        for _ in range(repeat):
            temp = self.fresh("runner")
            cold.append(self.step(self.env(temp, self.fresh("empty-cache"))))
        for _ in range(repeat + 1):  # the first fills the cache
            temp = self.fresh("runner")
            warm.append(self.step(self.env(temp, warm_cache)))
            later_step.append(self.step(self.env(temp, warm_cache)))
        venv = temp / "release-actions-venv"
        archive = self.work / f"{self.installer}-{self.extras or 'core'}-runtime.tar.zst"
        subprocess.run(
            ["tar", "--zstd", "-cf", str(archive), "-C", str(temp), venv.name], check=True
        )
        size = archive.stat().st_size
        for _ in range(repeat):
            job = self.fresh("runner")

            def restore(job: Path = job) -> None:
                subprocess.run(["tar", "--zstd", "-xf", str(archive), "-C", str(job)], check=True)

            later_job.append(self.step(self.env(job, self.fresh("empty-cache")), restore))
        m = statistics.median
        return m(cold), m(warm[1:]), m(later_job), m(later_step), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ref", help="measure the run.sh of this commit instead of the checkout")
    parser.add_argument("--installer", action="append", choices=["uv", "pip"])
    args = parser.parse_args()
    installers = args.installer or (["uv", "pip"] if shutil.which("uv") else ["pip"])
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        tree = snapshot(args.ref, work / "release-actions")
        print(
            "| installer | extras | first job, cold (s) | first job, warm download cache (s) "
            "| later job, environment restored (s) | each later step (s) | saved environment |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        for installer in installers:
            for label, extras in SETS.items():
                bench = Bench(tree, work, installer, extras)
                cold, warm, job, step, size = bench.run(args.repeat)
                print(
                    f"| {installer} | {label} | {cold:.2f} | {warm:.2f} | {job:.2f} | {step:.2f} "
                    f"| {size / 1e6:.0f} MB |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
