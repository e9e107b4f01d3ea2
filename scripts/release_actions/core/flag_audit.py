"""The stale-flag audit of source §5.5: which flags are stale or due for review, and from when."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Literal

from release_actions.core.policy import FlagEntry, FlagRetention
from release_actions.errors import PolicyError, PolicyIssue

KINDS = ("release", "ops", "experiment", "permission")
PERMANENT = ("ops", "permission")
Status = Literal["stale", "unknown_kind", "review_due", "ok", "archived"]
# The order of the report: what needs work first.
STATUS_ORDER: dict[str, int] = {
    "stale": 0,
    "unknown_kind": 1,
    "review_due": 2,
    "ok": 3,
    "archived": 4,
}
_TIMES = ("created_at", "ga_at", "experiment_ended_at", "last_reviewed_at")
# A GitHub login, and `org/team-slug` for a team.
_USER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
_TEAM = re.compile(rf"{_USER.pattern}/[A-Za-z0-9][A-Za-z0-9_.-]*")


class FlagExportError(PolicyError):
    """Raised when a flag export document is not JSON, or one of its fields is missing or
    malformed; each issue names the file, the flag's index and the key."""

    title = "Invalid flag export"


# -- the export document ------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedFlag:
    """One flag of a `flags export` document, its times aware (UTC offsets kept)."""

    key: str
    kind: str | None
    owner: str | None = None
    archived: bool = False
    created_at: datetime | None = None
    ga_at: datetime | None = None
    experiment_ended_at: datetime | None = None
    last_reviewed_at: datetime | None = None
    code_references: tuple[str, ...] = ()
    environments: Any = None
    stage: str | None = None


def parse_export_text(text: str, source: str, *, zone: tzinfo | None = None) -> list[ExportedFlag]:
    """The flags of an export document given as JSON text; see `parse_export`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlagExportError(
            f"The flag export {source} is not JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}.",
            [PolicyIssue(source, exc.lineno, "", f"not JSON: {exc.msg}")],
            hint="Write it with `release-actions flags export --json > FILE`.",
        ) from None
    return parse_export(data, source, zone=zone)


def parse_export(data: Any, source: str, *, zone: tzinfo | None = None) -> list[ExportedFlag]:
    """The flags of an export document `{"flags": [...]}`, every field checked.

    Times are ISO 8601 with an offset (`Z` or `+09:00`); a time without one is refused, as
    it would be read hours off. A bare date `YYYY-MM-DD` is midnight in ``zone`` (the
    calendar's time zone, as the catalog's `experiment_ends` is), and refused without one.
    Every problem is collected, each with its path (`flags[3].ga_at`), then raised together.
    """
    issues: list[PolicyIssue] = []

    def bad(path: str, message: str) -> None:
        issues.append(PolicyIssue(source, None, path, message))

    if not isinstance(data, dict) or not isinstance(data.get("flags"), list):
        got = type(data).__name__ if not isinstance(data, dict) else "no `flags` list"
        raise FlagExportError(
            f"The flag export {source} is not an object with a `flags` list ({got}).",
            [PolicyIssue(source, None, "flags", "expected a list of flags")],
            hint='Expected `{"flags": [{"key": ..., "kind": ..., ...}]}` as '
            "`release-actions flags export --json` writes it.",
        )
    flags: list[ExportedFlag] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data["flags"]):
        at = f"flags[{index}]"
        if not isinstance(raw, dict):
            bad(at, f"expected an object, got {type(raw).__name__}")
            continue
        key = raw.get("key")
        if not isinstance(key, str) or not key.strip():
            bad(f"{at}.key", "expected the flag's key, a non-empty string")
            continue
        if key in seen:
            bad(f"{at}.key", f"`{key}` is listed twice (first at flags[{seen[key]}])")
            continue
        seen[key] = index
        kind = raw.get("kind")
        if kind is not None and kind not in KINDS:
            bad(f"{at}.kind", f"expected one of {', '.join(KINDS)} or null, got {kind!r}")
        owner = raw.get("owner")
        if owner is not None and not isinstance(owner, str):
            bad(f"{at}.owner", f"expected a GitHub user, `org/team` or null, got {owner!r}")
        archived = raw.get("archived", False)
        if not isinstance(archived, bool):
            bad(f"{at}.archived", f"expected true or false, got {archived!r}")
        stage = raw.get("stage")
        if stage is not None and not isinstance(stage, str):
            bad(f"{at}.stage", f"expected a stage name or null, got {stage!r}")
        times: dict[str, datetime | None] = {}
        for name in _TIMES:
            try:
                times[name] = parse_time(raw.get(name), zone=zone)
            except ValueError as exc:
                bad(f"{at}.{name}", str(exc))
        references = _references(raw.get("code_references"), f"{at}.code_references", bad)
        flags.append(
            ExportedFlag(
                key=key,
                kind=kind if kind in KINDS else None,
                owner=(owner.strip().lstrip("@") or None) if isinstance(owner, str) else None,
                archived=archived is True,
                code_references=references,
                environments=raw.get("environments"),
                stage=stage if isinstance(stage, str) else None,
                **times,
            )
        )
    if issues:
        first = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise FlagExportError(
            f"The flag export {source} does not validate: `{first.key}`: {first.message}{more}.",
            issues,
            hint="Fix the export, or write it again with `release-actions flags export --json`.",
        )
    return flags


def parse_time(value: Any, *, zone: tzinfo | None = None) -> datetime | None:
    """An ISO 8601 time with an offset, a date at midnight in ``zone``, or None for null."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 time or null, got {value!r}")
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d\d-\d\d", text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a date") from None
        if zone is None:
            raise ValueError(
                f"{value!r} is a date without a time zone; give a time with an offset, "
                "such as `2026-01-14T00:00:00+09:00`"
            )
        return datetime(day.year, day.month, day.day, tzinfo=zone)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 time, such as `2026-01-14T10:00:00+09:00`"
        ) from None
    if at.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset; add one, such as `Z` or `+09:00`")
    return at


