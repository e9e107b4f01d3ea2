"""Workload identity federation from the job's OIDC token, through google-auth's real flow."""

from __future__ import annotations

import pytest

from release_actions.errors import IntegrationError
from release_actions.integrations.gcp_oidc import external_account_info, github_oidc_credentials
from tests.fakes.gcp_sts import REQUEST_TOKEN, SUBJECT_JWT, TokenFake

PROVIDER = "projects/123/locations/global/workloadIdentityPools/github/providers/github"


def env(url: str) -> dict[str, str]:
    return {
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{url}/_apis/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
    }


def test_the_oidc_token_is_traded_for_an_access_token() -> None:
    import google.auth.transport.requests

    with TokenFake() as fake:
        creds = github_oidc_credentials(env(fake.url), PROVIDER, token_url=f"{fake.url}/v1/token")
        creds.refresh(google.auth.transport.requests.Request())
        assert creds.token == "ya29.federated"
        oidc, sts = fake.requests
        assert oidc["auth"] == f"Bearer {REQUEST_TOKEN}"
        assert oidc["path"].endswith(f"&audience=https://iam.googleapis.com/{PROVIDER}")
        assert sts["form"]["subject_token"] == SUBJECT_JWT
        assert sts["form"]["audience"] == f"//iam.googleapis.com/{PROVIDER}"
        assert sts["form"]["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"


def test_a_service_account_is_impersonated() -> None:
    import google.auth.transport.requests

    with TokenFake() as fake:
        creds = github_oidc_credentials(
            env(fake.url),
            PROVIDER,
            service_account="deployer@p.iam.gserviceaccount.com",
            token_url=f"{fake.url}/v1/token",
            iam_url=f"{fake.url}/v1",
        )
        creds.refresh(google.auth.transport.requests.Request())
        assert creds.token == "ya29.impersonated"
        impersonation = fake.requests[-1]
        assert impersonation["path"] == (
            "/v1/projects/-/serviceAccounts/deployer@p.iam.gserviceaccount.com:generateAccessToken"
        )
        assert impersonation["auth"] == "Bearer ya29.federated"


def test_without_id_token_permission_the_error_shows_the_yaml() -> None:
    with pytest.raises(IntegrationError) as exc:
        external_account_info({}, PROVIDER)
    assert "id-token: write" in (exc.value.hint or "")


@pytest.mark.parametrize("bad", ["github", "projects/1/locations/global/pools/x", ""])
def test_a_malformed_provider_is_refused(bad: str) -> None:
    with pytest.raises(IntegrationError, match="workload identity provider"):
        external_account_info(env("http://x"), bad)


def test_the_provider_may_carry_the_iam_prefix() -> None:
    info = external_account_info(env("http://x"), f"//iam.googleapis.com/{PROVIDER}")
    assert info["audience"] == f"//iam.googleapis.com/{PROVIDER}"
