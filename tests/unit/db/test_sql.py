"""Splitting migration SQL with PostgreSQL's parser: lines, exceptions, transactions."""

from __future__ import annotations

import pytest

from release_actions.db.errors import MigrationSqlError
from release_actions.db.sql import parse, runs_in_transaction


def test_statements_keep_their_lines_past_japanese_comments() -> None:
    script = parse(
        "-- カテゴリを追加する\nCREATE TABLE a (id int);\n\n/* 説明 */ ALTER TABLE a\n  ADD COLUMN b int;\n",
        "m.sql",
    )
    assert [(s.line, s.end_line) for s in script.statements] == [(2, 2), (4, 5)]
    assert script.statements[1].text == "ALTER TABLE a\n  ADD COLUMN b int"
    assert script.statements[1].line_at(17) == 5


def test_sql_that_does_not_parse_names_file_and_line() -> None:
    with pytest.raises(MigrationSqlError) as info:
        parse("SELECT 1;\n-- ok\nALTR TABLE x ADD COLUMN y int;\n", "db/m.sql")
    assert info.value.file == "db/m.sql"
    assert info.value.line == 3
    assert "ALTR" in info.value.message


def test_an_unterminated_statement_at_the_end_points_at_the_last_line() -> None:
    with pytest.raises(MigrationSqlError) as info:
        parse("SELECT 1;\nSELECT (\n", "m.sql")
    assert info.value.line == 2


def test_an_allow_comment_attaches_to_the_next_statement_only() -> None:
    script = parse(
        "CREATE TABLE a (id int);\n"
        "-- release-actions: allow rename-column, drop-column -- reviewed in #42\n"
        "ALTER TABLE a RENAME COLUMN id TO key;\n"
        "ALTER TABLE a DROP COLUMN key;\n",
        "m.sql",
    )
    first, second, third = script.statements
    assert first.allows == ()
    assert second.allowed("rename-column") is not None
    allow = second.allowed("drop-column")
    assert allow is not None
    assert allow.reason == "reviewed in #42"
    assert allow.line == 2
    assert third.allowed("drop-column") is None


def test_an_allow_in_a_block_comment_or_on_the_same_line() -> None:
    script = parse(
        "ALTER TABLE a RENAME TO b; -- release-actions: allow rename-table -- unused table\n"
        "/* release-actions: allow truncate -- test data only */ TRUNCATE c;\n",
        "m.sql",
    )
    assert script.statements[0].allowed("rename-table") is not None
    allow = script.statements[1].allowed("truncate")
    assert allow is not None
    assert allow.reason == "test data only"


@pytest.mark.parametrize(
    ("sql", "in_tx"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (x)", False),
        ("CREATE INDEX i ON t (x)", True),
        ("DROP INDEX CONCURRENTLY i", False),
        ("REINDEX INDEX CONCURRENTLY i", False),
        ("VACUUM t", False),
        ("ANALYZE t", True),
        ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", False),
        ("ALTER TYPE mood ADD VALUE 'meh'", True),
        ("CREATE DATABASE x", False),
    ],
)
def test_statements_postgres_refuses_in_a_transaction(sql: str, in_tx: bool) -> None:
    assert runs_in_transaction(parse(sql, "m.sql").statements[0].node) is in_tx


def test_a_script_with_one_concurrent_statement_needs_no_transaction() -> None:
    assert parse("CREATE INDEX CONCURRENTLY i ON t (x);", "m.sql").needs_no_transaction
    assert not parse("CREATE INDEX i ON t (x);", "m.sql").needs_no_transaction
    assert parse("BEGIN; SELECT 1; COMMIT;", "m.sql").manages_transactions
