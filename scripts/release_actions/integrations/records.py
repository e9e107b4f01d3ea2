"""Rollback records RB-YYYY-NNN (source §6.4): numbered, kept as GitHub deployments, a file and a summary.

Where a record lives, so that none is lost:

1. the output file (``--record-file``, JSON, written atomically before GitHub is asked),
2. the job summary (a Markdown table),
3. GitHub: a deployment of the environment with ``task: rollback`` and the record as its
   ``payload``, and a deployment status (``success``, ``RB-2026-001: v1.5.2 -> v1.5.1``,
   the run URL as its log URL). A failure there is a warning, never a failed rollback.

Numbering across runs and races. NNN is one more than the highest number of the year
among the records already in GitHub, so the sequence survives from run to run. Two
rollbacks at the same moment may both read the same highest number and both claim the
next one. GitHub gives every deployment an increasing id, so the id breaks the tie: a
record is valid only when its number is higher than every number claimed for its year
by a deployment created before it. After writing its deployment, a run lists again; if
an earlier deployment claims its number (or a higher one), it lost the race: it marks
its own deployment ``inactive`` ("superseded"), takes the next free number and writes a
new deployment, until it wins. Readers apply the same rule, so a superseded claim never
shows up as a second record with the same id, even if the loser died before retrying.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.errors import IntegrationError, ReleaseActionsError
from release_actions.gha import Runtime, markdown_table

if TYPE_CHECKING:
    import github
    from github.Deployment import Deployment
    from github.Repository import Repository

RECORD_TASK = "rollback"
# GitHub refuses a deployment status description longer than this.
DESCRIPTION_LIMIT = 140
ATTEMPTS = 5
RECORD_ID = re.compile(r"^RB-(?P<year>\d{4})-(?P<number>\d{3,})$")
PERMISSIONS_YAML = "permissions:\n  deployments: write"


def parse_id(record_id: str) -> tuple[int, int] | None:
    m = RECORD_ID.match(record_id or "")
    return (int(m["year"]), int(m["number"])) if m else None


def format_id(year: int, number: int) -> str:
    return f"RB-{year:04d}-{number:03d}"


def next_id(year: int, existing: Iterable[str]) -> str:
    """One more than the year's highest number among ``existing`` (superseded claims are
    never higher than a valid one, so they need not be told apart here)."""
    numbers = [n for y, n in filter(None, map(parse_id, existing)) if y == year]
    return format_id(year, max(numbers, default=0) + 1)


def winners(claims: Iterable[tuple[int, str]]) -> set[int]:
    """The deployment ids whose claim holds: higher than every earlier claim of its year."""
    best: dict[int, int] = {}
    out: set[int] = set()
    for dep_id, record_id in sorted(claims):
        parsed = parse_id(record_id)
        if parsed is None:
            continue
        year, number = parsed
        if number > best.get(year, 0):
            out.add(dep_id)
        best[year] = max(best.get(year, 0), number)
    return out


def record_year(record: Mapping[str, Any]) -> int:
    parsed = parse_id(str(record.get("id", "")))
    if parsed is not None:
        return parsed[0]
    return datetime.fromisoformat(str(record["timestamp"])).year


# -- run facts -------------------------------------------------------------------------------


def run_url(env: Mapping[str, str]) -> str | None:
    """This workflow run's URL, from the variables the runner sets."""
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    repo, run_id = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    if not repo or not run_id:
        return None
    return f"{server}/{repo}/actions/runs/{run_id}"


def complete_record(
    record: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    release: str | None,
    target: str,
    environment: str,
    flags_turned_off: Iterable[str] = (),
) -> dict[str, Any]:
    """The engine's record with what source §6.4 and an audit need besides: the release,
    the target, the environment, who ran it and the run that did."""
    out = dict(record)
    out.update(
        {
            "release": release,
            "target": target,
            "environment": environment,
            "actor": env.get("GITHUB_ACTOR") or None,
            "run_url": run_url(env),
            "repository": env.get("GITHUB_REPOSITORY") or None,
        }
    )
    flags = list(flags_turned_off)
    if flags:
        out["flags_turned_off"] = flags
    return out


