"""Prove on a scratch database that each new migration's down undoes its up, and up reapplies."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from release_actions.db import data, schema
from release_actions.db.connect import connect, parts, quote_ident, with_database
from release_actions.db.errors import MigrationSqlError
from release_actions.db.layout import Migration
from release_actions.db.runner import apply_script
from release_actions.db.sql import Script, parse_file


@dataclass(frozen=True)
class Problem:
    """A migration that failed verification, with the file to fix and a readable diff."""

    migration: str
    check: str
    message: str
    file: str
    line: int | None = None
    diff: str = ""
    severity: Literal["error", "warning"] = "error"


@dataclass
class VerifyReport:
    checked: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def scratch_name() -> str:
    return f"release_actions_verify_{secrets.token_hex(6)}"


def verify(
    url: str,
    migrations: Sequence[Migration],
    new: Sequence[Migration],
    *,
    pg_dump: str,
    say: Callable[[str], None] = lambda _text: None,
) -> VerifyReport:
    """Apply every migration from empty on a fresh database; round-trip each new one.

    For a new migration the schema is dumped before `up`, after `up`, after `down` (must
    equal before) and after `up` again (must equal the first `up`). The scratch database
    is created on the server in `url` and dropped afterwards, whatever happens.
    """
    name = scratch_name()
    admin = connect(url)
    report = VerifyReport()
    try:
        admin.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0".encode())
        say(f"Created scratch database {name} on {parts(url).get('host', 'localhost')}")
        try:
            conn = connect(with_database(url, name))
            try:
                _run(conn, url, name, migrations, {m.name for m in new}, pg_dump, report, say)
            finally:
                conn.close()
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)".encode())
    finally:
        admin.close()
    return report


def _run(
    conn: Any,
    url: str,
    dbname: str,
    migrations: Sequence[Migration],
    new: set[str],
    pg_dump: str,
    report: VerifyReport,
    say: Callable[[str], None],
) -> None:
    def snapshot() -> list[str]:
        return schema.normalise(schema.dump(url, dbname, pg_dump))

    ups: dict[str, Script] = {}
    for migration in migrations:
        try:
            ups[migration.name] = parse_file(migration.up)
        except MigrationSqlError:
            break  # reported when its turn comes
    # A column some migration makes NOT NULL gets no NULLs: by then the code writes it
    # (source §9.3 step 2), and rows made up here must not stand in for old code.
    filler = data.Filler(conn, never_null=data.set_not_null_columns(ups.values()))
    for migration in migrations:
        try:
            up = parse_file(migration.up)
            if migration.name not in new:
                apply_script(conn, up)
                report.applied.append(migration.name)
                continue
            say(f"Checking {migration.name}")
            report.checked.append(migration.name)
            filled, notes = filler.fill(data.touched_tables([up]))
            for table, count in filled.items():
                if count:
                    say(f"  filled {table} with {count} row(s)")
            for note in notes:
                say(f"  {note}")
            rows_before = filler.rows(filler.existing().values())
            before = snapshot()
            apply_script(conn, up)
            after_up = snapshot()
            if migration.down is None:
                report.problems.append(
                    Problem(
                        migration.name,
                        "down",
                        f"`{migration.name}` has no down script: it cannot be rolled back.",
                        str(migration.up),
                    )
                )
                report.applied.append(migration.name)
                continue
            down = parse_file(migration.down)
            apply_script(conn, down)
            after_down = snapshot()
            if after_down != before:
                text = schema.diff(
                    before,
                    after_down,
                    f"before {migration.name}",
                    f"after up + down of {migration.name}",
                )
                report.problems.append(
                    Problem(
                        migration.name,
                        "down-restores",
                        f"`{migration.down.name}` of `{migration.name}` does not restore the "
                        f"schema as it was before `up` ({_count(text)}).",
                        str(migration.down),
                        None,
                        text,
                    )
                )
                # Going on from a wrong state would blame the next migration for this one.
                return
            _check_rows(migration, down, filler, rows_before, report)
            apply_script(conn, up)
            again = snapshot()
            report.applied.append(migration.name)
            if again != after_up:
                text = schema.diff(
                    after_up,
                    again,
                    f"after up of {migration.name}",
                    f"after up + down + up of {migration.name}",
                )
                report.problems.append(
                    Problem(
                        migration.name,
                        "up-reapplies",
                        f"`{migration.name}` gives a different schema when applied again "
                        f"after its down script ({_count(text)}).",
                        str(migration.up),
                        None,
                        text,
                    )
                )
                return
        except MigrationSqlError as exc:
            report.problems.append(
                Problem(
                    migration.name, "applies", exc.message, exc.file or str(migration.up), exc.line
                )
            )
            return


def _check_rows(
    migration: Migration,
    down: Script,
    filler: data.Filler,
    before: dict[str, data.Snapshot],
    report: VerifyReport,
) -> None:
    """The rows of every table that was there before `up` must be back after `down`."""
    assert migration.down is not None
    existing = filler.existing()
    after = filler.rows(t for key, t in existing.items() if key in before)
    allow = next((a for a in down.allows if data.LOSSY_DOWN in a.rules and a.reason), None)
    for difference in data.compare(before, after):
        text = (
            f"`{migration.down.name}` of `{migration.name}` does not bring the rows back: "
            f"{difference.describe()}."
        )
        if allow is not None:
            report.problems.append(
                Problem(
                    migration.name,
                    "down-keeps-rows",
                    f"{text} Allowed as lossy: {allow.reason}",
                    str(migration.down),
                    allow.line,
                    severity="warning",
                )
            )
        else:
            report.problems.append(
                Problem(
                    migration.name,
                    "down-keeps-rows",
                    f"{text} Make the down script keep the data (copy it aside in the up "
                    "script), or, if losing it is intended, say why in the down script: "
                    f"`-- release-actions: allow {data.LOSSY_DOWN} -- <reason>`.",
                    str(migration.down),
                )
            )


def _count(diff_text: str) -> str:
    lines = diff_text.splitlines()[2:]
    removed = sum(1 for line in lines if line.startswith("-"))
    added = sum(1 for line in lines if line.startswith("+"))
    return f"{removed} line(s) missing, {added} line(s) extra"
