"""An HTTP fake of LaunchDarkly's REST API v2 feature-flag endpoints: kill switch and lifecycle.

Standard library only. It serves, as launchdarkly.com/docs/api describes them:

- ``GET /api/v2/flags/{projectKey}`` (``limit`` 1-100, default 20; ``offset``; ``summary``:
  without ``summary=0`` the environments leave out ``rules``, ``targets``,
  ``contextTargets`` and ``prerequisites``; ``filter=state:archived`` lists archived flags,
  which are left out otherwise; ``env``), as ``{"items", "totalCount", "_links"}`` with
  ``_links.next`` while more remain.
- ``GET /api/v2/flags/{projectKey}/{featureFlagKey}`` (``?env=`` keeps only those
  environments), the detailed flag representation: ``key``, ``name``, ``kind``,
  ``_version``, ``creationDate`` (ms), ``tags``, ``temporary``, ``archived``,
  ``customProperties``, ``variations`` (each with its ``_id``), ``environments.{env}`` with
  ``on``, ``fallthrough`` (``variation`` or ``rollout.variations[].weight`` in thousandths
  of a percent), ``offVariation``, ``rules``, ``archived``, ``version``, ``lastModified``,
  ``_site`` and ``_environmentName``, and ``_links``.
- ``PATCH`` of the same path with a JSON patch, bare (``[...]``) or with a comment
  (``{"comment", "patch": [...]}``); a ``test`` op that fails answers 409. With
  ``Content-Type: application/json; domain-model=launchdarkly.semanticpatch`` it takes a
  semantic patch ``{"environmentKey", "comment", "instructions"}`` with the instructions
  ``turnFlagOn``, ``turnFlagOff``, ``addRule``, ``removeRule``,
  ``updateFallthroughVariationOrRollout``, ``updateRuleVariationOrRollout`` and
  ``updateOffVariation``; any other ``kind`` (or a bad ``variationId``, ``ruleId`` or
  weights that do not add up to 100000) answers 400, applying nothing.
- ``GET /api/v2/flag-statuses/{projectKey}/{environmentKey}[/{featureFlagKey}]``:
  ``name`` (``new``, ``active``, ``inactive``, ``launched``) and ``lastRequested``.
- ``GET /api/v2/auditlog?spec=proj/P:env/E:flag/F&limit=&before=``, newest first, with
  ``_links.next``; ``GET /api/v2/auditlog/{id}`` adds ``previousVersion`` and
  ``currentVersion``.

Every request needs the access token, as is, in ``Authorization``: otherwise 401. Errors
come as ``{"code", "message", "id"}``; a 429 carries ``X-Ratelimit-Reset`` in epoch
milliseconds and ``X-Ratelimit-Route-Remaining: 0``. Applied patches are kept with their
comments in ``fake.audit``, as LaunchDarkly keeps them in its audit log.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from tests.fakes._http import FakeHandler, FakeHTTPServer, Fault, take_fault

API_TOKEN = "api-0123abcd-fake-token"
READ_ONLY_TOKEN = "api-4567efgh-reader-token"
PROJECT = "triptrip"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "id": str(uuid.uuid4())}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ApiError(400, "invalid_request", f"Invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


class _Handler(FakeHandler):
    owner: LaunchDarklyFake

    def _serve(self) -> None:
        status, body, extra = self.owner.handle(
            self.command, self.path, self.header_map(), self.read_body()
        )
        self.send_json(status, body, extra)

    do_GET = do_PATCH = do_POST = _serve


SEMANTIC_KINDS = frozenset(
    {
        "turnFlagOn",
        "turnFlagOff",
        "addRule",
        "removeRule",
        "updateFallthroughVariationOrRollout",
        "updateRuleVariationOrRollout",
        "updateOffVariation",
    }
)
# Left out of each environment of a listing unless it asks for `summary=0`.
_SUMMARY_HIDDEN = ("rules", "targets", "contextTargets", "prerequisites")


def _now_ms() -> int:
    return int(time.time() * 1000)


class LaunchDarklyFake(FakeHTTPServer):
    """The fake server; ``with LaunchDarklyFake() as fake`` starts and stops it."""

    handler = _Handler
    thread_name = "ld-fake"

    def __init__(self, *, token: str = API_TOKEN, read_only_token: str = READ_ONLY_TOKEN):
        super().__init__()
        self.token = token
        self.read_only_token = read_only_token
        self.flags: dict[tuple[str, str], dict[str, Any]] = {}
        self.statuses: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.audit: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.unsupported: set[str] = set()
        self._toggle_before_patch: list[tuple[str, str, str, bool]] = []
        self._conflicts: list[Callable[[dict[str, Any]], None] | None] = []
        self._last_date = 0
        self._lock = threading.Lock()

    # -- seeding and faults -------------------------------------------------------------

    def add_flag(
        self,
        key: str,
        *,
        project: str = PROJECT,
        on: dict[str, bool] | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        temporary: bool = True,
        archived: bool = False,
        creation_date: int | None = None,
        fallthrough: dict[str, Any] | None = None,
        custom_properties: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A boolean flag; ``on`` maps environment keys to their state (both on by default).

        Variation 0 is ``true``, 1 ``false``; as in LaunchDarkly, a new flag's fallthrough
        serves ``true`` (``fallthrough`` replaces it in every environment) and its off
        variation is ``false``.
        """
        now = creation_date if creation_date is not None else _now_ms()
        envs = on if on is not None else {"production": True, "staging": True}
        flag = {
            "key": key,
            "name": name or key.replace("-", " ").capitalize(),
            "description": "",
            "kind": "boolean",
            "creationDate": now,
            "_version": 1,
            "temporary": temporary,
            "tags": list(tags or []),
            "archived": archived,
            "deprecated": False,
            "customProperties": copy.deepcopy(custom_properties or {}),
            "variations": [
                {"_id": str(uuid.uuid4()), "value": True},
                {"_id": str(uuid.uuid4()), "value": False},
            ],
            "defaults": {"onVariation": 0, "offVariation": 1},
            "environments": {
                env: {
                    "on": state,
                    "archived": archived,
                    "salt": uuid.uuid4().hex,
                    "sel": uuid.uuid4().hex,
                    "lastModified": now,
                    "version": 1,
                    "fallthrough": copy.deepcopy(fallthrough or {"variation": 0}),
                    "offVariation": 1,
                    "rules": [],
                    "targets": [],
                    "contextTargets": [],
                    "prerequisites": [],
                    "trackEvents": False,
                    "trackEventsFallthrough": False,
                    "_environmentName": env.capitalize(),
                    "_site": {"href": f"/{project}/{env}/features/{key}", "type": "text/html"},
                    "_summary": {"variations": {}, "prerequisites": 0},
                }
                for env, state in envs.items()
            },
            "_links": {
                "parent": {"href": f"/api/v2/flags/{project}", "type": "application/json"},
                "self": {"href": f"/api/v2/flags/{project}/{key}", "type": "application/json"},
            },
            "_maintainer": {"_id": "5f0c0000000000000000000a", "email": "release@triptrip.example"},
        }
        with self._lock:
            self.flags[(project, key)] = flag
        return flag

    def is_on(self, key: str, environment: str, project: str = PROJECT) -> bool:
        return bool(self.flags[(project, key)]["environments"][environment]["on"])

    def env(self, key: str, environment: str, project: str = PROJECT) -> dict[str, Any]:
        """The flag's targeting in one environment (a copy)."""
        with self._lock:
            return copy.deepcopy(self.flags[(project, key)]["environments"][environment])

    def set_status(
        self,
        key: str,
        environment: str,
        name: str,
        *,
        last_requested: str | None = None,
        project: str = PROJECT,
    ) -> None:
        with self._lock:
            self.statuses[(project, environment, key)] = {
                "name": name,
                "lastRequested": last_requested,
            }

    def add_audit_entry(
        self,
        key: str,
        environment: str,
        date: int,
        *,
        comment: str = "",
        project: str = PROJECT,
    ) -> None:
        """An entry from the past whose ``currentVersion`` is the flag as it is now."""
        with self._lock:
            flag = self.flags[(project, key)]
            self.audit.append(self._entry(project, key, [environment], flag, flag, comment, date))
            self.audit.sort(key=lambda e: e["date"])

    def fail_next(self, method: str, status: int, *, times: int = 1) -> None:
        code = {500: "internal_server_error", 502: "bad_gateway", 503: "service_unavailable"}
        body = {"code": code.get(status, "error"), "message": f"HTTP {status}"}
        with self._lock:
            self.faults.append(Fault(status, body, times=times, method=method))

    def rate_limit_next(
        self, method: str, *, reset_in: float = 1.0, retry_after: int | None = None, times: int = 1
    ) -> None:
        """429s with the route-limit headers; ``reset_in`` seconds to the window's reset."""
        reset = int((time.time() + reset_in) * 1000)
        headers: list[tuple[str, str]] = [
            ("X-Ratelimit-Route-Remaining", "0"),
            ("X-Ratelimit-Reset", str(reset)),
        ]
        if retry_after is not None:
            headers.append(("Retry-After", str(retry_after)))
        body = {
            "code": "rate_limited",
            "message": "You've exceeded the API rate limit. Try again later.",
        }
        with self._lock:
            self.faults.append(Fault(429, body, tuple(headers), times, method=method))

    def toggle_before_next_patch(
        self, key: str, environment: str, on: bool, project: str = PROJECT
    ) -> None:
        """Someone flips the flag in the UI between the client's read and its write."""
        with self._lock:
            self._toggle_before_patch.append((project, key, environment, on))

    def conflict_next_patch(
        self, change: Callable[[dict[str, Any]], None] | None = None, *, times: int = 1
    ) -> None:
        """The next semantic patches answer 409; ``change`` first edits the flag in place
        (someone else's change, which won the race)."""
        with self._lock:
            self._conflicts.extend([change] * times)

    # -- the API ----------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        split = urlsplit(raw_path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(Recorded(method, split.path, params, headers, body))
            fault = take_fault(self.faults, method, split.path)
            if fault is not None:
                return fault.status, {**fault.body, "id": str(uuid.uuid4())}, list(fault.headers)
            try:
                return 200, self._dispatch(method, split.path, params, headers, body), []
            except ApiError as exc:
                return exc.status, exc.body(), []

    def _dispatch(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: Any,
    ) -> dict[str, Any]:
        token = headers.get("authorization", "")
        if token not in (self.token, self.read_only_token):
            raise ApiError(401, "unauthorized", "Invalid access token")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] != ["api", "v2"] or len(parts) < 3:
            raise ApiError(404, "not_found", "Invalid resource identifier")
        if method != "GET" and parts[2] != "flags":
            raise ApiError(405, "method_not_allowed", f"Method {method} not allowed")
        if parts[2] == "flag-statuses" and len(parts) in (5, 6):
            return self._statuses(*parts[3:])
        if parts[2] == "auditlog" and len(parts) == 3:
            return self._audit_list(params)
        if parts[2] == "auditlog" and len(parts) == 4:
            return self._audit_detail(parts[3])
        if parts[2] != "flags" or len(parts) not in (4, 5):
            raise ApiError(404, "not_found", "Invalid resource identifier")
        if len(parts) == 4:
            if method != "GET":
                raise ApiError(405, "method_not_allowed", f"Method {method} not allowed")
            return self._list(parts[3], params)
        project, key = parts[3], parts[4]
        flag = self.flags.get((project, key))
        if flag is None:
            raise ApiError(404, "not_found", "Invalid resource identifier")
        if method == "GET":
            return self._render(flag, params.get("env"))
        if method != "PATCH":
            raise ApiError(405, "method_not_allowed", f"Method {method} not allowed")
        if token == self.read_only_token:
            raise ApiError(403, "forbidden", "Access to the requested resource was denied")
        for p, k, env, on in self._toggle_before_patch:
            self.flags[(p, k)]["environments"][env]["on"] = on
        self._toggle_before_patch.clear()
        content_type = headers.get("content-type", "")
        if "domain-model=launchdarkly.semanticpatch" in content_type:
            return self._semantic(flag, project, body)
        if not content_type.startswith("application/json"):
            raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
        comment = ""
        if isinstance(body, dict) and "patch" in body:
            comment = str(body.get("comment") or "")
            ops = body["patch"]
        else:
            ops = body
        if not isinstance(ops, list) or not ops:
            raise ApiError(400, "invalid_request", "A JSON patch must be a non-empty array")
        new = copy.deepcopy(flag)
        for op in ops:
            self._apply(new, op)
        self._commit(project, key, flag, new, comment, ops)
        return self._render(new, None)

    # -- reads ------------------------------------------------------------------------------

    def _list(self, project: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            limit = int(params.get("limit", "20"))
            offset = int(params.get("offset", "0"))
        except ValueError:
            raise ApiError(400, "invalid_request", "limit and offset must be integers") from None
        if not 1 <= limit <= 100 or offset < 0:
            raise ApiError(400, "invalid_request", "limit must be 1 to 100, offset at least 0")
        archived = params.get("filter", "") == "state:archived"
        flags = sorted(
            (f for (p, _), f in self.flags.items() if p == project and f["archived"] == archived),
            key=lambda f: (-int(f["creationDate"]), f["key"]),
        )
        summary = params.get("summary", "true") not in ("0", "false")
        items = []
        for flag in flags[offset : offset + limit]:
            out = self._render(flag, params.get("env"))
            if summary:
                for env in out["environments"].values():
                    for hidden in _SUMMARY_HIDDEN:
                        env.pop(hidden, None)
            items.append(out)

        def page(at: int) -> dict[str, str]:
            query = {**params, "limit": str(limit), "offset": str(at)}
            return {
                "href": f"/api/v2/flags/{quote(project)}?{urlencode(query)}",
                "type": "application/json",
            }

        links = {"self": page(offset), "first": page(0)}
        if offset + limit < len(flags):
            links["next"] = page(offset + limit)
        if offset > 0:
            links["prev"] = page(max(offset - limit, 0))
        return {"items": items, "totalCount": len(flags), "_links": links}

    def _statuses(self, project: str, env: str, key: str | None = None) -> dict[str, Any]:
        def status(flag: dict[str, Any]) -> dict[str, Any]:
            if env not in flag["environments"]:
                raise ApiError(404, "not_found", "Invalid resource identifier")
            got = self.statuses.get((project, env, flag["key"]))
            if got is None:  # never requested: new for a week, inactive after
                week = 7 * 24 * 3600 * 1000
                young = _now_ms() - int(flag["creationDate"]) < week
                got = {"name": "new" if young else "inactive", "lastRequested": None}
            fk = flag["key"]
            return {
                **got,
                "default": None,
                "_links": {
                    "parent": {"href": f"/api/v2/flags/{project}/{fk}", "type": "application/json"},
                    "self": {
                        "href": f"/api/v2/flag-statuses/{project}/{env}/{fk}",
                        "type": "application/json",
                    },
                },
            }

        if key is not None:
            flag = self.flags.get((project, key))
            if flag is None:
                raise ApiError(404, "not_found", "Invalid resource identifier")
            return status(flag)
        flags = [f for (p, _), f in self.flags.items() if p == project]
        if not flags:
            raise ApiError(404, "not_found", "Invalid resource identifier")
        return {
            "items": [status(f) for f in flags if env in f["environments"]],
            "_links": {"self": {"href": f"/api/v2/flag-statuses/{project}/{env}"}},
        }

    def _audit_list(self, params: dict[str, str]) -> dict[str, Any]:
        spec = params.get("spec", "")
        limit = max(1, min(int(params.get("limit", "10")), 20))
        before = int(params["before"]) if params.get("before") else None
        found = [
            e
            for e in reversed(self.audit)
            if (before is None or e["date"] < before)
            and (not spec or any(_spec_matches(spec, a["resource"]) for a in e["accesses"]))
        ]
        items = [
            {k: v for k, v in e.items() if k not in ("currentVersion", "previousVersion", "change")}
            for e in found[:limit]
        ]
        links: dict[str, Any] = {"self": {"href": "/api/v2/auditlog"}}
        if len(found) > limit:
            query = {**params, "limit": str(limit), "before": str(items[-1]["date"])}
            links["next"] = {"href": f"/api/v2/auditlog?{urlencode(query)}"}
        return {"items": items, "_links": links}

    def _audit_detail(self, entry_id: str) -> dict[str, Any]:
        for entry in self.audit:
            if entry["_id"] == entry_id:
                return copy.deepcopy(entry)
        raise ApiError(404, "not_found", "Invalid resource identifier")

    # -- writes -----------------------------------------------------------------------------

    def _apply(self, doc: dict[str, Any], op: Any) -> None:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, "invalid_request", f"Invalid patch operation: {op!r}")
        *parents, last = _pointer(op["path"])
        target: Any = doc
        for part in parents:
            if not isinstance(target, dict) or part not in target:
                raise ApiError(400, "invalid_request", f"Path {op['path']} does not exist")
            target = target[part]
        if not isinstance(target, dict):
            raise ApiError(400, "invalid_request", f"Path {op['path']} does not exist")
        kind = op["op"]
        if kind == "test":
            if target.get(last) != op.get("value"):
                raise ApiError(
                    409,
                    "optimistic_locking_error",
                    f"Test operation failed at {op['path']}: the value is "
                    f"{json.dumps(target.get(last))}",
                )
            return
        if last.startswith("_"):
            raise ApiError(400, "invalid_request", f"{op['path']} is not editable")
        if kind in ("replace", "remove") and last not in target:
            raise ApiError(400, "invalid_request", f"Path {op['path']} does not exist")
        if kind in ("replace", "add"):
            target[last] = op.get("value")
        elif kind == "remove":
            del target[last]
        else:
            raise ApiError(400, "invalid_request", f"Unsupported patch operation {kind!r}")

    def _semantic(self, flag: dict[str, Any], project: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("instructions"), list):
            raise ApiError(400, "invalid_request", "A semantic patch needs `instructions`")
        if not body["instructions"]:
            raise ApiError(400, "invalid_request", "`instructions` must not be empty")
        env = body.get("environmentKey")
        if env not in flag["environments"]:
            raise ApiError(400, "invalid_request", f"Unknown environment key {env!r}")
        if self._conflicts:
            change = self._conflicts.pop(0)
            if change is not None:
                new = copy.deepcopy(flag)
                change(new)
                self._commit(project, flag["key"], flag, new, "someone else", None)
            raise ApiError(
                409,
                "optimistic_locking_error",
                "The flag was modified by another change; fetch it again and retry",
            )
        new = copy.deepcopy(flag)
        target = new["environments"][env]
        for instruction in body["instructions"]:
            self._instruction(new, target, instruction)
        self._commit(project, flag["key"], flag, new, str(body.get("comment") or ""), body)
        return self._render(new, None)

    def _instruction(self, flag: dict[str, Any], env: dict[str, Any], ins: Any) -> None:
        kind = ins.get("kind") if isinstance(ins, dict) else None
        if kind not in SEMANTIC_KINDS or kind in self.unsupported:
            raise ApiError(
                400, "invalid_request", f"Unsupported semantic patch instruction kind: {kind!r}"
            )
        if kind in ("turnFlagOn", "turnFlagOff"):
            env["on"] = kind == "turnFlagOn"
        elif kind == "updateOffVariation":
            env["offVariation"] = _variation_index(flag, ins.get("variationId"))
        elif kind == "updateFallthroughVariationOrRollout":
            env["fallthrough"] = _serve(flag, ins)
        elif kind == "addRule":
            clauses = ins.get("clauses")
            if not isinstance(clauses, list) or not clauses:
                raise ApiError(400, "invalid_request", "addRule needs `clauses`")
            rule: dict[str, Any] = {
                "_id": str(uuid.uuid4()),
                "clauses": [_clause(c) for c in clauses],
                "trackEvents": False,
                "description": str(ins.get("description") or ""),
                **_serve(flag, ins),
            }
            before = ins.get("beforeRuleId")
            at = _rule_index(env, before) if before else len(env["rules"])
            env["rules"].insert(at, rule)
        elif kind == "removeRule":
            del env["rules"][_rule_index(env, ins.get("ruleId"))]
        elif kind == "updateRuleVariationOrRollout":
            rule = env["rules"][_rule_index(env, ins.get("ruleId"))]
            rule.pop("variation", None)
            rule.pop("rollout", None)
            rule.update(_serve(flag, ins))

    def _entry(
        self,
        project: str,
        key: str,
        envs: list[str],
        old: dict[str, Any],
        new: dict[str, Any],
        comment: str,
        date: int,
        change: Any = None,
    ) -> dict[str, Any]:
        action = "updateOn" if len(envs) == 1 else "updateFlag"
        return {
            "_id": uuid.uuid4().hex[:24],
            "_accountId": "5f0c00000000000000000001",
            "date": date,
            "kind": "flag",
            "name": new["name"],
            "description": comment,
            "shortDescription": comment,
            "comment": comment,
            "accesses": [
                {"action": action, "resource": f"proj/{project}:env/{env}:flag/{key}"}
                for env in envs
            ],
            "target": {"name": new["name"], "resources": [f"proj/{project}:env/*:flag/{key}"]},
            "_links": {"self": {"href": "/api/v2/auditlog", "type": "application/json"}},
            "previousVersion": copy.deepcopy(old),
            "currentVersion": copy.deepcopy(new),
            # What the fake's tests read (the kill switch's): the flag and the change sent.
            "flag": key,
            "change": change,
        }

    def _commit(
        self,
        project: str,
        key: str,
        old: dict[str, Any],
        new: dict[str, Any],
        comment: str,
        change: Any,
    ) -> None:
        if new == old:
            return  # nothing changed: no new version, no audit-log entry
        # Strictly increasing dates, so that `before=` pages never skip an entry.
        now = self._last_date = max(_now_ms(), self._last_date + 1)
        new["_version"] = int(old["_version"]) + 1
        changed = []
        for env, data in new["environments"].items():
            if data != old["environments"].get(env):
                data["version"] = int(data.get("version", 0)) + 1
                data["lastModified"] = now
                changed.append(env)
        self.flags[(project, key)] = new
        self.audit.append(self._entry(project, key, changed, old, new, comment, now, change))

    @staticmethod
    def _render(flag: dict[str, Any], env_filter: str | None) -> dict[str, Any]:
        out = copy.deepcopy(flag)
        if env_filter:
            wanted = set(env_filter.split(","))
            out["environments"] = {k: v for k, v in out["environments"].items() if k in wanted}
        return out


