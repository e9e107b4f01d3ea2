"""A metrics outage means the same through `canary run` and `monitor`: 4 minutes of it, not 4 looks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunCli

HEALTHY = """\
traffic: {{rps: 200}}
stable: {{error_rate: 0.0003, latency_ms: {{p50: 80, p99: 300}}}}
canary: {{error_rate: 0.0003, latency_ms: {{p50: 80, p99: 300}}}}
events:
  - {{at: 60, provider: down, for: {seconds}}}
"""


@pytest.mark.parametrize(
    ("seconds", "canary", "watch"),
    [(45, "promoted", "stable"), (150, "promoted", "stable"), (420, "rolled_back", "rolled_back")],
)
def test_an_outage_reads_the_same_in_both_commands(
    run_cli: RunCli, tmp_path: Path, seconds: int, canary: str, watch: str
) -> None:
    scenario = tmp_path / "outage.yml"
    scenario.write_text(HEALTHY.format(seconds=seconds))
    common = ["--target", "simulated", "--scenario-file", str(scenario), "--json"]
    rollout = run_cli("canary", "run", "--version", "v2", *common, actions=False)
    assert json.loads(rollout.stdout)["decision"] == canary, rollout.stderr
    watched = run_cli("monitor", *common, actions=False)
    data = json.loads(watched.stdout)
    assert data["decision"] == watch, watched.stderr
    assert watched.code == (0 if watch == "stable" else 1)
    if watch == "rolled_back":
        # 24 failed looks at the monitor's 10 s: the same 4 minutes a canary step allows.
        assert data["reason"].startswith("24 measurement errors in a row")
