"""Prometheus as a metrics provider, through its HTTP API (`/api/v1/query`)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from release_actions.errors import MetricsError, NoDataError, ReleaseActionsError
from release_actions.metrics.base import MetricsProvider, Track, TrafficSample
from release_actions.metrics.retry import (
    QueryTemplates,
    RetryPolicy,
    TransientError,
    call_with_retry,
    check_status,
    finite,
    no_data,
    parse_float,
    positive_seconds,
)
from release_actions.metrics.variation import flag_context

log = logging.getLogger(__name__)

PROVIDER = "Prometheus"
# Prometheus scrapes every minute unless `global.scrape_interval` says otherwise.
DEFAULT_SCRAPE_INTERVAL = 60.0
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}

# `{ {{- selector -}} ,code=~"5.."}` renders as `{service="api",track="canary",code=~"5.."}`:
# jinja's `-` trims the spaces that keep `{{{` from being read as a jinja tag.
DEFAULT_QUERIES: dict[str, str | None] = {
    "requests": "sum(increase(http_requests_total{ {{- selector -}} }[{{ interval }}]))",
    "errors": 'sum(increase(http_requests_total{ {{- selector -}} ,code=~"5.."}[{{ interval }}]))',
    # The requests that did not fail, by the same label: while a service has served no 5xx
    # its errors series does not exist, and only this tells "no failure yet" (this series
    # exists) from "the label matches nothing" (neither does), which must not read as zero.
    "good": 'sum(increase(http_requests_total{ {{- selector -}} ,code=~"[1-4].."}[{{ interval }}]))',
    "p99": "histogram_quantile(0.99, sum by (le) (rate("
    "http_request_duration_seconds_bucket{ {{- selector -}} }[{{ interval }}]))) * 1000",
    # The histogram's own count, not `http_requests_total`, so that both terms come from
    # the same instrumentation and cannot drift apart.
    "slow": "sum(increase(http_request_duration_seconds_count{ {{- selector -}} }[{{ interval }}]))"
    " - sum(increase(http_request_duration_seconds_bucket{ {{- selector -}} "
    ',le="{{ slow_le }}"}[{{ interval }}]))',
    # Which `le` boundaries the histogram has, to pick the one for `slow_ms`.
    "buckets": "group by (le) (last_over_time("
    "http_request_duration_seconds_bucket{ {{- selector -}} }[{{ interval }}]))",
}

VARIABLES = ("track", "service", "namespace", "interval", "selector", "slow_le")
FLAG_VARIABLES = ("flag", "variation")
"""What a flag's guard templates get besides ``VARIABLES`` (see ``metrics.variation``)."""


