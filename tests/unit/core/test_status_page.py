"""The status page's texts (source §10.3), markers and the calendar's maintenance window."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from release_actions.core.policy import (
    Policy,
    StatusPageSettings,
    StatusTemplate,
    default_policy,
    default_policy_data,
)
from release_actions.core.status_page import (
    check_templates,
    incident_marker,
    maintenance_components,
    maintenance_marker,
    next_window,
    render,
    service_components,
)
from release_actions.errors import PolicyError, ReleaseActionsError

JST = ZoneInfo("Asia/Tokyo")


def settings_with(**templates: dict[str, str]) -> StatusPageSettings:
    """Settings whose templates the policy's validator has not seen: what `render` guards
    against on its own (a policy object built by code, not read from a file)."""
    base = default_policy().notifications.status_page
    given = {k: StatusTemplate.model_construct(**v) for k, v in templates.items()}
    return base.model_copy(update={"templates": {**base.templates, **given}})


@pytest.mark.parametrize(
    ("template", "words"),
    [
        (
            {"title": "Slow", "body": "{{ afected_components }}"},
            "'afected_components' is undefined",
        ),
        ({"title": "Done {{ ", "body": "x"}, "`degraded_performance.title` is not a valid"),
        ({"title": "x", "body": "{{ root_cause.__class__ }}"}, "sandbox refuses"),
    ],
)
def test_a_bad_template_fails_when_the_policy_is_read(template: dict[str, str], words: str) -> None:
    data = default_policy_data()
    data["notifications"]["status_page"]["templates"]["degraded_performance"] = template
    with pytest.raises(ValidationError) as caught:
        Policy.model_validate(data)
    assert words in str(caught.value)
    assert caught.value.errors()[0]["loc"] == ("notifications", "status_page", "templates")


def test_the_sources_degraded_performance_text() -> None:
    settings = default_policy().notifications.status_page

    text = render(
        settings,
        "degraded_performance",
        affected_components="TripTrip API",
        impact_description="Some requests fail.",
    )

    assert text.title == "Performance Degradation"
    assert text.body == (
        "We are currently experiencing degraded performance.\n\n"
        "**Affected Services**: TripTrip API\n"
        "**Impact**: Some requests fail.\n\n"
        "Our team is investigating the issue."
    )


def test_the_sources_maintenance_and_resolved_texts() -> None:
    settings = default_policy().notifications.status_page

    maintenance = render(
        settings,
        "scheduled_maintenance",
        start_time="2026-01-25 02:00",
        end_time="2026-01-25 06:00",
        affected_components="TripTrip API, TripTrip Web",
        impact_description="Short interruptions.",
    )
    resolved = render(
        settings, "incident_resolved", duration="1 minute 30 seconds", root_cause="error rate 5.2%"
    )

    assert maintenance.title == "[Scheduled] System Maintenance"
    assert "**Scheduled Time**: 2026-01-25 02:00 - 2026-01-25 06:00 JST" in maintenance.body
    assert "**Affected Services**: TripTrip API, TripTrip Web" in maintenance.body
    assert "**Duration**: 1 minute 30 seconds\n**Root Cause**: error rate 5.2%" in resolved.body


def test_a_variable_the_template_leaves_out_is_empty_not_an_error() -> None:
    settings = default_policy().notifications.status_page
    # degraded_performance uses neither duration nor root_cause: passing none of them is fine.
    assert render(settings, "incident_resolved").body.startswith("The incident has been resolved.")


def test_an_unknown_variable_is_an_error_naming_the_template() -> None:
    settings = settings_with(
        degraded_performance={"title": "Slow", "body": "Affected: {{ afected_components }}"}
    )

    with pytest.raises(PolicyError) as caught:
        render(settings, "degraded_performance", affected_components="TripTrip API")

    message = caught.value.message
    assert "`notifications.status_page.templates.degraded_performance.body`" in message
    assert "'afected_components' is undefined" in message
    assert "`affected_components`" in message, "the variables are listed"
    with pytest.raises(PolicyError):
        check_templates(settings)


def test_a_template_that_does_not_parse_names_its_line() -> None:
    settings = settings_with(incident_resolved={"title": "Done {{ ", "body": "x"})

    with pytest.raises(PolicyError, match=r"templates\.incident_resolved\.title` is not a valid"):
        render(settings, "incident_resolved")


def test_templates_run_sandboxed() -> None:
    settings = settings_with(
        incident_resolved={"title": "x", "body": "{{ root_cause.__class__.__mro__ }}"}
    )

    with pytest.raises(PolicyError, match="sandbox"):
        render(settings, "incident_resolved", root_cause="r")


def test_the_default_templates_render() -> None:
    check_templates(default_policy().notifications.status_page)


def test_markers_name_the_service_and_the_failed_version_not_the_record() -> None:
    assert (
        incident_marker("triptrip-api", "v1.6.0") == "release-actions:rollback:triptrip-api@v1.6.0"
    )
    start = datetime(2026, 1, 25, 2, 0, tzinfo=JST)
    assert maintenance_marker(start) == "release-actions:maintenance:2026-01-25T02:00+09:00"


def test_components_of_services() -> None:
    settings = default_policy().notifications.status_page
    assert service_components(settings, "triptrip-api") == ["TripTrip API"]
    assert service_components(settings, "payments") is None
    assert maintenance_components(settings) == ["TripTrip API", "TripTrip Web"]


@pytest.mark.parametrize(
    ("now", "start"),
    [
        # Wednesday 2026-01-21 10:00 JST: the coming Sunday.
        (datetime(2026, 1, 21, 1, 0, tzinfo=UTC), datetime(2026, 1, 25, 2, 0, tzinfo=JST)),
        # Sunday 01:59 JST: the window of that very night.
        (datetime(2026, 1, 25, 1, 59, tzinfo=JST), datetime(2026, 1, 25, 2, 0, tzinfo=JST)),
        # Sunday 03:00 JST, inside the window: the next one, a week later.
        (datetime(2026, 1, 25, 3, 0, tzinfo=JST), datetime(2026, 2, 1, 2, 0, tzinfo=JST)),
        # Saturday 17:30 UTC is Sunday 02:30 JST: the next one too.
        (datetime(2026, 1, 24, 17, 30, tzinfo=UTC), datetime(2026, 2, 1, 2, 0, tzinfo=JST)),
    ],
)
def test_the_next_maintenance_window_is_sunday_night_in_tokyo(
    now: datetime, start: datetime
) -> None:
    window = next_window(default_policy(), now)

    assert window.start == start and window.start.tzinfo == JST
    assert window.end - window.start == (datetime(2026, 1, 1, 6) - datetime(2026, 1, 1, 2))
    assert window.label() == (start.strftime("%Y-%m-%d 02:00"), start.strftime("%Y-%m-%d 06:00"))


def test_no_maintenance_window_says_what_to_pass() -> None:
    data = default_policy_data()
    data["calendar"]["maintenance_windows"] = []
    policy = Policy.model_validate(data)

    with pytest.raises(ReleaseActionsError, match="maintenance_windows") as caught:
        next_window(policy, datetime(2026, 1, 21, tzinfo=UTC))
    assert "`--start` and `--end`" in str(caught.value.hint)
