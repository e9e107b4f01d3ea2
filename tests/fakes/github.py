"""An HTTP fake of the GitHub REST API that the real PyGithub client talks to."""

from __future__ import annotations

import argparse
import base64
import contextlib
import difflib
import fnmatch
import hashlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from tests.fakes._http import FakeHandler

API_VERSION = "2022-11-28"
DOCS = "https://docs.github.com/rest"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_MAKE_LATEST = ("true", "false", "legacy")
# The categories GitHub gives a repository when Discussions are turned on.
DEFAULT_DISCUSSION_CATEGORIES = (
    "Announcements",
    "General",
    "Ideas",
    "Polls",
    "Q&A",
    "Show and tell",
)
# Where PyGithub sends the bytes: GHES's uploads path (github.com uses uploads.github.com).
UPLOADS_PREFIX = "/api/uploads"
_DEPLOYMENT_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
_REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")
_CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's id of the empty tree
_MODES = ("100644", "100755", "040000", "160000", "120000")
_UNSIGNED = {"verified": False, "reason": "unsigned", "signature": None, "payload": None}
# Who the fake says made everything: the identity behind a workflow's GITHUB_TOKEN.
_BOT_LOGIN, _BOT_ID = "github-actions[bot]", 41898282


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(value: datetime | str) -> str:
    """GitHub's `YYYY-MM-DDTHH:MM:SSZ` for an aware datetime (or such a string, checked)."""
    if isinstance(value, str):
        value = _parse_time(value, "date")
    if value.tzinfo is None:
        raise ValueError("a commit date needs a time zone")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 timestamp as GitHub's query parameters take it; a 422 when it is not one."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"Invalid value for `{name}`: {text}") from None
    # GitHub reads a timestamp without an offset as UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _node_id(kind: str, number: int) -> str:
    return kind + "_" + base64.b64encode(f"{kind}{number}".encode()).decode().rstrip("=")


