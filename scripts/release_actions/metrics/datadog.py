"""Datadog as a metrics provider, through datadog-api-client's v1 `MetricsApi.query_metrics`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from release_actions.errors import MetricsError, ReleaseActionsError, require
from release_actions.metrics.base import REDUCERS, MetricsProvider, Track, TrafficSample
from release_actions.metrics.retry import (
    QueryTemplates,
    RetryPolicy,
    TransientError,
    call_with_retry,
    check_status,
    finite,
    no_data,
    positive_seconds,
)
from release_actions.metrics.variation import flag_context

if TYPE_CHECKING:  # the SDK is an optional extra, imported only where it is used
    from datadog_api_client import ApiClient, Configuration

log = logging.getLogger(__name__)

PROVIDER = "Datadog"

# The source document's metrics (§4.3, §4.4). `{ {{- scope -}} }` renders as
# `{service:triptrip-api,track:canary}`; jinja's `-` trims the spaces that keep `{{{`
# from being read as a jinja tag.
DEFAULT_QUERIES: dict[str, str | None] = {
    "requests": "sum:triptrip.http.request.count{ {{- scope -}} }.as_count()",
    "errors": "sum:triptrip.http.request.count{ {{- scope -}} ,status_class:5xx}.as_count()",
    "p99": "avg:triptrip.http.request.duration.99percentile{ {{- scope -}} }",
    # Datadog keeps no histogram of these requests: set a count of slow requests here
    # (for example from a distribution metric) to fill `TrafficSample.slow`.
    "slow": None,
}

VARIABLES = ("track", "service", "scope", "interval", "slow_ms")
FLAG_VARIABLES = ("flag", "variation")
"""What a flag's guard templates get besides ``VARIABLES`` (see ``metrics.variation``)."""

AUTH_HINT = (
    "Datadog refused the keys: check `DD_API_KEY` and `DD_APP_KEY` (or `DD_APPLICATION_KEY`), "
    "that the application key may read metrics (`timeseries_query` scope), and that "
    "`DD_SITE` names your Datadog site (such as `datadoghq.eu`)."
)

# Milliseconds per unit, for a latency series whose `unit` Datadog reports.
_MS_PER_UNIT = {
    "nanosecond": 1e-6,
    "microsecond": 1e-3,
    "millisecond": 1.0,
    "second": 1000.0,
    "minute": 60_000.0,
}


def datadog_configuration(
    *,
    api_key: str,
    app_key: str,
    site: str | None = None,
    host: str | None = None,
    timeout: float = 10.0,
) -> Configuration:
    """A Configuration built from these values alone, with the SDK's own retries off.

    The SDK reads ``DD_SITE``, ``DD_API_KEY`` and ``DD_APP_KEY`` from the environment when
    it builds a Configuration; they are overwritten here so that what the caller passed
    (and masked) is what is sent. urllib3 would otherwise retry timeouts three times
    below the provider's own policy, multiplying every timeout by four.
    """
    sdk: Any = require("datadog_api_client", "datadog")
    configuration: Configuration = sdk.Configuration(
        host=host, request_timeout=timeout, retry_policy=False
    )
    configuration.api_key = {"apiKeyAuth": api_key, "appKeyAuth": app_key}
    if host is None:
        configuration.server_variables["site"] = site or "datadoghq.com"
    return configuration


def scope_of(tags: Sequence[tuple[str, str]]) -> str:
    return ",".join(f"{k}:{v}" for k, v in tags)


