"""`release-actions db`: lint, verify, deploy, status, roll back and resolve database migrations."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from release_actions.app.db_deploy import run_command, use_command
from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.core.policy import load_policy
from release_actions.db.connect import database_errors, describe, password
from release_actions.db.errors import MigrationError
from release_actions.db.layout import (
    LAYOUTS,
    Migration,
    MigrationSettings,
    discover,
    find_base,
    select_new,
)
from release_actions.gha import markdown_table

F = TypeVar("F", bound=Callable[..., Any])


def tree_options(func: F) -> F:
    func = click.option(
        "--layout",
        type=click.Choice(LAYOUTS),
        default="prisma",
        show_default=True,
        help="`prisma`: <dir>/<timestamp>_<name>/migration.sql with down.sql beside it; "
        "`plain`: <dir>/<version>_<name>.up.sql and .down.sql.",
    )(func)
    return click.option(
        "--dir",
        "directory",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="The migrations folder (default: prisma/migrations, or migrations for `plain`).",
    )(func)


def selection_options(func: F, default: str = "every migration counts as new") -> F:
    func = click.option(
        "--new",
        "new_names",
        multiple=True,
        metavar="NAME",
        help="A migration this release adds (repeatable). Excludes `--since`.",
    )(func)
    return click.option(
        "--since",
        metavar="REF",
        default=None,
        help="The migrations added since this git revision (the previous release tag) are "
        f"this release's. Without `--since` or `--new`, {default}.",
    )(func)


def base_selection_options(func: F) -> F:
    func = click.option(
        "--tag-prefix",
        default="v",
        show_default=True,
        help="Prefix of release tags, for finding the previous one on a tag push "
        "(default from the policy's `tag.prefix`).",
    )(func)
    return selection_options(
        func,
        "the migrations this branch adds to the merge base with the default branch are "
        "new, or on a tag push (GITHUB_REF=refs/tags/...) those since the previous release "
        "tag; with neither known (no history fetched), every migration",
    )


def database_options(func: F) -> F:
    func = click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=60.0,
        show_default=True,
        help="Seconds to wait for another migration run (or `prisma migrate`) to finish.",
    )(func)
    func = click.option(
        "--table",
        default="_prisma_migrations",
        show_default=True,
        help="The bookkeeping table; Prisma's own by default so both tools share it.",
    )(func)
    return click.option(
        "--database-url",
        default=None,
        help="PostgreSQL URL (default: the `DATABASE_URL` environment variable). Never printed.",
    )(func)


def runner_options(func: F) -> F:
    func = click.option(
        "--command",
        default=None,
        help="The consumer's own command (implies `--runner command`), run with "
        "`DATABASE_URL` in its environment.",
    )(func)
    return click.option(
        "--runner",
        type=click.Choice(["command", "builtin"]),
        default=None,
        help="`command` runs the consumer's tool (default for `prisma`: `npx prisma migrate "
        "deploy` / `status`); `builtin` runs the SQL here with psycopg (default for `plain`).",
    )(func)


def _settings(directory: Path | None, layout: str, **kw: Any) -> MigrationSettings:
    return MigrationSettings(dir=directory, layout=layout, **kw)  # type: ignore[arg-type]


def _url(state: Session, given: str | None, *, hint: str = "") -> str:
    url = given or state.env.get("DATABASE_URL")
    if not url:
        raise MigrationError(
            "No database URL: `--database-url` is not set and neither is `DATABASE_URL`.",
            hint=f"{hint}Pass it through the step's env from a secret: "
            "`env: DATABASE_URL: ${{ secrets.DATABASE_URL }}`.",
        )
    # Masked the moment it exists, before anything can print it.
    state.runtime.mask(url)
    secret = password(url)
    if secret:
        state.runtime.mask(secret)
    return url


def _select(
    migrations: list[Migration],
    settings: MigrationSettings,
    since: str | None,
    new_names: tuple[str, ...],
) -> list[Migration]:
    return select_new(migrations, since=since, new=new_names, settings=settings)


@click.group("db")
@policy_option
@click.pass_context
def group(ctx: click.Context, policy_path: Path | None) -> None:
    """Database migrations that can always be rolled back (source §9).

    Defaults come from the policy's `migrations` section; options given here win.
    """
    # The subcommand's context is made after this callback runs, so its defaults can come
    # from the policy without every command loading it again.
    policy = load_policy(policy_path)
    m = policy.migrations
    tree = {"layout": m.layout, **({"directory": Path(m.dir)} if m.dir else {})}
    db = {"table": m.table, "lock_timeout": m.lock_timeout_seconds}
    deploy = {"command": m.deploy_command} if m.deploy_command else {}
    status = {"command": m.status_command} if m.status_command else {}
    ctx.default_map = {
        "lint": {**tree, "tag_prefix": policy.tag.prefix},
        "verify": tree,
        "deploy": {**tree, **db, **deploy},
        "status": {**tree, **db, **status},
        "rollback": {**tree, **db},
        "resolve": {**tree, **db},
    }


# -- lint ---------------------------------------------------------------------------------


@group.command("lint")
@tree_options
@base_selection_options
@click.option(
    "--squawk",
    "squawk_path",
    default=None,
    metavar="PATH",
    help="The squawk binary (default: the one installed with `squawk-cli`, else PATH).",
)
@click.option(
    "--no-squawk",
    is_flag=True,
    help="Use the built-in subset of squawk's locking rules instead of squawk.",
)
@click.option("--pg-version", default="15", show_default=True, help="PostgreSQL major version.")
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning"]),
    default="error",
    show_default=True,
    help="Exit 1 on errors only, or on warnings (locking rules) too.",
)
@json_option
@pass_state
def lint_command(
    state: Session,
    directory: Path | None,
    layout: str,
    since: str | None,
    new_names: tuple[str, ...],
    tag_prefix: str,
    squawk_path: str | None,
    no_squawk: bool,
    pg_version: str,
    fail_on: str,
    as_json: bool,
) -> None:
    """Check down scripts, locking rules and expand/contract rules; exit 1 on a failure.

    Each new migration is classified `expand`, `contract` or `breaking`; breaking ones
    fail, and so does an expand and a contract of one column in one release. A reviewed
    exception is a comment above the statement:
    `-- release-actions: allow <rule> -- <reason>`.
    """
    from release_actions.db.lint import lint

    settings = _settings(directory, layout)
    migrations = discover(settings)
    if since or new_names:
        new = _select(migrations, settings, since, new_names)
    else:
        new = _new_on_this_branch(state, migrations, settings, tag_prefix)
    squawk: str | Literal[False] | None = False if no_squawk else squawk_path
    report = lint(migrations, new, squawk=squawk, pg_version=pg_version)
    for f in report.findings:
        state.runtime.annotate(
            f.severity, f.annotation(), file=f.file, line=f.line, title=f"db lint: {f.rule}"
        )
    news = [r for r in report.migrations if r.new]
    errors, warnings = report.count("error"), report.count("warning")
    kinds = {r.migration.name: r.kind.value for r in news}
    state.runtime.set_output("errors", errors)
    state.runtime.set_output("warnings", warnings)
    state.runtime.set_output("kinds", json.dumps(kinds))
    state.runtime.set_output(
        "contract", json.dumps([n for n, k in kinds.items() if k == "contract"])
    )
    state.runtime.set_output(
        "breaking", json.dumps([n for n, k in kinds.items() if k == "breaking"])
    )
    if as_json:
        state.emit_json(
            {
                "migrations": [r.as_dict() for r in news],
                "findings": [f.as_dict() for f in report.findings],
                "locking_rules": report.locking_rules,
            }
        )
    else:
        for r in news:
            state.say(f"{r.migration.name}: {r.kind.value}")
        state.say(
            f"{len(news)} new of {len(migrations)} migration(s): {errors} error(s), "
            f"{warnings} warning(s); locking rules: {report.locking_rules}"
        )
    rows = [
        [
            r.migration.name,
            r.kind.value,
            str(sum(f.file == str(r.migration.up) for f in r.findings)),
        ]
        for r in news
    ]
    state.runtime.summary(
        "### Database migrations: lint\n\n"
        + markdown_table(["migration", "kind", "findings"], rows)
        + f"\n{errors} error(s), {warnings} warning(s).\n"
    )
    if report.failed("warning" if fail_on == "warning" else "error"):
        raise check_failed()


def _new_on_this_branch(
    state: Session, migrations: list[Migration], settings: MigrationSettings, tag_prefix: str
) -> list[Migration]:
    """Without `--since` or `--new`: what is not on the base yet, so shipped tables count as such."""
    base, why_not = find_base(settings, state.env, tag_prefix=tag_prefix)
    if base is None:
        state.runtime.annotate(
            "warning",
            f"No base to compare with: {why_not}, so every migration counts as new and the "
            "tables they change count as new too (NOT NULL columns and dropped columns on "
            "shipped tables pass). Fetch the history and tags in the checkout step "
            "(actions/checkout with `fetch-depth: 0`), or pass `--since <previous tag>`.",
            title="db lint: no base",
        )
        return list(migrations)
    new = select_new(migrations, since=base.commit, settings=settings)
    state.note(f"New migrations: those not in {base.describe}.")
    return new


# -- verify -------------------------------------------------------------------------------


@group.command("verify")
@tree_options
@selection_options
@click.option(
    "--database-url",
    default=None,
    help="A server to create the scratch database on "
    "(default: `DATABASE_URL`). Its own database is not touched. Excludes `--ephemeral`.",
)
@click.option(
    "--ephemeral",
    is_flag=True,
    help="Start a throwaway PostgreSQL on this machine (initdb and pg_ctl of the installed "
    "server, PATH or /usr/lib/postgresql/*/bin) and remove it afterwards. Excludes "
    "`--database-url`; `DATABASE_URL` is ignored.",
)
@click.option(
    "--pg-dump",
    default=None,
    metavar="PATH",
    help="pg_dump to use (default: the throwaway server's own with `--ephemeral`, else PATH, "
    "then /usr/lib/postgresql/*/bin).",
)
@json_option
@pass_state
def verify_command(
    state: Session,
    directory: Path | None,
    layout: str,
    since: str | None,
    new_names: tuple[str, ...],
    database_url: str | None,
    ephemeral: bool,
    pg_dump: str | None,
    as_json: bool,
) -> None:
    """Apply all migrations on a scratch database; each new one must round-trip.

    `down` must restore the schema exactly and `up` must apply again after it; the scratch
    database is dropped afterwards. Differences are shown as a unified diff.
    """
    from release_actions.db import schema
    from release_actions.db.verify import VerifyReport, verify

    if ephemeral and database_url:
        raise MigrationError(
            "Only one of `--database-url` or `--ephemeral` can be set.",
            hint="`--ephemeral` starts a throwaway server here; `--database-url` names one "
            "that exists.",
        )
    say: Callable[[str], None] = (lambda _t: None) if as_json else state.say
    settings = _settings(directory, layout)
    report: VerifyReport
    if ephemeral:
        from release_actions.db.ephemeral import ephemeral_server

        migrations = discover(settings)
        new = _select(migrations, settings, since, new_names)
        with ephemeral_server(env=state.env, say=say) as server:
            url = server.url()
            binary = pg_dump or server.binaries.tool("pg_dump")
            binary = binary or schema.require_pg_dump(None, state.env)
            with database_errors(url):
                report = verify(url, migrations, new, pg_dump=binary, say=say)
    else:
        url = _url(
            state,
            database_url,
            hint="Pass `--ephemeral` to start a throwaway PostgreSQL here instead. ",
        )
        binary = schema.require_pg_dump(pg_dump, state.env)
        migrations = discover(settings)
        new = _select(migrations, settings, since, new_names)
        with database_errors(url):
            report = verify(url, migrations, new, pg_dump=binary, say=say)
    for p in report.problems:
        message = p.message
        if p.diff:
            message += "\n" + p.diff
        state.runtime.annotate(
            p.severity, message, file=p.file, line=p.line, title=f"db verify: {p.check}"
        )
        if p.diff:
            with state.runtime.group(f"Schema diff: {p.migration}"):
                state.runtime.echo_untrusted(p.diff)
    state.runtime.set_output("checked", json.dumps(report.checked))
    state.runtime.set_output("ok", report.ok)
    if as_json:
        state.emit_json(
            {
                "checked": report.checked,
                "problems": [p.__dict__ for p in report.problems],
            }
        )
    else:
        state.say(
            f"{len(report.checked)} migration(s) round-tripped on a scratch database: "
            + (
                "all good" + (f" ({len(report.problems)} warning(s))." if report.problems else ".")
                if report.ok
                else f"{len(report.problems)} problem(s)."
            )
        )
    summary = "### Database migrations: verify\n\n" + markdown_table(
        ["migration", "result"],
        [[n, _verify_result(report.problems, n)] for n in report.checked],
    )
    for p in report.problems:
        if p.diff:
            summary += f"\n`{p.migration}`: {p.message}\n\n```diff\n{p.diff}\n```\n"
        elif p.check == "down-keeps-rows":
            summary += f"\n{p.severity}: {p.message}\n"
    state.runtime.summary(summary)
    if not report.ok:
        raise check_failed()


def _verify_result(problems: list[Any], name: str) -> str:
    mine = {p.severity for p in problems if p.migration == name}
    return "failed" if "error" in mine else "warning" if mine else "ok"


# -- deploy / status / rollback / resolve --------------------------------------------------


@group.command("deploy")
@tree_options
@database_options
@runner_options
@json_option
@pass_state
def deploy_command(
    state: Session,
    directory: Path | None,
    layout: str,
    database_url: str | None,
    table: str,
    lock_timeout: float,
    runner: str | None,
    command: str | None,
    as_json: bool,
) -> None:
    """Apply pending migrations; output `applied` is the JSON list of those applied.

    The built-in runner applies each migration in one transaction with its bookkeeping
    row, under Prisma's advisory lock, and refuses an applied migration whose file
    changed. A migration holding a statement PostgreSQL refuses in a transaction (CREATE
    or DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM, ...) runs statement by
    statement; if it fails part way, deploys stop until `db resolve`.
    """
    from release_actions.app.db_deploy import DbDeployRequest, deploy_migrations

    settings = _settings(
        directory, layout, table=table, lock_timeout_seconds=lock_timeout, deploy_command=command
    )
    request = DbDeployRequest(settings, _url(state, database_url), runner=runner, command=command)
    result = deploy_migrations(state, request)
    if result is None:
        return
    _report_deploy(state, result.applied, result.contract)
    if result.command_exit:
        raise MigrationError(
            f"`{result.command}` exited {result.command_exit}.",
            hint="Its output above says why; `release-actions db status` shows the state.",
        )


def _report_deploy(state: Session, applied: list[str], contract: list[str]) -> None:
    state.runtime.set_output("applied", json.dumps(applied))
    state.runtime.set_output("contract", json.dumps(contract))
    state.runtime.set_output("count", len(applied))
    if state.json:
        state.emit_json({"applied": applied, "contract": contract})
    state.say(f"Applied {len(applied)} migration(s): {', '.join(applied) or 'none'}")
    rows = [[n, "contract" if n in contract else "expand"] for n in applied]
    state.runtime.summary(
        "### Database migrations: deploy\n\n"
        + (markdown_table(["applied", "kind"], rows) if rows else "Nothing to apply.\n")
    )


@group.command("status")
@tree_options
@database_options
@runner_options
@json_option
@pass_state
def status_command(
    state: Session,
    directory: Path | None,
    layout: str,
    database_url: str | None,
    table: str,
    lock_timeout: float,
    runner: str | None,
    command: str | None,
    as_json: bool,
) -> None:
    """Show each migration's state; exit 1 if any is pending, failed, or changed since applied."""
    settings = _settings(directory, layout, table=table, status_command=command)
    url = _url(state, database_url)
    migrations = discover(settings)
    if use_command(settings, runner, command):
        cmd = settings.default_status_command
        if cmd is None:
            raise MigrationError("The `plain` layout has no default command: pass `--command`.")
        if run_command(state, cmd, url) != 0:
            raise check_failed()
        return
    from release_actions.db.runner import Runner

    with database_errors(url), Runner(url, table=table, lock_timeout=lock_timeout) as run:
        entries = run.status(migrations)
    by_state: dict[str, list[str]] = {}
    for e in entries:
        by_state.setdefault(e.state, []).append(e.name)
    state.runtime.set_output("pending", json.dumps(by_state.get("pending", [])))
    state.runtime.set_output("applied", json.dumps(by_state.get("applied", [])))
    if as_json:
        state.emit_json({"migrations": [e.as_dict() for e in entries], **by_state})
    else:
        for e in entries:
            state.say(f"{e.state:9} {e.name}")
    state.runtime.summary(
        "### Database migrations: status\n\n"
        + markdown_table(["migration", "state"], [[e.name, e.state] for e in entries])
    )
    for e in entries:
        if e.state in ("failed", "modified"):
            state.runtime.annotate(
                "error",
                f"`{e.name}` is {e.state}.",
                file=str(e.migration.up) if e.migration else None,
            )
    if any(e.state in ("pending", "failed", "modified") for e in entries):
        raise check_failed()


