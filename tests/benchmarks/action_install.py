"""How long the composite actions spend installing the CLI: first step of a job vs later steps.

    python tests/benchmarks/action_install.py [--repeat 3]

Runs actions/_lib/run.sh the way a job does (a fresh RUNNER_TEMP per job), with uv when it
is on PATH and with plain pip, and prints a Markdown table of medians. Package downloads
come from the local caches after the first run, as on a runner with a warm tool cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "actions" / "_lib" / "run.sh"


def timed(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(["bash", str(RUN), *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def job(installer: str, extras: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as temp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASE_ACTIONS")}
        env["RUNNER_TEMP"] = temp
        if extras:
            env["RELEASE_ACTIONS_EXTRAS"] = extras
        env["RELEASE_ACTIONS_INSTALLER"] = installer
        first = timed(env, "version", "validate", "v1.2.3")
        later = timed(env, "version", "validate", "v1.2.3")
        return first, later


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    installers = ["uv", "pip"] if shutil.which("uv") else ["pip"]
    rows = []
    for installer in installers:
        for extras in ("", "github"):
            firsts, laters = zip(*(job(installer, extras) for _ in range(args.repeat)), strict=True)
            rows.append(
                (
                    installer,
                    extras or "(none)",
                    statistics.median(firsts),
                    statistics.median(laters),
                )
            )
    print("| installer | extras | first step of a job (s) | each later step (s) |")
    print("|---|---|---|---|")
    for installer, extras, first, later in rows:
        print(f"| {installer} | {extras} | {first:.2f} | {later:.2f} |")


if __name__ == "__main__":
    main()
