"""GitHub through PyGithub: a configured client, and an idempotent GitHub Release publisher."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

from release_actions import __version__
from release_actions.core.assets import LocalAsset
from release_actions.core.versions import Version
from release_actions.errors import IntegrationError, InvalidVersionError, require

if TYPE_CHECKING:  # PyGithub is an extra, imported only inside the functions that use it
    import github
    from github.GitRelease import GitRelease
    from github.GitReleaseAsset import GitReleaseAsset
    from github.Repository import Repository
    from urllib3.util.retry import Retry

DEFAULT_API_URL = "https://api.github.com"
PERMISSIONS_YAML = "permissions:\n  contents: write"
# What a job needs to publish releases, shown whenever the token is missing or refused.
WORKFLOW_YAML = (
    "permissions:\n  contents: write\n"
    "# and on the step:\n"
    "env:\n  GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}"
)
# Retried as transient: GitHub's secondary rate limit answers 429 (or 403, which
# PyGithub's GithubRetry looks into), and 5xx are outages that usually pass.
RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class ClientSettings:
    """How patient the client is; every wait is bounded so a job never hangs on GitHub.

    The worst case of one call is about ``(retries + 1) * timeout`` plus the backoffs
    (each at most ``backoff_max``) plus ``retries * max_wait`` for rate limits; a
    Retry-After or rate-limit reset longer than ``max_wait`` fails at once instead.
    """

    timeout: int = 15
    retries: int = 4
    backoff: float = 1.0
    backoff_max: float = 30.0
    max_wait: float = 60.0
    per_page: int = 100
    # PyGithub's own pacing, which GitHub asks for to stay under secondary rate limits.
    seconds_between_requests: float = 0.25
    seconds_between_writes: float = 1.0

    ENV: ClassVar[dict[str, str]] = {
        "timeout": "RELEASE_ACTIONS_GITHUB_TIMEOUT",
        "retries": "RELEASE_ACTIONS_GITHUB_RETRIES",
        "backoff": "RELEASE_ACTIONS_GITHUB_BACKOFF",
        "max_wait": "RELEASE_ACTIONS_GITHUB_MAX_WAIT",
        # GitHub asks integrations to pace requests; a GHES or a test server may not need it.
        "seconds_between_requests": "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_REQUESTS",
        "seconds_between_writes": "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_WRITES",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClientSettings:
        """Defaults, each overridable by its ``RELEASE_ACTIONS_GITHUB_*`` variable (a slow GHES)."""
        values: dict[str, Any] = {}
        for name, var in cls.ENV.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            whole = name in ("timeout", "retries")
            try:
                value: float = int(raw) if whole else float(raw)
            except ValueError:
                value = -1
            if value < 0 or (name == "timeout" and value == 0):
                unit = "retries" if name == "retries" else "seconds"
                raise IntegrationError(
                    f"`{var}` is `{raw}`, which is not a valid number of {unit}.",
                    hint=f"Use a {'whole ' if whole else ''}number"
                    f"{' above 0' if name == 'timeout' else ', 0 or more'}, or unset it.",
                )
            values[name] = value
        return cls(**values)


def api_url(env: Mapping[str, str]) -> str:
    """GITHUB_API_URL (set by the runner, `https://HOST/api/v3` on GitHub Enterprise Server)."""
    url = (env.get("GITHUB_API_URL") or DEFAULT_API_URL).strip().rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise IntegrationError(
            f"`GITHUB_API_URL` is `{url}`, which is not an http(s) URL.",
            hint=f"Leave it unset for github.com ({DEFAULT_API_URL}); on GitHub Enterprise "
            "Server it is https://HOST/api/v3, which the runner sets by itself.",
        )
    return url


def resolve_token(env: Mapping[str, str], token: str | None = None) -> str:
    """The token to use: the one given, else GITHUB_TOKEN, else GH_TOKEN (as the gh CLI reads)."""
    for candidate in (token, env.get("GITHUB_TOKEN"), env.get("GH_TOKEN")):
        if candidate and candidate.strip():
            return candidate.strip()
    raise IntegrationError(
        "No GitHub token: set `GITHUB_TOKEN` (or `GH_TOKEN`) in the step's environment.",
        hint="The workflow's own token is enough when the job may write releases:\n"
        + WORKFLOW_YAML,
    )


def _retry(settings: ClientSettings, on_retry: Callable[[], None] | None = None) -> Retry:
    """``on_retry`` is told of every request sent again, so a caller that counts its
    requests (``metrics export``) counts each retry as the request it is."""
    from github.GithubException import RateLimitExceededExceedsMaxWait
    from github.GithubRetry import GithubRetry
    from urllib3.response import BaseHTTPResponse

    class BoundedRetry(GithubRetry):
        """GithubRetry that also waits out a 429's rate-limit reset, but never past max_wait."""

        def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
            after = super().get_retry_after(response)
            if after is None and response.headers.get("x-ratelimit-remaining") == "0":
                # GitHub: with no retry-after and remaining 0, wait until x-ratelimit-reset.
                reset = response.headers.get("x-ratelimit-reset", "")
                if reset.isdigit():
                    after = max(0.0, int(reset) - time.time()) + 1.0
            return after

        def increment(self, *args: Any, **kwargs: Any) -> Self:
            # Returns only when the request is sent again; out of retries, it raises.
            again = super().increment(*args, **kwargs)
            if on_retry is not None:
                on_retry()
            return cast(Self, again)

        def sleep_for_retry(self, response: BaseHTTPResponse) -> bool:
            after = self.get_retry_after(response)
            limit = self.max_rate_limit_wait
            if after is not None and limit is not None and after > limit:
                raise RateLimitExceededExceedsMaxWait(
                    response.status,
                    {"message": f"GitHub asked to wait {after:.0f} s before retrying"},
                    dict(response.headers),
                    wait=after,
                )
            return super().sleep_for_retry(response)

    return BoundedRetry(
        total=settings.retries,
        backoff_factor=settings.backoff,
        backoff_max=settings.backoff_max,
        status_forcelist=list(RETRY_STATUSES),
        # POST is retried too: publish_release settles a duplicate create by its 422.
        allowed_methods=frozenset({"GET", "HEAD", "OPTIONS", "POST", "PATCH", "PUT", "DELETE"}),
        # After the last retry PyGithub gets the response and raises with GitHub's message,
        # rather than requests' bare RetryError.
        raise_on_status=False,
        secondary_rate_wait=min(60.0, settings.max_wait),
        max_rate_limit_wait=settings.max_wait,
    )


