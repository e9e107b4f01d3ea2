"""DORA's figures as Datadog gauges (`release_actions.dora.<name>`), through the v2 series intake."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from release_actions.errors import IntegrationError, require

PREFIX = "release_actions.dora."
# Datadog's metric names: ASCII letters, digits, underscores and periods, at most 200.
_UNSAFE = re.compile(r"[^a-z0-9_.]+")
GAUGE = 3  # MetricIntakeType.GAUGE in the v2 intake


def metric_name(name: str) -> str:
    """``release_actions.dora.<name>``, with what Datadog would refuse turned into ``_``."""
    tail = _UNSAFE.sub("_", name.strip().lower()).strip("_.") or "value"
    return (PREFIX + tail)[:200]


def submit(
    figures: Mapping[str, float | None],
    tags: Iterable[str],
    env: Mapping[str, str],
    *,
    host: str | None = None,
    now: float | None = None,
    timeout: float = 10.0,
) -> list[str]:
    """Submit each finite figure as one gauge point at ``now``; the metric names sent.

    A figure with no value (no deployment in the period, so no lead time) is left out
    rather than sent as zero, which would read as the best possible figure. The key is
    ``DD_API_KEY`` (the intake needs no application key), the site ``DD_SITE``; ``host``
    aims the client elsewhere (a test server). Any refusal is an IntegrationError.
    """
    api_key = (env.get("DD_API_KEY") or "").strip()
    if not api_key:
        raise IntegrationError(
            "Cannot submit the DORA figures to Datadog: `DD_API_KEY` is not set.",
            hint="Set `DD_API_KEY` from a secret in the step's `env:`, or turn "
            "`reporting.datadog` off in the policy.",
        )
    points = {
        metric_name(name): float(value)
        for name, value in figures.items()
        if value is not None and math.isfinite(float(value))
    }
    if not points:
        return []
    from release_actions.metrics.datadog import datadog_configuration

    sdk: Any = require("datadog_api_client", "datadog")
    api_module: Any = require("datadog_api_client.v2.api.metrics_api", "datadog")
    models: Any = require("datadog_api_client.v2.models", "datadog")
    exceptions: Any = require("datadog_api_client.exceptions", "datadog")
    urllib3: Any = require("urllib3", "datadog")
    configuration = datadog_configuration(
        api_key=api_key,
        app_key=env.get("DD_APP_KEY") or "",
        site=env.get("DD_SITE") or None,
        host=host,
        timeout=timeout,
    )
    stamp = int(now if now is not None else time.time())
    series = [
        models.MetricSeries(
            metric=name,
            type=models.MetricIntakeType(GAUGE),
            points=[models.MetricPoint(timestamp=stamp, value=value)],
            tags=list(tags),
        )
        for name, value in sorted(points.items())
    ]
    try:
        with sdk.ApiClient(configuration) as client:
            api_module.MetricsApi(client).submit_metrics(body=models.MetricPayload(series=series))
    except exceptions.ApiException as exc:
        status = int(exc.status or 0)
        if status in (401, 403):
            raise IntegrationError(
                f"Datadog refused the DORA figures ({status}): `DD_API_KEY` is not valid for "
                "this site.",
                hint="Check the key, and `DD_SITE` (such as `datadoghq.eu`) for a site "
                "other than datadoghq.com.",
            ) from None
        raise IntegrationError(
            f"Datadog refused the DORA figures: HTTP {status} {str(exc.body or '')[:200]}."
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        raise IntegrationError(
            f"Cannot reach Datadog to submit the DORA figures: {type(exc).__name__}.",
            hint="Check `DD_SITE` and the runner's network.",
        ) from None
    except exceptions.OpenApiException as exc:
        raise IntegrationError(
            f"Datadog's answer to the DORA figures was unreadable: {exc}."
        ) from None
    return sorted(points)
