"""Rollback records RB-YYYY-NNN (source §6.4): numbered, kept as GitHub deployments, a file and a summary.

Where a record lives, so that none is lost:

1. the output file (``--record-file``, JSON, written atomically before GitHub is asked),
2. the job summary (a Markdown table, templates/rollback_record.md.j2),
3. GitHub: a deployment of the environment with ``task: rollback`` and the record as its
   ``payload``, and a deployment status (``success``, ``RB-2026-001: v1.5.2 -> v1.5.1``,
   the run URL as its log URL). A failure there is a warning, never a failed rollback.

Ids that never clash. Every record gets a provisional id when it is made,
``RB-2026-P-<run id>-<run attempt>-<6 random hex>`` (outside Actions a UTC timestamp in
place of run and attempt), kept in the payload as ``provisional_id``: unique without asking
anyone. The final number NNN is given by the store, GitHub, which has no atomic counter but
gives every deployment an increasing id, so the numbers follow the deployment ids
(``assign_numbers``): walking a year's record deployments from the oldest, each gets the
number its payload claims when that is above every earlier number (the claim is the number
expected when the record was made, or the target's local sequence, a floor), else the next
free one. Numbers therefore strictly increase with deployment ids and cannot repeat, two
rollbacks writing at the same moment get two numbers, and every reader computes the same
ones, even for a writer that died before it wrote its status. A payload is immutable (GitHub
cannot edit a deployment), so the final number goes into the ``success`` status's description
and into the record file, while the payload keeps the claim and the provisional id.

When GitHub cannot be read (after the client's retries) the record keeps its provisional id
and its file; ``release-actions rollback records sync FILE`` files it later and writes the
final number into the file, once: a deployment whose payload has the same provisional id
means it is already filed.

Later facts (root cause, follow-up actions, postmortem link) go into an annotation: another
deployment with ``task: rollback`` whose payload names the record's deployment
(``annotates``); the latest annotation of a record wins, and one listing reads both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.errors import IntegrationError, ReleaseActionsError
from release_actions.gha import Runtime

if TYPE_CHECKING:
    import github
    from github.Deployment import Deployment
    from github.Repository import Repository

RECORD_TASK = "rollback"
# GitHub refuses a deployment status description longer than this.
DESCRIPTION_LIMIT = 140
RECORD_ID = re.compile(r"^RB-(?P<year>\d{4})-(?P<number>\d{3,})$")
PROVISIONAL_ID = re.compile(r"^RB-(?P<year>\d{4})-P-[0-9A-Za-z-]+$")
# What `rollback records annotate` adds later: source §6.4's postmortem fields.
ANNOTATION_FIELDS = ("root_cause", "follow_up_actions", "postmortem_link")
PERMISSIONS_YAML = "permissions:\n  deployments: write"


def parse_id(record_id: str) -> tuple[int, int] | None:
    m = RECORD_ID.match(record_id or "")
    return (int(m["year"]), int(m["number"])) if m else None


def format_id(year: int, number: int) -> str:
    return f"RB-{year:04d}-{number:03d}"


def is_provisional(record_id: str) -> bool:
    return PROVISIONAL_ID.match(record_id or "") is not None


def provisional_id(when: datetime, env: Mapping[str, str]) -> str:
    """An id that needs no store and cannot clash: the run and its attempt (unique per
    repository), and a random part for two rollbacks in one run (matrix jobs, two steps)."""
    run, attempt = env.get("GITHUB_RUN_ID"), env.get("GITHUB_RUN_ATTEMPT") or "1"
    where = f"{run}-{attempt}" if run else datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"RB-{when.year:04d}-P-{where}-{secrets.token_hex(3)}"


def next_id(year: int, existing: Iterable[str]) -> str:
    """One more than the year's highest number among ``existing``."""
    numbers = [n for y, n in filter(None, map(parse_id, existing)) if y == year]
    return format_id(year, max(numbers, default=0) + 1)


def payload_year(payload: Mapping[str, Any]) -> int | None:
    text = str(payload.get("id", ""))
    m = RECORD_ID.match(text) or PROVISIONAL_ID.match(text)
    if m:
        return int(m["year"])
    try:
        return datetime.fromisoformat(str(payload.get("timestamp"))).year
    except ValueError:
        return None


