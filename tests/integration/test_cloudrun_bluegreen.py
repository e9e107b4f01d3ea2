"""Blue-green on CloudRunTarget: the real google-cloud-run client (REST) against the Cloud Run fake."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from release_actions.errors import TargetError
from release_actions.targets.cloudrun import ROLLOUT_ANNOTATION, CloudRunTarget
from tests.fakes.cloudrun import CloudRunFake
from tests.integration.test_cloudrun_target import (
    OLD,
    REGISTRY,
    SERVICE,
    VirtualTime,
    kill_after_its_patch,
    make,
    patches,
)

pytestmark = pytest.mark.integration

NEW = "triptrip-api-v1-6-0"
TAG_URL = f"https://canary---{SERVICE}-abc123-an.a.run.app"


@pytest.fixture
def fake() -> Iterator[CloudRunFake]:
    with CloudRunFake(op_polls=2) as server:
        server.add_service(SERVICE, image=f"{REGISTRY}:v1.5.2", revision=OLD, traffic="pinned")
        yield server


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


def blue_green(fake: CloudRunFake, vt: VirtualTime) -> CloudRunTarget:
    target = make(fake, vt)
    target.use_strategy("blue-green")
    return target


def traffic(fake: CloudRunFake) -> list[tuple[str, int, str]]:
    """The spec's traffic as (revision, percent, tag): what one update wrote."""
    return sorted(
        (t.get("revision", ""), int(t.get("percent", 0)), t.get("tag", ""))
        for t in fake.service(SERVICE)["traffic"]
    )


def test_blue_green_is_offered_and_shadow_is_refused_for_want_of_mirroring(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = make(fake, vt)
    assert "blue-green" in target.strategies and "shadow" not in target.strategies
    target.use_strategy("blue-green")
    assert target.strategy == "blue-green"
    why = target.refusal("shadow")
    assert why is not None and "mirroring" in why
    with pytest.raises(TargetError, match="mirroring") as info:
        target.use_strategy("shadow")
    assert "exactly one revision" in info.value.message
    assert target.strategy == "blue-green", "a refused strategy changes nothing"
    assert patches(fake) == 0


def test_begin_leaves_the_new_revision_at_zero_behind_its_tag_url(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = blue_green(fake, vt)
    target.begin("v1.6.0")

    assert fake.serving(SERVICE) == {OLD: 100}
    assert traffic(fake) == [(OLD, 100, ""), (NEW, 0, "canary")]
    preview = target.preview()
    assert preview is not None
    assert preview.url == TAG_URL
    # The URL is Cloud Run's, from trafficStatuses, on the tagged revision.
    (tagged,) = [s for s in fake.service(SERVICE)["trafficStatuses"] if s.get("tag")]
    assert (tagged["revision"], tagged["uri"]) == (NEW, TAG_URL)
    status = target.status()
    assert (status.stable_version, status.canary_version, status.canary_weight) == (
        "v1.5.2", "v1.6.0", 0,
    )  # fmt: skip


def test_preview_without_a_rollout_says_to_begin_first(fake: CloudRunFake, vt: VirtualTime) -> None:
    with pytest.raises(TargetError, match="nothing to preview") as info:
        blue_green(fake, vt).preview()
    assert "begin(version)" in (info.value.hint or "")


def test_switch_moves_all_traffic_in_one_update_and_a_second_switch_sends_nothing(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = blue_green(fake, vt)
    target.begin("v1.6.0")
    before = patches(fake)

    target.switch()

    assert patches(fake) == before + 1, "one services update, no intermediate split"
    assert fake.serving(SERVICE) == {NEW: 100}
    assert traffic(fake) == [(NEW, 100, "canary")], "the tag stays for the preview URL"
    assert target.status().canary_weight == 100
    preview = target.preview()
    assert preview is not None and preview.url == TAG_URL

    blue_green(fake, vt).switch()  # a second run, a new object
    assert patches(fake) == before + 1
    assert fake.serving(SERVICE) == {NEW: 100}


def test_rollback_after_the_switch_is_one_update_back_to_the_recorded_revision(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = blue_green(fake, vt)
    target.begin("v1.6.0")
    target.switch()
    before = patches(fake)

    result = target.rollback()

    assert patches(fake) == before + 1
    assert fake.serving(SERVICE) == {OLD: 100}
    assert traffic(fake) == [(OLD, 100, "")], "the new revision's tag goes with its traffic"
    assert (result.changed, result.from_version, result.to_version) == (True, "v1.6.0", "v1.5.2")
    assert target.status().canary_version is None

    again = blue_green(fake, vt).rollback()
    assert (again.changed, again.to_version) == (False, "v1.5.2")
    assert patches(fake) == before + 1


def test_a_failed_preview_rolls_back_before_anything_switched(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = blue_green(fake, vt)
    target.begin("v1.6.0")

    result = target.rollback()

    assert fake.serving(SERVICE) == {OLD: 100}
    assert traffic(fake) == [(OLD, 100, "")]
    assert result.changed and "removed the `canary` tag" in result.detail


def test_promote_after_the_hold_keeps_the_new_revision_and_drops_the_tag(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    target = blue_green(fake, vt)
    target.begin("v1.6.0")
    target.switch()

    target.promote()
    sent = patches(fake)
    blue_green(fake, vt).promote()

    assert patches(fake) == sent, "a second promote sends nothing"
    assert fake.serving(SERVICE) == {NEW: 100}
    assert traffic(fake) == [(NEW, 100, "")]
    status = target.status()
    assert (status.stable_version, status.canary_version) == ("v1.6.0", None)


def test_a_new_object_after_a_finished_switch_rolls_back_to_the_old_revision(
    fake: CloudRunFake, vt: VirtualTime
) -> None:
    # The engine died after the switch, before it saved its state: the next run knows only
    # what the service's annotations say.
    target = blue_green(fake, vt)
    target.begin("v1.6.0")
    target.switch()
    assert target.status().state is None

    result = make(fake, vt).rollback()

    assert fake.serving(SERVICE) == {OLD: 100}
    assert result.changed and result.to_version == "v1.5.2"


_SWITCH_SCRIPT = textwrap.dedent(
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
    target.use_strategy("blue-green")
    print("switching", flush=True)
    target.switch()
    print("done", flush=True)
    """
)


def test_a_switch_killed_midway_is_rolled_back_by_the_next_run(
    fake: CloudRunFake, vt: VirtualTime, tmp_path: Path
) -> None:
    make(fake, vt).begin("v1.6.0")
    # Killed after the update, before anything recorded it.
    kill_after_its_patch(fake, tmp_path / "switch.py", _SWITCH_SCRIPT)
    assert traffic(fake) == [(NEW, 100, "canary")], "the switch's update was accepted"
    fake.release()

    result = make(fake, vt).rollback()  # the next run, from the recorded rollout

    assert fake.serving(SERVICE) == {OLD: 100}
    assert result.to_version == "v1.5.2"
    assert '"phase":"rolled_back"' in fake.service(SERVICE)["annotations"][ROLLOUT_ANNOTATION]
    assert make(fake, vt).rollback().changed is False
