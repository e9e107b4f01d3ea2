"""Build a metrics provider by name, importing only the adapter that is asked for."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from release_actions.errors import ReleaseActionsError
from release_actions.metrics.base import MetricsProvider

# kind -> (module, class); modules load lazily so that choosing the simulator never
# imports requests or a cloud SDK.
PROVIDERS: dict[str, tuple[str, str]] = {
    "datadog": ("release_actions.metrics.datadog", "DatadogProvider"),
    "prometheus": ("release_actions.metrics.prometheus", "PrometheusProvider"),
    "simulated": ("release_actions.metrics.simulated", "SimulatedProvider"),
}


def _kinds() -> str:
    return ", ".join(f"`{k}`" for k in sorted(PROVIDERS))


def make_provider(kind: str, **settings: Any) -> MetricsProvider:
    """The provider ``kind`` built from ``settings``; an unknown kind or setting is an error.

    The factory raises instead of guessing, as Argo Rollouts' provider factory does: a
    misspelt provider must not fall back to another one and report its numbers.

    ``prometheus`` takes ``url`` (or ``base_url``), an optional ``session``, and
    ``bearer_token`` or ``headers`` for a session it builds; ``datadog`` takes ``api_key``
    and ``app_key`` (or ``application_key``) and ``site``; every other setting goes to the
    provider's constructor unchanged.
    """
    key = (kind or "").strip().lower()
    if key not in PROVIDERS:
        from release_actions.core.yamlpos import did_you_mean

        near = did_you_mean(key, PROVIDERS)
        raise ReleaseActionsError(
            f"Unknown metrics provider `{kind}`: "
            + (f"{near} " if near else "")
            + f"Use one of {_kinds()}.",
            hint="Set the provider in the policy or the action input `metrics-provider`.",
        )
    settings = {k.replace("-", "_"): v for k, v in settings.items()}
    module_name, class_name = PROVIDERS[key]
    cls = getattr(importlib.import_module(module_name), class_name)
    if key == "prometheus":
        return _build(
            cls, key, _prometheus_settings(settings), also=("url", "bearer_token", "headers")
        )
    if key == "datadog":
        if "application_key" in settings:
            if settings.get("app_key"):
                raise ReleaseActionsError(
                    "Only one of `app_key` or `application_key` can be set for `datadog`."
                )
            settings["app_key"] = settings.pop("application_key")
        return _build(cls, key, {"api_client": None, **settings}, also=("application_key",))
    return _build(cls, key, settings)


def _prometheus_settings(settings: dict[str, Any]) -> dict[str, Any]:
    if "url" in settings:
        if settings.get("base_url"):
            raise ReleaseActionsError(
                "Only one of `url` or `base_url` can be set for `prometheus`."
            )
        settings["base_url"] = settings.pop("url")
    token = settings.pop("bearer_token", None)
    headers = settings.pop("headers", None)
    session = settings.pop("session", None)
    if session is not None and (token or headers):
        raise ReleaseActionsError(
            "Set `bearer_token` and `headers` on the `session` you pass, or leave `session` out."
        )
    if session is None:
        import requests

        session = requests.Session()
        if headers:
            session.headers.update({str(k): str(v) for k, v in dict(headers).items()})
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
    if not settings.get("base_url"):
        raise ReleaseActionsError(
            "The `prometheus` provider needs `url`, such as `http://prometheus.monitoring:9090`."
        )
    return {"session": session, **settings}


def _build(
    cls: Callable[..., Any], kind: str, settings: dict[str, Any], *, also: tuple[str, ...] = ()
) -> MetricsProvider:
    """Call the constructor, turning a wrong setting into an error that lists the right ones."""
    parameters = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not takes_any:
        known = [n for n, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        unknown = sorted(set(settings) - set(known))
        if unknown:
            listed = sorted({*known, *also})
            raise ReleaseActionsError(
                f"Unknown setting {', '.join(f'`{u}`' for u in unknown)} for the `{kind}` "
                f"metrics provider: it takes {', '.join(f'`{k}`' for k in listed)}."
            )
        missing = [
            n
            for n, p in parameters.items()
            if p.default is inspect.Parameter.empty
            and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            and n not in settings
        ]
        if missing:
            raise ReleaseActionsError(
                f"The `{kind}` metrics provider needs {', '.join(f'`{m}`' for m in missing)}."
            )
    provider = cls(**settings)
    if not isinstance(provider, MetricsProvider):
        raise ReleaseActionsError(
            f"`{cls.__name__}` does not implement MetricsProvider: subclass "
            "`release_actions.metrics.base.MetricsProvider` (`name`, `query`, `is_online`)."
        )
    return provider


def template_problems(queries: dict[str, dict[str, str | None]]) -> list[tuple[str, str, str]]:
    """``(provider, query, message)`` for each policy query that does not compile or render.

    Each template is rendered once with sample values in the same sandbox that the provider
    uses, so `policy validate` refuses what a release would refuse, before any release.
    """
    from release_actions.metrics import datadog, prometheus
    from release_actions.metrics.retry import QueryTemplates

    modules = {"prometheus": prometheus, "datadog": datadog}
    found = []
    for kind, overrides in queries.items():
        module = modules[kind]
        for name, source in overrides.items():
            try:
                QueryTemplates(
                    kind, module.DEFAULT_QUERIES, {name: source}, module.VARIABLES
                ).check()
            except ReleaseActionsError as exc:
                found.append((kind, name, exc.message))
    return found


def guard_template_problems(queries: Mapping[Any, Any]) -> list[tuple[tuple[str, ...], str]]:
    """``(policy key path, message)`` for each `feature_flags.guard.queries` template refused.

    A template must split the users by ``{{ variation }}`` (``metrics.variation``), and it
    is rendered once with sample values, ``flag`` and ``variation`` included, in the same
    sandbox as ``template_problems``.
    """
    from release_actions.metrics import datadog, prometheus
    from release_actions.metrics.retry import QueryTemplates
    from release_actions.metrics.variation import guard_query_problems

    found = [(tuple(key.split(".")), message) for key, message in guard_query_problems(queries)]
    modules = {"prometheus": prometheus, "datadog": datadog}
    for kind, entry in queries.items():
        if kind not in modules or not isinstance(entry, Mapping):
            continue  # reported above
        module = modules[kind]
        for name, source in entry.items():
            try:
                QueryTemplates(
                    kind,
                    module.DEFAULT_QUERIES,
                    {name: source},
                    module.VARIABLES + module.FLAG_VARIABLES,
                ).check()
            except ReleaseActionsError as exc:
                found.append((("feature_flags", "guard", "queries", kind, str(name)), exc.message))
    return found
