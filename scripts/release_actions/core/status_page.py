"""Status page texts, markers and maintenance windows (source §10.3), without any HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from release_actions.core.policy import WEEKDAYS, Policy, StatusPageSettings, parse_clock
from release_actions.errors import PolicyError, ReleaseActionsError

# The source's variables, every one defined for every template: a template that leaves one
# out is fine, one that names anything else is a typo.
VARIABLES = (
    "start_time",
    "end_time",
    "affected_components",
    "impact_description",
    "duration",
    "root_cause",
)
MARKER_PREFIX = "release-actions"
TIME_FORMAT = "%Y-%m-%d %H:%M"
"""How ``start_time`` and ``end_time`` read: the source's template adds " JST" itself."""

ROLLBACK_IMPACT = (
    "A release was rolled back to the previous version; some requests may fail or be slower "
    "until recovery is confirmed."
)
MAINTENANCE_IMPACT = "Database maintenance: short interruptions are possible."
OUTCOMES = ("success", "failure", "cancelled")
"""How the work under a maintenance ended (`maintenance complete --outcome`): GitHub's
`job.status` values."""


@dataclass(frozen=True)
class Rendered:
    """One template's title and body, ready to send."""

    template: str
    title: str
    body: str


def render(settings: StatusPageSettings, template: str, **context: Any) -> Rendered:
    """The policy's ``template`` rendered strictly; a variable it does not know is an error.

    The templates come from the policy file, which whoever can push a tag may change, so
    they run sandboxed (as the metrics queries do) and are not HTML-escaped: Statuspage
    bodies are Markdown.
    """
    key = f"notifications.status_page.templates.{template}"
    chosen = settings.templates.get(template)  # type: ignore[call-overload]
    if chosen is None:
        raise PolicyError(
            f"The status page has no `{template}` template.",
            hint=f"Add `{key}` (title and body) to the policy; the source's are "
            "`scheduled_maintenance`, `degraded_performance` and `incident_resolved`.",
        )
    values = dict.fromkeys(VARIABLES, "")
    values.update({k: "" if v is None else v for k, v in context.items()})
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    parts: dict[str, str] = {}
    for part in ("title", "body"):
        source = str(getattr(chosen, part))
        where = f"`{key}.{part}`"
        try:
            parts[part] = env.from_string(source).render(values)
        except TemplateSyntaxError as exc:
            raise PolicyError(
                f"The status page template {where} is not a valid template: {exc.message} "
                f"(line {exc.lineno})."
            ) from None
        except UndefinedError as exc:
            raise PolicyError(
                f"The status page template {where} cannot be rendered: {exc.message}; the "
                f"variables are {', '.join(f'`{v}`' for v in VARIABLES)}.",
                hint=f"Check the spelling in {where}.",
            ) from None
        except SecurityError as exc:
            raise PolicyError(
                f"The status page template {where} does something the template sandbox "
                f"refuses: {str(exc).rstrip('.')}."
            ) from None
    return Rendered(template, parts["title"].strip(), parts["body"].strip())


def check_template(name: str, template: Any) -> str | None:
    """What is wrong with one template (`title`, `body`), rendered with sample values; None
    when nothing. The policy's validator calls it, so the error has the file and line."""
    sample = {v: f"<{v}>" for v in VARIABLES}
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    for part in ("title", "body"):
        try:
            env.from_string(str(getattr(template, part))).render(sample)
        except TemplateSyntaxError as exc:
            return f"`{name}.{part}` is not a valid template: {exc.message} (line {exc.lineno})"
        except UndefinedError as exc:
            return (
                f"`{name}.{part}` cannot be rendered: {exc.message}; the variables are "
                + ", ".join(f"`{v}`" for v in VARIABLES)
            )
        except SecurityError as exc:
            return f"`{name}.{part}` does something the template sandbox refuses: {exc}"
    return None


def check_templates(settings: StatusPageSettings) -> None:
    """Render every template once with sample values, so a typo fails before an incident."""
    sample = {v: f"<{v}>" for v in VARIABLES}
    for name in settings.templates:
        render(settings, name, **sample)


# -- markers ---------------------------------------------------------------------------------


def incident_marker(service: str, version: str) -> str:
    """What identifies a rollback's incident across reruns: the service and the failed version.

    Not the record id: a rerun of the same rollback writes a new record.
    """
    return f"{MARKER_PREFIX}:rollback:{service}@{version}"


def maintenance_marker(start: datetime) -> str:
    """A scheduled maintenance's: its start, so scheduling the same window twice finds it."""
    return f"{MARKER_PREFIX}:maintenance:{start.isoformat(timespec='minutes')}"


# -- components ------------------------------------------------------------------------------


def service_components(settings: StatusPageSettings, service: str) -> list[str] | None:
    """The components a rollback of ``service`` degrades; None when the policy names none."""
    names = settings.services.get(service)
    return list(names) if names else None


def maintenance_components(settings: StatusPageSettings) -> list[str]:
    """Every component some service maps to, in the policy's order: what a migration touches."""
    seen: list[str] = []
    for names in settings.services.values():
        seen.extend(n for n in names if n not in seen)
    return seen


def unknown_components(settings: StatusPageSettings, names: list[str]) -> list[str]:
    known = {c.name for c in settings.components}
    return [n for n in names if n not in known]


# -- maintenance windows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    purpose: str = ""

    def label(self) -> tuple[str, str]:
        """``start_time`` and ``end_time`` as the template shows them (the calendar's zone)."""
        return self.start.strftime(TIME_FORMAT), self.end.strftime(TIME_FORMAT)


def next_window(policy: Policy, now: datetime) -> Window:
    """The first of `calendar.maintenance_windows` that starts after ``now``, in its time zone."""
    cal = policy.calendar
    tz = cal.tz
    local = now.astimezone(tz)
    best: Window | None = None
    for w in cal.maintenance_windows:
        ahead = (WEEKDAYS.index(w.day) - local.weekday()) % 7
        for extra in (0, 7):
            day = (local + timedelta(days=ahead + extra)).date()
            start = datetime.combine(day, parse_clock(w.start), tz)
            if start > local:
                end = datetime.combine(day, parse_clock(w.end), tz)
                if best is None or start < best.start:
                    best = Window(start, end, w.purpose)
                break
    if best is None:
        raise ReleaseActionsError(
            "The calendar has no maintenance window (`calendar.maintenance_windows` is empty).",
            hint="Pass `--start` and `--end`, or add a window to the policy, such as "
            "`{day: sunday, start: '02:00', end: '06:00'}` (source §2.4).",
        )
    return best


_SPAN = re.compile(r"(?:(\d+)h)?\s*(?:(\d+)m(?:in)?)?")


def parse_span(text: str) -> timedelta | None:
    """A length of time such as ``30m``, ``2h`` or ``1h30m``; None when ``text`` is not one
    (an ISO 8601 time, say), or is no time at all (``0m``)."""
    match = _SPAN.fullmatch(text.strip())
    if match is None or not any(match.groups()):
        return None
    hours, minutes = (int(g or 0) for g in match.groups())
    span = timedelta(hours=hours, minutes=minutes)
    return span if span else None
