"""The README's set-up commands are the ones CI runs, and they hold on a PEP 668 Python."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import backend_missing

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The commands of the README's first shell block, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```(?:bash|sh)\n(.*?)```", text, re.S)
    assert block, "README.md has no shell block"
    return [
        line.strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def test_readme_opens_with_exactly_two_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert "rehearse" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_commands_with_the_distribution_python_first() -> None:
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [
        line.strip()
        for line in run.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    rehearse, tests = readme_commands()
    # `.ci/run` runs `.ci/install` once, then each README command as written.
    install, _, test_command = tests.partition(" && ")
    assert install == "bash .ci/install"
    assert lines.index(install) < lines.index(rehearse) < lines.index(test_command)
    path_line = next(line for line in lines if line.startswith("export PATH="))
    assert path_line.startswith('export PATH="/usr/bin:'), path_line
    assert lines.index(path_line) < lines.index(install)


def test_the_distribution_python_refuses_a_global_install_and_venv_sh_still_works(
    tmp_path: Path,
) -> None:
    """On a stock Debian/Ubuntu Python `pip install` fails (PEP 668); tools/venv.sh does not.

    The rehearsal command runs in a clone with /usr/bin first on PATH and a fresh venv, so a
    set-up that only works with a developer's own Python would fail here.
    """
    if not Path("/usr/bin/python3").exists():
        backend_missing("a distribution python3 at /usr/bin/python3")
    marker = subprocess.run(
        ["/usr/bin/python3", "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not (Path(marker) / "EXTERNALLY-MANAGED").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("/usr/bin/python3 is not externally managed: not a stock Debian python")
        pytest.skip("/usr/bin/python3 is not externally managed")
    env = {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    }
    env["PATH"] = "/usr/bin:/bin:" + env.get("PATH", "")
    env["RELEASE_ACTIONS_VENV"] = str(tmp_path / "venv")
    refused = subprocess.run(
        ["python3", "-m", "pip", "install", "--dry-run", "--no-deps", str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stderr
    rehearse = readme_commands()[0]
    done = subprocess.run(
        rehearse, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    created = tmp_path / "venv" / "bin" / "python"
    version = subprocess.run(
        [str(created), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "/usr", f"the venv was made from {version}, not the distribution's python"
    assert "promoted" in (done.stdout + done.stderr).lower()
