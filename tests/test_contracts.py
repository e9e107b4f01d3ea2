"""The joins between YAML and code: what a workflow passes or reads exists where it points."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from release_actions.cli import cli
from release_actions.cli.action import ACTIONS, arguments

ROOT = Path(__file__).resolve().parents[1]
ACTION_USE = re.compile(r"^(?:\./|triptrip/release-actions/)actions/([\w-]+)(?:@.*)?$")
WORKFLOW_USE = re.compile(
    r"^(?:\./|triptrip/release-actions/)\.github/workflows/([\w.-]+)(?:@.*)?$"
)


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _callers() -> list[Path]:
    """Every workflow that uses the project's actions or workflows: its own, templates, e2e."""
    found = [
        *sorted((ROOT / ".github" / "workflows").glob("*.yml")),
        *sorted((ROOT / "workflow-templates").glob("*.yml")),
        *sorted((ROOT / "tests" / "e2e" / "consumers").rglob("*.yml")),
    ]
    return [p for p in found if "jobs" in (_load(p) or {})]


def _action(name: str) -> dict[str, Any]:
    return _load(ROOT / "actions" / name / "action.yml")


def _steps() -> list[tuple[Path, str, dict[str, Any]]]:
    out = []
    for path in _callers():
        for job_name, job in _load(path)["jobs"].items():
            for step in job.get("steps") or []:
                out.append((path, job_name, step))
    return out


def _action_steps() -> list[tuple[Path, str, dict[str, Any], str]]:
    out = []
    for path, job, step in _steps():
        m = ACTION_USE.match(str(step.get("uses", "")))
        if m:
            out.append((path, job, step, m.group(1)))
    return out


def _id(item: tuple[Any, ...]) -> str:
    return f"{item[0].relative_to(ROOT)}:{item[1]}"


def test_the_callers_are_found() -> None:
    names = {name for *_, name in _action_steps()}
    assert {"canary", "monitor", "validate", "github-release"} <= names


@pytest.mark.parametrize("item", _action_steps(), ids=_id)
def test_every_with_key_is_an_input_and_every_required_input_is_given(
    item: tuple[Path, str, dict[str, Any], str],
) -> None:
    path, job, step, name = item
    inputs = _action(name).get("inputs") or {}
    given = step.get("with") or {}
    unknown = sorted(set(given) - set(inputs))
    assert not unknown, (
        f"{path.name} ({job}) passes {unknown} to actions/{name}, which has no such input"
    )
    required = {k for k, v in inputs.items() if (v or {}).get("required") and "default" not in v}
    missing = sorted(required - set(given))
    assert not missing, (
        f"{path.name} ({job}) leaves out required inputs {missing} of actions/{name}"
    )


def _workflow_calls() -> list[tuple[Path, str, dict[str, Any], str]]:
    out = []
    for path in _callers():
        for job_name, job in _load(path)["jobs"].items():
            m = WORKFLOW_USE.match(str(job.get("uses", "")))
            if m:
                out.append((path, job_name, job, m.group(1)))
    return out


def test_templates_call_the_reusable_workflows() -> None:
    called = {name for *_, name in _workflow_calls()}
    assert {"release.yml", "hotfix.yml", "db-migration.yml"} <= called


@pytest.mark.parametrize("item", _workflow_calls(), ids=_id)
def test_every_workflow_call_input_exists(item: tuple[Path, str, dict[str, Any], str]) -> None:
    path, job_name, job, name = item
    call = _load(ROOT / ".github" / "workflows" / name)["on"]["workflow_call"]
    inputs = call.get("inputs") or {}
    given = job.get("with") or {}
    unknown = sorted(set(given) - set(inputs))
    assert not unknown, f"{path.name} ({job_name}) passes {unknown} to {name}"
    required = {k for k, v in inputs.items() if v.get("required") and "default" not in v}
    assert not required - set(given), f"{path.name} ({job_name}) leaves out {required}"
    secrets = job.get("secrets")
    if isinstance(secrets, dict):
        declared = call.get("secrets") or {}
        assert not set(secrets) - set(declared), f"{path.name} passes undeclared secrets"


def _reads(text: str, kind: str) -> set[tuple[str, str]]:
    return set(re.findall(rf"\b{kind}\.([\w-]+)\.outputs\.([\w-]+)", text))