@group.command("rollback")
@tree_options
@database_options
@click.option(
    "--to",
    "to",
    required=True,
    metavar="NAME",
    help="The migration to go back to; it stays applied, every later one is undone.",
)
@json_option
@pass_state
def rollback_command(
    state: Session,
    directory: Path | None,
    layout: str,
    database_url: str | None,
    table: str,
    lock_timeout: float,
    to: str,
    as_json: bool,
) -> None:
    """Apply down scripts newest first back to NAME; output `rolled_back` lists them.

    Works on a database migrated by `prisma migrate` too: the bookkeeping table is the same.
    """
    from release_actions.db.runner import Runner
    from release_actions.db.safety import contract_migrations_between

    settings = _settings(directory, layout, table=table)
    url = _url(state, database_url)
    migrations = discover(settings)
    with (
        database_errors(url),
        Runner(url, table=table, lock_timeout=lock_timeout, say=state.say) as run,
    ):
        state.say(f"Rolling back {describe(url)} to {to}")
        plan = run.rollback_plan(migrations, to)
        for hazard in contract_migrations_between(
            [e.name for e in plan], [], migrations=migrations
        ):
            state.runtime.annotate(
                "warning",
                f"Rolling back {hazard.describe()}: its down script brings the schema back "
                "but not the data that was removed.",
                file=hazard.file or None,
            )
        done = run.rollback(migrations, to, dry_run=state.dry_run)
    if as_json:
        state.emit_json({"to": to, "rolled_back": done, "dry_run": state.dry_run})
    if state.dry_run:
        state.say(f"Would roll back: {', '.join(done) or 'nothing'} (dry run).")
        return
    state.runtime.set_output("rolled_back", json.dumps(done))
    state.say(f"Rolled back {len(done)} migration(s): {', '.join(done) or 'none'}")
    state.runtime.summary(
        "### Database migrations: rollback\n\n"
        + (markdown_table(["rolled back"], [[n] for n in done]) if done else "Nothing to do.\n")
    )


@group.command("resolve")
@click.argument("name")
@click.option("--applied", "as_applied", is_flag=True, help="The repair completed it.")
@click.option("--rolled-back", "as_rolled_back", is_flag=True, help="The repair undid it.")
@click.option("--database-url", default=None, help="Default: `DATABASE_URL`.")
@click.option("--table", default="_prisma_migrations", show_default=True)
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True)
@json_option
@pass_state
def resolve_command(
    state: Session,
    name: str,
    as_applied: bool,
    as_rolled_back: bool,
    database_url: str | None,
    table: str,
    lock_timeout: float,
    as_json: bool,
) -> None:
    """Mark a migration that failed part way as applied or rolled back, after a repair by hand."""
    if as_applied == as_rolled_back:
        raise click.UsageError("Give exactly one of `--applied` or `--rolled-back`.")
    from release_actions.db.runner import Runner

    url = _url(state, database_url)
    with database_errors(url), Runner(url, table=table, lock_timeout=lock_timeout) as run:
        run.resolve(name, applied=as_applied)
    marked = "applied" if as_applied else "rolled back"
    if as_json:
        state.emit_json({"migration": name, "marked": marked.replace(" ", "_")})
    else:
        state.say(f"{name}: marked {marked}")
