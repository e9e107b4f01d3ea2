"""LaunchDarkly over its REST API v2: the kill switch, and the flags' listing, statuses, audit log and semantic patches."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote, unquote

import requests

from release_actions.errors import IntegrationError
from release_actions.metrics.retry import RetryPolicy, header

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://app.launchdarkly.com"
# Pinned, as LaunchDarkly asks integrations to: a token's own default version may differ.
API_VERSION = "20240415"
TOKEN_ENV = ("LAUNCHDARKLY_API_TOKEN", "LD_API_KEY")
PROJECT_ENV = "LAUNCHDARKLY_PROJECT"
ENV_YAML = (
    "env:\n"
    "  LD_API_KEY: ${{ secrets.LD_API_KEY }}  # a service token with the Writer role\n"
    "  LAUNCHDARKLY_PROJECT: triptrip"
)
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
# A failed `test` op: LaunchDarkly does not document which of these it answers.
_PRECONDITION = frozenset({400, 409, 422})


@dataclass(frozen=True)
class KillResult:
    """What ``turn_off`` did: ``changed`` is False when the flag was already off."""

    changed: bool
    project: str
    flag_key: str
    environment: str
    version: int | None
    detail: str


class _LaunchDarklyApi:
    """One project's REST API: the token checked, every request retried the same way.

    429 waits for ``Retry-After`` or ``X-Ratelimit-Reset`` (epoch milliseconds), 5xx and no
    answer back off, both bounded by ``retry``; anything else is the caller's to read.
    """

    def __init__(
        self,
        session: requests.Session | None,
        *,
        api_token: str,
        project: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not api_token:
            raise IntegrationError(
                "No LaunchDarkly API access token was given.", hint=f"Set it:\n{ENV_YAML}"
            )
        if api_token.startswith(("sdk-", "mob-")):
            raise IntegrationError(
                "The LaunchDarkly token is an SDK or mobile key, which cannot use the REST API.",
                hint="Create an API access token (it starts with `api-`) with a role that may "
                "update flags, and pass that instead.",
            )
        self.session = session or requests.Session()
        self.api_token = api_token
        self.project = project
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy(
            attempts=5, total_seconds=60.0, backoff_initial=1.0, jitter=0.5, retry_after_cap=30.0
        )
        self.now = now

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, project: str | None = None, **kwargs: Any) -> Self:
        token = next((env[k] for k in TOKEN_ENV if env.get(k)), "")
        if not token:
            raise IntegrationError(
                f"No LaunchDarkly API token: set {' or '.join(f'`{k}`' for k in TOKEN_ENV)}.",
                hint=f"Pass the secret through `env:`:\n{ENV_YAML}",
            )
        project = project or env.get(PROJECT_ENV)
        if not project:
            raise IntegrationError(
                f"No LaunchDarkly project: pass `project` or set `{PROJECT_ENV}`.",
                hint=f"Set it:\n{ENV_YAML}",
            )
        return cls(None, api_token=token, project=project, **kwargs)

    def _call(
        self,
        method: str,
        url: str,
        subject: str,
        *,
        deadline: float | None,
        content_type: str = "application/json",
        **kwargs: Any,
    ) -> requests.Response:
        """One request, repeated while the answer is worth waiting for (429, 5xx, no answer).

        ``subject`` names what is asked for in the error, such as "flag `x`".
        """
        if deadline is None:
            deadline = self.retry.deadline()
        headers = {
            "Authorization": self.api_token,
            "LD-API-Version": API_VERSION,
            "Accept": "application/json",
        }
        if "json" in kwargs:
            headers["Content-Type"] = content_type
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = self.session.request(
                    method, url, headers=headers, timeout=self.timeout, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"no answer ({type(exc).__name__})"
            else:
                if response.status_code not in _TRANSIENT:
                    return response
                problem = f"HTTP {response.status_code}: {_message(response)}"
                if response.status_code == 429:
                    wait = self._rate_limit_wait(response)
            if wait is None:
                wait = self.retry.backoff(attempt)
            wait = min(max(wait, 0.0), self.retry.retry_after_cap)
            if attempt >= self.retry.attempts or self.retry.clock() + wait > deadline:
                raise IntegrationError(
                    f"LaunchDarkly did not answer {method} for {subject} in project "
                    f"`{self.project}` after {attempt} attempt(s): {problem}.",
                    hint="LaunchDarkly is rate limiting this account: the limit is shared by "
                    "all its tokens, so try again shortly."
                    if "429" in problem
                    else "Check https://status.launchdarkly.com and that the runner can reach "
                    f"{self.base_url}.",
                )
            log.warning(
                "launchdarkly: %s %s: %s; retrying in %.1f s (attempt %d of %d)",
                method, subject, problem, wait, attempt + 1, self.retry.attempts,
            )  # fmt: skip
            self.retry.sleep(wait)

    def _rate_limit_wait(self, response: requests.Response) -> float | None:
        """``Retry-After`` (seconds, IP limits) first, else ``X-Ratelimit-Reset`` (epoch ms)."""
        retry_after = header(response.headers, "Retry-After")
        if retry_after is not None:
            try:
                return float(retry_after)
            except ValueError:
                pass
        reset = header(response.headers, "X-Ratelimit-Reset")
        if reset is not None:
            try:
                return max(float(reset) / 1000.0 - self.now(), 0.0)
            except ValueError:
                return None
        return None


class LaunchDarklyKillSwitch(_LaunchDarklyApi):
    """Turns flags off with the JSON patch of the source document's rollback option C.

    The patch tests that the flag is on before it replaces ``on`` with false, after a GET
    that answers "already off" without writing: so a second call (or a flag someone turned
    off meanwhile) reports ``changed=False`` and leaves no second audit-log entry. 429 waits
    for ``Retry-After`` or ``X-Ratelimit-Reset`` (epoch milliseconds), 5xx backs off; 401,
    403 and 404 fail at once with what to check.
    """

    def flag_url(self, flag_key: str) -> str:
        return (
            f"{self.base_url}/api/v2/flags/{quote(self.project, safe='')}/"
            f"{quote(flag_key, safe='')}"
        )

    def is_on(self, flag_key: str, environment: str) -> bool:
        flag = self._get(flag_key, environment)
        return bool(self._environment(flag, flag_key, environment).get("on"))

    def turn_off(
        self, flag_key: str, environment: str = "production", *, comment: str | None = None
    ) -> KillResult:
        """Turn ``flag_key`` off in ``environment``; idempotent, see the class docstring."""
        deadline = self.retry.deadline()
        attempt = 0
        while True:
            attempt += 1
            flag = self._get(flag_key, environment, deadline=deadline)
            env = self._environment(flag, flag_key, environment)
            if not env.get("on"):
                return self._result(False, flag, flag_key, environment, "already off")
            path = f"/environments/{_pointer(environment)}/on"
            body: dict[str, Any] = {
                "patch": [
                    {"op": "test", "path": path, "value": True},
                    {"op": "replace", "path": path, "value": False},
                ]
            }
            if comment:
                body["comment"] = comment
            response = self._send("PATCH", flag_key, environment, deadline=deadline, json=body)
            if response.status_code < 300:
                return self._result(True, _json(response), flag_key, environment, "turned off")
            if response.status_code in _PRECONDITION and attempt < self.retry.attempts:
                # Someone changed the flag between our read and our write: read it again.
                log.warning(
                    "launchdarkly: %s on `%s` (%s); reading the flag again",
                    response.status_code, flag_key, _message(response),
                )  # fmt: skip
                continue
            raise self._failure(response, flag_key, environment)

    # -- HTTP --------------------------------------------------------------------------

    def _get(
        self, flag_key: str, environment: str, *, deadline: float | None = None
    ) -> dict[str, Any]:
        response = self._send(
            "GET", flag_key, environment, deadline=deadline, params={"env": environment}
        )
        if response.status_code >= 300:
            raise self._failure(response, flag_key, environment)
        return _json(response)

    def _send(
        self,
        method: str,
        flag_key: str,
        environment: str,
        *,
        deadline: float | None,
        **kwargs: Any,
    ) -> requests.Response:
        return self._call(
            method, self.flag_url(flag_key), f"flag `{flag_key}`", deadline=deadline, **kwargs
        )

    # -- answers ---------------------------------------------------------------------------

    def _environment(self, flag: Mapping[str, Any], flag_key: str, environment: str) -> Any:
        env = (flag.get("environments") or {}).get(environment)
        if not isinstance(env, dict):
            raise IntegrationError(
                f"LaunchDarkly flag `{flag_key}` in project `{self.project}` has no environment "
                f"`{environment}`.",
                hint="`environment` is the environment's key (as in the flag's URL), such as "
                "`production`.",
            )
        return env

    def _result(
        self, changed: bool, flag: Mapping[str, Any], key: str, environment: str, what: str
    ) -> KillResult:
        version = flag.get("_version")
        return KillResult(
            changed=changed,
            project=self.project,
            flag_key=key,
            environment=environment,
            version=int(version) if isinstance(version, int) else None,
            detail=f"flag `{key}` is {what} in `{environment}` (project `{self.project}`)",
        )

    def _failure(
        self, response: requests.Response, flag_key: str, environment: str
    ) -> IntegrationError:
        status, message = response.status_code, _message(response)
        where = f"flag `{flag_key}` in project `{self.project}`, environment `{environment}`"
        if status == 401:
            return IntegrationError(
                f"LaunchDarkly rejected the API token (HTTP 401: {message}) for {where}.",
                hint="The token is missing, revoked or mistyped; it is the `api-...` access "
                f"token, sent as is in `Authorization`.\n{ENV_YAML}",
            )
        if status == 403:
            return IntegrationError(
                f"LaunchDarkly's API token may not change {where} (HTTP 403: {message}).",
                hint="Give the token a role that may update flags in that environment (the "
                "built-in Writer role, or a custom role with `updateOn`).",
            )
        if status == 404:
            return IntegrationError(
                f"LaunchDarkly has no {where} (HTTP 404: {message}).",
                hint="Check the flag key and the project key (both as in the flag's URL); "
                "the token must also belong to the account that owns the project.",
            )
        return IntegrationError(
            f"LaunchDarkly refused to turn off {where} (HTTP {status}: {message}).",
            hint="Turn the flag off by hand in the LaunchDarkly UI if the release is at risk.",
        )


def _pointer(token: str) -> str:
    """A JSON Pointer reference token (RFC 6901): ``~`` and ``/`` escaped."""
    return token.replace("~", "~0").replace("/", "~1")


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise IntegrationError(
            f"LaunchDarkly answered HTTP {response.status_code} with a body that is not JSON."
        ) from exc
    if not isinstance(data, dict):
        raise IntegrationError("LaunchDarkly answered with JSON that is not an object.")
    return data


def _message(response: requests.Response) -> str:
    """LaunchDarkly's ``{"code", "message"}`` error, or the start of whatever came instead."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason or "no body"
    if isinstance(data, dict) and (data.get("message") or data.get("code")):
        code, message = data.get("code"), data.get("message")
        return f"{code}: {message}" if code and message else str(message or code)
    return str(data)[:200]


