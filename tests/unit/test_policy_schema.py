"""The policy's JSON Schema, committed at schema/policy.schema.json: current, and as strict as
the loader on the policies that this repository ships or runs."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from release_actions.core.policy import (
    SCHEMA_PATH,
    SCHEMA_URL,
    default_policy_data,
    load_policy,
    policy_file_schema,
)
from release_actions.core.yamlpos import load_yaml, load_yaml_file
from tests.conftest import RunCli

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / SCHEMA_PATH
EXAMPLES = sorted((ROOT / "examples").glob("*polic*.yml"))
SCHEMA_LINE = f"# yaml-language-server: $schema={SCHEMA_URL}"


def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(COMMITTED.read_text(encoding="utf-8")))


def _e2e_policies() -> list[tuple[str, str]]:
    found = [("simulated", "deploy:\n  target: simulated\n")]
    for name in ("test_datadog_policy", "test_environment_targets"):
        found.append((name, importlib.import_module(f"tests.e2e.{name}").POLICY))
    return found


def test_the_committed_schema_is_what_the_command_prints(run_cli: RunCli) -> None:
    r = run_cli("policy", "schema", actions=False)
    assert r.code == 0, r.stderr
    assert COMMITTED.read_text(encoding="utf-8") == r.stdout, (
        f"{SCHEMA_PATH} is out of date; regenerate it: "
        f"release-actions policy schema > {SCHEMA_PATH}"
    )


def test_the_schema_is_a_valid_draft_2020_12_schema_at_its_url() -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == SCHEMA_URL
    assert SCHEMA_URL.endswith("/v1/" + SCHEMA_PATH) and "triptrip/release-actions" in SCHEMA_URL


def test_there_is_an_example_policy() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_names_the_schema_on_its_first_line_and_validates(path: Path) -> None:
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE
    load_policy(path)  # the comment is only a comment to the loader
    errors = list(_validator().iter_errors(load_yaml_file(path).data))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize(("name", "text"), _e2e_policies(), ids=lambda v: str(v)[:30])
def test_the_policies_the_workflow_tests_use_validate(name: str, text: str) -> None:
    data = load_yaml(text, name).data
    errors = list(_validator().iter_errors(data))
    assert not errors, [e.message for e in errors]


def test_the_defaults_validate_as_a_complete_file() -> None:
    errors = list(_validator().iter_errors(default_policy_data()))
    assert not errors, [e.message for e in errors]


def test_an_empty_file_validates() -> None:
    assert not list(_validator().iter_errors({}))


# What the loader refuses, the schema refuses: unknown keys at any depth, values off a list.
REFUSED: list[dict[str, Any]] = [
    {"calender": {}},
    {"canary": {"stpes": "argo"}},
    {"canary": {"steps": "agro"}},
    {"canary": {"steps": [{"wieght": 100}]}},
    {"canary": {"analysis": {"judge": "treshold"}}},
    {"release_types": {"hotfix": {"monitr_seconds": 60}}},
    {"calendar": {"blocked_periods": [{"name": "x", "strat": "01-01"}]}},
    {"deploy": {"kubernetes": {"istio": {"virtual_servce": "api"}}}},
    {"deploy": {"environments": {"staging": {"kubernetes": {"contxt": "staging"}}}}},
    {"deploy": {"environments": {"staging": {"environments": {}}}}},
    {"metrics": {"provider": "prometeus"}},
    {"replace": ["canary.steps"]},
]


@pytest.mark.parametrize("data", REFUSED, ids=lambda d: json.dumps(d)[:60])
def test_the_schema_refuses_what_the_loader_refuses(data: dict[str, Any], tmp_path: Path) -> None:
    from release_actions.core.policy import parse_policy
    from release_actions.errors import PolicyError

    assert list(_validator().iter_errors(data))
    with pytest.raises(PolicyError):
        parse_policy(data, "release-policy.yml")


def test_the_printed_schema_is_the_function() -> None:
    assert json.loads(COMMITTED.read_text(encoding="utf-8")) == policy_file_schema()
