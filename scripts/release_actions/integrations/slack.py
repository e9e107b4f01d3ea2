"""Slack delivery through slack-sdk: an incoming webhook, or a bot token and chat.postMessage."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from release_actions.errors import require

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class SlackDelivery:
    """Slack's answer to one message; ``error`` is Slack's own code (``channel_not_found``)."""

    ok: bool
    via: str
    channel: str | None = None
    ts: str | None = None
    error: str | None = None
    status: int | None = None


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            text = value[0] if isinstance(value, list) else value
            try:
                return max(float(text), 0.0)
            except (TypeError, ValueError):
                return None
    return None


class SlackNotifier:
    """Sends one text message, with bounded patience: a notification must never hold a release.

    A 429 is waited out only when its ``Retry-After`` is at most ``max_wait`` seconds, a 5xx
    or a dropped connection is retried ``retries`` times with a short backoff; anything
    else comes back as an unsuccessful ``SlackDelivery``, never as an exception. With both a
    webhook and a bot token, the bot token wins, because it can address a channel per event.
    """

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        bot_token: str | None = None,
        api_url: str = DEFAULT_API_URL,
        timeout: int = 10,
        retries: int = 2,
        max_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not webhook_url and not bot_token:
            raise ValueError("SlackNotifier needs `webhook_url` or `bot_token`")
        self.webhook_url = webhook_url
        self.bot_token = bot_token
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.timeout = timeout
        self.retries = retries
        self.max_wait = max_wait
        self.sleep = sleep

    @property
    def via(self) -> str:
        return "chat.postMessage" if self.bot_token else "webhook"

    def send(self, text: str, *, channel: str | None = None) -> SlackDelivery:
        if self.bot_token:
            if not channel:
                return SlackDelivery(False, self.via, error="no channel for chat.postMessage")
            return self._post_message(text, channel)
        return self._webhook(text)

    def _webhook(self, text: str) -> SlackDelivery:
        webhook: Any = require("slack_sdk.webhook", "slack")
        client = webhook.WebhookClient(
            url=self.webhook_url, timeout=self.timeout, retry_handlers=self._handlers()
        )
        try:
            response = client.send(text=text, unfurl_links=False, unfurl_media=False)
        except Exception as exc:  # urllib's errors after the retries: no answer at all
            return SlackDelivery(False, "webhook", error=_no_answer(exc))
        ok = 200 <= response.status_code < 300
        body = (response.body or "").strip()
        return SlackDelivery(
            ok, "webhook", error=None if ok else body or "no body", status=response.status_code
        )

    def _post_message(self, text: str, channel: str) -> SlackDelivery:
        web: Any = require("slack_sdk", "slack")
        errors: Any = require("slack_sdk.errors", "slack")
        client = web.WebClient(
            token=self.bot_token,
            base_url=self.api_url,
            timeout=self.timeout,
            retry_handlers=self._handlers(),
        )
        try:
            response = client.chat_postMessage(
                channel=channel, text=text, unfurl_links=False, unfurl_media=False
            )
        except errors.SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            return SlackDelivery(
                False,
                "chat.postMessage",
                channel=channel,
                error=str(data.get("error") or f"HTTP {exc.response.status_code}"),
                status=exc.response.status_code,
            )
        except Exception as exc:
            return SlackDelivery(False, "chat.postMessage", channel=channel, error=_no_answer(exc))
        return SlackDelivery(
            True,
            "chat.postMessage",
            channel=str(response.get("channel") or channel),
            ts=response.get("ts"),
            status=response.status_code,
        )

    def _handlers(self) -> list[Any]:
        """slack-sdk retry handlers with this notifier's bounds and (injectable) sleep."""
        http_retry: Any = require("slack_sdk.http_retry", "slack")
        notifier = self

        class Bounded(http_retry.RetryHandler):  # type: ignore[misc]
            def _can_retry(
                self, *, state: Any, request: Any, response: Any = None, error: Any = None
            ) -> bool:
                if response is None:
                    return error is not None  # no answer: a dropped connection, a timeout
                if response.status_code == 429:
                    wait = _retry_after(response.headers)
                    return wait is None or wait <= notifier.max_wait
                return int(response.status_code) >= 500

            def prepare_for_next_attempt(
                self, *, state: Any, request: Any, response: Any = None, error: Any = None
            ) -> None:
                wait = None
                if response is not None and response.status_code == 429:
                    wait = _retry_after(response.headers)
                if wait is None:
                    wait = 0.5 * 2**state.current_attempt
                log.warning(
                    "slack: %s; retrying in %.1f s",
                    f"HTTP {response.status_code}" if response is not None else "no answer",
                    wait,
                )
                notifier.sleep(wait)
                state.next_attempt_requested = True
                state.increment_current_attempt()

        return [Bounded(max_retry_count=self.retries)]


def _no_answer(exc: BaseException) -> str:
    """The failure without its URL: a webhook's URL is the secret."""
    reason = getattr(exc, "reason", None)
    return f"no answer from Slack ({type(exc).__name__}: {reason or 'connection failed'})"
