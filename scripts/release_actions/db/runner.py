"""The built-in migration runner on psycopg, bookkeeping in Prisma's `_prisma_migrations` table."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

from release_actions.db.connect import connect, psycopg, quote_ident
from release_actions.db.errors import (
    ChecksumMismatchError,
    MigrationError,
    MigrationLockError,
    MigrationSqlError,
)
from release_actions.db.layout import DEFAULT_TABLE, Migration
from release_actions.db.sql import Script, Statement, parse_file

# Prisma Migrate takes `pg_advisory_lock(72707369)`; taking the same key means this runner
# and `prisma migrate deploy` never migrate one database at the same time either.
LOCK_KEY = 72707369

State = Literal["applied", "pending", "failed", "modified", "missing"]


@dataclass(frozen=True)
class Row:
    """One row of `_prisma_migrations`."""

    id: str
    checksum: str
    finished_at: datetime | None
    migration_name: str
    logs: str | None
    rolled_back_at: datetime | None
    started_at: datetime
    applied_steps_count: int


@dataclass(frozen=True)
class Entry:
    """Where one migration stands: its file (if present here) and its latest row (if any)."""

    name: str
    state: State
    migration: Migration | None
    row: Row | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "applied_at": self.row.finished_at.isoformat()
            if self.row and self.row.finished_at and self.state in ("applied", "modified")
            else None,
        }


def plan(migrations: Sequence[Migration], rows: Sequence[Row]) -> list[Entry]:
    """Each migration's state, from the files and the bookkeeping rows (no database needed)."""
    latest: dict[str, Row] = {}
    for r in sorted(rows, key=lambda r: (r.started_at, r.id)):
        latest[r.migration_name] = r
    entries = []
    for m in migrations:
        row = latest.get(m.name)
        if row is None or row.rolled_back_at is not None:
            entries.append(Entry(m.name, "pending", m, row))
        elif row.finished_at is None:
            entries.append(Entry(m.name, "failed", m, row))
        elif row.checksum != m.checksum:
            entries.append(Entry(m.name, "modified", m, row))
        else:
            entries.append(Entry(m.name, "applied", m, row))
    local = {m.name for m in migrations}
    for name, row in latest.items():
        if name not in local and row.rolled_back_at is None and row.finished_at is not None:
            entries.append(Entry(name, "missing", None, row))
    return entries


def _error_text(exc: Exception) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return str(primary or exc).strip().splitlines()[0] if str(primary or exc).strip() else repr(exc)


def _execute(conn: Any, script: Script, stmt: Statement) -> None:
    pg = psycopg()
    try:
        conn.execute(stmt.text.encode("utf-8"))
    except pg.Error as exc:
        position = getattr(getattr(exc, "diag", None), "statement_position", None)
        line = stmt.line_at(int(position)) if position else stmt.line
        raise MigrationSqlError(
            f"{script.path.name} failed at line {line}: {_error_text(exc)}",
            hint="The statement was sent as written; fix the SQL (try it on a scratch "
            "database with `release-actions db verify`).",
            file=str(script.path),
            line=line,
        ) from None


def apply_script(
    conn: Any,
    script: Script,
    *,
    inside: Callable[[Any, int], None] | None = None,
    step: Callable[[Any, int], None] | None = None,
) -> bool:
    """Run a script; True if it ran in one transaction (with `inside` run in it, last).

    `step` is called after each statement when it runs outside a transaction.
    """
    if not script.needs_no_transaction and not script.manages_transactions:
        with conn.transaction():
            for stmt in script.statements:
                _execute(conn, script, stmt)
            if inside is not None:
                inside(conn, len(script.statements))
        return True
    for i, stmt in enumerate(script.statements, start=1):
        _execute(conn, script, stmt)
        if step is not None:
            step(conn, i)
    if inside is not None:
        inside(conn, len(script.statements))
    return False


