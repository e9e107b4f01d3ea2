"""No forged workflow command: data never starts a `::command::` line nor holds a `##[command]`."""

from __future__ import annotations

import io
from pathlib import Path

import click
import pytest

from release_actions.canary.model import Decision, Outcome
from release_actions.canary.report import RunReport, summary_markdown
from release_actions.gha import Runtime
from tests.conftest import RunCli

FORGED = "v9.9.9\n::error title=X::y"


def commands(text: str, name: str) -> list[str]:
    """Lines the runner would run as the command ``name``: it trims leading whitespace first."""
    return [
        line
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if line.lstrip().startswith(f"::{name}") or f"##[{name}" in line
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("canary", "run", "--target", "simulated", "--version", FORGED),
        ("monitor", "--target", "simulated", "--version", FORGED),
        ("canary", "run", "--target", "simulated", "--version", "v1.2.3 "),
        ("canary", "run", "--target", "simulated", "--version", "v1.2.3\x1b[2K"),
        ("canary", "run", "--target", "simulated", "--version", "v" + "1" * 200),
    ],
)
def test_a_version_that_is_not_one_is_a_usage_error(run_cli: RunCli, args: tuple[str, ...]) -> None:
    r = run_cli(*args)
    assert r.code == 2, r.stdout + r.stderr
    assert r.stdout == "", "nothing of the run is printed"
    assert not commands(r.stdout + r.stderr, "error title=X")
    assert "--version" in r.stderr
    assert not r.output_file.exists() and not r.summary_file.exists()


@pytest.mark.parametrize("value", ["v2", "v1.3.0", "1.3.0", "v2.0.0-rc.1+build.5", "release-7_a"])
def test_versions_and_tags_pass(value: str) -> None:
    from release_actions.cli.options import VersionParam

    assert VersionParam().convert(value, None, None) == value


@pytest.mark.parametrize("value", ["", "-v1", ".v1", "v1/../x", "v1:x", "v1#[x]", "v 1", "v1\n"])
def test_the_version_type_refuses(value: str) -> None:
    from release_actions.cli.options import VersionParam

    with pytest.raises(click.BadParameter):
        VersionParam().convert(value, None, None)


def test_a_scenario_description_cannot_forge_a_command(run_cli: RunCli, tmp_path: Path) -> None:
    scenario = tmp_path / "sneaky.yml"
    scenario.write_text(
        'description: "innocent\\n::error title=S::forged\\n  ::add-mask::x ##[error]legacy"\n'
    )
    r = run_cli("rehearse", "--scenario-file", str(scenario))
    assert r.code == 0, r.stdout + r.stderr
    assert not commands(r.stdout + r.stderr, "error title=S")
    assert not commands(r.stdout, "add-mask::x") and not commands(r.stdout, "error]")
    assert ": :error title=S::forged" in r.stdout, "the text is still shown"
    assert "::group::" in r.stdout, "the runtime's own commands still work"


def test_outside_actions_the_same_lines_are_defused(run_cli: RunCli, tmp_path: Path) -> None:
    """A container step may not pass GITHUB_ACTIONS on; the runner reads its output all the same."""
    scenario = tmp_path / "sneaky.yml"
    scenario.write_text('description: "x\\n::stop-commands::tok"\n')
    r = run_cli("rehearse", "--scenario-file", str(scenario), actions=False)
    assert not commands(r.stdout + r.stderr, "stop-commands")


def make() -> tuple[Runtime, io.StringIO]:
    buf = io.StringIO()
    return Runtime(env={"GITHUB_ACTIONS": "true"}, out=buf, err=buf), buf


def test_stream_defuses_lines_however_they_are_written() -> None:
    rt, buf = make()
    print("  ::error::a", file=rt.out)
    rt.out.write(":")
    rt.out.flush()
    rt.out.write(":warning::b\n")
    rt.out.write("progress\r::notice::c\r\n")
    print("\u00a0\t::debug::d", file=rt.err)
    print("fine ##[error]e", file=rt.out)
    rt.out.write("##")
    rt.out.flush()
    rt.out.write("[error]f\n")
    text = buf.getvalue()
    for name in ("error", "warning", "notice", "debug"):
        assert not commands(text, name), text
    assert text.splitlines()[0] == "  : :error::a"


def test_the_runtime_s_own_commands_start_their_own_line() -> None:
    rt, buf = make()
    rt.out.write("half a line")
    rt.out.flush()
    rt.annotate("error", "real")
    assert buf.getvalue().splitlines() == ["half a line", "::error::real"]


def test_summary_headings_are_one_line() -> None:
    outcome = Outcome(
        decision=Decision.PROMOTED,
        reason="fine\n## injected reason",
        version="v1",
        started_at=0.0,
        ended_at=1.0,
    )
    report = RunReport(outcome, context={"version": "v1`\n# injected fact"})
    text = summary_markdown(report, title="Canary rollout of x\n# injected title")
    lines = text.splitlines()
    assert lines[0].startswith("## Canary rollout of x # injected title")
    assert not [line for line in lines if line.lstrip().startswith("# injected")]
    assert not [line for line in lines if line.lstrip().startswith("## injected")]


ACTIONS = Path(__file__).resolve().parents[3] / "actions"


def _fail_helpers() -> list[tuple[str, str]]:
    """Each action's bash `fail` helper, with the helpers it calls, as its run script has them."""
    found = []
    for path in sorted(ACTIONS.glob("*/action.yml")):
        lines = [line.strip() for line in path.read_text().splitlines()]
        helpers = [line for line in lines if line.startswith(("esc() {", "fail() {"))]
        if any(line.startswith("fail() {") for line in helpers):
            found.append((path.parent.name, "\n".join(helpers)))
    return found


@pytest.mark.parametrize(("action", "helpers"), _fail_helpers())
def test_an_action_s_fail_helper_escapes_the_input_it_quotes(action: str, helpers: str) -> None:
    import subprocess

    script = helpers + '\nfail "got: $INPUT"'
    forged = "yes\n::add-mask::x\r::warning::w 100%"
    r = subprocess.run(
        ["bash", "-c", script], env={"INPUT": forged}, capture_output=True, text=True, check=False
    )
    assert r.returncode == 2
    assert not commands(r.stdout + r.stderr, "add-mask") and not commands(r.stderr, "warning")
    assert (
        r.stderr.startswith("::error ") and "yes%0A::add-mask::x%0D::warning::w 100%25" in r.stderr
    )


def test_no_action_quotes_an_input_in_a_command_by_hand() -> None:
    for path in sorted(ACTIONS.glob("*/action.yml")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "::error" in line and "$INPUT" in line:
                raise AssertionError(f"{path.parent.name}/action.yml:{number}: {line.strip()}")
