"""How a rollout reads: a timeline for the log, JSON for machines, Markdown with a chart for the job summary."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from release_actions.canary.model import Decision, Event, Outcome, human_duration
from release_actions.gha import markdown_table


@dataclass
class RunReport:
    """A rollout and the monitor after it, read as one release from the rollout's start."""

    rollout: Outcome | None
    monitor: Outcome | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def started_at(self) -> float:
        first = self.rollout or self.monitor
        assert first is not None
        return first.started_at

    @property
    def final(self) -> Outcome:
        """The outcome that decided: the monitor's when it acted, else the rollout's."""
        if self.monitor is not None and (
            self.rollout is None or self.monitor.decision is not Decision.STABLE
        ):
            return self.monitor
        assert self.rollout is not None
        return self.rollout

    @property
    def decision(self) -> Decision:
        return self.final.decision

    @property
    def detected_at_s(self) -> float | None:
        """Seconds from the start to the decision to roll back (or to abort a preview, or to
        fail a shadow); None when nothing was found."""
        final = self.final
        taken_away = final.decision in (Decision.ABORTED, Decision.FAILED)
        if final.detected_at is None or (final.record is None and not taken_away):
            return None
        return round(final.detected_at - self.started_at, 3)

    @property
    def record(self) -> dict[str, Any] | None:
        return self.final.record

    @property
    def events(self) -> list[Event]:
        out: list[Event] = []
        for o in (self.rollout, self.monitor):
            if o is not None:
                out.extend(o.events)
        return out

    @property
    def exit_code(self) -> int:
        return 0 if self.final.ok else 1

    def to_dict(self, *, timeline: bool = True) -> dict[str, Any]:
        final = self.final
        out: dict[str, Any] = {**self.context}
        out.update(
            {
                "decision": final.decision.value,
                "reason": final.reason,
                "version": final.version,
                "detected_at_s": self.detected_at_s,
                "duration_s": round(final.ended_at - self.started_at, 3),
                "steps": [
                    _step(s.to_dict(), self.started_at)
                    for s in (self.rollout.steps if self.rollout else [])
                ],
                "rollback": final.record,
                "recovery": final.recovery.to_dict() if final.recovery else None,
                "resumed": bool(self.rollout and self.rollout.resumed),
            }
        )
        if self.rollout is not None and self.rollout.evidence:
            out["evidence"] = self.rollout.evidence
        if self.monitor is not None:
            out["monitor"] = {
                "decision": self.monitor.decision.value,
                "reason": self.monitor.reason,
                "started_at_s": round(self.monitor.started_at - self.started_at, 3),
                "duration_s": round(self.monitor.ended_at - self.monitor.started_at, 3),
            }
        if timeline:
            out["timeline"] = [e.to_dict() for e in self.events]
        return out


def _step(data: dict[str, Any], origin: float) -> dict[str, Any]:
    out = dict(data)
    out["started_at_s"] = round(out.pop("started_at") - origin, 3)
    out["ended_at_s"] = round(out.pop("ended_at") - origin, 3)
    return out


