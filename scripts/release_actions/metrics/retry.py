"""What every metrics provider shares: one retry policy, strict query templates, one reading of answers."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from release_actions.errors import MetricsError, NoDataError, ReleaseActionsError

log = logging.getLogger(__name__)

T = TypeVar("T")

# 408 is a timeout the server noticed; 429 asks us to slow down; 5xx may pass.
RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a provider tries before a query counts as failed.

    Bounded twice, by ``attempts`` and by ``total_seconds`` per ``query()`` call, because
    the canary engine measures on a fixed interval and a measurement that arrives after
    the next one was due is worth less than an honest error. ``sleep``, ``clock`` and
    ``rng`` are injectable so that tests run in milliseconds.
    """

    attempts: int = 4
    total_seconds: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.5
    retry_after_cap: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    rng: Callable[[float, float], float] = field(default=random.uniform, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("`attempts` must be at least 1")
        if self.total_seconds <= 0:
            raise ValueError("`total_seconds` must be positive")

    def deadline(self) -> float:
        """The clock reading after which no new attempt starts."""
        return float(self.clock()) + self.total_seconds

    def remaining(self, deadline: float | None) -> float:
        return self.total_seconds if deadline is None else deadline - float(self.clock())

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with additive jitter, so that many runners do not retry in step."""
        base = min(self.backoff_initial * 2.0 ** (attempt - 1), self.backoff_max)
        return base + (float(self.rng(0.0, self.jitter)) if self.jitter > 0 else 0.0)


class TransientError(MetricsError):
    """Raised inside a provider when a request failed in a way worth retrying.

    ``call_with_retry`` turns it into a plain ``MetricsError`` once the policy gives up,
    so it never reaches the engine.
    """

    def __init__(
        self, detail: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.retry_after = retry_after


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    provider: str,
    query: str,
    deadline: float | None = None,
) -> T:
    """Run ``fn`` until it returns, raises a non-transient error, or the policy gives up."""
    if deadline is None:
        deadline = policy.deadline()
    attempts = 0

    def attempt() -> T:
        nonlocal attempts
        attempts += 1
        return fn()

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), policy.retry_after_cap)
        return policy.backoff(state.attempt_number)

    def stop(state: RetryCallState) -> bool:
        # Give up now rather than sleep past the deadline only to be cut off.
        return (
            state.attempt_number >= policy.attempts
            or policy.clock() + state.upcoming_sleep > deadline
        )

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s: %s; retrying in %.1f s (attempt %d of %d)",
            provider,
            exc,
            state.upcoming_sleep,
            state.attempt_number + 1,
            policy.attempts,
        )

    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        wait=wait,
        stop=stop,
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except TransientError as exc:
        status = f"HTTP {exc.status}" if exc.status else "no HTTP status"
        rate_limited = exc.status == 429
        raise MetricsError(
            f"{provider} did not answer after {attempts} attempt(s) "
            f"(last error: {exc} [{status}]); query `{query}`",
            query=query,
            hint=(
                f"{provider} is rate limiting this key: lower the measurement frequency "
                "or ask for a higher limit."
                if rate_limited
                else f"Check that {provider} is reachable from the runner. A metrics outage "
                "is never read as a healthy canary: the measurement counts as an error."
            ),
        ) from exc


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value, whatever case the server or the client library used for its name."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def retry_after_seconds(
    headers: Mapping[str, str] | None, *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date) or Datadog's ``X-RateLimit-Reset``."""
    value = header(headers, "Retry-After")
    if value is not None:
        value = value.strip()
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(when.timestamp() - now(), 0.0)
    reset = header(headers, "X-RateLimit-Reset")
    if reset is not None:
        try:
            # Datadog documents it as the seconds left until the limit resets.
            return max(float(reset.strip()), 0.0)
        except ValueError:
            return None
    return None


def check_status(
    status: int,
    *,
    provider: str,
    query: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    auth_hint: str,
) -> None:
    """Sort an HTTP status: 2xx passes, 408/429/5xx are transient, any other 4xx is final."""
    if 200 <= status < 300:
        return
    if status in RETRYABLE_STATUSES or 500 <= status < 600:
        raise TransientError(
            detail or f"HTTP {status}",
            status=status,
            retry_after=retry_after_seconds(headers) if status in (429, 503) else None,
        )
    if status in (401, 403):
        raise MetricsError(
            f"{provider} refused the credentials (HTTP {status}: {detail}): check the API key "
            f"or token; query `{query}`",
            hint=auth_hint,
        )
    raise MetricsError(
        f"{provider} rejected the query (HTTP {status}: {detail}); query `{query}`",
        hint="Check the query template in the provider settings; retrying would not help.",
    )


def finite(value: float | None, *, provider: str, what: str, query: str) -> float:
    """``value`` if it is a number, else ``NoDataError``: NaN and Inf are no data, never a zero."""
    if value is None or not math.isfinite(value):
        shown = "no value" if value is None else repr(value)
        raise NoDataError(
            f"{provider} answered {shown} for {what}: the service is probably not "
            f"receiving traffic, or the query matches nothing; query `{query}`",
            hint="Check that the labels or tags in the query match the deployment.",
        )
    return value


def parse_float(text: object, *, provider: str, what: str, query: str) -> float:
    """A number from a provider's answer; text that is no number is a bad answer, not no data."""
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MetricsError(
            f"{provider} answered {text!r} for {what}, which is not a number; query `{query}`"
        ) from None


def no_data(provider: str, what: str, query: str) -> NoDataError:
    return NoDataError(
        f"{provider} returned no series for {what}: the service is probably not receiving "
        f"traffic, or the query matches nothing; query `{query}`",
        hint="Check that the labels or tags in the query match the deployment.",
    )


class QueryTemplates:
    """A provider's named query templates, checked when the provider is built.

    Rendering is strict (jinja2 ``StrictUndefined``), as Flagger renders with
    ``missingkey=error``: a misspelt variable is an error that names it, never an empty
    string that quietly matches nothing. A template set to None is switched off.
    """

    def __init__(
        self,
        provider: str,
        defaults: Mapping[str, str | None],
        overrides: Mapping[str, str | None] | None,
        variables: Iterable[str],
    ) -> None:
        self.provider = provider
        self.variables = frozenset(variables)
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(defaults))
        if unknown:
            raise ReleaseActionsError(
                f"Unknown {provider} query {', '.join(f'`{k}`' for k in unknown)}: "
                f"the queries are {', '.join(f'`{k}`' for k in defaults)}."
            )
        # PromQL and Datadog queries are not HTML: escaping would break their quotes. The
        # policy is input from whoever can push a tag: its templates run sandboxed, so they
        # can format values and never reach Python objects (source §4.3's queries need no more).
        env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self.sources: dict[str, str | None] = {**defaults, **overrides}
        self._compiled: dict[str, Template] = {}
        for name, source in self.sources.items():
            if source is None:
                continue
            try:
                names = meta.find_undeclared_variables(env.parse(source))
                template = env.from_string(source)
            except TemplateSyntaxError as exc:
                raise ReleaseActionsError(
                    f"The {provider} query `{name}` is not a valid template: {exc.message} "
                    f"(line {exc.lineno})."
                ) from None
            typos = sorted(names - self.variables)
            if typos:
                raise ReleaseActionsError(
                    f"The {provider} query `{name}` uses the undefined variable "
                    f"{', '.join(f'`{t}`' for t in typos)}: the variables are "
                    f"{', '.join(f'`{v}`' for v in sorted(self.variables))}.",
                    hint=f"Check the spelling in the `{name}` template.",
                )
            self._compiled[name] = template

    def enabled(self, name: str) -> bool:
        return name in self._compiled

    def check(self) -> None:
        """Render every template once with sample values, as `policy validate` does."""
        sample = dict.fromkeys(self.variables, "sample")
        for name in self._compiled:
            self.render(name, **sample)

    def render(self, name: str, **context: object) -> str:
        """The resolved query; a variable the context lacks (such as ``track`` for the whole deployment) is an error."""
        try:
            return self._compiled[name].render(context).strip()
        except SecurityError as exc:
            raise ReleaseActionsError(
                f"The {self.provider} query `{name}` does something unsafe, which the template "
                f"sandbox refuses: {str(exc).rstrip('.')}.",
                hint="A query template formats the documented variables; it cannot reach "
                "attributes that start with `_` or call methods that change objects.",
            ) from None
        except UndefinedError as exc:
            raise MetricsError(
                f"The {self.provider} query `{name}` cannot be rendered: {exc.message}",
                hint="`track` is undefined when the whole deployment is asked for (the monitor); "
                "use `selector` or `scope`, or guard with `{% if track is defined %}`.",
            ) from None


def positive_seconds(value: float | str | None, name: str) -> float | None:
    """A provider setting in seconds; from ``--provider-setting`` it arrives as text."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise ReleaseActionsError(f"`{name}` must be a positive number of seconds, got {value!r}.")
    return seconds
