"""An HTTP fake of the Firebase Remote Config REST API v1 (the template, with ETags).

``GET /v1/projects/{project}/remoteConfig`` answers the ``RemoteConfig`` template
(``conditions``, ``parameters`` of ``{defaultValue: {value}, conditionalValues,
description, valueType}``, ``parameterGroups``, ``version``) with an ``ETag`` header
(``etag-{projectNumber}-{versionNumber}``). ``PUT`` needs ``If-Match``: the current ETag, or
``*``; a stale one is 412 FAILED_PRECONDITION, as Firebase documents. A JSON parameter whose
value is not JSON is 400. ``fake.edit_elsewhere()`` is a change made in the console.
Auth: ``Authorization: Bearer TOKEN``, else 401 UNAUTHENTICATED; ``fake.faults`` scripts others.
``POST /token`` is Google's OAuth token endpoint for a service-account key whose
``token_uri`` points at the fake: it answers ``TOKEN`` for any signed JWT assertion.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes._http import FakeHandler, FakeHTTPServer, Fault, take_fault
from tests.fakes.play import google_error

TOKEN = "ya29.fake-firebase-token"
PROJECT = "triptrip-prod"
PROJECT_NUMBER = "123456789012"


def fault(status: int, message: str = "", **kw: Any) -> Fault:
    from tests.fakes.play import fault as google_fault

    return google_fault(status, message, **kw)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _Handler(FakeHandler):
    owner: RemoteConfigFake

    def _serve(self) -> None:
        raw = self.read_body()
        path = urlsplit(self.path).path
        headers = self.header_map()
        owner = self.owner
        if path == "/token" and self.command == "POST":
            self._token(raw)
            return
        with owner.lock:
            owner.requests.append(
                Request(self.command, path, headers, json.loads(raw) if raw else None)
            )
        if headers.get("authorization") != f"Bearer {owner.token}":
            self.send_json(
                401, google_error(401, "Request had invalid authentication credentials.")
            )
            return
        with owner.lock:
            scripted = take_fault(owner.faults, self.command, path)
            if scripted is not None:
                self.send_json(scripted.status, scripted.body, scripted.headers)
                return
            if path != f"/v1/projects/{PROJECT}/remoteConfig":
                self.send_json(404, google_error(404, "Requested entity was not found."))
                return
            if self.command == "GET":
                self.send_json(200, owner.template_body(), (("ETag", owner.etag),))
                return
            if self.command != "PUT":
                self.send_json(405, google_error(405, "Method not allowed."))
                return
            status, body = owner.put(headers, raw)
            extra = (("ETag", owner.etag),) if status == 200 else ()
            self.send_json(status, body, extra)

    def _token(self, raw: bytes) -> None:
        """Google's OAuth 2.0 token endpoint for a service account's signed JWT (RFC 7523)."""
        form = parse_qs(raw.decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            self.send_json(400, {"error": "unsupported_grant_type"})
            return
        with self.owner.lock:
            self.owner.assertions.extend(form.get("assertion") or [])
        self.send_json(
            200, {"access_token": self.owner.token, "expires_in": 3599, "token_type": "Bearer"}
        )

    do_GET = do_PUT = do_POST = _serve


class RemoteConfigFake(FakeHTTPServer):
    handler = _Handler
    thread_name = "remote-config-fake"

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self.token = TOKEN
        self.version = 1
        self.template: dict[str, Any] = {
            "conditions": [{"name": "ios", "expression": "device.os == 'ios'"}],
            "parameters": {
                "welcome": {"defaultValue": {"value": "hi"}, "valueType": "STRING"},
            },
            "parameterGroups": {},
        }
        self.requests: list[Request] = []
        self.assertions: list[str] = []
        self.faults: list[Fault] = []
        self.stale_next = 0

    @property
    def etag(self) -> str:
        return f"etag-{PROJECT_NUMBER}-{self.version}"

    def template_body(self) -> dict[str, Any]:
        return {
            **copy.deepcopy(self.template),
            "version": {
                "versionNumber": str(self.version),
                "updateTime": "2026-01-20T10:00:00.000000Z",
                "updateUser": {"email": "releaser@triptrip-prod.iam.gserviceaccount.com"},
                "updateOrigin": "REST_API",
                "updateType": "INCREMENTAL_UPDATE",
            },
        }

    def edit_elsewhere(self) -> None:
        """A change in the Firebase console: a new version, a new ETag."""
        with self.lock:
            self.template["parameters"][f"console_{self.version}"] = {
                "defaultValue": {"value": "x"},
                "valueType": "STRING",
            }
            self.version += 1

    def value(self, parameter: str) -> Any:
        with self.lock:
            return json.loads(self.template["parameters"][parameter]["defaultValue"]["value"])

    def puts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PUT"]

    def put(self, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        match = headers.get("if-match")
        if not match:
            return 400, google_error(400, "Request is missing the If-Match header.")
        if self.stale_next:
            # Someone published between this client's read and its write.
            self.stale_next -= 1
            self.edit_elsewhere()
        if match not in ("*", self.etag):
            return 412, google_error(
                412, "The ETag in the If-Match header does not match the template's current ETag."
            )
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, google_error(400, "Invalid JSON payload received.")
        for name, param in (body.get("parameters") or {}).items():
            if param.get("valueType") == "JSON":
                try:
                    json.loads((param.get("defaultValue") or {}).get("value", ""))
                except ValueError:
                    return 400, google_error(
                        400, f"[VALIDATION_ERROR]: Parameter {name} is not valid JSON."
                    )
        self.template = {k: v for k, v in body.items() if k != "version"}
        self.version += 1
        return 200, self.template_body()
