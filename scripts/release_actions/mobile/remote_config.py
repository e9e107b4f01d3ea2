"""Forced and recommended app updates published through the Firebase Remote Config REST API."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from release_actions.errors import IntegrationError, ReleaseActionsError, require
from release_actions.metrics.retry import RetryPolicy, retry_after_seconds
from release_actions.mobile._common import (
    GOOGLE_AUTH_HINT,
    RETRYABLE,
    Transient,
    google_credentials,
    google_error,
    is_refused_credentials,
    is_timeout,
    with_retry,
)
from release_actions.mobile.base import Change

API = "https://firebaseremoteconfig.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.remoteconfig"
JSON_VAR = "FIREBASE_SERVICE_ACCOUNT_JSON"
PERMISSION_HINT = (
    "The service account needs `roles/firebase.remoteConfigAdmin` (Firebase Remote Config "
    "Admin) on the Firebase project, and the Firebase Remote Config API enabled."
)


class _Stale(Exception):
    """The template changed between our read and our write (HTTP 412 on If-Match)."""


class RemoteConfig:
    """One parameter of a Firebase project's Remote Config template, holding a JSON value.

    ``publish_version_config`` reads the template (``GET .../remoteConfig``, with its
    ``ETag``), sets the parameter's ``defaultValue`` to the JSON of ``params``, and writes the
    whole template back (``PUT`` with ``If-Match``), so a change someone made in the console
    meanwhile is never overwritten: Firebase answers 412 and the read-and-write happens once
    more on the new template. The same value already published sends nothing. 429 and 5xx
    are retried under the retry policy.
    """

    def __init__(
        self,
        session: Any,
        *,
        project: str,
        parameter: str = "app_update",
        base_url: str = API,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        """``session`` is a ``requests.Session`` that authenticates, such as google-auth's
        ``AuthorizedSession``; ``project`` the Firebase (Google Cloud) project ID."""
        self.session = session
        self.project = project
        self.parameter = parameter
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy(attempts=4, total_seconds=60.0)

    @classmethod
    def from_env(
        cls,
        *,
        project: str,
        env: Mapping[str, str] | None = None,
        mask: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> RemoteConfig:
        transport: Any = require("google.auth.transport.requests", "firebase")
        credentials = google_credentials(
            os.environ if env is None else env,
            [SCOPE],
            json_var=JSON_VAR,
            extra="firebase",
            mask=mask,
        )
        return cls(transport.AuthorizedSession(credentials), project=project, **kwargs)

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/projects/{self.project}/remoteConfig"

    def publish_version_config(
        self, params: Mapping[str, Any], *, description: str | None = None
    ) -> Change:
        """Set the parameter's value to ``params`` as JSON; True when the template changed."""
        try:
            value = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ReleaseActionsError(f"The version config is not JSON: {exc}.") from None

        def attempt() -> Change:
            for round_ in (1, 2):
                template, etag = self._read()
                parameters = template.setdefault("parameters", {})
                current = parameters.get(self.parameter) or {}
                old = (current.get("defaultValue") or {}).get("value")
                if old is not None and _same_json(old, value):
                    return Change(
                        False,
                        f"Remote Config `{self.parameter}` already holds {value}; nothing was "
                        "published.",
                    )
                parameters[self.parameter] = {
                    **current,
                    "defaultValue": {"value": value},
                    "valueType": "JSON",
                }
                if description and "description" not in current:
                    parameters[self.parameter]["description"] = description
                body = {k: v for k, v in template.items() if k != "version"}
                if description:
                    body["version"] = {"description": description}
                try:
                    version = self._write(body, etag)
                except _Stale:
                    if round_ == 2:
                        raise IntegrationError(
                            f"Remote Config of `{self.project}` changed twice while "
                            f"`{self.parameter}` was being published (HTTP 412 on If-Match).",
                            hint="Someone is editing the template now; rerun the step.",
                        ) from None
                    continue
                return Change(
                    True,
                    f"Remote Config `{self.parameter}` = {value} published"
                    + (f" (template version {version})." if version else "."),
                )
            raise AssertionError("unreachable")  # pragma: no cover

        return with_retry(
            attempt,
            policy=self.retry,
            service="Firebase Remote Config",
            what=f"publish `{self.parameter}`",
            final=self._final,
        )

    def _read(self) -> tuple[dict[str, Any], str]:
        response = self._send("GET", headers={"Accept-Encoding": "gzip"})
        etag = response.headers.get("ETag")
        if not etag:
            raise IntegrationError(
                "Firebase Remote Config answered without an ETag; the template cannot be "
                "updated safely."
            )
        body = response.json()
        return (body if isinstance(body, dict) else {}), etag

    def _write(self, body: dict[str, Any], etag: str) -> str | None:
        response = self._send(
            "PUT",
            data=json.dumps(body).encode(),
            headers={"If-Match": etag, "Content-Type": "application/json; UTF-8"},
        )
        try:
            version = (response.json().get("version") or {}).get("versionNumber")
        except (ValueError, AttributeError):
            version = None
        return str(version) if version else None

    def _send(self, method: str, **kw: Any) -> Any:
        try:
            response = self.session.request(method, self.url, timeout=self.timeout, **kw)
        except Exception as exc:
            if is_timeout(exc):
                raise Transient(exc) from exc
            if is_refused_credentials(exc):
                raise IntegrationError(
                    f"Firebase Remote Config refused the credentials (HTTP 401): "
                    f"{type(exc).__name__}: {exc}",
                    hint=GOOGLE_AUTH_HINT.format(json_var=JSON_VAR),
                ) from exc
            raise
        status = int(response.status_code)
        if 200 <= status < 300:
            return response
        if status == 412:
            raise _Stale()
        if status in RETRYABLE:
            raise Transient(
                _RemoteConfigHTTPError(status, response.content),
                retry_after=retry_after_seconds(response.headers),
            )
        canonical, message = google_error(response.content)
        text = f"Firebase Remote Config answered HTTP {status} {canonical} for `{self.project}`: {message}"
        if status == 401:
            raise IntegrationError(text, hint=GOOGLE_AUTH_HINT.format(json_var=JSON_VAR))
        if status == 403:
            raise IntegrationError(text, hint=PERMISSION_HINT)
        if status == 404:
            raise IntegrationError(text, hint="Check `firebase-project` (the project ID).")
        raise IntegrationError(text, hint="Firebase refused the template; retrying would not help.")

    @staticmethod
    def _final(exc: BaseException) -> ReleaseActionsError:
        if isinstance(exc, _RemoteConfigHTTPError):
            canonical, message = google_error(exc.content)
            return IntegrationError(
                f"Firebase Remote Config did not accept the change: HTTP {exc.status} "
                f"{canonical}: {message}",
                hint="Check status.firebase.google.com; rerun the step: publishing is idempotent.",
            )
        return IntegrationError(
            f"Firebase Remote Config did not answer: {type(exc).__name__}: {exc}",
            hint="Check that firebaseremoteconfig.googleapis.com is reachable from the runner.",
        )


class _RemoteConfigHTTPError(Exception):
    def __init__(self, status: int, content: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.content = content


def _same_json(old: str, new: str) -> bool:
    try:
        return bool(json.loads(old) == json.loads(new))
    except ValueError:
        return False
