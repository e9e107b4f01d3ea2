"""The release deployment's payload: status, canary verdict, rollback times, description."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from release_actions.canary.model import Decision, Outcome, StepResult, StepStatus
from release_actions.core.policy import default_policy
from release_actions.core.settings import Overrides, resolve
from release_actions.gha import Runtime
from release_actions.integrations.release_history import (
    canary_result,
    description,
    record_release,
    release_payload,
    release_status,
    rollback_summary,
)

T0 = datetime(2026, 3, 3, 1, 0, tzinfo=UTC).timestamp()


def step(status: StepStatus, *, analysis: bool = True, weight: int = 5) -> StepResult:
    return StepResult(0, weight, 60, analysis, status, "", T0, T0 + 60)


def outcome(decision: Decision, *steps: StepResult, record: dict | None = None) -> Outcome:
    return Outcome(decision, "v1.5.2", "", T0, T0 + 600, steps=list(steps), record=record)


RECORD = {
    "id": "RB-2026-004",
    "timestamp": "2026-03-03T10:12:00+09:00",
    "from_version": "v1.5.2",
    "to_version": "v1.5.1",
    "trigger": {"type": "automatic", "reason": "Error rate 7.2% > 5%", "metrics": {}},
    "duration": {"rollback_seconds": 42.0, "recovery_seconds": 118.0},
    "recovered": True,
}


@pytest.mark.parametrize(
    ("decision", "record", "expected"),
    [
        (Decision.PROMOTED, None, "success"),
        (Decision.SWITCHED, None, "success"),
        (Decision.ROLLED_BACK, RECORD, "rolled_back"),
        (Decision.FAILED, RECORD, "rolled_back"),  # on_error: fail, after the rollback
        (Decision.FAILED, None, "failure"),  # a shadow that failed: withdrawn
        (Decision.ABORTED, None, "failure"),  # the preview failed before any user
        (Decision.HELD, None, None),  # not finished: the next run resumes it
        (Decision.PASSED, None, None),  # a shadow with no hand-over released nothing
    ],
)
def test_the_status_says_what_production_got(
    decision: Decision, record: dict | None, expected: str | None
) -> None:
    assert release_status(outcome(decision, record=record)) == expected


def test_the_canary_verdict_is_of_the_judged_steps_only() -> None:
    assert canary_result(outcome(Decision.PROMOTED, step(StepStatus.PASSED))) == "passed"
    judged = [step(StepStatus.PASSED), step(StepStatus.TRIGGERED)]
    assert canary_result(outcome(Decision.ROLLED_BACK, *judged)) == "failed"
    # A rolling update (or a type that skips its canary) judges no step.
    assert (
        canary_result(outcome(Decision.PROMOTED, step(StepStatus.PASSED, analysis=False))) is None
    )
    assert canary_result(outcome(Decision.PROMOTED)) is None


def test_a_rollback_is_detected_when_it_began_and_recovered_after_both_durations() -> None:
    assert rollback_summary(RECORD) == {
        "record": "RB-2026-004",
        "detected_at": "2026-03-03T10:12:00+09:00",
        "recovered_at": "2026-03-03T10:14:40+09:00",
        "trigger": {"type": "automatic", "reason": "Error rate 7.2% > 5%"},
        "rollback_seconds": 42.0,
    }
    unseen = {**RECORD, "recovered": False}
    assert rollback_summary(unseen)["recovered_at"] is None


def test_the_payload_is_the_whole_fact() -> None:
    settings = resolve(default_policy(), Overrides(release_type="security", provider="datadog"))
    done = outcome(Decision.ROLLED_BACK, step(StepStatus.TRIGGERED), record=RECORD)

    payload = release_payload(
        settings, done, version="v1.5.2", sha="a" * 40, finished=T0 + 900, run_url="https://r/1"
    )

    assert payload == {
        "version": "v1.5.2",
        "kind": "security",
        "sha": "a" * 40,
        "stage": "production",
        "started_at": "2026-03-03T01:00:00+00:00",
        "finished_at": "2026-03-03T01:15:00+00:00",
        "status": "rolled_back",
        "canary": "failed",
        "record": "RB-2026-004",
        "rollback": rollback_summary(RECORD),
        "run_url": "https://r/1",
    }
    assert description(payload) == "v1.5.2 rolled back (RB-2026-004)"
    assert description({**payload, "status": "success", "canary": None}) == "v1.5.2 released"
    assert description({**payload, "status": "success"}) == "v1.5.2 released (canary failed)"
    assert description({**payload, "status": "failure"}) == "v1.5.2 failed"


def test_no_token_is_a_notice_and_a_refusal_is_a_warning_never_an_error() -> None:
    settings = resolve(default_policy(), Overrides(target="kubernetes", provider="prometheus"))
    done = outcome(Decision.PROMOTED, step(StepStatus.PASSED))
    err = io.StringIO()
    quiet = Runtime(env={"GITHUB_REPOSITORY": "octo/app"}, out=io.StringIO(), err=err)

    assert record_release(quiet, settings, done, version="v1.5.2", finished=T0 + 900) is None
    assert "notice: The release v1.5.2 is not in the release history" in err.getvalue()

    err = io.StringIO()
    unreachable = Runtime(
        env={
            "GITHUB_REPOSITORY": "octo/app",
            "GITHUB_TOKEN": "ghs_unreachable",
            "GITHUB_API_URL": "http://127.0.0.1:9",
            "RELEASE_ACTIONS_GITHUB_RETRIES": "0",
            "RELEASE_ACTIONS_GITHUB_TIMEOUT": "2",
        },
        out=io.StringIO(),
        err=err,
    )
    assert record_release(unreachable, settings, done, version="v1.5.2", finished=T0) is None
    assert "warning: The release v1.5.2 was not written to the release history" in err.getvalue()
    assert "ghs_unreachable" not in err.getvalue()
