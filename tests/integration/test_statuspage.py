"""StatuspageClient with a real requests session against the Statuspage REST fake: every fault."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from release_actions.errors import IntegrationError
from release_actions.integrations.statuspage import StatuspageClient, marker_of
from release_actions.metrics.retry import RetryPolicy
from tests.fakes.statuspage import API_KEY, PAGE_ID, StatuspageFake

pytestmark = pytest.mark.integration

MARKER = "release-actions:rollback:triptrip-api@v1.6.0"


class Clock:
    """Waits recorded, not slept; the clock moves by them."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[StatuspageFake]:
    with StatuspageFake() as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(fake: StatuspageFake, clock: Clock, **kw: Any) -> StatuspageClient:
    kw.setdefault("api_key", API_KEY)
    kw.setdefault("page_id", PAGE_ID)
    kw.setdefault("timeout", 5.0)
    retry = RetryPolicy(
        attempts=4, total_seconds=60, backoff_initial=0.5, jitter=0.0, retry_after_cap=30,
        sleep=clock.sleep, clock=clock.clock,
    )  # fmt: skip
    return StatuspageClient(None, base_url=fake.base_url, retry=retry, **kw)


def incident(fake: StatuspageFake, **extra: Any) -> dict[str, Any]:
    api = fake.component_id("TripTrip API")
    return {
        "name": "Performance Degradation",
        "status": "investigating",
        "body": "We are currently experiencing degraded performance.",
        "component_ids": [api],
        "components": {api: "degraded_performance"},
        "metadata": {"release_actions": {"marker": MARKER}},
        **extra,
    }


# -- what is sent ---------------------------------------------------------------------------------


def test_an_incident_is_opened_as_the_api_documents_it(fake: StatuspageFake, clock: Clock) -> None:
    client = make(fake, clock)

    created = client.create(incident(fake), subject="open the incident")

    post = [r for r in fake.requests if r.method == "POST"][-1]
    assert post.path == f"/v1/pages/{PAGE_ID}/incidents"
    assert post.headers["authorization"] == f"OAuth {API_KEY}"
    assert post.headers["content-type"] == "application/json"
    assert post.body["incident"]["components"] == {
        fake.component_id("TripTrip API"): "degraded_performance"
    }
    assert created["status"] == "investigating" and created["impact"] == "minor"
    assert [c["name"] for c in created["components"]] == ["TripTrip API"]
    assert fake.status_of("TripTrip API") == "degraded_performance"
    assert marker_of(created) == MARKER


def test_components_are_mapped_by_name_once_and_groups_left_out(
    fake: StatuspageFake, clock: Clock
) -> None:
    client = make(fake, clock)

    ids = client.component_ids(["TripTrip Web", "TripTrip API"])
    client.component_ids(["TripTrip Mobile (iOS)"])

    assert ids == [fake.component_id("TripTrip Web"), fake.component_id("TripTrip API")]
    assert [r.path for r in fake.requests] == [f"/v1/pages/{PAGE_ID}/components"]
    assert "Backend Services" not in client.components(), "a group has no status of its own"


def test_an_unknown_component_name_lists_the_pages_components(
    fake: StatuspageFake, clock: Clock
) -> None:
    with pytest.raises(IntegrationError) as caught:
        make(fake, clock).component_ids(["TripTrip APP"])

    assert "has no component `TripTrip APP`" in caught.value.message
    assert "`TripTrip API`" in caught.value.message and "`TripTrip Web`" in caught.value.message


def test_a_long_listing_is_read_page_by_page(fake: StatuspageFake, clock: Clock) -> None:
    for n in range(150):
        fake.add_component(f"Edge {n:03d}")

    names = make(fake, clock).components()

    assert len(names) == 154
    pages = [r.params.get("page") for r in fake.requests]
    assert pages == ["1", "2"]


def test_the_marked_incident_is_found_among_the_unresolved_only(
    fake: StatuspageFake, clock: Clock
) -> None:
    client = make(fake, clock)
    client.create(incident(fake, metadata={"release_actions": {"marker": "other"}}), subject="x")
    opened = client.create(incident(fake), subject="x")

    assert client.find_marked(MARKER) == client.incident(opened["id"])
    client.update(opened["id"], {"status": "resolved", "body": "fixed"}, subject="resolve")
    assert client.find_marked(MARKER) is None


