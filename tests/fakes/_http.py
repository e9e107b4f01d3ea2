"""What the HTTP fakes share: a server in a daemon thread, a quiet handler, scripted faults.

A fake subclasses ``FakeHTTPServer`` and names its handler, a ``FakeHandler`` subclass
whose ``do_*`` methods read the request and answer with ``send`` or ``send_json``::

    class _Handler(FakeHandler):
        owner: MyFake

        def _serve(self) -> None:
            status, body = self.owner.handle(self.command, self.path, self.read_body())
            self.send_json(status, body)

        do_GET = do_POST = _serve


    class MyFake(FakeHTTPServer):
        handler = _Handler
        thread_name = "my-fake"

``with MyFake() as fake`` (or ``start()``/``stop()``) serves on 127.0.0.1, a free port,
at ``fake.url``; each fake gets its own handler class whose ``owner`` is the fake.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


class FakeHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, answers written at once, and no access log on stderr."""

    owner: Any
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY each keep-alive
    # response waits out the client's delayed ACK (about 40 ms).
    disable_nagle_algorithm = True

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def header_map(self) -> dict[str, str]:
        """The request's headers, names in lower case."""
        return {k.lower(): v for k, v in self.headers.items()}

    def send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """One answer: ``Content-Type``, ``Content-Length``, then ``headers``, then the body."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except ConnectionError:  # the client hung up (it timed out): not the fake's error
            self.close_connection = True

    def send_json(
        self,
        status: int,
        body: Any,
        headers: Iterable[tuple[str, str]] = (),
        *,
        content_type: str = "application/json",
    ) -> None:
        self.send(status, json.dumps(body).encode(), content_type, headers)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the fake's request log instead."""


class FakeHTTPServer:
    """Serves ``handler`` on 127.0.0.1 from a daemon thread; ``with Fake() as fake``."""

    handler: ClassVar[type[FakeHandler]]
    thread_name: ClassVar[str] = "http-fake"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        handler = type("Handler", (self.handler,), {"owner": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        # A handler sleeping past the client's timeout must not hold up stop().
        server.block_on_close = False
        self._server = server
        # A short poll keeps stop() (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (a slow answer); True when the fake stopped meanwhile."""
        return self._stopping.wait(seconds)


@dataclass
class Fault:
    """The next ``times`` matching requests answer ``status`` with ``body`` and ``headers``.

    A request matches when its method is ``method`` (any, if empty) and its path starts
    with ``path_prefix`` and contains ``path_contains``.
    """

    status: int
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    times: int = 1
    method: str = ""
    path_prefix: str = ""
    path_contains: str = ""

    def matches(self, method: str, path: str) -> bool:
        return (
            (not self.method or self.method == method)
            and path.startswith(self.path_prefix)
            and self.path_contains in path
        )


def take_fault(faults: list[Fault], method: str, path: str) -> Fault | None:
    """The first fault for this request, used once; one used up leaves ``faults``."""
    for fault in faults:
        if fault.times > 0 and fault.matches(method, path):
            fault.times -= 1
            if not fault.times:
                faults.remove(fault)
            return fault
    return None
