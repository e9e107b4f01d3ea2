"""CloudRunTarget with the real google-cloud-run client (REST transport) against the Cloud Run fake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

from release_actions.errors import MissingExtraError, TargetError
from release_actions.metrics.base import Track
from release_actions.metrics.retry import RetryPolicy
from release_actions.targets.base import DeployTarget
from release_actions.targets.cloudrun import (
    KNOWN_GOOD_ANNOTATION,
    ROLLOUT_ANNOTATION,
    STATE_ANNOTATION,
    CloudRunTarget,
)
from tests.fakes.cloudrun import LATEST, REVISION, CloudRunFake

pytestmark = pytest.mark.integration

SERVICE = "triptrip-api"
REGISTRY = "asia-northeast1-docker.pkg.dev/triptrip-production/triptrip-api/triptrip-api"
OLD = "triptrip-api-00001-abc"
NEW = "triptrip-api-v1-6-0"


class VirtualTime:
    """The retry policy's clock and sleep: waits are recorded and pass at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> Iterator[CloudRunFake]:
    with CloudRunFake(op_polls=2) as server:
        server.add_service(SERVICE, image=f"{REGISTRY}:v1.5.2", revision=OLD, traffic="pinned")
        yield server


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


def clients(url: str) -> tuple[Any, Any]:
    options = ClientOptions(api_endpoint=url)
    creds = AnonymousCredentials()
    return (
        run_v2.ServicesClient(credentials=creds, transport="rest", client_options=options),
        run_v2.RevisionsClient(credentials=creds, transport="rest", client_options=options),
    )


def by_hand(fake: CloudRunFake, change: Any) -> None:
    """A change made behind the target's back with the same client (another tool, a person)."""
    from google.api_core.future.polling import DEFAULT_POLLING

    services, _ = clients(fake.url)
    svc = services.get_service(name=fake.service_name(SERVICE))
    change(svc)
    polling = DEFAULT_POLLING.with_delay(initial=0.005, maximum=0.02)
    services.update_service(service=svc).result(timeout=5, polling=polling)


def make(fake: CloudRunFake, vt: VirtualTime, **kw: Any) -> CloudRunTarget:
    services, revisions = clients(fake.url)
    kw.setdefault("timeout", 5.0)
    return CloudRunTarget(
        services,
        revisions if kw.pop("with_revisions", True) else None,
        project=fake.project,
        region=fake.location,
        service=SERVICE,
        poll_initial=0.005,
        poll_max=0.02,
        retry=RetryPolicy(
            attempts=4,
            total_seconds=120,
            backoff_initial=0.5,
            jitter=0.0,
            sleep=vt.sleep,
            clock=vt.clock,
        ),
        **kw,
    )


def new_image(image: str) -> Any:
    def change(svc: Any) -> None:
        svc.template.containers[0].image = image
        svc.template.revision = ""  # let Cloud Run name the revision, as gcloud does

    return change


def patches(fake: CloudRunFake) -> int:
    return len(fake.patches())


# -- the canary flow ------------------------------------------------------------------------