class Runner:
    """Deploy, status and rollback against one database, under the migration lock.

    Each migration runs in one transaction with its bookkeeping row, so it is applied and
    recorded together or not at all. PostgreSQL refuses some statements inside a
    transaction (CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM, ...); a
    migration holding one, or managing its own BEGIN/COMMIT, runs statement by statement
    instead. If it fails part way it stays recorded as failed, as a failed `prisma migrate
    deploy` does, and deploys stop until `db resolve` says how the repair ended.
    """

    def __init__(
        self,
        url: str,
        *,
        table: str = DEFAULT_TABLE,
        lock_timeout: float = 60.0,
        say: Callable[[str], None] = lambda _text: None,
    ) -> None:
        self.url = url
        self.table = table
        self.lock_timeout = lock_timeout
        self.say = say
        self._conn: Any = None
        self._locked = False

    # -- connection and lock -----------------------------------------------------------

    def __enter__(self) -> Runner:
        self._conn = connect(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            try:
                if self._locked:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            finally:
                self._conn.close()
                self._conn = None
                self._locked = False

    @property
    def conn(self) -> Any:
        if self._conn is None:
            raise RuntimeError("Runner used outside `with`")
        return self._conn

    def lock(self) -> None:
        """Take the advisory lock, waiting up to the lock timeout for another run to finish."""
        deadline = time.monotonic() + self.lock_timeout
        told = False
        while True:
            got = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
            if got:
                self._locked = True
                return
            if time.monotonic() >= deadline:
                raise MigrationLockError(
                    f"Another migration run holds the lock (pg_advisory_lock({LOCK_KEY})) "
                    f"and did not finish within {self.lock_timeout:g} s.",
                    hint="Wait for the other deploy (or `prisma migrate`) to end, or raise "
                    f"`--lock-timeout`; the `pg_locks` view (advisory, objid {LOCK_KEY}) "
                    "shows who holds it.",
                )
            if not told:
                self.say("Another migration run holds the lock; waiting for it to finish.")
                told = True
            time.sleep(0.1)

    # -- bookkeeping -------------------------------------------------------------------

    def _sql(self, template: str) -> Any:
        """A statement with the bookkeeping table's name quoted in as `{table}`."""
        sql = psycopg().sql
        return sql.SQL(template).format(table=sql.Identifier(self.table))

    def _table_exists(self) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (quote_ident(self.table),))
        return bool(row.fetchone()[0])

    def ensure_table(self) -> None:
        # Prisma's own DDL, so `prisma migrate` reads what this runner wrote and back.
        self.conn.execute(
            self._sql(
                """CREATE TABLE IF NOT EXISTS {table} (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)"""
            )
        )

    def rows(self) -> list[Row]:
        if not self._table_exists():
            return []
        cur = self.conn.execute(
            self._sql(
                "SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, "
                "started_at, applied_steps_count FROM {table} ORDER BY started_at, id"
            )
        )
        return [Row(*r) for r in cur.fetchall()]

    def status(self, migrations: Sequence[Migration]) -> list[Entry]:
        return plan(migrations, self.rows())

    # -- deploy --------------------------------------------------------------------------

    def deploy(self, migrations: Sequence[Migration], *, dry_run: bool = False) -> list[str]:
        """Apply every pending migration in order; the names applied, in order."""
        self.lock()
        entries = self.status(migrations)
        _refuse_broken(entries)
        pending = [e.migration for e in entries if e.state == "pending" and e.migration]
        for entry in entries:
            if entry.state == "missing":
                self.say(
                    f"warning: `{entry.name}` is applied but its files are not here "
                    "(an older checkout?); it is left as it is."
                )
        # Parse everything first: SQL that does not parse stops the deploy before it
        # touches the database.
        scripts = [(m, parse_file(m.up)) for m in pending]
        if dry_run or not scripts:
            return [m.name for m, _ in scripts]
        self.ensure_table()
        applied = []
        for migration, script in scripts:
            self.say(f"Applying {migration.name}")
            self._apply(migration, script)
            applied.append(migration.name)
        return applied

    def _apply(self, migration: Migration, script: Script) -> None:
        row_id = str(uuid.uuid4())
        insert = self._sql(
            "INSERT INTO {table} (id, checksum, migration_name, started_at, applied_steps_count)"
            " VALUES (%s, %s, %s, clock_timestamp(), 0)"
        )
        finish = self._sql(
            "UPDATE {table} SET finished_at = clock_timestamp(), applied_steps_count = %s "
            "WHERE id = %s"
        )
        steps = self._sql("UPDATE {table} SET applied_steps_count = %s WHERE id = %s")
        transactional = not script.needs_no_transaction and not script.manages_transactions
        if transactional:

            def record(conn: Any, count: int) -> None:
                conn.execute(insert, (row_id, migration.checksum, migration.name))
                conn.execute(finish, (count, row_id))

            try:
                apply_script(self.conn, script, inside=record)
            except MigrationSqlError as exc:
                # The transaction is gone and the schema is as before; the row says what
                # was tried, marked rolled back so it never blocks the next deploy.
                self.conn.execute(
                    self._sql(
                        "INSERT INTO {table} (id, checksum, migration_name, logs, started_at, "
                        "rolled_back_at, applied_steps_count) VALUES (%s, %s, %s, %s, "
                        "clock_timestamp(), clock_timestamp(), 0)"
                    ),
                    (str(uuid.uuid4()), migration.checksum, migration.name, str(exc)),
                )
                raise
            return
        self.say(
            f"  {migration.name} cannot run in a transaction: running it statement by statement"
        )
        self.conn.execute(insert, (row_id, migration.checksum, migration.name))
        try:
            apply_script(
                self.conn,
                script,
                step=lambda conn, n: conn.execute(steps, (n, row_id)),
                inside=lambda conn, n: conn.execute(finish, (n, row_id)),
            )
        except MigrationSqlError as exc:
            self.conn.execute(
                self._sql("UPDATE {table} SET logs = %s WHERE id = %s"), (str(exc), row_id)
            )
            exc.hint = (
                "Part of this migration may be applied. Repair the database by hand, then "
                f"`release-actions db resolve --rolled-back {migration.name}` (or "
                "`--applied`) so deploys can go on."
            )
            raise

    # -- rollback ------------------------------------------------------------------------

    def rollback_plan(self, migrations: Sequence[Migration], to: str) -> list[Entry]:
        """The applied migrations after `to`, newest first, each checked to have a down script."""
        entries = self.status(migrations)
        names = [e.name for e in entries]
        if to not in names:
            raise MigrationError(
                f"No migration named `{to}`.",
                hint="Name one of: " + (", ".join(names) or "none"),
            )
        target = next(e for e in entries if e.name == to)
        if target.state not in ("applied", "modified"):
            raise MigrationError(
                f"`{to}` is {target.state}, not applied: rolling back to it would not "
                "leave it in place.",
                hint="Name an applied migration (`release-actions db status` lists them).",
            )
        order = {m.name: i for i, m in enumerate(migrations)}
        later = [
            e
            for e in entries
            if e.state in ("applied", "modified", "failed", "missing")
            and order.get(e.name, len(order)) > order[to]
        ]
        for e in later:
            if e.state == "missing":
                raise MigrationError(
                    f"`{e.name}` is applied but its files are not in this checkout, so its "
                    "down script cannot run.",
                    hint="Run the rollback from a checkout of the release that added it.",
                )
            if e.state == "failed":
                raise MigrationError(
                    f"`{e.name}` failed part way; its down script may not match.",
                    hint=f"Repair it, then `release-actions db resolve --rolled-back {e.name}`.",
                )
            if e.state == "modified":
                raise ChecksumMismatchError(
                    f"`{e.name}` changed since it was applied, so its down script may not "
                    "undo what is in the database.",
                    hint="Restore the file as it was applied (git log -p on it) and rerun.",
                    file=str(e.migration.up) if e.migration else None,
                )
            assert e.migration is not None
            if e.migration.down is None:
                raise MigrationError(
                    f"`{e.name}` has no down script, so it cannot be rolled back.",
                    hint="Write one (`release-actions db lint` asks for it) and rerun.",
                    file=str(e.migration.up),
                )
        return sorted(later, key=lambda e: order[e.name], reverse=True)

    def rollback(
        self, migrations: Sequence[Migration], to: str, *, dry_run: bool = False
    ) -> list[str]:
        """Apply down scripts newest first back to `to` (kept); the names rolled back."""
        self.lock()
        todo = self.rollback_plan(migrations, to)
        scripts = []
        for entry in todo:
            assert entry.migration is not None
            assert entry.migration.down is not None
            scripts.append((entry, parse_file(entry.migration.down)))
        if dry_run:
            return [e.name for e, _ in scripts]
        done = []
        mark = self._sql("UPDATE {table} SET rolled_back_at = clock_timestamp() WHERE id = %s")
        for entry, script in scripts:
            assert entry.row is not None
            row_id = entry.row.id
            self.say(f"Rolling back {entry.name}")
            apply_script(self.conn, script, inside=partial(_mark, mark, row_id))
            done.append(entry.name)
        return done

    # -- resolve -------------------------------------------------------------------------

    def resolve(self, name: str, *, applied: bool) -> None:
        """Mark a failed migration as rolled back or applied after a repair by hand."""
        self.lock()
        failed = [
            r
            for r in self.rows()
            if r.migration_name == name and r.finished_at is None and r.rolled_back_at is None
        ]
        if not failed:
            raise MigrationError(
                f"`{name}` has no failed run to resolve.",
                hint="`release-actions db status` lists failed migrations.",
            )
        self.conn.execute(
            self._sql(
                "UPDATE {table} SET finished_at = clock_timestamp() WHERE id = %s"
                if applied
                else "UPDATE {table} SET rolled_back_at = clock_timestamp() WHERE id = %s"
            ),
            (failed[-1].id,),
        )


def _mark(statement: Any, row_id: str, conn: Any, _count: int) -> None:
    conn.execute(statement, (row_id,))


def _refuse_broken(entries: Sequence[Entry]) -> None:
    for entry in entries:
        if entry.state == "modified":
            assert entry.migration is not None
            assert entry.row is not None
            raise ChecksumMismatchError(
                f"`{entry.name}` was changed after it was applied (checksum "
                f"{entry.row.checksum[:12]}... applied, {entry.migration.checksum[:12]}... "
                "now). An applied migration is history: its edit would never run.",
                hint="Restore the file as it was applied (`git log -p` on it) and put the "
                "change in a new migration.",
                file=str(entry.migration.up),
            )
        if entry.state == "failed":
            assert entry.row is not None
            raise MigrationError(
                f"`{entry.name}` failed part way in an earlier run: "
                f"{(entry.row.logs or 'no log').splitlines()[0]}",
                hint="Repair the database by hand, then `release-actions db resolve "
                f"--rolled-back {entry.name}` (or `--applied`) and deploy again.",
                file=str(entry.migration.up) if entry.migration else None,
            )