def client(
    env: Mapping[str, str],
    token: str | None = None,
    *,
    settings: ClientSettings | None = None,
    on_retry: Callable[[], None] | None = None,
) -> github.Github:
    """A PyGithub client for GITHUB_API_URL with bounded retries, backoff and timeouts."""
    require("github", "github")
    import github

    settings = settings or ClientSettings.from_env(env)
    return github.Github(
        base_url=api_url(env),
        auth=github.Auth.Token(resolve_token(env, token)),
        timeout=settings.timeout,
        user_agent=f"release-actions/{__version__}",
        per_page=settings.per_page,
        retry=_retry(settings, on_retry),
        seconds_between_requests=settings.seconds_between_requests or None,
        seconds_between_writes=settings.seconds_between_writes or None,
    )


# -- errors ------------------------------------------------------------------------------


def _github_message(data: Any) -> str:
    """GitHub's error text: `message` plus each entry of `errors` (field and code, or message)."""
    if not isinstance(data, dict):
        return str(data or "").strip()[:300]
    message = str(data.get("message") or "").strip()
    details = []
    for entry in data.get("errors") or []:
        if isinstance(entry, dict):
            if entry.get("message"):
                details.append(str(entry["message"]))
            else:
                what = " ".join(str(entry[k]) for k in ("field", "code") if entry.get(k))
                details.append(what or str(entry))
        else:
            details.append(str(entry))
    return f"{message}: {'; '.join(details)}" if details else message


@contextmanager
def github_errors(action: str, *, repo: str | None = None) -> Iterator[None]:
    """Turn PyGithub and transport exceptions into IntegrationError saying what to do.

    ``action`` is what was being done ("Creating release v1.2.3"), ``repo`` the OWNER/NAME.
    """
    import requests
    from github import (
        BadCredentialsException,
        GithubException,
        RateLimitExceededExceedsMaxWait,
        RateLimitExceededException,
    )

    where = f" in {repo}" if repo else ""
    try:
        yield
    except RateLimitExceededExceedsMaxWait as exc:
        raise IntegrationError(
            f"{action}{where} failed: GitHub's rate limit asks for a wait of "
            f"{exc.wait or 0:.0f} s, longer than this step waits.",
            hint="Rerun the job later, or raise `RELEASE_ACTIONS_GITHUB_MAX_WAIT` (seconds).",
        ) from exc
    except RateLimitExceededException as exc:
        reset = (exc.headers or {}).get("x-ratelimit-reset", "")
        when = (
            time.strftime(" (it resets at %H:%M:%S UTC)", time.gmtime(int(reset)))
            if reset.isdigit()
            else ""
        )
        raise IntegrationError(
            f"{action}{where} failed: GitHub's rate limit was exceeded ({exc.status} "
            f"{_github_message(exc.data)}){when}.",
            hint="Rerun the job later; runs sharing one token share its rate limit.",
        ) from exc
    except BadCredentialsException as exc:
        raise IntegrationError(
            f"{action}{where} failed: GitHub rejected the token (401 {_github_message(exc.data)}).",
            hint="Pass a valid token in `GITHUB_TOKEN`, with the permission to write releases:\n"
            + WORKFLOW_YAML,
        ) from exc
    except GithubException as exc:
        message = _github_message(exc.data)
        status = exc.status
        if status == 403:
            raise IntegrationError(
                f"{action}{where} failed: the token is not allowed to do this (403 {message}).",
                hint="Grant the job write access to releases:\n"
                + PERMISSIONS_YAML
                + "\n(a fine-grained token needs Contents: Read and write on the repository).",
            ) from exc
        if status == 404:
            raise IntegrationError(
                f"{action}{where} failed: GitHub answered 404 Not Found.",
                hint="Check the repository name (`--repo` or GITHUB_REPOSITORY, as OWNER/NAME). "
                "GitHub also answers 404 when the token cannot see a private repository: give "
                "the token access to it, with\n" + PERMISSIONS_YAML,
            ) from exc
        if status == 422:
            raise IntegrationError(
                f"{action}{where} failed: GitHub refused it (422 {message})."
            ) from exc
        if status == 429 or status >= 500:
            raise IntegrationError(
                f"{action}{where} failed: GitHub answered {status} {message or 'with an error'} "
                "and kept doing so through every retry.",
                hint="GitHub may be degraded (https://www.githubstatus.com); rerun the job later.",
            ) from exc
        raise IntegrationError(
            f"{action}{where} failed: GitHub answered {status} {message}."
        ) from exc
    except requests.exceptions.RequestException as exc:
        if _timed_out(exc):
            raise IntegrationError(
                f"{action}{where} failed: GitHub did not answer in time, through every retry.",
                hint="Rerun the job later, or raise `RELEASE_ACTIONS_GITHUB_TIMEOUT` (seconds).",
            ) from exc
        raise IntegrationError(
            f"{action}{where} failed: cannot reach GitHub ({_transport_reason(exc)}).",
            hint="Check `GITHUB_API_URL` and the runner's network.",
        ) from exc


