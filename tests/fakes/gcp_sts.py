"""An HTTP fake of the two token endpoints of workload identity federation.

The Actions runner's OIDC endpoint (`GET ACTIONS_ID_TOKEN_REQUEST_URL&audience=...` with
the request token as a bearer, answering `{"value": JWT}`) and Google's Security Token
Service (`POST /v1/token`, an RFC 8693 token exchange), plus IAM Credentials'
`generateAccessToken` for service-account impersonation.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from tests.fakes._http import FakeHandler, FakeHTTPServer

REQUEST_TOKEN = "runner-request-token"
SUBJECT_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm9jdG8vYXBwIn0.sig"


class _Handler(FakeHandler):
    owner: TokenFake

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        self.owner.requests.append(
            {"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")}
        )
        if self.headers.get("Authorization") != f"Bearer {REQUEST_TOKEN}":
            self.send_json(401, {"message": "bad request token"})
        elif "audience" not in query:
            self.send_json(400, {"message": "audience missing"})
        else:
            self.send_json(200, {"count": 1, "value": SUBJECT_JWT})

    def do_POST(self) -> None:
        raw = self.read_body().decode()
        path = urllib.parse.urlsplit(self.path).path
        if path.endswith(":generateAccessToken"):
            self.owner.requests.append(
                {
                    "method": "POST",
                    "path": path,
                    "auth": self.headers.get("Authorization"),
                    "body": json.loads(raw or "{}"),
                }
            )
            self.send_json(
                200, {"accessToken": "ya29.impersonated", "expireTime": "2099-01-01T00:00:00Z"}
            )
            return
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
        self.owner.requests.append({"method": "POST", "path": path, "form": form})
        if form.get("subject_token") != SUBJECT_JWT:
            self.send_json(400, {"error": "invalid_grant", "error_description": "subject token"})
            return
        self.send_json(
            200,
            {
                "access_token": "ya29.federated",
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": 3600,
            },
        )


class TokenFake(FakeHTTPServer):
    handler = _Handler
    thread_name = "token-fake"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
