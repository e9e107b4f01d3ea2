"""Google credentials for Play and Firebase: a service-account key from a secret, or workload identity."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from release_actions.errors import IntegrationError
from release_actions.mobile.base import StoreState
from release_actions.mobile.play import (
    ANDROIDPUBLISHER_SCOPE,
    PlayRelease,
    play_credentials,
)
from tests.fakes.play import PACKAGE, PlayFake

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> Iterator[PlayFake]:
    with PlayFake() as server:
        server.release("production", 100)
        yield server


def key_json(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "triptrip-releases",
            "private_key_id": "0123456789abcdef",
            "private_key": pem,
            "client_email": "releaser@triptrip-releases.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )


def test_service_account_key_from_a_secret(fake: PlayFake) -> None:
    masked: list[str] = []
    env = {"PLAY_SERVICE_ACCOUNT_JSON": key_json(f"{fake.url}/token")}
    play = PlayRelease.from_env(
        package_name=PACKAGE, version_code="100", env=env, endpoint=fake.url, mask=masked.append
    )
    assert play.status().state == StoreState.COMPLETED
    # google-auth signed a JWT with the key and traded it at the key's token_uri.
    claims = jwt.decode(fake.assertions[0], options={"verify_signature": False})
    assert claims["iss"] == "releaser@triptrip-releases.iam.gserviceaccount.com"
    assert ANDROIDPUBLISHER_SCOPE in claims["scope"].split()
    assert any("PRIVATE KEY" in m for m in masked) and "0123456789abcdef" in masked


def test_key_that_is_not_json() -> None:
    with pytest.raises(IntegrationError, match="is not JSON") as info:
        play_credentials({"PLAY_SERVICE_ACCOUNT_JSON": "{nope"})
    assert "secrets.PLAY_SERVICE_ACCOUNT_JSON" in (info.value.hint or "")


def test_key_that_is_not_a_service_account() -> None:
    with pytest.raises(IntegrationError, match="not a service-account key"):
        play_credentials({"PLAY_SERVICE_ACCOUNT_JSON": json.dumps({"type": "service_account"})})


def test_workload_identity_from_the_jobs_oidc_token() -> None:
    env = {
        "GCP_WORKLOAD_IDENTITY_PROVIDER": "projects/123/locations/global/workloadIdentityPools/gh/providers/gh",
        "GCP_SERVICE_ACCOUNT": "releaser@triptrip-releases.iam.gserviceaccount.com",
        "ACTIONS_ID_TOKEN_REQUEST_URL": "https://runner.example/token?x=1",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
    }
    credentials = play_credentials(env)
    assert type(credentials).__name__ == "Credentials"
    assert credentials.info["audience"].endswith("/providers/gh")
    assert credentials.service_account_email == env["GCP_SERVICE_ACCOUNT"]
    assert ANDROIDPUBLISHER_SCOPE in credentials.scopes


def test_workload_identity_without_id_token_permission() -> None:
    env = {
        "GCP_WORKLOAD_IDENTITY_PROVIDER": "projects/1/locations/global/workloadIdentityPools/p/providers/q"
    }
    with pytest.raises(IntegrationError) as info:
        play_credentials(env)
    assert "id-token: write" in (info.value.hint or "")