def _innermost(exc: Exception) -> object:
    """urllib3's own reason under requests' wrapper, where retries have run out."""
    from urllib3.exceptions import MaxRetryError

    cause = exc.args[0] if exc.args else None
    return cause.reason if isinstance(cause, MaxRetryError) else cause


def _transport_reason(exc: Exception) -> str:
    reason = _innermost(exc)
    text = str(reason if reason is not None else exc)
    # urllib3 prefixes the pool's repr; the tail ("[Errno 111] Connection refused") is the news.
    return f"{type(reason).__name__ if reason is not None else type(exc).__name__}: {text.rsplit(': ', 1)[-1]}"


def _timed_out(exc: Exception) -> bool:
    """Whether a transport error was a timeout: once retries run out, requests reports a
    read timeout as a ConnectionError wrapping urllib3's MaxRetryError."""
    import requests
    from urllib3.exceptions import NewConnectionError, TimeoutError

    reason = _innermost(exc)
    # NewConnectionError (refused, no route) is a TimeoutError subclass only for history.
    return isinstance(exc, requests.exceptions.Timeout) or (
        isinstance(reason, TimeoutError) and not isinstance(reason, NewConnectionError)
    )


def open_repo(
    env: Mapping[str, str], name: str | None, mask: Any
) -> tuple[github.Github, Repository]:
    """The client and the repository ``name`` (default: ``GITHUB_REPOSITORY``) with the
    environment's token, masked the moment it is read."""
    from release_actions.errors import ReleaseActionsError

    full_name = (name or env.get("GITHUB_REPOSITORY", "")).strip()
    if not full_name:
        raise ReleaseActionsError(
            "No repository: pass `--repo OWNER/NAME` or set `GITHUB_REPOSITORY`.",
            hint="Inside GitHub Actions the runner sets GITHUB_REPOSITORY by itself.",
        )
    token = resolve_token(env)
    mask(token)
    gh = client(env, token)
    return gh, get_repo(gh, full_name)


def get_repo(gh: github.Github, full_name: str) -> Repository:
    """The repository OWNER/NAME, checked for shape first so a typo gets a plain answer."""
    owner, _, name = full_name.partition("/")
    if not owner or not name or "/" in name:
        raise IntegrationError(
            f"`{full_name}` is not a repository name: expected OWNER/NAME, such as `octo/app`."
        )
    with github_errors("Reading the repository", repo=full_name):
        return gh.get_repo(full_name)


# -- releases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleasePlan:
    """What publish_release will do and why; a dry run prints it and stops."""

    repo: str
    tag: str
    version: str
    name: str
    draft: bool
    prerelease: bool
    make_latest: bool
    latest_reason: str
    action: str  # "create" or "update"
    existing_id: int | None
    duplicates: tuple[int, ...]
    # The release before this one by SemVer (a final release counts finals only), which
    # GitHub's generated notes start from; None when there is none.
    previous_tag: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReleaseResult:
    """The published release; ``created`` for a new one, ``updated`` when one was found."""

    id: int
    tag: str
    name: str
    html_url: str
    upload_url: str
    created: bool
    updated: bool
    prerelease: bool
    draft: bool
    make_latest: bool
    latest_reason: str
    duplicates: tuple[int, ...] = ()
    # False on a rerun that found the release, and every asset, already as wanted.
    changed: bool = True
    assets: tuple[AssetResult, ...] = ()
    discussion_url: str | None = None
    previous_tag: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AssetResult:
    """One asset after the run: ``action`` is `uploaded`, `replaced` or `unchanged`."""

    name: str
    action: str
    reason: str
    id: int
    url: str
    size: int
    sha256: str
    content_type: str


