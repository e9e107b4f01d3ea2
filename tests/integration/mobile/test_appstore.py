"""AppStoreRelease with requests and real PyJWT (ES256) against the App Store Connect fake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests

from release_actions.errors import IntegrationError, ReleaseActionsError, TargetError
from release_actions.metrics.retry import RetryPolicy
from release_actions.mobile.appstore import AppStoreConnectToken, AppStoreRelease, fraction_on_day
from release_actions.mobile.base import StoreState
from tests.fakes._http import Fault
from tests.fakes.appstore import (
    APP_ID,
    ISSUER_ID,
    KEY_ID,
    NOT_AUTHORIZED,
    OTHER_KEY_PEM,
    PRIVATE_KEY_PEM,
    AppStoreFake,
    fault,
)
from tests.support.sleeps import Sleeps

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> Iterator[AppStoreFake]:
    with AppStoreFake() as server:
        server.add_version("4.1.0", build="410", phased="COMPLETE", day=7)
        server.add_version(
            "4.2.0",
            build="421",
            phased="ACTIVE",
            day=3,
            locales={"en-US": "Old notes", "de-DE": ""},
        )
        yield server


def token(**kw: Any) -> AppStoreConnectToken:
    kw.setdefault("key_id", KEY_ID)
    kw.setdefault("issuer_id", ISSUER_ID)
    kw.setdefault("private_key", PRIVATE_KEY_PEM)
    return AppStoreConnectToken(**kw)


def store(
    fake: AppStoreFake, policy: RetryPolicy, version: str = "4.2.0", **kw: Any
) -> AppStoreRelease:
    sign = kw.pop("sign", None) or token()
    return AppStoreRelease(
        requests.Session(),
        sign,
        app_id=APP_ID,
        version_string=version,
        base_url=fake.url,
        retry=policy,
        timeout=kw.pop("timeout", 5.0),
        **kw,
    )


def test_token_claims_and_reuse() -> None:
    now = [1_800_000_000.0]
    masked: list[str] = []
    sign = token(clock=lambda: now[0], mask=masked.append)
    first = sign()
    header = jwt.get_unverified_header(first)
    claims = jwt.decode(first, options={"verify_signature": False})
    assert header == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    assert claims["aud"] == "appstoreconnect-v1" and claims["iss"] == ISSUER_ID
    assert claims["exp"] - claims["iat"] == 1200
    assert PRIVATE_KEY_PEM in masked and first in masked
    now[0] += 600
    assert sign() == first  # reused while it has more than a minute left
    now[0] += 590
    assert sign() != first


def test_token_refuses_a_long_life_and_a_bad_key() -> None:
    with pytest.raises(ReleaseActionsError, match="at most 1200 seconds"):
        token(lifetime=3600)
    with pytest.raises(IntegrationError, match="not a PEM private key"):
        token(private_key="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----")
    with pytest.raises(IntegrationError, match="APP_STORE_CONNECT_ISSUER_ID"):
        token(issuer_id=" ")


def test_status_of_an_active_phased_release(fake: AppStoreFake, policy: RetryPolicy) -> None:
    status = store(fake, policy).status()
    assert (status.state, status.day, status.fraction) == (StoreState.IN_PROGRESS, 3, 0.05)
    assert (status.version_code, status.version_name) == ("421", "4.2.0")
    assert status.paused_since is None
    assert status.detail["total_pause_duration_days"] == 0
    assert fake.requests[0].claims is not None and fake.requests[0].claims["iss"] == ISSUER_ID


def test_previous_version_is_the_newest_other_live_one(
    fake: AppStoreFake, policy: RetryPolicy
) -> None:
    # Older and replaced, and a version still in preparation: neither is the baseline.
    fake.add_version(
        "4.0.0", build="400", state="REPLACED_WITH_NEW_VERSION", phased=None,
        created=datetime(2025, 11, 1, tzinfo=UTC),
    )  # fmt: skip
    fake.add_version("4.3.0", build="430", state="PREPARE_FOR_SUBMISSION", phased="INACTIVE")
    app = store(fake, policy)
    status = app.status()
    assert (status.previous_version_code, status.previous_version_name) == ("410", "4.1.0")
    assert status.detail["previous_version_id"] == fake._find("4.1.0")
    assert app.version_names == {"421": "4.2.0", "410": "4.1.0"}
    [listing] = [r for r in fake.requests if "filter[appStoreState]" in r.params]
    assert listing.path == f"/v1/apps/{APP_ID}/appStoreVersions"
    assert listing.params["filter[appStoreState]"] == ["READY_FOR_SALE,REPLACED_WITH_NEW_VERSION"]
    assert listing.params["filter[platform]"] == ["IOS"]
    assert listing.params["include"] == ["build"]
    # The build number came in `included`: only the rolling version's build is read alone.
    builds = [r.path for r in fake.requests if r.path.endswith("/build")]
    assert builds == [f"/v1/appStoreVersions/{fake._find('4.2.0')}/build"]


def test_previous_version_once_apple_replaced_it(fake: AppStoreFake, policy: RetryPolicy) -> None:
    # Apple marks the older version replaced as soon as the phased release starts.
    fake.versions[fake._find("4.1.0")]["appStoreState"] = "REPLACED_WITH_NEW_VERSION"
    status = store(fake, policy).status()
    assert (status.previous_version_code, status.previous_version_name) == ("410", "4.1.0")


def test_a_first_release_has_no_previous_version(policy: RetryPolicy) -> None:
    with AppStoreFake() as fake:
        fake.add_version("1.0.0", build="100", phased="ACTIVE", day=2)
        app = store(fake, policy, "1.0.0")
        status = app.status()
    assert (status.previous_version_code, status.previous_version_name) == (None, None)
    assert "previous_version_id" not in status.detail
    assert app.version_names == {"100": "1.0.0"}


def test_a_newer_version_is_never_the_previous(fake: AppStoreFake, policy: RetryPolicy) -> None:
    status = store(fake, policy, "4.1.0").status()
    assert status.previous_version_code is None


def test_previous_version_on_a_later_page(policy: RetryPolicy) -> None:
    with AppStoreFake() as fake:
        old = datetime(2024, 1, 1, tzinfo=UTC)
        for i in range(200):
            fake.add_version(
                f"3.{i}.0", build=str(3000 + i), state="REPLACED_WITH_NEW_VERSION", phased=None,
                created=old + timedelta(days=i),
            )  # fmt: skip
        fake.add_version("4.1.0", build="410", state="REPLACED_WITH_NEW_VERSION", phased=None)
        fake.add_version("4.2.0", build="421", phased="ACTIVE", day=1)
        status = store(fake, policy).status()
        listings = [r for r in fake.requests if "include" in r.params or "cursor" in r.params]
    assert (status.previous_version_code, status.previous_version_name) == ("410", "4.1.0")
    assert [r.params.get("cursor") for r in listings] == [None, ["200"]]


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (fault(404), "app-id"),
        (Fault(401, {"errors": [{"id": "x", **NOT_AUTHORIZED}]}), "APP_STORE_CONNECT_KEY_ID"),
    ],
)
def test_previous_version_errors_are_clear(
    fake: AppStoreFake, policy: RetryPolicy, answer: Fault, hint: str
) -> None:
    answer.path_contains = "include=build"  # only the listing of live versions fails
    fake.faults.append(answer)
    with pytest.raises(TargetError, match=f"HTTP {answer.status}") as info:
        store(fake, policy).status()
    assert hint in (info.value.hint or "")
    assert "appStoreVersions" in info.value.message


def test_schedule() -> None:
    assert [fraction_on_day(d) for d in range(1, 8)] == [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    assert fraction_on_day(None) is None


def test_pause_resume_complete_are_idempotent(fake: AppStoreFake, policy: RetryPolicy) -> None:
    app = store(fake, policy)
    assert app.halt().changed
    assert fake.phased_state("4.2.0") == "PAUSED"
    assert app.status().state == StoreState.HALTED
    again = app.halt()
    assert not again.changed and "nothing was changed" in again.message
    assert app.resume().changed
    assert not app.resume().changed
    assert app.complete().changed
    assert not app.complete().changed
    assert fake.phased_state("4.2.0") == "COMPLETE"
    status = app.status()
    assert (status.state, status.fraction) == (StoreState.COMPLETED, 1.0)
    bodies = [r.body for r in fake.patches()]
    assert bodies[0] == {
        "data": {
            "type": "appStoreVersionPhasedReleases",
            "id": bodies[0]["data"]["id"],
            "attributes": {"phasedReleaseState": "PAUSED"},
        }
    }
    assert [b["data"]["attributes"]["phasedReleaseState"] for b in bodies] == [
        "PAUSED",
        "ACTIVE",
        "COMPLETE",
    ]


def test_set_fraction_resumes_or_holds(fake: AppStoreFake, policy: RetryPolicy) -> None:
    app = store(fake, policy)
    held = app.set_fraction(0.2)
    assert not held.changed and "App Store chooses" in held.message
    app.halt()
    assert not app.set_fraction(0.01).changed  # not above today's 5 %: stays paused
    assert fake.phased_state("4.2.0") == "PAUSED"
    assert app.set_fraction(0.1).changed
    assert fake.phased_state("4.2.0") == "ACTIVE"
    assert app.set_fraction(1.0).changed
    assert fake.phased_state("4.2.0") == "COMPLETE"


def test_a_complete_release_cannot_be_paused(fake: AppStoreFake, policy: RetryPolicy) -> None:
    with pytest.raises(TargetError, match="is COMPLETE"):
        store(fake, policy, "4.1.0").halt()
    assert not fake.patches()


def test_no_phased_release(fake: AppStoreFake, policy: RetryPolicy) -> None:
    fake.add_version("4.3.0", build="430", phased=None)
    app = store(fake, policy, "4.3.0")
    assert app.status().state == StoreState.COMPLETED
    with pytest.raises(TargetError, match="has no phased release"):
        app.halt()


def test_inactive_is_a_draft_and_cannot_be_completed(
    fake: AppStoreFake, policy: RetryPolicy
) -> None:
    fake.add_version("4.4.0", build="440", state="PENDING_DEVELOPER_RELEASE", phased="INACTIVE")
    app = store(fake, policy, "4.4.0")
    status = app.status()
    assert (status.state, status.fraction, status.day) == (StoreState.DRAFT, None, None)
    with pytest.raises(TargetError, match="is INACTIVE"):
        app.complete()


def test_unknown_version(fake: AppStoreFake, policy: RetryPolicy) -> None:
    with pytest.raises(TargetError, match=r"no IOS version 9\.9\.9") as info:
        store(fake, policy, "9.9.9").status()
    assert "app-id" in (info.value.hint or "")


def test_release_notes_per_locale(fake: AppStoreFake, policy: RetryPolicy) -> None:
    vid = fake.add_version(
        "4.5.0",
        build="450",
        state="PREPARE_FOR_SUBMISSION",
        phased="INACTIVE",
        locales={"en-US": "", "de-DE": "Schon"},
    )
    app = store(fake, policy, "4.5.0")
    assert app.set_release_notes({"en-US": "Faster search", "de-DE": "Schon"}).changed
    assert [r.body["data"]["attributes"] for r in fake.patches()] == [{"whatsNew": "Faster search"}]
    assert not app.set_release_notes({"en-US": "Faster search"}).changed
    assert len(fake.patches()) == 1
    texts = {
        loc["locale"]: loc["whatsNew"]
        for loc in fake.localizations.values()
        if loc["version"] == vid
    }
    assert texts == {"en-US": "Faster search", "de-DE": "Schon"}
    with pytest.raises(TargetError, match="no `fr-FR` localization"):
        app.set_release_notes({"fr-FR": "Plus vite"})


def test_release_notes_of_a_live_version_are_refused(
    fake: AppStoreFake, policy: RetryPolicy
) -> None:
    with pytest.raises(TargetError, match="HTTP 409") as info:
        store(fake, policy).set_release_notes({"en-US": "New"})
    assert "before review" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("sign", "reason"),
    [
        (lambda: token(clock=lambda: time.time() - 1300)(), "expired"),
        (
            lambda: jwt.encode(
                {
                    "iss": ISSUER_ID,
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 600,
                    "aud": "appstoreconnect-v2",
                },
                PRIVATE_KEY_PEM,
                algorithm="ES256",
                headers={"kid": KEY_ID},
            ),
            "wrong audience",
        ),
        (lambda: token(private_key=OTHER_KEY_PEM)(), "bad signature"),
        (lambda: token(key_id="WRONGKID00")(), "wrong kid"),
        (lambda: token(issuer_id="someone-else")(), "wrong issuer"),
        (
            lambda: jwt.encode(
                {
                    "iss": ISSUER_ID,
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 3600,
                    "aud": "appstoreconnect-v1",
                },
                PRIVATE_KEY_PEM,
                algorithm="ES256",
                headers={"kid": KEY_ID},
            ),
            "lifetime over 20 minutes",
        ),
    ],
)
def test_jwt_rejected_like_apple(
    fake: AppStoreFake, policy: RetryPolicy, sign: Any, reason: str
) -> None:
    with pytest.raises(TargetError, match="HTTP 401") as info:
        store(fake, policy, sign=sign).status()
    assert "NOT_AUTHORIZED" in info.value.message
    assert "APP_STORE_CONNECT_KEY_ID" in (info.value.hint or "")
    assert fake.rejections == [reason]


def test_jwt_accepted(fake: AppStoreFake, policy: RetryPolicy) -> None:
    store(fake, policy).status()
    assert not fake.rejections
    assert all(r.claims is not None for r in fake.requests)


def test_role_without_permission(fake: AppStoreFake, policy: RetryPolicy) -> None:
    fake.faults.append(fault(403, method="PATCH"))
    with pytest.raises(TargetError, match="HTTP 403") as info:
        store(fake, policy).halt()
    assert "App Manager" in (info.value.hint or "")
    assert fake.phased_state("4.2.0") == "ACTIVE"


def test_rate_limit_and_outage_are_retried(
    fake: AppStoreFake, policy: RetryPolicy, sleeps: Sleeps
) -> None:
    fake.faults.append(fault(429, retry_after=5, method="PATCH"))
    fake.faults.append(fault(502, method="GET"))
    assert store(fake, policy).halt().changed
    assert 5.0 in sleeps.waits
    assert fake.phased_state("4.2.0") == "PAUSED"


def test_rate_limit_gives_up_with_a_hint(fake: AppStoreFake, policy: RetryPolicy) -> None:
    fake.faults.append(fault(429, times=5))
    with pytest.raises(TargetError, match="gave up after 3") as info:
        store(fake, policy).status()
    assert "X-Rate-Limit" in (info.value.hint or "")


def test_timeout_is_retried(fake: AppStoreFake, sleeps: Sleeps) -> None:
    fake.delay = 1.0
    policy = RetryPolicy(
        attempts=2, total_seconds=30, backoff_initial=0.1, jitter=0.0, sleep=sleeps
    )
    with pytest.raises(TargetError, match="did not answer"):
        store(fake, policy, timeout=0.2).status()
    assert len(sleeps.waits) == 1
