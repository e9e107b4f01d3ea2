"""The canary, rollback and notify actions under act, as a consumer uses them, with GitHub and Slack fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.act_harness import make_consumer, run_act
from tests.fakes.github import GitHubFake
from tests.fakes.slack import SlackFake

pytestmark = pytest.mark.e2e

TOKEN = "ghs_e2etoken"
REPO = "triptrip/webapp"

# Secrets reach the actions through the step's `env:`, never through inputs.
WORKFLOW = """\
name: rollback
on: workflow_dispatch
permissions: {}
jobs:
  canary:
    runs-on: ubuntu-latest
    timeout-minutes: 15
    permissions:
      deployments: write
    steps:
      - uses: actions/checkout@v4
        with:
          persist-credentials: false
      - id: bad
        uses: triptrip/release-actions/actions/canary@v1
        env:
          SLACK_WEBHOOK_URL: ${{ vars.SLACK_WEBHOOK_URL }}
        with:
          target: simulated
          version: v2.0.0
          provider: simulated
          scenario: error-spike
          fail-on-rollback: "false"
          record-file: ${{ runner.temp }}/bad-record.json
      - id: good
        uses: triptrip/release-actions/actions/canary@v1
        with:
          target: simulated
          version: v2.0.0
          provider: simulated
          scenario: healthy
          state-file: ${{ runner.temp }}/simulator.json
      - id: rollback
        uses: triptrip/release-actions/actions/rollback@v1
        env:
          SLACK_WEBHOOK_URL: ${{ vars.SLACK_WEBHOOK_URL }}
        with:
          target: simulated
          state-file: ${{ runner.temp }}/simulator.json
          provider: simulated
          reason: "checkout errors; ${{ github.actor }} $(touch /tmp/pwned)"
      - id: again
        uses: triptrip/release-actions/actions/rollback@v1
        with:
          target: simulated
          state-file: ${{ runner.temp }}/simulator.json
      - id: notify
        uses: triptrip/release-actions/actions/notify@v1
        with:
          event: release_completed
          vars: |
            version=v2.0.0
            error_rate=0.02
      - name: Record what the steps produced (for the test)
        if: always()
        env:
          BAD_DECISION: ${{ steps.bad.outputs.decision }}
          BAD_RECORD_ID: ${{ steps.bad.outputs.record-id }}
          BAD_RECORD_FILE: ${{ steps.bad.outputs.record-file }}
          GOOD_DECISION: ${{ steps.good.outputs.decision }}
          GOOD_RECORD_ID: ${{ steps.good.outputs.record-id }}
          ROLLBACK_CHANGED: ${{ steps.rollback.outputs.changed }}
          ROLLBACK_RECORD_ID: ${{ steps.rollback.outputs.record-id }}
          ROLLBACK_FROM: ${{ steps.rollback.outputs.from-version }}
          ROLLBACK_TO: ${{ steps.rollback.outputs.to-version }}
          AGAIN_CHANGED: ${{ steps.again.outputs.changed }}
          AGAIN_RECORD_ID: ${{ steps.again.outputs.record-id }}
          NOTIFY_DELIVERED: ${{ steps.notify.outputs.delivered }}
          NOTIFY_VIA: ${{ steps.notify.outputs.via }}
        run: |
          mkdir -p "$RESULT_DIR"
          for name in BAD_DECISION BAD_RECORD_ID GOOD_DECISION GOOD_RECORD_ID ROLLBACK_CHANGED \\
                      ROLLBACK_RECORD_ID ROLLBACK_FROM ROLLBACK_TO AGAIN_CHANGED AGAIN_RECORD_ID \\
                      NOTIFY_DELIVERED NOTIFY_VIA; do
            printf '%s' "${!name}" > "$RESULT_DIR/$name"
          done
          if [ -n "$BAD_RECORD_FILE" ]; then cp "$BAD_RECORD_FILE" "$RESULT_DIR/bad-record.json"; fi
"""


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake(repos=(REPO,), token=TOKEN) as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


def test_canary_rollback_and_notify_actions(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    consumer = make_consumer(
        tmp_path, "gate", files={".github/workflows/rollback.yml": WORKFLOW.encode()}
    )
    run = run_act(
        consumer,
        event_name="workflow_dispatch",
        event={"repository": {"full_name": REPO}},
        workflow=".github/workflows/rollback.yml",
        env={"GITHUB_API_URL": github.url},
        variables={"SLACK_WEBHOOK_URL": slack.webhook_url},
        secrets={"GITHUB_TOKEN": TOKEN},
    )

    assert run.returncode == 0, run.log[-6000:]
    assert (run.result("BAD_DECISION"), run.result("BAD_RECORD_ID")) == (
        "rolled_back",
        "RB-2026-001",
    )
    assert '"id": "RB-2026-001"' in run.result("bad-record.json")
    assert (run.result("GOOD_DECISION"), run.result("GOOD_RECORD_ID")) == ("promoted", "")
    assert run.result("ROLLBACK_CHANGED") == "true"
    assert run.result("ROLLBACK_RECORD_ID") == "RB-2026-002"
    assert (run.result("ROLLBACK_FROM"), run.result("ROLLBACK_TO")) == ("v2.0.0", "v1.5.1")
    assert (run.result("AGAIN_CHANGED"), run.result("AGAIN_RECORD_ID")) == ("false", "")
    assert (run.result("NOTIFY_DELIVERED"), run.result("NOTIFY_VIA")) == ("true", "summary")
    records = [d for d in github.repo(REPO).deployments if d["task"] == "rollback"]
    assert [d["payload"]["id"] for d in records] == ["RB-2026-001", "RB-2026-002"]
    manual = records[1]["payload"]
    assert manual["trigger"]["type"] == "manual"
    assert manual["trigger"]["reason"].endswith("$(touch /tmp/pwned)"), "inputs stay inert"
    texts = [m.text for m in slack.messages]
    assert any("AUTO ROLLBACK" in t and "RB-2026-001" in t for t in texts)
    assert any("Rollback" in t and "RB-2026-002" in t for t in texts)
