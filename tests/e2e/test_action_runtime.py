"""The action runtime under act: a later job of the run restores the environment, installs nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.act_harness import make_consumer, run_act

pytestmark = pytest.mark.e2e


def test_a_later_job_restores_the_environment_of_the_first(tmp_path: Path) -> None:
    consumer = make_consumer(tmp_path, "runtime")
    cache = tmp_path / "cache"
    run = run_act(
        consumer,
        event_name="push",
        event={"ref": "refs/tags/v1.2.3", "repository": {"full_name": "triptrip/webapp"}},
        workflow=".github/workflows/release.yml",
        env={"E2E_CACHE": str(cache)},
    )
    assert run.returncode == 0, run.log[-4000:]
    first = [line for line in run.log.splitlines() if "[release/first" in line]
    second = [line for line in run.log.splitlines() if "[release/second" in line]
    assert any("release-actions installed in" in line for line in first), run.log[-4000:]
    assert any("Cache restored from key: release-actions-runtime-" in line for line in second)
    assert not any("release-actions installed in" in line for line in second), run.log[-4000:]
    # One entry, saved by the first job: the second had nothing to add.
    saved = sorted(p.name for p in cache.iterdir())
    assert len(saved) == 1 and saved[0].endswith("-base"), saved
