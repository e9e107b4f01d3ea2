"""Blue-green smoke checks over real HTTP: a preview that answers, errs, lies, stalls or is gone."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from release_actions.canary.smoke import HttpProber, run_smoke
from release_actions.core.policy import SmokeCheck


class Preview(BaseHTTPRequestHandler):
    """The new version behind a header route: without `x-canary: true` it is not reached."""

    def do_GET(self) -> None:
        if self.headers.get("x-canary") != "true":
            self._answer(404, "the stable version has no /ready")
            return
        if self.path == "/slow":
            time.sleep(1.5)
        status, body = {
            "/health": (200, '{"status": "ok"}'),
            "/slow": (200, "ok"),
            "/broken": (503, "upstream connect error"),
            "/degraded": (200, '{"status": "degraded"}'),
        }.get(self.path, (404, "not found"))
        self._answer(status, body)

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the check timed out and hung up first: that is its answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def preview() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Preview)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


HEADERS = {"x-canary": "true"}


def smoke(base: str, *checks: SmokeCheck, headers: dict[str, str] = HEADERS, timeout: float = 5):  # type: ignore[no-untyped-def]
    return run_smoke(
        list(checks), base=base, headers=headers, attempts=2, timeout=timeout, prober=HttpProber()
    )


def test_a_healthy_preview_passes_through_its_header_route(preview: str) -> None:
    check = SmokeCheck(name="health", path="/health", body='"status": "ok"', max_latency_ms=1000)
    result = smoke(preview, check)
    assert result.passed, result.reason
    assert [c["status"] for c in result.checks] == [200, 200]
    # Without the header route the same host is the stable version: never a pass.
    assert not smoke(preview, check, headers={}).passed


@pytest.mark.parametrize(
    ("check", "why"),
    [
        (SmokeCheck(name="api", path="/broken"), "status 503, expected 200"),
        (SmokeCheck(name="health", path="/degraded", body='"ok"'), "body does not match"),
        (SmokeCheck(name="slow", path="/slow", max_latency_ms=300), "limit 300 ms"),
    ],
)
def test_each_failing_answer_fails_the_preview(preview: str, check: SmokeCheck, why: str) -> None:
    result = smoke(preview, check)
    assert not result.passed
    assert why in result.reason and "attempt 1 of 2" in result.reason


def test_a_stalled_or_missing_preview_is_no_answer(preview: str) -> None:
    stalled = smoke(preview, SmokeCheck(name="slow", path="/slow"), timeout=0.3)
    assert not stalled.passed and "no answer (ReadTimeout" in stalled.reason
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    gone = smoke(f"http://127.0.0.1:{closed}", SmokeCheck(name="health", path="/health"))
    assert not gone.passed and "no answer (ConnectionError" in gone.reason
