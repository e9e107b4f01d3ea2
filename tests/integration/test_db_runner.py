"""The built-in runner on a real PostgreSQL: deploy, status, rollback, checksums and the lock."""

from __future__ import annotations

import io
import json
import shutil
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from release_actions.cli import main
from release_actions.db.runner import LOCK_KEY
from tests.conftest import CliResult, RunCli
from tests.integration.postgres_server import (
    FIXTURES,
    migration_tree,
)

pytestmark = pytest.mark.integration


BASE = [
    "20260105000000_init",
    "20260120000000_add_trip_categories",
    "20260127000000_add_email_verified",
    "20260203000000_backfill_email_verified",
    "20260210000000_index_email_verified",
]

# Prisma's `_prisma_migrations`, column for column.
PRISMA_COLUMNS = [
    ("id", "character varying", "NO"),
    ("checksum", "character varying", "NO"),
    ("finished_at", "timestamp with time zone", "YES"),
    ("migration_name", "character varying", "NO"),
    ("logs", "text", "YES"),
    ("rolled_back_at", "timestamp with time zone", "YES"),
    ("started_at", "timestamp with time zone", "NO"),
    ("applied_steps_count", "integer", "NO"),
]


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql.encode()).fetchall())


def _tables(url: str) -> set[str]:
    rows = _query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {str(r[0]) for r in rows}


def _deploy(run_cli: RunCli, root: Path, url: str, *extra: str) -> CliResult:
    return run_cli(
        "db", "deploy", "--runner", "builtin", "--dir", str(root), *extra,
        env={"DATABASE_URL": url},
    )  # fmt: skip


def _visible(result: CliResult) -> str:
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(line for line in lines if not line.startswith("::add-mask::"))


def test_deploy_applies_everything_once_and_keeps_prismas_table(
    run_cli: RunCli, database: str, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path)
    first = _deploy(run_cli, root, database)
    assert first.code == 0, first.stdout + first.stderr
    assert json.loads(first.outputs["applied"]) == BASE
    assert first.outputs["count"] == "5"
    assert "s3cret-pw" not in _visible(first)
    assert "::add-mask::s3cret-pw" in first.stdout
    assert {"users", "trip_plans", "trip_categories", "_prisma_migrations"} <= _tables(database)
    columns = _query(
        database,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position",
    )
    assert columns == PRISMA_COLUMNS
    rows = _query(
        database,
        "SELECT migration_name, checksum, applied_steps_count FROM _prisma_migrations "
        "WHERE finished_at IS NOT NULL ORDER BY started_at",
    )
    assert [r[0] for r in rows] == BASE
    import hashlib

    init = (root / BASE[0] / "migration.sql").read_bytes()
    assert rows[0][1] == hashlib.sha256(init).hexdigest()
    assert rows[0][2] == 2
    again = _deploy(run_cli, root, database)
    assert again.code == 0
    assert json.loads(again.outputs["applied"]) == []


def test_status_reports_pending_then_up_to_date(
    run_cli: RunCli, database: str, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path)
    args = ("db", "status", "--runner", "builtin", "--dir", str(root))
    before = run_cli(*args, env={"DATABASE_URL": database})
    assert before.code == 1
    assert json.loads(before.outputs["pending"]) == BASE
    assert _tables(database) == set()  # status only reads
    _deploy(run_cli, root, database)
    after = run_cli(*args, "--json", env={"DATABASE_URL": database})
    assert after.code == 0, after.stdout
    assert json.loads(after.outputs["pending"]) == []
    assert {e["state"] for e in json.loads(after.stdout)["migrations"]} == {"applied"}


def test_an_edited_applied_migration_is_refused(
    run_cli: RunCli, database: str, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path)
    assert _deploy(run_cli, root, database).code == 0
    edited = root / BASE[2] / "migration.sql"
    edited.write_text(edited.read_text() + "ALTER TABLE users ADD COLUMN sneaky TEXT;\n")
    shutil.copytree(
        FIXTURES / "cases" / "missing_down" / "20260301000000_add_nickname",
        root / "20260301000000_add_nickname",
    )
    result = _deploy(run_cli, root, database)
    assert result.code == 2
    assert f"::error file={edited}::" in result.stdout
    assert "was changed after it was applied" in result.stdout
    columns = {
        r[0] for r in _query(database, "SELECT column_name FROM information_schema.columns "
                             "WHERE table_name = 'users'")
    }  # fmt: skip
    assert "nickname" not in columns  # nothing after the refusal ran
    assert "sneaky" not in columns