def test_full_canary_flow_ends_with_the_new_revision_serving_everything(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = make(fake, vt)
    assert isinstance(target, DeployTarget)
    before = target.status()
    assert (before.stable_version, before.canary_version, before.known_good) == (
        "v1.5.2", None, None,
    )  # fmt: skip

    target.begin("v1.6.0")
    svc = fake.service(SERVICE)
    assert fake.serving(SERVICE) == {OLD: 100}
    assert svc["template"]["revision"] == NEW
    assert svc["template"]["containers"][0]["image"] == f"{REGISTRY}:v1.6.0"
    assert svc["template"]["annotations"]["release-actions.dev/version"] == "v1.6.0"
    assert svc["annotations"][KNOWN_GOOD_ANNOTATION] == OLD
    assert {"type": REVISION, "revision": NEW, "tag": "canary"} in svc["traffic"]
    # The PATCH carries the etag it read, and only the fields it changed.
    begin_patch = fake.patches()[-1]
    assert begin_patch.params["updateMask"] == "template,traffic,annotations"
    assert begin_patch.body["etag"]
    status = target.status()
    assert (status.stable_version, status.canary_version, status.canary_weight) == (
        "v1.5.2", "v1.6.0", 0,
    )  # fmt: skip
    assert status.known_good == "v1.5.2"

    for weight in (5, 20, 50):
        target.set_weight(weight)
        assert fake.serving(SERVICE) == {OLD: 100 - weight, NEW: weight}
        assert target.status().canary_weight == weight
        assert fake.patches()[-1].params["updateMask"] == "traffic"

    target.promote()
    assert fake.serving(SERVICE) == {NEW: 100}
    after = target.status()
    assert (after.stable_version, after.canary_version, after.known_good) == (
        "v1.6.0", None, "v1.5.2",
    )  # fmt: skip
    # Promoting twice is harmless and sends nothing.
    sent = patches(fake)
    target.promote()
    assert patches(fake) == sent
    # No revision besides the canary was created along the way.
    assert sorted(fake.revisions) == sorted(
        f"{fake.service_name(SERVICE)}/revisions/{r}" for r in (OLD, NEW)
    )


def test_bad_canary_rolls_back_to_the_known_good_revision(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    target.set_weight(20)

    result = target.rollback()

    assert result.changed
    assert (result.from_version, result.to_version) == ("v1.6.0", "v1.5.2")
    assert NEW in result.detail and OLD in result.detail
    assert fake.serving(SERVICE) == {OLD: 100}
    svc = fake.service(SERVICE)
    assert svc["traffic"] == [{"type": REVISION, "revision": OLD, "percent": 100}]
    assert json.loads(svc["annotations"][ROLLOUT_ANNOTATION])["phase"] == "rolled_back"
    status = target.status()
    assert (status.stable_version, status.canary_version, status.canary_weight) == (
        "v1.5.2", None, 0,
    )  # fmt: skip


def test_rollback_twice_sends_nothing_the_second_time(fake: CloudRunFake, vt: VirtualTime) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    target.set_weight(50)
    first = target.rollback()
    sent = patches(fake)

    second = target.rollback()

    assert first.changed and not second.changed
    assert patches(fake) == sent, "a second rollback must not PATCH the service"
    assert second.to_version == "v1.5.2" and second.from_version is None
    assert "already on the known-good revision" in second.detail
    assert fake.serving(SERVICE) == {OLD: 100}


def test_rollback_after_promotion_returns_to_the_revision_known_good_at_the_start(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    target.promote()

    result = target.rollback()

    assert result.changed and result.from_version == "v1.6.0"
    assert fake.serving(SERVICE) == {OLD: 100}
    assert not target.rollback().changed


def test_begin_again_for_the_same_version_resumes_and_another_version_is_refused(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    target.set_weight(20)
    sent = patches(fake)

    target.begin("v1.6.0")  # a rerun of the job: resumes, keeps the weight
    assert patches(fake) == sent
    assert fake.serving(SERVICE) == {OLD: 80, NEW: 20}

    with pytest.raises(
        TargetError, match=r"Canary v1\.6\.0 .* still in progress.*cannot start v1\.7\.0"
    ):
        target.begin("v1.7.0")


def test_engine_state_is_kept_in_an_annotation(fake: CloudRunFake, vt: VirtualTime) -> None:
    target = make(fake, vt)
    target.save_state({"version": "v1.6.0", "phase": "running", "step_index": 2})
    assert target.status().state == {"version": "v1.6.0", "phase": "running", "step_index": 2}
    sent = patches(fake)
    target.save_state({"version": "v1.6.0", "phase": "running", "step_index": 2})
    assert patches(fake) == sent, "an unchanged state is not written again"

    big = {"steps": [{"index": i, "reason": "x" * 200} for i in range(200)]}
    target.save_state(big)
    stored = fake.service(SERVICE)["annotations"][STATE_ANNOTATION]
    assert stored.startswith("zlib+base64:") and len(stored) < 20_000
    assert target.status().state == big

    target.save_state(None)
    assert STATE_ANNOTATION not in fake.service(SERVICE).get("annotations", {})
    assert target.status().state is None
    # Annotation-only changes create no revision.
    assert len(fake.revisions) == 1


def test_health_reads_the_revisions_ready_conditions(fake: CloudRunFake, vt: VirtualTime) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    canary = target.health(Track.CANARY)
    assert canary.ready and canary.restarts == 0 and canary.health_check_failures == 0
    assert list(canary.details["revisions"]) == [NEW]
    assert list(target.health(Track.STABLE).details["revisions"]) == [OLD]
    assert target.health(None).ready


# -- a deploy release-actions did not start: the revision history ---------------------------


def deployed_outside(fake: CloudRunFake, image: str) -> None:
    """``gcloud run deploy`` of ``image``: a new revision; traffic stays as it was asked."""
    by_hand(fake, new_image(image))


def listed(fake: CloudRunFake) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/revisions") and r.method == "GET"]


@pytest.fixture
def outside(vt: VirtualTime) -> Iterator[CloudRunFake]:
    """Two revisions made by plain deploys; the newest serves 100 % through LATEST."""
    with CloudRunFake(op_polls=2) as server:
        server.add_service(SERVICE, image=f"{REGISTRY}:v1.5.2", revision=OLD, traffic="latest")
        deployed_outside(server, f"{REGISTRY}:v1.5.3")
        assert ROLLOUT_ANNOTATION not in server.service(SERVICE).get("annotations", {})
        yield server


def test_rollback_of_a_deploy_it_did_not_start_goes_to_the_previous_serving_revision(
    outside: CloudRunFake, vt: VirtualTime
) -> None:
    fake = outside
    bad = fake.service(SERVICE)["latestReadyRevision"].rsplit("/", 1)[-1]
    assert fake.serving(SERVICE) == {bad: 100}
    fake.list_page_max = 1  # one revision a page: the history is read across pages

    result = make(fake, vt).rollback()

    assert result.changed
    assert (result.from_version, result.to_version) == ("v1.5.3", "v1.5.2")
    assert result.detail.startswith(
        f"no rollout recorded: rolled back to the previous serving revision `{OLD}` (v1.5.2) "
        "(from Cloud Run's revision history)"
    )
    assert bad in result.detail
    assert fake.serving(SERVICE) == {OLD: 100}
    svc = fake.service(SERVICE)
    # Pinned by name: with LATEST kept, the bad revision would take the traffic back.
    assert svc["traffic"] == [{"type": REVISION, "revision": OLD, "percent": 100}]
    recorded = json.loads(svc["annotations"][ROLLOUT_ANNOTATION])
    assert (recorded["phase"], recorded["revision"], recorded["known_good"]) == (
        "rolled_back", bad, OLD,
    )  # fmt: skip
    assert svc["annotations"][KNOWN_GOOD_ANNOTATION] == OLD
    pages = listed(fake)
    assert len(pages) >= 2 and pages[1].params.get("pageToken"), "read past the first page"
    # No revision was created by the rollback.
    assert len(fake.revisions) == 2


def test_a_second_rollback_of_such_a_deploy_does_not_flip_back(
    outside: CloudRunFake, vt: VirtualTime
) -> None:
    first = make(outside, vt).rollback()
    sent = patches(outside)

    # The previous serving revision is now the bad one: the record says it was rolled back.
    second = make(outside, vt).rollback()

    assert first.changed and not second.changed
    assert patches(outside) == sent, "a second rollback must not PATCH the service"
    assert outside.serving(SERVICE) == {OLD: 100}
    assert second.to_version == "v1.5.2" and second.from_version is None
    assert "nothing to do" in second.detail and OLD in second.detail


def test_rollback_from_history_skips_revisions_that_never_became_ready(vt: VirtualTime) -> None:
    with CloudRunFake(op_polls=2) as fake:
        fake.add_service(SERVICE, image=f"{REGISTRY}:v1.5.2", revision=OLD, traffic="latest")
        fake.fail_image(f"{REGISTRY}:v1.5.3")
        with pytest.raises(Exception, match="not ready"):
            deployed_outside(fake, f"{REGISTRY}:v1.5.3")
        broken = fake.service(SERVICE)["latestCreatedRevision"].rsplit("/", 1)[-1]
        deployed_outside(fake, f"{REGISTRY}:v1.5.4")
        newest = fake.service(SERVICE)["latestReadyRevision"].rsplit("/", 1)[-1]
        assert fake.serving(SERVICE) == {newest: 100} and broken not in (OLD, newest)

        result = make(fake, vt).rollback()

        assert result.changed and (result.from_version, result.to_version) == ("v1.5.4", "v1.5.2")
        assert fake.serving(SERVICE) == {OLD: 100}


def test_rollback_from_history_with_a_split_goes_to_the_other_serving_revision(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    # Traffic pinned to OLD; two deploys with --no-traffic, then the newest gets 30 % by hand.
    deployed_outside(fake, f"{REGISTRY}:v1.5.3-preview")
    never_served = fake.service(SERVICE)["latestReadyRevision"].rsplit("/", 1)[-1]
    deployed_outside(fake, f"{REGISTRY}:v1.5.4")
    bad = fake.service(SERVICE)["latestReadyRevision"].rsplit("/", 1)[-1]
    fake.set_traffic(
        SERVICE,
        [
            {"type": REVISION, "revision": OLD, "percent": 70},
            {"type": REVISION, "revision": bad, "percent": 30},
        ],
    )

    result = make(fake, vt).rollback()

    # Not `never_served`, the newest ready revision before `bad`: it never served.
    assert result.changed and (result.from_version, result.to_version) == ("v1.5.4", "v1.5.2")
    assert fake.serving(SERVICE) == {OLD: 100}
    assert never_served not in result.detail


def test_a_later_deploy_outside_is_rolled_back_past_the_revision_rolled_back_before(
    outside: CloudRunFake, vt: VirtualTime
) -> None:
    fake = outside
    bad = fake.service(SERVICE)["latestReadyRevision"].rsplit("/", 1)[-1]
    assert make(fake, vt).rollback().changed
    # Later, another plain deploy: traffic follows LATEST again.
    fake.set_traffic(SERVICE, [{"type": LATEST, "percent": 100}])
    deployed_outside(fake, f"{REGISTRY}:v1.5.5")
    newest = fake.service(SERVICE)["latestReadyRevision"].rsplit("/", 1)[-1]
    assert fake.serving(SERVICE) == {newest: 100}

    result = make(fake, vt).rollback()

    # Not to `bad`, the newest older revision: it was rolled back as bad before.
    assert result.changed and (result.from_version, result.to_version) == ("v1.5.5", "v1.5.2")
    assert fake.serving(SERVICE) == {OLD: 100}
    recorded = json.loads(fake.service(SERVICE)["annotations"][ROLLOUT_ANNOTATION])
    assert (recorded["revision"], recorded["known_good"]) == (newest, OLD)
    assert bad not in result.detail.split("rolled back to", 1)[1].split("(")[0]


def test_rollback_with_no_rollout_and_no_earlier_revision_is_a_clear_error(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    with pytest.raises(TargetError, match=r"no earlier ready revision") as info:
        make(fake, vt).rollback()
    assert info.value.exit_code == 2
    assert f"`{OLD}`" in info.value.message and "nothing was changed" in info.value.message
    assert "update-traffic" in (info.value.hint or "")
    assert patches(fake) == 0
    assert fake.serving(SERVICE) == {OLD: 100}


# -- pinned traffic -------------------------------------------------------------------------


def test_latest_traffic_is_pinned_before_the_canary_revision_exists(vt: VirtualTime) -> None:
    with CloudRunFake() as fake:
        fake.add_service(SERVICE, image=f"{REGISTRY}:v1.5.2", revision=OLD, traffic="latest")
        target = make(fake, vt)
        target.begin("v1.6.0")
        # With LATEST kept, the new revision would have taken 100 % the moment it was ready.
        assert fake.serving(SERVICE) == {OLD: 100}
        assert fake.service(SERVICE)["traffic"][0] == {
            "type": REVISION, "revision": OLD, "percent": 100,
        }  # fmt: skip
        assert any("followed LATEST" in note for note in target.notes)


def test_traffic_pinned_by_an_earlier_deploy_is_reported(vt: VirtualTime) -> None:
    with CloudRunFake() as fake:
        fake.add_service(SERVICE, image=f"{REGISTRY}:v1.5.2", revision=OLD, traffic="pinned")
        # An earlier deploy created v1.5.3 while traffic stayed pinned to the old revision.
        by_hand(fake, new_image(f"{REGISTRY}:v1.5.3"))
        never_served = fake.service(SERVICE)["latestReadyRevision"].rsplit("/", 1)[-1]
        assert fake.serving(SERVICE) == {OLD: 100}

        target = make(fake, vt)
        target.begin("v1.6.0")

        assert fake.service(SERVICE)["annotations"][KNOWN_GOOD_ANNOTATION] == OLD
        assert any(f"pinned to `{OLD}`" in n and never_served in n for n in target.notes)
        assert target.status().known_good == "v1.5.2"


def test_traffic_pinned_elsewhere_during_the_rollout_is_refused(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    target.set_weight(5)
    # Someone pins traffic to a third revision by hand (gcloud update-traffic).
    fake.set_traffic(SERVICE, [{"type": REVISION, "revision": NEW, "percent": 100}])
    by_hand(fake, new_image(f"{REGISTRY}:hotfix"))
    third = fake.service(SERVICE)["latestCreatedRevision"].rsplit("/", 1)[-1]
    fake.set_traffic(SERVICE, [{"type": REVISION, "revision": third, "percent": 100}])

    with pytest.raises(TargetError, match=rf"pinned to revision `{third}` \(100 %\).*neither"):
        target.set_weight(20)
    with pytest.raises(TargetError, match="pinned to revision"):
        target.promote()

    fake.set_traffic(SERVICE, [{"type": LATEST, "percent": 100}])
    with pytest.raises(TargetError, match="follows LATEST"):
        target.set_weight(20)

    # Rollback is the way out: it pins the known-good revision whatever was there.
    result = target.rollback()
    assert result.changed and fake.serving(SERVICE) == {OLD: 100}


def test_split_traffic_at_the_start_is_refused(fake: CloudRunFake, vt: VirtualTime) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    target.set_weight(10)
    # The rollout record is lost (annotations removed by hand) but the split stays.
    by_hand(fake, lambda svc: svc.annotations.pop(ROLLOUT_ANNOTATION))

    with pytest.raises(TargetError, match=r"split .*no single revision serves 100 %") as info:
        make(fake, vt).begin("v1.7.0")
    assert "update-traffic" in (info.value.hint or "")


# -- Cloud Run saying one thing and doing another ------------------------------------------


def test_success_reported_while_the_old_revision_keeps_serving_is_an_error(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    target.set_weight(50)
    fake.freeze_routing = True  # operations succeed, routing stays where it was

    with pytest.raises(TargetError, match=r"promoting v1\.6\.0 .* as done, but it serves"):
        target.promote()
    assert fake.operations and all(op.done and op.error is None for op in fake.operations.values())

    fake.freeze_routing = False
    target.promote()  # a rerun sends the change again and Cloud Run reconciles it
    assert fake.serving(SERVICE) == {NEW: 100}


def test_a_revision_that_fails_to_start_fails_begin_and_rollback_clears_it(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    fake.fail_image(f"{REGISTRY}:v1.6.0")
    target = make(fake, vt)

    with pytest.raises(TargetError, match=r"FAILED_PRECONDITION.*is not ready and cannot serve"):
        target.begin("v1.6.0")
    assert fake.serving(SERVICE) == {OLD: 100}

    result = target.rollback()
    assert fake.serving(SERVICE) == {OLD: 100}
    assert "canary" not in json.dumps(fake.service(SERVICE)["traffic"])
    assert result.to_version == "v1.5.2"


def test_a_revision_that_never_becomes_ready_times_out(fake: CloudRunFake, vt: VirtualTime) -> None:
    target = make(fake, vt, timeout=0.3)
    fake.hold()
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"did not finish .* within 0\.3 s") as info:
        target.begin("v1.6.0")
    assert time.monotonic() - started < 5
    assert "never becomes ready" in (info.value.hint or "")
    assert fake.serving(SERVICE) == {OLD: 100}


def test_an_operation_that_ends_in_an_error_is_reported(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    fake.fail_next_operation(code=9, message="Traffic could not be migrated.")
    with pytest.raises(TargetError, match="Traffic could not be migrated"):
        target.set_weight(20)
    assert fake.serving(SERVICE) == {OLD: 100}


# -- retries --------------------------------------------------------------------------------


def test_conflicts_and_server_errors_are_retried(fake: CloudRunFake, vt: VirtualTime) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    fake.conflict_before_next_patch()  # the etag read is stale by the time of the PATCH
    fake.fail_next("PATCH", 503)
    fake.fail_next("GET", 500, path_contains="/services/")

    target.set_weight(20)

    assert fake.serving(SERVICE) == {OLD: 80, NEW: 20}
    statuses = [r.method for r in fake.requests]
    assert statuses.count("PATCH") >= 3
    assert len(vt.waits) == 3 and vt.waits == sorted(vt.waits)  # exponential backoff


def test_rate_limit_waits_for_retry_after(fake: CloudRunFake, vt: VirtualTime) -> None:
    target = make(fake, vt)
    fake.fail_next("PATCH", 429, retry_after="7")
    target.begin("v1.6.0")
    assert vt.waits == [7.0]
    assert fake.serving(SERVICE) == {OLD: 100}


def test_retries_give_up_with_a_clear_error(fake: CloudRunFake, vt: VirtualTime) -> None:
    target = make(fake, vt)
    fake.fail_next("GET", 503, times=10)
    with pytest.raises(TargetError, match=r"UNAVAILABLE, HTTP 503.*gave up after 4 attempt"):
        target.begin("v1.6.0")


def test_permission_denied_names_the_roles_and_workload_identity(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    fake.fail_next("GET", 403, message="Permission 'run.services.get' denied on resource")
    with pytest.raises(TargetError, match="PERMISSION_DENIED") as info:
        make(fake, vt).status()
    hint = info.value.hint or ""
    assert "id-token: write" in hint and "roles/run.developer" in hint
    assert vt.waits == []


def test_an_unknown_service_names_project_region_and_service(vt: VirtualTime) -> None:
    with CloudRunFake() as fake:
        with pytest.raises(TargetError, match="NOT_FOUND") as info:
            make(fake, vt).begin("v1.6.0")
        assert "`region` (asia-northeast1)" in (info.value.hint or "")


# -- a run killed in the middle ------------------------------------------------------------


def kill_after_its_patch(fake: CloudRunFake, script: Path, text: str) -> None:
    """Run ``text`` (a target call) in its own process and SIGKILL it once its PATCH reached
    the fake, while the fake holds the operation: a job killed mid-change."""
    sent = patches(fake)
    script.write_text(text)
    fake.hold()  # the operation will not complete while the process lives
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOOGLE_")}
    proc = subprocess.Popen(
        [sys.executable, str(script), fake.url, fake.project, fake.location, SERVICE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while patches(fake) == sent:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"{script.name} never sent its PATCH"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


_ROLLBACK_SCRIPT = textwrap.dedent(
    """
    import sys
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import run_v2
    from release_actions.targets.cloudrun import CloudRunTarget

    url, project, region, service = sys.argv[1:5]
    options = ClientOptions(api_endpoint=url)
    client = run_v2.ServicesClient(
        credentials=AnonymousCredentials(), transport="rest", client_options=options
    )
    target = CloudRunTarget(
        client, project=project, region=region, service=service,
        poll_initial=0.01, poll_max=0.05, timeout=60,
    )
    print("rolling back", flush=True)
    target.rollback()
    print("done", flush=True)
    """
)


def test_a_rollback_killed_midway_is_finished_by_the_next_run(
    fake: CloudRunFake, vt: VirtualTime, tmp_path: Path
) -> None:
    target = make(fake, vt)
    target.begin("v1.6.0")
    target.set_weight(50)
    sent = patches(fake)
    kill_after_its_patch(fake, tmp_path / "rollback.py", _ROLLBACK_SCRIPT)
    assert fake.serving(SERVICE) == {OLD: 50, NEW: 50}, "the kill came before the traffic moved"
    fake.release()

    result = make(fake, vt).rollback()  # the next run

    assert fake.serving(SERVICE) == {OLD: 100}
    assert patches(fake) == sent + 1, "the rerun waits for the change in flight, it does not resend"
    assert result.to_version == "v1.5.2"
    assert make(fake, vt).status().canary_version is None


# -- credentials and imports ------------------------------------------------------------------


def test_from_env_uses_workload_identity_federation_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What google-github-actions/auth writes for `workload_identity_provider`: no private key.
    token = tmp_path / "oidc-token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.sig")
    config = {
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/123456/locations/global/"
        "workloadIdentityPools/github/providers/triptrip",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/"
        "projects/-/serviceAccounts/deployer@triptrip-production.iam.gserviceaccount.com"
        ":generateAccessToken",
        "credential_source": {"file": str(token)},
    }
    path = tmp_path / "gha-creds.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "triptrip-production")

    target = CloudRunTarget.from_env(region="asia-northeast1", service=SERVICE)

    assert target.project == "triptrip-production"
    creds = target.services._transport._credentials
    assert type(creds).__module__ == "google.auth.identity_pool"
    assert not hasattr(creds, "_signer"), "workload identity needs no private key"
    assert target.revisions is not None


def test_from_env_without_credentials_says_how_to_authenticate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_credentials(**_: Any) -> Any:
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    with pytest.raises(TargetError, match="No Google Cloud credentials") as info:
        CloudRunTarget.from_env(region="asia-northeast1", service=SERVICE)
    hint = info.value.hint or ""
    assert "id-token: write" in hint and "GCP_WORKLOAD_IDENTITY_PROVIDER" in hint


def test_importing_the_module_does_not_import_the_sdk() -> None:
    code = (
        "import sys, release_actions.targets.cloudrun as m\n"
        "assert not [k for k in sys.modules if k.startswith(('google.cloud', 'google.api_core'))]\n"
        "print(m.CloudRunTarget.name)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cloudrun"


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.run_v2", None)
    with pytest.raises(MissingExtraError) as info:
        CloudRunTarget.from_env(region="asia-northeast1", service=SERVICE)
    assert "release-actions[cloudrun]" in (info.value.hint or "")


def test_revision_names_follow_cloud_runs_rules() -> None:
    target = CloudRunTarget(None, project="p", region="r", service=SERVICE)
    assert target.revision_name("v1.6.0") == NEW
    assert target.revision_name("v2.0.0-rc.1+build.7") == "triptrip-api-v2-0-0-rc-1-build-7"
    long = target.revision_name("v1.0.0-" + "a" * 80)
    assert len(long) <= 63 and long.startswith("triptrip-api-v1-0-0-a")
    assert long != target.revision_name("v1.0.0-" + "a" * 81)
    assert (
        target.image_for("v1.6.0+b5", "reg:5000/x/api:v1.5.2@sha256:00")
        == "reg:5000/x/api:v1.6.0_b5"
    )
    pinned = CloudRunTarget(None, project="p", region="r", service=SERVICE, image="i/a:{version}")
    assert pinned.image_for("v2.0.0", "ignored:v1") == "i/a:v2.0.0"


def test_without_a_revisions_client_the_services_own_report_is_used(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = make(fake, vt, with_revisions=False)
    target.begin("v1.6.0")
    target.set_weight(20)
    health = target.health(Track.CANARY)
    assert health.ready and list(health.details["revisions"]) == [NEW]
    assert target.status().stable_version == "v1.5.2"
    assert target.rollback().changed
    assert not any("/revisions" in r.path for r in fake.requests)


def test_from_env_with_a_workload_identity_provider_uses_the_oidc_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth

    def must_not_be_called(**_: Any) -> Any:
        raise AssertionError("application default credentials were used")

    monkeypatch.setattr(google.auth, "default", must_not_be_called)
    target = CloudRunTarget.from_env(
        region="asia-northeast1",
        service=SERVICE,
        env={
            "GCP_WORKLOAD_IDENTITY_PROVIDER": "projects/1/locations/global/workloadIdentityPools/gh/providers/gh",
            "GCP_SERVICE_ACCOUNT": "deployer@p.iam.gserviceaccount.com",
            "GOOGLE_CLOUD_PROJECT": "triptrip-production",
            "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t",
        },
    )
    assert target.project == "triptrip-production"
    credentials = target.services._transport._credentials
    assert credentials.info["audience"].endswith("/providers/gh")
    assert credentials.service_account_email == "deployer@p.iam.gserviceaccount.com"


def test_a_mark_written_between_a_read_and_a_save_survives_the_save(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    """An operator's `abort` lands between the engine's read and its save: it is kept.

    Before, the save wrote the engine's state over it and the canary went on.
    """
    engine = make(fake, vt)
    operator = make(fake, vt)
    engine.save_state({"version": "v1.6.0", "step_index": 1})
    assert engine.status().state == {"version": "v1.6.0", "step_index": 1}
    seen = operator.status().state or {}
    operator.save_state({**seen, "abort": {"id": "op-1", "reason": "errors", "by": "ann"}})
    engine.save_state({"version": "v1.6.0", "step_index": 2})
    state = engine.status().state or {}
    assert state["step_index"] == 2 and state["abort"]["id"] == "op-1"
    # Read now, the engine may drop it, and it stays dropped.
    engine.save_state({"version": "v1.7.0", "step_index": 1})
    assert "abort" not in (operator.status().state or {})
