"""The providers behind the mobile gate's retention and business criteria, built from the policy."""

from __future__ import annotations

from release_actions.app.session import Session
from release_actions.core.policy import Policy
from release_actions.errors import ReleaseActionsError
from release_actions.metrics.base import MetricsProvider
from release_actions.mobile.metrics import VersionMetrics


def version_metrics(session: Session, policy: Policy) -> VersionMetrics:
    """Each provider a criterion names, as the canary builds it (policy, then environment).

    A provider that cannot be built (no `PROMETHEUS_URL`, no Datadog keys) does not stop
    the look: crashes and ANRs are still judged, and its criteria are "not measured",
    which holds the stage, with the reason in the evidence and a warning here.
    """
    from release_actions.app.mobile import mobile_policy
    from release_actions.app.world import real_provider

    criteria = mobile_policy(policy).metric_criteria()
    providers: dict[str, MetricsProvider] = {}
    unavailable: dict[str, str] = {}
    for kind in sorted({c.provider for _, c in criteria}):
        try:
            providers[kind] = real_provider(session, kind, (), policy)
        except ReleaseActionsError as exc:
            unavailable[kind] = f"the `{kind}` provider cannot be used: {exc.message}"
            session.runtime.annotate(
                "warning",
                f"{unavailable[kind]} The mobile criteria on {kind} hold their stages.",
                title="Mobile retention and business metrics",
            )
    return VersionMetrics(mobile_policy(policy), providers, unavailable=unavailable)
