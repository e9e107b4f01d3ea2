"""The LaunchDarkly flag target's requests, on an in-memory stand-in of the two calls it makes.

Not the HTTP fake: tests/fakes/launchdarkly.py does not apply
`updateFallthroughVariationOrRollout` yet. These check the instructions and the state's
round trip; the fake should replace the stand-in once it does.
"""

from __future__ import annotations

import copy
from typing import Any

from release_actions.targets.flag import STATE_PROPERTY, FlagTarget

ON, OFF = "var-on", "var-off"


class StubApi:
    def __init__(self, *, on: bool = True) -> None:
        self.flag: dict[str, Any] = {
            "key": "new-booking-flow",
            "kind": "boolean",
            "variations": [{"_id": ON, "value": True}, {"_id": OFF, "value": False}],
            "customProperties": {},
            "environments": {"production": {"on": on, "fallthrough": {"variation": 1}}},
        }
        self.patches: list[list[dict[str, Any]]] = []

    def get_flag(self, flag_key: str) -> dict[str, Any]:
        return copy.deepcopy(self.flag)

    def semantic_patch(
        self, flag_key: str, environment: str, instructions: list[dict[str, Any]], **_: Any
    ) -> dict[str, Any]:
        self.patches.append(instructions)
        env = self.flag["environments"][environment]
        index = {ON: 0, OFF: 1}
        for i in instructions:
            if i["kind"] in ("turnFlagOn", "turnFlagOff"):
                env["on"] = i["kind"] == "turnFlagOn"
            elif "variationId" in i:
                env["fallthrough"] = {"variation": index[i["variationId"]]}
            else:
                weights = [
                    {"variation": index[k], "weight": w} for k, w in i["rolloutWeights"].items()
                ]
                env["fallthrough"] = {"rollout": {"variations": weights}}
        return self.get_flag(flag_key)

    def json_patch(self, flag_key: str, patch: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        for op in patch:
            key = op["path"].rsplit("/", 1)[-1]
            self.flag["customProperties"][key] = op["value"]
        return self.get_flag(flag_key)


def test_weights_are_thousandths_and_rollback_goes_to_the_last_safe_percentage() -> None:
    api = StubApi()
    target = FlagTarget(api, "new-booking-flow")
    target.begin("on")
    assert target.status().known_good == "new-booking-flow off"
    target.set_weight(25)
    assert api.patches[-1] == [
        {"kind": "updateFallthroughVariationOrRollout", "rolloutWeights": {ON: 25_000, OFF: 75_000}}
    ]
    target.set_weight(50)
    target.save_state(
        {
            "version": "on",
            "steps": [
                {"weight": 25, "result": "passed", "op": "weight"},
                {"weight": 50, "result": "failed", "op": "weight"},
            ],
        }
    )
    done = target.rollback()
    assert done.changed and done.to_version == "new-booking-flow on for 25%"
    assert api.patches[-1][0]["rolloutWeights"] == {ON: 25_000, OFF: 75_000}
    # A second rollback (a resumed run, a fresh process) changes nothing.
    again = FlagTarget(api, "new-booking-flow").rollback()
    assert not again.changed
    assert len(api.patches) == 3
    assert STATE_PROPERTY in api.flag["customProperties"]


def test_no_passed_step_restores_the_known_good_fallthrough_and_off_turns_it_off() -> None:
    api = StubApi(on=False)
    target = FlagTarget(api, "new-booking-flow")
    target.begin("on")
    target.set_weight(25)
    assert {"kind": "turnFlagOn"} in api.patches[-1]
    target.save_state({"steps": [{"weight": 25, "result": "failed"}]})
    target.rollback()
    assert api.patches[-1] == [
        {"kind": "updateFallthroughVariationOrRollout", "variationId": OFF},
        {"kind": "turnFlagOff"},
    ]

    api = StubApi()
    off = FlagTarget(api, "new-booking-flow", on_regression="off")
    off.begin("on")
    off.set_weight(50)
    assert off.rollback().to_version == "new-booking-flow off"
    assert api.patches[-1] == [{"kind": "turnFlagOff"}]


def test_promote_serves_on_to_everyone_and_a_save_keeps_an_unread_abort_mark() -> None:
    api = StubApi()
    target = FlagTarget(api, "new-booking-flow")
    target.begin("on")
    target.save_state({"version": "on", "steps": []})
    # Another process (a manual rollback) marks the state meanwhile.
    other = FlagTarget(api, "new-booking-flow")
    other.save_state({**(other.status().state or {}), "abort": {"id": "m1", "by": "ops"}})
    target.save_state({"version": "on", "steps": [], "phase": "running"})
    assert (target.status().state or {}).get("abort", {}).get("id") == "m1"
    target.promote()
    assert api.patches[-1] == [{"kind": "updateFallthroughVariationOrRollout", "variationId": ON}]
    assert target.status().stable_version == "on"