def test_maintenance_is_scheduled_started_and_completed(fake: StatuspageFake, clock: Clock) -> None:
    client = make(fake, clock)
    api = fake.component_id("TripTrip API")
    scheduled = client.create(
        {
            "name": "[Scheduled] System Maintenance",
            "status": "scheduled",
            "scheduled_for": "2026-01-25T02:00:00+09:00",
            "scheduled_until": "2026-01-25T06:00:00+09:00",
            "component_ids": [api],
            "body": "We will be performing scheduled maintenance on our systems.",
        },
        subject="schedule",
    )
    assert scheduled["impact"] == "maintenance"
    assert [m["id"] for m in client.upcoming_maintenances()] == [scheduled["id"]]

    client.update(
        scheduled["id"],
        {"status": "in_progress", "components": {api: "under_maintenance"}},
        subject="start",
    )
    assert [m["id"] for m in client.active_maintenances()] == [scheduled["id"]]
    assert fake.status_of("TripTrip API") == "under_maintenance"
    done = client.update(
        scheduled["id"],
        {"status": "completed", "components": {api: "operational"}},
        subject="complete",
    )
    assert done["status"] == "completed" and done["resolved_at"]
    assert client.active_maintenances() == [] and fake.status_of("TripTrip API") == "operational"


# -- refusals: never retried ----------------------------------------------------------------------


def test_the_fake_wants_the_oauth_header(fake: StatuspageFake) -> None:
    url = f"{fake.base_url}/pages/{PAGE_ID}/components"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": API_KEY}, timeout=5).status_code == 401
    ok = requests.get(url, headers={"Authorization": f"OAuth {API_KEY}"}, timeout=5)
    assert ok.status_code == 200 and len(ok.json()) == 7


def test_a_wrong_key_is_401_at_once(fake: StatuspageFake, clock: Clock) -> None:
    with pytest.raises(IntegrationError) as caught:
        make(fake, clock, api_key="sp-wrong").unresolved_incidents()

    assert len(fake.requests) == 1 and clock.waits == []
    error = caught.value
    assert "HTTP 401: Could not authenticate" in error.message
    assert f"GET /pages/{PAGE_ID}/incidents/unresolved" in error.message
    assert "STATUSPAGE_API_KEY" in str(error.hint)


def test_no_key_is_an_error_before_any_request(fake: StatuspageFake) -> None:
    with pytest.raises(IntegrationError, match="STATUSPAGE_API_KEY"):
        StatuspageClient.from_env({"STATUSPAGE_BASE_URL": fake.base_url}, page_id=PAGE_ID)
    assert fake.requests == []


def test_an_unknown_page_is_404_at_once(fake: StatuspageFake, clock: Clock) -> None:
    with pytest.raises(IntegrationError) as caught:
        make(fake, clock, page_id="nosuchpage").components()

    assert len(fake.requests) == 1
    assert "HTTP 404" in caught.value.message and "`nosuchpage`" in caught.value.message
    assert "page_id" in str(caught.value.hint)


def test_an_unknown_incident_is_404(fake: StatuspageFake, clock: Clock) -> None:
    with pytest.raises(IntegrationError) as caught:
        make(fake, clock).update("nope", {"status": "resolved"}, subject="resolve")

    assert "HTTP 404: The requested resource could not be found." in caught.value.message
    assert f"PATCH /pages/{PAGE_ID}/incidents/nope (resolve)" in caught.value.message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "Name can't be blank"),
        ({"status": "exploded"}, "Status 'exploded' is not valid"),
        ({"component_ids": ["nosuchcomp"]}, "Components not found: nosuchcomp"),
        ({"components": {"nosuchcomp": "degraded_performance"}}, "Component not found"),
        ({"impact_override": "huge"}, "Impact override 'huge'"),
        ({"metadata": {"marker": "flat"}}, "Metadata must be an object of namespaces"),
    ],
)
def test_an_invalid_incident_is_422_at_once_and_nothing_is_made(
    fake: StatuspageFake, clock: Clock, fields: dict[str, Any], message: str
) -> None:
    client = make(fake, clock)
    client.components()

    with pytest.raises(IntegrationError) as caught:
        client.create(incident(fake, **fields), subject="open the incident")

    assert "HTTP 422" in caught.value.message and message in caught.value.message
    assert f"POST /pages/{PAGE_ID}/incidents (open the incident)" in caught.value.message
    assert fake.incidents == {} and fake.status_of("TripTrip API") == "operational"
    assert clock.waits == []


