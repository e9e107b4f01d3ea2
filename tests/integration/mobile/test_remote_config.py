"""RemoteConfig with google-auth's AuthorizedSession against the Remote Config fake (ETag, 412)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.auth.transport.requests import AuthorizedSession
from google.oauth2.credentials import Credentials

from release_actions.errors import IntegrationError
from release_actions.metrics.retry import RetryPolicy
from release_actions.mobile.remote_config import RemoteConfig
from tests.fakes.remote_config import PROJECT, TOKEN, RemoteConfigFake, fault
from tests.support.sleeps import Sleeps

pytestmark = pytest.mark.integration

CONFIG = {"minimum_version_code": 410, "recommended_version_code": 421}


@pytest.fixture
def fake() -> Iterator[RemoteConfigFake]:
    with RemoteConfigFake() as server:
        yield server


def client(fake: RemoteConfigFake, policy: RetryPolicy, token: str = TOKEN) -> RemoteConfig:
    session = AuthorizedSession(Credentials(token=token))
    return RemoteConfig(session, project=PROJECT, base_url=fake.url, retry=policy)


def test_publish_then_rerun(fake: RemoteConfigFake, policy: RetryPolicy) -> None:
    rc = client(fake, policy)
    first = rc.publish_version_config(CONFIG, description="release 4.2.0")
    assert first.changed and "template version 2" in first.message
    assert fake.value("app_update") == CONFIG
    param = fake.template["parameters"]["app_update"]
    assert param["valueType"] == "JSON"
    put = fake.puts()[0]
    assert put.headers["if-match"] == "etag-123456789012-1"
    assert put.body["version"] == {"description": "release 4.2.0"}
    assert put.body["parameters"]["welcome"] == {
        "defaultValue": {"value": "hi"},
        "valueType": "STRING",
    }
    assert put.body["conditions"] == [{"name": "ios", "expression": "device.os == 'ios'"}]
    again = rc.publish_version_config(dict(reversed(list(CONFIG.items()))))
    assert not again.changed
    assert len(fake.puts()) == 1


def test_stale_etag_is_read_again_once(fake: RemoteConfigFake, policy: RetryPolicy) -> None:
    fake.stale_next = 1  # the console publishes between our read and our write
    assert client(fake, policy).publish_version_config(CONFIG).changed
    puts = fake.puts()
    assert [p.headers["if-match"] for p in puts] == ["etag-123456789012-1", "etag-123456789012-2"]
    assert fake.value("app_update") == CONFIG
    assert "console_1" in fake.template["parameters"]  # the other change is kept


def test_stale_twice_gives_up(fake: RemoteConfigFake, policy: RetryPolicy) -> None:
    fake.stale_next = 2
    with pytest.raises(IntegrationError, match="changed twice") as info:
        client(fake, policy).publish_version_config(CONFIG)
    assert "rerun" in (info.value.hint or "")
    assert "app_update" not in fake.template["parameters"]


def test_outage_retried(fake: RemoteConfigFake, policy: RetryPolicy, sleeps: Sleeps) -> None:
    fake.faults.append(fault(503, method="PUT"))
    fake.faults.append(fault(429, retry_after=4, method="GET"))
    assert client(fake, policy).publish_version_config(CONFIG).changed
    assert 4.0 in sleeps.waits


@pytest.mark.parametrize(
    ("status", "hint"), [(403, "remoteConfigAdmin"), (404, "firebase-project")]
)
def test_refusals(fake: RemoteConfigFake, policy: RetryPolicy, status: int, hint: str) -> None:
    fake.faults.append(fault(status))
    with pytest.raises(IntegrationError, match=f"HTTP {status}") as info:
        client(fake, policy).publish_version_config(CONFIG)
    assert hint in (info.value.hint or "")


def test_wrong_token(fake: RemoteConfigFake, policy: RetryPolicy) -> None:
    with pytest.raises(IntegrationError, match="HTTP 401") as info:
        client(fake, policy, token="ya29.other").publish_version_config(CONFIG)
    assert "FIREBASE_SERVICE_ACCOUNT_JSON" in (info.value.hint or "")
