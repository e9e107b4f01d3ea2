"""The release history as one document: deployments, their commits, rollbacks and blockers, within the API budget.

A GITHUB_TOKEN has 1,000 requests an hour, so the history is read where it is cheapest:

- **Release deployments** (``task: release``, integrations/release_history.py) carry the
  whole fact in their payload, so listing them (``per_page=100``, newest first, down to
  ``since``) is all they cost: pages, nothing per deployment. They are listed for every
  environment at once, because a release type deploys in its own GitHub environment
  (``production-hotfix``) and the filter takes one name; the same listing gives the
  staging window of the blockers.
- **Rollback records** (``task: rollback``, integrations/records.py) the same way, back to
  the first of January of ``since``'s year, so that their final numbers are the ones
  `rollback records` gives (a year's numbers follow from its first record on).
- **Commits** first reaching production in a deployment: ONE compare of the previous
  production deployment's commit with this one's (``base...head``, immutable, so cached
  for good). The oldest deployment in the range is compared with the last one before the
  range when the listing saw it; else its head commit alone is listed (one request for
  its date): what came before it is not known, and guessing would credit it with a
  history that earlier deployments shipped.
- **Blockers**: issues with the policy's ``blocker_label`` (``state=all``, ``since``,
  pages), pull requests left out.

The cache (a JSON file kept between runs with actions/cache) holds the deployments read,
the compares, and the ETag of each list's first page. A rerun asks each list with
``If-None-Match``: ``304`` (which GitHub does not count against the rate limit) means the
list is as it was; a changed first page is read only down to the first deployment already
known (deployments are never edited, and new ones come first). So a rerun over the same
period costs one request per list, and a new deployment its compare besides.

Every request sent is counted, a retried one each time it is sent, and the rate limit is
read from the last answer's headers (asking ``/rate_limit`` would cost a request).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.core.policy import Policy
from release_actions.errors import IntegrationError, ReleaseActionsError
from release_actions.integrations.release_history import RELEASE_TASK, rollback_summary

if TYPE_CHECKING:
    import github

CACHE_SCHEMA = 1
DEFAULT_CACHE = Path(".release-actions/metrics-cache.json")
PER_PAGE = 100
STAGING = "staging"
READ_PERMISSIONS_YAML = "permissions:\n  contents: read\n  deployments: read\n  issues: read"
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


@dataclass(frozen=True)
class Gathered:
    """The document, and what reading it cost."""

    document: dict[str, Any]
    requests: int
    """HTTP requests made to GitHub in this run (a retried request counts each time)."""
    rate_remaining: int | None
    rate_limit: int | None


# -- time ------------------------------------------------------------------------------------


def _time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _committed(commit: Mapping[str, Any]) -> str:
    """A commit's committer date (when it landed, after a rebase), as the document writes times."""
    text = str(commit["commit"]["committer"]["date"])
    when = _time(text)
    return _iso(when) if when is not None else text


_AGE = re.compile(r"^(?P<count>\d+)(?P<unit>[hdw])$")
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_window(text: str, tz: Any, now: datetime | None = None) -> datetime:
    """``--since`` as an age back from now (``365d``, ``12w``, ``48h``), or a date
    (midnight in the policy's time zone) or an ISO 8601 time."""
    from release_actions.integrations.records import parse_since

    m = _AGE.match(text.strip())
    if m is None:
        try:
            return parse_since(text.strip(), tz)
        except ReleaseActionsError:
            raise ReleaseActionsError(
                f"`--since {text}` is neither an age nor a date: use `365d`, `12w` or `48h`, "
                "YYYY-MM-DD, or an ISO 8601 time."
            ) from None
    return (now or datetime.now(UTC)) - int(m["count"]) * _UNIT[m["unit"]]


# -- requests --------------------------------------------------------------------------------


@dataclass
class _Counter:
    """Requests sent: one per GET, one more each time the client's retry sends it again."""

    sent: int = 0

    def add(self) -> None:
        self.sent += 1