def test_a_realtime_incident_never_becomes_a_maintenance(
    fake: StatuspageFake, clock: Clock
) -> None:
    client = make(fake, clock)
    opened = client.create(incident(fake), subject="open")

    with pytest.raises(IntegrationError, match=r"HTTP 422.*not valid for a realtime incident"):
        client.update(opened["id"], {"status": "in_progress"}, subject="start")


def test_a_missing_incident_object_is_400(fake: StatuspageFake) -> None:
    r = requests.post(
        f"{fake.base_url}/pages/{PAGE_ID}/incidents",
        json={"name": "x"},
        headers={"Authorization": f"OAuth {API_KEY}"},
        timeout=5,
    )
    assert r.status_code == 400 and "incident" in r.json()["error"]


# -- faults: retried, bounded ----------------------------------------------------------------------


def test_429_waits_for_retry_after_then_succeeds(fake: StatuspageFake, clock: Clock) -> None:
    fake.rate_limit_next(retry_after="7")

    assert make(fake, clock).unresolved_incidents() == []

    assert clock.waits == [7.0]
    assert len(fake.requests) == 2


def test_a_5xx_is_retried_then_succeeds(fake: StatuspageFake, clock: Clock) -> None:
    fake.fail_next(503, times=2)

    assert make(fake, clock).unresolved_incidents() == []
    assert clock.waits == [0.5, 1.0]


def test_5xx_to_the_end_is_an_error_naming_the_request(fake: StatuspageFake, clock: Clock) -> None:
    fake.fail_next(500, times=10, message="Something went wrong")

    with pytest.raises(IntegrationError) as caught:
        make(fake, clock).unresolved_incidents()

    message = caught.value.message
    assert f"GET /pages/{PAGE_ID}/incidents/unresolved" in message
    assert "after 4 attempt(s): HTTP 500: Something went wrong" in message
    assert len(fake.requests) == 4


def test_the_overall_deadline_bounds_every_call(fake: StatuspageFake, clock: Clock) -> None:
    fake.fail_next(500, times=10)
    client = make(fake, clock, deadline=1.0)

    with pytest.raises(IntegrationError, match="HTTP 500"):
        client.unresolved_incidents()
    assert len(fake.requests) == 2, "0.5 s of backoff fit, the next 1 s did not"

    clock.now = 5.0
    with pytest.raises(IntegrationError, match="had run out"):
        client.components()
    assert len(fake.requests) == 2


def test_no_answer_times_out_and_is_retried(fake: StatuspageFake, clock: Clock) -> None:
    fake.hang_next(2.0)

    assert make(fake, clock, timeout=0.2).unresolved_incidents() == []
    assert len(fake.requests) == 2 and clock.waits == [0.5]


def test_no_answer_at_all_is_an_error(fake: StatuspageFake, clock: Clock) -> None:
    fake.hang_next(1.0, times=10)

    with pytest.raises(IntegrationError, match=r"no answer \(ReadTimeout\)"):
        make(fake, clock, timeout=0.1).unresolved_incidents()


def test_a_refused_connection_is_an_error(clock: Clock) -> None:
    with StatuspageFake() as gone:
        url = gone.base_url
    retry = RetryPolicy(
        attempts=2, total_seconds=10, jitter=0, sleep=clock.sleep, clock=clock.clock
    )
    client = StatuspageClient(None, api_key=API_KEY, page_id=PAGE_ID, base_url=url, retry=retry)

    with pytest.raises(IntegrationError, match=r"no answer \(ConnectionError\)"):
        client.components()


def test_a_lost_answer_to_a_create_is_not_sent_twice(fake: StatuspageFake, clock: Clock) -> None:
    client = make(fake, clock, timeout=0.3)
    client.components()
    fake.hang_next(1.0, method="POST", after_processing=True)

    created = client.create(
        incident(fake), subject="open the incident", recheck=lambda: client.find_marked(MARKER)
    )

    assert len(fake.incidents) == 1
    assert created["id"] == next(iter(fake.incidents))
    assert [m for m, _ in fake.writes()] == ["POST"]