# -- the flag lifecycle: listing, statuses, audit log, semantic patch ---------------------------

SEMANTIC_PATCH = "application/json; domain-model=launchdarkly.semanticpatch"
# A listing is paged; a project with more flags than this is read as an error, not a loop.
_MAX_PAGES = 500


class PatchConflictError(IntegrationError):
    """Raised when LaunchDarkly answers 409 to a semantic patch: the flag changed meanwhile
    (or a pending approval or scheduled change conflicts); read it again and recompute."""


class LaunchDarklyFlags(_LaunchDarklyApi):
    """Reads a project's flags, their statuses and audit log, and changes targeting.

    Targeting changes go as semantic patches (one environment per PATCH), so each
    instruction says what it means and LaunchDarkly records one audit-log entry per patch.
    """

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}" if path.startswith("/") else path

    def _project_path(self) -> str:
        return quote(self.project, safe="")

    def _get_json(self, path: str, subject: str, **params: Any) -> dict[str, Any]:
        response = self._call("GET", self._url(path), subject, deadline=None, params=params or None)
        if response.status_code >= 300:
            raise self._error(response, subject, "read")
        return _json(response)

    def _pages(self, path: str, subject: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every ``items`` of a listing, following ``_links.next`` (relative to the API host)."""
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        page = self._get_json(path, subject, **params)
        for _ in range(_MAX_PAGES):
            got = page.get("items")
            if not isinstance(got, list):
                raise IntegrationError(f"LaunchDarkly's listing of {subject} has no `items` array.")
            items.extend(i for i in got if isinstance(i, dict))
            href = ((page.get("_links") or {}).get("next") or {}).get("href")
            if not href or href in seen or not got:
                return items
            seen.add(href)
            page = self._get_json(href, subject)
        raise IntegrationError(
            f"LaunchDarkly's listing of {subject} went on for more than {_MAX_PAGES} pages."
        )

    # -- reads -------------------------------------------------------------------------------

    def list_flags(self, *, archived: bool = False, page_size: int = 100) -> list[dict[str, Any]]:
        """Every flag of the project with its rules (``summary=0``), page by page.

        LaunchDarkly lists only flags that are not archived unless asked: ``archived``
        adds a second listing of the archived ones (``filter=state:archived``).
        """
        subject = f"the flags of project `{self.project}`"
        path = f"/api/v2/flags/{self._project_path()}"
        params: dict[str, Any] = {"limit": page_size, "offset": 0, "summary": 0}
        flags = self._pages(path, subject, params)
        if archived:
            flags += self._pages(path, subject, {**params, "filter": "state:archived"})
        return flags

    def get_flag(self, flag_key: str) -> dict[str, Any]:
        """The flag with every environment's targeting."""
        return self._get_json(
            f"/api/v2/flags/{self._project_path()}/{quote(flag_key, safe='')}",
            f"flag `{flag_key}`",
        )

    def flag_status(self, flag_key: str, environment: str) -> dict[str, Any]:
        """``name`` (new, active, inactive, launched) and ``lastRequested`` (ISO 8601 or null)."""
        return self._get_json(
            f"/api/v2/flag-statuses/{self._project_path()}/{quote(environment, safe='')}/"
            f"{quote(flag_key, safe='')}",
            f"the status of flag `{flag_key}` in `{environment}`",
        )

    def flag_statuses(self, environment: str) -> dict[str, dict[str, Any]]:
        """Every flag's status in one environment, by flag key (from each item's links)."""
        data = self._get_json(
            f"/api/v2/flag-statuses/{self._project_path()}/{quote(environment, safe='')}",
            f"the flag statuses in `{environment}`",
        )
        out: dict[str, dict[str, Any]] = {}
        for item in data.get("items") or []:
            links = item.get("_links") or {} if isinstance(item, dict) else {}
            href = (links.get("self") or links.get("parent") or {}).get("href") or ""
            if href:
                out[unquote(href.rstrip("/").rsplit("/", 1)[-1])] = item
        return out

    def audit_log(
        self, flag_key: str, environment: str, *, limit: int = 20, max_entries: int = 100
    ) -> list[dict[str, Any]]:
        """The flag's audit-log entries in one environment, newest first (``date`` in ms)."""
        spec = f"proj/{self.project}:env/{environment}:flag/{flag_key}"
        subject = f"the audit log of flag `{flag_key}` in `{environment}`"
        entries: list[dict[str, Any]] = []
        page = self._get_json("/api/v2/auditlog", subject, spec=spec, limit=limit)
        seen: set[str] = set()
        while True:
            got = [i for i in page.get("items") or [] if isinstance(i, dict)]
            entries.extend(got)
            href = ((page.get("_links") or {}).get("next") or {}).get("href")
            if not got or not href or href in seen or len(entries) >= max_entries:
                return entries[:max_entries]
            seen.add(href)
            page = self._get_json(href, subject)

    def audit_entry(self, entry_id: str) -> dict[str, Any]:
        """One entry with ``previousVersion`` and ``currentVersion`` of the flag."""
        return self._get_json(
            f"/api/v2/auditlog/{quote(entry_id, safe='')}", f"audit-log entry `{entry_id}`"
        )

    # -- writes ------------------------------------------------------------------------------

    def semantic_patch(
        self,
        flag_key: str,
        environment: str,
        instructions: list[dict[str, Any]],
        *,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Apply ``instructions`` in ``environment`` as one change; the flag afterwards.

        Raises `PatchConflictError` on 409 (read the flag again and recompute) and
        `IntegrationError` with LaunchDarkly's message on any other refusal, such as an
        instruction it does not know (400).
        """
        body: dict[str, Any] = {"environmentKey": environment, "instructions": instructions}
        if comment:
            body["comment"] = comment
        subject = f"flag `{flag_key}`"
        response = self._call(
            "PATCH",
            self._url(f"/api/v2/flags/{self._project_path()}/{quote(flag_key, safe='')}"),
            subject,
            deadline=None,
            content_type=SEMANTIC_PATCH,
            json=body,
        )
        if response.status_code == 409:
            raise PatchConflictError(
                f"LaunchDarkly refused the change to flag `{flag_key}` in `{environment}` "
                f"as a conflict (HTTP 409: {_message(response)}).",
                hint="Someone changed the flag meanwhile, or an approval request or scheduled "
                "change is pending on it: run the command again, or settle those in the UI.",
            )
        if response.status_code >= 300:
            kinds = ", ".join(f"`{i.get('kind')}`" for i in instructions)
            raise self._error(response, f"{subject} in `{environment}`", f"apply {kinds} to")
        return _json(response)

    def _error(self, response: requests.Response, subject: str, verb: str) -> IntegrationError:
        status, message = response.status_code, _message(response)
        where = f"{subject} (project `{self.project}`)"
        if status == 401:
            return IntegrationError(
                f"LaunchDarkly rejected the API token (HTTP 401: {message}) for {where}.",
                hint="The token is missing, revoked or mistyped; it is the `api-...` access "
                f"token, sent as is in `Authorization`.\n{ENV_YAML}",
            )
        if status == 403:
            return IntegrationError(
                f"LaunchDarkly's API token may not {verb} {where} (HTTP 403: {message}).",
                hint="Give the token a role that may read and update flags in that environment "
                "(the built-in Writer role).",
            )
        if status == 404:
            return IntegrationError(
                f"LaunchDarkly has no {where} (HTTP 404: {message}).",
                hint="Check the flag, environment and project keys (as in the flag's URL); "
                "the token must also belong to the account that owns the project.",
            )
        if status == 400:
            return IntegrationError(
                f"LaunchDarkly refused to {verb} {where} as invalid (HTTP 400: {message}).",
                hint="This is a bug in release-actions or an API change at LaunchDarkly: "
                "rerun with -vv and report it; change the flag in the UI meanwhile.",
            )
        return IntegrationError(
            f"LaunchDarkly could not {verb} {where} (HTTP {status}: {message}).",
            hint="Check https://status.launchdarkly.com, then run the command again.",
        )
