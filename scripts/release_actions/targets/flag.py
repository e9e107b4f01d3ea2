"""A LaunchDarkly flag as a deploy target: its gradual rollout is a canary of `on` against `off`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from release_actions.errors import IntegrationError, StateConflictError, TargetError
from release_actions.metrics.base import Track
from release_actions.targets.base import (
    DeployTarget,
    HealthSample,
    RollbackResult,
    TargetStatus,
    keep_unread_marks,
    mark_ids,
)
from release_actions.targets.simulated_flag import last_passed_percent

STATE_PROPERTY = "release-actions-rollout"
"""The flag's custom property that holds the rollout's state (one JSON value)."""
_PROPERTY_PATH = f"/customProperties/{STATE_PROPERTY}"
WHOLE = 100_000
"""LaunchDarkly's rollout weights are in thousandths of a percent."""


class FlagApi(Protocol):
    """What the target needs of `integrations.launchdarkly.LaunchDarklyFlags`."""

    def get_flag(self, flag_key: str) -> dict[str, Any]: ...

    def semantic_patch(
        self,
        flag_key: str,
        environment: str,
        instructions: list[dict[str, Any]],
        *,
        comment: str | None = None,
    ) -> dict[str, Any]: ...

    def json_patch(
        self, flag_key: str, patch: list[dict[str, Any]], *, comment: str | None = None
    ) -> dict[str, Any]: ...


def launchdarkly_api(
    env: Mapping[str, str], *, project: str | None = None, **kwargs: Any
) -> FlagApi:
    """The REST client, with the JSON patch the state's custom property needs.

    ``kwargs`` go to the client (``base_url``), as `LaunchDarklyFlags.from_env` takes them.
    """
    from release_actions.integrations.launchdarkly import LaunchDarklyFlags, PatchConflictError

    class _Api(LaunchDarklyFlags):
        def json_patch(
            self, flag_key: str, patch: list[dict[str, Any]], *, comment: str | None = None
        ) -> dict[str, Any]:
            from urllib.parse import quote

            url = self._url(f"/api/v2/flags/{self._project_path()}/{quote(flag_key, safe='')}")
            body: dict[str, Any] = {"patch": patch}
            if comment:
                body["comment"] = comment
            response = self._call("PATCH", url, f"flag `{flag_key}`", deadline=None, json=body)
            if response.status_code == 409:
                # A `test` operation failed: the state is no longer what this run read.
                raise PatchConflictError(
                    f"LaunchDarkly refused to save the rollout state of flag `{flag_key}` "
                    "as a conflict (HTTP 409): it changed since this run read it."
                )
            if response.status_code >= 300:
                raise self._error(response, f"flag `{flag_key}`", "save the rollout state of")
            return self.get_flag(flag_key)

    return _Api.from_env(env, project=project, **kwargs)