def assign_numbers(entries: Iterable[tuple[int, Mapping[str, Any]]]) -> dict[int, str | None]:
    """Deployment id -> the record's final id, or None for a deployment that is no record.

    In the order of deployment ids, per year: a claim (the payload's ``id``) holds when it is
    above every earlier number, else the record takes the next free number; so numbers
    strictly increase with deployment ids and never repeat. Payloads without a provisional
    id come from the earlier scheme, where a claim that did not hold was superseded by a
    retry of its own, so it is no record. A second deployment with a provisional id already
    seen is a retried create, no record either.
    """
    best: dict[int, int] = {}
    seen: set[str] = set()
    out: dict[int, str | None] = {}
    for dep_id, payload in sorted(entries, key=lambda e: e[0]):
        year = payload_year(payload)
        pid = payload.get("provisional_id")
        if year is None or (pid is not None and str(pid) in seen):
            out[dep_id] = None
            continue
        claim = parse_id(str(payload.get("id", "")))
        top = best.get(year, 0)
        holds = claim is not None and claim[0] == year and claim[1] > top
        if pid is None and not holds:
            out[dep_id] = None
            continue
        number = claim[1] if holds and claim is not None else top + 1
        if pid is not None:
            seen.add(str(pid))
        best[year] = number
        out[dep_id] = format_id(year, number)
    return out