class DatadogProvider(MetricsProvider):
    """Counts and p99 from Datadog's metric query API over the asked window.

    Templates get ``track``, ``service``, ``scope`` (the tags of service, track and the
    extra tags, joined with commas), ``interval`` (the window, such as ``300s``) and
    ``slow_ms``. ``track=None`` drops the track tag from ``scope`` and leaves ``track``
    undefined.

    Reading the point list: Datadog buckets the window into rollup intervals, and the
    newest bucket is usually incomplete (agents flush late). Counts (``.as_count()``) are
    summed over every point of every series, the newest included: a late bucket holds
    fewer requests and fewer errors alike, which leaves the error rate alone, whereas
    dropping it would throw measured requests away. The p99 is the maximum over the
    complete points, leaving out each series' newest point when an older point has a
    value: an average over the hosts that have flushed so far can be biased either way,
    and the maximum is the conservative reading, since a regression in any complete
    bucket is one the judge should see. ``null`` points are gaps; NaN or Inf anywhere is
    no data.

    For the same reason no window is shorter than ``min_window_seconds`` (60, the 1m of
    the document's Datadog analysis, §4.4): agents flush every 10 s and the intake adds
    its own delay, so a 10 s window that ends now is mostly that newest bucket, often
    still empty, and an empty answer is no data.

    Keys come from the constructor only, never from the environment. A client passed in
    is used as it is: build its Configuration with ``retry_policy=False`` (as
    ``datadog_configuration`` does), or urllib3 retries timeouts below this provider's
    policy.
    """

    name = "datadog"

    def __init__(
        self,
        api_client: ApiClient | None = None,
        *,
        configuration: Configuration | None = None,
        api_key: str | None = None,
        app_key: str | None = None,
        site: str | None = None,
        host: str | None = None,
        service: str,
        queries: Mapping[str, str | None] | None = None,
        service_tag: str = "service",
        track_tag: str = "track",
        tags: Mapping[str, str] | None = None,
        latency_unit: str = "millisecond",
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        min_window_seconds: float | str = 60.0,
        flag: str | None = None,
    ) -> None:
        if not service:
            raise ReleaseActionsError("The Datadog provider needs `service`.")
        if api_client is not None and configuration is not None:
            raise ReleaseActionsError("Only one of `api_client` or `configuration` can be set.")
        if (api_client is not None or configuration is not None) and (api_key or app_key):
            raise ReleaseActionsError(
                "Set the keys on the `api_client` or `configuration`, or pass `api_key` and "
                "`app_key` without either."
            )
        if latency_unit not in _MS_PER_UNIT:
            raise ReleaseActionsError(
                f"Unknown `latency_unit` {latency_unit!r}: use one of "
                f"{', '.join(f'`{u}`' for u in _MS_PER_UNIT)}."
            )
        if api_client is None and configuration is None:
            missing = [n for n, v in (("DD_API_KEY", api_key), ("DD_APP_KEY", app_key)) if not v]
            if missing:
                raise ReleaseActionsError(
                    f"The Datadog provider needs {' and '.join(f'`{m}`' for m in missing)}.",
                    hint="Set them as repository secrets and pass them through `env:`; "
                    "the application key may also be named `DD_APPLICATION_KEY`.",
                )
            configuration = datadog_configuration(
                api_key=str(api_key), app_key=str(app_key), site=site, host=host, timeout=timeout
            )
        self._api_client = api_client
        self._configuration = configuration
        self._owns_client = api_client is None
        self.service = service
        self.service_tag = service_tag
        self.track_tag = track_tag
        self.tags = dict(tags or {})
        self.latency_unit = latency_unit
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.min_window_seconds = positive_seconds(min_window_seconds, "min_window_seconds")
        self.flag = flag
        variables: tuple[str, ...] = VARIABLES
        if flag is not None:
            # The users are split by the variation they were served, not by a track tag:
            # only the guard's own templates can tell them apart, so no default runs.
            queries = {name: (queries or {}).get(name) for name in DEFAULT_QUERIES}
            variables = VARIABLES + FLAG_VARIABLES
        self.templates = QueryTemplates(PROVIDER, DEFAULT_QUERIES, queries, variables)
        if not self.templates.enabled("requests") or not self.templates.enabled("errors"):
            raise ReleaseActionsError(
                "The Datadog queries `requests` and `errors` cannot be switched off."
            )

    @property
    def api_client(self) -> ApiClient:
        if self._api_client is None:
            sdk: Any = require("datadog_api_client", "datadog")
            self._api_client = sdk.ApiClient(self._configuration)
        return self._api_client

    def close(self) -> None:
        """Close the connection pool when this provider made the client."""
        if self._owns_client and self._api_client is not None:
            self._api_client.close()
            self._api_client = None

    def __enter__(self) -> DatadogProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the MetricsProvider interface ------------------------------------------------

    def query(
        self, track: Track | None, start: float, end: float, *, slow_ms: float | None = None
    ) -> TrafficSample:
        if end <= start:
            raise ReleaseActionsError(f"The window is empty: end {end} is not after start {start}.")
        deadline = self.retry.deadline()
        context = self._context(track, start, end, slow_ms)
        queries: dict[str, str] = {}
        window = (math.floor(start), math.ceil(end))

        def series(name: str) -> list[Any]:
            text = self.templates.render(name, **context)
            queries[name] = text
            return self._series(text, window, deadline)

        requests_ = _count(series("requests"), queries["requests"], "requests")
        if requests_ is None:
            raise no_data(PROVIDER, "requests", queries["requests"])
        # A service without a single 5xx has no `status_class:5xx` series: the request
        # count of the same scope and window answered, so this empty answer is a real zero.
        # Points that are all null say the same.
        errors = _count(series("errors"), queries["errors"], "errors") or 0.0

        p99: float | None = None
        if self.templates.enabled("p99"):
            p99 = self._p99(series("p99"), queries["p99"])

        slow: float | None = None
        if slow_ms is not None and self.templates.enabled("slow"):
            slow = _count(series("slow"), queries["slow"], "slow requests")
            if slow is None:
                raise no_data(PROVIDER, "slow requests", queries["slow"])

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
        """The points of the one series of ``query`` over the window, folded by ``reduce``.

        More than one series is an error (aggregate the query, `avg:` or `sum:`), as a
        per-version value taken from one of several series would be chosen by chance.
        """
        if end <= start:
            raise ReleaseActionsError(f"The window is empty: end {end} is not after start {start}.")
        if reduce not in REDUCERS:
            raise ReleaseActionsError(
                f"Unknown `reduce` {reduce!r}: use one of {', '.join(f'`{r}`' for r in REDUCERS)}."
            )
        found = self._series(query, (math.floor(start), math.ceil(end)), self.retry.deadline())
        if not found:
            raise no_data(PROVIDER, what, query)
        if len(found) > 1:
            raise MetricsError(
                f"The Datadog query for {what} returned {len(found)} series where one was "
                f"expected; query `{query}`",
                query=query,
                hint="Aggregate it to one series, for example `avg:metric{...}` without `by {...}`.",
            )
        values = [v for _, v in _points(found[0], query, what) if v is not None]
        if not values:
            raise no_data(PROVIDER, f"{what} (every point is null)", query)
        if reduce == "avg":
            folded = sum(values) / len(values)
        elif reduce == "sum":
            folded = sum(values)
        elif reduce == "last":
            folded = values[-1]
        else:
            folded = min(values) if reduce == "min" else max(values)
        return finite(folded, provider=PROVIDER, what=what, query=query)

    def address(self) -> str:
        if self._configuration is not None:
            return str(self._configuration.host)
        return self.name

    def shortest_window_seconds(self) -> float | None:
        return self.min_window_seconds

    def is_online(self) -> bool:
        """Whether Datadog accepts the API key (`GET /api/v1/validate`); any failure is False."""
        sdk: Any = require("datadog_api_client.v1.api.authentication_api", "datadog")
        try:
            answer = sdk.AuthenticationApi(self.api_client).validate()
        except Exception as exc:  # the SDK raises urllib3, SDK and model errors alike
            log.info("Datadog is not reachable or refuses the key: %s", _short(exc))
            return False
        return bool(answer.get("valid", False))

    # -- helpers ------------------------------------------------------------------------

    def _context(
        self, track: Track | None, start: float, end: float, slow_ms: float | None
    ) -> dict[str, object]:
        tags = [(self.service_tag, self.service)]
        if track is not None and self.flag is None:
            tags.append((self.track_tag, str(track)))
        tags.extend(self.tags.items())
        context: dict[str, object] = {
            "service": self.service,
            "scope": scope_of(tags),
            "interval": f"{max(1, round(end - start))}s",
        }
        if track is not None:
            context["track"] = str(track)
        if slow_ms is not None:
            context["slow_ms"] = slow_ms
        if self.flag is not None:
            context |= flag_context(self.flag, track)
        return context

    def _series(self, text: str, window: tuple[int, int], deadline: float) -> list[Any]:
        """The series of one query over the window, retried under the shared policy."""
        api_module: Any = require("datadog_api_client.v1.api.metrics_api", "datadog")
        exceptions: Any = require("datadog_api_client.exceptions", "datadog")
        urllib3: Any = require("urllib3", "datadog")
        api = api_module.MetricsApi(self.api_client)

        def once() -> list[Any]:
            try:
                answer = api.query_metrics(_from=window[0], to=window[1], query=text)
            except exceptions.ApiException as exc:
                status = int(exc.status or 0)
                detail = _error_detail(exc.body) or str(exc.reason or "")
                if status == 0:
                    raise MetricsError(
                        f"Datadog request failed: {detail}; query `{text}`"
                    ) from None
                check_status(
                    status,
                    provider=PROVIDER,
                    query=text,
                    detail=detail,
                    headers=exc.headers,
                    auth_hint=AUTH_HINT,
                )
                raise MetricsError(
                    f"Datadog answered HTTP {status}: {detail}; query `{text}`"
                ) from None
            except urllib3.exceptions.HTTPError as exc:
                # Timeouts, refused connections, dropped connections: worth another try.
                raise TransientError(_short(exc)) from exc
            except exceptions.OpenApiException as exc:
                raise MetricsError(
                    f"Datadog's answer does not have the published shape ({exc}); query `{text}`"
                ) from None
            if answer.get("status", "ok") != "ok":
                raise MetricsError(
                    f"Datadog answered status {answer.get('status')!r}: "
                    f"{answer.get('error') or answer.get('message') or 'no reason given'}; "
                    f"query `{text}`"
                )
            return list(answer.get("series") or [])

        return call_with_retry(
            once, policy=self.retry, provider=PROVIDER, query=text, deadline=deadline
        )

    def _p99(self, series: list[Any], text: str) -> float:
        if not series:
            raise no_data(PROVIDER, "p99 latency", text)
        candidates: list[float] = []
        for one in series:
            points = _points(one, text, "p99 latency")
            complete = [v for _, v in points[:-1] if v is not None]
            values = complete or [v for _, v in points if v is not None]
            scale = self._ms_per(one)
            candidates.extend(v * scale for v in values)
        if not candidates:
            raise no_data(PROVIDER, "p99 latency (every point is null)", text)
        return finite(max(candidates), provider=PROVIDER, what="p99 latency", query=text)

    def _ms_per(self, series: Any) -> float:
        """Milliseconds per value: Datadog's reported unit when it has one, else `latency_unit`."""
        unit = series.get("unit")
        first = unit[0] if unit else None
        name = first.get("name") if first is not None else None
        if name in _MS_PER_UNIT:
            return _MS_PER_UNIT[name]
        return _MS_PER_UNIT[self.latency_unit]