def _tag_version(tag: str, prefix: str) -> Version | None:
    for candidate_prefix in (prefix, ""):
        try:
            return Version.parse(tag, prefix=candidate_prefix)
        except InvalidVersionError:
            continue
    return None


def _pick_existing(
    releases: list[GitRelease], tag: str
) -> tuple[GitRelease | None, tuple[int, ...]]:
    """The release of ``tag`` to update, and any other drafts that share the tag.

    A published release wins; among drafts only, the oldest, so reruns keep choosing the same.
    """
    same = sorted((r for r in releases if r.tag_name == tag), key=lambda r: (r.draft, r.id))
    if not same:
        return None, ()
    return same[0], tuple(r.id for r in same[1:])


def _plan(
    repo: Repository,
    tag: str,
    *,
    version: Version,
    name: str | None,
    draft: bool,
    prerelease: bool | None,
    make_latest: bool | None,
    tag_prefix: str,
) -> tuple[ReleasePlan, GitRelease | None]:
    with github_errors("Listing releases", repo=repo.full_name):
        # Every page: a draft is only found here (releases/tags/{tag} hides drafts), and
        # a higher release may sit on any page.
        releases = list(repo.get_releases())
    existing, duplicates = _pick_existing(releases, tag)
    pre = version.is_prerelease if prerelease is None else prerelease
    higher = [
        (v, r.tag_name)
        for r in releases
        if r.tag_name != tag
        and not r.draft
        and not r.prerelease
        and (v := _tag_version(r.tag_name, tag_prefix)) is not None
        and v > version
    ]
    if draft or pre:
        latest, reason = False, "drafts and pre-releases are never the latest release"
    elif make_latest is not None:
        latest, reason = make_latest, f"--make-latest {'true' if make_latest else 'false'}"
    elif higher:
        top = max(higher)[1]
        latest, reason = False, f"{top} is a higher release"
    else:
        latest, reason = True, "it is the highest release"
    earlier = [
        (v, r.tag_name)
        for r in releases
        if r.tag_name != tag
        and not r.draft
        and (v := _tag_version(r.tag_name, tag_prefix)) is not None
        and v < version
        and (version.is_prerelease or not v.is_prerelease)
    ]
    plan = ReleasePlan(
        repo=repo.full_name,
        tag=tag,
        version=str(version),
        name=name or (existing.name if existing is not None and existing.name else tag),
        draft=draft,
        prerelease=pre,
        make_latest=latest,
        latest_reason=reason,
        action="update" if existing is not None else "create",
        existing_id=existing.id if existing is not None else None,
        duplicates=duplicates,
        previous_tag=max(earlier)[1] if earlier else None,
    )
    return plan, existing


def _version_of(tag: str, version: Version | None, tag_prefix: str) -> Version:
    if version is not None:
        return version
    return Version.parse(tag, prefix=tag_prefix) if tag_prefix else Version.parse(tag)


def plan_release(
    repo: Repository,
    tag: str,
    *,
    name: str | None = None,
    draft: bool = False,
    prerelease: bool | None = None,
    make_latest: bool | None = None,
    version: Version | None = None,
    tag_prefix: str = "v",
) -> ReleasePlan:
    """Decide, reading only, what :func:`publish_release` would do with these arguments."""
    plan, _ = _plan(
        repo,
        tag,
        version=_version_of(tag, version, tag_prefix),
        name=name,
        draft=draft,
        prerelease=prerelease,
        make_latest=make_latest,
        tag_prefix=tag_prefix,
    )
    return plan


GENERATED_HEADING = "### Generated release notes"
CHECKSUMS_HEADING = "### Checksums (SHA-256)"


def compose_body(notes: str, generated: str | None = None, checksums: str = "") -> str:
    """The release body: the notes, then GitHub's generated notes, then the checksums.

    With neither extra the notes are returned byte for byte. GitHub's own `## ` headings
    are demoted two levels, so they sit under the generated-notes heading.
    """
    if not generated and not checksums:
        return notes
    nl = "\r\n" if "\r\n" in notes else "\n"
    parts = [notes.rstrip()] if notes.strip() else []
    if generated and generated.strip():
        text = re.sub(r"(?m)^(#{1,4}) ", r"##\1 ", generated.strip().replace("\r\n", "\n"))
        parts.append(f"{GENERATED_HEADING}\n\n{text}".replace("\n", nl))
    if checksums:
        parts.append(f"{CHECKSUMS_HEADING}\n\n```text\n{checksums}```".replace("\n", nl))
    return (nl + nl).join(parts) + nl