def _references(value: Any, at: str, bad: Any) -> tuple[str, ...]:
    """`path:line` strings, or objects `{path, line?, repository?}` made into them."""
    if value is None:
        return ()
    if not isinstance(value, list):
        bad(at, f"expected a list of references, got {type(value).__name__}")
        return ()
    out: list[str] = []
    for n, entry in enumerate(value):
        if isinstance(entry, str) and entry.strip():
            out.append(entry.strip())
        elif isinstance(entry, dict) and isinstance(entry.get("path"), str) and entry["path"]:
            line = entry.get("line")
            if line is not None and (not isinstance(line, int) or isinstance(line, bool)):
                bad(f"{at}[{n}].line", f"expected a line number, got {line!r}")
                continue
            shown = entry["path"] + (f":{line}" if line is not None else "")
            repository = entry.get("repository")
            out.append(f"{repository}:{shown}" if isinstance(repository, str) else shown)
        else:
            bad(f"{at}[{n}]", f"expected `path:line` or an object with `path`, got {entry!r}")
    return tuple(out)


def with_catalog(
    flags: Sequence[ExportedFlag], catalog: Iterable[FlagEntry], zone: tzinfo
) -> list[ExportedFlag]:
    """Each flag with what the export left empty taken from the policy's catalog: the kind,
    the owner, and an experiment's end (`experiment_ends`, a date in ``zone``)."""
    entries = {entry.key: entry for entry in catalog}
    out = []
    for flag in flags:
        entry = entries.get(flag.key)
        if entry is None:
            out.append(flag)
            continue
        ended = flag.experiment_ended_at
        if ended is None and entry.experiment_ends is not None:
            ended = parse_time(entry.experiment_ends, zone=zone)
        out.append(
            replace(
                flag,
                kind=flag.kind or entry.kind,
                owner=flag.owner or entry.owner,
                experiment_ended_at=ended,
            )
        )
    return out


# -- the rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the audit says of one flag at one instant."""

    flag: ExportedFlag
    status: Status
    stale: bool | None
    """None for a flag of unknown kind: nobody can say."""
    review_due: bool | None
    due_at: datetime | None
    """When it becomes stale (stale from this instant on), or when its review falls due
    (due once this instant has passed); None when neither can happen."""
    reason: str
    code_references: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        return self.flag.key

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.flag.key,
            "kind": self.flag.kind,
            "owner": self.flag.owner,
            "archived": self.flag.archived,
            "stage": self.flag.stage,
            "status": self.status,
            "stale": self.stale,
            "review_due": self.review_due,
            "due_at": iso(self.due_at),
            "reason": self.reason,
            "code_references": list(self.code_references),
        }


def iso(at: datetime | None) -> str | None:
    """An instant in UTC, ISO 8601 with `Z`: the same text whatever zone it came in."""
    if at is None:
        return None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _day(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d}"


