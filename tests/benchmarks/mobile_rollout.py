"""Mobile staged rollouts: false halts, halts per stage, hours to halt and users exposed (not a pytest test).

    python tests/benchmarks/mobile_rollout.py [--null-rollouts N] [--rollouts N] [--jobs J]

Every cell is a Play staged rollout (source §8.3: 1 % 24 h, 5 % 24 h, 20 % 48 h,
50 % 48 h, 100 %) on the simulator (scripts/release_actions/mobile/simulator.py): daily
active users of 5k, 50k and 500k, 35 % of the users in the rollout updating each day, a
base crash rate of 0.2 %, 0.5 % or 1 % of daily users and an ANR rate of 0.05 %, and a
regression of the new version from its first hour: none, crashes 1.5x, 2x or 4x, ANRs 2x
or 4x. The gate looks every virtual hour, as the production schedule does.

Both judges run on the same simulated users (the same seed per rollout):

- sequential: the default judge (new vs previous version, anytime-valid; absolute limits
  on evidence), at the policy's `false_halt_rate` of 1 %.
- source rule: the `threshold` judge, §8.3's criteria and halt conditions on the stage's
  rates as they are.

Per cell and judge: the share halted (a false halt where there is no regression), the
share halted at each stage, the share halted before the 20 % stage, the median hours to
a halt and the mean users who installed the bad version before it. Seeds are fixed, so a
run repeats exactly. Standard library only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from release_actions.mobile.policy import MobilePolicy
from release_actions.mobile.simulator import (
    MobileScenario,
    VersionProfile,
    simulate,
)

DAUS = (5_000, 50_000, 500_000)
BASES = (0.002, 0.005, 0.01)
BASE_ANR = 0.0005
REGRESSIONS: tuple[tuple[str, float, float], ...] = (
    ("none", 1.0, 1.0),
    ("crash 1.5x", 1.5, 1.0),
    ("crash 2x", 2.0, 1.0),
    ("crash 4x", 4.0, 1.0),
    ("ANR 2x", 1.0, 2.0),
    ("ANR 4x", 1.0, 4.0),
)
JUDGES = ("sequential", "threshold")
STAGE_FRACTIONS = (0.01, 0.05, 0.2, 0.5)


def scenario(dau: int, base: float, crash_x: float, anr_x: float) -> MobileScenario:
    return MobileScenario(
        dau=dau,
        update_per_day=0.35,
        previous=VersionProfile(crash_rate=base, anr_rate=BASE_ANR),
        new=VersionProfile(crash_rate=base * crash_x, anr_rate=BASE_ANR * anr_x),
    )


def run_cell(args: tuple[int, float, str, float, float, int, int]) -> dict[str, Any]:
    dau, base, label, crash_x, anr_x, reps, seed0 = args
    policy = MobilePolicy()
    sc = scenario(dau, base, crash_x, anr_x)
    out: dict[str, Any] = {"dau": dau, "base": base, "regression": label, "reps": reps}
    for judge in JUDGES:
        rows = []
        for r in range(reps):
            run = simulate(sc, policy, seed=seed0 + r, judge=judge)
            rows.append(
                (run.decision, run.halted_at_fraction, run.halted_at_hours, run.exposed_users)
            )
        halted = [x for x in rows if x[0] == "halted"]
        out[judge] = {
            "halted": len(halted) / reps,
            "completed": sum(x[0] == "completed" for x in rows) / reps,
            "held": sum(x[0] == "held" for x in rows) / reps,
            "per_stage": {f: sum(1 for x in halted if x[1] == f) / reps for f in STAGE_FRACTIONS},
            "before_20": sum(1 for x in halted if (x[1] or 1) < 0.2) / reps,
            "hours": statistics.median(x[2] for x in halted) if halted else None,
            "exposed": statistics.mean(x[3] for x in halted) if halted else None,
        }
    return out


def pct(x: float) -> str:
    return f"{100 * x:.0f} %" if x >= 0.01 or x == 0 else f"{100 * x:.1f} %"


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| DAU | base crash | regression | judge | halted | halted at 1/5/20/50 % | "
        "before 20 % | completed / held | median hours to halt | users exposed before halt |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for judge, name in (("sequential", "sequential"), ("threshold", "source rule")):
            j = res[judge]
            stages = "/".join(pct(j["per_stage"][f]) for f in STAGE_FRACTIONS)
            exposed = "-" if j["exposed"] is None else f"{j['exposed']:,.0f}"
            hours = "-" if j["hours"] is None else f"{j['hours']:.0f}"
            lines.append(
                f"| {res['dau'] // 1000}k | {100 * res['base']:.1f} % | {res['regression']} | "
                f"{name} | {pct(j['halted'])} | {stages} | {pct(j['before_20'])} | "
                f"{pct(j['completed'])} / {pct(j['held'])} | {hours} | {exposed} |"
            )
    return "\n".join(lines)


def targets(results: list[dict[str, Any]]) -> list[str]:
    out = []
    worst = max(
        (r["sequential"]["halted"], r["dau"], r["base"])
        for r in results
        if r["regression"] == "none"
    )
    out.append(
        f"false halts (sequential), worst cell: {pct(worst[0])} "
        f"({worst[1]:,} DAU, base {100 * worst[2]:.1f} %); target <= 1 %"
    )
    for r in results:
        if r["regression"] == "crash 2x" and r["dau"] >= 50_000:
            s = r["sequential"]
            out.append(
                f"crash 2x, {r['dau']:,} DAU, base {100 * r['base']:.1f} %: halted before 20 % "
                f"in {pct(s['before_20'])}, by the end of the 20 % stage in "
                f"{pct(s['before_20'] + s['per_stage'][0.2])}; target >= 90 % before 20 %"
            )
    for r in results:
        s, t = r["sequential"], r["threshold"]
        if r["regression"] != "none" and t["exposed"] is not None and t["halted"] > 0:
            ratio = None if s["exposed"] is None else s["exposed"] / t["exposed"]
            seq = "-" if s["exposed"] is None else f"{s['exposed']:,.0f}"
            times = "-" if ratio is None else f"{ratio:.2f}"
            out.append(
                f"exposure {r['regression']}, {r['dau']:,} DAU, base {100 * r['base']:.1f} %: "
                f"sequential {seq} vs source rule {t['exposed']:,.0f} (x{times}; "
                f"source rule halted {pct(t['halted'])}, sequential {pct(s['halted'])})"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--null-rollouts",
        type=int,
        default=150,
        help="rollouts per cell without a regression (false halts)",
    )
    parser.add_argument("--rollouts", type=int, default=40, help="rollouts per regression cell")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    cells = []
    for dau in DAUS:
        for base in BASES:
            for i, (label, cx, ax) in enumerate(REGRESSIONS):
                reps = args.null_rollouts if label == "none" else args.rollouts
                seed = 1_000_000 * DAUS.index(dau) + 100_000 * BASES.index(base) + 10_000 * i
                cells.append((dau, base, label, cx, ax, reps, seed))
    began = time.time()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run_cell, cells))
    print(table(results))
    print()
    for line in targets(results):
        print("- " + line)
    print(
        f"\n{sum(c[5] for c in cells) * 2:,} simulated rollouts in {time.time() - began:.0f} s "
        f"on {args.jobs} processes"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