def generate_notes(
    repo: Repository, tag: str, *, previous_tag: str | None, target_commitish: str | None
) -> str:
    """GitHub's generated notes for ``tag`` since ``previous_tag`` (``{name, body}``'s body).

    Asked for separately, not with `generate_release_notes` on the create: that puts them
    in place of the body on a new release and is ignored on an update, while here they
    come after the CHANGELOG section on every run alike.
    """
    from github.GithubObject import NotSet

    with github_errors(f"Generating release notes for {tag}", repo=repo.full_name):
        notes = repo.generate_release_notes(
            tag,
            previous_tag_name=previous_tag or NotSet,
            target_commitish=target_commitish or NotSet,
        )
    return notes.body or ""


def publish_release(
    repo: Repository,
    tag: str,
    body: str,
    *,
    name: str | None = None,
    draft: bool = False,
    prerelease: bool | None = None,
    make_latest: bool | None = None,
    target_commitish: str | None = None,
    version: Version | None = None,
    tag_prefix: str = "v",
    assets: Sequence[LocalAsset] = (),
    generate_release_notes: bool = False,
    checksums: str = "",
    discussion_category: str | None = None,
) -> ReleaseResult:
    """Create the GitHub Release of ``tag``, or update the one a previous run made.

    ``prerelease`` None: from SemVer (any pre-release identifier, `rc` too). ``make_latest``
    None: latest unless a higher published non-prerelease SemVer release exists. A rerun
    finds the existing release (a draft too) and updates it, only where it differs; a
    create that loses a race (422 already_exists) finds the winner and updates it, so
    there is never a second one. ``body`` is followed by GitHub's generated notes when
    ``generate_release_notes``, then by ``checksums`` (`sha256sum` lines) when given.
    ``assets`` are uploaded, replaced when their content changed, left when identical.
    """
    from github import GithubException

    if draft and discussion_category:
        raise IntegrationError(
            "`discussion-category` cannot be used with `draft`: GitHub opens no discussion "
            "for a draft release.",
            hint="Publish the release (no `draft`), or leave `discussion-category` empty.",
        )
    plan, existing = _plan(
        repo,
        tag,
        version=_version_of(tag, version, tag_prefix),
        name=name,
        draft=draft,
        prerelease=prerelease,
        make_latest=make_latest,
        tag_prefix=tag_prefix,
    )
    generated = (
        generate_notes(repo, tag, previous_tag=plan.previous_tag, target_commitish=target_commitish)
        if generate_release_notes
        else None
    )
    body = compose_body(body, generated, checksums)
    latest = "true" if plan.make_latest else "false"
    created = False
    changed = True
    release: GitRelease
    if existing is None:
        with github_errors(f"Creating release {tag}", repo=repo.full_name):
            try:
                release = _create_release(
                    repo, tag, plan, body, target_commitish, latest, discussion_category
                )
                created = True
            except GithubException as exc:
                if not _already_exists(exc):
                    raise
                # Another run created it between our listing and our create (or our own
                # create timed out after GitHub had done it): update that one instead.
        if not created:
            with github_errors("Listing releases", repo=repo.full_name):
                existing, dupes = _pick_existing(list(repo.get_releases()), tag)
            if existing is None:
                raise IntegrationError(
                    f"Creating release {tag} in {repo.full_name} failed: GitHub says a release "
                    "of this tag exists, but the release list does not show it.",
                    hint="The token may not see draft releases (it needs `contents: write`):\n"
                    + PERMISSIONS_YAML,
                )
            plan = replace(plan, duplicates=dupes, action="update", existing_id=existing.id)
    if not created:
        assert existing is not None
        if not existing.draft and plan.draft:
            raise IntegrationError(
                f"Release {tag} in {repo.full_name} is already published; refusing to turn it "
                "back into a draft.",
                hint="Publish without `--draft`, or delete the release first if a draft is wanted.",
            )
        with github_errors(f"Updating release {tag}", repo=repo.full_name):
            # A discussion is opened once; asking again on a rerun would open nothing new.
            discussion = (
                discussion_category if discussion_category and not existing.discussion_url else None
            )
            changed = _differs(repo, existing, plan, body, target_commitish, discussion)
            if changed:
                release = _update_release(
                    existing, plan, body, target_commitish, latest, discussion
                )
            else:
                release = existing
    uploaded = sync_assets(release, assets, repo_name=repo.full_name) if assets else []
    return ReleaseResult(
        id=release.id,
        tag=release.tag_name,
        name=release.name or plan.name,
        html_url=release.html_url,
        upload_url=release.upload_url,
        created=created,
        updated=not created,
        prerelease=release.prerelease,
        draft=release.draft,
        make_latest=plan.make_latest,
        latest_reason=plan.latest_reason,
        duplicates=plan.duplicates,
        changed=changed or any(a.action != "unchanged" for a in uploaded),
        assets=tuple(uploaded),
        discussion_url=release.discussion_url if discussion_category else None,
        previous_tag=plan.previous_tag,
    )