def record_year(record: Mapping[str, Any]) -> int:
    year = payload_year(record)
    return year if year is not None else datetime.now(UTC).year


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
    from release_actions import version
    from release_actions.canary.model import impact

    out = dict(record)
    rid = str(out.get("id", ""))
    if not out.get("provisional_id"):
        when = datetime.fromisoformat(str(out["timestamp"]))
        out["provisional_id"] = rid if is_provisional(rid) else provisional_id(when, env)
    out.setdefault("impact", impact(None, None))
    out.setdefault("root_cause", None)
    out.setdefault("follow_up_actions", [])
    out.setdefault("postmortem_link", None)
    out.update(
        {
            "release": release,
            "target": target,
            "environment": environment,
            "actor": env.get("GITHUB_ACTOR") or None,
            "run_url": run_url(env),
            "repository": env.get("GITHUB_REPOSITORY") or None,
            # Which release of this tool decided: a record read months later is judged by
            # the rules of the version that wrote it.
            "tool_version": version(),
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


def _text(value: Any) -> str:
    return "–" if value is None or value == "" else str(value)


def impact_text(record: Mapping[str, Any]) -> str:
    """``1234 requests to the bad version, 87 failed; users: not measured``."""
    imp = record.get("impact") or {}
    requests, failed = imp.get("affected_requests"), imp.get("failed_requests")
    counted = (
        "requests not measured"
        if requests is None
        else f"{requests} requests to the bad version, {_text(failed)} failed"
    )
    return f"{counted}; users: {_text(imp.get('affected_users') or 'not measured')}"


def _template() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from release_actions.integrations.notify import BUILTIN_TEMPLATES

    env = Environment(
        loader=FileSystemLoader(str(BUILTIN_TEMPLATES)),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 - Markdown, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["text"] = _text
    return env.get_template("rollback_record.md.j2")


def record_context(record: Mapping[str, Any]) -> dict[str, Any]:
    """Every field of source §6.4 and the run facts, each defined (None when unknown)."""
    trigger = record.get("trigger") or {}
    dur = record.get("duration") or {}
    imp = record.get("impact") or {}
    return {
        "id": record.get("id"),
        "provisional_id": record.get("provisional_id"),
        "timestamp": record.get("timestamp"),
        "deployment": record.get("deployment"),
        "from_version": record.get("from_version"),
        "to_version": record.get("to_version"),
        "trigger_type": trigger.get("type"),
        "reason": trigger.get("reason"),
        "metrics": dict(trigger.get("metrics") or {}),
        "detection_time": dur.get("detection_time"),
        "rollback_time": dur.get("rollback_time"),
        "recovery_time": dur.get("recovery_time") or "not confirmed",
        "affected_users": imp.get("affected_users") or "not measured",
        "affected_requests": imp.get("affected_requests"),
        "failed_requests": imp.get("failed_requests"),
        "impact_source": imp.get("source"),
        "root_cause": record.get("root_cause"),
        "follow_up_actions": list(record.get("follow_up_actions") or []),
        "postmortem_link": record.get("postmortem_link"),
        "flags_turned_off": list(record.get("flags_turned_off") or []),
        "extra": [
            (key.replace("_", " "), record.get(key))
            for key in ("release", "target", "environment", "actor", "run_url")
            if key in record
        ],
    }


def record_rows(record: Mapping[str, Any]) -> list[list[str]]:
    """The run facts of a record as table rows (the report shows the rest itself)."""
    return [[name, _text(value)] for name, value in record_context(record)["extra"]]


def record_markdown(
    record: Mapping[str, Any], *, attached: Attachment | None, path: Path | None
) -> str:
    """The record as the job summary shows it (templates/rollback_record.md.j2, strict)."""
    text = str(_template().render(record_context(record))).rstrip() + "\n"
    kept = where_kept(attached, path)
    return text + ("\n" + kept if kept else "")


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
    """A rollback record as GitHub keeps it, with its final id and its latest annotation.

    ``valid`` False: a deployment that is no record of its own (a claim of the earlier
    scheme that lost its race, or a retried create).
    """

    deployment_id: int
    environment: str
    created_at: str
    record: dict[str, Any]
    valid: bool = True
    filed_as: str = ""

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
                "filed_as": self.filed_as,
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
    already: bool = False


def _payload(dep: Deployment) -> dict[str, Any] | None:
    payload = dep.payload
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            return None
    return payload if isinstance(payload, dict) else None


def merge_annotation(record: Mapping[str, Any], note: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for key in ANNOTATION_FIELDS:
        if key in note:
            out[key] = note[key]
    return out


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
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.gh = gh
        self.repository = repository
        self.environment = environment
        self.ref = ref
        self.log_url = log_url
        self.env = dict(env or {})
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
            env=env,
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
        # The client retries (integrations/github.py: 5xx, 429 and connection errors, with
        # backoff), so a failure here has outlasted them.
        with self._errors("Listing the rollback records"):
            return list(self.repo.get_deployments(task=RECORD_TASK))

    def records(self, extra: Iterable[tuple[int, Mapping[str, Any]]] = ()) -> list[StoredRecord]:
        """Every rollback record in the repository, newest first, numbered and annotated.

        ``extra``: deployments just written that a listing may not show yet.
        """
        found: dict[int, StoredRecord] = {}
        notes: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for dep in self._deployments():
            payload = _payload(dep)
            if payload is None:
                continue
            if "annotates" in payload:
                with contextlib.suppress(TypeError, ValueError):
                    notes.setdefault(int(payload["annotates"]), []).append((dep.id, payload))
                continue
            if payload_year(payload) is None or not (
                parse_id(str(payload.get("id", ""))) or is_provisional(str(payload.get("id", "")))
            ):
                continue
            created = dep.created_at.isoformat() if dep.created_at else ""
            found[dep.id] = StoredRecord(dep.id, dep.environment or "", created, payload)
        for dep_id, written in extra:
            if dep_id not in found:
                found[dep_id] = StoredRecord(dep_id, self.environment, "", dict(written))
        numbers = assign_numbers((d, r.record) for d, r in found.items())
        for dep_id, r in found.items():
            final = numbers.get(dep_id)
            r.filed_as = r.id
            r.valid = final is not None
            if final is not None:
                r.record = {**r.record, "id": final}
            for _, note in sorted(notes.get(dep_id, []), key=lambda n: n[0]):
                r.record = merge_annotation(r.record, note)
        return sorted(found.values(), key=lambda r: r.deployment_id, reverse=True)

    def next_id(self, when: datetime, existing: Iterable[str] = ()) -> str:
        """The number a record made at ``when`` should get: after the store's numbers and
        ``existing`` (the target's local sequence, a floor). When GitHub cannot be read, a
        provisional id, and ``error`` says why."""
        local = list(existing)
        try:
            local += [r.id for r in self.records() if r.valid]
        except ReleaseActionsError as exc:
            self.error = exc.message
            return provisional_id(when, self.env)
        return next_id(when.year, local)

    def find(self, record_id: str) -> StoredRecord | None:
        """The record with this final or provisional id."""
        for r in self.records():
            if r.valid and record_id in (r.id, r.record.get("provisional_id")):
                return r
        return None

    # -- writing ---------------------------------------------------------------------------

    def attach(self, record: Mapping[str, Any], *, environment: str | None = None) -> Attachment:
        """Write ``record`` as a deployment, read its number back, and write that in its status.

        Never raises for GitHub's failures: ``ok`` False and ``error`` say what happened,
        and the record keeps the id it had (a deployment already written is numbered by
        every reader all the same, and `records sync` finds it by its provisional id).
        """
        current = dict(record)
        if not current.get("provisional_id"):
            rid = str(current.get("id", ""))
            current["provisional_id"] = (
                rid
                if is_provisional(rid)
                else provisional_id(datetime(record_year(current), 1, 1), self.env)
            )
        where = environment or self.environment
        dep_id: int | None = None
        try:
            dep = self._create(current, where)
            dep_id = dep.id
            listed = self.records(extra=[(dep.id, current)])
            # Ours, or (a create the client retried) the first deployment with our provisional id.
            mine = next(
                r
                for r in reversed(listed)
                if r.deployment_id == dep.id
                or (r.valid and r.record.get("provisional_id") == current["provisional_id"])
            )
            renumbered = []
            if mine.id != current.get("id"):
                if parse_id(str(current.get("id", ""))):
                    renumbered.append(str(current["id"]))
                current["id"] = mine.id
            self._status(dep, "success", status_description(current), where)
            return Attachment(True, current, dep.id, where, renumbered)
        except ReleaseActionsError as exc:
            self.error = exc.message
            return Attachment(False, current, dep_id, where, error=exc.message)

    def sync(self, record: Mapping[str, Any]) -> Attachment:
        """File a record kept only in its file, once: a deployment with its provisional id
        means it is filed already, and that deployment's number is returned."""
        pid = record.get("provisional_id")
        if not pid:
            raise IntegrationError(
                f"The record {record.get('id')} has no `provisional_id`, so filing it twice "
                "could not be told from filing it once.",
                hint="Sync record files written by release-actions (`--record-file`).",
            )
        for r in self.records():
            if r.valid and r.record.get("provisional_id") == pid:
                return Attachment(True, r.record, r.deployment_id, r.environment, already=True)
        return self.attach(record, environment=str(record.get("environment") or "") or None)

    def annotate(
        self,
        record_id: str,
        *,
        root_cause: str | None = None,
        follow_ups: Iterable[str] = (),
        postmortem: str | None = None,
    ) -> tuple[StoredRecord, bool]:
        """Add the postmortem facts to a stored record; False when they were there already.

        A deployment cannot be edited, and a status description holds 140 characters, so
        the facts go into an annotation deployment whose payload names the record's.
        Follow-ups are added (each once); the root cause and the link replace earlier ones.
        """
        stored = self.find(record_id)
        if stored is None:
            raise IntegrationError(
                f"No rollback record `{record_id}` in {self.repository}.",
                hint="`release-actions rollback records` lists them (`--all` for every claim).",
            )
        rec = stored.record
        actions: list[str] = list(rec.get("follow_up_actions") or [])
        actions += [item for item in dict.fromkeys(follow_ups) if item not in actions]
        wanted: dict[str, Any] = {
            "root_cause": rec.get("root_cause") if root_cause is None else root_cause,
            "follow_up_actions": actions,
            "postmortem_link": rec.get("postmortem_link") if postmortem is None else postmortem,
        }
        if all(wanted[k] == (rec.get(k) or ([] if k == "follow_up_actions" else None))
               for k in ANNOTATION_FIELDS):  # fmt: skip
            return stored, False
        note = {
            "annotates": stored.deployment_id,
            "record_id": stored.id,
            "provisional_id": rec.get("provisional_id"),
            **wanted,
            "annotated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "actor": self.env.get("GITHUB_ACTOR") or None,
        }
        description = f"{stored.id}: postmortem facts"
        ref = self.ref
        if not ref:
            with self._errors("Reading the repository"):
                ref = self.repo.default_branch
        with self._errors(f"Annotating {stored.id}"):
            dep = self.repo.create_deployment(
                ref,
                task=RECORD_TASK,
                auto_merge=False,
                required_contexts=[],
                payload=note,
                environment=stored.environment or self.environment,
                description=description,
                transient_environment=False,
            )
        # Not a deploy: `inactive` keeps it from showing as the environment's live one.
        self._status(dep, "inactive", description, stored.environment or self.environment)
        stored.record = merge_annotation(rec, wanted)
        return stored, True

    def _create(self, record: Mapping[str, Any], environment: str) -> Deployment:
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
                environment=environment,
                description=status_description(record),
                transient_environment=False,
            )

    def _status(self, dep: Deployment, state: str, description: str, environment: str) -> None:
        from github.GithubObject import NotSet

        with self._errors(f"Writing the status of deployment {dep.id}"):
            # PyGithub's create_status has no `log_url`; GitHub (and its fake) take
            # `target_url` as the log URL. auto_inactive off: a record must not mark the
            # environment's real deployments inactive.
            dep.create_status(
                state,
                target_url=self.log_url or NotSet,
                description=description[:DESCRIPTION_LIMIT],
                environment=environment,
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
                f"{attached.error} It is in the job summary"
                + (
                    f" and in {path}; `release-actions rollback records sync {path}` files "
                    "it under its final number once GitHub answers."
                    if path
                    else "."
                )
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
