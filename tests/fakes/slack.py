"""An HTTP fake of Slack's incoming webhooks and ``chat.postMessage``, for the real slack-sdk clients.

Standard library only. It answers as docs.slack.dev describes:

- ``POST /services/{T}/{B}/{X}`` (incoming webhook, JSON body with ``text`` or ``blocks``):
  200 ``ok`` as ``text/html``; errors as plain text with their status: 400
  ``invalid_payload``, 403 ``action_prohibited``, 404 ``no_service``, 410
  ``channel_is_archived``, 500 ``rollup_error``; 429 with ``Retry-After``.
- ``POST /api/chat.postMessage`` (JSON or form body, ``Authorization: Bearer xoxb-...``):
  HTTP 200 with ``{"ok": true, "channel", "ts", "message"}``, or ``{"ok": false,
  "error": "channel_not_found" | "not_in_channel" | "invalid_auth" | "not_authed" |
  "no_text"}``; 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``.

Point ``WebhookClient(url=fake.webhook_url)`` or ``WebClient(base_url=fake.api_url)`` at it;
delivered messages are in ``fake.messages``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

WEBHOOK_PATH = "/services/T0TRIPTRIP/B0RELEASES/xyzSecretHookToken123"
BOT_TOKEN = "xoxb-1111-2222-fakeBotToken"
CHANNELS = {"releases": "C0123456789", "incidents": "C0INCIDENT1", "archived": "C0ARCHIVED1"}
NOT_A_MEMBER = {"C0PRIVATE01"}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Message:
    via: str
    channel: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)
    ts: str = ""


@dataclass
class Fault:
    path_prefix: str
    status: int
    body: Any
    headers: tuple[tuple[str, str], ...]
    times: int


class SlackFake:
    """The fake server; ``with SlackFake() as fake`` starts and stops it."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.messages: list[Message] = []
        self.faults: list[Fault] = []
        self.webhooks = {WEBHOOK_PATH: "C0123456789"}
        self.archived_webhooks: set[str] = set()
        self.bot_token = BOT_TOKEN
        self._ts = 1768885500.000100
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def start(self) -> SlackFake:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="slack-fake", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SlackFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------------

    def fail_webhook(self, status: int, body: str, *, times: int = 1) -> None:
        with self._lock:
            self.faults.append(Fault("/services/", status, body, (), times))

    def rate_limit(self, path_prefix: str, *, retry_after: int = 1, times: int = 1) -> None:
        """429s for ``/services/`` or ``/api/``, with ``Retry-After`` in seconds."""
        body: Any = "rate_limited"
        if path_prefix.startswith("/api"):
            body = {"ok": False, "error": "ratelimited"}
        headers = (("Retry-After", str(retry_after)),)
        with self._lock:
            self.faults.append(Fault(path_prefix, 429, body, headers, times))

    def server_error(self, path_prefix: str, status: int = 500, *, times: int = 1) -> None:
        body: Any = "rollup_error" if path_prefix.startswith("/services") else "Internal Error"
        with self._lock:
            self.faults.append(Fault(path_prefix, status, body, (), times))

    # -- the API --------------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        path = urlsplit(raw_path).path
        body = _parse(headers.get("content-type", ""), raw)
        with self._lock:
            self.requests.append(Recorded(method, path, headers, body))
            for fault in self.faults:
                if path.startswith(fault.path_prefix) and fault.times > 0:
                    fault.times -= 1
                    if not fault.times:
                        self.faults.remove(fault)
                    return fault.status, fault.body, list(fault.headers)
            if method != "POST":
                return 405, "method_not_allowed", []
            if path.startswith("/services/"):
                return self._webhook(path, body)
            if path == "/api/chat.postMessage":
                return 200, self._post_message(headers, body), []
            if path.startswith("/api/"):
                return 200, {"ok": False, "error": "unknown_method"}, []
            return 404, "Not Found", []

    def _webhook(self, path: str, body: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        channel = self.webhooks.get(path)
        if channel is None:
            return 404, "no_service", []
        if path in self.archived_webhooks:
            return 410, "channel_is_archived", []
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return 400, "invalid_payload", []
        self.messages.append(Message("webhook", channel, str(body.get("text") or ""), body))
        return 200, "ok", []

    def _post_message(self, headers: dict[str, str], body: Any) -> dict[str, Any]:
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if token is None and isinstance(body, dict):
            token = body.get("token")
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token != self.bot_token:
            return {"ok": False, "error": "invalid_auth"}
        if not isinstance(body, dict):
            return {"ok": False, "error": "invalid_arguments"}
        wanted = str(body.get("channel") or "")
        channel = CHANNELS.get(wanted.lstrip("#"), wanted if wanted in CHANNELS.values() else "")
        if not channel and wanted in NOT_A_MEMBER:
            return {"ok": False, "error": "not_in_channel"}
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel == CHANNELS["archived"]:
            return {"ok": False, "error": "is_archived"}
        if not body.get("text") and not body.get("blocks"):
            return {"ok": False, "error": "no_text"}
        self._ts += 0.0001
        ts = f"{self._ts:.6f}"
        text = str(body.get("text") or "")
        self.messages.append(Message("chat.postMessage", channel, text, body, ts))
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "message": {
                "type": "message",
                "subtype": "bot_message",
                "text": text,
                "ts": ts,
                "bot_id": "B0RELEASEBOT",
                "app_id": "A0RELEASEAPP",
            },
        }


def _parse(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        return json.loads(text)
    except ValueError:
        return text


class _Handler(BaseHTTPRequestHandler):
    owner: SlackFake
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per keep-alive response

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.owner.handle(method, self.path, headers, raw)
        if isinstance(body, dict):
            payload = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
            content_type = "application/json; charset=utf-8"
        else:
            payload = str(body).encode()
            content_type = "text/html"
        with contextlib.suppress(ConnectionError):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``fake.requests`` and ``fake.messages`` instead."""
