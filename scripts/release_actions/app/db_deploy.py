"""Deploying database migrations (source §9): the built-in runner, or the project's own command."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Any

from release_actions.app.session import Session
from release_actions.db.connect import database_errors, describe, password
from release_actions.db.errors import MigrationError
from release_actions.db.layout import Migration, MigrationSettings, discover
from release_actions.errors import ReleaseActionsError


@dataclass(frozen=True)
class DbDeployRequest:
    settings: MigrationSettings
    url: str
    runner: str | None = None
    """`builtin` or `command`; None: `command` for Prisma's layout, else built in."""
    command: str | None = None


@dataclass
class DbDeployResult:
    applied: list[str]
    contract: list[str] = field(default_factory=list)
    command: str | None = None
    command_exit: int = 0
    """The project command's exit code; its deploy is reported before this fails the step."""


def deploy_migrations(session: Session, request: DbDeployRequest) -> DbDeployResult | None:
    """Apply pending migrations; None on a dry run, which only says what it would do.

    The built-in runner applies each migration in one transaction with its bookkeeping row,
    under Prisma's advisory lock. With a command, the bookkeeping rows before and after
    say what it applied.
    """
    settings, url = request.settings, request.url
    migrations = discover(settings)
    if use_command(settings, request.runner, request.command):
        cmd = settings.default_deploy_command
        if cmd is None:
            raise MigrationError("The `plain` layout has no default command: pass `--command`.")
        if session.dry_run:
            session.say(f"Would run `{cmd}` (dry run).")
            return None
        before = _rows_or_none(session, url, settings.table)
        code = run_command(session, cmd, url)
        after = _rows_or_none(session, url, settings.table) if before is not None else None
        names = [m.name for m in migrations]
        applied = (
            sorted(_applied(after) - _applied(before), key=lambda n: (n not in names, n))
            if before is not None and after is not None
            else []
        )
        return DbDeployResult(applied, _contract_names(migrations, applied), cmd, code)
    from release_actions.db.runner import Runner

    with (
        database_errors(url),
        Runner(
            url,
            table=settings.table,
            lock_timeout=settings.lock_timeout_seconds,
            say=session.say,
        ) as run,
    ):
        session.say(f"Migrating {describe(url)}")
        applied = run.deploy(migrations, dry_run=session.dry_run)
    if session.dry_run:
        session.say(f"Would apply: {', '.join(applied) or 'nothing'} (dry run).")
        return None
    return DbDeployResult(applied, _contract_names(migrations, applied))


def use_command(settings: MigrationSettings, runner: str | None, command: str | None) -> bool:
    if command:
        if runner == "builtin":
            raise MigrationError("Only one of `--command` or `--runner builtin` can be set.")
        return True
    if runner is not None:
        return runner == "command"
    return settings.layout == "prisma"


def run_command(session: Session, command: str, url: str) -> int:
    env = dict(session.env)
    env["DATABASE_URL"] = url
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise MigrationError(f"`--command` cannot be split into words: {exc}.") from None
    if not argv:
        raise MigrationError("`--command` is empty.")
    session.say(f"$ {command}")
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise MigrationError(
            f"`{argv[0]}` is not installed on this runner.",
            hint="Install the consumer's tools first (`npm ci` for Prisma), or use "
            "`--runner builtin`.",
        ) from None
    secret = password(url)
    for text in (proc.stdout, proc.stderr):
        if text:
            text = text.replace(url, "***")
            if secret:
                text = text.replace(secret, "***")
            session.runtime.echo_untrusted(text.rstrip("\n"))
    return proc.returncode


def _rows_or_none(session: Session, url: str, table: str) -> list[Any] | None:
    """The bookkeeping rows if they can be read, so a command deploy can report what it did."""
    from release_actions.db.runner import Runner

    try:
        with database_errors(url), Runner(url, table=table) as runner:
            return runner.rows()
    except ReleaseActionsError as exc:
        session.runtime.annotate("warning", f"Cannot read `{table}`: {exc.message}")
        return None


def _applied(rows: list[Any]) -> set[str]:
    from release_actions.db.runner import Row

    latest: dict[str, Row] = {}
    for row in sorted(rows, key=lambda r: (r.started_at, r.id)):
        latest[row.migration_name] = row
    return {n for n, r in latest.items() if r.finished_at is not None and r.rolled_back_at is None}


def _contract_names(migrations: list[Migration], names: list[str]) -> list[str]:
    from release_actions.db.safety import contract_migrations_between

    return [c.name for c in contract_migrations_between(names, [], migrations=migrations)]