def _spec_matches(spec: str, resource: str) -> bool:
    """``proj/p:env/e:flag/f`` against a resource; ``*`` matches any key."""
    want, have = spec.split(":"), resource.split(":")
    if len(want) != len(have):
        return False
    for w, h in zip(want, have, strict=True):
        wt, _, wk = w.partition("/")
        ht, _, hk = h.partition("/")
        if wt != ht or (wk != "*" and wk != hk):
            return False
    return True


def _variation_index(flag: dict[str, Any], variation_id: Any) -> int:
    for i, variation in enumerate(flag["variations"]):
        if variation["_id"] == variation_id:
            return i
    raise ApiError(400, "invalid_request", f"Unknown variation ID {variation_id!r}")


def _serve(flag: dict[str, Any], ins: dict[str, Any]) -> dict[str, Any]:
    """``variationId`` or ``rolloutWeights`` (thousandths of a percent, adding up to 100000)."""
    if ins.get("variationId") is not None:
        return {"variation": _variation_index(flag, ins["variationId"])}
    weights = ins.get("rolloutWeights")
    if not isinstance(weights, dict) or not weights:
        raise ApiError(
            400, "invalid_request", f"{ins.get('kind')} needs `variationId` or `rolloutWeights`"
        )
    if sum(int(w) for w in weights.values()) != 100000:
        raise ApiError(400, "invalid_request", "Rollout weights must add up to 100000")
    rollout: dict[str, Any] = {
        "variations": sorted(
            (
                {"variation": _variation_index(flag, vid), "weight": int(w), "_untracked": False}
                for vid, w in weights.items()
            ),
            key=lambda v: v["variation"],
        )
    }
    if ins.get("rolloutBucketBy"):
        rollout["bucketBy"] = ins["rolloutBucketBy"]
    rollout["contextKind"] = ins.get("rolloutContextKind") or "user"
    return {"rollout": rollout}


def _clause(clause: Any) -> dict[str, Any]:
    if not isinstance(clause, dict) or not clause.get("attribute") or not clause.get("op"):
        raise ApiError(400, "invalid_request", f"Invalid clause {clause!r}")
    if not isinstance(clause.get("values"), list):
        raise ApiError(400, "invalid_request", "A clause needs `values`")
    return {
        "_id": str(uuid.uuid4()),
        "contextKind": clause.get("contextKind") or "user",
        "attribute": clause["attribute"],
        "op": clause["op"],
        "values": list(clause["values"]),
        "negate": bool(clause.get("negate", False)),
    }


def _rule_index(env: dict[str, Any], rule_id: Any) -> int:
    for i, rule in enumerate(env["rules"]):
        if rule["_id"] == rule_id:
            return i
    raise ApiError(400, "invalid_request", f"Unknown rule ID {rule_id!r}")
