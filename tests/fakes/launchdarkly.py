"""An HTTP fake of LaunchDarkly's REST API v2 feature-flag endpoints, for the kill switch.

Standard library only. It serves, as launchdarkly.com/docs/api describes them:

- ``GET /api/v2/flags/{projectKey}/{featureFlagKey}`` (``?env=`` keeps only those
  environments), the detailed flag representation: ``key``, ``name``, ``kind``,
  ``_version``, ``variations``, ``environments.{env}`` with ``on``, ``archived``,
  ``version``, ``lastModified``, ``_site`` and ``_environmentName``, and ``_links``.
- ``PATCH`` of the same path with a JSON patch, bare (``[...]``) or with a comment
  (``{"comment", "patch": [...]}``); a ``test`` op that fails answers 409. With
  ``Content-Type: application/json; domain-model=launchdarkly.semanticpatch`` it takes the
  semantic patch instructions ``turnFlagOn`` and ``turnFlagOff``.

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
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

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


class LaunchDarklyFake(FakeHTTPServer):
    """The fake server; ``with LaunchDarklyFake() as fake`` starts and stops it."""

    handler = _Handler
    thread_name = "ld-fake"

    def __init__(self, *, token: str = API_TOKEN, read_only_token: str = READ_ONLY_TOKEN):
        super().__init__()
        self.token = token
        self.read_only_token = read_only_token
        self.flags: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.audit: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._toggle_before_patch: list[tuple[str, str, str, bool]] = []
        self._lock = threading.Lock()

    # -- seeding and faults -------------------------------------------------------------

    def add_flag(
        self,
        key: str,
        *,
        project: str = PROJECT,
        on: dict[str, bool] | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """A boolean flag; ``on`` maps environment keys to their state (both on by default)."""
        now = int(time.time() * 1000)
        envs = on if on is not None else {"production": True, "staging": True}
        flag = {
            "key": key,
            "name": name or key.replace("-", " ").capitalize(),
            "description": "",
            "kind": "boolean",
            "creationDate": now,
            "_version": 1,
            "temporary": True,
            "tags": [],
            "archived": False,
            "deprecated": False,
            "variations": [
                {"_id": str(uuid.uuid4()), "value": True},
                {"_id": str(uuid.uuid4()), "value": False},
            ],
            "defaults": {"onVariation": 0, "offVariation": 1},
            "environments": {
                env: {
                    "on": state,
                    "archived": False,
                    "salt": uuid.uuid4().hex,
                    "sel": uuid.uuid4().hex,
                    "lastModified": now,
                    "version": 1,
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
        if len(parts) != 5 or parts[:3] != ["api", "v2", "flags"]:
            raise ApiError(404, "not_found", "Invalid resource identifier")
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
        env = body.get("environmentKey")
        if env not in flag["environments"]:
            raise ApiError(400, "invalid_request", f"Unknown environment key {env!r}")
        new = copy.deepcopy(flag)
        for instruction in body["instructions"]:
            kind = instruction.get("kind") if isinstance(instruction, dict) else None
            if kind not in ("turnFlagOn", "turnFlagOff"):
                raise ApiError(400, "invalid_request", f"Unsupported instruction {kind!r}")
            new["environments"][env]["on"] = kind == "turnFlagOn"
        self._commit(project, flag["key"], flag, new, str(body.get("comment") or ""), body)
        return self._render(new, None)

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
        now = int(time.time() * 1000)
        new["_version"] = int(old["_version"]) + 1
        for env, data in new["environments"].items():
            if data != old["environments"].get(env):
                data["version"] = int(data.get("version", 0)) + 1
                data["lastModified"] = now
        self.flags[(project, key)] = new
        self.audit.append({"flag": key, "comment": comment, "change": change, "date": now})

    @staticmethod
    def _render(flag: dict[str, Any], env_filter: str | None) -> dict[str, Any]:
        out = copy.deepcopy(flag)
        if env_filter:
            wanted = set(env_filter.split(","))
            out["environments"] = {k: v for k, v in out["environments"].items() if k in wanted}
        return out
