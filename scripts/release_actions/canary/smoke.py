"""Smoke checks against a blue-green preview: the new version answers before any user reaches it."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from release_actions.core.policy import SmokeCheck
from release_actions.targets.base import Preview


@dataclass(frozen=True)
class Answer:
    """One answer of the preview; ``error`` is set when there was none (refused, timed out)."""

    status: int | None
    body: str
    latency_ms: float
    error: str | None = None


class Prober(Protocol):
    """Makes one request to the preview: HTTP for a real target, drawn for the simulator."""

    def request(
        self, method: str, url: str, headers: Mapping[str, str], timeout: float
    ) -> Answer: ...


class HttpProber:
    """Real requests; a connection error or a timeout is an answer that fails, never a pass."""

    def request(self, method: str, url: str, headers: Mapping[str, str], timeout: float) -> Answer:
        import requests

        began = time.monotonic()
        try:
            response = requests.request(
                method, url, headers=dict(headers), timeout=timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            return Answer(
                None, "", (time.monotonic() - began) * 1000, f"{type(exc).__name__}: {exc}"
            )
        elapsed = (time.monotonic() - began) * 1000
        # A body is read for the check's pattern only; a huge one is cut, not kept.
        return Answer(response.status_code, response.text[:65536], elapsed)


@dataclass
class SmokeResult:
    passed: bool
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "checks": self.checks}


def preview_base(preview: Preview | None, configured: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and headers that reach the preview; the policy's URL wins over the target's.

    With neither there is nothing to check against, and a blue-green switch on no evidence
    is exactly what the preview exists to prevent: that is an error, not a pass.
    """
    from release_actions.errors import PolicyError

    headers = dict(preview.headers) if preview is not None else {}
    base = configured or (preview.url if preview is not None else None)
    if not base:
        where = f" ({preview.detail})" if preview is not None and preview.detail else ""
        raise PolicyError(
            "The blue-green preview has no URL to check" + where + ".",
            hint="Set `deploy.blue_green.preview_url` in the policy: the host that reaches "
            "the new version (with Istio, the service's host: the canary header route is "
            "sent with each check).",
        )
    return base.rstrip("/"), headers


def _failure(check: SmokeCheck, answer: Answer) -> str | None:
    if answer.error is not None:
        return f"no answer ({answer.error})"
    if answer.status != check.status:
        return f"status {answer.status}, expected {check.status}"
    if check.body is not None and re.search(check.body, answer.body) is None:
        return f"body does not match /{check.body}/"
    if check.max_latency_ms is not None and answer.latency_ms > check.max_latency_ms:
        return f"{answer.latency_ms:.0f} ms, limit {check.max_latency_ms:.0f} ms"
    return None


def run_smoke(
    checks: Sequence[SmokeCheck],
    *,
    base: str,
    headers: Mapping[str, str],
    attempts: int,
    timeout: float,
    prober: Prober,
) -> SmokeResult:
    """Every check, ``attempts`` times; the first failing answer fails the preview.

    No check at all is a failure too: a preview nobody looked at has shown nothing.
    """
    if not checks:
        return SmokeResult(False, "no smoke check is configured (`deploy.blue_green.smoke`)")
    out: list[dict[str, Any]] = []
    for check in checks:
        url = base + check.path
        for attempt in range(1, attempts + 1):
            answer = prober.request(check.method, url, headers, timeout)
            why = _failure(check, answer)
            out.append(
                {
                    "check": check.name,
                    "url": url,
                    "attempt": attempt,
                    "status": answer.status,
                    "latency_ms": round(answer.latency_ms, 1),
                    "error": why,
                }
            )
            if why is not None:
                return SmokeResult(
                    False,
                    f"smoke check `{check.name}` ({check.method} {check.path}) failed on "
                    f"attempt {attempt} of {attempts}: {why}",
                    out,
                )
    n = len(checks)
    return SmokeResult(
        True,
        f"{n} smoke check{'s' if n != 1 else ''} passed {attempts} time{'s' if attempts != 1 else ''} each",
        out,
    )


class SimulatedProber:
    """The rehearsal's preview: each answer drawn from the new version's profile at that moment.

    A scenario whose new version errs or is slow fails its smoke checks as a real one would,
    with the same seed giving the same answers.
    """

    def __init__(self, simulation: Any) -> None:
        self.simulation = simulation
        self.asked = 0

    def request(self, method: str, url: str, headers: Mapping[str, str], timeout: float) -> Answer:
        self.asked += 1
        status, latency = self.simulation.answer(url, self.asked)
        if latency > timeout * 1000:
            return Answer(None, "", timeout * 1000, f"timed out after {timeout:g}s")
        return Answer(status, "ok" if status < 500 else "upstream error", latency)
