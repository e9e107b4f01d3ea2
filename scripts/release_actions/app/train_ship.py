"""The train's clock and its tags (source §2.1): which step is due, its cron lines, rc and final tags."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from release_actions.core.policy import WEEKDAYS, Policy, TrainPolicy, parse_clock
from release_actions.core.train import (
    LAST_PRODUCTION_WEEKDAY,
    Train,
    branch_name,
    branch_pattern,
    plan,
    train_zone,
)
from release_actions.core.versions import Version
from release_actions.errors import IntegrationError, InvalidVersionError, ReleaseActionsError

Step = Literal["cut", "stage", "ship"]
STEPS: tuple[Step, ...] = ("cut", "stage", "ship")
# A step that is due at the same minute as another comes first in this order: production
# is the one a late start hurts most.
_PRIORITY = {"ship": 0, "stage": 1, "cut": 2}


def step_at(train: Train, step: Step) -> datetime | None:
    """When ``step`` of ``train`` happens (production after any calendar shift); None: never."""
    if train.skipped:
        return None
    return {"cut": train.cut_at, "stage": train.staging_at, "ship": train.production_at}[step]


def _trains_around(policy: Policy, now: datetime) -> list[Train]:
    # A production moved to Thursday comes 8 days after its cut: two weeks back covers it.
    local = now.astimezone(train_zone(policy)).date()
    return plan(policy, local - timedelta(days=14), 4)


def _newer(trains: list[Train], train: Train, now: datetime) -> int:
    """How many trains cut a branch after ``train`` and by ``now`` (skipped ones cut none)."""
    return sum(1 for t in trains if not t.skipped and train.cut_at < t.cut_at <= now)


@dataclass(frozen=True)
class DueStep:
    """One step whose time came within the window; ``newer`` branches were cut since its train's."""

    step: Step
    at: datetime
    train: Train
    newer: int

    @property
    def version(self) -> str | None:
        return self.train.branch_version

    def branch(self, policy: Policy) -> str | None:
        v = self.train.version
        return None if v is None else branch_name(policy.train, v)

    def to_dict(self, policy: Policy) -> dict[str, Any]:
        return {
            "step": self.step,
            "version": self.version,
            "branch": self.branch(policy),
            "at": self.at.isoformat(),
            "train_cut_at": self.train.cut_at.isoformat(),
            "newer_trains": self.newer,
        }


def due(policy: Policy, now: datetime, window: timedelta) -> list[DueStep]:
    """Every step whose time is in ``(now - window, now]``, most urgent first.

    Two can fall together: a production the calendar moved to Wednesday or Thursday
    shares the minute with the next train's cut or staging. A skipped train has none.
    """
    trains = _trains_around(policy, now)
    found = []
    for train in trains:
        for step in STEPS:
            at = step_at(train, step)
            if at is not None and at <= now < at + window:
                found.append(DueStep(step, at, train, _newer(trains, train, now)))
    return sorted(found, key=lambda d: (d.at, _PRIORITY[d.step]))


def train_of(policy: Policy, step: Step, now: datetime) -> tuple[Train, int] | None:
    """The latest train whose ``step`` came by ``now``, and how many branches were cut after it.

    This is the train `stage` and `ship` act on: the one `due` named, and for a run by hand
    later the same one until the next train's step comes.
    """
    trains = _trains_around(policy, now)
    done = [t for t in trains if (at := step_at(t, step)) is not None and at <= now]
    if not done:
        return None
    train = max(done, key=lambda t: t.cut_at)
    return train, _newer(trains, train, now)


# -- schedule ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CronLine:
    """One cron line in UTC for a local weekday and time, with what it drives."""

    cron: str
    weekday: str
    local: str
    timezone: str
    season: str | None
    steps: tuple[str, ...]

    @property
    def comment(self) -> str:
        season = f", {self.season}" if self.season else ""
        return f"{self.weekday.capitalize()} {self.local} {self.timezone}{season}: " + "; ".join(
            self.steps
        )

    def line(self) -> str:
        return f"{self.cron}  # {self.comment}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "cron": self.cron,
            "weekday": self.weekday,
            "local": self.local,
            "timezone": self.timezone,
            "season": self.season,
            "steps": list(self.steps),
        }