def test_sql_that_does_not_parse_leaves_the_database_as_it_was(
    run_cli: RunCli, database: str, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path, "syntax_error")
    result = _deploy(run_cli, root, database)
    assert result.code == 2
    broken = root / "20260301000000_broken" / "migration.sql"
    assert f"::error file={broken},line=3::" in result.stdout
    assert _tables(database) == set()  # not even the bookkeeping table


def test_a_statement_the_server_refuses_rolls_its_migration_back(
    run_cli: RunCli, database: str, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path)
    bad = root / "20260301000000_bad_reference"
    bad.mkdir()
    (bad / "migration.sql").write_text(
        'ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n\n'
        'ALTER TABLE "no_such_table"\n    ADD COLUMN "x" TEXT;\n'
    )
    (bad / "down.sql").write_text('ALTER TABLE "users" DROP COLUMN IF EXISTS "nickname";\n')
    result = _deploy(run_cli, root, database)
    assert result.code == 2
    assert f"::error file={bad / 'migration.sql'},line=3::" in result.stdout
    columns = {
        r[0] for r in _query(database, "SELECT column_name FROM information_schema.columns "
                             "WHERE table_name = 'users'")
    }  # fmt: skip
    assert "nickname" not in columns  # the whole migration went back
    rows = _query(
        database,
        "SELECT finished_at, rolled_back_at IS NOT NULL, logs FROM _prisma_migrations "
        "WHERE migration_name = '20260301000000_bad_reference'",
    )
    assert len(rows) == 1
    assert rows[0][0] is None
    assert rows[0][1] is True
    assert "no_such_table" in str(rows[0][2])
    # The failure is recorded as rolled back, so it does not block the fixed migration.
    (bad / "migration.sql").write_text('ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n')
    fixed = _deploy(run_cli, root, database)
    assert fixed.code == 0, fixed.stdout
    assert json.loads(fixed.outputs["applied"]) == ["20260301000000_bad_reference"]


def test_rollback_applies_down_scripts_and_records_it(
    run_cli: RunCli, database: str, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path, "contract")
    assert _deploy(run_cli, root, database).code == 0
    result = run_cli(
        "db", "rollback", "--dir", str(root), "--to", BASE[1], env={"DATABASE_URL": database}
    )
    assert result.code == 0, result.stdout + result.stderr
    assert json.loads(result.outputs["rolled_back"]) == [
        "20260301000000_contract_email_verified",
        BASE[4],
        BASE[3],
        BASE[2],
    ]
    # Rolling back past the contract migration warns: its data does not come back.
    assert "::warning" in result.stdout
    assert "contract_email_verified" in result.stdout
    assert "but not the data" in result.stdout
    columns = {
        r[0] for r in _query(database, "SELECT column_name FROM information_schema.columns "
                             "WHERE table_name = 'users'")
    }  # fmt: skip
    assert columns == {"id", "name", "is_verified"}
    rolled = _query(
        database,
        "SELECT migration_name FROM _prisma_migrations WHERE rolled_back_at IS NOT NULL "
        "ORDER BY rolled_back_at",
    )
    assert rolled[0][0] == "20260301000000_contract_email_verified"
    status = run_cli(
        "db", "status", "--runner", "builtin", "--dir", str(root), env={"DATABASE_URL": database}
    )
    assert json.loads(status.outputs["pending"]) == [
        *BASE[2:],
        "20260301000000_contract_email_verified",
    ]
    redeploy = _deploy(run_cli, root, database)
    assert json.loads(redeploy.outputs["applied"]) == [
        *BASE[2:],
        "20260301000000_contract_email_verified",
    ]
    assert json.loads(redeploy.outputs["contract"]) == ["20260301000000_contract_email_verified"]


def test_rollback_refuses_a_migration_without_a_down_script(
    run_cli: RunCli, database: str, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path, "missing_down")
    assert _deploy(run_cli, root, database).code == 0
    result = run_cli(
        "db", "rollback", "--dir", str(root), "--to", BASE[-1], env={"DATABASE_URL": database}
    )
    assert result.code == 2
    assert "has no down script" in result.stdout


