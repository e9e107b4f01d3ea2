"""`db verify` on a real PostgreSQL: every new migration must round-trip through its down script."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.conftest import RunCli
from tests.integration.postgres_server import (
    FIXTURES,
    PostgresServer,
    migration_tree,
)

pytestmark = pytest.mark.integration


def _databases(server: PostgresServer) -> set[str]:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def test_the_base_history_round_trips_and_the_scratch_database_is_dropped(
    run_cli: RunCli, pg_server: PostgresServer, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path)
    before = _databases(pg_server)
    result = run_cli(
        "db", "verify", "--dir", str(root), env={"DATABASE_URL": pg_server.url(password="pw-xyz")}
    )
    assert result.code == 0, result.stdout + result.stderr
    checked = json.loads(result.outputs["checked"])
    assert len(checked) == 5  # the CONCURRENTLY index and an empty down script included
    assert result.outputs["ok"] == "true"
    assert _databases(pg_server) == before
    assert "::add-mask::pw-xyz" in result.stdout
    shown = [line for line in result.stdout.splitlines() if not line.startswith("::add-mask::")]
    assert "pw-xyz" not in "\n".join(shown) + result.stderr


def test_a_down_script_that_leaves_a_column_behind_fails_with_a_readable_diff(
    run_cli: RunCli, pg_server: PostgresServer, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path, "leaky_down")
    result = run_cli(
        "db",
        "verify",
        "--dir",
        str(root),
        "--new",
        "20260301000000_add_profile",
        "--database-url",
        pg_server.url(),
    )
    assert result.code == 1, result.stdout + result.stderr
    down = root / "20260301000000_add_profile" / "down.sql"
    assert f"::error file={down}" in result.stdout
    assert "does not restore the schema" in result.stdout
    # The diff names the forgotten column, as a unified diff a reviewer can read.
    assert '+    "bio" "text"' in result.stdout
    assert "--- before 20260301000000_add_profile" in result.stdout
    assert "```diff" in result.summary
    assert json.loads(result.outputs["checked"]) == ["20260301000000_add_profile"]
    assert result.outputs["ok"] == "false"


def test_a_missing_down_script_fails_verify(
    run_cli: RunCli, pg_server: PostgresServer, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path, "missing_down")
    result = run_cli(
        "db", "verify", "--dir", str(root), "--new", "20260301000000_add_nickname",
        "--database-url", pg_server.url(),
    )  # fmt: skip
    assert result.code == 1
    assert "has no down script" in result.stdout


def test_sql_that_fails_names_the_file_and_line(
    run_cli: RunCli, pg_server: PostgresServer, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path, "syntax_error")
    result = run_cli("db", "verify", "--dir", str(root), "--database-url", pg_server.url())
    assert result.code == 1
    up = root / "20260301000000_broken" / "migration.sql"
    assert f"::error file={up},line=3," in result.stdout


def test_the_plain_layout_round_trips(
    run_cli: RunCli, pg_server: PostgresServer, tmp_path: Path
) -> None:
    result = run_cli(
        "db", "verify", "--layout", "plain", "--dir", str(FIXTURES / "plain"),
        "--database-url", pg_server.url(), "--json",
    )  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["checked"] == ["0001_create_accounts", "0002_add_plan", "10_add_country"]
    assert report["problems"] == []


# -- down scripts checked with data ---------------------------------------------------------

WIDEN = "20260301000000_widen_name"


def test_a_down_script_that_cuts_data_fails_with_table_column_and_a_sample_row(
    run_cli: RunCli, pg_server: PostgresServer, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path, "lossy_down")
    result = run_cli(
        "db", "verify", "--dir", str(root), "--new", WIDEN, "--database-url", pg_server.url(),
    )  # fmt: skip
    assert result.code == 1, result.stdout + result.stderr
    down = root / WIDEN / "down.sql"
    line = next(x for x in result.stdout.splitlines() if x.startswith(f"::error file={down}"))
    # The schema is back as it was; the rows are not.
    assert "does not restore the schema" not in result.stdout
    assert "does not bring the rows back" in line
    assert "`users`" in line and "`name`" in line
    # The generated row with the longest name VARCHAR(100) allows, before and after.
    assert "before:" in line and "after:" in line
    assert "(100 characters)" in line and "(10 characters)" in line
    assert result.outputs["ok"] == "false"


def test_a_lossy_down_allowed_with_a_reason_passes_with_a_warning(
    run_cli: RunCli, pg_server: PostgresServer, tmp_path: Path
) -> None:
    root = migration_tree(tmp_path, "lossy_down")
    down = root / WIDEN / "down.sql"
    reason = "names longer than 10 characters were never shown; agreed with support"
    down.write_text(
        f"-- release-actions: allow lossy-down -- {reason}\n" + down.read_text(), encoding="utf-8"
    )
    result = run_cli(
        "db", "verify", "--dir", str(root), "--new", WIDEN, "--database-url", pg_server.url(),
    )  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    warning = next(x for x in result.stdout.splitlines() if x.startswith(f"::warning file={down}"))
    assert "`users`" in warning and "`name`" in warning
    assert reason in warning
    assert "::error" not in result.stdout
    assert result.outputs["ok"] == "true"


def test_rows_survive_every_fixture_round_trip(
    run_cli: RunCli, pg_server: PostgresServer, tmp_path: Path
) -> None:
    """The base history and the other cases keep their rows (the backfill says why it may not)."""
    root = migration_tree(tmp_path, "allowed_rename", "contract")
    result = run_cli("db", "verify", "--dir", str(root), "--database-url", pg_server.url())
    assert result.code == 0, result.stdout + result.stderr
    assert "::error" not in result.stdout
    backfill = root / "20260203000000_backfill_email_verified" / "down.sql"
    warning = next(
        x for x in result.stdout.splitlines() if x.startswith(f"::warning file={backfill}")
    )
    assert "`email_verified`" in warning
    # Rows went into the tables each migration changes before its up ran.
    assert "filled users with 3 row(s)" in result.stdout
    assert "filled trip_plans with 3 row(s)" in result.stdout