def _slots(train: TrainPolicy) -> list[tuple[str, str, str]]:
    """(weekday, HH:MM, what) for each step, then the weekdays a moved production can take."""
    out: list[tuple[str, str, str]] = [
        (train.freeze.day, train.freeze.time, "cut"),
        (train.staging.day, train.staging.time, "stage"),
        (train.production.day, train.production.time, "ship"),
    ]
    moved = WEEKDAYS.index(train.production.day) + 1
    out += [
        (WEEKDAYS[d], train.production.time, "ship when the calendar moves it")
        for d in range(moved, LAST_PRODUCTION_WEEKDAY + 1)
    ]
    return out


def _offsets(policy: Policy, year: int) -> list[tuple[timedelta, str | None]]:
    """The zone's UTC offsets in ``year``: one, or summer and winter time where it has both."""
    zone = train_zone(policy)
    seen: dict[timedelta, str | None] = {}
    for month in range(1, 13):
        at = datetime(year, month, 15, 12, tzinfo=zone)
        offset = at.utcoffset() or timedelta(0)
        if offset not in seen:
            kind = "summer time" if at.dst() else "winter time"
            sign = "-" if offset < timedelta(0) else "+"
            hours, rest = divmod(abs(int(offset.total_seconds())) // 60, 60)
            seen[offset] = f"{kind} ({at.tzname()}, UTC{sign}{hours:02d}:{rest:02d})"
    if len(seen) == 1:
        return [(next(iter(seen)), None)]
    # Summer first: the line that runs on time for most of the year in the northern half.
    return sorted(seen.items(), key=lambda item: -item[0])


def schedule(policy: Policy, *, year: int, offset_minutes: int = 5) -> list[CronLine]:
    """Cron lines (UTC) for the train's days, ``offset_minutes`` after each local time.

    GitHub starts scheduled runs late, more so on the hour; `train due` accepts a run up to
    its window after the step's time, so a late or doubled run is harmless. A zone with
    daylight saving gets a line per offset: the one that fires an hour early finds nothing due.
    """
    zone = train_zone(policy)
    merged: dict[tuple[str, str], list[str]] = {}
    for day, clock, what in _slots(policy.train):
        merged.setdefault((day, clock), []).append(what)
    lines = []
    for (day, clock), labels in merged.items():
        local = datetime.combine(date(2000, 1, 1), parse_clock(clock)) + timedelta(
            minutes=offset_minutes
        )
        day_index = WEEKDAYS.index(day) + (local.day - 1)
        shown = f"{local:%H:%M}"
        for offset, season in _offsets(policy, year):
            minutes = local.hour * 60 + local.minute - int(offset.total_seconds()) // 60
            shift, minutes = divmod(minutes, 24 * 60)
            weekday = (day_index + shift) % 7
            cron_day = (weekday + 1) % 7  # cron counts from Sunday = 0
            cron = f"{minutes % 60} {minutes // 60} * * {cron_day}"
            lines.append(
                CronLine(cron, WEEKDAYS[(day_index) % 7], shown, zone.key, season, tuple(labels))
            )
    return lines


# -- tags on the release branch ---------------------------------------------------------


@dataclass(frozen=True)
class TagResult:
    """The tag a step put (or found) at the head of the train's branch."""

    step: Step
    tag: str
    sha: str
    changed: bool
    branch: str
    version: str
    reason: str
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "tag": self.tag,
            "sha": self.sha,
            "changed": self.changed,
            "branch": self.branch,
            "version": self.version,
            "reason": self.reason,
            "warnings": list(self.warnings),
        }


def _branch_prefix(template: str) -> str:
    return template.split("{", 1)[0]


