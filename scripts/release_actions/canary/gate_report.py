"""How a run of the guarded rollout gate reads: one row per flag and each rollout's error rates as a chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from release_actions.canary.report import error_rate_chart, one_line
from release_actions.gha import markdown_table

ICONS = {
    "started": "▶️",
    "advanced": "⏩",
    "restarted": "🔁",
    "holding": "⏳",
    "waiting": "⏳",
    "skipped": "⏳",
    "promoted": "✅",
    "rolled_back": "⏪",
    "failed": "❌",
    "held": "⏸️",
    "stopped": "✋",
    "conflict": "⚠️",
    "error": "❌",
    "ended": "⏹️",
}


@dataclass
class GateLook:
    """One flag in one run of the gate: what the run did, and where the rollout stands."""

    flag: str
    action: str
    """started, advanced, restarted (the step a hold stopped), holding, waiting (the pause is
    over, no pass yet), skipped (too soon after the last look), promoted, rolled_back, failed,
    held, ended (earlier), stopped (a person changed the targeting), conflict (another run
    saved first), error, dry-run. Exit 0 while the rollout goes on or reached 100 %."""
    reason: str
    exit_code: int = 0
    step: int | None = None
    steps: int | None = None
    percent: int | None = None
    since: float | None = None
    until: float | None = None
    started_at: float | None = None
    looks: list[dict[str, Any]] = field(default_factory=list)
    looked: int = 0
    """Looks made by this run (0 or 1)."""
    record: dict[str, Any] | None = None
    hint: str | None = None
    """What to do about a stop, a conflict or an error."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "action": self.action,
            "reason": self.reason,
            "step": None if self.step is None else self.step + 1,
            "steps": self.steps,
            "percent": self.percent,
            "since": self.since,
            "until": self.until,
            "looked": self.looked,
            "record": None if self.record is None else self.record.get("id"),
            "hint": self.hint,
        }


def _when(epoch: float | None, tz: tzinfo) -> str:
    if epoch is None:
        return "–"
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M %Z")


def decision_text(look: GateLook, tz: tzinfo) -> str:
    """The table's last column: until when it holds, or what was decided."""
    if look.action in ("started", "advanced", "restarted", "holding"):
        return f"holding until {_when(look.until, tz)}"
    return look.reason


def gate_table(looks: list[GateLook], tz: tzinfo) -> str:
    rows = []
    for g in looks:
        step = "–" if g.step is None else f"{g.step + 1}/{g.steps}"
        rows.append(
            [
                f"`{g.flag}`",
                f"{ICONS.get(g.action, '')} {g.action}",
                step,
                "–" if g.percent is None else f"{g.percent}%",
                _when(g.since, tz),
                decision_text(g, tz),
            ]
        )
    return markdown_table(
        ["Flag", "This run", "Step", "Percent on", "Since", "Holding until / decision"], rows
    )


def _label(seconds: float, span: float) -> str:
    """Time since the rollout began: minutes for a short rollout, hours for a long one."""
    if span < 2 * 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h" if seconds >= 3600 * 10 else f"{seconds / 3600:.1f}h"


def gate_chart(look: GateLook) -> str | None:
    """The flag's error rate per variation at each look the gate kept, as a Mermaid xychart.

    A look without data on either variation is left out rather than drawn as zero: no data
    is never shown as health. The rates are errors over requests of each look's window.
    """
    points = [
        p
        for p in look.looks
        if p.get("canary") and p.get("stable") and p["canary"][0] > 0 and p["stable"][0] > 0
    ]
    if len(points) < 2:
        return None
    origin = look.started_at if look.started_at is not None else float(points[0]["from"])
    span = float(points[-1]["to"]) - origin
    labels = [f"{p['weight']}% {_label(float(p['to']) - origin, span)}" for p in points]
    on = [round(100 * p["canary"][1] / p["canary"][0], 3) for p in points]
    off = [round(100 * p["stable"][1] / p["stable"][0], 3) for p in points]
    return error_rate_chart(
        f"{look.flag}: error rate per look (%), on red, off blue", labels, on, off
    )


def gate_markdown(
    looks: list[GateLook], tz: tzinfo, *, title: str = "Guarded flag rollouts"
) -> str:
    """The job summary of a gate run: the table, then each rollout's chart and record."""
    lines = [f"## {one_line(title)}", ""]
    if not looks:
        lines += ["No guarded flag rollout is in progress.", ""]
        return "\n".join(lines)
    lines += [gate_table(looks, tz), ""]
    for g in looks:
        chart = gate_chart(g)
        if chart is None and g.record is None:
            continue
        lines += [f"### `{g.flag}`", ""]
        if chart is not None:
            lines.append(chart)
        if g.record is not None:
            record = g.record
            lines += [
                f"Rollback record **{record.get('id')}**: {record.get('from_version')} → "
                f"{record.get('to_version')} ({one_line(record.get('trigger', {}).get('reason'))})",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"