def promql_string(value: str) -> str:
    """A PromQL string literal: double quotes, with backslash and quote escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def interval_of(start: float, end: float) -> str:
    """The window as a PromQL duration; whole seconds, as Prometheus durations are."""
    return f"{max(1, round(end - start))}s"


class PrometheusProvider(MetricsProvider):
    """Counts from Prometheus with instant queries at the end of the window.

    Templates get ``track``, ``service``, ``namespace``, ``interval`` (the window, such
    as ``300s``), ``selector`` (the label matchers of service, namespace, track and the
    extra matchers, joined with commas) and ``slow_le``. ``track=None`` drops the track
    matcher from ``selector`` and leaves ``track`` undefined, so a template that names
    ``track`` itself fails loudly for the whole deployment instead of matching nothing.

    Slow requests are counted from the histogram: the requests above the smallest bucket
    boundary that is at least ``slow_ms``. The boundaries are the ``le`` labels the
    series carry (the ``buckets`` query), unless ``slow_buckets`` lists them; they are
    ``le`` label values exactly as exported (``"0.5"``, ``"1.0"``), because PromQL
    matches label text, not numbers. When ``slow_ms`` is not a boundary, requests between
    ``slow_ms`` and the boundary above it count as fast, so give the histogram a bucket at
    the threshold.

    ``increase()`` and ``rate()`` need two samples inside the window, so no window may be
    shorter than two scrapes (``shortest_window_seconds``): the scrape interval is
    ``scrape_interval_seconds``, else the server's ``global.scrape_interval``.

    Every answer must hold a value: an empty vector, NaN (``histogram_quantile`` over no
    requests) or Inf is ``NoDataError``. Where there is no latency histogram, switch it
    off with ``queries={"p99": None}`` and ``p99_ms`` is None. An empty ``errors`` is zero
    only when ``good`` (the requests that did not fail, by the same status label) answers:
    a wrong label makes both empty, which is no data, never health. A policy that replaces
    ``errors`` and not ``good`` gets no ``good``, so its empty ``errors`` is no data too.
    """

    name = "prometheus"

    def __init__(
        self,
        session: requests.Session | None,
        base_url: str,
        *,
        service: str,
        namespace: str | None = None,
        queries: Mapping[str, str | None] | None = None,
        service_label: str = "service",
        track_label: str = "track",
        namespace_label: str = "namespace",
        matchers: Mapping[str, str] | None = None,
        slow_buckets: Sequence[str] | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        scrape_interval_seconds: float | str | None = None,
        flag: str | None = None,
    ) -> None:
        if not base_url:
            raise ReleaseActionsError(
                "The Prometheus provider needs `url`, such as `http://prometheus:9090`."
            )
        if not service:
            raise ReleaseActionsError("The Prometheus provider needs `service`.")
        self.session = session or requests.Session()
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.namespace = namespace
        self.service_label = service_label
        self.track_label = track_label
        self.namespace_label = namespace_label
        self.matchers = dict(matchers or {})
        self.slow_buckets = list(slow_buckets) if slow_buckets is not None else None
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.flag = flag
        queries = dict(queries or {})
        if flag is not None:
            # The users are split by the variation they were served, not by a track label:
            # only the guard's own templates can tell them apart, so no default runs.
            queries = {name: queries.get(name) for name in DEFAULT_QUERIES}
        if "errors" in queries and "good" not in queries:
            # The default `good` matches the default `errors` label; another errors query
            # says nothing about which label it uses.
            queries["good"] = None
        variables = VARIABLES + FLAG_VARIABLES if flag is not None else VARIABLES
        self.templates = QueryTemplates(PROVIDER, DEFAULT_QUERIES, queries, variables)
        self.scrape_interval_seconds = positive_seconds(
            scrape_interval_seconds, "scrape_interval_seconds"
        )
        self._server_scrape: float | None = None
        self._asked_server = False
        if not self.templates.enabled("requests") or not self.templates.enabled("errors"):
            raise ReleaseActionsError(
                "The Prometheus queries `requests` and `errors` cannot be switched off."
            )

    # -- the MetricsProvider interface ------------------------------------------------

    def query(
        self, track: Track | None, start: float, end: float, *, slow_ms: float | None = None
    ) -> TrafficSample:
        if end <= start:
            raise ReleaseActionsError(f"The window is empty: end {end} is not after start {start}.")
        deadline = self.retry.deadline()
        context = self._context(track, start, end)
        queries: dict[str, str] = {}

        def value(name: str, what: str, *, empty: float | None = None, **extra: object) -> float:
            text = self.templates.render(name, **context, **extra)
            queries[name] = text
            raw = self._scalar(text, end, deadline, what=what)
            if raw is None:
                if empty is None:
                    raise no_data(PROVIDER, what, text)
                raw = empty
            return finite(raw, provider=PROVIDER, what=what, query=text)

        requests_ = value("requests", "requests")
        errors = self._errors(value, context, end, deadline, queries)
        p99 = value("p99", "p99 latency") if self.templates.enabled("p99") else None
        slow: float | None = None
        if slow_ms is not None and self.templates.enabled("slow"):
            le = self._slow_boundary(slow_ms, context, end, deadline, queries)
            slow = value("slow", "slow requests", slow_le=le)

        return TrafficSample(
            track=track,
            start=start,
            end=end,
            requests=requests_,
            errors=errors,
            p99_ms=p99,
            slow=slow,
            queries=queries,
        )

    def scalar(
        self, query: str, start: float, end: float, *, what: str, reduce: str = "avg"
    ) -> float:
        """The one value of the instant query ``query`` at ``end``; the query spans the window."""
        if end <= start:
            raise ReleaseActionsError(f"The window is empty: end {end} is not after start {start}.")
        raw = self._scalar(query, end, self.retry.deadline(), what=what)
        if raw is None:
            raise no_data(PROVIDER, what, query)
        return finite(raw, provider=PROVIDER, what=what, query=query)

    def _errors(
        self,
        value: Callable[..., float],
        context: dict[str, object],
        end: float,
        deadline: float,
        queries: dict[str, str],
    ) -> float:
        """Failed requests; an empty answer is zero only when the successful ones answer."""
        text = self.templates.render("errors", **context)
        queries["errors"] = text
        raw = self._scalar(text, end, deadline, what="errors")
        if raw is not None:
            return finite(raw, provider=PROVIDER, what="errors", query=text)
        if self.templates.enabled("good"):
            good = self.templates.render("good", **context)
            queries["good"] = good
            if self._scalar(good, end, deadline, what="successful requests") is not None:
                # Requests answered with a status the errors query would see: no 5xx yet.
                return 0.0
        raise NoDataError(
            f"{PROVIDER}: neither the errors query nor the successful-requests query matched "
            "a series (does the metric have the status label they select, `code` by default?), "
            "so failures cannot be counted and a failing canary would read as healthy.",
            query=text,
            hint="Check the status label of the queries (`code` by default) against the "
            "metric's labels, or set `metrics.prometheus.queries.errors` and `good` together.",
        )

    def shortest_window_seconds(self) -> float | None:
        """Two scrape intervals; None when neither the settings nor the server tell it."""
        scrape = self.scrape_interval_seconds
        if scrape is None:
            if not self._asked_server:
                self._asked_server = True
                self._server_scrape = self._configured_scrape_interval()
            scrape = self._server_scrape
        return None if scrape is None else 2 * scrape

    def _configured_scrape_interval(self) -> float | None:
        """``global.scrape_interval`` from `/api/v1/status/config`, in seconds.

        None where the API serves no configuration (Thanos, Mimir and managed services
        answer queries without it), so that a missing answer does not slow the analysis
        down to a guess; per-job intervals are not read, as the job behind the queries is
        not known here (set ``scrape_interval_seconds`` when it differs).
        """
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        url = f"{self.base_url}/api/v1/status/config"
        try:
            response = self.session.get(url, timeout=self.timeout)
            body = response.json() if response.status_code == 200 else None
            text = body["data"]["yaml"] if isinstance(body, dict) else None
            config = YAML(typ="safe").load(text) if isinstance(text, str) else None
        except (requests.RequestException, ValueError, KeyError, TypeError, YAMLError) as exc:
            log.info("Prometheus at %s did not give its configuration: %s", self.base_url, exc)
            return None
        if not isinstance(config, dict):
            log.info("Prometheus at %s serves no configuration at %s", self.base_url, url)
            return None
        glob = config.get("global")
        value = glob.get("scrape_interval") if isinstance(glob, dict) else None
        if value is None:
            return DEFAULT_SCRAPE_INTERVAL
        try:
            return parse_duration(str(value))
        except ValueError:
            log.warning("Prometheus at %s has a scrape_interval %r not understood", url, value)
            return None

    def address(self) -> str:
        return self.base_url

    def is_online(self) -> bool:
        """Whether Prometheus says it is ready to serve queries; any failure is False.

        `/-/ready` is Prometheus's own; query frontends that speak its API without being
        it (Thanos, Mimir, managed services) answer `/api/v1/status/buildinfo` instead.
        """
        for path in ("/-/ready", "/api/v1/status/buildinfo"):
            try:
                response = self.session.get(f"{self.base_url}{path}", timeout=self.timeout)
            except requests.RequestException as exc:
                log.info("Prometheus at %s is not reachable: %s", self.base_url, exc)
                return False
            if response.status_code != 404:
                return response.status_code == 200
        return False

    # -- helpers ------------------------------------------------------------------------

    def _context(self, track: Track | None, start: float, end: float) -> dict[str, object]:
        pairs = [(self.service_label, self.service)]
        if self.namespace:
            pairs.append((self.namespace_label, self.namespace))
        if track is not None and self.flag is None:
            pairs.append((self.track_label, str(track)))
        pairs.extend(self.matchers.items())
        context: dict[str, object] = {
            "service": self.service,
            "namespace": self.namespace or "",
            "interval": interval_of(start, end),
            "selector": ",".join(f"{k}={promql_string(v)}" for k, v in pairs),
        }
        if track is not None:
            context["track"] = str(track)
        if self.flag is not None:
            context |= flag_context(self.flag, track)
        return context

    def _slow_boundary(
        self,
        slow_ms: float,
        context: Mapping[str, object],
        end: float,
        deadline: float,
        queries: dict[str, str],
    ) -> str:
        if self.slow_buckets is not None:
            labels = self.slow_buckets
            source = "`slow_buckets`"
        else:
            text = self.templates.render("buckets", **context)
            queries["buckets"] = text
            result = self._instant(text, end, deadline)
            found = (s.get("metric", {}).get("le") for s in _vector(result, text))
            labels = [str(le) for le in found if le is not None]
            if not labels:
                raise no_data(PROVIDER, "the latency histogram's buckets", text)
            source = "the histogram's `le` labels"
        bounds: list[tuple[float, str]] = []
        for le in labels:
            try:
                bounds.append((float(le), le))
            except ValueError:
                raise MetricsError(
                    f"The bucket boundary {le!r} from {source} is not a number."
                ) from None
        wanted = slow_ms / 1000.0
        above = sorted(b for b in bounds if b[0] >= wanted and math.isfinite(b[0]))
        if not above:
            finite_bounds = sorted(b[1] for b in bounds if math.isfinite(b[0]))
            raise MetricsError(
                f"No latency bucket boundary is at or above {slow_ms:g} ms (boundaries from "
                f"{source}: {', '.join(finite_bounds) or 'none'}), so slow requests cannot be counted.",
                hint="Add a histogram bucket at the slow threshold, or lower `slow_ms`.",
            )
        return above[0][1]

    def _scalar(self, text: str, at: float, deadline: float, *, what: str) -> float | None:
        """The single value of an instant query; None when the vector is empty."""
        result = self._instant(text, at, deadline)
        kind = result.get("resultType")
        if kind == "scalar":
            return parse_float(
                _sample_value(result.get("result"), text), provider=PROVIDER, what=what, query=text
            )
        series = _vector(result, text)
        if not series:
            return None
        if len(series) > 1:
            raise MetricsError(
                f"The Prometheus query `{what}` returned {len(series)} series where one was "
                f"expected; query `{text}`",
                hint="Aggregate it to one series, for example with `sum(...)`.",
            )
        return parse_float(
            _sample_value(series[0].get("value"), text), provider=PROVIDER, what=what, query=text
        )

    def _instant(self, text: str, at: float, deadline: float) -> dict[str, Any]:
        """The `data` of an instant query at ``at``, retried under the shared policy."""
        url = f"{self.base_url}/api/v1/query"

        def once() -> dict[str, Any]:
            timeout = max(0.1, min(self.timeout, self.retry.remaining(deadline)))
            try:
                response = self.session.get(
                    url, params={"query": text, "time": f"{at:.3f}"}, timeout=timeout
                )
            except requests.Timeout as exc:
                raise TransientError(f"no answer within {timeout:.1f} s ({exc})") from exc
            except requests.ConnectionError as exc:
                raise TransientError(f"cannot connect to {self.base_url} ({exc})") from exc
            except requests.RequestException as exc:
                raise MetricsError(f"Prometheus request failed: {exc}; query `{text}`") from exc
            body = _json(response)
            detail = _error_detail(body, response)
            check_status(
                response.status_code,
                provider=PROVIDER,
                query=text,
                detail=detail,
                headers=response.headers,
                auth_hint="Prometheus wants credentials: give the provider a session that sends "
                "them (for example `bearer_token`), and check that the token is still valid.",
            )
            if body is None or body.get("status") != "success":
                raise MetricsError(
                    f"Prometheus answered HTTP {response.status_code} without a successful "
                    f"result ({detail}); query `{text}`"
                )
            for warning in body.get("warnings") or []:
                log.warning("Prometheus warns about `%s`: %s", text, warning)
            data = body.get("data")
            if not isinstance(data, dict):
                raise MetricsError(f"Prometheus answered without `data`; query `{text}`")
            return data

        return call_with_retry(
            once, policy=self.retry, provider=PROVIDER, query=text, deadline=deadline
        )


def parse_duration(text: str) -> float:
    """A Prometheus duration (``15s``, ``1m30s``, ``500ms``) in seconds."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return float(sum(int(n) * _DURATION_UNIT[u] for n, u in parts))


def _json(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error_detail(body: Mapping[str, Any] | None, response: requests.Response) -> str:
    """Prometheus's own words for an error (`errorType: error`), else the start of the body."""
    if body and body.get("status") == "error":
        return f"{body.get('errorType', 'error')}: {body.get('error', '')}".strip()
    if body is None:
        return (response.text or response.reason or "").strip()[:200]
    return response.reason or ""


def _vector(result: Mapping[str, Any], text: str) -> list[dict[str, Any]]:
    kind = result.get("resultType")
    if kind != "vector":
        raise MetricsError(
            f"Prometheus returned a {kind} where an instant vector was expected; query `{text}`",
            hint="Use an instant query that aggregates over `[{{ interval }}]`, not a range vector.",
        )
    series = result.get("result")
    if not isinstance(series, list):
        raise MetricsError(f"Prometheus returned a malformed vector; query `{text}`")
    return [s for s in series if isinstance(s, dict)]


def _sample_value(sample: object, text: str) -> object:
    """The value of a `[timestamp, "value"]` pair."""
    if isinstance(sample, list) and len(sample) == 2:
        return sample[1]
    raise MetricsError(f"Prometheus returned a malformed sample {sample!r}; query `{text}`")
