"""Atlassian Statuspage over its REST API v1: components, incidents and scheduled maintenance."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import quote, urlencode

import requests

from release_actions.errors import IntegrationError
from release_actions.metrics.retry import RetryPolicy, retry_after_seconds

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.statuspage.io/v1"
API_KEY_ENV = "STATUSPAGE_API_KEY"
BASE_URL_ENV = "STATUSPAGE_BASE_URL"
ENV_YAML = (
    "env:\n"
    f"  {API_KEY_ENV}: ${{{{ secrets.{API_KEY_ENV} }}}}  # a key of a user with the page's "
    "Incident Manager role"
)

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "verifying", "completed")
COMPONENT_STATUSES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)
IMPACTS = ("none", "maintenance", "minor", "major", "critical")
METADATA_NAMESPACE = "release_actions"
"""Statuspage keys an incident's metadata by namespace; the marker lives in this one."""

# 420 is Statuspage's older rate-limit answer, 429 the current one.
_RATE_LIMITED = frozenset({420, 429})
_TRANSIENT = frozenset({408, 500, 502, 503, 504}) | _RATE_LIMITED
_PAGE_SIZE = 100
_MAX_PAGES = 50


@dataclass(frozen=True)
class ApiRequest:
    """One request as it goes out: what a dry run prints, and what ``send`` sends."""

    method: str
    path: str
    """Below the base URL, such as ``/pages/abc/incidents``."""
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    subject: str = ""
    """What it does, for errors: "open the rollback incident"."""

    def url(self, base_url: str) -> str:
        url = base_url.rstrip("/") + self.path
        return f"{url}?{urlencode(self.params)}" if self.params else url

    def describe(self) -> str:
        return f"{self.method} {self.path}" + (f" ({self.subject})" if self.subject else "")

    def shown(self, base_url: str) -> dict[str, Any]:
        """The request as a dry run prints it: the key is never shown."""
        headers = {"Authorization": "OAuth ***", "Accept": "application/json"}
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        return {
            "method": self.method,
            "url": self.url(base_url),
            "headers": headers,
            "body": self.body,
        }