_SEMVER = re.compile(
    r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def _semver_key(tag: str) -> tuple[Any, ...]:
    """SemVer 2.0.0 precedence as a sort key; tags that are not SemVer sort below all that are.

    The fake's own few lines, not the package's Version: a fake that borrowed the code
    under test could not catch its mistakes.
    """
    m = _SEMVER.match(tag)
    if m is None:
        return (0,)
    core = (int(m[1]), int(m[2]), int(m[3]))
    if m[4] is None:
        return (1, core, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in m[4].split("."))
    return (1, core, 0, ids)


def fake_sha(text: str) -> str:
    """A stable 40-hex SHA for a name, so seeded refs and check runs agree across processes."""
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _valid_ref(full: str) -> bool:
    """git check-ref-format's rules, in the fake's own few lines."""
    if full.endswith(("/", ".", ".lock")) or "//" in full or ".." in full or "@{" in full:
        return False
    if any(c in full for c in " ~^:?*[\\\x7f") or any(ord(c) < 32 for c in full):
        return False
    return all(part and not part.startswith(".") for part in full.split("/"))


class ApiError(Exception):
    """An answer in GitHub's error shape: ``message``, ``documentation_url``, ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        doc: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.doc = doc
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            data["errors"] = self.errors
        data["documentation_url"] = f"{DOCS}/{self.doc}" if self.doc else DOCS
        data["status"] = str(self.status)
        return data


def validation_failed(
    resource: str, code: str, field_name: str | None = None, **extra: Any
) -> ApiError:
    """422 "Validation Failed" with one entry in ``errors``, as GitHub reports a bad field."""
    doc = str(extra.pop("doc", ""))
    entry: dict[str, Any] = {"resource": resource, "code": code}
    if field_name is not None:
        entry["field"] = field_name
    entry.update(extra)
    return ApiError(422, "Validation Failed", errors=[entry], doc=doc)


@dataclass
class Request:
    """One parsed request as a handler sees it; ``repo`` is resolved for /repos/{owner}/{repo}."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    params: dict[str, str]
    repo: RepoState | None = None

    def int_param(self, name: str) -> int:
        return int(self.params[name])


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """A canned answer for the next ``times`` requests whose method and path match.

    ``path`` is an fnmatch pattern over the path without the query (``/repos/*/releases``).
    With ``status`` None the real handler answers (and changes state) and ``delay`` comes
    after it, which is how a request that succeeded but timed out on the client is made.
    ``action`` runs first, for races ("someone else created it meanwhile").
    """

    method: str
    path: str
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1
    action: Callable[[], None] | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method.upper() == method) and fnmatch.fnmatchcase(
            path, self.path
        )


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class RepoState:
    """Everything the fake holds for one repository, as plain JSON-able records."""

    id: int
    owner: str
    name: str
    default_branch: str = "main"
    private: bool = False
    refs: dict[str, str] = field(default_factory=dict)
    releases: list[dict[str, Any]] = field(default_factory=list)
    latest_release_id: int | None = None
    deployments: list[dict[str, Any]] = field(default_factory=list)
    deployment_statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: list[dict[str, Any]] = field(default_factory=list)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    # Names in ``refs`` that are tags; every other name there is a branch.
    tags: set[str] = field(default_factory=set)
    protected: set[str] = field(default_factory=set)
    # The git object store: blobs (text), trees (entries of one directory) and commits.
    # A SHA in ``refs`` with no commit here is a root commit with an empty tree.
    blobs: dict[str, str] = field(default_factory=dict)
    trees: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    discussion_categories: list[str] = field(
        default_factory=lambda: list(DEFAULT_DISCUSSION_CATEGORIES)
    )
    # Issues (pull requests are kept in ``pulls`` and share their numbers) and the
    # repository's labels by lower-case name (GitHub matches label names case-insensitively).
    issues: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def resolve(self, ref: str) -> str | None:
        """A ref (branch, tag, `refs/...`, SHA) to its SHA, or None when it names nothing."""
        short = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        if short in self.refs:
            return self.refs[short]
        if _SHA.match(ref):
            return ref
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "full_name": self.full_name,
            "default_branch": self.default_branch,
            "private": self.private,
            "refs": dict(self.refs),
            "releases": [dict(r) for r in self.releases],
            "latest_release_id": self.latest_release_id,
            "deployments": [dict(d) for d in self.deployments],
            "deployment_statuses": {str(k): list(v) for k, v in self.deployment_statuses.items()},
            "check_runs": [dict(c) for c in self.check_runs],
            "pulls": [dict(p) for p in self.pulls],
            "reviews": {str(k): list(v) for k, v in self.reviews.items()},
            "tags": sorted(self.tags),
            "protected": sorted(self.protected),
            "blobs": dict(self.blobs),
            "trees": {k: list(v) for k, v in self.trees.items()},
            "commits": {k: dict(v) for k, v in self.commits.items()},
            "environments": {k: dict(v) for k, v in self.environments.items()},
            "discussion_categories": list(self.discussion_categories),
            "issues": [dict(i) for i in self.issues],
            "labels": {k: dict(v) for k, v in self.labels.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepoState:
        owner, name = data["full_name"].split("/", 1)
        return cls(
            id=int(data["id"]),
            owner=owner,
            name=name,
            default_branch=data.get("default_branch", "main"),
            private=bool(data.get("private", False)),
            refs=dict(data.get("refs", {})),
            releases=list(data.get("releases", [])),
            latest_release_id=data.get("latest_release_id"),
            deployments=list(data.get("deployments", [])),
            deployment_statuses={
                int(k): list(v) for k, v in data.get("deployment_statuses", {}).items()
            },
            check_runs=list(data.get("check_runs", [])),
            pulls=list(data.get("pulls", [])),
            reviews={int(k): list(v) for k, v in data.get("reviews", {}).items()},
            tags=set(data.get("tags", [])),
            protected=set(data.get("protected", [])),
            blobs=dict(data.get("blobs", {})),
            trees={k: list(v) for k, v in data.get("trees", {}).items()},
            commits={k: dict(v) for k, v in data.get("commits", {}).items()},
            environments={k: dict(v) for k, v in data.get("environments", {}).items()},
            discussion_categories=list(
                data.get("discussion_categories", DEFAULT_DISCUSSION_CATEGORIES)
            ),
            issues=list(data.get("issues", [])),
            labels={k: dict(v) for k, v in data.get("labels", {}).items()},
        )


Handler = Callable[["GitHubFake", Request], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    # Needs the repository's Administration permission (environments and their policies).
    admin: bool = False
    # "uploads": served only under UPLOADS_PREFIX (release assets), as GitHub's uploads host.
    host: str = "api"


def _compile(template: str) -> re.Pattern[str]:
    """`/repos/{owner}/{repo}/releases/{id:int}` to a regex over the raw (still %-encoded) path.

    ``{name:path}`` takes the rest of the path, slashes included (branch names, file paths).
    """

    def part(m: re.Match[str]) -> str:
        name, _, kind = m.group(1).partition(":")
        if kind == "int":
            return f"(?P<{name}>[0-9]+)"
        return f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)"

    return re.compile("^" + re.sub(r"\{([^}]+)\}", part, template) + "$")


ROUTES: list[Route] = []


def route(
    method: str, template: str, *, admin: bool = False, host: str = "api"
) -> Callable[[Handler], Handler]:
    """Register a handler in the route table; first match wins, so list literals before `{id}`."""

    def register(fn: Handler) -> Handler:
        ROUTES.append(Route(method, template, _compile(template), fn, admin, host))
        return fn

    return register


def _bool_field(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ApiError(
            422,
            f"Invalid request.\n\nFor 'properties/{key}', {json.dumps(value)} is not a boolean.",
        )
    return value


def _str_field(body: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = body.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ApiError(
            422, f"Invalid request.\n\nFor 'properties/{key}', {json.dumps(value)} is not a string."
        )
    return value


def _json_body(req: Request) -> dict[str, Any]:
    if req.body is None:
        return {}
    if not isinstance(req.body, dict):
        raise ApiError(400, "Problems parsing JSON")
    return req.body


class GitHubFake:
    """GitHub's REST API (version 2022-11-28) from in-memory state tests seed, read and sabotage.

    Standard library only: a ``ThreadingHTTPServer`` in a background thread. In a test::

        with GitHubFake() as fake:                  # repository "octo/app", any token
            gh = Github(base_url=fake.url, auth=Auth.Token("t"))
            ...
            assert fake.releases[0]["tag_name"] == "v1.0.0"

    On its own (the e2e tests under act start it this way)::

        python -m tests.fakes.github --port 8123 --state-file /tmp/gh.json

    prints the API URL on its first line and serves until killed, dumping its state as
    JSON to ``--state-file`` after every request, so a test in another process can read
    it; ``POST /_fake/faults`` queues a fault from there.

    ``token`` set: only that token (or one of ``read_only_tokens``) is accepted, else any
    non-empty token is. ``read_only_tokens`` get 403 "Resource not accessible by
    integration" on writes, as a GITHUB_TOKEN without ``contents: write`` does.
    ``prefix="/api/v3"`` serves paths the way GitHub Enterprise Server does.

    ``admin_tokens`` set: only those tokens may write environments and their branch
    policies (the Administration permission); others get 403 "Resource not accessible by
    integration" with ``x-accepted-github-permissions: administration=write``, as a
    workflow's GITHUB_TOKEN does, whatever its ``permissions:``.

    Git: a small object store per repository (blobs of text, trees, commits with parents)
    that ``commit()`` seeds and the Git Data API writes; merges, compare and commit
    ``files`` are computed from it. Two sides changing one file differently from the
    merge base is a conflict (file-level, where git would try the lines).

    Release assets: each release's ``upload_url`` points at this server under
    ``/api/uploads`` (GitHub Enterprise Server's uploads path; github.com uses the host
    uploads.github.com), where ``POST .../releases/{id}/assets?name=&label=`` takes the raw
    bytes and answers the asset with its ``digest`` (``sha256:...``), or 422
    ``already_exists`` for a name the release has; the API host lists
    (``.../releases/{id}/assets``), reads and deletes (``.../releases/assets/{id}``) them.
    ``add_asset(state="starter")`` seeds what a failed (502) upload leaves behind.
    Contents: ``GET .../contents/{path}?ref=`` serves a file (base64, blob ``sha``; no
    directories), ``PUT`` commits one file on ``branch`` and needs the current ``sha`` to
    replace it (422 without, 409 "does not match" with another); an open pull request
    follows its head branch when a PUT or a ref update moves it.
    ``POST .../releases/generate-notes`` answers ``{name, body}``: the merged pull
    requests (those whose merge commit the previous tag does not hold) and the "Full
    Changelog" link. ``discussion_category_name`` must name one of the repository's
    ``discussion_categories`` (GitHub's defaults unless a test changes them), else 404
    "Discussion could not be created"; a draft gets no discussion.

    Simplifications, each deliberate: one identity (the Actions bot) authors everything;
    ``make_latest: legacy`` (and the fallback when the latest release goes away) picks
    the highest SemVer tag, then the newest; deployments neither merge the default
    branch (``auto_merge``) nor check ``required_contexts``; any 40-hex SHA is a commit
    (one that was never written is a root with an empty tree); a branch and a tag cannot
    share a name; renames show as a removal and an addition; the merges API always makes
    a merge commit; reviewers are not checked for access to the repository; asset names
    are stored as given (GitHub renames some characters, which the code under test
    refuses up front); generated notes list no "New Contributors"; an unknown
    ``previous_tag_name`` is a 422 (GitHub's exact answer is not documented).

    Conditional requests: every ``200`` answer to a GET carries a weak ``ETag`` (a hash of
    its body, so equal answers share it whatever the URL), and a GET whose
    ``If-None-Match`` names the current one gets ``304 Not Modified`` with no body, which
    does not count against the rate limit ("Making a conditional request and receiving a
    304 response does not count against your primary rate limit").
    ``add_deployment`` and ``add_issue(created_at=...)`` seed history as if written then.
    """

    def __init__(
        self,
        *,
        repos: tuple[str, ...] | list[str] = ("octo/app",),
        token: str | None = None,
        read_only_tokens: tuple[str, ...] | list[str] = (),
        admin_tokens: tuple[str, ...] | list[str] | None = None,
        prefix: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: Path | str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.prefix = prefix.rstrip("/")
        self.token = token
        self.read_only_tokens = set(read_only_tokens)
        self.admin_tokens = None if admin_tokens is None else set(admin_tokens)
        # Accounts that GET /users/{login} and /orgs/{org}/teams/{slug} know.
        self.users: dict[str, dict[str, Any]] = {}
        self.teams: dict[str, dict[str, Any]] = {}
        self.state_file = Path(state_file) if state_file else None
        self.repos: dict[str, RepoState] = {}
        self.requests: list[LoggedRequest] = []
        self.faults: list[Fault] = []
        self._lock = threading.RLock()
        self._ids = 1000
        self._rate_used = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for full_name in repos:
            self.add_repo(full_name)

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> GitHubFake:
        fake = self

        class _Handler(_RequestHandler):
            owner = fake

        server = ThreadingHTTPServer((self.host, self.port), _Handler)
        server.daemon_threads = True
        # A handler sleeping past the client's timeout must not hold up stop().
        server.block_on_close = False
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            # A short poll keeps stop() quick: it waits for the loop's next look.
            target=server.serve_forever,
            args=(0.05,),
            name="github-fake",
            daemon=True,
        )
        self._thread.start()
        self._dump()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GitHubFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL to give the client (GITHUB_API_URL)."""
        return self.root + self.prefix

    def api(self, path: str) -> str:
        return self.url + path

    # -- seeding and inspection --------------------------------------------------------

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def add_repo(self, full_name: str, *, default_branch: str = "main") -> RepoState:
        owner, _, name = full_name.partition("/")
        if not owner or not name:
            raise ValueError(f"repository must be OWNER/NAME, got {full_name!r}")
        with self._lock:
            repo = RepoState(self._next_id(), owner, name, default_branch=default_branch)
            repo.refs[default_branch] = fake_sha(f"{full_name}@{default_branch}")
            self.repos[full_name.lower()] = repo
            return repo

    def repo(self, full_name: str | None = None) -> RepoState:
        """A repository's state; the first one added when no name is given."""
        if full_name is None:
            return next(iter(self.repos.values()))
        return self.repos[full_name.lower()]

    @property
    def releases(self) -> list[dict[str, Any]]:
        """The first repository's releases as the API renders them, oldest first."""
        with self._lock:
            repo = self.repo()
            return [self._render_release(repo, r) for r in repo.releases]

    def release(self, tag: str, repo: str | None = None) -> dict[str, Any]:
        """The one release with this tag (drafts included); fails when there is not exactly one."""
        with self._lock:
            state = self.repo(repo)
            found = [r for r in state.releases if r["tag_name"] == tag]
            if len(found) != 1:
                raise LookupError(f"{len(found)} releases have tag {tag!r}")
            return self._render_release(state, found[0])

    def latest_tag(self, repo: str | None = None) -> str | None:
        with self._lock:
            state = self.repo(repo)
            rel = self._latest(state)
            return rel["tag_name"] if rel else None

    def add_release(
        self,
        tag: str,
        *,
        body: str | None = "",
        name: str | None = None,
        draft: bool = False,
        prerelease: bool = False,
        make_latest: str = "true",
        repo: str | None = None,
    ) -> dict[str, Any]:
        """Seed a release as if created through the API (same rules for the latest one)."""
        with self._lock:
            state = self.repo(repo)
            rel = self._create_release(
                state,
                {
                    "tag_name": tag,
                    "name": name,
                    "body": body,
                    "draft": draft,
                    "prerelease": prerelease,
                    "make_latest": make_latest,
                },
            )
            self._dump()
            return self._render_release(state, rel)

    def assets(self, tag: str, repo: str | None = None) -> list[dict[str, Any]]:
        """The assets of the release of ``tag`` as the API renders them, oldest first."""
        with self._lock:
            state = self.repo(repo)
            rel = next(r for r in state.releases if r["tag_name"] == tag)
            return [self._render_asset(state, rel, a) for a in rel.get("assets", [])]

    def asset_bytes(self, tag: str, name: str, repo: str | None = None) -> bytes:
        """The bytes uploaded as asset ``name`` of the release of ``tag``."""
        with self._lock:
            rel = next(r for r in self.repo(repo).releases if r["tag_name"] == tag)
            asset = next(a for a in rel.get("assets", []) if a["name"] == name)
            return base64.b64decode(asset["data"])

    def add_asset(
        self,
        tag: str,
        name: str,
        data: bytes = b"",
        *,
        state: str = "uploaded",
        digest: bool = True,
        content_type: str = "application/octet-stream",
        repo: str | None = None,
    ) -> dict[str, Any]:
        """Seed an asset; ``state="starter"`` is what a failed upload leaves (GitHub's 502),
        ``digest=False`` an asset from before GitHub reported digests."""
        with self._lock:
            rs = self.repo(repo)
            rel = next(r for r in rs.releases if r["tag_name"] == tag)
            now = _now()
            asset = {
                "id": self._next_id(),
                "name": name,
                "label": None,
                "state": state,
                "content_type": content_type,
                "size": len(data),
                "digest": "sha256:" + hashlib.sha256(data).hexdigest() if digest else None,
                "created_at": now,
                "updated_at": now,
                "data": base64.b64encode(data).decode("ascii"),
            }
            rel.setdefault("assets", []).append(asset)
            self._dump()
            return self._render_asset(rs, rel, asset)

    def set_ref(
        self, name: str, sha: str | None = None, *, tag: bool = False, repo: str | None = None
    ) -> str:
        """Point branch (or, with ``tag``, tag) ``name`` at ``sha``, a ref name or a SHA."""
        with self._lock:
            state = self.repo(repo)
            target = (state.resolve(sha) or sha) if sha else None
            state.refs[name] = target or fake_sha(f"{state.full_name}@{name}")
            if tag:
                state.tags.add(name)
            else:
                state.tags.discard(name)
            self._dump()
            return state.refs[name]

    def protect(self, branch: str, *, repo: str | None = None) -> None:
        """Mark a branch protected (what `protected_branches` environments admit)."""
        with self._lock:
            self.repo(repo).protected.add(branch)
            self._dump()

    def commit(
        self,
        branch: str,
        files: dict[str, str | None],
        *,
        message: str = "Change",
        base: str | None = None,
        author: str = "Octo Cat",
        date: datetime | str | None = None,
        repo: str | None = None,
    ) -> str:
        """Commit ``files`` (path to text; None deletes) on top of ``branch`` and move it.

        A branch that does not exist yet starts at ``base`` (default: the default branch).
        ``date`` (an aware datetime, or GitHub's `YYYY-MM-DDTHH:MM:SSZ`) is the author and
        committer date, for the listing's ``since`` and ``until``; default: now.
        """
        with self._lock:
            rs = self.repo(repo)
            if branch not in rs.refs:
                start = rs.resolve(base or rs.default_branch)
                if start is None:
                    raise ValueError(f"unknown base {base!r}")
                rs.refs[branch] = start
            parent = rs.refs[branch]
            flat = self._flat(rs, self._commit_record(rs, parent)["tree"])
            for path, text in files.items():
                if text is None:
                    flat.pop(path, None)
                else:
                    flat[path] = ("100644", "blob", self._store_blob(rs, text))
            person = {
                "name": author,
                "email": f"{author.lower().replace(' ', '.')}@example.com",
                "date": _now() if date is None else _timestamp(date),
            }
            sha = self._store_commit(rs, self._store_tree(rs, flat), [parent], message, person)
            rs.refs[branch] = sha
            self._dump()
            return sha

    def file_at(self, ref: str, path: str, *, repo: str | None = None) -> str | None:
        """The text of ``path`` at ``ref``, or None when it is not there."""
        with self._lock:
            rs = self.repo(repo)
            sha = rs.resolve(ref)
            if sha is None:
                raise ValueError(f"unknown ref {ref!r}")
            entry = self._flat(rs, self._commit_record(rs, sha)["tree"]).get(path)
            return rs.blobs.get(entry[2]) if entry else None

    def log(self, ref: str, *, repo: str | None = None) -> list[dict[str, Any]]:
        """The commits reachable from ``ref``, newest first, as stored records."""
        with self._lock:
            rs = self.repo(repo)
            sha = rs.resolve(ref)
            if sha is None:
                raise ValueError(f"unknown ref {ref!r}")
            order = self._topo(rs, self._ancestors(rs, sha), sha)
            return [dict(self._commit_record(rs, c)) for c in reversed(order)]

    def add_user(self, login: str) -> dict[str, Any]:
        """A user that GET /users/{login} finds (and environment reviewers may name)."""
        with self._lock:
            self.users[login.lower()] = {"login": login, "id": self._user(login)["id"]}
            self._dump()
            return self._user(login)

    def add_team(
        self, org: str, slug: str, *, name: str | None = None, members: list[str] | None = None
    ) -> dict[str, Any]:
        """A team that GET /orgs/{org}/teams/{slug} finds, with its active ``members``."""
        with self._lock:
            team = {
                "id": self._next_id(),
                "org": org,
                "slug": slug,
                "name": name or slug,
                "members": [m.lower() for m in members or []],
            }
            self.teams[f"{org.lower()}/{slug}"] = team
            self._dump()
            return self._render_team(team)

    def environment(self, name: str, *, repo: str | None = None) -> dict[str, Any]:
        """An environment as GET /repos/{o}/{r}/environments/{name} renders it."""
        with self._lock:
            rs = self.repo(repo)
            return self._render_environment(rs, rs.environments[name])

    def branch_policies(self, name: str, *, repo: str | None = None) -> list[dict[str, str]]:
        """An environment's deployment branch policies as ``{"name", "type"}``."""
        with self._lock:
            env = self.repo(repo).environments[name]
            return [{"name": p["name"], "type": p["type"]} for p in env["policies"]]

    def writes(self) -> list[LoggedRequest]:
        """The requests that could have changed something (not GET), in order."""
        with self._lock:
            return [q for q in self.requests if q.method not in ("GET", "HEAD")]

    def add_check_run(
        self,
        ref: str,
        name: str,
        *,
        status: str = "completed",
        conclusion: str | None = "success",
        repo: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            state = self.repo(repo)
            sha = state.resolve(ref)
            if sha is None:
                raise ValueError(f"unknown ref {ref!r}")
            run = {
                "id": self._next_id(),
                "head_sha": sha,
                "name": name,
                "status": status,
                "conclusion": conclusion if status == "completed" else None,
                "started_at": _now(),
                "completed_at": _now() if status == "completed" else None,
            }
            state.check_runs.append(run)
            self._dump()
            return dict(run)

    def add_pull(
        self,
        head: str,
        *,
        base: str | None = None,
        title: str = "Change",
        body: str | None = None,
        state: str = "open",
        merged: bool = False,
        commits: list[str] | None = None,
        user: str = "octocat",
        repo: str | None = None,
        labels: list[str] | None = None,
    ) -> dict[str, Any]:
        """Seed a pull request; the head branch is created when it does not exist yet."""
        with self._lock:
            rs = self.repo(repo)
            base = base or rs.default_branch
            if head not in rs.refs:
                rs.refs[head] = fake_sha(f"{rs.full_name}@{head}")
            pull = self._new_pull(rs, head, base, title, body, draft=False, user=user)
            if merged:
                pull.update(
                    state="closed",
                    merged=True,
                    merged_at=_now(),
                    closed_at=_now(),
                    merge_commit_sha=fake_sha(f"merge-{pull['number']}"),
                )
            elif state == "closed":
                pull.update(state="closed", closed_at=_now())
            pull["commits"] = [*(commits or []), pull["head_sha"]]
            if labels:
                pull["labels"] = self._label_names(rs, labels, "pulls/pulls")
            self._dump()
            return self._render_pull(rs, pull)

    def add_review(
        self,
        number: int,
        state: str = "APPROVED",
        *,
        user: str = "reviewer",
        body: str = "",
        repo: str | None = None,
    ) -> dict[str, Any]:
        if state not in _REVIEW_STATES:
            raise ValueError(f"review state must be one of {_REVIEW_STATES}")
        with self._lock:
            rs = self.repo(repo)
            pull = self._pull(rs, number)
            review = {
                "id": self._next_id(),
                "user": user,
                "body": body,
                "state": state,
                "commit_id": pull["head_sha"],
                "submitted_at": _now(),
            }
            rs.reviews.setdefault(number, []).append(review)
            self._dump()
            return self._render_review(rs, number, review)

    def _next_number(self, repo: RepoState) -> int:
        """The next issue or pull request number: the two share one sequence, as on GitHub."""
        used = [p["number"] for p in repo.pulls] + [i["number"] for i in repo.issues]
        return 1 + max(used, default=0)

    def add_label(
        self,
        name: str,
        *,
        color: str = "ededed",
        description: str | None = None,
        repo: str | None = None,
    ) -> dict[str, Any]:
        """Seed a label as if created through the API."""
        with self._lock:
            rs = self.repo(repo)
            label = self._new_label(rs, name, color, description)
            self._dump()
            return self._render_label(rs, label)

    def add_issue(
        self,
        title: str,
        *,
        body: str | None = None,
        labels: tuple[str, ...] | list[str] = (),
        state: str = "open",
        user: str = "octocat",
        repo: str | None = None,
        created_at: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Seed an issue; labels it names that do not exist are created, as GitHub does.

        ``created_at`` back-dates it (and its last update, and its closing if closed)."""
        with self._lock:
            rs = self.repo(repo)
            issue = self._new_issue(rs, title, body, list(labels), user=user)
            if created_at is not None:
                when = _timestamp(created_at)
                issue.update(created_at=when, updated_at=when)
            if state == "closed":
                closed = issue["created_at"] if created_at is not None else _now()
                issue.update(state="closed", state_reason="completed", closed_at=closed)
            self._dump()
            return self._render_issue(rs, issue)

    def add_deployment(
        self,
        ref: str,
        *,
        environment: str = "production",
        task: str = "deploy",
        payload: dict[str, Any] | None = None,
        description: str = "",
        created_at: datetime | str | None = None,
        statuses: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
        repo: str | None = None,
    ) -> dict[str, Any]:
        """Seed a deployment (and its ``(state, description)`` statuses) as if created
        through the API at ``created_at`` (an aware datetime or GitHub's text; default now)."""
        with self._lock:
            rs = self.repo(repo)
            sha = rs.resolve(ref)
            if sha is None:
                raise ValueError(f"unknown ref {ref!r}")
            when = _now() if created_at is None else _timestamp(created_at)
            dep_id = self._next_id()
            dep = {
                "id": dep_id,
                "sha": sha,
                "ref": ref,
                "task": task,
                "payload": dict(payload or {}),
                "original_environment": environment,
                "environment": environment,
                "description": description,
                "created_at": when,
                "updated_at": when,
                "transient_environment": False,
                "production_environment": environment == "production",
            }
            rs.deployments.append(dep)
            rs.deployment_statuses[dep_id] = [
                {
                    "id": self._next_id(),
                    "state": state,
                    "description": text,
                    "environment": environment,
                    "target_url": "",
                    "log_url": "",
                    "environment_url": "",
                    "created_at": when,
                }
                for state, text in statuses
            ]
            self._dump()
            return self._render_deployment(rs, dep)

    def issues(self, *, repo: str | None = None) -> list[dict[str, Any]]:
        """Every issue (pull requests left out) as the API renders it, oldest first."""
        with self._lock:
            rs = self.repo(repo)
            return [self._render_issue(rs, i) for i in rs.issues]

    # -- fault injection -------------------------------------------------------------

    def inject(
        self,
        method: str,
        path: str,
        *,
        status: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int = 1,
        action: Callable[[], None] | None = None,
    ) -> Fault:
        """Queue a fault for the next ``times`` matching requests (see :class:`Fault`).

        ``path`` excludes the API prefix; a bare status gets GitHub's error body for it.
        """
        if status is not None and body is None:
            body = ApiError(status, _REASONS.get(status, "Error")).body()
        fault = Fault(method, path, status, body, dict(headers or {}), delay, times, action)
        with self._lock:
            self.faults.append(fault)
        return fault

    def rate_limit(
        self,
        method: str = "*",
        path: str = "*",
        *,
        retry_after: int | None = 1,
        status: int = 429,
        primary: bool = False,
        times: int = 1,
    ) -> Fault:
        """Queue rate-limit answers: secondary (Retry-After) or primary (remaining 0, reset)."""
        reset = int(time.time()) + (retry_after or 60)
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0" if primary else "4000",
            "x-ratelimit-used": "5000" if primary else "1000",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "core",
        }
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        message = (
            "API rate limit exceeded for installation ID 1."
            if primary
            else "You have exceeded a secondary rate limit. Please wait a few minutes before "
            "you try again."
        )
        body = ApiError(
            status, message, doc="using-the-rest-api/rate-limits-for-the-rest-api"
        ).body()
        return self.inject(method, path, status=status, body=body, headers=headers, times=times)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path):
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # -- state file --------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "url": self.url,
                "repos": {r.full_name: r.to_json() for r in self.repos.values()},
                "latest": {r.full_name: self.latest_tag(r.full_name) for r in self.repos.values()},
                "requests": [
                    {"method": q.method, "path": q.path, "query": q.query, "status": q.status}
                    for q in self.requests
                ],
                "users": dict(self.users),
                "teams": dict(self.teams),
                "next_id": self._ids,
            }

    def load_state(self, data: dict[str, Any]) -> None:
        """Replace the repositories with those of a state dump (``--seed``)."""
        with self._lock:
            self.repos = {
                r["full_name"].lower(): RepoState.from_json(r) for r in data["repos"].values()
            }
            self.users = dict(data.get("users", {}))
            self.teams = dict(data.get("teams", {}))
            self._ids = max(self._ids, int(data.get("next_id", 0)))

    def _dump(self) -> None:
        if self.state_file is None:
            return
        with self._lock:
            text = json.dumps(self.state(), indent=2, ensure_ascii=False)
            folder = self.state_file.parent
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{self.state_file.name}.")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            # A reader in another process sees the old file or the new one, never half.
            os.replace(tmp, self.state_file)

    # -- dispatch ----------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes) -> Reply:
        """Answer one request: faults first, then authentication, then the route table."""
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path
        if path.startswith("/_fake/"):
            return self._admin(method, path, raw_body)
        # Uploads keep their own path (faults and the log see /api/uploads/...); the body
        # is the asset's raw bytes, not JSON.
        upload = path.startswith(UPLOADS_PREFIX + "/")
        if self.prefix and not upload:
            if not (path == self.prefix or path.startswith(self.prefix + "/")):
                return self._error(ApiError(404, "Not Found"))
            path = path[len(self.prefix) :] or "/"
        body: Any = None
        body_error: ApiError | None = None
        if upload:
            body = raw_body
        elif raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body_error = ApiError(400, "Problems parsing JSON")
        fault = self._take_fault(method, path)
        if fault is not None and fault.action is not None:
            fault.action()
        if fault is not None and fault.status is not None:
            if fault.delay:
                time.sleep(fault.delay)
            reply = Reply(fault.status, fault.body, dict(fault.headers))
        else:
            try:
                if body_error is not None:
                    raise body_error
                reply = self._dispatch(
                    method,
                    path.removeprefix(UPLOADS_PREFIX) if upload else path,
                    query,
                    headers,
                    body,
                    host="uploads" if upload else "api",
                )
            except ApiError as exc:
                reply = self._error(exc)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if method == "GET" and reply.status == 200 and reply.body is not None:
                reply = self._conditional(reply, headers.get("if-none-match", ""))
        with self._lock:
            self.requests.append(LoggedRequest(method, path, query, headers, body, reply.status))
            if reply.status != 304:  # GitHub does not count a 304 against the rate limit
                self._rate_used += 1
            self._dump()
        reply.headers = {**self._common_headers(), **reply.headers}
        return reply

    @staticmethod
    def _conditional(reply: Reply, if_none_match: str) -> Reply:
        """The answer with its weak ETag, or ``304`` with no body when the client has it."""
        text = json.dumps(reply.body, ensure_ascii=False, sort_keys=True)
        etag = f'W/"{hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]}"'
        headers = {**reply.headers, "etag": etag}
        # Weak comparison (RFC 9110 §13.1.2): the W/ prefix does not matter; `*` matches any.
        wanted = {t.strip().removeprefix("W/") for t in if_none_match.split(",") if t.strip()}
        if "*" in wanted or etag.removeprefix("W/") in wanted:
            return Reply(304, None, headers)
        return Reply(reply.status, reply.body, headers)

    def _common_headers(self) -> dict[str, str]:
        return {
            "x-github-api-version-selected": API_VERSION,
            "x-github-request-id": f"FAKE:{self._rate_used:08X}",
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(max(0, 5000 - self._rate_used)),
            "x-ratelimit-used": str(self._rate_used),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }

    def _error(self, exc: ApiError) -> Reply:
        return Reply(exc.status, exc.body(), dict(exc.headers))

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        *,
        host: str = "api",
    ) -> Reply:
        token = self._authenticate(headers)
        m = re.match(r"^/repositories/([0-9]+)(/.*)?$", path)
        if m:
            # GitHub's own Link headers point at /repositories/{id}/...; serve them alike.
            by_id = next((r for r in self.repos.values() if r.id == int(m[1])), None)
            if by_id is None:
                raise ApiError(404, "Not Found")
            path = f"/repos/{by_id.full_name}{m[2] or ''}"
        for r in ROUTES:
            match = r.pattern.match(path) if r.method == method and r.host == host else None
            if match is None:
                continue
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            req = Request(method, path, query, headers, body, params)
            if "owner" in params and "repo" in params:
                with self._lock:
                    found = self.repos.get(f"{params['owner']}/{params['repo']}".lower())
                if found is None:
                    raise ApiError(404, "Not Found", doc="repos/repos#get-a-repository")
                req.repo = found
                if method != "GET" and token in self.read_only_tokens:
                    raise ApiError(403, "Resource not accessible by integration")
                if r.admin and self.admin_tokens is not None and token not in self.admin_tokens:
                    raise ApiError(
                        403,
                        "Resource not accessible by integration",
                        headers={"x-accepted-github-permissions": "administration=write"},
                    )
            with self._lock:
                return r.handler(self, req)
        raise ApiError(404, "Not Found")

    def _authenticate(self, headers: dict[str, str]) -> str:
        value = headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "token") or not token:
            raise ApiError(401, "Requires authentication")
        if self.token is not None and token != self.token and token not in self.read_only_tokens:
            raise ApiError(401, "Bad credentials")
        return token

    def _admin(self, method: str, path: str, raw_body: bytes) -> Reply:
        """A side door for tests in other processes: read state, queue faults."""
        if method == "GET" and path == "/_fake/state":
            return Reply(200, self.state())
        if method == "POST" and path == "/_fake/faults":
            spec = json.loads(raw_body or b"{}")
            fault = self.inject(
                spec.get("method", "*"),
                spec.get("path", "*"),
                status=spec.get("status"),
                body=spec.get("body"),
                headers=spec.get("headers"),
                delay=float(spec.get("delay", 0.0)),
                times=int(spec.get("times", 1)),
            )
            return Reply(201, {"method": fault.method, "path": fault.path, "times": fault.times})
        return Reply(404, ApiError(404, "Not Found").body())

    # -- pagination --------------------------------------------------------------------

    def _paginate(self, req: Request, items: list[Any], key: str | None = None) -> Reply:
        """One page of ``items`` with a Link header on this fake's own host and port."""
        try:
            per_page = int(req.query.get("per_page", "30"))
            page = int(req.query.get("page", "1"))
        except ValueError:
            raise ApiError(400, "Invalid value for a pagination parameter") from None
        per_page = max(1, min(per_page, 100))
        page = max(1, page)
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def link(n: int, rel: str) -> str:
            q = {**req.query, "per_page": str(per_page), "page": str(n)}
            return f'<{self.api(req.path)}?{urlencode(q)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"link": ", ".join(links)} if links else {}
        body: Any = chunk if key is None else {"total_count": len(items), key: chunk}
        return Reply(200, body, headers)

    # -- rendering ---------------------------------------------------------------------

    def _user(self, login: str | None = None) -> dict[str, Any]:
        if login is None:
            name, number, kind = _BOT_LOGIN, _BOT_ID, "Bot"
        else:
            name, number, kind = login, 1 + int(fake_sha(login)[:6], 16), "User"
        return {
            "login": name,
            "id": number,
            "node_id": _node_id("U", number),
            "avatar_url": f"{self.root}/avatars/{quote(name)}",
            "gravatar_id": "",
            "url": self.api(f"/users/{quote(name)}"),
            "html_url": f"{self.root}/{quote(name)}",
            "type": kind,
            "site_admin": False,
        }

    def _render_repo(self, repo: RepoState) -> dict[str, Any]:
        base = self.api(f"/repos/{repo.full_name}")
        data: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": {**self._user(repo.owner), "type": "Organization"},
            "html_url": f"{self.root}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": base,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": _now(),
            "pushed_at": _now(),
            "default_branch": repo.default_branch,
            "visibility": "private" if repo.private else "public",
            "archived": False,
            "disabled": False,
            "permissions": {
                "admin": False,
                "maintain": False,
                "push": True,
                "triage": True,
                "pull": True,
            },
        }
        for name, suffix in (
            ("releases_url", "/releases{/id}"),
            ("deployments_url", "/deployments"),
            ("pulls_url", "/pulls{/number}"),
            ("commits_url", "/commits{/sha}"),
            ("tags_url", "/tags"),
            ("branches_url", "/branches{/branch}"),
            ("git_refs_url", "/git/refs{/sha}"),
            ("issues_url", "/issues{/number}"),
            ("statuses_url", "/statuses/{sha}"),
        ):
            data[name] = base + suffix
        return data

    def _render_release(self, repo: RepoState, rel: dict[str, Any]) -> dict[str, Any]:
        api = self.api(f"/repos/{repo.full_name}/releases/{rel['id']}")
        tag = rel["tag_name"]
        shown = f"untagged-{fake_sha(str(rel['id']))[:20]}" if rel["draft"] else quote(tag, safe="")
        return {
            "url": api,
            "assets_url": f"{api}/assets",
            "upload_url": f"{self.root}/api/uploads/repos/{repo.full_name}/releases/{rel['id']}/assets{{?name,label}}",
            "html_url": f"{self.root}/{repo.full_name}/releases/tag/{shown}",
            "id": rel["id"],
            "author": self._user(),
            "node_id": _node_id("RE", rel["id"]),
            "tag_name": tag,
            "target_commitish": rel["target_commitish"],
            "name": rel["name"],
            "draft": rel["draft"],
            "immutable": False,
            "prerelease": rel["prerelease"],
            "created_at": rel["created_at"],
            "updated_at": rel["updated_at"],
            "published_at": rel["published_at"],
            "assets": [self._render_asset(repo, rel, a) for a in rel.get("assets", [])],
            "tarball_url": self.api(f"/repos/{repo.full_name}/tarball/{quote(tag, safe='')}"),
            "zipball_url": self.api(f"/repos/{repo.full_name}/zipball/{quote(tag, safe='')}"),
            "body": rel["body"],
            # GitHub sends it only for a release with a discussion.
            **({"discussion_url": rel["discussion_url"]} if rel.get("discussion_url") else {}),
        }

    def _render_asset(
        self, repo: RepoState, rel: dict[str, Any], asset: dict[str, Any]
    ) -> dict[str, Any]:
        shown = (
            f"untagged-{fake_sha(str(rel['id']))[:20]}"
            if rel["draft"]
            else quote(rel["tag_name"], safe="")
        )
        return {
            "url": self.api(f"/repos/{repo.full_name}/releases/assets/{asset['id']}"),
            "browser_download_url": (
                f"{self.root}/{repo.full_name}/releases/download/{shown}/{quote(asset['name'])}"
            ),
            "id": asset["id"],
            "node_id": _node_id("RA", asset["id"]),
            "name": asset["name"],
            "label": asset["label"],
            "state": asset["state"],
            "content_type": asset["content_type"],
            "size": asset["size"],
            "digest": asset["digest"],
            "download_count": 0,
            "created_at": asset["created_at"],
            "updated_at": asset["updated_at"],
            "uploader": self._user(),
        }

    def _render_deployment(self, repo: RepoState, dep: dict[str, Any]) -> dict[str, Any]:
        api = self.api(f"/repos/{repo.full_name}/deployments/{dep['id']}")
        return {
            "url": api,
            "id": dep["id"],
            "node_id": _node_id("DE", dep["id"]),
            "sha": dep["sha"],
            "ref": dep["ref"],
            "task": dep["task"],
            "payload": dep["payload"],
            "original_environment": dep["original_environment"],
            "environment": dep["environment"],
            "description": dep["description"],
            "creator": self._user(),
            "created_at": dep["created_at"],
            "updated_at": dep["updated_at"],
            "statuses_url": f"{api}/statuses",
            "repository_url": self.api(f"/repos/{repo.full_name}"),
            "transient_environment": dep["transient_environment"],
            "production_environment": dep["production_environment"],
            "performed_via_github_app": None,
        }

    def _render_status(self, repo: RepoState, dep_id: int, st: dict[str, Any]) -> dict[str, Any]:
        dep_url = self.api(f"/repos/{repo.full_name}/deployments/{dep_id}")
        return {
            "url": f"{dep_url}/statuses/{st['id']}",
            "id": st["id"],
            "node_id": _node_id("DES", st["id"]),
            "state": st["state"],
            "creator": self._user(),
            "description": st["description"],
            "environment": st["environment"],
            "target_url": st["target_url"],
            "created_at": st["created_at"],
            "updated_at": st["created_at"],
            "deployment_url": dep_url,
            "repository_url": self.api(f"/repos/{repo.full_name}"),
            "environment_url": st["environment_url"],
            "log_url": st["log_url"],
            "performed_via_github_app": None,
        }

    def _render_check_run(self, repo: RepoState, run: dict[str, Any]) -> dict[str, Any]:
        api = self.api(f"/repos/{repo.full_name}/check-runs/{run['id']}")
        return {
            "id": run["id"],
            "head_sha": run["head_sha"],
            "node_id": _node_id("CR", run["id"]),
            "external_id": "",
            "url": api,
            "html_url": f"{self.root}/{repo.full_name}/runs/{run['id']}",
            "details_url": f"{self.root}/{repo.full_name}/runs/{run['id']}",
            "status": run["status"],
            "conclusion": run["conclusion"],
            "started_at": run["started_at"],
            "completed_at": run["completed_at"],
            "output": {
                "title": None,
                "summary": None,
                "text": None,
                "annotations_count": 0,
                "annotations_url": f"{api}/annotations",
            },
            "name": run["name"],
            "check_suite": {"id": run["id"] + 500000},
            "app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"},
            "pull_requests": [],
        }

    def _render_pull(self, repo: RepoState, pull: dict[str, Any]) -> dict[str, Any]:
        n = pull["number"]
        api = self.api(f"/repos/{repo.full_name}/pulls/{n}")
        html = f"{self.root}/{repo.full_name}/pull/{n}"
        repo_json = self._render_repo(repo)

        def side(ref: str, sha: str) -> dict[str, Any]:
            return {
                "label": f"{repo.owner}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": repo_json["owner"],
                "repo": repo_json,
            }

        return {
            "url": api,
            "id": pull["id"],
            "node_id": _node_id("PR", pull["id"]),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": self.api(f"/repos/{repo.full_name}/issues/{n}"),
            "commits_url": f"{api}/commits",
            "review_comments_url": f"{api}/comments",
            "comments_url": self.api(f"/repos/{repo.full_name}/issues/{n}/comments"),
            "statuses_url": self.api(f"/repos/{repo.full_name}/statuses/{pull['head_sha']}"),
            "number": n,
            "state": pull["state"],
            "locked": False,
            "title": pull["title"],
            "user": self._user(pull["user"]),
            "body": pull["body"],
            "labels": [
                self._render_label(repo, repo.labels[x.lower()]) for x in pull.get("labels", [])
            ],
            "milestone": None,
            "created_at": pull["created_at"],
            "updated_at": pull["updated_at"],
            "closed_at": pull["closed_at"],
            "merged_at": pull["merged_at"],
            "merge_commit_sha": pull["merge_commit_sha"],
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": side(pull["head_ref"], pull["head_sha"]),
            "base": side(pull["base_ref"], pull["base_sha"]),
            "author_association": "MEMBER",
            "auto_merge": None,
            "draft": pull["draft"],
            "merged": pull["merged"],
            "mergeable": None,
            "mergeable_state": "unknown",
            "comments": 0,
            "review_comments": 0,
            "maintainer_can_modify": pull["maintainer_can_modify"],
            "commits": len(pull["commits"]),
            "additions": 0,
            "deletions": 0,
            "changed_files": 0,
        }

    def _render_review(self, repo: RepoState, number: int, rev: dict[str, Any]) -> dict[str, Any]:
        pull_url = self.api(f"/repos/{repo.full_name}/pulls/{number}")
        html = f"{self.root}/{repo.full_name}/pull/{number}#pullrequestreview-{rev['id']}"
        return {
            "id": rev["id"],
            "node_id": _node_id("PRR", rev["id"]),
            "user": self._user(rev["user"]),
            "body": rev["body"],
            "state": rev["state"],
            "html_url": html,
            "pull_request_url": pull_url,
            "author_association": "MEMBER",
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
            "submitted_at": rev["submitted_at"],
            "commit_id": rev["commit_id"],
        }

    # -- release rules -----------------------------------------------------------------

    @staticmethod
    def _eligible(rel: dict[str, Any]) -> bool:
        return not rel["draft"] and not rel["prerelease"]

    def _latest(self, repo: RepoState) -> dict[str, Any] | None:
        rel = next((r for r in repo.releases if r["id"] == repo.latest_release_id), None)
        return rel if rel is not None and self._eligible(rel) else None

    def _legacy_latest(self, repo: RepoState, exclude: int | None = None) -> int | None:
        """`legacy`: "based on the release creation date and higher semantic version"."""
        candidates = [r for r in repo.releases if self._eligible(r) and r["id"] != exclude]
        if not candidates:
            return None
        best = max(candidates, key=lambda r: (_semver_key(r["tag_name"]), r["created_at"], r["id"]))
        return int(best["id"])

    def _apply_make_latest(self, repo: RepoState, rel: dict[str, Any], make_latest: str) -> None:
        """GitHub's rule: drafts and pre-releases are never latest; `false` leaves it be."""
        if make_latest == "legacy":
            repo.latest_release_id = self._legacy_latest(repo)
        elif make_latest == "true" and self._eligible(rel):
            repo.latest_release_id = rel["id"]
        elif make_latest == "false" and repo.latest_release_id == rel["id"]:
            repo.latest_release_id = self._legacy_latest(repo, exclude=rel["id"])
        if repo.latest_release_id is not None and self._latest(repo) is None:
            # The latest one was deleted, drafted or made a pre-release: fall back.
            repo.latest_release_id = self._legacy_latest(repo)

    def _check_tag_free(self, repo: RepoState, tag: str, own_id: int | None = None) -> None:
        # Drafts have no git tag yet, so they do not take a tag: two drafts may share one
        # (which is how a careless re-run ends up with duplicates), a published one may not.
        for other in repo.releases:
            if other["tag_name"] == tag and not other["draft"] and other["id"] != own_id:
                raise validation_failed(
                    "Release",
                    "already_exists",
                    "tag_name",
                    doc="releases/releases#create-a-release",
                )

    def _create_release(self, repo: RepoState, body: dict[str, Any]) -> dict[str, Any]:
        tag = _str_field(body, "tag_name")
        if not tag:
            raise validation_failed("Release", "missing_field", "tag_name")
        draft = _bool_field(body, "draft", False)
        prerelease = _bool_field(body, "prerelease", False)
        make_latest = _str_field(body, "make_latest", "true")
        if make_latest not in _MAKE_LATEST:
            raise ApiError(
                422,
                f"Invalid request.\n\nFor 'properties/make_latest', {json.dumps(make_latest)} "
                'is not one of ["true", "false", "legacy"].',
            )
        self._check_tag_free(repo, tag)
        category = self._discussion_category(repo, body)
        text = _str_field(body, "body")
        if _bool_field(body, "generate_release_notes", False):
            notes = f"**Full Changelog**: {self.root}/{repo.full_name}/commits/{tag}"
            text = f"{text}\n\n{notes}" if text else notes
        now = _now()
        target = _str_field(body, "target_commitish") or repo.default_branch
        rel = {
            "id": self._next_id(),
            "tag_name": tag,
            "target_commitish": target,
            "name": _str_field(body, "name"),
            "body": text,
            "draft": draft,
            "prerelease": prerelease,
            "created_at": now,
            "updated_at": now,
            "published_at": None if draft else now,
            "assets": [],
            "discussion_url": None,
        }
        self._open_discussion(repo, rel, category)
        if not draft and tag not in repo.refs:
            # Publishing a release creates its tag at target_commitish.
            repo.refs[tag] = repo.resolve(target) or fake_sha(tag)
            repo.tags.add(tag)
        repo.releases.append(rel)
        self._apply_make_latest(repo, rel, make_latest)
        return rel

    @staticmethod
    def _discussion_category(repo: RepoState, body: dict[str, Any]) -> str | None:
        """`discussion_category_name`, checked before anything changes: an unknown one is
        GitHub's 404 "Discussion could not be created" (names match case included)."""
        category = _str_field(body, "discussion_category_name")
        if category and category not in repo.discussion_categories:
            raise ApiError(
                404,
                "Discussion could not be created. Make sure you passed a valid category name.",
                doc="releases/releases#create-a-release",
            )
        return category or None

    def _open_discussion(self, repo: RepoState, rel: dict[str, Any], category: str | None) -> None:
        # GitHub opens none for a draft (and forgets the category); a release keeps its first.
        if category and not rel["draft"] and not rel.get("discussion_url"):
            rel["discussion_url"] = f"{self.root}/{repo.full_name}/discussions/{self._next_id()}"
            rel["discussion_category"] = category

    def _find_asset(self, repo: RepoState, asset_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        for rel in repo.releases:
            for asset in rel.get("assets", []):
                if asset["id"] == asset_id:
                    return rel, asset
        raise ApiError(404, "Not Found", doc="releases/assets#get-a-release-asset")

    def _find_release(self, repo: RepoState, release_id: int) -> dict[str, Any]:
        for rel in repo.releases:
            if rel["id"] == release_id:
                return rel
        raise ApiError(404, "Not Found", doc="releases/releases#get-a-release")

    # -- routes: repository ----------------------------------------------------------------

    @route("GET", "/repos/{owner}/{repo}")
    def _get_repo(self, req: Request) -> Reply:
        assert req.repo is not None
        return Reply(200, self._render_repo(req.repo))

    # -- routes: releases ------------------------------------------------------------------

    @route("GET", "/repos/{owner}/{repo}/releases")
    def _list_releases(self, req: Request) -> Reply:
        assert req.repo is not None
        newest_first = sorted(
            req.repo.releases, key=lambda r: (r["created_at"], r["id"]), reverse=True
        )
        return self._paginate(req, [self._render_release(req.repo, r) for r in newest_first])

    @route("POST", "/repos/{owner}/{repo}/releases")
    def _create_release_route(self, req: Request) -> Reply:
        assert req.repo is not None
        rel = self._create_release(req.repo, _json_body(req))
        data = self._render_release(req.repo, rel)
        return Reply(201, data, {"location": data["url"]})

    @route("GET", "/repos/{owner}/{repo}/releases/latest")
    def _latest_release(self, req: Request) -> Reply:
        assert req.repo is not None
        rel = self._latest(req.repo)
        if rel is None:
            raise ApiError(404, "Not Found", doc="releases/releases#get-the-latest-release")
        return Reply(200, self._render_release(req.repo, rel))

    @route("GET", "/repos/{owner}/{repo}/releases/tags/{tag}")
    def _release_by_tag(self, req: Request) -> Reply:
        assert req.repo is not None
        for rel in req.repo.releases:
            # Drafts are not found by tag: they have no git tag yet (a GitHub quirk).
            if rel["tag_name"] == req.params["tag"] and not rel["draft"]:
                return Reply(200, self._render_release(req.repo, rel))
        raise ApiError(404, "Not Found", doc="releases/releases#get-a-release-by-tag-name")

    @route("GET", "/repos/{owner}/{repo}/releases/{id:int}")
    def _get_release(self, req: Request) -> Reply:
        assert req.repo is not None
        return Reply(
            200, self._render_release(req.repo, self._find_release(req.repo, req.int_param("id")))
        )

    @route("PATCH", "/repos/{owner}/{repo}/releases/{id:int}")
    def _update_release(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        rel = self._find_release(repo, req.int_param("id"))
        body = _json_body(req)
        tag = _str_field(body, "tag_name", rel["tag_name"]) or rel["tag_name"]
        draft = _bool_field(body, "draft", rel["draft"])
        prerelease = _bool_field(body, "prerelease", rel["prerelease"])
        make_latest = _str_field(body, "make_latest")
        if make_latest is not None and make_latest not in _MAKE_LATEST:
            raise ApiError(
                422,
                f"Invalid request.\n\nFor 'properties/make_latest', {json.dumps(make_latest)} "
                'is not one of ["true", "false", "legacy"].',
            )
        if not draft:
            self._check_tag_free(repo, tag, own_id=rel["id"])
        category = self._discussion_category(repo, body)
        newly_published = rel["draft"] and not draft
        rel["tag_name"] = tag
        for key in ("name", "body", "target_commitish"):
            if key in body:
                rel[key] = _str_field(body, key)
        rel["draft"] = draft
        rel["prerelease"] = prerelease
        rel["updated_at"] = _now()
        if newly_published:
            rel["published_at"] = _now()
            if tag not in repo.refs:
                repo.refs[tag] = repo.resolve(rel["target_commitish"]) or fake_sha(tag)
                repo.tags.add(tag)
        elif draft:
            rel["published_at"] = None
        self._open_discussion(repo, rel, category)
        # "Defaults to true for newly published releases"; otherwise unchanged.
        self._apply_make_latest(
            repo, rel, make_latest or ("true" if newly_published else "unchanged")
        )
        return Reply(200, self._render_release(repo, rel))

    @route("DELETE", "/repos/{owner}/{repo}/releases/{id:int}")
    def _delete_release(self, req: Request) -> Reply:
        assert req.repo is not None
        rel = self._find_release(req.repo, req.int_param("id"))
        req.repo.releases.remove(rel)
        if req.repo.latest_release_id == rel["id"]:
            req.repo.latest_release_id = self._legacy_latest(req.repo)
        return Reply(204)

    @route("POST", "/repos/{owner}/{repo}/releases/generate-notes")
    def _generate_notes(self, req: Request) -> Reply:
        """`{name, body}` as GitHub words it: merged pull requests, then the compare link."""
        assert req.repo is not None
        repo = req.repo
        body = _json_body(req)
        doc = "releases/releases#generate-release-notes-content-for-a-release"
        tag = _str_field(body, "tag_name")
        if not tag:
            raise validation_failed("Release", "missing_field", "tag_name", doc=doc)
        previous = _str_field(body, "previous_tag_name")
        target = _str_field(body, "target_commitish")
        if repo.resolve(tag) is None and not target:
            # "Required if the supplied tag_name does not reference an existing tag."
            raise validation_failed("Release", "missing_field", "target_commitish", doc=doc)
        if target and repo.resolve(target) is None:
            raise validation_failed("Release", "invalid", "target_commitish", doc=doc)
        if previous and (previous not in repo.tags or repo.resolve(previous) is None):
            raise validation_failed("Release", "invalid", "previous_tag_name", doc=doc)
        released = self._ancestors(repo, repo.refs[previous]) if previous else set()
        lines = [
            f"* {pull['title']} by @{pull['user']} in "
            f"{self.root}/{repo.full_name}/pull/{pull['number']}"
            for pull in repo.pulls
            if pull["merged"] and pull["merge_commit_sha"] not in released
        ]
        full = (
            f"{self.root}/{repo.full_name}/compare/{previous}...{tag}"
            if previous
            else f"{self.root}/{repo.full_name}/commits/{tag}"
        )
        text = f"**Full Changelog**: {full}"
        if lines:
            text = "## What's Changed\n" + "\n".join(lines) + "\n\n\n" + text
        return Reply(200, {"name": tag, "body": text})

    # -- routes: release assets ------------------------------------------------------------

    @route("GET", "/repos/{owner}/{repo}/releases/{id:int}/assets")
    def _list_assets(self, req: Request) -> Reply:
        assert req.repo is not None
        rel = self._find_release(req.repo, req.int_param("id"))
        items = [self._render_asset(req.repo, rel, a) for a in rel.get("assets", [])]
        return self._paginate(req, items)

    @route("POST", "/repos/{owner}/{repo}/releases/{id:int}/assets", host="uploads")
    def _upload_asset(self, req: Request) -> Reply:
        """The uploads host: `?name=&label=`, raw bytes, and the required Content-Type."""
        assert req.repo is not None
        doc = "releases/assets#upload-a-release-asset"
        rel = self._find_release(req.repo, req.int_param("id"))
        name = req.query.get("name", "")
        if not name:
            raise validation_failed("ReleaseAsset", "missing_field", "name", doc=doc)
        kind = req.headers.get("content-type", "")
        if not kind:
            raise validation_failed("ReleaseAsset", "missing_field", "content_type", doc=doc)
        data = req.body if isinstance(req.body, bytes) else b""
        if any(a["name"] == name for a in rel.get("assets", [])):
            raise validation_failed("ReleaseAsset", "already_exists", "name", doc=doc)
        now = _now()
        asset = {
            "id": self._next_id(),
            "name": name,
            "label": req.query.get("label") or None,
            "state": "uploaded",
            "content_type": kind,
            "size": len(data),
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "created_at": now,
            "updated_at": now,
            "data": base64.b64encode(data).decode("ascii"),
        }
        rel.setdefault("assets", []).append(asset)
        return Reply(201, self._render_asset(req.repo, rel, asset))

    @route("GET", "/repos/{owner}/{repo}/releases/assets/{asset_id:int}")
    def _get_asset(self, req: Request) -> Reply:
        assert req.repo is not None
        rel, asset = self._find_asset(req.repo, req.int_param("asset_id"))
        return Reply(200, self._render_asset(req.repo, rel, asset))

    @route("DELETE", "/repos/{owner}/{repo}/releases/assets/{asset_id:int}")
    def _delete_asset(self, req: Request) -> Reply:
        assert req.repo is not None
        rel, asset = self._find_asset(req.repo, req.int_param("asset_id"))
        rel["assets"].remove(asset)
        return Reply(204)

    # -- routes: deployments ---------------------------------------------------------------

    @route("POST", "/repos/{owner}/{repo}/deployments")
    def _create_deployment(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        body = _json_body(req)
        ref = _str_field(body, "ref")
        if not ref:
            raise validation_failed("Deployment", "missing_field", "ref")
        sha = repo.resolve(ref)
        if sha is None:
            raise ApiError(
                422, f"No ref found for: {ref}", doc="deployments/deployments#create-a-deployment"
            )
        environment = _str_field(body, "environment", "production") or "production"
        payload = body.get("payload", {})
        if isinstance(payload, str):
            try:
                payload = json.loads(payload) if payload else {}
            except ValueError:
                raise validation_failed("Deployment", "invalid", "payload") from None
        now = _now()
        dep = {
            "id": self._next_id(),
            "sha": sha,
            "ref": ref,
            "task": _str_field(body, "task", "deploy") or "deploy",
            "payload": payload,
            "original_environment": environment,
            "environment": environment,
            "description": _str_field(body, "description", "") or "",
            "created_at": now,
            "updated_at": now,
            "transient_environment": _bool_field(body, "transient_environment", False),
            "production_environment": _bool_field(
                body, "production_environment", environment == "production"
            ),
        }
        repo.deployments.append(dep)
        repo.deployment_statuses[dep["id"]] = []
        data = self._render_deployment(repo, dep)
        return Reply(201, data, {"location": data["url"]})

    @route("GET", "/repos/{owner}/{repo}/deployments")
    def _list_deployments(self, req: Request) -> Reply:
        assert req.repo is not None
        deps = sorted(req.repo.deployments, key=lambda d: d["id"], reverse=True)
        for key in ("sha", "ref", "task", "environment"):
            if req.query.get(key):
                deps = [d for d in deps if d[key] == req.query[key]]
        return self._paginate(req, [self._render_deployment(req.repo, d) for d in deps])

    def _deployment(self, repo: RepoState, dep_id: int) -> dict[str, Any]:
        for dep in repo.deployments:
            if dep["id"] == dep_id:
                return dep
        raise ApiError(404, "Not Found", doc="deployments/deployments#get-a-deployment")

    @route("GET", "/repos/{owner}/{repo}/deployments/{id:int}")
    def _get_deployment(self, req: Request) -> Reply:
        assert req.repo is not None
        return Reply(
            200, self._render_deployment(req.repo, self._deployment(req.repo, req.int_param("id")))
        )

    @route("POST", "/repos/{owner}/{repo}/deployments/{id:int}/statuses")
    def _create_deployment_status(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        dep = self._deployment(repo, req.int_param("id"))
        body = _json_body(req)
        state = _str_field(body, "state")
        if state not in _DEPLOYMENT_STATES:
            raise ApiError(
                422,
                f"Invalid request.\n\nFor 'properties/state', {json.dumps(state)} is not one of "
                f"{json.dumps(list(_DEPLOYMENT_STATES))}.",
            )
        log_url = _str_field(body, "log_url")
        target_url = log_url if log_url is not None else _str_field(body, "target_url", "")
        environment = _str_field(body, "environment") or dep["environment"]
        dep["environment"] = environment
        dep["updated_at"] = _now()
        status = {
            "id": self._next_id(),
            "state": state,
            "description": _str_field(body, "description", "") or "",
            "environment": environment,
            "target_url": target_url or "",
            "log_url": log_url if log_url is not None else (target_url or ""),
            "environment_url": _str_field(body, "environment_url", "") or "",
            "created_at": _now(),
        }
        repo.deployment_statuses.setdefault(dep["id"], []).append(status)
        if state == "success" and _bool_field(body, "auto_inactive", True):
            # "Adds a new inactive status to all prior non-transient, non-production
            # environment deployments with the same environment name" that had a success.
            for other in repo.deployments:
                statuses = repo.deployment_statuses.get(other["id"], [])
                if (
                    other["id"] < dep["id"]
                    and other["environment"] == environment
                    and not other["transient_environment"]
                    and not other["production_environment"]
                    and statuses
                    and statuses[-1]["state"] == "success"
                ):
                    statuses.append(
                        {
                            **statuses[-1],
                            "id": self._next_id(),
                            "state": "inactive",
                            "created_at": _now(),
                        }
                    )
        data = self._render_status(repo, dep["id"], status)
        return Reply(201, data, {"location": data["url"]})

    @route("GET", "/repos/{owner}/{repo}/deployments/{id:int}/statuses")
    def _list_deployment_statuses(self, req: Request) -> Reply:
        assert req.repo is not None
        dep = self._deployment(req.repo, req.int_param("id"))
        statuses = list(reversed(req.repo.deployment_statuses.get(dep["id"], [])))
        return self._paginate(req, [self._render_status(req.repo, dep["id"], s) for s in statuses])

    # -- routes: commits and checks --------------------------------------------------------

    def _sha(self, repo: RepoState, ref: str) -> str:
        sha = repo.resolve(ref)
        if sha is None:
            raise ApiError(
                422, f"No commit found for SHA: {ref}", doc="commits/commits#get-a-commit"
            )
        return sha

    @route("GET", "/repos/{owner}/{repo}/commits")
    def _list_commits(self, req: Request) -> Reply:
        """`git log` from ``sha`` (branch, tag or SHA; default: the default branch), newest first.

        ``since`` and ``until`` compare the committer date, both ends included, as git's
        `--since` and `--until` do (GitHub reads a time without an offset as UTC); ``path``
        keeps the commits that changed that file; ``author`` matches a name or an email.
        """
        assert req.repo is not None
        repo = req.repo
        start = req.query.get("sha") or repo.default_branch
        head = repo.resolve(start)
        if head is None:
            # GitHub's exact answer for an unknown `sha` is not documented; this is what it says.
            raise ApiError(
                404, f"No commit found for SHA: {start}", doc="commits/commits#list-commits"
            )
        order = list(reversed(self._topo(repo, self._ancestors(repo, head), head)))
        bounds = {k: _parse_time(req.query[k], k) for k in ("since", "until") if req.query.get(k)}
        rows = []
        for sha in order:
            rec = self._commit_record(repo, sha)
            when = _parse_time(rec["committer"]["date"], "date")
            if "since" in bounds and when < bounds["since"]:
                continue
            if "until" in bounds and when > bounds["until"]:
                continue
            who = req.query.get("author")
            if who and who.lower() not in (
                rec["author"]["name"].lower(),
                rec["author"]["email"].lower(),
            ):
                continue
            path = req.query.get("path")
            if path:
                parents = rec["parents"]
                before = self._flat(repo, self._tree_of(repo, parents[0])) if parents else {}
                if before.get(path) == self._flat(repo, rec["tree"]).get(path):
                    continue
            rows.append(self._render_commit(repo, sha))
        return self._paginate(req, rows)

    @route("GET", "/repos/{owner}/{repo}/commits/{ref}")
    def _get_commit(self, req: Request) -> Reply:
        assert req.repo is not None
        sha = self._sha(req.repo, req.params["ref"])
        return Reply(200, self._render_commit(req.repo, sha, with_files=True))

    @route("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs")
    def _check_runs(self, req: Request) -> Reply:
        assert req.repo is not None
        sha = self._sha(req.repo, req.params["ref"])
        runs = [r for r in req.repo.check_runs if r["head_sha"] == sha]
        runs.sort(key=lambda r: r["id"], reverse=True)
        if req.query.get("check_name"):
            runs = [r for r in runs if r["name"] == req.query["check_name"]]
        if req.query.get("status"):
            if req.query["status"] not in _CHECK_STATUSES:
                raise ApiError(422, f"Invalid value for `status`: {req.query['status']}")
            runs = [r for r in runs if r["status"] == req.query["status"]]
        mode = req.query.get("filter", "latest")
        if mode not in ("latest", "all"):
            raise ApiError(422, f"Invalid value for `filter`: {mode}")
        if mode == "latest":
            seen: set[str] = set()
            newest = []
            for r in runs:
                if r["name"] not in seen:
                    seen.add(r["name"])
                    newest.append(r)
            runs = newest
        return self._paginate(
            req, [self._render_check_run(req.repo, r) for r in runs], key="check_runs"
        )

    @route("GET", "/repos/{owner}/{repo}/commits/{sha}/pulls")
    def _commit_pulls(self, req: Request) -> Reply:
        assert req.repo is not None
        sha = self._sha(req.repo, req.params["sha"])
        pulls = [
            p
            for p in req.repo.pulls
            if sha in p["commits"] or sha in (p["head_sha"], p["merge_commit_sha"])
        ]
        return self._paginate(req, [self._render_pull(req.repo, p) for p in pulls])

    # -- routes: pull requests -------------------------------------------------------------

    def _pull(self, repo: RepoState, number: int) -> dict[str, Any]:
        for pull in repo.pulls:
            if pull["number"] == number:
                return pull
        raise ApiError(404, "Not Found", doc="pulls/pulls#get-a-pull-request")

    def _new_pull(
        self,
        repo: RepoState,
        head: str,
        base: str,
        title: str,
        body: str | None,
        *,
        draft: bool,
        user: str = "github-actions[bot]",
        maintainer_can_modify: bool = True,
    ) -> dict[str, Any]:
        now = _now()
        pull = {
            "id": self._next_id(),
            # Pull requests share their numbers with issues.
            "number": self._next_number(repo),
            "title": title,
            "body": body,
            "state": "open",
            "draft": draft,
            "user": user,
            "head_ref": head,
            "head_sha": repo.refs[head],
            "base_ref": base,
            "base_sha": repo.refs[base],
            "merged": False,
            "merged_at": None,
            "closed_at": None,
            "merge_commit_sha": None,
            "maintainer_can_modify": maintainer_can_modify,
            "commits": self._between(repo, repo.refs[base], repo.refs[head]) or [repo.refs[head]],
            "created_at": now,
            "updated_at": now,
        }
        repo.pulls.append(pull)
        return pull

    @route("POST", "/repos/{owner}/{repo}/pulls")
    def _create_pull(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        body = _json_body(req)
        title, head, base = (_str_field(body, k) for k in ("title", "head", "base"))
        for key, value in (("title", title), ("head", head), ("base", base)):
            if not value:
                raise validation_failed(
                    "PullRequest", "missing_field", key, doc="pulls/pulls#create-a-pull-request"
                )
        assert head is not None and base is not None and title is not None
        head_ref = head.split(":", 1)[1] if ":" in head else head
        if head_ref not in repo.refs:
            raise validation_failed(
                "PullRequest", "invalid", "head", doc="pulls/pulls#create-a-pull-request"
            )
        if base not in repo.refs:
            raise validation_failed(
                "PullRequest", "invalid", "base", doc="pulls/pulls#create-a-pull-request"
            )
        if any(
            p["state"] == "open" and p["head_ref"] == head_ref and p["base_ref"] == base
            for p in repo.pulls
        ):
            raise validation_failed(
                "PullRequest",
                "custom",
                message=f"A pull request already exists for {repo.owner}:{head_ref}.",
                doc="pulls/pulls#create-a-pull-request",
            )
        if repo.refs[head_ref] == repo.refs[base]:
            raise validation_failed(
                "PullRequest",
                "custom",
                message=f"No commits between {base} and {head_ref}",
                doc="pulls/pulls#create-a-pull-request",
            )
        pull = self._new_pull(
            repo,
            head_ref,
            base,
            title,
            _str_field(body, "body"),
            draft=_bool_field(body, "draft", False),
            maintainer_can_modify=_bool_field(body, "maintainer_can_modify", True),
        )
        data = self._render_pull(repo, pull)
        return Reply(201, data, {"location": data["url"]})

    @route("GET", "/repos/{owner}/{repo}/pulls")
    def _list_pulls(self, req: Request) -> Reply:
        assert req.repo is not None
        state = req.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise ApiError(422, f"Invalid value for `state`: {state}")
        pulls = [p for p in req.repo.pulls if state == "all" or p["state"] == state]
        if req.query.get("head"):
            owner, _, ref = req.query["head"].rpartition(":")
            pulls = [
                p
                for p in pulls
                if p["head_ref"] == ref and (not owner or owner.lower() == req.repo.owner.lower())
            ]
        if req.query.get("base"):
            pulls = [p for p in pulls if p["base_ref"] == req.query["base"]]
        sort = req.query.get("sort", "created")
        key = "updated_at" if sort == "updated" else "created_at"
        descending = req.query.get("direction", "desc") == "desc"
        pulls.sort(key=lambda p: (p[key], p["id"]), reverse=descending)
        return self._paginate(req, [self._render_pull(req.repo, p) for p in pulls])

    @route("GET", "/repos/{owner}/{repo}/pulls/{number:int}")
    def _get_pull(self, req: Request) -> Reply:
        assert req.repo is not None
        return Reply(
            200, self._render_pull(req.repo, self._pull(req.repo, req.int_param("number")))
        )

    @route("GET", "/repos/{owner}/{repo}/pulls/{number:int}/reviews")
    def _list_reviews(self, req: Request) -> Reply:
        assert req.repo is not None
        number = req.int_param("number")
        self._pull(req.repo, number)
        # "The list of reviews returns in chronological order."
        reviews = req.repo.reviews.get(number, [])
        return self._paginate(req, [self._render_review(req.repo, number, r) for r in reviews])

    @route("PATCH", "/repos/{owner}/{repo}/pulls/{number:int}")
    def _update_pull(self, req: Request) -> Reply:
        assert req.repo is not None
        pull = self._pull(req.repo, req.int_param("number"))
        body = _json_body(req)
        for key in ("title", "body"):
            if key in body:
                pull[key] = _str_field(body, key)
        state = _str_field(body, "state")
        if state is not None:
            if state not in ("open", "closed"):
                raise validation_failed(
                    "PullRequest", "invalid", "state", doc="pulls/pulls#update-a-pull-request"
                )
            if not pull["merged"]:
                pull["state"] = state
                pull["closed_at"] = _now() if state == "closed" else None
        pull["updated_at"] = _now()
        return Reply(200, self._render_pull(req.repo, pull))

    # -- routes: issues and labels -------------------------------------------------------

    def _new_label(
        self, repo: RepoState, name: str, color: str, description: str | None
    ) -> dict[str, Any]:
        label = {
            "id": self._next_id(),
            "name": name,
            "color": color.lower(),
            "description": description,
            "default": False,
        }
        repo.labels[name.lower()] = label
        return label

    def _render_label(self, repo: RepoState, label: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": label["id"],
            "node_id": _node_id("LA", label["id"]),
            "url": self.api(f"/repos/{repo.full_name}/labels/{quote(label['name'], safe='')}"),
            "name": label["name"],
            "color": label["color"],
            "default": label["default"],
            "description": label["description"],
        }

    def _label_names(self, repo: RepoState, given: Any, doc: str) -> list[str]:
        """``labels`` of a request: names or ``{"name": ...}`` objects; missing ones are made.

        GitHub creates a label it does not know (for a caller with push access, which the
        fake's callers have) with the color `ededed`.
        """
        if not isinstance(given, list):
            raise ApiError(
                422,
                f"Invalid request.\n\nFor 'properties/labels', {json.dumps(given)} is not an array.",
                doc=doc,
            )
        names: list[str] = []
        for entry in given:
            name = entry.get("name") if isinstance(entry, dict) else entry
            if not isinstance(name, str) or not name.strip():
                raise validation_failed("Label", "invalid", "name", doc=doc)
            known = repo.labels.get(name.lower()) or self._new_label(repo, name, "ededed", None)
            if known["name"] not in names:
                names.append(known["name"])
        return names

    def _new_issue(
        self,
        repo: RepoState,
        title: str,
        body: str | None,
        labels: list[str],
        *,
        user: str = "github-actions[bot]",
    ) -> dict[str, Any]:
        now = _now()
        issue = {
            "id": self._next_id(),
            "number": self._next_number(repo),
            "title": title,
            "body": body,
            "state": "open",
            "state_reason": None,
            "labels": self._label_names(repo, labels, "issues/issues#create-an-issue"),
            "user": user,
            "comments": [],
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
        }
        repo.issues.append(issue)
        return issue

    def _render_issue(self, repo: RepoState, issue: dict[str, Any]) -> dict[str, Any]:
        n = issue["number"]
        api = self.api(f"/repos/{repo.full_name}/issues/{n}")
        return {
            "url": api,
            "repository_url": self.api(f"/repos/{repo.full_name}"),
            "labels_url": api + "/labels{/name}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": f"{self.root}/{repo.full_name}/issues/{n}",
            "id": issue["id"],
            "node_id": _node_id("I", issue["id"]),
            "number": n,
            "title": issue["title"],
            "user": self._user(issue["user"]),
            "labels": [self._render_label(repo, repo.labels[x.lower()]) for x in issue["labels"]],
            "state": issue["state"],
            "state_reason": issue["state_reason"],
            "locked": False,
            **self._render_assignees(issue),
            "milestone": None,
            "comments": len(issue["comments"]),
            "created_at": issue["created_at"],
            "updated_at": issue["updated_at"],
            "closed_at": issue["closed_at"],
            "author_association": "MEMBER",
            "active_lock_reason": None,
            "body": issue["body"],
            "closed_by": None,
        }

    def _pull_as_issue(self, repo: RepoState, pull: dict[str, Any]) -> dict[str, Any]:
        """A pull request as the issues API lists it: an issue with a ``pull_request`` key."""
        data = self._render_pull(repo, pull)
        keep = [
            "url",
            "number",
            "title",
            "user",
            "labels",
            "state",
            "locked",
            "assignee",
            "assignees",
            "milestone",
            "created_at",
            "updated_at",
            "closed_at",
            "author_association",
            "body",
            "comments",
        ]
        out = {k: data[k] for k in keep}
        n = pull["number"]
        out.update(
            url=data["issue_url"],
            id=pull["id"],
            node_id=_node_id("I", pull["id"]),
            html_url=data["html_url"],
            comments_url=data["comments_url"],
            state_reason=None,
            pull_request={
                "url": data["url"],
                "html_url": data["html_url"],
                "diff_url": data["diff_url"],
                "patch_url": data["patch_url"],
                "merged_at": data["merged_at"],
            },
        )
        out["repository_url"] = self.api(f"/repos/{repo.full_name}")
        out["events_url"] = self.api(f"/repos/{repo.full_name}/issues/{n}/events")
        return out

    def _issue(self, repo: RepoState, number: int) -> dict[str, Any]:
        for issue in repo.issues:
            if issue["number"] == number:
                return issue
        raise ApiError(404, "Not Found", doc="issues/issues#get-an-issue")

    @route("GET", "/repos/{owner}/{repo}/labels")
    def _list_labels(self, req: Request) -> Reply:
        assert req.repo is not None
        labels = sorted(req.repo.labels.values(), key=lambda x: x["name"].lower())
        return self._paginate(req, [self._render_label(req.repo, x) for x in labels])

    @route("GET", "/repos/{owner}/{repo}/labels/{name}")
    def _get_label(self, req: Request) -> Reply:
        assert req.repo is not None
        label = req.repo.labels.get(req.params["name"].lower())
        if label is None:
            raise ApiError(404, "Not Found", doc="issues/labels#get-a-label")
        return Reply(200, self._render_label(req.repo, label))

    @route("POST", "/repos/{owner}/{repo}/labels")
    def _create_label(self, req: Request) -> Reply:
        assert req.repo is not None
        doc = "issues/labels#create-a-label"
        body = _json_body(req)
        name = _str_field(body, "name")
        if not name:
            raise validation_failed("Label", "missing_field", "name", doc=doc)
        color = (_str_field(body, "color") or "ededed").removeprefix("#")
        if not re.fullmatch(r"[0-9A-Fa-f]{6}", color):
            raise validation_failed("Label", "invalid", "color", doc=doc)
        if name.lower() in req.repo.labels:
            raise validation_failed("Label", "already_exists", "name", doc=doc)
        label = self._new_label(req.repo, name, color, _str_field(body, "description"))
        data = self._render_label(req.repo, label)
        return Reply(201, data, {"location": data["url"]})

    @route("POST", "/repos/{owner}/{repo}/issues")
    def _create_issue(self, req: Request) -> Reply:
        """An issue; GitHub has no uniqueness for titles, so two posts make two issues."""
        assert req.repo is not None
        body = _json_body(req)
        title = body.get("title")
        if isinstance(title, int) and not isinstance(title, bool):
            title = str(title)
        if not isinstance(title, str) or not title:
            raise validation_failed(
                "Issue", "missing_field", "title", doc="issues/issues#create-an-issue"
            )
        assignees = self._assignees_field(body, "issues/issues#create-an-issue")
        issue = self._new_issue(req.repo, title, _str_field(body, "body"), body.get("labels") or [])
        issue["assignees"] = assignees or []
        data = self._render_issue(req.repo, issue)
        return Reply(201, data, {"location": data["url"]})

    @route("GET", "/repos/{owner}/{repo}/issues")
    def _list_issues(self, req: Request) -> Reply:
        """Issues and pull requests (those with ``pull_request``), as GitHub lists both."""
        assert req.repo is not None
        repo = req.repo
        state = req.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise ApiError(422, f"Invalid value for `state`: {state}")
        rows: list[tuple[dict[str, Any], dict[str, Any]]] = [
            (i, self._render_issue(repo, i)) for i in repo.issues
        ]
        rows += [(p, self._pull_as_issue(repo, p)) for p in repo.pulls]
        rows = [r for r in rows if state == "all" or r[0]["state"] == state]
        wanted = [x.strip().lower() for x in req.query.get("labels", "").split(",") if x.strip()]
        if wanted:
            rows = [r for r in rows if set(wanted) <= {x["name"].lower() for x in r[1]["labels"]}]
        if req.query.get("creator"):
            rows = [
                r for r in rows if r[1]["user"]["login"].lower() == req.query["creator"].lower()
            ]
        if req.query.get("since"):
            since = _parse_time(req.query["since"], "since")
            rows = [r for r in rows if _parse_time(r[1]["updated_at"], "since") >= since]
        sort = req.query.get("sort", "created")
        if sort not in ("created", "updated", "comments"):
            raise ApiError(422, f"Invalid value for `sort`: {sort}")
        descending = req.query.get("direction", "desc") == "desc"
        key = {"created": "created_at", "updated": "updated_at", "comments": "comments"}[sort]
        rows.sort(key=lambda r: (r[1][key], r[1]["number"]), reverse=descending)
        return self._paginate(req, [r[1] for r in rows])

    @route("GET", "/repos/{owner}/{repo}/issues/{number:int}")
    def _get_issue(self, req: Request) -> Reply:
        assert req.repo is not None
        number = req.int_param("number")
        pull = next((p for p in req.repo.pulls if p["number"] == number), None)
        if pull is not None:
            return Reply(200, self._pull_as_issue(req.repo, pull))
        return Reply(200, self._render_issue(req.repo, self._issue(req.repo, number)))

    @route("PATCH", "/repos/{owner}/{repo}/issues/{number:int}")
    def _update_issue(self, req: Request) -> Reply:
        """Title, body, labels (replaced), state and ``state_reason`` of an issue."""
        assert req.repo is not None
        doc = "issues/issues#update-an-issue"
        issue = self._issue(req.repo, req.int_param("number"))
        body = _json_body(req)
        for key in ("title", "body"):
            if key in body:
                issue[key] = _str_field(body, key)
        if "labels" in body:
            issue["labels"] = self._label_names(req.repo, body["labels"], doc)
        assignees = self._assignees_field(body, doc)
        if assignees is not None:
            issue["assignees"] = assignees
        state = _str_field(body, "state")
        reason = _str_field(body, "state_reason")
        if state is not None and state not in ("open", "closed"):
            raise validation_failed("Issue", "invalid", "state", doc=doc)
        if reason is not None and reason not in ("completed", "not_planned", "reopened"):
            raise validation_failed("Issue", "invalid", "state_reason", doc=doc)
        if state == "closed" and issue["state"] != "closed":
            issue.update(state="closed", closed_at=_now(), state_reason=reason or "completed")
        elif state == "open" and issue["state"] != "open":
            issue.update(state="open", closed_at=None, state_reason="reopened")
        elif reason is not None and issue["state"] == "closed":
            issue["state_reason"] = reason
        issue["updated_at"] = _now()
        return Reply(200, self._render_issue(req.repo, issue))

    @route("POST", "/repos/{owner}/{repo}/issues/{number:int}/comments")
    def _create_issue_comment(self, req: Request) -> Reply:
        assert req.repo is not None
        issue = self._issue(req.repo, req.int_param("number"))
        text = _str_field(_json_body(req), "body")
        if not text:
            raise validation_failed(
                "IssueComment",
                "missing_field",
                "body",
                doc="issues/comments#create-an-issue-comment",
            )
        comment = {"id": self._next_id(), "body": text, "user": _BOT_LOGIN, "created_at": _now()}
        issue["comments"].append(comment)
        issue["updated_at"] = comment["created_at"]
        return Reply(201, self._render_comment(req.repo, issue, comment))

    @route("GET", "/repos/{owner}/{repo}/issues/{number:int}/comments")
    def _list_issue_comments(self, req: Request) -> Reply:
        assert req.repo is not None
        issue = self._issue(req.repo, req.int_param("number"))
        return self._paginate(
            req, [self._render_comment(req.repo, issue, c) for c in issue["comments"]]
        )

    def _render_comment(
        self, repo: RepoState, issue: dict[str, Any], comment: dict[str, Any]
    ) -> dict[str, Any]:
        api = self.api(f"/repos/{repo.full_name}/issues/comments/{comment['id']}")
        return {
            "id": comment["id"],
            "node_id": _node_id("IC", comment["id"]),
            "url": api,
            "html_url": f"{self.root}/{repo.full_name}/issues/{issue['number']}"
            f"#issuecomment-{comment['id']}",
            "issue_url": self.api(f"/repos/{repo.full_name}/issues/{issue['number']}"),
            "body": comment["body"],
            "user": self._user(None if comment["user"] == _BOT_LOGIN else comment["user"]),
            "created_at": comment["created_at"],
            "updated_at": comment["created_at"],
            "author_association": "MEMBER",
        }

    # -- routes: assignees -------------------------------------------------------------

    def _assignable(self, login: str) -> bool:
        """Whether ``login`` may be assigned: the fake's known users (``add_user``) are the
        repositories' collaborators with push access; no one else is."""
        return login.lower() in self.users

    def _assignees_field(self, body: dict[str, Any], doc: str) -> list[str] | None:
        """``assignees`` (or the older ``assignee``) of a create or update, checked; None when
        the request names neither. An unknown login is 422 ``invalid``, as GitHub answers."""
        if "assignees" in body:
            given = body["assignees"]
        elif "assignee" in body:
            given = [] if body["assignee"] is None else [body["assignee"]]
        else:
            return None
        if not isinstance(given, list) or not all(isinstance(x, str) for x in given):
            raise validation_failed("Issue", "invalid", "assignees", doc=doc)
        logins: list[str] = []
        for login in given:
            if not self._assignable(login):
                raise validation_failed("Issue", "invalid", "assignees", doc=doc)
            known = self.users[login.lower()]["login"]
            if known not in logins:
                logins.append(known)
        if len(logins) > 10:  # GitHub's limit of assignees per issue
            raise validation_failed("Issue", "invalid", "assignees", doc=doc)
        return logins

    def _render_assignees(self, issue: dict[str, Any]) -> dict[str, Any]:
        users = [self._user(login) for login in issue.get("assignees", [])]
        return {"assignee": users[0] if users else None, "assignees": users}

    @route("GET", "/repos/{owner}/{repo}/assignees/{assignee}")
    def _check_assignee(self, req: Request) -> Reply:
        """204 when the user can be assigned to the repository's issues, else 404."""
        if self._assignable(req.params["assignee"]):
            return Reply(204)
        raise ApiError(404, "Not Found", doc="issues/assignees#check-if-a-user-can-be-assigned")

    # -- routes: repository contents ---------------------------------------------------

    def _render_content(self, repo: RepoState, path: str, ref: str, blob: str) -> dict[str, Any]:
        raw = repo.blobs[blob].encode("utf-8")
        full = repo.full_name
        api = self.api(f"/repos/{full}/contents/{quote(path)}?ref={quote(ref, safe='')}")
        html = f"{self.root}/{full}/blob/{quote(ref)}/{quote(path)}"
        git = self.api(f"/repos/{full}/git/blobs/{blob}")
        return {
            "type": "file",
            "encoding": "base64",
            "size": len(raw),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.encodebytes(raw).decode(),
            "sha": blob,
            "url": api,
            "git_url": git,
            "html_url": html,
            "download_url": f"{self.root}/raw/{full}/{quote(ref)}/{quote(path)}",
            "_links": {"self": api, "git": git, "html": html},
        }

    def _file_blob(self, repo: RepoState, ref: str, path: str) -> str | None:
        sha = repo.resolve(ref)
        if sha is None:
            raise ApiError(404, f"No commit found for the ref {ref}", doc="repos/contents")
        entry = self._flat(repo, self._tree_of(repo, sha)).get(path)
        return entry[2] if entry and entry[1] == "blob" else None

    @route("GET", "/repos/{owner}/{repo}/contents/{path:path}")
    def _get_contents(self, req: Request) -> Reply:
        """A file's content (base64) and blob SHA at ``ref`` (default: the default branch).

        Directories are not served: the fake answers 404 for any path that is no file.
        """
        assert req.repo is not None
        path = req.params["path"].strip("/")
        ref = req.query.get("ref") or req.repo.default_branch
        blob = self._file_blob(req.repo, ref, path)
        if blob is None:
            raise ApiError(404, "Not Found", doc="repos/contents#get-repository-content")
        return Reply(200, self._render_content(req.repo, path, ref, blob))

    @route("PUT", "/repos/{owner}/{repo}/contents/{path:path}")
    def _put_contents(self, req: Request) -> Reply:
        """Create or replace one file with a commit on ``branch``, as GitHub does.

        Replacing needs ``sha``, the file's current blob SHA: missing is 422, another one
        (the file changed since it was read) is 409 "does not match".
        """
        assert req.repo is not None
        repo = req.repo
        doc = "repos/contents#create-or-update-file-contents"
        path = req.params["path"].strip("/")
        body = _json_body(req)
        message, content = _str_field(body, "message"), _str_field(body, "content")
        if message is None or content is None:
            raise ApiError(
                422,
                f'Invalid request.\n\n"{"message" if message is None else "content"}" '
                "wasn't supplied.",
                doc=doc,
            )
        branch = _str_field(body, "branch") or repo.default_branch
        if branch not in repo.refs or branch in repo.tags:
            raise ApiError(404, f"Branch {branch} not found", doc=doc)
        try:
            text = base64.b64decode(content, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(422, "content is not valid Base64", doc=doc) from None
        current = self._file_blob(repo, branch, path)
        given = _str_field(body, "sha")
        if current is not None and given is None:
            raise ApiError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', doc=doc)
        if given is not None and given != current:
            raise ApiError(409, f"{path} does not match {given}", doc=doc)
        parent = repo.refs[branch]
        flat = self._flat(repo, self._tree_of(repo, parent))
        flat[path] = ("100644", "blob", self._store_blob(repo, text))
        bot = {
            "name": _BOT_LOGIN,
            "email": f"{_BOT_ID}+{_BOT_LOGIN}@users.noreply.github.com",
            "date": _now(),
        }
        sha = self._store_commit(repo, self._store_tree(repo, flat), [parent], message, bot)
        repo.refs[branch] = sha
        for pull in repo.pulls:
            if pull["state"] == "open" and pull["head_ref"] == branch:
                pull["head_sha"] = sha
                pull["commits"] = [*pull["commits"], sha]
                pull["updated_at"] = _now()
        return Reply(
            200 if current is not None else 201,
            {
                "content": self._render_content(repo, path, branch, flat[path][2]),
                "commit": self._render_git_commit(repo, sha),
            },
        )

    # -- git objects -------------------------------------------------------------------

    @staticmethod
    def _hash(kind: str, payload: bytes) -> str:
        """Git's own object id: SHA-1 over ``"{kind} {size}\\0"`` and the payload."""
        header = f"{kind} {len(payload)}\0".encode()
        return hashlib.sha1(header + payload, usedforsecurity=False).hexdigest()

    def _store_blob(self, repo: RepoState, text: str) -> str:
        sha = self._hash("blob", text.encode("utf-8"))
        repo.blobs[sha] = text
        return sha

    def _store_tree(self, repo: RepoState, flat: dict[str, tuple[str, str, str]]) -> str:
        """Store the nested trees of a ``path -> (mode, type, sha)`` map; the root's SHA."""
        files: dict[str, tuple[str, str, str]] = {}
        dirs: dict[str, dict[str, tuple[str, str, str]]] = {}
        for path, entry in flat.items():
            head, sep, rest = path.partition("/")
            if sep:
                dirs.setdefault(head, {})[rest] = entry
            else:
                files[head] = entry
        entries = [{"name": n, "mode": m, "type": t, "sha": h} for n, (m, t, h) in files.items()]
        for name, sub in dirs.items():
            entries.append(
                {"name": name, "mode": "040000", "type": "tree", "sha": self._store_tree(repo, sub)}
            )
        # Git orders a directory's entries as if the names of subdirectories ended in "/".
        entries.sort(key=lambda e: e["name"] + ("/" if e["type"] == "tree" else ""))
        payload = b"".join(
            f"{e['mode'].lstrip('0')} {e['name']}".encode() + b"\0" + bytes.fromhex(e["sha"])
            for e in entries
        )
        sha = self._hash("tree", payload)
        repo.trees[sha] = entries
        return sha

    def _flat(
        self, repo: RepoState, tree: str, prefix: str = ""
    ) -> dict[str, tuple[str, str, str]]:
        """A stored tree as ``path -> (mode, type, sha)`` over every file under it."""
        if tree == EMPTY_TREE:
            return {}
        entries = repo.trees.get(tree)
        if entries is None:
            raise KeyError(tree)
        out: dict[str, tuple[str, str, str]] = {}
        for e in entries:
            path = prefix + e["name"]
            if e["type"] == "tree":
                out.update(self._flat(repo, e["sha"], path + "/"))
            else:
                out[path] = (e["mode"], e["type"], e["sha"])
        return out

    def _store_commit(
        self,
        repo: RepoState,
        tree: str,
        parents: list[str],
        message: str,
        author: dict[str, str],
        committer: dict[str, str] | None = None,
    ) -> str:
        committer = committer or author
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
        for role, who in (("author", author), ("committer", committer)):
            lines.append(f"{role} {who['name']} <{who['email']}> {who['date']}")
        sha = self._hash("commit", ("\n".join(lines) + "\n\n" + message).encode("utf-8"))
        repo.commits[sha] = {
            "sha": sha,
            "tree": tree,
            "parents": list(parents),
            "message": message,
            "author": dict(author),
            "committer": dict(committer),
        }
        return sha

    def _commit_record(self, repo: RepoState, sha: str) -> dict[str, Any]:
        known = repo.commits.get(sha)
        if known is not None:
            return known
        # A SHA nobody wrote (seeded refs, merge commits of seeded pulls): a bare root.
        person = {
            "name": "Octo Cat",
            "email": "octocat@example.com",
            "date": "2024-01-01T00:00:00Z",
        }
        return {
            "sha": sha,
            "tree": EMPTY_TREE,
            "parents": [],
            "message": f"Commit {sha[:7]}",
            "author": person,
            "committer": person,
        }

    def _ancestors(self, repo: RepoState, sha: str) -> set[str]:
        """``sha`` and every commit it descends from."""
        seen: set[str] = set()
        stack = [sha]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self._commit_record(repo, current)["parents"])
        return seen

    def _topo(self, repo: RepoState, shas: set[str], head: str) -> list[str]:
        """The commits of ``shas`` reachable from ``head``, oldest first (parents first)."""
        order: list[str] = []
        seen: set[str] = set()
        stack: list[tuple[str, bool]] = [(head, False)]
        while stack:
            current, expanded = stack.pop()
            if expanded:
                order.append(current)
                continue
            if current in seen or current not in shas:
                continue
            seen.add(current)
            stack.append((current, True))
            parents = self._commit_record(repo, current)["parents"]
            stack.extend((p, False) for p in reversed(parents) if p not in seen)
        return order

    def _between(self, repo: RepoState, base: str, head: str) -> list[str]:
        """`git log base..head`, oldest first: reachable from head and not from base."""
        return self._topo(repo, self._ancestors(repo, head) - self._ancestors(repo, base), head)

    def _merge_base(self, repo: RepoState, a: str, b: str) -> str | None:
        # One side holding the other (every compare of two releases on one branch): that
        # side is the merge base, found without weighing every common ancestor.
        if a in self._ancestors(repo, b):
            return a
        if b in self._ancestors(repo, a):
            return b
        common = self._ancestors(repo, a) & self._ancestors(repo, b)
        if not common:
            return None
        # The best common ancestor is the one with the longest history behind it.
        return max(sorted(common), key=lambda c: len(self._ancestors(repo, c)))

    def _diff(self, repo: RepoState, old_tree: str, new_tree: str, at: str) -> list[dict[str, Any]]:
        """The ``files`` of a commit or comparison: what changed from one tree to another."""
        old, new = self._flat(repo, old_tree), self._flat(repo, new_tree)
        files = []
        for path in sorted(set(old) | set(new)):
            before, after = old.get(path), new.get(path)
            if before == after:
                continue
            status = "added" if before is None else "removed" if after is None else "modified"
            a_text = repo.blobs.get(before[2], "") if before else ""
            b_text = repo.blobs.get(after[2], "") if after else ""
            patch = list(
                difflib.unified_diff(a_text.splitlines(), b_text.splitlines(), lineterm="", n=3)
            )[2:]
            additions = sum(1 for line in patch if line.startswith("+"))
            deletions = sum(1 for line in patch if line.startswith("-"))
            quoted = quote(path)
            blob = (after or before or ("", "", ""))[2]
            files.append(
                {
                    "sha": blob,
                    "filename": path,
                    "status": status,
                    "additions": additions,
                    "deletions": deletions,
                    "changes": additions + deletions,
                    "blob_url": f"{self.root}/{repo.full_name}/blob/{at}/{quoted}",
                    "raw_url": f"{self.root}/{repo.full_name}/raw/{at}/{quoted}",
                    "contents_url": self.api(f"/repos/{repo.full_name}/contents/{quoted}?ref={at}"),
                    "patch": "\n".join(patch),
                }
            )
        return files

    def _tree_of(self, repo: RepoState, sha: str) -> str:
        return str(self._commit_record(repo, sha)["tree"])

    def _render_commit(
        self, repo: RepoState, sha: str, *, with_files: bool = False
    ) -> dict[str, Any]:
        """A commit as the REST commits API renders it (``files`` only for a single commit)."""
        rec = self._commit_record(repo, sha)
        full = repo.full_name
        api = self.api(f"/repos/{full}/commits/{sha}")
        data: dict[str, Any] = {
            "sha": sha,
            "node_id": _node_id("C", int(sha[:8], 16)),
            "url": api,
            "html_url": f"{self.root}/{full}/commit/{sha}",
            "comments_url": f"{api}/comments",
            "commit": {
                "url": self.api(f"/repos/{full}/git/commits/{sha}"),
                "author": dict(rec["author"]),
                "committer": dict(rec["committer"]),
                "message": rec["message"],
                "tree": {
                    "sha": rec["tree"],
                    "url": self.api(f"/repos/{full}/git/trees/{rec['tree']}"),
                },
                "comment_count": 0,
                "verification": _UNSIGNED,
            },
            "author": None,
            "committer": None,
            "parents": [
                {
                    "sha": p,
                    "url": self.api(f"/repos/{full}/commits/{p}"),
                    "html_url": f"{self.root}/{full}/commit/{p}",
                }
                for p in rec["parents"]
            ],
        }
        if with_files:
            parents = rec["parents"]
            base = self._tree_of(repo, parents[0]) if parents else EMPTY_TREE
            files = self._diff(repo, base, rec["tree"], sha)
            additions = sum(f["additions"] for f in files)
            deletions = sum(f["deletions"] for f in files)
            data["stats"] = {
                "total": additions + deletions,
                "additions": additions,
                "deletions": deletions,
            }
            data["files"] = files
        return data

    def _render_git_commit(self, repo: RepoState, sha: str) -> dict[str, Any]:
        rec = self._commit_record(repo, sha)
        full = repo.full_name
        return {
            "sha": sha,
            "node_id": _node_id("C", int(sha[:8], 16)),
            "url": self.api(f"/repos/{full}/git/commits/{sha}"),
            "html_url": f"{self.root}/{full}/commit/{sha}",
            "author": dict(rec["author"]),
            "committer": dict(rec["committer"]),
            "tree": {"sha": rec["tree"], "url": self.api(f"/repos/{full}/git/trees/{rec['tree']}")},
            "message": rec["message"],
            "parents": [
                {
                    "sha": p,
                    "url": self.api(f"/repos/{full}/git/commits/{p}"),
                    "html_url": f"{self.root}/{full}/commit/{p}",
                }
                for p in rec["parents"]
            ],
            "verification": _UNSIGNED,
        }

    def _render_tree(self, repo: RepoState, sha: str, *, recursive: bool) -> dict[str, Any]:
        full = repo.full_name
        rows: list[dict[str, Any]] = []

        def walk(tree: str, prefix: str) -> None:
            for e in [] if tree == EMPTY_TREE else repo.trees[tree]:
                kind = "blobs" if e["type"] == "blob" else "trees"
                row = {
                    "path": prefix + e["name"],
                    "mode": e["mode"],
                    "type": e["type"],
                    "sha": e["sha"],
                }
                if e["type"] == "blob":
                    row["size"] = len(repo.blobs.get(e["sha"], "").encode("utf-8"))
                if e["type"] != "commit":
                    row["url"] = self.api(f"/repos/{full}/git/{kind}/{e['sha']}")
                rows.append(row)
                if recursive and e["type"] == "tree":
                    walk(e["sha"], prefix + e["name"] + "/")

        walk(sha, "")
        return {
            "sha": sha,
            "url": self.api(f"/repos/{full}/git/trees/{sha}"),
            "tree": rows,
            "truncated": False,
        }

    def _render_ref(self, repo: RepoState, name: str) -> dict[str, Any]:
        kind = "tags" if name in repo.tags else "heads"
        sha = repo.refs[name]
        full = f"refs/{kind}/{name}"
        return {
            "ref": full,
            "node_id": _node_id("REF", int(fake_sha(full)[:8], 16)),
            "url": self.api(f"/repos/{repo.full_name}/git/{quote(full)}"),
            "object": self._ref_object(repo, sha),
        }

    def _render_team(self, team: dict[str, Any]) -> dict[str, Any]:
        org, slug = team["org"], team["slug"]
        api = self.api(f"/orgs/{quote(org)}/teams/{quote(slug)}")
        return {
            "id": team["id"],
            "node_id": _node_id("T", team["id"]),
            "url": api,
            "html_url": f"{self.root}/orgs/{quote(org)}/teams/{quote(slug)}",
            "name": team["name"],
            "slug": slug,
            "description": None,
            "privacy": "closed",
            "notification_setting": "notifications_enabled",
            "permission": "pull",
            "members_url": f"{api}/members{{/member}}",
            "repositories_url": f"{api}/repos",
            "parent": None,
        }

    def _render_environment(self, repo: RepoState, env: dict[str, Any]) -> dict[str, Any]:
        name = env["name"]
        api = self.api(f"/repos/{repo.full_name}/environments/{quote(name, safe='')}")
        rules: list[dict[str, Any]] = []
        ids = env["rule_ids"]
        # As GitHub lists them: a rule appears only while it does something.
        if env["wait_timer"]:
            rules.append(
                {
                    "id": ids[0],
                    "node_id": _node_id("GA", ids[0]),
                    "type": "wait_timer",
                    "wait_timer": env["wait_timer"],
                }
            )
        if env["reviewers"]:
            reviewers = []
            for r in env["reviewers"]:
                if r["type"] == "User":
                    user = next(u for u in self.users.values() if u["id"] == r["id"])
                    reviewers.append({"type": "User", "reviewer": self._user(user["login"])})
                else:
                    team = next(t for t in self.teams.values() if t["id"] == r["id"])
                    reviewers.append({"type": "Team", "reviewer": self._render_team(team)})
            rules.append(
                {
                    "id": ids[1],
                    "node_id": _node_id("GA", ids[1]),
                    "type": "required_reviewers",
                    "prevent_self_review": env["prevent_self_review"],
                    "reviewers": reviewers,
                }
            )
        if env["branch_policy"] is not None:
            rules.append({"id": ids[2], "node_id": _node_id("GA", ids[2]), "type": "branch_policy"})
        return {
            "id": env["id"],
            "node_id": _node_id("EN", env["id"]),
            "name": name,
            "url": api,
            "html_url": f"{self.root}/{repo.full_name}/deployments/activity_log"
            f"?environments_filter={quote(name, safe='')}",
            "created_at": env["created_at"],
            "updated_at": env["updated_at"],
            "can_admins_bypass": True,
            "protection_rules": rules,
            "deployment_branch_policy": (
                dict(env["branch_policy"]) if env["branch_policy"] is not None else None
            ),
        }

    def _render_branch_policy(
        self, repo: RepoState, env: dict[str, Any], pol: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "id": pol["id"],
            "node_id": _node_id("GBP", pol["id"]),
            "name": pol["name"],
            "type": pol["type"],
        }

    # -- routes: users and teams -------------------------------------------------------

    @route("GET", "/users/{username}")
    def _get_user(self, req: Request) -> Reply:
        known = self.users.get(req.params["username"].lower())
        if known is None:
            raise ApiError(404, "Not Found", doc="users/users#get-a-user")
        data = self._user(known["login"])
        data.update(name=None, company=None, blog="", location=None, public_repos=0)
        return Reply(200, data)

    @route("GET", "/orgs/{org}/teams/{team_slug}")
    def _get_team(self, req: Request) -> Reply:
        team = self.teams.get(f"{req.params['org'].lower()}/{req.params['team_slug']}")
        if team is None:
            raise ApiError(404, "Not Found", doc="teams/teams#get-a-team-by-name")
        data = self._render_team(team)
        data.update(members_count=0, repos_count=0, created_at="2024-01-01T00:00:00Z")
        data["organization"] = {**self._user(team["org"]), "type": "Organization"}
        return Reply(200, data)

    @route("GET", "/orgs/{org}")
    def _get_org(self, req: Request) -> Reply:
        org = req.params["org"]
        if not any(t["org"].lower() == org.lower() for t in self.teams.values()):
            raise ApiError(404, "Not Found", doc="orgs/orgs#get-an-organization")
        api = self.api(f"/orgs/{quote(org)}")
        return Reply(
            200,
            {
                **self._user(org),
                "type": "Organization",
                "name": org,
                "url": api,
                "repos_url": f"{api}/repos",
            },
        )

    @route("GET", "/orgs/{org}/teams/{team_slug}/memberships/{username}")
    def _get_team_membership(self, req: Request) -> Reply:
        """An active member answers 200; anyone else 404, as GitHub does."""
        team = self.teams.get(f"{req.params['org'].lower()}/{req.params['team_slug']}")
        login = req.params["username"].lower()
        if team is None or login not in team.get("members", []):
            raise ApiError(404, "Not Found", doc="teams/members#get-team-membership-for-a-user")
        url = self.api(
            f"/orgs/{quote(team['org'])}/teams/{quote(team['slug'])}/memberships/{quote(login)}"
        )
        return Reply(200, {"url": url, "role": "member", "state": "active"})

    # -- routes: environments ----------------------------------------------------------

    def _environment(self, repo: RepoState, name: str) -> dict[str, Any]:
        env = repo.environments.get(name.lower())
        if env is None:
            raise ApiError(404, "Not Found", doc="deployments/environments#get-an-environment")
        return env

    @route("GET", "/repos/{owner}/{repo}/environments")
    def _list_environments(self, req: Request) -> Reply:
        assert req.repo is not None
        envs = sorted(req.repo.environments.values(), key=lambda e: e["name"].lower())
        return self._paginate(
            req, [self._render_environment(req.repo, e) for e in envs], key="environments"
        )

    @route("GET", "/repos/{owner}/{repo}/environments/{name}")
    def _get_environment(self, req: Request) -> Reply:
        assert req.repo is not None
        env = self._environment(req.repo, req.params["name"])
        return Reply(200, self._render_environment(req.repo, env))

    @route("PUT", "/repos/{owner}/{repo}/environments/{name}", admin=True)
    def _put_environment(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        name = req.params["name"]
        body = _json_body(req)
        doc = "deployments/environments#create-or-update-an-environment"
        existing = repo.environments.get(name.lower())
        wait_timer = body.get("wait_timer", existing["wait_timer"] if existing else 0)
        if isinstance(wait_timer, bool) or not isinstance(wait_timer, int):
            raise ApiError(
                422,
                f"Invalid request.\n\nFor 'properties/wait_timer', {json.dumps(wait_timer)} "
                "is not an integer.",
                doc=doc,
            )
        if not 0 <= wait_timer <= 43200:
            raise ApiError(
                422,
                f"Invalid request.\n\nFor 'properties/wait_timer', {wait_timer} is not between "
                "0 and 43200.",
                doc=doc,
            )
        self_review = _bool_field(
            body, "prevent_self_review", existing["prevent_self_review"] if existing else False
        )
        reviewers = existing["reviewers"] if existing else []
        if "reviewers" in body:
            raw = body["reviewers"] or []
            if not isinstance(raw, list):
                raise ApiError(
                    422, "Invalid request.\n\nFor 'properties/reviewers', not an array.", doc=doc
                )
            if len(raw) > 6:
                raise validation_failed(
                    "Environment",
                    "invalid",
                    "reviewers",
                    message="You can list up to six users or teams as reviewers.",
                    doc=doc,
                )
            reviewers = []
            for item in raw:
                kind = item.get("type") if isinstance(item, dict) else None
                ident = item.get("id") if isinstance(item, dict) else None
                if kind not in ("User", "Team") or not isinstance(ident, int):
                    raise ApiError(
                        422,
                        "Invalid request.\n\nFor 'items', reviewers need `type` (User or Team) "
                        "and an integer `id`.",
                        doc=doc,
                    )
                pool = self.users.values() if kind == "User" else self.teams.values()
                if not any(
                    x["id"] == ident and (kind == "User" or x["org"].lower() == repo.owner.lower())
                    for x in pool
                ):
                    raise validation_failed(
                        "Environment",
                        "invalid",
                        "reviewers",
                        message=f"{kind} with id {ident} cannot review this environment.",
                        doc=doc,
                    )
                reviewers.append({"type": kind, "id": ident})
        policy = existing["branch_policy"] if existing else None
        if "deployment_branch_policy" in body:
            raw_policy = body["deployment_branch_policy"]
            if raw_policy is None:
                policy = None
            else:
                if not isinstance(raw_policy, dict) or not all(
                    isinstance(raw_policy.get(k), bool)
                    for k in ("protected_branches", "custom_branch_policies")
                ):
                    raise ApiError(
                        422,
                        "Invalid request.\n\nFor 'properties/deployment_branch_policy', both "
                        "`protected_branches` and `custom_branch_policies` are required booleans.",
                        doc=doc,
                    )
                if raw_policy["protected_branches"] == raw_policy["custom_branch_policies"]:
                    raise validation_failed(
                        "Environment",
                        "invalid",
                        "deployment_branch_policy",
                        message="protected_branches and custom_branch_policies cannot have the "
                        "same value",
                        doc=doc,
                    )
                policy = {
                    "protected_branches": raw_policy["protected_branches"],
                    "custom_branch_policies": raw_policy["custom_branch_policies"],
                }
        now = _now()
        if existing is None:
            existing = {
                "id": self._next_id(),
                "name": name,
                "created_at": now,
                "rule_ids": [self._next_id(), self._next_id(), self._next_id()],
                "policies": [],
            }
            repo.environments[name.lower()] = existing
        existing.update(
            wait_timer=wait_timer,
            prevent_self_review=self_review,
            reviewers=reviewers,
            branch_policy=policy,
            updated_at=now,
        )
        if policy is None or not policy["custom_branch_policies"]:
            # Name patterns apply only to custom policies; GitHub drops them otherwise.
            existing["policies"] = []
        return Reply(200, self._render_environment(repo, existing))

    @route("DELETE", "/repos/{owner}/{repo}/environments/{name}", admin=True)
    def _delete_environment(self, req: Request) -> Reply:
        assert req.repo is not None
        env = self._environment(req.repo, req.params["name"])
        del req.repo.environments[env["name"].lower()]
        return Reply(204)

    def _custom_environment(self, repo: RepoState, name: str) -> dict[str, Any]:
        env = self._environment(repo, name)
        policy = env["branch_policy"]
        if policy is None or not policy["custom_branch_policies"]:
            # "Not Found or deployment_branch_policy.custom_branch_policies property for the
            # environment is set to false"
            raise ApiError(404, "Not Found", doc="deployments/branch-policies")
        return env

    @route("GET", "/repos/{owner}/{repo}/environments/{name}/deployment-branch-policies")
    def _list_branch_policies(self, req: Request) -> Reply:
        assert req.repo is not None
        env = self._custom_environment(req.repo, req.params["name"])
        rows = [self._render_branch_policy(req.repo, env, p) for p in env["policies"]]
        return self._paginate(req, rows, key="branch_policies")

    @route(
        "POST", "/repos/{owner}/{repo}/environments/{name}/deployment-branch-policies", admin=True
    )
    def _create_branch_policy(self, req: Request) -> Reply:
        assert req.repo is not None
        env = self._custom_environment(req.repo, req.params["name"])
        body = _json_body(req)
        name = _str_field(body, "name")
        if not name:
            raise validation_failed(
                "DeploymentBranchPolicy", "missing_field", "name", doc="deployments/branch-policies"
            )
        kind = _str_field(body, "type", "branch") or "branch"
        if kind not in ("branch", "tag"):
            raise ApiError(
                422,
                f"Invalid request.\n\nFor 'properties/type', {json.dumps(kind)} is not one of "
                '["branch", "tag"].',
            )
        for pol in env["policies"]:
            if pol["name"] == name and pol["type"] == kind:
                # "Response if the same branch name pattern already exists"
                return Reply(303, None, {"location": self._policy_url(req, pol)})
        pol = {"id": self._next_id(), "name": name, "type": kind}
        env["policies"].append(pol)
        return Reply(200, self._render_branch_policy(req.repo, env, pol))

    def _policy_url(self, req: Request, pol: dict[str, Any]) -> str:
        assert req.repo is not None
        env = quote(req.params["name"], safe="")
        return self.api(
            f"/repos/{req.repo.full_name}/environments/{env}/deployment-branch-policies/{pol['id']}"
        )

    def _branch_policy(self, req: Request) -> tuple[dict[str, Any], dict[str, Any]]:
        assert req.repo is not None
        env = self._custom_environment(req.repo, req.params["name"])
        for pol in env["policies"]:
            if pol["id"] == req.int_param("id"):
                return env, pol
        raise ApiError(404, "Not Found", doc="deployments/branch-policies")

    @route("GET", "/repos/{owner}/{repo}/environments/{name}/deployment-branch-policies/{id:int}")
    def _get_branch_policy(self, req: Request) -> Reply:
        assert req.repo is not None
        env, pol = self._branch_policy(req)
        return Reply(200, self._render_branch_policy(req.repo, env, pol))

    @route(
        "PUT",
        "/repos/{owner}/{repo}/environments/{name}/deployment-branch-policies/{id:int}",
        admin=True,
    )
    def _update_branch_policy(self, req: Request) -> Reply:
        assert req.repo is not None
        env, pol = self._branch_policy(req)
        name = _str_field(_json_body(req), "name")
        if not name:
            raise validation_failed("DeploymentBranchPolicy", "missing_field", "name")
        pol["name"] = name
        return Reply(200, self._render_branch_policy(req.repo, env, pol))

    @route(
        "DELETE",
        "/repos/{owner}/{repo}/environments/{name}/deployment-branch-policies/{id:int}",
        admin=True,
    )
    def _delete_branch_policy(self, req: Request) -> Reply:
        env, pol = self._branch_policy(req)
        env["policies"].remove(pol)
        return Reply(204)

    # -- routes: branches and refs -----------------------------------------------------

    def _branch_names(self, repo: RepoState) -> list[str]:
        return sorted(n for n in repo.refs if n not in repo.tags)

    @route("GET", "/repos/{owner}/{repo}/branches")
    def _list_branches(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        names = self._branch_names(repo)
        if req.query.get("protected") in ("true", "false"):
            wanted = req.query["protected"] == "true"
            names = [n for n in names if (n in repo.protected) == wanted]
        rows = [
            {
                "name": n,
                "commit": {
                    "sha": repo.refs[n],
                    "url": self.api(f"/repos/{repo.full_name}/commits/{repo.refs[n]}"),
                },
                "protected": n in repo.protected,
            }
            for n in names
        ]
        return self._paginate(req, rows)

    @route("GET", "/repos/{owner}/{repo}/branches/{branch:path}")
    def _get_branch(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        name = req.params["branch"]
        if name not in repo.refs or name in repo.tags:
            raise ApiError(404, "Branch not found", doc="branches/branches#get-a-branch")
        api = self.api(f"/repos/{repo.full_name}/branches/{quote(name)}")
        return Reply(
            200,
            {
                "name": name,
                "commit": self._render_commit(repo, repo.refs[name]),
                "_links": {"self": api, "html": f"{self.root}/{repo.full_name}/tree/{quote(name)}"},
                "protected": name in repo.protected,
                "protection": {
                    "enabled": name in repo.protected,
                    "required_status_checks": {
                        "enforcement_level": "off",
                        "contexts": [],
                        "checks": [],
                    },
                },
                "protection_url": f"{api}/protection",
            },
        )

    def _ref_name(self, full: str) -> tuple[str, bool]:
        """``refs/heads/x`` (or ``heads/x``) to ``("x", False)``; tags give True."""
        short = full.removeprefix("refs/")
        for prefix, is_tag in (("heads/", False), ("tags/", True)):
            if short.startswith(prefix) and len(short) > len(prefix):
                return short[len(prefix) :], is_tag
        raise ApiError(404, "Not Found", doc="git/refs")

    @route("GET", "/repos/{owner}/{repo}/git/ref/{ref:path}")
    def _get_ref(self, req: Request) -> Reply:
        assert req.repo is not None
        name, is_tag = self._ref_name(req.params["ref"])
        if name not in req.repo.refs or (name in req.repo.tags) != is_tag:
            raise ApiError(404, "Not Found", doc="git/refs#get-a-reference")
        return Reply(200, self._render_ref(req.repo, name))

    @route("GET", "/repos/{owner}/{repo}/git/matching-refs/{ref:path}")
    def _matching_refs(self, req: Request) -> Reply:
        """Every ref whose name starts with the given one, as GitHub lists them (unpaged)."""
        assert req.repo is not None
        prefix = "refs/" + req.params["ref"].removeprefix("refs/")
        found = []
        for name in sorted(req.repo.refs):
            full = f"refs/{'tags' if name in req.repo.tags else 'heads'}/{name}"
            if full.startswith(prefix):
                found.append(self._render_ref(req.repo, name))
        return Reply(200, found)

    @route("POST", "/repos/{owner}/{repo}/git/refs")
    def _create_ref(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        body = _json_body(req)
        doc = "git/refs#create-a-reference"
        full, sha = _str_field(body, "ref"), _str_field(body, "sha")
        if not full or not sha:
            raise validation_failed("Reference", "missing_field", "ref" if not full else "sha")
        if not full.startswith("refs/") or full.count("/") < 2:
            raise ApiError(
                422,
                "Reference name must start with 'refs/' and have at least two slashes.",
                doc=doc,
            )
        name, is_tag = self._ref_name(full)
        if not _valid_ref(full):
            raise ApiError(422, f"{full} is not a valid ref name.", doc=doc)
        if name in repo.refs:
            raise ApiError(422, "Reference already exists", doc=doc)
        if not _SHA.match(sha):
            raise ApiError(422, "Object does not exist", doc=doc)
        repo.refs[name] = sha
        if is_tag:
            repo.tags.add(name)
        data = self._render_ref(repo, name)
        return Reply(201, data, {"location": data["url"]})

    @route("PATCH", "/repos/{owner}/{repo}/git/refs/{ref:path}")
    def _update_ref(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        name, is_tag = self._ref_name(req.params["ref"])
        doc = "git/refs#update-a-reference"
        if name not in repo.refs or (name in repo.tags) != is_tag:
            raise ApiError(422, "Reference does not exist", doc=doc)
        body = _json_body(req)
        sha = _str_field(body, "sha")
        if not sha or not _SHA.match(sha):
            raise ApiError(422, "Object does not exist", doc=doc)
        if not _bool_field(body, "force", False) and repo.refs[name] not in self._ancestors(
            repo, sha
        ):
            raise ApiError(422, "Update is not a fast forward", doc=doc)
        repo.refs[name] = sha
        for pull in repo.pulls:
            # An open pull request follows its head branch.
            if pull["state"] == "open" and pull["head_ref"] == name and not is_tag:
                pull["head_sha"] = sha
                pull["commits"] = self._between(repo, repo.refs[pull["base_ref"]], sha) or [sha]
        return Reply(200, self._render_ref(repo, name))

    @route("DELETE", "/repos/{owner}/{repo}/git/refs/{ref:path}")
    def _delete_ref(self, req: Request) -> Reply:
        assert req.repo is not None
        name, is_tag = self._ref_name(req.params["ref"])
        if name not in req.repo.refs or (name in req.repo.tags) != is_tag:
            raise ApiError(422, "Reference does not exist", doc="git/refs#delete-a-reference")
        del req.repo.refs[name]
        req.repo.tags.discard(name)
        return Reply(204)

    # -- annotated tags (the release train's stage and ship peel them) -----------------
    # Tag objects by SHA; a tag ref that points at one renders `object.type: tag`. Only the
    # refs and tags routes know them: other routes resolve such a ref to the tag object's SHA.

    @property
    def tag_objects(self) -> dict[str, dict[str, Any]]:
        store: dict[str, dict[str, Any]] | None = self.__dict__.get("_tag_objects")
        if store is None:
            store = self.__dict__["_tag_objects"] = {}
        return store

    def _ref_object(self, repo: RepoState, sha: str) -> dict[str, Any]:
        kind = "tag" if sha in self.tag_objects else "commit"
        path = "tags" if kind == "tag" else "commits"
        return {
            "sha": sha,
            "type": kind,
            "url": self.api(f"/repos/{repo.full_name}/git/{path}/{sha}"),
        }

    def _new_tag_object(
        self, repo: RepoState, tag: str, message: str, target: str, kind: str
    ) -> dict[str, Any]:
        tagger = {"name": _BOT_LOGIN, "email": f"{_BOT_ID}+{_BOT_LOGIN}@users.noreply.github.com"}
        payload = f"object {target}\ntype {kind}\ntag {tag}\n\n{message}"
        sha = self._hash("tag", payload.encode())
        self.tag_objects[sha] = {
            "repo": repo.full_name,
            "tag": tag,
            "message": message,
            "tagger": {**tagger, "date": _now()},
            "object": {"sha": target, "type": kind},
        }
        return self._render_tag_object(repo, sha)

    def _render_tag_object(self, repo: RepoState, sha: str) -> dict[str, Any]:
        obj = self.tag_objects[sha]
        target = obj["object"]
        return {
            "node_id": _node_id("TAG", int(sha[:8], 16)),
            "tag": obj["tag"],
            "sha": sha,
            "url": self.api(f"/repos/{repo.full_name}/git/tags/{sha}"),
            "message": obj["message"],
            "tagger": obj["tagger"],
            "object": self._ref_object(repo, target["sha"]) | {"type": target["type"]},
            "verification": dict(_UNSIGNED),
        }

    def add_annotated_tag(
        self, tag: str, target: str, *, message: str = "", repo: str | None = None
    ) -> str:
        """Seed an annotated tag ``tag`` of ``target`` (a ref name or SHA) and its ref; its SHA."""
        with self._lock:
            state = self.repo(repo)
            sha = state.resolve(target) or target
            obj = self._new_tag_object(state, tag, message or tag, sha, "commit")
            state.refs[tag] = obj["sha"]
            state.tags.add(tag)
            self._dump()
            return str(obj["sha"])

    @route("POST", "/repos/{owner}/{repo}/git/tags")
    def _create_tag_object(self, req: Request) -> Reply:
        assert req.repo is not None
        body = _json_body(req)
        tag, message = _str_field(body, "tag"), _str_field(body, "message")
        target, kind = _str_field(body, "object"), _str_field(body, "type")
        for name, value in (("tag", tag), ("message", message), ("object", target), ("type", kind)):
            if value is None:
                raise validation_failed(
                    "Tag", "missing_field", name, doc="git/tags#create-a-tag-object"
                )
        assert tag is not None and message is not None and target is not None and kind is not None
        if kind not in ("commit", "tree", "blob", "tag") or not _SHA.match(target):
            raise ApiError(422, "Object does not exist", doc="git/tags#create-a-tag-object")
        data = self._new_tag_object(req.repo, tag, message, target, kind)
        return Reply(201, data, {"location": data["url"]})

    @route("GET", "/repos/{owner}/{repo}/git/tags/{sha}")
    def _get_tag_object(self, req: Request) -> Reply:
        assert req.repo is not None
        sha = req.params["sha"]
        obj = self.tag_objects.get(sha)
        if obj is None or obj["repo"] != req.repo.full_name:
            raise ApiError(404, "Not Found", doc="git/tags#get-a-tag")
        return Reply(200, self._render_tag_object(req.repo, sha))

    # -- routes: git data --------------------------------------------------------------

    def _tree_sha(self, repo: RepoState, ref: str) -> str:
        if ref == EMPTY_TREE or ref in repo.trees:
            return ref
        sha = repo.resolve(ref)
        if sha is None:
            raise ApiError(404, "Not Found", doc="git/trees#get-a-tree")
        return self._tree_of(repo, sha)

    @route("GET", "/repos/{owner}/{repo}/git/trees/{sha}")
    def _get_tree(self, req: Request) -> Reply:
        assert req.repo is not None
        tree = self._tree_sha(req.repo, req.params["sha"])
        recursive = req.query.get("recursive", "") not in ("", "0", "false")
        return Reply(200, self._render_tree(req.repo, tree, recursive=recursive))

    @route("POST", "/repos/{owner}/{repo}/git/trees")
    def _create_tree(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        body = _json_body(req)
        entries = body.get("tree")
        if not isinstance(entries, list):
            raise ApiError(422, 'Invalid request.\n\n"tree" wasn\'t supplied.', doc="git/trees")
        base = _str_field(body, "base_tree")
        if base is not None and base != EMPTY_TREE and base not in repo.trees:
            raise ApiError(422, "Invalid tree info", doc="git/trees#create-a-tree")
        flat = self._flat(repo, base) if base else {}
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise ApiError(422, "Invalid tree info", doc="git/trees#create-a-tree")
            path = entry["path"].strip("/")
            mode, kind = entry.get("mode"), entry.get("type")
            if mode not in _MODES or kind not in ("blob", "tree", "commit"):
                raise ApiError(422, "Invalid tree info", doc="git/trees#create-a-tree")
            if "sha" in entry and "content" in entry:
                raise ApiError(
                    422, "Only one of sha or content may be given", doc="git/trees#create-a-tree"
                )
            # A null sha deletes the path (and everything under it).
            for old in [p for p in flat if p == path or p.startswith(path + "/")]:
                del flat[old]
            if "content" in entry:
                flat[path] = (mode, "blob", self._store_blob(repo, str(entry["content"])))
            elif entry.get("sha") is not None:
                sha = str(entry["sha"])
                if kind == "blob" and sha not in repo.blobs:
                    raise ApiError(422, "Invalid tree info", doc="git/trees#create-a-tree")
                if kind == "tree":
                    if sha != EMPTY_TREE and sha not in repo.trees:
                        raise ApiError(422, "Invalid tree info", doc="git/trees#create-a-tree")
                    for sub, value in self._flat(repo, sha).items():
                        flat[f"{path}/{sub}"] = value
                else:
                    flat[path] = (mode, kind, sha)
        sha = self._store_tree(repo, flat)
        data = self._render_tree(repo, sha, recursive=False)
        return Reply(201, data, {"location": data["url"]})

    @route("GET", "/repos/{owner}/{repo}/git/blobs/{sha}")
    def _get_blob(self, req: Request) -> Reply:
        assert req.repo is not None
        sha = req.params["sha"]
        if sha not in req.repo.blobs:
            raise ApiError(404, "Not Found", doc="git/blobs#get-a-blob")
        raw = req.repo.blobs[sha].encode("utf-8")
        return Reply(
            200,
            {
                "sha": sha,
                "node_id": _node_id("B", int(sha[:8], 16)),
                "size": len(raw),
                "url": self.api(f"/repos/{req.repo.full_name}/git/blobs/{sha}"),
                "content": base64.encodebytes(raw).decode(),
                "encoding": "base64",
            },
        )

    @route("POST", "/repos/{owner}/{repo}/git/blobs")
    def _create_blob(self, req: Request) -> Reply:
        assert req.repo is not None
        body = _json_body(req)
        content = _str_field(body, "content")
        if content is None:
            raise validation_failed("Blob", "missing_field", "content")
        if (_str_field(body, "encoding", "utf-8") or "utf-8") == "base64":
            content = base64.b64decode(content).decode("utf-8")
        sha = self._store_blob(req.repo, content)
        url = self.api(f"/repos/{req.repo.full_name}/git/blobs/{sha}")
        return Reply(201, {"sha": sha, "url": url}, {"location": url})

    @route("GET", "/repos/{owner}/{repo}/git/commits/{sha}")
    def _get_git_commit(self, req: Request) -> Reply:
        assert req.repo is not None
        sha = req.params["sha"]
        if not _SHA.match(sha):
            raise ApiError(404, "Not Found", doc="git/commits#get-a-commit-object")
        return Reply(200, self._render_git_commit(req.repo, sha))

    @route("POST", "/repos/{owner}/{repo}/git/commits")
    def _create_git_commit(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        body = _json_body(req)
        doc = "git/commits#create-a-commit"
        message, tree = _str_field(body, "message"), _str_field(body, "tree")
        if message is None or tree is None:
            raise validation_failed(
                "Commit", "missing_field", "message" if message is None else "tree"
            )
        if tree != EMPTY_TREE and tree not in repo.trees:
            raise ApiError(422, "Tree SHA does not exist", doc=doc)
        parents = body.get("parents", [])
        if not isinstance(parents, list) or not all(
            isinstance(p, str) and _SHA.match(p) for p in parents
        ):
            raise ApiError(422, "Parent SHA does not exist or is not a commit object", doc=doc)
        bot = {"name": _BOT_LOGIN, "email": f"{_BOT_ID}+{_BOT_LOGIN}@users.noreply.github.com"}

        def person(key: str, default: dict[str, str]) -> dict[str, str]:
            given = body.get(key)
            if given is None:
                return {**default, "date": default.get("date") or _now()}
            if not isinstance(given, dict) or not given.get("name") or not given.get("email"):
                raise validation_failed("Commit", "invalid", key, doc=doc)
            return {
                "name": str(given["name"]),
                "email": str(given["email"]),
                "date": str(given.get("date") or _now()),
            }

        author = person("author", bot)
        committer = person("committer", {**bot, "date": _now()})
        sha = self._store_commit(repo, tree, list(parents), message, author, committer)
        data = self._render_git_commit(repo, sha)
        return Reply(201, data, {"location": data["url"]})

    # -- routes: merges and compare ----------------------------------------------------

    @route("POST", "/repos/{owner}/{repo}/merges")
    def _merge(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        body = _json_body(req)
        doc = "branches/branches#merge-a-branch"
        base, head = _str_field(body, "base"), _str_field(body, "head")
        if not base or not head:
            raise validation_failed(
                "Merge", "missing_field", "base" if not base else "head", doc=doc
            )
        if base not in repo.refs or base in repo.tags:
            raise ApiError(404, "Base does not exist", doc=doc)
        head_sha = repo.resolve(head)
        if head_sha is None:
            raise ApiError(404, "Head does not exist", doc=doc)
        base_sha = repo.refs[base]
        if head_sha in self._ancestors(repo, base_sha):
            return Reply(204)  # nothing to merge: base already has head
        common = self._merge_base(repo, base_sha, head_sha)
        ancestor = self._flat(repo, self._tree_of(repo, common)) if common else {}
        ours = self._flat(repo, self._tree_of(repo, base_sha))
        theirs = self._flat(repo, self._tree_of(repo, head_sha))
        merged: dict[str, tuple[str, str, str]] = {}
        for path in set(ancestor) | set(ours) | set(theirs):
            was, mine, other = ancestor.get(path), ours.get(path), theirs.get(path)
            if mine == other or other == was:
                result = mine
            elif mine == was:
                result = other
            else:
                raise ApiError(409, "Merge conflict", doc=doc)
            if result is not None:
                merged[path] = result
        message = _str_field(body, "commit_message") or f"Merge {head} into {base}"
        person = {
            "name": _BOT_LOGIN,
            "email": f"{_BOT_ID}+{_BOT_LOGIN}@users.noreply.github.com",
            "date": _now(),
        }
        sha = self._store_commit(
            repo, self._store_tree(repo, merged), [base_sha, head_sha], message, person
        )
        repo.refs[base] = sha
        data = self._render_commit(repo, sha)
        return Reply(201, data, {"location": data["url"]})

    @route("GET", "/repos/{owner}/{repo}/compare/{basehead:path}")
    def _compare(self, req: Request) -> Reply:
        assert req.repo is not None
        repo = req.repo
        base, sep, head = req.params["basehead"].partition("...")
        doc = "commits/commits#compare-two-commits"
        base_sha, head_sha = repo.resolve(base), repo.resolve(head)
        if not sep or base_sha is None or head_sha is None:
            raise ApiError(404, "Not Found", doc=doc)
        common = self._merge_base(repo, base_sha, head_sha)
        if common is None:
            raise ApiError(404, f"No common ancestor between {base} and {head}.", doc=doc)
        ahead = self._between(repo, base_sha, head_sha)
        behind = self._between(repo, head_sha, base_sha)
        if base_sha == head_sha:
            status = "identical"
        elif not behind:
            status = "ahead"
        elif not ahead:
            status = "behind"
        else:
            status = "diverged"
        full = repo.full_name
        spec = f"{base}...{head}"
        return Reply(
            200,
            {
                "url": self.api(f"/repos/{full}/compare/{quote(spec)}"),
                "html_url": f"{self.root}/{full}/compare/{quote(spec)}",
                "permalink_url": f"{self.root}/{full}/compare/{base_sha}...{head_sha}",
                "diff_url": f"{self.root}/{full}/compare/{quote(spec)}.diff",
                "patch_url": f"{self.root}/{full}/compare/{quote(spec)}.patch",
                "base_commit": self._render_commit(repo, base_sha),
                "merge_base_commit": self._render_commit(repo, common),
                "status": status,
                "ahead_by": len(ahead),
                "behind_by": len(behind),
                "total_commits": len(ahead),
                "commits": [self._render_commit(repo, c) for c in ahead],
                "files": self._diff(
                    repo, self._tree_of(repo, common), self._tree_of(repo, head_sha), head_sha
                ),
            },
        )


_REASONS = {
    400: "Bad Request",
    401: "Requires authentication",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Failed",
    429: "Too Many Requests",
    500: "Server Error",
    502: "Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _RequestHandler(FakeHandler):
    owner: ClassVar[GitHubFake]
    server_version = "GitHub.com"
    sys_version = ""

    def _serve(self) -> None:
        reply = self.owner.handle(self.command, self.path, self.header_map(), self.read_body())
        payload = (
            b""
            if reply.body is None
            else json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
        )
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(reply.status)
            if reply.body is not None:
                self.send_header("content-type", "application/json; charset=utf-8")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


try:  # a fixture for pytest, when pytest is there; the command line needs only the stdlib
    import pytest

    @pytest.fixture
    def github_fake() -> Iterator[GitHubFake]:
        """A started fake with repository ``octo/app``, stopped after the test."""
        with GitHubFake() as fake:
            yield fake

except ImportError:  # pragma: no cover
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.github", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument(
        "--repo", action="append", default=None, help="OWNER/NAME; repeatable (default octo/app)"
    )
    parser.add_argument("--token", default=None, help="accept only this token (default: any)")
    parser.add_argument("--prefix", default="", help="API path prefix, e.g. /api/v3 as on GHES")
    parser.add_argument(
        "--state-file", type=Path, default=None, help="dump state here as JSON after every request"
    )
    parser.add_argument("--seed", type=Path, default=None, help="start from a state dump")
    args = parser.parse_args(argv)
    fake = GitHubFake(
        repos=args.repo or ["octo/app"],
        token=args.token,
        prefix=args.prefix,
        host=args.host,
        port=args.port,
        state_file=args.state_file,
    )
    if args.seed:
        fake.load_state(json.loads(args.seed.read_text(encoding="utf-8")))
    stopped = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    fake.start()
    print(fake.url, flush=True)
    while not stopped.wait(0.2):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
