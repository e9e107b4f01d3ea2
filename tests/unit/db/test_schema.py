"""Normalising pg_dump output so equal schemas compare equal and differences read well."""

from __future__ import annotations

from release_actions.db.schema import diff, normalise

DUMP = """--
-- PostgreSQL database dump
--
\\restrict AbC123

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE "public"."users" (
    "id" integer NOT NULL,
    "name" "text"
);

CREATE FUNCTION "public"."f"() RETURNS integer
    LANGUAGE "plpgsql"
    AS $$
BEGIN
  RETURN 1;
END;
$$;

ALTER TABLE ONLY "public"."users"
    ADD CONSTRAINT "users_pkey" PRIMARY KEY ("id");

\\unrestrict AbC123
"""


def test_comments_set_lines_and_restrict_keys_are_dropped() -> None:
    text = "\n".join(normalise(DUMP))
    assert "SET " not in text
    assert "restrict" not in text
    assert "--" not in text
    assert "set_config" not in text


def test_column_order_and_statement_order_do_not_count() -> None:
    moved = DUMP.replace(
        '    "id" integer NOT NULL,\n    "name" "text"\n',
        '    "name" "text",\n    "id" integer NOT NULL\n',
    )
    assert normalise(moved) == normalise(DUMP)


def test_a_function_body_stays_one_statement() -> None:
    lines = normalise(DUMP)
    start = lines.index('CREATE FUNCTION "public"."f"() RETURNS integer')
    assert lines[start + 6] == "$$;"


def test_a_leftover_column_shows_as_an_added_line() -> None:
    after = DUMP.replace('    "name" "text"\n', '    "name" "text",\n    "bio" "text"\n')
    text = diff(normalise(DUMP), normalise(after), "before", "after")
    assert '+    "bio" "text"' in text.splitlines()
    assert text.startswith("--- before\n+++ after")