@dataclass
class StatuspageClient:
    """One page of the REST API: the key checked, every request retried the same way.

    429 (and 420) wait for ``Retry-After``, 5xx and no answer back off, all bounded by
    ``retry`` and, across every call, by ``deadline`` (a ``retry.clock`` reading after
    which nothing new starts). 401, 403, 404 and 422 fail at once with what to check.
    A create is never simply repeated: before a retry, ``recheck`` looks for what the
    lost answer may have created (a marked incident).
    """

    session: requests.Session | None
    api_key: str
    page_id: str
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 10.0
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            attempts=4, total_seconds=60.0, backoff_initial=1.0, jitter=0.5, retry_after_cap=30.0
        )
    )
    deadline: float | None = None
    _components: dict[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.api_key:
            raise IntegrationError(
                f"No Statuspage API key: set `{API_KEY_ENV}`.",
                hint=f"Pass the secret through `env:`:\n{ENV_YAML}",
            )
        if not self.page_id:
            raise IntegrationError("No Statuspage page id was given.")
        self.base_url = self.base_url.rstrip("/")
        if self.session is None:
            self.session = requests.Session()

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, page_id: str, **kwargs: Any) -> Self:
        kwargs.setdefault("base_url", env.get(BASE_URL_ENV) or DEFAULT_BASE_URL)
        return cls(None, api_key=env.get(API_KEY_ENV, ""), page_id=page_id, **kwargs)

    # -- paths -----------------------------------------------------------------------------

    @property
    def page_path(self) -> str:
        return page_path(self.page_id)

    def incidents_path(self) -> str:
        return incidents_path(self.page_id)

    def incident_path(self, incident_id: str) -> str:
        return incident_path(self.page_id, incident_id)

    # -- reads -----------------------------------------------------------------------------

    def components(self) -> dict[str, str]:
        """The page's components by name (groups left out: their status is their members'),
        read once per client."""
        if self._components is None:
            found: dict[str, str] = {}
            for item in self._list(f"{self.page_path}/components", "list the page's components"):
                if item.get("group") or not item.get("name") or not item.get("id"):
                    continue
                found.setdefault(str(item["name"]), str(item["id"]))
            self._components = found
        return self._components

    def component_ids(self, names: list[str]) -> list[str]:
        """The ids of ``names``, in order; a name the page does not have is an error."""
        known = self.components()
        missing = [n for n in names if n not in known]
        if missing:
            listed = ", ".join(f"`{n}`" for n in sorted(known)) or "none"
            raise IntegrationError(
                f"Statuspage page `{self.page_id}` has no component "
                + ", ".join(f"`{n}`" for n in missing)
                + f"; its components are: {listed}.",
                hint="Create the component on the page, or correct the names in "
                "`notifications.status_page.components` and `services` of the policy.",
            )
        return [known[n] for n in names]

    def unresolved_incidents(self) -> list[dict[str, Any]]:
        return self._list(f"{self.incidents_path()}/unresolved", "list the unresolved incidents")

    def upcoming_maintenances(self) -> list[dict[str, Any]]:
        return self._list(f"{self.incidents_path()}/upcoming", "list the upcoming maintenances")

    def active_maintenances(self) -> list[dict[str, Any]]:
        return self._list(
            f"{self.incidents_path()}/active_maintenance", "list the maintenances in progress"
        )

    def incident(self, incident_id: str) -> dict[str, Any]:
        data = self.send(
            ApiRequest("GET", self.incident_path(incident_id), subject="read the incident")
        )
        return _object(data, "the incident")

    def find_marked(
        self, marker: str, lister: Callable[[], list[dict[str, Any]]] | None = None
    ) -> dict[str, Any] | None:
        """The open incident (or maintenance, with ``lister``) carrying ``marker``, if any."""
        incidents = (lister or self.unresolved_incidents)()
        return next((i for i in incidents if marker_of(i) == marker), None)

    # -- writes ----------------------------------------------------------------------------

    def create(
        self,
        fields: dict[str, Any],
        *,
        subject: str,
        recheck: Callable[[], dict[str, Any] | None] | None = None,
    ) -> dict[str, Any]:
        request = ApiRequest("POST", self.incidents_path(), {"incident": fields}, subject=subject)
        return _object(self.send(request, recheck=recheck), "the incident")

    def update(self, incident_id: str, fields: dict[str, Any], *, subject: str) -> dict[str, Any]:
        request = ApiRequest(
            "PATCH", self.incident_path(incident_id), {"incident": fields}, subject=subject
        )
        return _object(self.send(request), "the incident")

    # -- HTTP ------------------------------------------------------------------------------

    def _list(self, path: str, subject: str) -> list[dict[str, Any]]:
        """Every item of a listing, page by page (``page``, ``per_page``) until a short page."""
        items: list[dict[str, Any]] = []
        for number in range(1, _MAX_PAGES + 1):
            data = self.send(
                ApiRequest(
                    "GET", path, params={"page": number, "per_page": _PAGE_SIZE}, subject=subject
                )
            )
            if not isinstance(data, list):
                raise IntegrationError(
                    f"Statuspage answered GET {path} ({subject}) with something that is not a list."
                )
            items.extend(i for i in data if isinstance(i, dict))
            if len(data) < _PAGE_SIZE:
                return items
        raise IntegrationError(f"Statuspage's GET {path} went on for more than {_MAX_PAGES} pages.")

    def send(
        self,
        request: ApiRequest,
        *,
        recheck: Callable[[], dict[str, Any] | None] | None = None,
    ) -> Any:
        """One request, repeated while the answer is worth waiting for; its JSON answer."""
        assert self.session is not None
        retry = self.retry
        deadline = retry.deadline()
        if self.deadline is not None:
            if retry.clock() >= self.deadline:
                raise IntegrationError(
                    f"Statuspage was not asked {request.describe()} on page `{self.page_id}`: "
                    "the time allowed for the status page had run out."
                )
            deadline = min(deadline, self.deadline)
        headers = {"Authorization": f"OAuth {self.api_key}", "Accept": "application/json"}
        kwargs: dict[str, Any] = {"params": request.params}
        if request.body is not None:
            kwargs["json"] = request.body
        url = self.base_url + request.path
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            status: int | None = None
            try:
                response = self.session.request(
                    request.method, url, headers=headers, timeout=self.timeout, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"no answer ({type(exc).__name__})"
            else:
                status = response.status_code
                if status not in _TRANSIENT:
                    if status >= 300:
                        raise self._failure(request, response)
                    return _json(response, request)
                problem = f"HTTP {status}: {error_message(response)}"
                if status in _RATE_LIMITED:
                    wait = retry_after_seconds(response.headers)
            if wait is None:
                wait = retry.backoff(attempt)
            wait = min(max(wait, 0.0), retry.retry_after_cap)
            if attempt >= retry.attempts or retry.clock() + wait > deadline:
                raise IntegrationError(
                    f"Statuspage did not answer {request.describe()} on page `{self.page_id}` "
                    f"after {attempt} attempt(s): {problem}.",
                    hint="Statuspage allows about one request a second per key: try again shortly."
                    if status in _RATE_LIMITED
                    else "Check https://metastatuspage.com and that the runner can reach "
                    f"{self.base_url}.",
                )
            log.warning(
                "statuspage: %s: %s; retrying in %.1f s (attempt %d of %d)",
                request.describe(), problem, wait, attempt + 1, retry.attempts,
            )  # fmt: skip
            retry.sleep(wait)
            if recheck is not None:
                # The lost answer may have created it: look before creating it again.
                found = recheck()
                if found is not None:
                    log.warning(
                        "statuspage: %s had gone through; not sent again", request.describe()
                    )
                    return found

    def _failure(self, request: ApiRequest, response: requests.Response) -> IntegrationError:
        status, message = response.status_code, error_message(response)
        what = f"{request.describe()} on page `{self.page_id}`"
        if status == 401:
            return IntegrationError(
                f"Statuspage rejected the API key (HTTP 401: {message}) for {what}.",
                hint="The key is missing, revoked or mistyped; it is sent as "
                f"`Authorization: OAuth <key>`.\n{ENV_YAML}",
            )
        if status == 403:
            return IntegrationError(
                f"Statuspage's API key may not {request.subject or 'do this'} (HTTP 403: "
                f"{message}) for {what}.",
                hint="Give the key's user the page's Incident Manager (incidents) or "
                "Maintenance Manager (scheduled maintenance) role.",
            )
        if status == 404:
            return IntegrationError(
                f"Statuspage has no such page or incident (HTTP 404: {message}) for {what}.",
                hint="Check `notifications.status_page.page_id` (the id in the page's API "
                "settings, not its name) and the incident id; the key must belong to the "
                "page's organization.",
            )
        if status in (400, 422):
            return IntegrationError(
                f"Statuspage refused {what} as invalid (HTTP {status}: {message}).",
                hint="Check the incident's name, status and components; a template that "
                "renders to an empty title gives an empty `name`.",
            )
        return IntegrationError(
            f"Statuspage refused {what} (HTTP {status}: {message}).",
            hint="Update the status page by hand if users need to know now.",
        )


def page_path(page_id: str) -> str:
    return f"/pages/{quote(page_id, safe='')}"


def incidents_path(page_id: str) -> str:
    return f"{page_path(page_id)}/incidents"


def incident_path(page_id: str, incident_id: str) -> str:
    # A dry run's placeholder (`<id of ...>`) is for a person to read: shown as it is.
    placeholder = incident_id.startswith("<") and incident_id.endswith(">")
    return (
        f"{incidents_path(page_id)}/{incident_id if placeholder else quote(incident_id, safe='')}"
    )


def marker_of(incident: Mapping[str, Any]) -> str | None:
    """The release-actions marker in an incident's metadata, if it carries one."""
    metadata = incident.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    ours = metadata.get(METADATA_NAMESPACE)
    if not isinstance(ours, Mapping):
        return None
    marker = ours.get("marker")
    return str(marker) if marker else None


def error_message(response: requests.Response) -> str:
    """Statuspage's ``{"error": "..."}`` or ``{"error": ["...", ...]}``, or the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason or "no body"
    if isinstance(data, dict):
        error = data.get("error") or data.get("message") or data.get("errors")
        if isinstance(error, list):
            return "; ".join(str(e) for e in error)
        if error:
            return str(error)
    return str(data)[:200]


def _json(response: requests.Response, request: ApiRequest) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError as exc:
        raise IntegrationError(
            f"Statuspage answered {request.describe()} with HTTP {response.status_code} and a "
            "body that is not JSON."
        ) from exc


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise IntegrationError(
            f"Statuspage answered with {what} as something that is not an object."
        )
    return data