def _deploy_in_thread(root: Path, url: str, results: list[tuple[int, str, str]]) -> None:
    out, err = io.StringIO(), io.StringIO()
    output = root.parent / f"out-{threading.get_ident()}"
    code = main(
        ["db", "deploy", "--runner", "builtin", "--dir", str(root), "--lock-timeout", "30"],
        env={"DATABASE_URL": url, "GITHUB_OUTPUT": str(output)},
        out=out,
        err=err,
    )
    results.append((code, output.read_text() if output.exists() else "", out.getvalue()))


def test_two_concurrent_deploys_apply_each_migration_exactly_once(
    database: str, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path, "slow")
    results: list[tuple[int, str, str]] = []
    threads = [
        threading.Thread(target=_deploy_in_thread, args=(root, database, results)) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [r[0] for r in results] == [0, 0], results
    applied = []
    for _code, output, _out in results:
        value = output.split("applied<<", 1)[1].split("\n", 2)[1]
        applied.append(json.loads(value))
    assert sorted(len(a) for a in applied) == [0, 6]  # one run did it all, the other nothing
    assert any("waiting" in r[2] for r in results)
    rows = _query(database, "SELECT migration_name FROM _prisma_migrations")
    assert len(rows) == 6


def test_a_held_lock_times_out_clearly(run_cli: RunCli, database: str, tmp_path: Path) -> None:
    root = migration_tree(tmp_path)
    with psycopg.connect(database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        result = _deploy(run_cli, root, database, "--lock-timeout", "0.5")
    assert result.code == 2
    assert "holds the lock" in result.stdout
    assert _tables(database) == set()


def test_the_consumers_command_runs_with_database_url_and_reports_what_it_applied(
    run_cli: RunCli, database: str, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path)
    # The consumer's tool is played by this CLI's own runner, started as a command.
    command = f"{sys.executable} -m release_actions db deploy --runner builtin --dir {root}"
    result = run_cli(
        "db", "deploy", "--dir", str(root), "--command", command, env={"DATABASE_URL": database}
    )
    assert result.code == 0, result.stdout + result.stderr
    assert json.loads(result.outputs["applied"]) == BASE
    assert "s3cret-pw" not in _visible(result)


def test_a_failing_command_fails_the_deploy(run_cli: RunCli, database: str, tmp_path: Path) -> None:
    root = migration_tree(tmp_path)
    command = f"{sys.executable} -c 'import sys; sys.exit(3)'"
    result = run_cli(
        "db", "deploy", "--dir", str(root), "--command", command, env={"DATABASE_URL": database}
    )
    assert result.code == 2
    assert "exited 3" in result.stdout


def test_the_plain_layout_deploys_with_the_builtin_runner_by_default(
    run_cli: RunCli, database: str
) -> None:
    result = run_cli(
        "db", "deploy", "--layout", "plain", "--dir", str(FIXTURES / "plain"),
        env={"DATABASE_URL": database},
    )  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    assert json.loads(result.outputs["applied"]) == [
        "0001_create_accounts",
        "0002_add_plan",
        "10_add_country",
    ]


def test_a_failed_concurrent_index_blocks_deploys_until_resolved(
    run_cli: RunCli, database: str, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path)
    name = "20260301000000_index_missing_column"
    folder = root / name
    folder.mkdir()
    (folder / "migration.sql").write_text(
        'CREATE INDEX CONCURRENTLY "users_nope_idx" ON "users" ("nope");\n'
    )
    (folder / "down.sql").write_text('DROP INDEX CONCURRENTLY IF EXISTS "users_nope_idx";\n')
    env = {"DATABASE_URL": database}
    failed = _deploy(run_cli, root, database)
    assert failed.code == 2
    assert "statement by statement" in failed.stdout
    assert "db resolve --rolled-back" in failed.stderr
    status = run_cli("db", "status", "--runner", "builtin", "--dir", str(root), env=env)
    assert status.code == 1
    assert f"failed    {name}" in status.stdout
    blocked = _deploy(run_cli, root, database)
    assert blocked.code == 2
    assert "failed part way in an earlier run" in blocked.stdout
    resolved = run_cli("db", "resolve", name, "--rolled-back", env=env)
    assert resolved.code == 0, resolved.stdout + resolved.stderr
    (folder / "migration.sql").write_text(
        'CREATE INDEX CONCURRENTLY "users_name_idx" ON "users" ("name");\n'
    )
    fixed = _deploy(run_cli, root, database)
    assert fixed.code == 0, fixed.stdout + fixed.stderr
    assert json.loads(fixed.outputs["applied"]) == [name]
