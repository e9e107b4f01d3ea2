"""Shared fixtures: the CLI driven with a cleared environment."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from release_actions.cli import main
from tests.support.runner_files import parse_file_commands


def backend_missing(what: str) -> None:
    """Skip for a person without the backend; fail in CI, where a skip would hide a gap."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI (CI=true) and is missing", pytrace=False)
    pytest.skip(f"{what} is not installed")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    output_file: Path
    summary_file: Path
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def output_pairs(self) -> list[tuple[str, str]]:
        if not self.output_file.exists():
            return []
        return parse_file_commands(self.output_file.read_bytes().decode("utf-8"))

    @property
    def summary(self) -> str:
        return self.summary_file.read_text(encoding="utf-8") if self.summary_file.exists() else ""


RunCli = Callable[..., CliResult]


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    counter = iter(range(10**6))

    def run(*args: str, env: dict[str, str] | None = None, actions: bool = True) -> CliResult:
        n = next(counter)
        output = tmp_path / f"gh-output-{n}"
        summary = tmp_path / f"gh-summary-{n}"
        base = {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
        if actions:
            base["GITHUB_ACTIONS"] = "true"
        base.update(env or {})
        out, err = io.StringIO(), io.StringIO()
        code = main(list(args), env=base, out=out, err=err)
        result = CliResult(code, out.getvalue(), err.getvalue(), output, summary)
        result.outputs = dict(result.output_pairs)
        return result

    return run
