"""A flag's users split by the variation they were served: `on` is the canary track, `off` stable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from release_actions.errors import ReleaseActionsError
from release_actions.metrics.base import Track

VARIATIONS: dict[Track, str] = {Track.CANARY: "on", Track.STABLE: "off"}
"""The value of ``{{ variation }}`` for each track of a flag's guarded rollout."""
GUARD_KEY = "feature_flags.guard.queries"
REQUIRED = ("requests", "errors")


def flag_context(flag: str, track: Track | None) -> dict[str, object]:
    """The guard templates' own variables; ``variation`` stays undefined for the whole service."""
    context: dict[str, object] = {"flag": flag}
    if track is not None:
        context["variation"] = VARIATIONS[track]
    return context


def uses_variation(source: str) -> bool:
    """Whether a template names ``variation``, parsed as the provider's sandbox parses it."""
    from jinja2 import meta
    from jinja2.exceptions import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        names = meta.find_undeclared_variables(ImmutableSandboxedEnvironment().parse(source))
    except TemplateSyntaxError:
        return True  # not this check's to report: the provider's own check names the error
    return "variation" in names


def guard_query_problems(queries: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(policy key, message)`` for each guard entry that cannot split users by variation.

    Each provider's entry is a mapping of query name to template; ``requests`` and
    ``errors`` are required, and every template must use ``{{ variation }}``: one that
    does not reads the same users for `on` and `off`, so a regression could never show.
    """
    from release_actions.metrics.factory import PROVIDERS

    found: list[tuple[str, str]] = []
    for kind, entry in queries.items():
        key = f"{GUARD_KEY}.{kind}"
        if kind not in PROVIDERS or kind == "simulated":
            found.append((key, "is not a metrics provider: use `prometheus` or `datadog`"))
            continue
        if not isinstance(entry, Mapping):
            found.append(
                (
                    key,
                    "must be a mapping of query name to template, with `requests` and `errors`",
                )
            )
            continue
        for name in REQUIRED:
            if not entry.get(name):
                found.append((f"{key}.{name}", "is missing: a flag's guard needs it"))
        for name, source in entry.items():
            if isinstance(source, str) and not uses_variation(source):
                found.append(
                    (
                        f"{key}.{name}",
                        "does not use `{{ variation }}`, so it reads the same users for the "
                        "`on` and `off` variations and could never see a regression",
                    )
                )
    return found


def guard_queries(queries: Mapping[Any, Any], kind: str) -> dict[str, str | None]:
    """The guard's templates for provider ``kind``, checked; an error names the policy key."""
    entry = queries.get(kind)
    if entry is None:
        raise ReleaseActionsError(
            f"`{GUARD_KEY}.{kind}` is not set: a flag's rollout is judged on request metrics "
            "split by the variation each user was served, and only the guard's templates "
            "say how the service labels them.",
            hint=f"Set it in the release policy, for example:\n{example(kind)}",
        )
    problems = guard_query_problems({kind: entry})
    if problems:
        key, message = problems[0]
        raise ReleaseActionsError(
            f"`{key}` {message}.",
            hint=f"Split the query by the served variation, for example:\n{example(kind)}",
        )
    assert isinstance(entry, Mapping)
    return {str(k): (None if v is None else str(v)) for k, v in entry.items()}


def example(kind: str) -> str:
    """The policy lines that split a provider's request metrics by the served variation."""
    if kind == "datadog":
        scope = "{ {{- scope -}} ,variation:{{ variation }}"
        requests = f"sum:triptrip.http.request.count{scope}}}.as_count()"
        errors = f"sum:triptrip.http.request.count{scope},status_class:5xx}}.as_count()"
    else:
        selector = '{ {{- selector -}} ,flag_variation="{{ variation }}"'
        requests = f"sum(increase(http_requests_total{selector}}}[{{{{ interval }}}}]))"
        errors = f'sum(increase(http_requests_total{selector},code=~"5.."}}[{{{{ interval }}}}]))'
        # Without `good`, an empty errors answer (no 5xx yet) cannot be told from no data.
        good = errors.replace('"5.."', '"[1-4].."')
        errors += f"'\n        good: '{good}"
    return (
        "feature_flags:\n  guard:\n    queries:\n"
        f"      {kind}:\n        requests: '{requests}'\n        errors: '{errors}'"
    )