def clock_label(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    minutes, secs = divmod(round(abs(seconds)), 60)
    return f"{sign}{minutes:d}:{secs:02d}"


def timeline_line(event: Event) -> str:
    """One log line: elapsed time, what kind of moment, what happened."""
    marks = {
        "start": ">>",
        "resume": ">>",
        "step": "==",
        "interval": "  ",
        "step_end": "--",
        "decision": "!!",
        "rollback": "<<",
        "recovery": "..",
        "monitor": "==",
        "note": "  ",
    }
    return f"[{clock_label(event.at_s):>6}] {marks.get(event.kind, '  ')} {event.message}"


def timeline(report: RunReport) -> list[str]:
    return [timeline_line(e) for e in report.events]


# -- job summary --------------------------------------------------------------------------


CHART_POINTS = 40  # past this many intervals the chart pools them per minute


def _chart(events: list[Event]) -> str | None:
    """Canary and stable error rate per interval as a Mermaid xychart.

    An interval without data on either track is left out (its time label is missing on
    the axis) rather than drawn as zero: no data is never shown as health. A rollout
    measured every 10 s has over a hundred intervals, more than an axis can label, so
    past ``CHART_POINTS`` the counts are pooled per minute (errors over requests, not an
    average of rates, so a quiet interval does not weigh as much as a busy one).
    """
    points: list[tuple[float, dict[str, Any], dict[str, Any]]] = []
    for e in events:
        if e.kind != "interval":
            continue
        c, s = e.data.get("canary"), e.data.get("stable")
        if c and s:
            points.append((e.at_s, c, s))
    if len(points) > CHART_POINTS:
        title = "Error rate per minute (%)"
        pooled: dict[int, list[float]] = {}
        for at, c, s in points:
            # Labelled by the minute's end, as each interval is by its own.
            acc = pooled.setdefault(math.ceil(at / 60), [0.0, 0.0, 0.0, 0.0])
            acc[0] += float(c["errors"])
            acc[1] += float(c["requests"])
            acc[2] += float(s["errors"])
            acc[3] += float(s["requests"])
        kept = [(m, a) for m, a in pooled.items() if a[1] > 0 and a[3] > 0]
        labels = [clock_label(60.0 * m) for m, _ in kept]
        canary = [round(100 * a[0] / a[1], 3) for _, a in kept]
        stable = [round(100 * a[2] / a[3], 3) for _, a in kept]
    else:
        title = "Error rate per interval (%)"
        labels = [clock_label(at) for at, _, _ in points]
        canary = [round(float(c["error_rate_percent"]), 3) for _, c, _ in points]
        stable = [round(float(s["error_rate_percent"]), 3) for _, _, s in points]
    if len(labels) < 2:
        return None
    return error_rate_chart(f"{title}: canary red, stable blue", labels, canary, stable)


def error_rate_chart(title: str, labels: list[str], red: list[float], blue: list[float]) -> str:
    """A Mermaid xychart of two error-rate lines (percent), the new one red, the old blue.

    Mermaid's first default colour is a pale yellow that vanishes on white, and xychart draws
    no legend: the colours are set, and ``title`` names them.
    """
    ceiling = round(max([*red, *blue, 0.1]) * 1.2 + 0.05, 1)
    return "\n".join(
        [
            "```mermaid",
            "%%{init: {'themeVariables': {'xyChart': {'plotColorPalette': '#d1242f, #0969da'}}}}%%",
            "xychart-beta",
            f'    title "{title}"',
            "    x-axis [" + ", ".join(f'"{label}"' for label in labels) + "]",
            f'    y-axis "error rate (%)" 0 --> {ceiling}',
            "    line [" + ", ".join(f"{v:g}" for v in red) + "]",
            "    line [" + ", ".join(f"{v:g}" for v in blue) + "]",
            "```",
            "",
        ]
    )


def split_points(events: list[Event]) -> list[tuple[float, int, int]]:
    """The traffic split over time: (seconds, % of user requests on the new version, % copied
    to it as a mirror), one point per change, from the steps and the decision."""
    points: list[tuple[float, int, int]] = [(0.0, 0, 0)]
    for e in events:
        if e.kind == "step":
            op, weight = e.data.get("op", "weight"), int(e.data.get("weight") or 0)
            users = {"preview": 0, "switch": 100, "mirror": 0}.get(op, weight)
            points.append((e.at_s, users, weight if op == "mirror" else 0))
        elif e.kind in ("rollback", "decision") and points[-1][1:] != (0, 0):
            ends = ("rolled_back", "aborted", "failed", "passed")
            if e.kind == "decision" and not e.message.startswith(ends):
                continue
            points.append((e.at_s, 0, 0))
    if events:
        points.append((max(e.at_s for e in events), *points[-1][1:]))
    out: list[tuple[float, int, int]] = []
    for point in points:
        if out and out[-1][0] == point[0]:
            out[-1] = point  # the last change at one moment is where it stood
        elif not out or out[-1][1:] != point[1:] or point is points[-1]:
            out.append(point)
    return out


def _split_chart(events: list[Event], strategy: str | None) -> str | None:
    """Who answered users, and what was mirrored, over the rollout: each strategy's shape.

    A canary climbs in steps; blue-green stays at 0 % through its preview and jumps to 100 %
    (and back, on a rollback); a shadow keeps users at 0 % while a copy goes to it.
    """
    points = split_points(events)
    if len(points) < 2:
        return None
    mirrored = any(m for _, _, m in points)
    labels = [clock_label(at) for at, _, _ in points]
    what = "users on the new version red" + (", mirrored copy blue" if mirrored else "")
    lines = [
        "```mermaid",
        "%%{init: {'themeVariables': {'xyChart': {'plotColorPalette': '#d1242f, #0969da'}}}}%%",
        "xychart-beta",
        f'    title "Traffic split ({strategy or "canary"}): {what}"',
        "    x-axis [" + ", ".join(f'"{label}"' for label in labels) + "]",
        '    y-axis "% of requests" 0 --> 100',
        "    line [" + ", ".join(str(u) for _, u, _ in points) + "]",
    ]
    if mirrored:
        lines.append("    line [" + ", ".join(str(m) for _, _, m in points) + "]")
    return "\n".join([*lines, "```", ""])


def _rate(block: dict[str, Any] | None) -> str:
    if not block or block.get("error_rate_percent") is None:
        return "n/a"
    return f"{block['error_rate_percent']:.2f}% of {block['requests']:.0f}"


def one_line(text: object) -> str:
    """Text for a heading or a line of facts: line breaks become spaces, so data given as a
    version or a title cannot start a heading or a block of its own."""
    return " ".join(str(text).splitlines())


def _code(text: object) -> str:
    """Inline code that holds any text: a fence longer than any run of backticks in it."""
    value = one_line(text)
    fence = "`" * (max((len(r) for r in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def summary_markdown(report: RunReport, *, title: str = "Canary rollout") -> str:
    """The job summary: decision, a chart, a table per step, the rollback record."""
    final = report.final
    icon = {
        "promoted": "✅",
        "stable": "✅",
        "switched": "✅",
        "passed": "✅",
        "rolled_back": "⏪",
        "aborted": "⏹️",
        "held": "⏸️",
        "failed": "❌",
    }
    heading = f"{one_line(title)}: {icon.get(final.decision.value, '')} {final.decision.value}"
    lines = [f"## {heading}", ""]
    ctx = report.context
    facts = [
        f"**{k.replace('_', ' ')}**: {_code(v)}"
        for k, v in ctx.items()
        if v is not None
        and k in ("strategy", "scenario", "seed", "judge", "target", "provider", "version")
    ]
    if facts:
        lines += [" · ".join(facts), ""]
    # Every line of the reason stays inside the quote.
    lines += ["> " + "\n> ".join(str(final.reason).splitlines() or [""]), ""]
    if report.detected_at_s is not None:
        lines += [f"Detected **{clock_label(report.detected_at_s)}** after the rollout began.", ""]
    split = _split_chart(report.events, ctx.get("strategy"))
    if split:
        lines.append(split)
    chart = _chart(report.events)
    if chart:
        lines.append(chart)
    if report.rollout is not None and report.rollout.steps:
        rows = []
        for s in report.rollout.steps:
            ev = s.evidence
            judge = ev.get("judge") or {}
            rows.append(
                [
                    str(s.index + 1),
                    f"{s.weight}%",
                    human_duration(s.pause_seconds) or "",
                    s.status.value,
                    f"{clock_label(s.started_at - report.started_at)}–{clock_label(s.ended_at - report.started_at)}",
                    _rate(ev.get("canary")),
                    _rate(ev.get("stable")),
                    str(judge.get("verdict", "–")),
                    s.reason,
                ]
            )
        lines.append(
            markdown_table(
                [
                    "Step",
                    "Weight",
                    "Pause",
                    "Result",
                    "Time",
                    "Canary errors",
                    "Stable errors",
                    "Judge",
                    "Why",
                ],
                rows,
            )
        )
    if report.monitor is not None:
        m = report.monitor
        lines += [
            f"**Post-deploy monitor** ({clock_label(m.started_at - report.started_at)}, "
            f"{human_duration(m.ended_at - m.started_at)}): {m.decision.value}: {m.reason}",
            "",
        ]
    record = final.record
    if record:
        dur = record["duration"]
        rows = [
            ["id", record["id"]],
            ["timestamp", record["timestamp"]],
            ["deployment", record["deployment"]],
            ["from → to", f"{record['from_version']} → {record['to_version']}"],
            ["trigger", f"{record['trigger']['type']}: {record['trigger']['reason']}"],
            [
                "metrics",
                ", ".join(f"{k} {v}" for k, v in record["trigger"]["metrics"].items()),
            ],
            ["detection time", str(dur["detection_time"])],
            ["rollback time", str(dur["rollback_time"])],
            ["recovery time", str(dur["recovery_time"] or "not confirmed")],
        ]
        lines += ["### Rollback record", "", markdown_table(["Field", "Value"], rows)]
        if final.recovery is not None and not final.recovery.recovered:
            lines += [f"⚠️ {final.recovery.reason}", ""]
    return "\n".join(lines).rstrip() + "\n"