def status_description(record: Mapping[str, Any]) -> str:
    """``RB-2026-001: v1.5.2 -> v1.5.1``, cut to GitHub's 140 characters."""
    if record.get("from_version") or record.get("to_version"):
        what = f"{record.get('from_version') or '?'} -> {record.get('to_version') or '?'}"
    elif record.get("flags_turned_off"):
        what = "flags off: " + ", ".join(record["flags_turned_off"])
    else:
        what = str(record.get("trigger", {}).get("reason") or "rollback")
    text = f"{record['id']}: {what}"
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


# -- the file and the summary ------------------------------------------------------------------


def write_record_file(path: Path, data: Mapping[str, Any]) -> None:
    """Write then rename: a reader sees the previous file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(data), fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_rows(record: Mapping[str, Any]) -> list[list[str]]:
    def text(value: Any) -> str:
        return "–" if value is None or value == "" else str(value)

    trigger = record.get("trigger") or {}
    dur = record.get("duration") or {}
    rows = [
        ["id", text(record.get("id"))],
        ["timestamp", text(record.get("timestamp"))],
        ["deployment", text(record.get("deployment"))],
        ["from → to", f"{text(record.get('from_version'))} → {text(record.get('to_version'))}"],
        ["trigger", f"{text(trigger.get('type'))}: {text(trigger.get('reason'))}"],
        [
            "metrics",
            ", ".join(f"{k} {v}" for k, v in (trigger.get("metrics") or {}).items()) or "–",
        ],
        ["detection time", text(dur.get("detection_time"))],
        ["rollback time", text(dur.get("rollback_time"))],
        ["recovery time", text(dur.get("recovery_time") or "not confirmed")],
    ]
    if record.get("flags_turned_off"):
        rows.append(["flags turned off", ", ".join(record["flags_turned_off"])])
    for key in ("release", "target", "environment", "actor", "run_url"):
        if key in record:
            rows.append([key.replace("_", " "), text(record.get(key))])
    return rows


def record_markdown(
    record: Mapping[str, Any], *, attached: Attachment | None, path: Path | None
) -> str:
    lines = [
        f"### Rollback record {record['id']}",
        "",
        markdown_table(["Field", "Value"], record_rows(record)),
    ]
    lines.append(where_kept(attached, path))
    return "\n".join(lines).rstrip() + "\n"


def where_kept(attached: Attachment | None, path: Path | None) -> str:
    kept = []
    if attached is not None and attached.ok:
        kept.append(
            f"GitHub deployment {attached.deployment_id} (`task: rollback`, environment "
            f"`{attached.environment}`)"
        )
    if path is not None:
        kept.append(f"`{path}`")
    return ("Kept in: " + "; ".join(kept) + ".\n") if kept else ""


# -- GitHub ----------------------------------------------------------------------------------


@dataclass
class StoredRecord:
    """A rollback record as GitHub keeps it; ``valid`` False for a claim that lost a race."""

    deployment_id: int
    environment: str
    created_at: str
    record: dict[str, Any]
    valid: bool = True

    @property
    def id(self) -> str:
        return str(self.record.get("id", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.record,
            "github": {
                "deployment_id": self.deployment_id,
                "environment": self.environment,
                "created_at": self.created_at,
            },
        }


@dataclass
class Attachment:
    """What ``RecordStore.attach`` did: ``ok`` and the record as written (maybe renumbered)."""

    ok: bool
    record: dict[str, Any]
    deployment_id: int | None = None
    environment: str | None = None
    renumbered_from: list[str] = field(default_factory=list)
    error: str | None = None


class RecordStore:
    """Rollback records as GitHub deployments (``task: rollback``) of one repository."""

    def __init__(
        self,
        gh: github.Github,
        repository: str,
        *,
        environment: str,
        ref: str | None = None,
        log_url: str | None = None,
    ) -> None:
        self.gh = gh
        self.repository = repository
        self.environment = environment
        self.ref = ref
        self.log_url = log_url
        self._repo: Repository | None = None
        self.error: str | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        environment: str,
        repository: str | None = None,
        token: str | None = None,
    ) -> RecordStore:
        """Aimed at ``GITHUB_API_URL`` with ``GITHUB_TOKEN``; IntegrationError says what is missing."""
        from release_actions.integrations.github import client

        repo = repository or env.get("GITHUB_REPOSITORY")
        if not repo:
            raise IntegrationError(
                "No repository for the rollback records: `GITHUB_REPOSITORY` is not set.",
                hint="Pass `--repo OWNER/NAME` (in Actions the runner sets GITHUB_REPOSITORY).",
            )
        return cls(
            client(env, token),
            repo,
            environment=environment,
            ref=env.get("GITHUB_SHA") or None,
            log_url=run_url(env),
        )

    def _errors(self, action: str) -> Any:
        from release_actions.integrations.github import github_errors

        return github_errors(action, repo=self.repository)

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            from release_actions.integrations.github import get_repo

            self._repo = get_repo(self.gh, self.repository)
        return self._repo

    # -- reading ---------------------------------------------------------------------------

    def _deployments(self) -> list[Deployment]:
        with self._errors("Listing the rollback records"):
            return list(self.repo.get_deployments(task=RECORD_TASK))

    def records(self) -> list[StoredRecord]:
        """Every rollback record in the repository, newest first, each marked valid or not."""
        found = []
        for dep in self._deployments():
            payload = dep.payload
            if isinstance(payload, str):
                try:
                    payload = json.loads(payload)
                except ValueError:
                    continue
            if not isinstance(payload, dict) or parse_id(str(payload.get("id", ""))) is None:
                continue
            created = dep.created_at.isoformat() if dep.created_at else ""
            found.append(StoredRecord(dep.id, dep.environment or "", created, payload))
        valid = winners((r.deployment_id, r.id) for r in found)
        for r in found:
            r.valid = r.deployment_id in valid
        return sorted(found, key=lambda r: r.deployment_id, reverse=True)

    def next_id(self, when: datetime, existing: Iterable[str] = ()) -> str:
        """The next id for a record made at ``when``; on a GitHub failure, from ``existing``
        (the ids the target remembers) and ``error`` says why: attach renumbers later."""
        local = list(existing)
        try:
            local += [r.id for r in self.records()]
        except ReleaseActionsError as exc:
            self.error = exc.message
        return next_id(when.year, local)

    # -- writing ---------------------------------------------------------------------------

    def attach(self, record: Mapping[str, Any]) -> Attachment:
        """Write ``record`` as a deployment and its status, renumbering until its id holds.

        Never raises for GitHub's failures: ``ok`` False and ``error`` say what happened,
        and the record keeps the last id it had.
        """
        current = dict(record)
        renumbered: list[str] = []
        year = record_year(current)
        try:
            for _ in range(ATTEMPTS):
                stored = self.records()
                wanted = next_id(year, [r.id for r in stored])
                if current.get("id") != wanted:
                    if current.get("id"):
                        renumbered.append(str(current["id"]))
                    current["id"] = wanted
                dep = self._create(current)
                claims = [(r.deployment_id, r.id) for r in self.records()]
                if dep.id not in {d for d, _ in claims}:
                    claims.append((dep.id, str(current["id"])))
                if dep.id in winners(claims):
                    self._status(dep, "success", status_description(current))
                    return Attachment(True, current, dep.id, self.environment, renumbered)
                # An earlier deployment took this number: ours is superseded, try the next.
                self._status(
                    dep,
                    "inactive",
                    f"superseded: {current['id']} was taken by a concurrent rollback",
                )
            raise IntegrationError(
                f"Could not claim a rollback record id after {ATTEMPTS} attempts: other "
                "rollbacks kept taking them."
            )
        except ReleaseActionsError as exc:
            self.error = exc.message
            return Attachment(False, current, renumbered_from=renumbered, error=exc.message)

    def _create(self, record: Mapping[str, Any]) -> Deployment:
        ref = self.ref
        if not ref:
            with self._errors("Reading the repository"):
                ref = self.repo.default_branch
        with self._errors(f"Recording {record['id']} as a deployment"):
            # No status checks and no merge: a record must be written whatever state the
            # commit is in (a rollback often follows failing checks).
            return self.repo.create_deployment(
                ref,
                task=RECORD_TASK,
                auto_merge=False,
                required_contexts=[],
                payload=dict(record),
                environment=self.environment,
                description=status_description(record),
                transient_environment=False,
            )

    def _status(self, dep: Deployment, state: str, description: str) -> None:
        from github.GithubObject import NotSet

        with self._errors(f"Writing the status of deployment {dep.id}"):
            # PyGithub's create_status has no `log_url`; GitHub (and its fake) take
            # `target_url` as the log URL. auto_inactive off: a record must not mark the
            # environment's real deployments inactive.
            dep.create_status(
                state,
                target_url=self.log_url or NotSet,
                description=description[:DESCRIPTION_LIMIT],
                environment=self.environment,
                auto_inactive=False,
            )


# -- one call for the commands ---------------------------------------------------------------------


@dataclass
class Published:
    record: dict[str, Any]
    path: Path | None
    attached: Attachment | None
    warnings: list[str] = field(default_factory=list)


def default_record_path(env: Mapping[str, str], record: Mapping[str, Any]) -> Path | None:
    """Under RUNNER_TEMP, named by the record's time: the id may still change (a race)."""
    temp = env.get("RUNNER_TEMP")
    if not temp:
        return None
    try:
        stamp = datetime.fromisoformat(str(record.get("timestamp"))).strftime("%Y%m%dT%H%M%S")
    except ValueError:
        stamp = "latest"
    return Path(temp) / "release-actions" / f"rollback-record-{stamp}.json"


