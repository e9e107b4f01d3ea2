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

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes._http import FakeHandler, FakeHTTPServer, Fault, take_fault

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


class _Handler(FakeHandler):
    owner: SlackFake

    def _serve(self) -> None:
        status, body, extra = self.owner.handle(
            self.command, self.path, self.header_map(), self.read_body()
        )
        if isinstance(body, dict):
            payload = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
            content_type = "application/json; charset=utf-8"
        else:
            payload = str(body).encode()
            content_type = "text/html"
        date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
        self.send(status, payload, content_type, [("Date", date), *extra])

    do_GET = do_POST = _serve


class SlackFake(FakeHTTPServer):
    """The fake server; ``with SlackFake() as fake`` starts and stops it."""

    handler = _Handler
    thread_name = "slack-fake"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Recorded] = []
        self.messages: list[Message] = []
        self.faults: list[Fault] = []
        self.webhooks = {WEBHOOK_PATH: "C0123456789"}
        self.archived_webhooks: set[str] = set()
        self.bot_token = BOT_TOKEN
        self._ts = 1768885500.000100
        self._lock = threading.Lock()

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    # -- faults ---------------------------------------------------------------------------

    def fail_webhook(self, status: int, body: str, *, times: int = 1) -> None:
        with self._lock:
            self.faults.append(Fault(status, body, times=times, path_prefix="/services/"))

    def rate_limit(self, path_prefix: str, *, retry_after: int = 1, times: int = 1) -> None:
        """429s for ``/services/`` or ``/api/``, with ``Retry-After`` in seconds."""
        body: Any = "rate_limited"
        if path_prefix.startswith("/api"):
            body = {"ok": False, "error": "ratelimited"}
        headers = (("Retry-After", str(retry_after)),)
        with self._lock:
            self.faults.append(Fault(429, body, headers, times, path_prefix=path_prefix))

    def server_error(self, path_prefix: str, status: int = 500, *, times: int = 1) -> None:
        body: Any = "rollup_error" if path_prefix.startswith("/services") else "Internal Error"
        with self._lock:
            self.faults.append(Fault(status, body, times=times, path_prefix=path_prefix))

    # -- the API --------------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        path = urlsplit(raw_path).path
        body = _parse(headers.get("content-type", ""), raw)
        with self._lock:
            self.requests.append(Recorded(method, path, headers, body))
            fault = take_fault(self.faults, method, path)
            if fault is not None:
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