def branch_version(train: TrainPolicy, name: str) -> Version | None:
    """The version a release branch name carries (`release/v1.4.0` -> 1.4.0), else None."""
    m = branch_pattern(train).match(name)
    if m is None:
        return None
    parts = dict(zip(re.findall(r"\{(major|minor|patch)\}", train.branch), m.groups(), strict=True))
    return Version(int(parts["major"]), int(parts["minor"]), int(parts.get("patch", "0")))


def release_branches(repo: Any, train: TrainPolicy) -> list[tuple[Version, str, str]]:
    """The train's branches as (version, name, head SHA), highest version first."""
    prefix = _branch_prefix(train.branch)
    found = []
    for ref in repo.get_git_matching_refs(f"heads/{prefix}"):
        name = ref.ref.removeprefix("refs/heads/")
        version = branch_version(train, name)
        if version is not None:
            found.append((version, name, ref.object.sha))
    return sorted(found, key=lambda item: item[0], reverse=True)


def _commit_of(repo: Any, obj: Any) -> str:
    """The commit a tag ref points at: an annotated tag's target, a lightweight tag's own."""
    sha, kind = obj.sha, obj.type
    for _ in range(5):  # a tag of a tag: git allows it, so peel a few
        if kind != "tag":
            return str(sha)
        target = repo.get_git_tag(sha).object
        sha, kind = target.sha, target.type
    raise IntegrationError(f"The tag object {obj.sha} is nested more than 5 deep.")


def _tags(repo: Any, prefix: str) -> dict[str, str]:
    """Tag name -> commit SHA for every tag whose name starts with ``prefix``."""
    out = {}
    for ref in repo.get_git_matching_refs(f"tags/{prefix}"):
        out[ref.ref.removeprefix("refs/tags/")] = _commit_of(repo, ref.object)
    return out


def pick_branch(
    repo: Any, policy: Policy, *, version: Version | None, newer: int
) -> tuple[Version, str, str]:
    """The train's branch: the one of ``version``, else the newest but ``newer`` of them.

    A branch is cut per train, so the trains cut after this one (a production the calendar
    moved past the next cut) are the newest ``newer`` branches, and this one is next.
    """
    branches = release_branches(repo, policy.train)
    if version is not None:
        name = branch_name(policy.train, version)
        for found in branches:
            if found[1] == name:
                return found
        raise ReleaseActionsError(
            f"The release branch `{name}` does not exist in {repo.full_name}.",
            hint="Was the train cut? `release-actions train cut` makes it; or pass the "
            "`--version` of a branch that exists.",
        )
    if len(branches) <= newer:
        have = ", ".join(f"`{b[1]}`" for b in branches) or "none"
        raise ReleaseActionsError(
            f"No release branch of this train in {repo.full_name}: {newer} train(s) were cut "
            f"after it and the branches matching `{policy.train.branch}` are {have}.",
            hint="Cut the train first (`release-actions train cut`), or pass `--version`.",
        )
    return branches[newer]


def _rc_number(tag: str, base: str) -> int | None:
    m = re.fullmatch(re.escape(base) + r"-rc\.(0|[1-9]\d*)", tag)
    return int(m[1]) if m else None


def _create_tag(repo: Any, tag: str, sha: str) -> bool:
    """Create the lightweight tag; False when a concurrent run made it at the same commit."""
    try:
        repo.create_git_ref(f"refs/tags/{tag}", sha)
    except Exception as exc:  # PyGithub's GithubException: 422 when the ref exists
        if getattr(exc, "status", None) != 422:
            raise
        now = _tags(repo, tag).get(tag)
        if now != sha:
            raise
        return False
    return True