def open_store(
    env: Mapping[str, str], *, environment: str, repository: str | None = None
) -> tuple[RecordStore | None, str | None]:
    """The GitHub store when a token and a repository are set, else None and why not."""
    if not (env.get("GITHUB_TOKEN") or env.get("GH_TOKEN")):
        return None, "no `GITHUB_TOKEN` in the environment"
    if not (repository or env.get("GITHUB_REPOSITORY")):
        return None, "no repository (`GITHUB_REPOSITORY` or `--repo`)"
    try:
        return RecordStore.from_env(env, environment=environment, repository=repository), None
    except ReleaseActionsError as exc:
        return None, exc.message


def publish(
    runtime: Runtime,
    record: Mapping[str, Any],
    *,
    store: RecordStore | None,
    unavailable: str | None,
    path: Path | None,
    warn_unattached: bool = True,
) -> Published:
    """File first, then GitHub (renumbering the file if GitHub moved the id); warnings only."""
    current = dict(record)
    path = path or default_record_path(runtime.env, current)
    warnings: list[str] = []
    if path is not None:
        write_record_file(path, current)
    attached: Attachment | None = None
    if store is not None:
        attached = store.attach(current)
        current = attached.record
        if attached.ok:
            if attached.renumbered_from:
                runtime.annotate(
                    "notice",
                    f"The rollback record is {current['id']} (not "
                    f"{', '.join(attached.renumbered_from)}: another rollback took that number).",
                    title="Rollback record renumbered",
                )
        else:
            warnings.append(
                f"The rollback record {current['id']} was not attached to GitHub: "
                f"{attached.error} It is in the job summary" + (f" and in {path}." if path else ".")
            )
    elif warn_unattached:
        warnings.append(
            f"The rollback record {current['id']} was not attached to GitHub ({unavailable}); "
            "it is in the job summary" + (f" and in {path}." if path else ".")
        )
    if path is not None:
        data = dict(current)
        if attached is not None and attached.ok:
            data["github"] = {
                "repository": store.repository if store else None,
                "deployment_id": attached.deployment_id,
                "environment": attached.environment,
            }
        write_record_file(path, data)
    for text in warnings:
        hint = ""
        if "403" in text:
            hint = f" Give the job:\n{PERMISSIONS_YAML}"
        runtime.annotate("warning", text + hint, title="Rollback record")
    return Published(current, path, attached, warnings)


def parse_since(text: str, tz: Any) -> datetime:
    """``--since`` as a date (midnight in the policy's time zone) or an ISO 8601 time."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=tz)
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ReleaseActionsError(
            f"`--since {text}` is not a date: use YYYY-MM-DD or an ISO 8601 time."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=tz)


def record_time(stored: StoredRecord) -> datetime | None:
    for text in (stored.record.get("timestamp"), stored.created_at):
        if not text:
            continue
        try:
            return datetime.fromisoformat(str(text))
        except ValueError:
            continue
    return None