class FlagTarget(DeployTarget):
    """A boolean flag's production fallthrough, moved as a percentage rollout of `on`.

    ``begin`` records the fallthrough (and whether the flag is on) as known-good; each
    ``set_weight(p)`` is one semantic patch, `updateFallthroughVariationOrRollout` with
    ``rolloutWeights`` p % on and the rest off (thousandths), turning the flag on first if it
    was off; ``promote`` serves `on` to everyone; ``rollback`` goes to the last percentage
    the engine saved as passed (`last_safe`), or to the known-good fallthrough when none
    passed, or turns the flag off (`off`). The engine's state lives in the flag's custom
    property ``release-actions-rollout``, so a killed job resumes where it was and a second
    rollback changes nothing. Health is not a flag's: the §6.1 triggers read metrics only.

    ``guarded`` (the scheduled gate, where two runs may overlap): every save is a compare and
    swap, one JSON patch whose `test` operation holds the state as this run first read it
    (or as this run last wrote it). A run that read the same state as another one which has
    saved since writes nothing: LaunchDarkly answers 409 and the save raises
    ``StateConflictError``. The engine saves before each change of targeting, so the run
    that loses also moves nothing.
    """

    name = "launchdarkly"
    strategies = frozenset({"canary"})

    def __init__(
        self,
        api: FlagApi,
        flag: str,
        *,
        environment: str = "production",
        on_regression: Literal["last_safe", "off"] = "last_safe",
        guarded: bool = False,
    ) -> None:
        self.api = api
        self.flag = flag
        self.environment = environment
        self.on_regression = on_regression
        self.guarded = guarded
        self.deployment = flag
        self._seen: set[str] = set()
        self._data: dict[str, Any] = {}
        # What a guarded save expects to find: a JSON pointer and its value as last known.
        self._expect: tuple[str, Any] | None = None

    # -- reading the flag -------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        flag = self.api.get_flag(self.flag)
        self._data = _stored(flag)
        self._seen |= mark_ids(self._data.get("state"))
        if self.guarded and self._expect is None:
            props = flag.get("customProperties") or {}
            prop = props.get(STATE_PROPERTY)
            self._expect = (
                (f"{_PROPERTY_PATH}/value", (prop or {}).get("value"))
                if isinstance(prop, Mapping)
                else ("/customProperties", props)  # no state yet: nothing else added meanwhile
            )
        return flag

    def _env(self, flag: Mapping[str, Any]) -> dict[str, Any]:
        env = (flag.get("environments") or {}).get(self.environment)
        if not isinstance(env, dict):
            raise TargetError(
                f"Flag `{self.flag}` has no environment `{self.environment}`.",
                hint="`feature_flags.stages.environment` is the environment's key, such as "
                "`production`.",
            )
        return env

    def _variations(self, flag: Mapping[str, Any]) -> tuple[str, str]:
        """The `_id`s of the `on` (true) and `off` (false) variations of a boolean flag."""
        ids = {v.get("value"): v.get("_id") for v in flag.get("variations") or []}
        on, off = ids.get(True), ids.get(False)
        if flag.get("kind", "boolean") != "boolean" or not on or not off:
            raise TargetError(
                f"Flag `{self.flag}` is not a boolean flag with `true` and `false` variations.",
                hint="A guarded gradual rollout moves a boolean flag's fallthrough; roll out "
                "a multivariate flag in the LaunchDarkly UI.",
            )
        return str(on), str(off)

    def _exposure(self, flag: Mapping[str, Any]) -> int:
        """The share of the fallthrough served `on`, in percent (0 when the flag is off)."""
        env = self._env(flag)
        if not env.get("on"):
            return 0
        variations = flag.get("variations") or []
        fall = env.get("fallthrough") or {}
        if "variation" in fall and fall["variation"] is not None:
            index = int(fall["variation"])
            return 100 if 0 <= index < len(variations) and variations[index].get("value") else 0
        weights = (fall.get("rollout") or {}).get("variations") or []
        on = sum(
            int(w.get("weight") or 0)
            for w in weights
            if 0 <= int(w.get("variation", -1)) < len(variations)
            and variations[int(w["variation"])].get("value") is True
        )
        return round(on * 100 / WHOLE)

    def exposure(self) -> int:
        """The share of the fallthrough served `on` now, in percent (0 when the flag is off)."""
        return self._exposure(self._read())

    @staticmethod
    def describe(percent: int, flag: str) -> str:
        return f"{flag} off" if percent == 0 else f"{flag} on for {percent}%"

    # -- DeployTarget ------------------------------------------------------------------------

    def status(self) -> TargetStatus:
        flag = self._read()
        live = self._exposure(flag)
        data = self._data
        version = (data.get("state") or {}).get("version")
        rolling = data.get("version") is not None and not data.get("done")
        return TargetStatus(
            stable_version="on" if live == 100 and not rolling else "off",
            canary_version=str(version) if rolling and version else None,
            canary_weight=live if rolling else 0,
            known_good=data.get("known_good_label"),
            state=data.get("state"),
        )

    def begin(self, version: str) -> None:
        flag = self._read()
        if self._data.get("version") == version and not self._data.get("done"):
            return  # resuming the same rollout
        env = self._env(flag)
        self._variations(flag)
        fall = env.get("fallthrough") or {}
        live = self._exposure(flag)
        self._data = {
            "version": version,
            "known_good": {"on": bool(env.get("on")), "fallthrough": fall},
            "known_good_label": self.describe(live, self.flag),
            "state": self._data.get("state"),
        }
        self._write(f"release-actions: gradual rollout of `{self.flag}` begins")

    def set_weight(self, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise TargetError(f"A flag's rollout percentage must be 0 to 100, got {percent}.")
        self._serve(percent, f"release-actions: `{self.flag}` on for {percent}%")

    def promote(self) -> None:
        self._serve(100, f"release-actions: `{self.flag}` on for everyone")
        self._read()
        self._data["done"] = True
        self._write(None)

    def rollback(self) -> RollbackResult:
        flag = self._read()
        live = self._exposure(flag)
        done = self._data.get("rolled_back_to")
        name = self.flag
        if done is not None and live == int(done):
            return RollbackResult(
                False,
                self.describe(live, name),
                self.describe(live, name),
                f"already set back to {self.describe(live, name)}",
            )
        instructions: list[dict[str, Any]]
        if self.on_regression == "off":
            safe, instructions = 0, [{"kind": "turnFlagOff"}]
            why = "the flag turned off (on_regression: off)"
        else:
            safe = last_passed_percent(self._data.get("state"), below=max(live, 1))
            if safe:
                instructions = self._rollout(flag, safe)
                why = "the last safe percentage"
            else:
                instructions = self._known_good(flag)
                why = "no step passed: the fallthrough recorded before the rollout"
        self.api.semantic_patch(
            self.flag,
            self.environment,
            instructions,
            comment=f"release-actions: rollback of `{name}` from {live}% to {safe}% ({why})",
        )
        self._read()
        self._data["rolled_back_to"] = safe
        self._data["done"] = True
        self._write(None)
        return RollbackResult(
            True,
            self.describe(live, name),
            self.describe(safe, name) if safe else str(self._data.get("known_good_label")),
            f"{name} set back from {live}% to {safe}% on in `{self.environment}` ({why})",
        )

    def save_state(self, state: Mapping[str, Any] | None) -> None:
        before = set(self._seen)  # the marks read before this save, not by its own read
        self._read()
        stored = self._data.get("state")
        self._data["state"] = (
            None
            if state is None
            else keep_unread_marks(stored, json.loads(json.dumps(dict(state))), before)
        )
        self._write(None)

    def health(self, track: Track | None = None) -> HealthSample:
        return HealthSample(ready=True, restarts=0, health_check_failures=0)

    # -- writing ---------------------------------------------------------------------------------

    def _rollout(self, flag: Mapping[str, Any], percent: int) -> list[dict[str, Any]]:
        on, off = self._variations(flag)
        if percent >= 100:
            return [{"kind": "updateFallthroughVariationOrRollout", "variationId": on}]
        weight = percent * WHOLE // 100
        return [
            {
                "kind": "updateFallthroughVariationOrRollout",
                "rolloutWeights": {on: weight, off: WHOLE - weight},
            }
        ]

    def _known_good(self, flag: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The instructions that put back the fallthrough recorded by ``begin``."""
        good = self._data.get("known_good") or {}
        fall = good.get("fallthrough") or {}
        variations = flag.get("variations") or []
        out: list[dict[str, Any]] = []
        if "variation" in fall and fall["variation"] is not None:
            out.append(
                {
                    "kind": "updateFallthroughVariationOrRollout",
                    "variationId": variations[int(fall["variation"])]["_id"],
                }
            )
        elif fall.get("rollout"):
            weights = {
                variations[int(w["variation"])]["_id"]: int(w.get("weight") or 0)
                for w in fall["rollout"].get("variations") or []
            }
            out.append({"kind": "updateFallthroughVariationOrRollout", "rolloutWeights": weights})
        else:
            out += self._rollout(flag, 0)
        out.append({"kind": "turnFlagOn" if good.get("on") else "turnFlagOff"})
        return out

    def _serve(self, percent: int, comment: str) -> None:
        flag = self._read()
        instructions = self._rollout(flag, percent)
        if not self._env(flag).get("on"):
            instructions.append({"kind": "turnFlagOn"})
        self.api.semantic_patch(self.flag, self.environment, instructions, comment=comment)

    def _write(self, comment: str | None) -> None:
        from release_actions.integrations.launchdarkly import PatchConflictError

        value = json.dumps(self._data, separators=(",", ":"), sort_keys=True)
        patch = [
            {
                "op": "add",
                "path": _PROPERTY_PATH,
                "value": {"name": "release-actions rollout state", "value": [value]},
            }
        ]
        if self.guarded:
            if self._expect is None:
                self._read()
            assert self._expect is not None
            path, expected = self._expect
            patch.insert(0, {"op": "test", "path": path, "value": expected})
        try:
            self.api.json_patch(self.flag, patch, comment=comment)
        except PatchConflictError as exc:
            raise StateConflictError(
                f"Another run saved the rollout state of flag `{self.flag}` after this run read "
                "it, so this run wrote nothing and changed no targeting.",
                hint="The other run's look stands, and the next run goes on from it. Runs "
                "overlap only outside the workflow's concurrency group (a gate run by hand "
                "while the schedule's runs): rerun when it is done.",
            ) from exc
        except IntegrationError as exc:
            raise TargetError(
                f"Cannot save the rollout state on flag `{self.flag}`: {exc}",
                hint="The token needs the Writer role (or `updateCustomProperties`) on the flag.",
            ) from exc
        self._seen |= mark_ids(self._data.get("state"))
        if self.guarded:
            self._expect = (f"{_PROPERTY_PATH}/value", [value])


def rollout_in_progress(flag: Mapping[str, Any]) -> bool:
    """Whether a flag's custom property holds a rollout that has not ended (`flags rollout
    --gate --all` looks at each of them); a property that is not release-actions' is none."""
    try:
        data = _stored(flag)
    except TargetError:
        return False
    state = data.get("state")
    phase = state.get("phase") if isinstance(state, Mapping) else None
    return bool(data.get("version")) and not data.get("done") and phase != "done"


def _stored(flag: Mapping[str, Any]) -> dict[str, Any]:
    """The rollout's record kept in the flag's custom property; empty when there is none."""
    prop = (flag.get("customProperties") or {}).get(STATE_PROPERTY) or {}
    values = prop.get("value") or []
    if not values:
        return {}
    try:
        data = json.loads(values[0])
    except (TypeError, ValueError) as exc:
        raise TargetError(
            f"The flag's custom property `{STATE_PROPERTY}` is not release-actions' JSON.",
            hint="Remove the custom property in the LaunchDarkly UI to start afresh.",
        ) from exc
    return data if isinstance(data, dict) else {}
