"""Fixtures shared by the integration tests: the fakes a CLI run talks to, kubectl, PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import backend_missing
from tests.fakes.github import GitHubFake
from tests.fakes.slack import SlackFake
from tests.integration.deploys import Cli, Stack, github_env
from tests.integration.postgres_server import (
    PostgresServer,
    fresh_database,
    shared_postgres_server,
)


@pytest.fixture
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.close()


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake() as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def cli(tmp_path: Path, github: GitHubFake, slack: SlackFake) -> Cli:
    """The CLI as a workflow run with GitHub's and Slack's fakes."""
    return Cli(tmp_path, {**github_env(github), "SLACK_WEBHOOK_URL": slack.webhook_url})


@pytest.fixture(scope="module")
def kubectl_binary() -> str:
    path = shutil.which("kubectl")
    if path is None:
        backend_missing("kubectl")
    return str(path)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with shared_postgres_server() as server:
        yield server


@pytest.fixture
def database(pg_server: PostgresServer) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        yield url
