"""Google Cloud credentials from the GitHub Actions OIDC token: workload identity, no JSON key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from release_actions.errors import IntegrationError, require

STS_TOKEN_URL = "https://sts.googleapis.com/v1/token"  # noqa: S105 - a URL, not a secret
IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com/v1"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

PERMISSION_HINT = (
    "The job needs an OIDC token: add\n"
    "    permissions:\n"
    "      id-token: write\n"
    "to the job (and `contents: read` if it checks out code)."
)


def external_account_info(
    env: Mapping[str, str],
    provider: str,
    *,
    service_account: str | None = None,
    token_url: str = STS_TOKEN_URL,
    iam_url: str = IAM_CREDENTIALS_URL,
) -> dict[str, Any]:
    """The `external_account` configuration google-github-actions/auth would write.

    The runner's token endpoint is asked for a JWT whose audience is the workload identity
    provider; Google's STS trades it for an access token, which can impersonate a service
    account. Nothing long-lived is stored anywhere.
    """
    url = env.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
    token = env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
    if not url or not token:
        raise IntegrationError(
            "This job cannot request an OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL is not set).",
            hint=PERMISSION_HINT,
        )
    provider = provider.strip().removeprefix("//iam.googleapis.com/").strip("/")
    if not provider.startswith("projects/") or "/workloadIdentityPools/" not in provider:
        raise IntegrationError(
            f"`{provider}` is not a workload identity provider name: expected "
            "projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER.",
        )
    separator = "&" if "?" in url else "?"
    info: dict[str, Any] = {
        "type": "external_account",
        "audience": f"//iam.googleapis.com/{provider}",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": token_url,
        "credential_source": {
            "url": f"{url}{separator}audience=https://iam.googleapis.com/{provider}",
            "headers": {"Authorization": f"Bearer {token}"},
            "format": {"type": "json", "subject_token_field_name": "value"},
        },
    }
    if service_account:
        info["service_account_impersonation_url"] = (
            f"{iam_url}/projects/-/serviceAccounts/{service_account}:generateAccessToken"
        )
    return info


def github_oidc_credentials(
    env: Mapping[str, str], provider: str, *, service_account: str | None = None, **urls: str
) -> Any:
    """google-auth credentials that exchange the job's OIDC token on first use."""
    identity_pool: Any = require("google.auth.identity_pool", "cloudrun")
    info = external_account_info(env, provider, service_account=service_account, **urls)
    return identity_pool.Credentials.from_info(info, scopes=[CLOUD_PLATFORM_SCOPE])
