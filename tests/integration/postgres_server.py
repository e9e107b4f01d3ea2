"""A real PostgreSQL server for tests: initdb into a temporary folder, pg_ctl start, stop at the end.

initdb refuses to run as root, so under root the server runs as the `postgres` user
(runuser), in a folder that user owns. Binaries are found on PATH or under
/usr/lib/postgresql/<major>/bin, where Debian's `apt-get install postgresql` puts them.
Missing binaries skip the tests on a laptop but fail them under CI=true: a CI run that
silently skipped its database tests would prove nothing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "postgres"
DB_USER = "app"


def find_pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    data_dir: Path
    socket_dir: Path
    port: int
    pg_ctl: str
    as_user: list[str]

    def url(self, dbname: str = "postgres", *, password: str | None = None) -> str:
        auth = f"{DB_USER}:{password}" if password else DB_USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
            timeout=60,
        )


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is needed under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    initdb, pg_ctl = find_pg_binary("initdb"), find_pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        _missing(
            "initdb/pg_ctl not found on PATH nor in /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql)"
        )
    assert initdb and pg_ctl
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="ra-pg-"))
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            _missing(f"running as root and there is no `{SERVER_USER}` user for initdb")
            raise
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        as_user = [runuser, "-u", SERVER_USER, "--"]
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data, sockets = base / "data", base / "socket"
    subprocess.run([*as_user, "mkdir", "-p", str(sockets)], check=True)
    subprocess.run(
        [
            *as_user,
            initdb,
            "-D",
            str(data),
            "-U",
            DB_USER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    options += " -c full_page_writes=off -c synchronous_commit=off"
    start = subprocess.run(
        [
            *as_user,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    server = PostgresServer(data, sockets, port, pg_ctl, as_user)
    try:
        if start.returncode != 0:
            log = (
                (base / "server.log").read_text(errors="replace")
                if (base / "server.log").exists()
                else ""
            )
            pytest.fail(f"pg_ctl start failed: {start.stderr}\n{log}", pytrace=False)
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


_shared: dict[str, object] = {"users": 0}


@contextlib.contextmanager
def shared_postgres_server() -> Iterator[PostgresServer]:
    """One server for every test module of the session, however many ask for it."""
    if "server" not in _shared:
        context = postgres_server()
        _shared["server"] = context.__enter__()
        _shared["context"] = context
    _shared["users"] = int(str(_shared["users"])) + 1
    try:
        server = _shared["server"]
        assert isinstance(server, PostgresServer)
        yield server
    finally:
        _shared["users"] = int(str(_shared["users"])) - 1
        if _shared["users"] == 0:
            context = _shared.pop("context")
            _shared.pop("server")
            context.__exit__(None, None, None)  # type: ignore[attr-defined]


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
