"""What the store, vitals and Remote Config adapters share: one retry loop and Google credentials."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from release_actions.errors import IntegrationError, ReleaseActionsError, require
from release_actions.metrics.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Transient answers: a timeout the server noticed, a rate limit, and any 5xx but 501.
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})

STORE_RETRY = RetryPolicy(
    attempts=5, total_seconds=180.0, backoff_initial=1.0, backoff_max=16.0, retry_after_cap=60.0
)


class Transient(Exception):
    """Raised inside an adapter when an attempt failed in a way worth another try.

    ``cause`` is what failed (an HTTP error, a timeout); ``final`` turns it into the
    project's error once the policy gives up, so ``Transient`` never leaves the adapter.
    """

    def __init__(self, cause: BaseException, *, retry_after: float | None = None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.retry_after = retry_after


def with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    service: str,
    what: str,
    final: Callable[[BaseException], ReleaseActionsError],
) -> T:
    """``fn`` until it returns, raises anything but ``Transient``, or the policy gives up.

    ``fn`` is the whole read-decide-write cycle, not one request: a retry after a lost
    answer reads the store again and finds the change already made, so nothing is done twice.
    """
    deadline = policy.deadline()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Transient as exc:
            wait = exc.retry_after if exc.retry_after is not None else policy.backoff(attempt)
            wait = min(max(wait, 0.0), policy.retry_after_cap)
            if attempt >= policy.attempts or policy.clock() + wait > deadline:
                error = final(exc.cause)
                error.message = f"{error.message} (gave up after {attempt} attempt(s))"
                raise error from exc.cause
            log.warning(
                "%s: %s: %s; retrying in %.1f s (attempt %d of %d)",
                service,
                what,
                exc,
                wait,
                attempt + 1,
                policy.attempts,
            )
            policy.sleep(wait)


def is_timeout(exc: BaseException) -> bool:
    """A request that timed out or lost its connection (httplib2 and requests raise these)."""
    try:
        import requests
    except ImportError:  # pragma: no cover - requests is a dependency
        return isinstance(exc, socket.timeout | TimeoutError | ConnectionError)
    return isinstance(
        exc,
        socket.timeout
        | TimeoutError
        | ConnectionError
        | requests.ConnectionError
        | requests.Timeout,
    )


def is_refused_credentials(exc: BaseException) -> bool:
    """google-auth could not get a token: it refreshes on a 401, and a refresh that fails (a
    revoked key, a refused OIDC exchange) is the credentials' fault, not the request's."""
    return type(exc).__name__ in ("RefreshError", "DefaultCredentialsError")


def google_error(content: bytes | str | None) -> tuple[str, str]:
    """Google's canonical status (``PERMISSION_DENIED``...) and message from an error body."""
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    try:
        error = json.loads(content or "").get("error", {})
    except (ValueError, AttributeError):
        return "", (content or "").strip()[:300]
    if not isinstance(error, dict):
        return "", str(error)[:300]
    return str(error.get("status") or ""), str(error.get("message") or "").strip()


GOOGLE_AUTH_HINT = (
    "Give the step a service-account key in `{json_var}` (the JSON, from a secret), or use "
    "workload identity federation with no key: give the job\n"
    "permissions:\n"
    "  id-token: write\n"
    "and set GCP_WORKLOAD_IDENTITY_PROVIDER (projects/NUMBER/locations/global/"
    "workloadIdentityPools/POOL/providers/PROVIDER) and GCP_SERVICE_ACCOUNT "
    "(releaser@PROJECT.iam.gserviceaccount.com); release-actions trades the job's OIDC token "
    "for Google credentials itself."
)


def google_credentials(
    env: Mapping[str, str],
    scopes: list[str],
    *,
    json_var: str,
    extra: str,
    mask: Callable[[str], None] | None = None,
) -> Any:
    """google-auth credentials: a service-account key from ``json_var``, else the job's OIDC token.

    The key is JSON held in a secret; its private key is masked the moment it is read.
    Workload identity federation needs no key at all: it is what the Cloud Run target uses.
    """
    raw = env.get(json_var, "").strip()
    if raw:
        service_account: Any = require("google.oauth2.service_account", extra)
        try:
            info = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise IntegrationError(
                f"`{json_var}` is not JSON ({exc.msg} at line {exc.lineno}): it should hold a "
                "service-account key file's content.",
                hint=f"Store the whole key file as a secret and pass it: {json_var}: "
                f"${{{{ secrets.{json_var} }}}}",
            ) from None
        if mask is not None and isinstance(info, dict):
            for key in ("private_key", "private_key_id"):
                if isinstance(info.get(key), str):
                    mask(info[key])
        try:
            return service_account.Credentials.from_service_account_info(info, scopes=scopes)
        except (ValueError, KeyError) as exc:
            raise IntegrationError(
                f"`{json_var}` is not a service-account key: {exc}.",
                hint=GOOGLE_AUTH_HINT.format(json_var=json_var),
            ) from None
    provider = env.get("GCP_WORKLOAD_IDENTITY_PROVIDER", "").strip()
    if provider:
        from release_actions.integrations.gcp_oidc import external_account_info

        identity_pool: Any = require("google.auth.identity_pool", extra)
        info = external_account_info(
            env, provider, service_account=env.get("GCP_SERVICE_ACCOUNT") or None
        )
        return identity_pool.Credentials.from_info(info, scopes=scopes)
    google_auth: Any = require("google.auth", extra)
    auth_exceptions: Any = require("google.auth.exceptions", extra)
    try:
        credentials, _ = google_auth.default(scopes=scopes)
    except auth_exceptions.DefaultCredentialsError as exc:
        raise IntegrationError(
            f"No Google credentials were found (google.auth.default(): {exc}).",
            hint=GOOGLE_AUTH_HINT.format(json_var=json_var),
        ) from exc
    return credentials