class _Api:
    """GETs through PyGithub's requester, each one counted; ``If-None-Match`` when asked."""

    def __init__(self, gh: github.Github, repository: str, counter: _Counter) -> None:
        self.gh = gh
        self.repository = repository
        self.path = f"/repos/{repository}"
        self.counter = counter

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        action: str,
        etag: str | None = None,
        missing: bool = False,
    ) -> tuple[int, dict[str, Any], Any]:
        """``(status, headers, body)``: 200 with the body, 304 (body None) when ``etag`` is
        still current, 404 (body None) when ``missing`` allows it."""
        from github import GithubException, RateLimitExceededException

        from release_actions.integrations.github import github_errors

        headers = {"If-None-Match": etag} if etag else {}
        self.counter.add()
        with github_errors(action, repo=self.repository):
            try:
                answer, body = self.gh.requester.requestJsonAndCheck(
                    "GET", url, parameters=dict(params) if params else None, headers=headers
                )
            except RateLimitExceededException:
                raise
            except GithubException as exc:
                if missing and exc.status in (404, 422):
                    return exc.status, dict(exc.headers or {}), None
                if exc.status == 403:
                    raise IntegrationError(
                        f"{action} in {self.repository} failed: the token may not read it (403).",
                        hint="Give the job:\n" + READ_PERMISSIONS_YAML,
                    ) from exc
                raise
        # PyGithub hands a 304 over as an empty body; every list and compare has one.
        return (304 if body is None else 200), answer, body

    @property
    def rate(self) -> tuple[int | None, int | None]:
        remaining, limit = self.gh.requester.rate_limiting
        return (remaining if remaining >= 0 else None), (limit if limit >= 0 else None)


def _next(headers: Mapping[str, Any]) -> str | None:
    m = _NEXT.search(str(headers.get("link") or ""))
    return m[1] if m else None


# -- the cache -------------------------------------------------------------------------------


def _load_cache(session: Session, path: Path | None, repository: str) -> dict[str, Any]:
    fresh: dict[str, Any] = {
        "schema": CACHE_SCHEMA,
        "repository": repository,
        "lists": {},
        "issues": {},
        "compare": {},
        "commits": {},
    }
    if path is None or not path.exists():
        return fresh
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        session.runtime.annotate(
            "warning",
            f"The cache `{path}` is unreadable ({exc}); reading everything again.",
            title="Release history cache",
        )
        return fresh
    if (
        not isinstance(data, dict)
        or data.get("schema") != CACHE_SCHEMA
        or data.get("repository") != repository
    ):
        return fresh
    for key in ("lists", "issues", "compare", "commits"):
        if not isinstance(data.get(key), dict):
            data[key] = {}
    return data


def _save_cache(session: Session, path: Path, cache: Mapping[str, Any]) -> None:
    """Written then renamed: an interrupted run leaves the previous cache, never half of
    one. A cache that cannot be written costs the next run requests, not this run."""
    from release_actions.integrations.records import write_record_file

    try:
        write_record_file(path, cache)
    except OSError as exc:
        session.runtime.annotate(
            "warning",
            f"The cache `{path}` could not be written ({exc.strerror or exc}); the next run "
            "reads everything again.",
            title="Release history cache",
        )


# -- deployments -----------------------------------------------------------------------------


def _slim(row: Mapping[str, Any]) -> dict[str, Any]:
    payload = row.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload) if payload else {}
        except ValueError:
            payload = {}
    return {
        "id": int(row["id"]),
        "environment": str(row.get("environment") or ""),
        "created_at": str(row.get("created_at") or ""),
        "sha": row.get("sha"),
        "payload": payload if isinstance(payload, dict) else {},
    }


def _deployments(
    api: _Api, cache: dict[str, Any], task: str, need: datetime
) -> list[dict[str, Any]]:
    """Every deployment with ``task`` created since ``need`` (and those the cache held),
    reading only what the cache does not hold."""
    entry = cache["lists"].get(task) or {}
    items: dict[str, dict[str, Any]] = dict(entry.get("items") or {})
    floor = _time(entry.get("floor"))
    complete = bool(entry.get("complete"))
    # The cache holds every deployment from `floor` on: from there only new ones are read.
    covered = complete or (floor is not None and floor <= need)
    etag = entry.get("etag") if covered else None
    url: str | None = f"{api.path}/deployments"
    params: dict[str, Any] | None = {"task": task, "per_page": PER_PAGE}
    oldest: datetime | None = None
    first, reached_end = True, False
    while url is not None:
        status, headers, rows = api.get(
            url,
            params,
            action=f"Listing the `{task}` deployments",
            etag=etag if first else None,
        )
        if first:
            etag = headers.get("etag") or etag
            first = False
        if status == 304:
            break
        stop = False
        for row in rows or []:
            key = str(row["id"])
            created = _time(row.get("created_at"))
            if created is not None:
                oldest = created
            if key in items:
                if covered:
                    stop = True  # newest first: everything from here on is known
                    break
                continue
            items[key] = _slim(row)
        # The page that reaches past `need` also shows the deployment before the range.
        if stop or (oldest is not None and oldest < need):
            break
        url, params = _next(headers), None
        reached_end = url is None
    if not covered:
        floor, complete = oldest, reached_end
    cache["lists"][task] = {
        "etag": etag,
        "floor": _iso(floor) if floor else None,
        "complete": complete,
        "items": items,
    }
    return sorted(items.values(), key=lambda d: int(d["id"]))


