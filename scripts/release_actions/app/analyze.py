"""One canary analysis over the last window (source §4.3), on real metrics or a rehearsal."""

from __future__ import annotations

from dataclasses import dataclass, replace

from release_actions.app.session import Session
from release_actions.app.world import WorldRequest, build_world, real_provider
from release_actions.canary.analysis import Analysis
from release_actions.canary.judge import Verdict
from release_actions.core.policy import Policy
from release_actions.core.settings import Overrides, resolve
from release_actions.errors import ReleaseActionsError
from release_actions.metrics.base import MetricsProvider


@dataclass(frozen=True)
class AnalyzeRequest:
    provider: str
    world: WorldRequest
    judge: str | None = None
    weight: int = 20
    """Simulated provider: the canary's share of the traffic."""
    at_s: float | None = None
    """Simulated provider: the window ends this long into the scenario; None: one analysis."""


@dataclass(frozen=True)
class AnalyzeResult:
    judge: str
    where: str
    analysis: Analysis


def run_analysis(session: Session, policy: Policy, request: AnalyzeRequest) -> AnalyzeResult:
    """Judge canary against stable over the last ``analysis_seconds``, as one step would."""
    from release_actions.canary.analysis import analyze_window
    from release_actions.canary.judge import make_judge
    from release_actions.canary.model import RealClock

    settings = resolve(policy, Overrides(judge=request.judge, provider=request.provider))
    analysis = settings.analysis
    judge = make_judge(analysis)
    w = request.world
    if request.provider == "simulated":
        world = build_world(
            session, replace(settings, target="simulated"), replace(w, provider="simulated")
        )
        world.target.begin("v1.5.2")
        world.target.set_weight(request.weight)
        start = world.clock.now()
        world.clock.sleep(request.at_s if request.at_s is not None else analysis.analysis_seconds)
        provider: MetricsProvider = world.provider
        end = world.clock.now()
        where = (
            f"scenario `{world.context['scenario']}` at +{end - start:.0f}s, "
            f"canary at {request.weight}%"
        )
    else:
        if w.scenario_name or w.scenario_file or request.at_s is not None:
            raise ReleaseActionsError(
                "`--scenario`, `--scenario-file` and `--at` belong to `--provider simulated`."
            )
        provider = real_provider(session, request.provider, w.provider_settings, policy)
        end = RealClock().now()
        where = f"{request.provider}, the last {analysis.analysis_seconds}s"
        if not provider.is_online():
            # Every interval of the window would retry its queries and fail alike: minutes
            # spent before the same answer. The window cannot be measured; say so now.
            return AnalyzeResult(
                judge.name,
                where,
                Analysis(
                    Verdict.ERROR,
                    f"the metrics provider `{provider.name}` at {provider.address()} does not "
                    "answer its health check, "
                    "so no interval of the window can be measured",
                    end - analysis.analysis_seconds,
                    end,
                    None,
                ),
            )
    return AnalyzeResult(judge.name, where, analyze_window(provider, judge, analysis, end))