def _discussion_refused(exc: Exception, category: str | None) -> IntegrationError | None:
    """GitHub's answer to an unknown discussion category (404 "Discussion could not be
    created"), as the error that says what to do; None for any other error."""
    message = _github_message(getattr(exc, "data", None))
    if not category or "discussion" not in message.lower():
        return None
    return IntegrationError(
        f"GitHub could not open a discussion in the category `{category}` "
        f"({getattr(exc, 'status', '?')} {message}).",
        hint="The category must already exist (repository Settings > Discussions: "
        "categories are matched by name, case included), and the job needs\n"
        "permissions:\n  contents: write\n  discussions: write\n"
        "Or leave `discussion-category` empty.",
    )


def _create_release(
    repo: Repository,
    tag: str,
    plan: ReleasePlan,
    body: str,
    target_commitish: str | None,
    latest: str,
    discussion_category: str | None,
) -> GitRelease:
    """POST /releases; PyGithub's create_git_release has no `discussion_category_name`."""
    from github import GithubException
    from github.GitRelease import GitRelease

    params: dict[str, Any] = {
        "tag_name": tag,
        "name": plan.name,
        "body": body,
        "draft": plan.draft,
        "prerelease": plan.prerelease,
        "make_latest": latest,
    }
    if target_commitish:
        params["target_commitish"] = target_commitish
    if discussion_category:
        params["discussion_category_name"] = discussion_category
    try:
        headers, data = repo.requester.requestJsonAndCheck(
            "POST", f"{repo.url}/releases", input=params
        )
    except GithubException as exc:
        refused = _discussion_refused(exc, discussion_category)
        if refused is not None:
            raise refused from exc
        raise
    return GitRelease(repo.requester, headers, data, completed=True)


def _update_release(
    existing: GitRelease,
    plan: ReleasePlan,
    body: str,
    target_commitish: str | None,
    latest: str,
    discussion_category: str | None,
) -> GitRelease:
    from github import GithubException
    from github.GithubObject import NotSet

    try:
        return existing.update_release(
            name=plan.name,
            message=body,
            draft=plan.draft,
            prerelease=plan.prerelease,
            target_commitish=target_commitish or NotSet,
            make_latest=latest,
            discussion_category_name=discussion_category or NotSet,
        )
    except GithubException as exc:
        refused = _discussion_refused(exc, discussion_category)
        if refused is not None:
            raise refused from exc
        raise


def _differs(
    repo: Repository,
    existing: GitRelease,
    plan: ReleasePlan,
    body: str,
    target_commitish: str | None,
    discussion_category: str | None,
) -> bool:
    """Whether the existing release differs from the plan (title, body, flags, latest)."""
    from github import UnknownObjectException

    if (
        (existing.name or "") != plan.name
        or (existing.body or "") != body
        or existing.draft != plan.draft
        or existing.prerelease != plan.prerelease
        or (target_commitish and existing.target_commitish != target_commitish)
        or discussion_category
    ):
        return True
    if plan.draft or plan.prerelease:
        return False  # never the latest, whatever make_latest says
    try:
        current = repo.get_latest_release().id
    except UnknownObjectException:
        current = None
    return (current == existing.id) != plan.make_latest


# -- assets ----------------------------------------------------------------------------------


def _identical(remote: GitReleaseAsset, local: LocalAsset) -> bool:
    return (
        remote.state == "uploaded"
        and remote.size == local.size
        and remote.digest == f"sha256:{local.sha256}"
    )


def sync_assets(
    release: GitRelease, assets: Sequence[LocalAsset], *, repo_name: str
) -> list[AssetResult]:
    """Upload each asset once: an asset of the same name is replaced, or left when its
    size and SHA-256 digest are the same. Assets of the release not in ``assets`` stay."""
    tag = release.tag_name
    with github_errors(f"Listing the assets of release {tag}", repo=repo_name):
        current = {a.name: a for a in release.get_assets()}
    results = []
    for local in assets:
        old = current.get(local.name)
        if old is not None and _identical(old, local):
            results.append(_asset_result(old, local, "unchanged", "same size and SHA-256"))
            continue
        if old is None:
            action, reason = "uploaded", "new"
        elif old.state != "uploaded":
            action, reason = "replaced", f"an earlier upload was left unfinished ({old.state})"
        elif old.digest is None:
            action, reason = "replaced", "GitHub gave no digest to compare"
        else:
            action, reason = "replaced", "its content changed"
        with github_errors(f"Replacing the asset {local.name} of release {tag}", repo=repo_name):
            if old is not None:
                old.delete_asset()
        remote = _upload(release, local, repo_name)
        results.append(_asset_result(remote, local, action, reason))
    return results


