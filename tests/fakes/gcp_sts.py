"""An HTTP fake of the two token endpoints of workload identity federation.

The Actions runner's OIDC endpoint (`GET ACTIONS_ID_TOKEN_REQUEST_URL&audience=...` with
the request token as a bearer, answering `{"value": JWT}`) and Google's Security Token
Service (`POST /v1/token`, an RFC 8693 token exchange), plus IAM Credentials'
`generateAccessToken` for service-account impersonation.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REQUEST_TOKEN = "runner-request-token"
SUBJECT_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm9jdG8vYXBwIn0.sig"


class TokenFake:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> TokenFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                fake.requests.append(
                    {"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")}
                )
                if self.headers.get("Authorization") != f"Bearer {REQUEST_TOKEN}":
                    self._send(401, {"message": "bad request token"})
                elif "audience" not in query:
                    self._send(400, {"message": "audience missing"})
                else:
                    self._send(200, {"count": 1, "value": SUBJECT_JWT})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length).decode()
                path = urllib.parse.urlsplit(self.path).path
                if path.endswith(":generateAccessToken"):
                    fake.requests.append(
                        {
                            "method": "POST",
                            "path": path,
                            "auth": self.headers.get("Authorization"),
                            "body": json.loads(raw or "{}"),
                        }
                    )
                    self._send(
                        200,
                        {"accessToken": "ya29.impersonated", "expireTime": "2099-01-01T00:00:00Z"},
                    )
                    return
                form = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
                fake.requests.append({"method": "POST", "path": path, "form": form})
                if form.get("subject_token") != SUBJECT_JWT:
                    self._send(
                        400, {"error": "invalid_grant", "error_description": "subject token"}
                    )
                    return
                self._send(
                    200,
                    {
                        "access_token": "ya29.federated",
                        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                        "token_type": "Bearer",
                        "expires_in": 3600,
                    },
                )

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"
