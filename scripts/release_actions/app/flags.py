"""Option C of source §6.2: the kill-switch flags off, on every rollback path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.core.policy import Policy
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from release_actions.integrations.launchdarkly import KillResult, LaunchDarklyKillSwitch

LAUNCHDARKLY_BASE_URL_ENV = "LAUNCHDARKLY_BASE_URL"


def kill_switch(session: Session, policy: Policy) -> LaunchDarklyKillSwitch:
    """The policy's LaunchDarkly project as the environment reaches it; tokens masked first."""
    from release_actions.integrations.launchdarkly import TOKEN_ENV, LaunchDarklyKillSwitch

    for name in TOKEN_ENV:
        if session.env.get(name):
            session.runtime.mask(session.env[name])
    extra: dict[str, Any] = {}
    if session.env.get(LAUNCHDARKLY_BASE_URL_ENV):
        extra["base_url"] = session.env[LAUNCHDARKLY_BASE_URL_ENV]
    project = session.env.get("LAUNCHDARKLY_PROJECT") or policy.feature_flags.launchdarkly.project
    return LaunchDarklyKillSwitch.from_env(session.env, project=project, **extra)


def turn_flags_off(
    session: Session, policy: Policy, flags: list[str], reason: str
) -> tuple[list[KillResult], list[str]]:
    """Option C of source §6.2: each flag off in the policy's LaunchDarkly environment."""
    ld = policy.feature_flags.launchdarkly
    results: list[KillResult] = []
    errors: list[str] = []
    try:
        switch = kill_switch(session, policy)
    except ReleaseActionsError as exc:
        return [], [f"{exc.message} {exc.hint or ''}".strip()]
    for flag in flags:
        try:
            result = switch.turn_off(flag, ld.environment, comment=f"release-actions: {reason}")
        except Exception as exc:  # an outage of LaunchDarkly never undoes a rollback
            message = exc.message if isinstance(exc, ReleaseActionsError) else f"{exc}"
            errors.append(f"flag `{flag}`: {message}")
            session.runtime.annotate("error", f"Flag `{flag}` is still on: {message}")
            continue
        results.append(result)
        session.note(f"flag {flag}: {result.detail}")
    return results, errors