def _asset_result(
    remote: GitReleaseAsset, local: LocalAsset, action: str, reason: str
) -> AssetResult:
    return AssetResult(
        name=remote.name,
        action=action,
        reason=reason,
        id=remote.id,
        url=remote.browser_download_url,
        size=local.size,
        sha256=local.sha256,
        content_type=local.content_type,
    )


def _upload(release: GitRelease, local: LocalAsset, repo_name: str) -> GitReleaseAsset:
    """POST the file to the release's upload_url, and check what GitHub stored."""
    from github import GithubException

    action = f"Uploading {local.shown} to release {release.tag_name}"
    with github_errors(action, repo=repo_name):
        try:
            remote = _post_asset(release, local)
        except GithubException as exc:
            if not _asset_exists(exc):
                raise
            # A retried upload whose first try reached GitHub, or a 502 that left an
            # empty `starter` asset behind, finds the name taken: settle it once.
            twin = next((a for a in release.get_assets() if a.name == local.name), None)
            if twin is not None and _identical(twin, local):
                return twin
            if twin is not None:
                twin.delete_asset()
            remote = _post_asset(release, local)
    stored = (remote.size, remote.digest)
    if remote.size != local.size or remote.digest not in (None, f"sha256:{local.sha256}"):
        raise IntegrationError(
            f"{action} in {repo_name} failed: GitHub stored {stored[0]} bytes "
            f"({stored[1]}), the file has {local.size} (sha256:{local.sha256}).",
            hint="Rerun the job: the next run replaces the asset.",
        )
    return remote


def _post_asset(release: GitRelease, local: LocalAsset) -> GitReleaseAsset:
    # A file object, not bytes: urllib3 rewinds it for a retry, and a large file is streamed.
    with io.BytesIO(local.data) if local.data is not None else local.path.open("rb") as fh:
        return release.upload_asset_from_memory(
            fh, local.size, local.name, content_type=local.content_type
        )


def _asset_exists(exc: Exception) -> bool:
    data = getattr(exc, "data", None)
    if getattr(exc, "status", None) != 422 or not isinstance(data, dict):
        return False
    return any(
        isinstance(e, dict) and e.get("code") == "already_exists" and e.get("field") == "name"
        for e in data.get("errors") or []
    )


def _already_exists(exc: Exception) -> bool:
    data = getattr(exc, "data", None)
    if getattr(exc, "status", None) != 422 or not isinstance(data, dict):
        return False
    return any(
        isinstance(e, dict) and e.get("code") == "already_exists" and e.get("field") == "tag_name"
        for e in data.get("errors") or []
    )


@dataclass(frozen=True)
class FloatingTag:
    tag: str
    floating: str
    sha: str | None
    moved: bool
    reason: str


def move_floating_tag(repo: Any, tag: str, version: Version, *, prefix: str = "v") -> FloatingTag:
    """Point `v<major>` at ``tag``'s commit, as action repositories keep `@v1` current.

    Only a release moves it, and only when no higher release of the same major exists, so
    a patch to an older line never drags `v1` backwards. The floating tag is lightweight
    and moved with force: it exists to move.
    """
    floating = f"{prefix}{version.major}"
    if version.is_prerelease:
        return FloatingTag(tag, floating, None, False, f"{tag} is a pre-release; {floating} stays.")
    with github_errors(f"Listing the {floating}.x.y tags", repo=repo.full_name):
        refs = list(repo.get_git_matching_refs(f"tags/{floating}."))
        higher = []
        for ref in refs:
            name = ref.ref.removeprefix("refs/tags/")
            try:
                other = Version.parse(name, prefix=prefix)
            except InvalidVersionError:
                continue
            if not other.is_prerelease and other.major == version.major and other > version:
                higher.append(name)
        if higher:
            return FloatingTag(
                tag,
                floating,
                None,
                False,
                f"{max(higher, key=lambda n: Version.parse(n, prefix=prefix))} is higher; "
                f"{floating} stays where it is.",
            )
        target = repo.get_git_ref(f"tags/{tag}").object
        sha = target.sha
        if target.type == "tag":  # an annotated tag: the floating tag points at its commit
            sha = repo.get_git_tag(sha).object.sha
    with github_errors(f"Moving {floating} to {tag}", repo=repo.full_name):
        try:
            current = repo.get_git_ref(f"tags/{floating}")
        except Exception as exc:  # PyGithub raises UnknownObjectException for a 404
            if getattr(exc, "status", None) != 404:
                raise
            repo.create_git_ref(f"refs/tags/{floating}", sha)
            return FloatingTag(
                tag, floating, sha, True, f"{floating} created at {tag} ({sha[:12]})."
            )
        if current.object.sha == sha:
            return FloatingTag(tag, floating, sha, False, f"{floating} already points at {tag}.")
        current.edit(sha, force=True)
    return FloatingTag(tag, floating, sha, True, f"{floating} moved to {tag} ({sha[:12]}).")


# -- a pull request with one file change -----------------------------------------------------


