"""Start a real Prometheus server on backfilled, deterministic data for integration tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """The path of ``name``; in CI a missing binary fails the test, elsewhere it skips it.

    A skip in CI would turn "Prometheus was never tested" into a green run.
    """
    path = shutil.which(name)
    if path:
        return path
    message = f"`{name}` is not installed (apt-get install -y --no-install-recommends prometheus)"
    if in_ci():
        pytest.fail(f"{message}; CI must run the real-Prometheus tests.", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _labels(labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + inner + "}"


@dataclass
class Series:
    """A counter or histogram that rises by the same amounts every step, so every window is exact.

    ``per_step`` is the counter's increase per step; for a histogram it maps each ``le``
    label value to the cumulative count added per step (``+Inf`` included).
    """

    labels: dict[str, str]
    per_step: float | dict[str, float]
    sum_per_step: float = 0.0


@dataclass
class Family:
    name: str
    kind: str  # "counter" or "histogram"
    series: list[Series] = field(default_factory=list)


def openmetrics(families: Sequence[Family], *, t0: int, steps: int, step: int) -> str:
    """An OpenMetrics exposition with timestamps in seconds, ending in `# EOF`, for promtool."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# TYPE {family.name} {family.kind}")
        for series in family.series:
            for i in range(steps + 1):
                ts = t0 + i * step
                if family.kind == "counter":
                    assert isinstance(series.per_step, int | float)
                    lines.append(
                        f"{family.name}_total{_labels(series.labels)} {series.per_step * i:g} {ts}"
                    )
                    continue
                assert isinstance(series.per_step, dict)
                for le, count in series.per_step.items():
                    labels = {**series.labels, "le": le}
                    lines.append(f"{family.name}_bucket{_labels(labels)} {count * i:g} {ts}")
                total = series.per_step["+Inf"] * i
                lines.append(f"{family.name}_count{_labels(series.labels)} {total:g} {ts}")
                lines.append(
                    f"{family.name}_sum{_labels(series.labels)} {series.sum_per_step * i:g} {ts}"
                )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def backfill(text: str, data_dir: Path) -> None:
    """Write TSDB blocks into ``data_dir`` with `promtool tsdb create-blocks-from openmetrics`."""
    promtool = require_binary("promtool")
    source = data_dir.parent / "backfill.om"
    source.write_text(text)
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data_dir)],
        check=True,
        capture_output=True,
        timeout=60,
    )


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@contextmanager
def running_prometheus(
    workdir: Path,
    *,
    data_dir: Path | None = None,
    scrape_targets: Sequence[str] = (),
    scrape_interval: str = "1s",
    ready_timeout: float = 30.0,
) -> Iterator[PrometheusServer]:
    """A Prometheus process on a free local port, ready to answer; stopped (by its pid) on exit."""
    binary = require_binary("prometheus")
    data_dir = data_dir or workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    scrape = ""
    if scrape_targets:
        targets = ", ".join(f'"{t}"' for t in scrape_targets)
        scrape = (
            "scrape_configs:\n"
            "  - job_name: app\n"
            f"    scrape_interval: {scrape_interval}\n"
            f"    static_configs:\n      - targets: [{targets}]\n"
        )
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
        + scrape
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir}",
                # Retention counts back from the newest block, but say it anyway: the
                # backfilled data has fixed timestamps in the past.
                "--storage.tsdb.retention.time=10y",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {process.returncode}:\n{server.log()}")
            try:
                if requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after {ready_timeout} s:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