# -- rollback records --------------------------------------------------------------------------


def _numbered_records(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The valid records among ``task: rollback`` deployments, each with its final id (as
    `rollback records` numbers them) and its environment, oldest first."""
    from release_actions.integrations.records import (
        assign_numbers,
        is_provisional,
        parse_id,
        payload_year,
    )

    entries: list[tuple[int, dict[str, Any]]] = []
    where: dict[int, str] = {}
    for dep in items:
        payload = dep["payload"]
        rid = str(payload.get("id", ""))
        if "annotates" in payload or payload_year(payload) is None:
            continue
        if not (parse_id(rid) or is_provisional(rid)):
            continue
        entries.append((int(dep["id"]), payload))
        where[int(dep["id"])] = str(payload.get("environment") or dep["environment"])
    numbers = assign_numbers(entries)
    out = []
    for dep_id, payload in sorted(entries, key=lambda e: e[0]):
        final = numbers.get(dep_id)
        if final is None:
            continue
        when = _time(payload.get("timestamp"))
        if when is None:
            continue
        out.append(
            {
                **payload,
                "id": final,
                "filed_as": payload.get("id"),
                "environment": where[dep_id],
                "at": when,
            }
        )
    return sorted(out, key=lambda r: r["at"])


# -- the document ----------------------------------------------------------------------------


@dataclass
class _Release:
    id: int
    environment: str
    payload: dict[str, Any]
    started: datetime
    finished: datetime | None

    @property
    def version(self) -> str:
        return str(self.payload.get("version") or "")

    @property
    def sha(self) -> str | None:
        sha = self.payload.get("sha")
        return str(sha) if sha else None


def _releases(items: Iterable[Mapping[str, Any]]) -> list[_Release]:
    out = []
    for dep in items:
        payload = dep["payload"]
        started = _time(payload.get("started_at")) or _time(dep["created_at"])
        if started is None or not payload.get("version"):
            continue
        out.append(
            _Release(
                int(dep["id"]),
                dep["environment"],
                payload,
                started,
                _time(payload.get("finished_at")),
            )
        )
    return sorted(out, key=lambda r: (r.started, r.id))


def _in_scope(release: _Release, environment: str, reporting: str) -> bool:
    """Whether a release counts for ``environment``: deployed in it, or of its stage, or,
    for the policy's reporting environment, any production deploy (a hotfix goes out in
    ``production-hotfix`` for its own approvals, and is a production deployment all the same)."""
    stage = release.payload.get("stage")
    return (
        release.environment == environment
        or stage == environment
        or (environment == reporting and stage == "production")
    )


def _link_records(
    releases: list[_Release], records: list[dict[str, Any]], environment: str
) -> dict[int, dict[str, Any]]:
    """Release deployment id -> its rollback record: the one its payload names, else the
    first record of the same version in its environment (or the reported one) after it
    started, given to the latest deployment of that version started before the record
    (a `monitor` watch's rollback comes after a release that ended `success`)."""
    linked: dict[int, dict[str, Any]] = {}
    used: set[str] = set()
    for rel in releases:
        named = rel.payload.get("record")
        if not named:
            continue
        for rec in records:
            if named in (rec["id"], rec.get("filed_as"), rec.get("provisional_id")):
                linked[rel.id] = rec
                used.add(str(rec["id"]))
                break
    for rec in records:
        if str(rec["id"]) in used or not rec.get("from_version"):
            continue
        candidates = [
            r
            for r in releases
            if r.version == rec["from_version"]
            and r.started <= rec["at"]
            and rec["environment"] in (r.environment, environment)
        ]
        if not candidates:
            continue
        owner = max(candidates, key=lambda r: (r.started, r.id))
        if owner.id not in linked:
            linked[owner.id] = rec
            used.add(str(rec["id"]))
    return linked


def _commits(
    api: _Api, cache: dict[str, Any], session: Session, base: str | None, head: str | None
) -> list[dict[str, str]]:
    """The commits first reaching production in ``head``: those of ``base...head``, or,
    with no base known, ``head`` alone."""
    if head is None:
        return []
    if base == head:
        return []
    if base is None:
        known = cache["commits"].get(head)
        if known is None:
            status, _, data = api.get(
                f"{api.path}/commits/{head}", action=f"Reading commit {head[:12]}", missing=True
            )
            if status != 200:
                session.runtime.annotate(
                    "warning",
                    f"Commit {head} is not in {api.repository} ({status}); its deployment "
                    "lists no commits.",
                    title="Release history",
                )
                return []
            known = cache["commits"][head] = _committed(data)
        return [{"sha": head, "committed_at": str(known)}]
    key = f"{base}...{head}"
    cached = cache["compare"].get(key)
    if cached is not None:
        return list(cached)
    out: list[dict[str, str]] = []
    url: str | None = f"{api.path}/compare/{key}"
    params: dict[str, Any] | None = {"per_page": PER_PAGE}
    while url is not None:
        status, headers, data = api.get(
            url, params, action=f"Comparing {base[:12]}...{head[:12]}", missing=True
        )
        if status != 200:
            # A commit that is gone (a force push): its commits are unknown, not none.
            session.runtime.annotate(
                "warning",
                f"GitHub cannot compare {key} ({status}); its commits are left out.",
                title="Release history",
            )
            return out
        out += [
            {"sha": str(c["sha"]), "committed_at": _committed(c)} for c in data.get("commits") or []
        ]
        url, params = _next(headers), None
    cache["compare"][key] = out
    return out


BLOCKER_LOOKBACK = timedelta(days=30)
"""How long before the period a blocker of one of its deployments may have been opened."""


def _blockers(
    api: _Api, cache: dict[str, Any], label: str, since: datetime
) -> list[dict[str, Any]]:
    """The issues labelled ``label`` (not pull requests) updated since ``since``'s day.

    Sorted by last update, so that any change to one of them changes the first page and
    its ETag; a cached list of more than one page is read again, since a change beyond
    the first page would not show there."""
    entry = cache["issues"].get(label) or {}
    day = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # The day, not the instant: reruns on one day send the same query.
    fits = entry.get("pages") == 1 and (_time(entry.get("since")) or day) <= day
    etag = entry.get("etag") if fits else None
    url: str | None = f"{api.path}/issues"
    params: dict[str, Any] | None = {
        "labels": label,
        "state": "all",
        "since": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sort": "updated",
        "direction": "desc",
        "per_page": PER_PAGE,
    }
    rows: list[dict[str, Any]] = []
    pages, first = 0, True
    while url is not None:
        status, headers, data = api.get(
            url, params, action=f"Listing the `{label}` issues", etag=etag if first else None
        )
        if first:
            etag = headers.get("etag") or None
            first = False
        if status == 304:
            return list(entry.get("rows") or [])
        pages += 1
        rows += [
            {"number": int(i["number"]), "created_at": str(i["created_at"])}
            for i in data or []
            if "pull_request" not in i
        ]
        url, params = _next(headers), None
    cache["issues"][label] = {"etag": etag, "since": _iso(day), "pages": pages, "rows": rows}
    return rows


def _blocker_version(
    opened: datetime, staging: list[_Release], production: list[_Release]
) -> str | None:
    """The release that was in staging when the issue was opened.

    With staging release deployments, the one deployed last before it was opened (its
    window lasts until the next staging deploy); else, or before the first of them, the
    next production deployment after it was opened (what was on its way there); None when
    none has gone out since.
    """
    before = [r for r in staging if r.started <= opened]
    if before:
        return before[-1].version
    after = [r for r in production if r.started >= opened]
    return after[0].version if after else None


def gather(
    session: Session,
    policy: Policy,
    *,
    since: datetime,
    until: datetime | None = None,
    environment: str | None = None,
    repository: str | None = None,
    cache: Path | None = None,
) -> Gathered:
    """The release history of ``environment`` (default: the policy's reporting one) from
    ``since`` to ``until`` (default: now) as the `metrics export` document."""
    from release_actions.integrations.github import client, resolve_token
    from release_actions.integrations.records import RECORD_TASK

    env = session.env
    repo_name = (repository or env.get("GITHUB_REPOSITORY") or "").strip()
    owner, _, name = repo_name.partition("/")
    if not owner or not name or "/" in name:
        raise ReleaseActionsError(
            f"`{repo_name}` is not a repository: pass `--repository OWNER/NAME` or set "
            "`GITHUB_REPOSITORY`."
            if repo_name
            else "No repository: pass `--repository OWNER/NAME` or set `GITHUB_REPOSITORY`.",
            hint="Inside GitHub Actions the runner sets GITHUB_REPOSITORY by itself.",
        )
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    until = until or datetime.now(UTC)
    reporting = policy.reporting
    wanted = environment or reporting.environment
    token = resolve_token(env)
    session.runtime.mask(token)
    counter = _Counter()
    api = _Api(client(env, token, on_retry=counter.add), repo_name, counter)
    store = _load_cache(session, cache, repo_name)
    try:
        release_items = _deployments(api, store, RELEASE_TASK, since)
        # A year's record numbers follow from its first record: read them from its start.
        year_start = datetime(since.year, 1, 1, tzinfo=UTC) - timedelta(days=1)
        record_items = _deployments(api, store, RECORD_TASK, min(since, year_start))
        everything = _releases(release_items)
        production = [r for r in everything if _in_scope(r, wanted, reporting.environment)]
        counted = {r.id for r in production}
        staging = [
            r
            for r in everything
            if r.id not in counted and STAGING in (r.environment, r.payload.get("stage"))
        ]
        records = _numbered_records(record_items)
        linked = _link_records(production, records, wanted)
        deployments = []
        previous: _Release | None = None
        for rel in production:
            if rel.started > until:
                break
            if rel.started < since:
                previous = rel if rel.sha else previous
                continue
            base = previous.sha if previous is not None else None
            commits = _commits(api, store, session, base, rel.sha)
            if rel.sha:
                previous = rel
            deployments.append(_document_entry(rel, commits, linked.get(rel.id)))
        blockers = []
        # A release's blockers were opened while it was in staging, days before it reached
        # production (a train stages on Thursday and ships on Tuesday): a deployment early
        # in the period has blockers from before it.
        lookback = since - BLOCKER_LOOKBACK
        listed = {d["version"] for d in deployments}
        issues = _blockers(api, store, reporting.blocker_label, lookback)
        for issue in sorted(issues, key=lambda i: (i["created_at"], i["number"])):
            opened = _time(issue["created_at"])
            if opened is None or not lookback <= opened <= until:
                continue
            version = _blocker_version(opened, staging, production)
            if opened < since and version not in listed:
                continue
            blockers.append(
                {"number": issue["number"], "opened_at": _iso(opened), "version": version}
            )
    finally:
        if cache is not None:
            _save_cache(session, cache, store)
    remaining, limit = api.rate
    document = {
        "generated_at": _iso(datetime.now(UTC)),
        "repository": repo_name,
        "environment": wanted,
        "since": _iso(since),
        "until": _iso(until),
        "deployments": deployments,
        "blockers": blockers,
    }
    return Gathered(document, counter.sent, remaining, limit)


def _document_entry(
    rel: _Release, commits: list[dict[str, str]], record: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One deployment of the document; a rollback record found for it makes it
    `rolled_back` whatever its own run said (a later watch rolled it back)."""
    payload = rel.payload
    status = str(payload.get("status") or "success")
    rollback: dict[str, Any] | None = None
    if record is not None:
        rollback = rollback_summary(record)
        status = "rolled_back"
    elif status == "rolled_back" and isinstance(payload.get("rollback"), dict):
        # The record never reached GitHub; the release kept its times.
        rollback = dict(payload["rollback"])
    return {
        "id": rel.id,
        "version": rel.version,
        "kind": payload.get("kind") or "regular",
        "sha": rel.sha,
        "started_at": _iso(rel.started),
        "finished_at": _iso(rel.finished) if rel.finished else None,
        "status": status,
        "commits": commits,
        "canary": payload.get("canary"),
        "rollback": rollback,
    }
