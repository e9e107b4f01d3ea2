"""A throwaway PostgreSQL from the binaries on the machine: initdb, pg_ctl start, gone afterwards."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import quote

from release_actions.db.errors import DatabaseError
from release_actions.db.schema import PG_BIN_GLOBS, find_binary

# initdb refuses to run as root; as root the server runs as this user, in a folder it owns.
SERVER_USER = "postgres"
DEFAULT_USER = "release_actions"

# Settings for a server whose data is thrown away: nothing waits for the disk.
FAST_SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")

_START_ATTEMPTS = 3


class EphemeralPostgresError(DatabaseError):
    """Raised when a throwaway PostgreSQL cannot be set up, started or reached."""


class PostgresUnavailableError(EphemeralPostgresError):
    """Raised when this machine cannot run one: no initdb/pg_ctl, or root with no `postgres` user."""


@dataclass(frozen=True)
class Binaries:
    """The server binaries of one PostgreSQL installation."""

    bindir: Path
    initdb: str
    pg_ctl: str

    def tool(self, name: str) -> str | None:
        """Another binary of the same installation (pg_dump of the server's own version)."""
        path = self.bindir / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def find_binaries(env: Mapping[str, str] | None = None) -> Binaries:
    """initdb and pg_ctl: on PATH, else the newest under /usr/lib/postgresql/*/bin and the like."""
    initdb = find_binary("initdb", env)
    if initdb is not None:
        # /usr/local/bin/initdb may be a symlink; pg_ctl and postgres live beside the target.
        bindir = Path(initdb).resolve().parent
        beside = bindir / "pg_ctl"
        pg_ctl = str(beside) if beside.is_file() else find_binary("pg_ctl", env)
        if pg_ctl is not None:
            return Binaries(bindir, initdb, pg_ctl)
    searched = ", ".join(PG_BIN_GLOBS)
    raise PostgresUnavailableError(
        f"No PostgreSQL server binaries (`initdb`, `pg_ctl`) on PATH nor under {searched}, "
        "so no throwaway server can be started.",
        hint="Install the server (`sudo apt-get install postgresql`; GitHub's ubuntu runners "
        "have it), or pass `--database-url` with a server to use instead of `--ephemeral`.",
    )


@dataclass
class EphemeralPostgres:
    """A running throwaway server; `url()` connects as its trusted superuser."""

    base: Path
    port: int
    user: str
    tcp: bool
    binaries: Binaries
    as_user: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    @property
    def pg_ctl(self) -> str:
        return self.binaries.pg_ctl

    def url(self, dbname: str = "postgres", *, password: str | None = None) -> str:
        """A URL for `dbname`; a password is accepted (trust auth ignores it) for masking tests."""
        auth = quote(self.user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        name = quote(dbname, safe="")
        if self.tcp:
            return f"postgresql://{auth}@127.0.0.1:{self.port}/{name}"
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{auth}@/{name}?host={host}&port={self.port}"

    def describe(self) -> str:
        where = f"127.0.0.1:{self.port}" if self.tcp else f"{self.socket_dir} (socket only)"
        return f"PostgreSQL {self.version()} on {where}"

    def version(self) -> str:
        try:
            return (self.data_dir / "PG_VERSION").read_text().strip()
        except OSError:
            return "?"

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop at once (the data is thrown away); kill the postmaster if pg_ctl cannot."""
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            args = [*self.as_user, self.pg_ctl, "-D", str(self.data_dir)]
            proc = _run([*args, "-m", "immediate", "-w", "-t", "30", "stop"], timeout=60)
            if proc.returncode == 0:
                return
        pid = _postmaster_pid(self.data_dir)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None


def _clean_env() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST, PGOPTIONS... of the runner must not steer initdb or pg_ctl.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _run(args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, check=False, timeout=timeout, env=_clean_env()
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as(env: Mapping[str, str] | None) -> tuple[list[str], tuple[int, int] | None]:
    """The command prefix that runs the server as a non-root user, and that user's ids."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return [], None
    import pwd

    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailableError(
            f"Running as root, and initdb refuses root, but there is no `{SERVER_USER}` user "
            "to run the throwaway server as.",
            hint="Install PostgreSQL from the distribution (`apt-get install postgresql` "
            f"creates the `{SERVER_USER}` user), run as a non-root user, or pass "
            "`--database-url` instead of `--ephemeral`.",
        ) from None
    runuser = find_binary("runuser", env) or "/usr/sbin/runuser"
    return [runuser, "-u", SERVER_USER, "--"], (entry.pw_uid, entry.pw_gid)


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM (a cancelled job on a self-hosted runner) unwinds, so the server is still removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def ephemeral_server(
    *,
    user: str = DEFAULT_USER,
    tcp: bool = False,
    env: Mapping[str, str] | None = None,
    base_dir: str | Path | None = None,
    say: Callable[[str], None] = lambda _text: None,
) -> Iterator[EphemeralPostgres]:
    """Start a PostgreSQL of its own in a new temporary folder; stop and remove it afterwards.

    The superuser `user` connects without a password (trust) through a Unix socket in a
    folder only the server's user can enter. `tcp=True` also listens on 127.0.0.1 at a free
    port, where any local process could connect as that user: leave it off on a shared
    machine unless a client needs TCP.
    """
    binaries = find_binaries(env)
    as_user, ids = _run_as(env)
    base = Path(tempfile.mkdtemp(prefix="ra-pg-", dir=base_dir))
    server: EphemeralPostgres | None = None
    try:
        with _terminate_as_exit():
            (base / "socket").mkdir(mode=0o700)
            if ids is not None:
                for path in (base, base / "socket"):
                    os.chown(path, *ids)
                if _run([*as_user, "test", "-w", str(base)], timeout=30).returncode != 0:
                    raise EphemeralPostgresError(
                        f"The `{SERVER_USER}` user cannot write to {base}.",
                        hint=f"Point TMPDIR at a folder `{SERVER_USER}` can reach, such as /tmp.",
                    )
            server = _init(binaries, base, user, tcp, as_user)
            started = time.monotonic()
            _start(server)
            say(f"Started a throwaway {server.describe()} in {time.monotonic() - started:.1f} s")
            yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def ephemeral_database(
    *,
    user: str = DEFAULT_USER,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = lambda _text: None,
) -> Iterator[str]:
    """The URL of the `postgres` database of a throwaway server reached by its socket only."""
    with ephemeral_server(user=user, env=env, say=say) as server:
        yield server.url()


def _init(
    binaries: Binaries, base: Path, user: str, tcp: bool, as_user: list[str]
) -> EphemeralPostgres:
    server = EphemeralPostgres(base, _free_port(), user, tcp, binaries, as_user)
    args = [*as_user, binaries.initdb, "-D", str(server.data_dir), "-U", user, "--auth=trust"]
    proc = _run([*args, "--no-sync", "-E", "UTF8", "--locale=C"], timeout=180)
    if proc.returncode != 0:
        raise EphemeralPostgresError(
            f"initdb ({binaries.initdb}) failed: {(proc.stderr or proc.stdout).strip()}",
            hint="Check that the PostgreSQL server package is complete and the temporary "
            "folder is writable.",
        )
    return server


def _start(server: EphemeralPostgres) -> None:
    last = ""
    for _attempt in range(_START_ATTEMPTS):
        listen = "127.0.0.1" if server.tcp else "''"
        options = [
            f"-p {server.port}",
            f"-k {shlex.quote(str(server.socket_dir))}",
            f"-c listen_addresses={listen}",
            "-c unix_socket_permissions=0700",
            *(f"-c {s}" for s in FAST_SETTINGS),
        ]
        # pg_ctl hands `-o` to a shell, hence the quoting above.
        args = [*server.as_user, server.pg_ctl, "-D", str(server.data_dir), "-l"]
        args += [str(server.log_file), "-w", "-t", "60", "-o", " ".join(options), "start"]
        proc = _run(args, timeout=90)
        if proc.returncode == 0:
            return
        last = server.log_tail() or (proc.stderr or proc.stdout).strip()
        if "could not bind" not in last and "already in use" not in last:
            break
        # Another process took the free port between the check and the start.
        server.port = _free_port()
    raise EphemeralPostgresError(
        f"The throwaway PostgreSQL did not start (pg_ctl {server.pg_ctl}):\n{last}",
        hint="The server log above says why; pass `--database-url` to use another server.",
    )