def _points(series: Any, text: str, what: str) -> list[tuple[float, float | None]]:
    """The (timestamp, value) pairs of a series, oldest first; NaN or Inf is no data."""
    out: list[tuple[float, float | None]] = []
    for point in series.get("pointlist") or []:
        pair = point.value if hasattr(point, "value") else point
        if len(pair) != 2:
            raise MetricsError(f"Datadog returned a malformed point {pair!r}; query `{text}`")
        ts, value = pair
        if value is not None:
            value = finite(float(value), provider=PROVIDER, what=what, query=text)
        out.append((float(ts), value))
    out.sort(key=lambda p: p[0])
    return out


def _count(series: list[Any], text: str, what: str) -> float | None:
    """The sum of every point of every series; None when there is not one value."""
    values = [v for one in series for _, v in _points(one, text, what) if v is not None]
    return sum(values) if values else None


def _error_detail(body: object) -> str:
    """Datadog's own words: the `errors` list of its error body."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            return "; ".join(str(e) for e in errors)
        return str(body.get("error") or "")
    if isinstance(body, bytes | str):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return text.strip()[:200]
    return ""


def _short(exc: BaseException) -> str:
    """urllib3 wraps the cause (`Read timed out`) in a long `MaxRetryError` sentence."""
    reason = getattr(exc, "reason", None)
    return str(reason) if isinstance(reason, BaseException) else str(exc)
