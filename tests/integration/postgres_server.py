"""A real PostgreSQL server for tests: the package's throwaway server, listening on 127.0.0.1.

release_actions.db.ephemeral does the work (initdb into a temporary folder, pg_ctl start,
stop and remove at the end; as root, as the `postgres` user via runuser), so `db verify
--ephemeral` and these tests run the same code. Missing binaries skip the tests on a laptop
but fail them under CI=true: a CI run that silently skipped its database tests would prove
nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from release_actions.db.ephemeral import (
    EphemeralPostgres,
    EphemeralPostgresError,
    PostgresUnavailableError,
    ephemeral_server,
)

DB_USER = "app"

# `url(dbname, password=...)`, `port`, `data_dir`, `socket_dir`, `pg_ctl`, `stop()`.
PostgresServer = EphemeralPostgres


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is needed under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A server of its own; TCP on, since the tests (and act's jobs) connect to 127.0.0.1."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(ephemeral_server(user=DB_USER, tcp=True))
        except PostgresUnavailableError as exc:
            _missing(f"{exc.message} ({exc.hint})")
            raise
        except EphemeralPostgresError as exc:
            pytest.fail(f"{exc.message}\n{exc.hint or ''}", pytrace=False)
        yield server


class _Shared:
    """The session's one server, started by the first user and stopped by the last."""

    stack: contextlib.ExitStack | None = None
    server: PostgresServer | None = None
    users = 0


@contextlib.contextmanager
def shared_postgres_server() -> Iterator[PostgresServer]:
    """One server for every test module of the session, however many ask for it."""
    if _Shared.server is None:
        stack = contextlib.ExitStack()
        _Shared.server = stack.enter_context(postgres_server())
        _Shared.stack = stack
    _Shared.users += 1
    try:
        yield _Shared.server
    finally:
        _Shared.users -= 1
        if _Shared.users == 0 and _Shared.stack is not None:
            stack, _Shared.stack, _Shared.server = _Shared.stack, None, None
            stack.close()


def admin_execute(server: PostgresServer, sql: str) -> None:
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(sql.encode())


@contextlib.contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """A new, empty database for one test; its URL carries a password that must never print."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin_execute(server, f'CREATE DATABASE "{name}"')
    try:
        yield server.url(name, password="s3cret-pw")
    finally:
        admin_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"


def migration_tree(dest: Path, *cases: str) -> Path:
    """A Prisma migrations folder: the base history plus the named cases' migrations."""
    root = dest / "prisma" / "migrations"
    shutil.copytree(FIXTURES / "prisma" / "base", root)
    for case in cases:
        for migration in (FIXTURES / "cases" / case).iterdir():
            shutil.copytree(migration, root / migration.name)
    return root
