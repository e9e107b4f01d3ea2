"""A consumer whose policy alone names Datadog: each action installs the SDK it needs, under act.

The canary, monitor and rollback actions run against the Kubernetes fake and the Datadog
fake, with no `provider` input anywhere: the CLI decides the extras from the effective
settings, so the policy's `metrics.provider` installs the same SDK an input would. Between
the steps the job removes the shared environment, so every action installs for itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.act_harness import make_consumer, run_act
from tests.fakes.datadog import API_KEY, APP_KEY, DatadogFake, ok
from tests.integration.conftest import Stack
from tests.integration.deploys import NAME, NS, start_kubernetes

pytestmark = pytest.mark.e2e

REQUESTS = "sum:e2e.http.requests{*}.as_count()"
ERRORS = "sum:e2e.http.errors{*}.as_count()"

POLICY = f"""\
deploy:
  target: kubernetes
  kubernetes:
    namespace: {NS}
    deployment: {NAME}
    istio: null
metrics:
  provider: datadog
  datadog:
    min_window_seconds: 5
    queries:
      requests: "{REQUESTS}"
      errors: "{ERRORS}"
      p99: null
monitor:
  duration_seconds: 10
"""

WORKFLOW = """\
name: datadog
on: workflow_dispatch
permissions: {}
jobs:
  release:
    runs-on: ubuntu-latest
    timeout-minutes: 15
    permissions:
      deployments: write
    steps:
      - uses: actions/checkout@v4
        with:
          persist-credentials: false
      - id: canary
        uses: triptrip/release-actions/actions/canary@v1
        with:
          version: v1.3.0
          release-type: config
          canary: auto
          provider-settings: host=${{ vars.DD_HOST }}
      - name: Record the SDK, then start the next action from nothing
        run: &check |
          mkdir -p "$RESULT_DIR"
          venv="$RUNNER_TEMP/release-actions-venv"
          n=$(ls "$RESULT_DIR" | grep -c '^sdk-' || true)
          if "$venv/bin/python" -c 'import datadog_api_client, kubernetes'; then
            echo yes > "$RESULT_DIR/sdk-$n"
          else
            echo no > "$RESULT_DIR/sdk-$n"
          fi
          rm -rf "$venv"
      - id: monitor
        uses: triptrip/release-actions/actions/monitor@v1
        with:
          duration: "10"
          interval: "10"
          provider-settings: host=${{ vars.DD_HOST }}
      - run: *check
      - id: rollback
        uses: triptrip/release-actions/actions/rollback@v1
        with:
          reason: e2e
          provider-settings: host=${{ vars.DD_HOST }}
      - run: *check
      - name: Record the outputs
        if: always()
        env:
          CANARY: ${{ steps.canary.outputs.decision }}
          MONITOR: ${{ steps.monitor.outputs.decision }}
          CHANGED: ${{ steps.rollback.outputs.changed }}
          TO: ${{ steps.rollback.outputs.to-version }}
        run: |
          mkdir -p "$RESULT_DIR"
          for name in CANARY MONITOR CHANGED TO; do printf '%s' "${!name}" > "$RESULT_DIR/$name"; done
"""


@pytest.fixture
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.close()


def test_the_policy_s_datadog_is_installed_by_every_action(tmp_path: Path, stack: Stack) -> None:
    deploy = start_kubernetes(stack, tmp_path, istio=False)
    datadog: DatadogFake = stack.enter(DatadogFake())
    datadog.script(REQUESTS, ok([600, 600], interval=5))
    datadog.script(ERRORS, ok([0, 0], interval=5))
    consumer = make_consumer(
        tmp_path,
        "gate",
        files={
            ".github/workflows/datadog.yml": WORKFLOW.encode(),
            ".github/release-policy.yml": POLICY.encode(),
        },
    )
    run = run_act(
        consumer,
        event_name="workflow_dispatch",
        event={"repository": {"full_name": "triptrip/webapp"}},
        workflow=".github/workflows/datadog.yml",
        env={**deploy.env, "DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY},
        variables={"DD_HOST": datadog.url},
    )

    assert run.returncode == 0, run.log[-8000:]
    assert [run.result(f"sdk-{i}").strip() for i in range(3)] == ["yes", "yes", "yes"]
    # Each action installed the extras itself, Datadog among them, chosen from the policy.
    installs = [line for line in run.log.splitlines() if "release-actions installed in" in line]
    assert sum(line.endswith("(datadog,github,kubernetes,slack)") for line in installs) == 3, (
        installs
    )
    assert run.result("CANARY") == "promoted"
    assert run.result("MONITOR") == "stable"
    assert (run.result("CHANGED"), run.result("TO")) == ("true", "v1.2.0")
    assert REQUESTS in datadog.queries() and ERRORS in datadog.queries()
