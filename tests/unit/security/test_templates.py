"""Policy templates are data, not code: jinja2's sandbox, and `policy validate` renders each once."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_actions.errors import ReleaseActionsError
from release_actions.metrics.retry import QueryTemplates
from tests.conftest import RunCli

ESCAPE = "{{ service.__class__.__mro__[1].__subclasses__() }}"


def test_a_template_cannot_reach_python_objects() -> None:
    templates = QueryTemplates("prometheus", {"requests": "x"}, {"requests": ESCAPE}, ["service"])
    with pytest.raises(ReleaseActionsError) as info:
        templates.render("requests", service="api")
    assert "unsafe" in info.value.message


def test_policy_validate_refuses_a_template_the_sandbox_refuses(
    run_cli: RunCli, tmp_path: Path
) -> None:
    policy = tmp_path / "release-policy.yml"
    policy.write_text(f"metrics:\n  prometheus:\n    queries:\n      requests: '{ESCAPE}'\n")
    r = run_cli("policy", "validate", str(policy))
    assert r.code == 2, r.stdout + r.stderr
    assert "metrics.prometheus.queries.requests" in r.stdout + r.stderr
    assert "unsafe" in r.stdout + r.stderr


def test_notification_templates_are_sandboxed(tmp_path: Path) -> None:
    from release_actions.gha import Runtime
    from release_actions.integrations.notify import NotifySettings, notify

    (tmp_path / "rolled_back.md.j2").write_text("{{ reason.__class__.__mro__ }}")
    settings = NotifySettings(templates_dir=tmp_path)
    runtime = Runtime(env={})
    values = {"from_version": "v2", "to_version": "v1", "reason": "x"}
    result = notify("rolled_back", values, runtime=runtime, settings=settings)
    assert not result.delivered
    assert result.error is not None and "is unsafe" in result.error
