"""Talking to the GitHub fake: the CLI's environment for it, and requests without PyGithub."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.fakes.github import GitHubFake


def fake_github_env(api_url: str, token: str, **extra: str) -> dict[str, str]:
    """``octo/app`` at ``api_url``, no retries, and no pause between requests.

    PyGithub's pacing (``ClientSettings.seconds_between_*``) is for github.com, not for a
    fake: with it every request of a test waits a quarter of a second, every write one.
    """
    return {
        "GITHUB_API_URL": api_url,
        "GITHUB_TOKEN": token,
        "GITHUB_REPOSITORY": "octo/app",
        "RELEASE_ACTIONS_GITHUB_RETRIES": "0",
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_REQUESTS": "0",
        "RELEASE_ACTIONS_GITHUB_SECONDS_BETWEEN_WRITES": "0",
        **extra,
    }


def raw(
    fake: GitHubFake, method: str, path: str, body: Any = None, *, token: str = "t"
) -> tuple[int, Any]:
    """The status and JSON body (None if empty) the fake answers to one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(fake.url + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, json.loads(text) if text else None
