"""How a mobile rollout reads: JSON for machines, Markdown with a chart over the days for the summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from release_actions.gha import markdown_table
from release_actions.mobile.rollout import HOUR, GateState

NEXT_STEP_ANDROID = (
    "A halted Play release cannot be taken back from those who installed it: ship a fix "
    "with a higher version code through the hotfix flow (`hotfix.yml`, source §7), then "
    "roll it out from 1 %."
)
NEXT_STEP_IOS = (
    "The phased release is paused (Apple allows 30 days): ship a fix with a higher build "
    "number through the hotfix flow (`hotfix.yml`, source §7), or, once the cause is "
    "cleared, have a person resume it."
)


def next_step(platform: str) -> str:
    return NEXT_STEP_IOS if platform == "ios" else NEXT_STEP_ANDROID


@dataclass
class MobileReport:
    """A mobile rollout's end: the gate's state plus what only the simulator knows."""

    state: GateState
    decision: str
    seed: int | None = None
    exposed_users: int | None = None
    context: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] | None = None

    @property
    def origin(self) -> float:
        return self.state.started_at

    @property
    def halted_at_hours(self) -> float | None:
        if self.decision != "halted" or self.state.halted_at is None:
            return None
        return round((self.state.halted_at - self.origin) / HOUR, 2)

    @property
    def halted_at_fraction(self) -> float | None:
        if self.decision != "halted" or not self.state.stages:
            return None
        return float(self.state.stages[-1]["fraction"])

    def stages(self) -> list[dict[str, Any]]:
        out = [
            {
                "fraction": s["fraction"],
                "result": s["result"],
                "hours": s["hours"],
                "started_at_hours": round((s["started_at"] - self.origin) / HOUR, 2),
                "new_users": s["new_users"],
                "new_crashed": s["new_crashed"],
                "reason": s["reason"],
                "evidence": s["evidence"],
            }
            for s in self.state.stages
        ]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.context,
            "decision": self.decision,
            "reason": self.state.reason
            or (self.state.last_look or {}).get("reason")
            or "not finished",
            "platform": self.state.platform,
            "version_code": self.state.version_code,
            "previous_version_code": self.state.previous_version_code,
            "halted_at_fraction": self.halted_at_fraction,
            "halted_at_hours": self.halted_at_hours,
            "exposed_users": self.exposed_users,
            "stages": self.stages(),
            "next_step": next_step(self.state.platform) if self.decision == "halted" else None,
            "rollback": self.record,
            "seed": self.seed,
        }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _daily(state: GateState) -> list[tuple[int, list[int]]]:
    days: dict[int, list[int]] = {}
    for h in state.hours:
        day = int((h["start"] - state.started_at) // (24 * HOUR))
        acc = days.setdefault(day, [0, 0, 0, 0])
        acc[0] += h["new"][0]
        acc[1] += h["new"][1]
        acc[2] += h["prev"][0]
        acc[3] += h["prev"][1]
    return sorted(days.items())


def chart(state: GateState) -> str | None:
    """Crash-free users per day, new version red and previous blue (xychart draws no legend).

    A day without users of a version is left out rather than drawn as 100 %: no data is
    never shown as health.
    """
    kept = [(d, a) for d, a in _daily(state) if a[0] > 0 and a[2] > 0]
    if len(kept) < 2:
        return None
    new = [round(100 * (1 - a[1] / a[0]), 3) for _, a in kept]
    prev = [round(100 * (1 - a[3] / a[2]), 3) for _, a in kept]
    low = max(0.0, min([*new, *prev]) - 0.2)
    return "\n".join(
        [
            "```mermaid",
            "%%{init: {'themeVariables': {'xyChart': {'plotColorPalette': '#d1242f, #0969da'}}}}%%",
            "xychart-beta",
            '    title "Crash-free users per day (%): new red, previous blue"',
            "    x-axis [" + ", ".join(f'"day {d + 1}"' for d, _ in kept) + "]",
            f'    y-axis "crash-free users (%)" {low:.1f} --> 100',
            "    line [" + ", ".join(f"{v:g}" for v in new) + "]",
            "    line [" + ", ".join(f"{v:g}" for v in prev) + "]",
            "```",
            "",
        ]
    )


def _figure(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}{' %' if unit == 'percent' else ''}"


def _metric_rows(report: MobileReport) -> list[list[str]]:
    """Each criterion as each closed stage last saw it, then at the last look if it is later."""
    state = report.state
    seen: list[tuple[str, list[dict[str, Any]]]] = [
        (f"{s['fraction']:.0%}", s["evidence"].get("metrics") or []) for s in state.stages
    ]
    last = state.last_look or {}
    closed_at = state.stages[-1]["ended_at"] if state.stages else None
    if last.get("metrics") and last.get("at") != closed_at and state.decision == "running":
        seen.append(("current (last look)", last["metrics"]))
    rows = []
    for stage, readings in seen:
        for r in readings:
            unit = r.get("unit", "")
            rows.append(
                [
                    r["name"],
                    stage,
                    r["status"],
                    _figure(r.get("new")),
                    _figure(r.get("previous")),
                    _figure(r.get("drop"), unit),
                    _figure(r.get("limit"), unit) + (" (halt)" if r.get("halt") else ""),
                    r["detail"],
                ]
            )
    return rows


def summary_markdown(report: MobileReport, *, title: str) -> str:
    state = report.state
    icon = {"completed": "✅", "halted": "🛑", "held": "⏸️"}.get(report.decision, "")
    lines = [f"## {icon} {title}: {report.decision}", ""]
    lines.append(f"{report.to_dict()['reason']}")
    lines.append("")
    rows = []
    for s in report.stages():
        ev = s["evidence"]
        stage = ev.get("stage") or {}
        rows.append(
            [
                f"{s['fraction']:.0%}",
                s["result"],
                f"{s['hours']:g} h",
                f"{stage.get('new_users', s['new_users']):,}",
                _pct(stage.get("new_crash_free")),
                _pct(stage.get("prev_crash_free")),
                _pct(stage.get("new_anr_rate")),
                _pct(stage.get("prev_anr_rate")),
                str(ev.get("check") or ""),
            ]
        )
    if rows:
        lines.append(
            markdown_table(
                [
                    "stage",
                    "result",
                    "time",
                    "new users",
                    "crash-free new",
                    "crash-free previous",
                    "ANR new",
                    "ANR previous",
                    "decided by",
                ],
                rows,
            )
        )
        lines.append("")
    drawn = chart(state)
    if drawn:
        lines.append(drawn)
    last = state.stages[-1]["evidence"].get("checks") if state.stages else None
    if last:
        lines.append("**Criteria at the last look**")
        lines.append("")
        lines.append(
            markdown_table(
                ["criterion", "status", "detail"],
                [[c["name"], c["status"], c["detail"]] for c in last],
            )
        )
        lines.append("")
    metric_rows = _metric_rows(report)
    if metric_rows:
        lines.append("**Retention and business metrics, new vs previous version**")
        lines.append("")
        lines.append(
            markdown_table(
                ["criterion", "stage", "status", "new", "previous", "drop", "limit", "detail"],
                metric_rows,
            )
        )
        lines.append("")
    if report.exposed_users is not None:
        lines.append(f"Users who installed the new version: {report.exposed_users:,}.")
    if report.record:
        lines.append(f"Rollback record: {report.record.get('id')}.")
    if report.decision == "halted":
        lines.append("")
        lines.append(f"**Next step**: {next_step(state.platform)}")
    lines.append("")
    return "\n".join(lines)