@dataclass(frozen=True)
class FileProposal:
    """What ``propose_file`` did: ``changed`` is False when a rerun found everything in place."""

    path: str
    branch: str
    base: str
    created_branch: bool = False
    committed: str | None = None
    pull_number: int | None = None
    pull_url: str | None = None
    created_pull: bool = False
    edited_pull: bool = False
    reason: str = ""

    @property
    def changed(self) -> bool:
        return self.created_branch or bool(self.committed) or self.created_pull or self.edited_pull

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


def _missing(exc: Exception) -> bool:
    return getattr(exc, "status", None) == 404


def _file_at(repo: Any, path: str, ref: str) -> tuple[str, str] | None:
    """``(text, blob sha)`` of ``path`` at ``ref``, or None where it is no file."""
    try:
        found = repo.get_contents(path, ref=ref)
    except Exception as exc:  # PyGithub raises UnknownObjectException for a 404
        if not _missing(exc):
            raise
        return None
    if isinstance(found, list) or getattr(found, "type", "file") != "file":
        raise IntegrationError(f"`{path}` is a directory in {repo.full_name}, not a file.")
    return found.decoded_content.decode("utf-8"), found.sha


def read_file(repo: Any, path: str, ref: str | None = None) -> tuple[str, str] | None:
    """The text and blob SHA of ``path`` at ``ref`` (default: the default branch), or None."""
    ref = ref or repo.default_branch
    with github_errors(f"Reading `{path}` at {ref}", repo=repo.full_name):
        return _file_at(repo, path, ref)


def propose_file(
    repo: Any,
    *,
    path: str,
    text: str,
    branch: str,
    title: str,
    body: str,
    message: str,
    base: str | None = None,
) -> FileProposal:
    """Open, or bring up to date, a pull request from ``branch`` that sets ``path`` to ``text``.

    Idempotent by the branch name: the branch is made from ``base``'s head (default: the
    default branch) through the git refs API when it does not exist; the file is written
    through the contents API with the SHA it was read with, and only when it differs (a
    409, someone else's write in between, reads it again once); the open pull request of
    the branch is reused, its title and body edited when they differ. A rerun with the
    same text changes nothing. Where ``base`` already holds ``text`` there is nothing to
    propose and nothing is written.
    """
    base = base or repo.default_branch
    where = repo.full_name
    if branch == base:
        raise IntegrationError(
            f"The pull request's branch is `{branch}`, the base branch itself.",
            hint="Give `--branch` a name of its own, such as `release/version-config-1.6.0`.",
        )
    with github_errors(f"Reading `{path}` and `{branch}`", repo=where):
        base_sha = repo.get_git_ref(f"heads/{base}").object.sha
        on_base = _file_at(repo, path, base)
        open_pulls = list(repo.get_pulls(state="open", head=f"{repo.owner.login}:{branch}"))
        try:
            ref = repo.get_git_ref(f"heads/{branch}")
        except Exception as exc:
            if not _missing(exc):
                raise
            ref = None
    pull = next((p for p in open_pulls if p.base.ref == base), None)
    if on_base is not None and on_base[0] == text and pull is None:
        return FileProposal(path, branch, base, reason=f"`{path}` on {base} is already so.")
    created_branch = False
    if ref is None:
        with github_errors(f"Creating branch `{branch}`", repo=where):
            repo.create_git_ref(f"refs/heads/{branch}", base_sha)
        created_branch = True
    elif pull is None and ref.object.sha != base_sha:
        # Left from an earlier proposal that was merged or closed: start again from the base,
        # so the new pull request holds this change alone.
        with github_errors(f"Moving branch `{branch}` to {base}", repo=where):
            ref.edit(base_sha, force=True)
        created_branch = True
    committed = None
    with github_errors(f"Writing `{path}` on `{branch}`", repo=where):
        for attempt in (1, 2):
            current = _file_at(repo, path, branch)
            if current is not None and current[0] == text:
                break
            try:
                if current is None:
                    result = repo.create_file(path, message, text, branch=branch)
                else:
                    result = repo.update_file(path, message, text, current[1], branch=branch)
            except Exception as exc:
                # 409: the file changed between our read and our write; read it once more.
                if getattr(exc, "status", None) != 409 or attempt == 2:
                    raise
                continue
            committed = result["commit"].sha
            break
    edited = created = False
    with github_errors(f"Opening the pull request from `{branch}`", repo=where):
        if pull is None:
            pull = repo.create_pull(title=title, body=body, head=branch, base=base)
            created = True
        elif pull.title != title or (pull.body or "") != body:
            pull.edit(title=title, body=body)
            edited = True
    proposal = FileProposal(
        path,
        branch,
        base,
        created_branch=created_branch,
        committed=committed,
        pull_number=pull.number,
        pull_url=pull.html_url,
        created_pull=created,
        edited_pull=edited,
    )
    what = "opened" if created else "updated" if proposal.changed else "already up to date"
    return replace(proposal, reason=f"Pull request #{pull.number} {what}: {pull.html_url}")