def judge(
    flag: ExportedFlag,
    retention: FlagRetention,
    now: datetime,
    references: Sequence[str] | None = None,
) -> Verdict:
    """Source §5.5 for one flag at ``now`` (an aware time; its zone does not matter).

    A release flag is stale from ``ga_at + release_days``, an experiment flag from
    ``experiment_ended_at + experiment_days``. Ops and permission flags are never stale;
    their review is due when ``last_reviewed_at`` (or, never reviewed, ``created_at``) is
    more than ``review_days`` before ``now``. An archived flag is neither. A flag whose kind
    is unknown is reported as such, never passed as fine.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    refs = tuple(flag.code_references if references is None else references)
    prefix = f"{flag.kind} flag" if flag.kind else "flag"

    def verdict(
        status: Status, stale: bool | None, review: bool | None, due: datetime | None, why: str
    ) -> Verdict:
        return Verdict(flag, status, stale, review, due, why, refs)

    if flag.archived:
        left = (
            f"; {len(refs)} code reference(s) left to remove"
            if refs
            else "; no code reference left"
        )
        return verdict("archived", False, False, None, f"archived{left}")
    if flag.kind is None:
        return verdict(
            "unknown_kind",
            None,
            None,
            None,
            "kind unknown: the flag is not in `feature_flags.catalog` and has no kind tag "
            "(release, ops, experiment, permission); add it to the catalog",
        )
    if flag.kind in PERMANENT:
        base, what = (
            (flag.last_reviewed_at, "last reviewed")
            if flag.last_reviewed_at is not None
            else (flag.created_at, "never reviewed; created")
        )
        if base is None:
            return verdict(
                "review_due",
                False,
                True,
                None,
                f"{prefix}: permanent, but neither `last_reviewed_at` nor `created_at` is "
                "known: review it now",
            )
        due = base + timedelta(days=retention.review_days)
        if now > due:
            return verdict(
                "review_due",
                False,
                True,
                due,
                f"{prefix}: permanent; {what} {_day(base)}, review due since {_day(due)} "
                f"(every {retention.review_days} days)",
            )
        return verdict(
            "ok",
            False,
            False,
            due,
            f"{prefix}: permanent; {what} {_day(base)}, next review after {_day(due)}",
        )
    if flag.kind == "release":
        start, days, event = flag.ga_at, retention.release_days, "general availability"
        missing = "not generally available yet (no `ga_at`)"
    else:
        start, days, event = flag.experiment_ended_at, retention.experiment_days, "experiment end"
        missing = "experiment not ended yet (no `experiment_ended_at`)"
    if start is None:
        stage = f", stage {flag.stage}" if flag.stage else ""
        return verdict(
            "ok",
            False,
            False,
            None,
            f"{prefix}: {missing}{stage}; stale {days} days after its {event}",
        )
    due = start + timedelta(days=days)
    if now >= due:
        return verdict(
            "stale",
            True,
            False,
            due,
            f"{prefix}: {event} {_day(start)}, stale since {_day(due)} ({days} days after); "
            "remove it from the code and archive it",
        )
    return verdict(
        "ok",
        False,
        False,
        due,
        f"{prefix}: {event} {_day(start)}, stale on {_day(due)} ({days} days after)",
    )


def audit(
    flags: Iterable[ExportedFlag],
    retention: FlagRetention,
    now: datetime,
    references: Mapping[str, Sequence[str]] | None = None,
) -> list[Verdict]:
    """Every flag judged at ``now``: stale first, then unknown kinds, due reviews, the rest,
    archived last; within each, the earliest ``due_at`` first, then by key.

    ``references`` (key -> `path:line`, found in the checkout) come first, then those the
    export lists that they do not hold.
    """
    out = []
    for flag in flags:
        refs = merge_references((references or {}).get(flag.key, ()), flag.code_references)
        out.append(judge(flag, retention, now, refs))
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(out, key=lambda v: (STATUS_ORDER[v.status], v.due_at or far, v.key))


def merge_references(*lists: Iterable[str]) -> tuple[str, ...]:
    """The references of every list, in order, each once."""
    seen: dict[str, None] = {}
    for entries in lists:
        for entry in entries:
            seen.setdefault(entry, None)
    return tuple(seen)


def check_failed(verdicts: Iterable[Verdict]) -> bool:
    """Exit 1: a flag is stale, or its kind is unknown (which nobody can say is not stale)."""
    return any(v.stale or v.status == "unknown_kind" for v in verdicts)


# -- owners ----------------------------------------------------------------------------------


def owner_kind(owner: str | None) -> Literal["user", "team", "none", "invalid"]:
    """A flag owner as GitHub sees it: a user to assign, a team to mention, or neither."""
    if not owner:
        return "none"
    if _USER.fullmatch(owner):
        return "user"
    if _TEAM.fullmatch(owner):
        return "team"
    return "invalid"