def stage_tag(
    repo: Any, policy: Policy, branch: tuple[Version, str, str], *, dry_run: bool = False
) -> TagResult:
    """Tag the branch head `vX.Y.Z-rc.N`, N one above the highest rc of that version.

    Idempotent: a head that already carries an rc tag of the version keeps it.
    """
    version, name, head = branch
    prefix = policy.tag.prefix
    base = version.tag(prefix)
    tags = _tags(repo, base)
    if base in tags:
        raise ReleaseActionsError(
            f"{base} is already tagged (at {tags[base][:12]}): the train of `{name}` has shipped.",
            hint="A fix after the release is a hotfix (`hotfix/ABC-123-...`), released as a patch.",
        )
    rcs = {n: t for t in tags if (n := _rc_number(t, base)) is not None}
    at_head = sorted((n for n, t in rcs.items() if tags[t] == head), reverse=True)
    if at_head:
        tag = rcs[at_head[0]]
        return TagResult(
            "stage",
            tag,
            head,
            False,
            name,
            str(version),
            f"{tag} is already at the head of `{name}` ({head[:12]}).",
        )
    tag = f"{base}-rc.{max(rcs, default=0) + 1}"
    if dry_run:
        return TagResult(
            "stage",
            tag,
            head,
            False,
            name,
            str(version),
            f"Would tag {tag} at `{name}` ({head[:12]}) (dry run).",
        )
    created = _create_tag(repo, tag, head)
    verb = "Tagged" if created else "Found (made meanwhile)"
    return TagResult(
        "stage", tag, head, created, name, str(version), f"{verb} {tag} at `{name}` ({head[:12]})."
    )


def ship_tag(
    repo: Any, policy: Policy, branch: tuple[Version, str, str], *, dry_run: bool = False
) -> TagResult:
    """Tag the branch head `vX.Y.Z`; idempotent at the same commit, refused at another one."""
    version, name, head = branch
    tag = version.tag(policy.tag.prefix)
    tags = _tags(repo, tag)
    warnings: tuple[str, ...] = ()
    if not any(_rc_number(t, tag) is not None and sha == head for t, sha in tags.items()):
        warnings = (
            f"No rc tag of {tag} is at the head of `{name}` ({head[:12]}): this commit was "
            "not staged by the train (source §2.1 stages before production).",
        )
    if tag in tags:
        if tags[tag] == head:
            return TagResult(
                "ship",
                tag,
                head,
                False,
                name,
                str(version),
                f"{tag} is already at the head of `{name}` ({head[:12]}).",
                warnings,
            )
        raise ReleaseActionsError(
            f"{tag} already exists at {tags[tag][:12]}, but the head of `{name}` is {head[:12]}: "
            "refusing to ship another commit under the same version.",
            hint="Release the new commits as a hotfix patch version, or, if the tag is wrong, "
            f"delete it by hand (`git push --delete origin {tag}`) and rerun.",
        )
    if dry_run:
        return TagResult(
            "ship",
            tag,
            head,
            False,
            name,
            str(version),
            f"Would tag {tag} at `{name}` ({head[:12]}) (dry run).",
            warnings,
        )
    created = _create_tag(repo, tag, head)
    verb = "Tagged" if created else "Found (made meanwhile)"
    return TagResult(
        "ship",
        tag,
        head,
        created,
        name,
        str(version),
        f"{verb} {tag} at `{name}` ({head[:12]}).",
        warnings,
    )


def parse_branch_version(text: str, prefix: str) -> Version:
    """`--version 1.4.0` or `v1.4.0`; a pre-release or build is refused (the branch's is X.Y.Z)."""
    try:
        v = Version.parse(text.strip(), prefix=prefix if text.strip().startswith(prefix) else "")
    except InvalidVersionError as exc:
        raise ReleaseActionsError(f"`--version {text}`: {exc.message}") from None
    if v.prerelease or v.build:
        raise ReleaseActionsError(
            f"`--version {text}` is a pre-release or has build metadata; give the train's "
            "version, such as `1.4.0`."
        )
    return v


def freeze_exceptions(repo: Any, policy: Policy, branch: str) -> list[dict[str, Any]]:
    """The pull requests merged into ``branch`` under a freeze exception: the release notice
    names them, so the exceptions to the freeze are never silent (source §2.1)."""
    label = policy.train.freeze_rules.exception_label
    out = []
    for pull in repo.get_pulls(state="closed", base=branch):
        if pull.merged_at is None or label not in {lb.name for lb in pull.labels}:
            continue
        out.append({"number": pull.number, "title": pull.title, "url": pull.html_url})
    return sorted(out, key=lambda p: int(p["number"]))
