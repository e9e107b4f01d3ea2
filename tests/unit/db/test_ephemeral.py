"""The throwaway PostgreSQL of `db verify --ephemeral`: found, started, private, always removed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from release_actions.db import schema
from release_actions.db.connect import parts
from release_actions.db.ephemeral import (
    Binaries,
    EphemeralPostgres,
    PostgresUnavailableError,
    ephemeral_database,
    ephemeral_server,
    find_binaries,
)
from tests.conftest import RunCli, backend_missing

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "migrations"


@pytest.fixture
def no_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without PostgreSQL: an empty PATH and no install folders to search."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(schema, "PG_BIN_GLOBS", ())


@pytest.fixture
def binaries() -> Binaries:
    try:
        return find_binaries()
    except PostgresUnavailableError:
        backend_missing("PostgreSQL server binaries (apt-get install postgresql)")
        raise


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- finding the binaries ------------------------------------------------------------------


def test_no_binaries_says_to_install_postgresql_or_pass_a_url(no_postgres: None) -> None:
    with pytest.raises(PostgresUnavailableError) as info:
        find_binaries()
    assert "`initdb`" in info.value.message and "`pg_ctl`" in info.value.message
    assert "apt-get install postgresql" in (info.value.hint or "")
    assert "`--database-url`" in (info.value.hint or "")


def test_a_symlinked_initdb_finds_pg_ctl_beside_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_postgres: None
) -> None:
    real = tmp_path / "usr" / "lib" / "postgresql" / "15" / "bin"
    _executable(real / "initdb")
    _executable(real / "pg_ctl")
    _executable(real / "pg_dump")
    links = tmp_path / "local-bin"
    links.mkdir()
    (links / "initdb").symlink_to(real / "initdb")
    monkeypatch.setenv("PATH", str(links))
    found = find_binaries()
    assert found.bindir == real.resolve()
    assert found.pg_ctl == str(real.resolve() / "pg_ctl")
    assert found.tool("pg_dump") == str(real.resolve() / "pg_dump")
    assert found.tool("psql") is None


def test_the_install_folders_are_searched_when_path_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_postgres: None
) -> None:
    for major in ("14", "16"):
        _executable(tmp_path / "pg" / major / "bin" / "initdb")
        _executable(tmp_path / "pg" / major / "bin" / "pg_ctl")
    monkeypatch.setattr(schema, "PG_BIN_GLOBS", (str(tmp_path / "pg" / "*" / "bin"),))
    assert find_binaries().bindir == tmp_path / "pg" / "16" / "bin"  # the newest


def test_root_without_a_postgres_user_is_refused_with_a_way_out(
    monkeypatch: pytest.MonkeyPatch, binaries: Binaries
) -> None:
    import pwd

    def no_such_user(name: str) -> pwd.struct_passwd:
        raise KeyError(name)

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(pwd, "getpwnam", no_such_user)
    with pytest.raises(PostgresUnavailableError) as info, ephemeral_server():
        pass
    assert "no `postgres` user" in info.value.message
    assert "`--database-url`" in (info.value.hint or "")


# -- URLs ----------------------------------------------------------------------------------


def _server(tcp: bool) -> EphemeralPostgres:
    bins = Binaries(Path("/x"), "/x/initdb", "/x/pg_ctl")
    return EphemeralPostgres(Path("/tmp/ra-pg-abc"), 54321, "release_actions", tcp, bins)


def test_the_socket_url_names_the_private_folder_and_port() -> None:
    p = parts(_server(tcp=False).url("scratch db"))
    assert p == {
        "host": "/tmp/ra-pg-abc/socket",
        "port": "54321",
        "user": "release_actions",
        "dbname": "scratch db",
    }


def test_the_tcp_url_carries_a_quoted_password() -> None:
    url = _server(tcp=True).url("app", password="p@ss:w/rd")
    assert url.startswith("postgresql://release_actions:")
    assert parts(url)["password"] == "p@ss:w/rd"
    assert parts(url)["host"] == "127.0.0.1"


# -- a real server -------------------------------------------------------------------------


@pytest.mark.integration
def test_the_server_is_fast_private_and_removed_afterwards(binaries: Binaries) -> None:
    said: list[str] = []
    with ephemeral_server(say=said.append) as server:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_user, current_setting('listen_addresses'), "
                "current_setting('fsync'), rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
        assert row == ("release_actions", "", "off", True)  # socket only, superuser
        assert (server.socket_dir.stat().st_mode & 0o777) == 0o700
        pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        base = server.base
    assert said and said[0].startswith("Started a throwaway PostgreSQL")
    assert not base.exists()
    assert not _alive(pid)


@pytest.mark.integration
def test_an_error_inside_still_stops_and_removes_it(binaries: Binaries) -> None:
    hosts: list[str] = []

    def use_then_fail() -> None:
        with ephemeral_database() as url:
            hosts.append(parts(url)["host"])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        use_then_fail()
    assert hosts and not Path(hosts[0]).exists()


@pytest.mark.integration
def test_sigterm_stops_and_removes_it(binaries: Binaries, tmp_path: Path) -> None:
    """A cancelled job on a self-hosted runner must not leave a postgres behind."""
    script = textwrap.dedent(
        """
        import json, sys, time
        from release_actions.db.ephemeral import ephemeral_server
        with ephemeral_server() as server:
            pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
            print(json.dumps({"base": str(server.base), "pid": pid}), flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert proc.stdout is not None
    started = json.loads(proc.stdout.readline())
    assert _alive(started["pid"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while _alive(started["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(started["pid"])
    assert not Path(started["base"]).exists()


# -- db verify --ephemeral -----------------------------------------------------------------


def _tree(tmp_path: Path, *cases: str) -> Path:
    root = tmp_path / "prisma" / "migrations"
    shutil.copytree(FIXTURES / "prisma" / "base", root)
    for case in cases:
        for m in (FIXTURES / "cases" / case).iterdir():
            shutil.copytree(m, root / m.name)
    return root


def test_ephemeral_and_a_database_url_exclude_each_other(run_cli: RunCli, tmp_path: Path) -> None:
    root = _tree(tmp_path)
    result = run_cli(
        "db", "verify", "--dir", str(root), "--ephemeral",
        "--database-url", "postgresql://u@127.0.0.1:9/x",
    )  # fmt: skip
    assert result.code == 2
    assert "Only one of `--database-url` or `--ephemeral` can be set." in result.stdout


def test_verify_without_a_database_offers_ephemeral(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("db", "verify", "--dir", str(_tree(tmp_path)))
    assert result.code == 2
    assert "`DATABASE_URL`" in result.stdout
    assert "`--ephemeral`" in result.stderr


def test_verify_ephemeral_without_postgresql_says_what_to_install(
    run_cli: RunCli, tmp_path: Path, no_postgres: None
) -> None:
    result = run_cli("db", "verify", "--dir", str(_tree(tmp_path)), "--ephemeral")
    assert result.code == 2
    assert "No PostgreSQL server binaries" in result.stdout
    assert "apt-get install postgresql" in result.stderr
    assert "`--database-url`" in result.stderr


@pytest.mark.integration
def test_verify_ephemeral_round_trips_and_leaves_nothing(
    run_cli: RunCli, tmp_path: Path, binaries: Binaries
) -> None:
    # DATABASE_URL is set job-wide in some workflows; --ephemeral must not touch it.
    env = {"DATABASE_URL": "postgresql://u:never-used@127.0.0.1:9/x"}
    result = run_cli("db", "verify", "--dir", str(_tree(tmp_path)), "--ephemeral", env=env)
    assert result.code == 0, result.stdout + result.stderr
    assert len(json.loads(result.outputs["checked"])) == 5
    assert result.outputs["ok"] == "true"
    assert "never-used" not in result.stdout + result.stderr
    m = re.search(
        r"Started a throwaway PostgreSQL \d+ on (\S+)/socket \(socket only\)", result.stdout
    )
    assert m, result.stdout
    assert not Path(m[1]).exists()


@pytest.mark.integration
def test_verify_ephemeral_fails_a_leaky_down_script(
    run_cli: RunCli, tmp_path: Path, binaries: Binaries
) -> None:
    root = _tree(tmp_path, "leaky_down")
    result = run_cli(
        "db", "verify", "--dir", str(root), "--ephemeral", "--new", "20260301000000_add_profile"
    )
    assert result.code == 1
    assert "does not restore the schema" in result.stdout
    assert result.outputs["ok"] == "false"