@pytest.mark.parametrize("path", _callers(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_output_read_is_declared(path: Path) -> None:
    """`steps.X.outputs.Y` of a project action, and `needs.J.outputs.Y` of a job."""
    text = path.read_text()
    data = _load(path)
    for job_name, job in data["jobs"].items():
        job_text = yaml.safe_dump(job)
        ids = {}
        for step in job.get("steps") or []:
            m = ACTION_USE.match(str(step.get("uses", "")))
            if m and "id" in step:
                ids[step["id"]] = m.group(1)
        for step_id, output in _reads(job_text, "steps"):
            if step_id in ids:
                declared = _action(ids[step_id]).get("outputs") or {}
                assert output in declared, (
                    f"{path.name} ({job_name}) reads steps.{step_id}.outputs.{output}; "
                    f"actions/{ids[step_id]} declares {sorted(declared)}"
                )
    for job_name, output in _reads(text, "needs"):
        job = data["jobs"].get(job_name)
        assert job is not None, f"{path.name} reads needs.{job_name}, which is no job"
        if "uses" in job:
            m = WORKFLOW_USE.match(job["uses"])
            assert m, job["uses"]
            called = _load(ROOT / ".github" / "workflows" / m.group(1))
            declared = called["on"]["workflow_call"].get("outputs") or {}
        else:
            declared = job.get("outputs") or {}
        assert output in declared, f"{path.name} reads needs.{job_name}.outputs.{output}"


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_action_inputs_map_to_options_of_the_command(name: str) -> None:
    """Each input of a thin action reaches its command (or one that a `command` value
    selects), and each option it names exists."""
    spec = ACTIONS[name]
    specs = [spec, *spec.commands.values()]
    action = _action(name)
    inputs = set(action.get("inputs") or {})
    extra = {"fail-on-rollback"} if spec.fail_on_rollback else set()
    mapped = {i for s in specs for i in s.inputs}
    unmapped = inputs - mapped - set(spec.yaml_only) - extra
    assert not unmapped, f"actions/{name}: inputs {unmapped} reach no option"
    stale = (mapped | extra) - inputs
    assert not stale, f"actions/{name}: the map names inputs {stale} that the action lacks"
    for value in spec.commands:
        assert value in action["inputs"]["command"]["description"], value
    # The step that runs the command (the runtime cache's restore and save steps surround it).
    runs = [s for s in action["runs"]["steps"] if "_lib/run.sh" in str(s.get("run", ""))]
    step = next(s for s in runs if f"action {name}" in s["run"])
    env = step.get("env") or {}
    for one in specs:
        command: click.Command = cli
        ctx = click.Context(cli)
        for part in one.command:
            assert isinstance(command, click.Group)
            sub = command.get_command(ctx, part)
            assert sub is not None, part
            command = sub
        options = {opt for p in command.params for opt in p.opts}
        for input_name, how in one.inputs.items():
            assert how.option in options, f"actions/{name} input `{input_name}` -> {how.option}"
            var = "INPUT_" + input_name.upper().replace("-", "_")
            assert env.get(var) == f"${{{{ inputs.{input_name} }}}}", f"{name}: {var}"
    assert step["run"].strip().endswith(f"action {name}'") or step["run"].strip().endswith(
        f"action {name}"
    )


def test_a_command_value_selects_its_own_command_and_extras() -> None:
    from release_actions.cli.action import extras

    env = {
        "INPUT_COMMAND": "propose-version",
        "INPUT_PLATFORM": "android",
        "INPUT_PACKAGE": "com.example.app",
        "INPUT_VERSION_CONFIG": "config/app-version.json",
        "INPUT_TRACK": "production",
    }
    assert arguments("mobile", env) == [
        *("mobile", "version-config", "propose", "--platform", "android"),
        *("--package", "com.example.app", "--config", "config/app-version.json"),
    ]
    assert extras("mobile", env) == ["github"]
    assert arguments("mobile", {**env, "INPUT_COMMAND": "advance"})[:4] == [
        *("mobile", "rollout", "--command", "advance"),
    ]


def test_arguments_map_each_kind() -> None:
    env = {
        "INPUT_TARGET": "kubernetes",
        "INPUT_FLAGS": "new-checkout, search-v2\nx",
        "INPUT_FLAGS_ONLY": "true",
        "INPUT_NO_FLAGS": "false",
        "INPUT_PROVIDER_SETTINGS": "url=http://p:9090\n\n  \nservice=api",
        "INPUT_REASON": "",
    }
    args = arguments("rollback", env)
    assert args[0] == "rollback"
    assert args[args.index("--target") + 1] == "kubernetes"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--flag"] == [
        "new-checkout",
        "search-v2",
        "x",
    ]
    assert "--flags-only" in args
    assert "--no-flags" not in args
    assert "--reason" not in args
    assert [args[i + 1] for i, a in enumerate(args) if a == "--provider-setting"] == [
        "url=http://p:9090",
        "service=api",
    ]


def _secrets_by_action(name: str) -> dict[str, set[str]]:
    data = _load(ROOT / ".github" / "workflows" / name)
    out: dict[str, set[str]] = {}
    for job in data["jobs"].values():
        for step in job.get("steps") or []:
            m = ACTION_USE.match(str(step.get("uses", "")))
            if m:
                text = yaml.safe_dump(step.get("env") or {})
                out.setdefault(m.group(1), set()).update(re.findall(r"secrets\.(\w+)", text))
    return out


def test_hotfix_forwards_every_secret_release_gives_the_same_steps() -> None:
    """A hotfix against an authenticated Prometheus must not get 401s and roll itself back."""
    release, hotfix = _secrets_by_action("release.yml"), _secrets_by_action("hotfix.yml")
    declared = set(_load(ROOT / ".github/workflows/hotfix.yml")["on"]["workflow_call"]["secrets"])
    for action in set(release) & set(hotfix):
        missing = release[action] - hotfix[action]
        assert not missing, f"hotfix.yml's {action} steps lack {sorted(missing)}"
        assert hotfix[action] <= declared, (
            f"hotfix.yml does not declare {hotfix[action] - declared}"
        )


def test_every_action_shares_the_runtime_of_the_run() -> None:
    """An action without the restore and save steps reinstalls in every job (20 s and more)."""
    for path in sorted((ROOT / "actions").glob("*/action.yml")):
        steps = _load(path)["runs"]["steps"]
        runs = [i for i, s in enumerate(steps) if "_lib/run.sh" in str(s.get("run", ""))]
        if not runs:
            continue
        name = path.parent.name
        assert "runtime-key" in steps[0].get("run", ""), f"{name}: no runtime-key step first"
        assert str(steps[1].get("uses", "")).startswith("actions/cache/restore@"), name
        for i in runs[1:]:
            step = steps[i]
            assert step["env"].get("RELEASE_ACTIONS_RUNTIME_KEY") == (
                "${{ steps.runtime.outputs.key }}"
            ), f"{name}: step {step.get('id')} does not get the runtime key"
        last = steps[-1]
        assert str(last.get("uses", "")).startswith("actions/cache/save@"), name
        assert last["if"].startswith("always()"), name
        ids = {s.get("id") for s in steps}
        saved_from = last["with"]["key"].split(".")[1]
        assert saved_from in ids, f"{name}: saves the key of a step it lacks: {saved_from}"


def _doc_snippets() -> list[tuple[str, dict[str, Any]]]:
    """The workflows the README and docs tell a consumer to copy, one per `# file` comment."""
    out = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for n, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
            if "jobs:" not in block:
                continue
            parts = re.split(r"(?m)^(?=# \.github/workflows/)", block)
            for k, part in enumerate(p for p in parts if "jobs:" in p):
                data = yaml.safe_load(part)
                if isinstance(data, dict) and isinstance(data.get("jobs"), dict):
                    out.append((f"{page.relative_to(ROOT)}#{n}.{k}", data))
    return out


def test_the_docs_have_snippets_to_check() -> None:
    names = [name for name, _ in _doc_snippets()]
    assert any(name.startswith("README.md") for name in names), names
    assert len(names) >= 4, names


@pytest.mark.parametrize("item", _doc_snippets(), ids=lambda item: item[0])
def test_the_yaml_in_the_docs_passes_only_real_inputs(item: tuple[str, dict[str, Any]]) -> None:
    """A snippet a person copies must run: its `with:` keys and secrets exist where it points."""
    where, data = item
    for job_name, job in data["jobs"].items():
        m = WORKFLOW_USE.match(str(job.get("uses", "")))
        if m:
            call = _load(ROOT / ".github" / "workflows" / m.group(1))["on"]["workflow_call"]
            unknown = set(job.get("with") or {}) - set(call.get("inputs") or {})
            assert not unknown, f"{where} ({job_name}) passes {sorted(unknown)} to {m.group(1)}"
            secrets = job.get("secrets")
            if isinstance(secrets, dict):
                undeclared = set(secrets) - set(call.get("secrets") or {})
                assert not undeclared, f"{where} ({job_name}) passes secrets {undeclared}"
        for step in job.get("steps") or []:
            a = ACTION_USE.match(str(step.get("uses", "")))
            if a:
                inputs = _action(a.group(1)).get("inputs") or {}
                unknown = set(step.get("with") or {}) - set(inputs)
                assert not unknown, f"{where} ({job_name}) passes {sorted(unknown)} to {a.group(1)}"
