"""The DeployTarget interface: the name of the deployed thing, by default and as adapters set it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from release_actions.metrics.base import Track
from release_actions.targets.base import DeployTarget, HealthSample, RollbackResult, TargetStatus
from release_actions.targets.factory import target_label


class Bare(DeployTarget):
    name = "bare"

    def status(self) -> TargetStatus:
        return TargetStatus("v1", None, 0, "v1")

    def begin(self, version: str) -> None:
        pass

    def set_weight(self, percent: int) -> None:
        pass

    def promote(self) -> None:
        pass

    def rollback(self) -> RollbackResult:
        return RollbackResult(False, None, "v1")

    def save_state(self, state: Mapping[str, Any] | None) -> None:
        pass

    def health(self, track: Track | None = None) -> HealthSample:
        return HealthSample(ready=True, restarts=0, health_check_failures=0)


def test_deployment_is_the_target_name_unless_the_adapter_names_it() -> None:
    target = Bare()
    assert target.deployment == "bare"
    target.deployment = "triptrip-api"
    assert target.deployment == "triptrip-api"


def test_the_label_is_the_service_for_a_target_that_has_one() -> None:
    class Service(Bare):
        name = "cloudrun"

        def __init__(self) -> None:
            self.service = "triptrip-api"

    assert (Service().deployment, target_label(Service())) == ("cloudrun", "triptrip-api")
    named = Bare()
    named.deployment = "web"
    assert (target_label(Bare()), target_label(named)) == ("bare", "web")


def test_a_target_missing_a_method_cannot_be_built() -> None:
    class NoRollback(DeployTarget):
        name = "no-rollback"

    with pytest.raises(TypeError, match="rollback"):
        NoRollback()  # type: ignore[abstract]
