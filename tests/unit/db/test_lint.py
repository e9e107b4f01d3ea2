"""Lint: down scripts, expand/contract classification (source §9.3) and locking rules."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from release_actions.db.layout import Migration, MigrationSettings, discover
from release_actions.db.lint import Kind, LintReport, find_squawk, lint

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "migrations"
BASE = FIXTURES / "prisma" / "base"


def _tree(
    tmp_path: Path, *cases: str, extra: dict[str, tuple[str, str | None]] | None = None
) -> Path:
    root = tmp_path / "migrations"
    shutil.copytree(BASE, root)
    for case in cases:
        for m in (FIXTURES / "cases" / case).iterdir():
            shutil.copytree(m, root / m.name)
    for name, (up, down) in (extra or {}).items():
        (root / name).mkdir()
        (root / name / "migration.sql").write_text(up)
        if down is not None:
            (root / name / "down.sql").write_text(down)
    return root


def _lint(root: Path, *new: str, squawk: bool = False) -> tuple[LintReport, list[Migration]]:
    found = discover(MigrationSettings(dir=root))
    chosen = [m for m in found if m.name in new] if new else found
    return lint(found, chosen, squawk=None if squawk else False), found


def _rules(report: LintReport, severity: str = "error") -> set[str]:
    return {f.rule for f in report.findings if f.severity == severity}


def _kind(report: LintReport, name: str) -> Kind:
    return next(r.kind for r in report.migrations if r.migration.name == name)


def test_the_base_history_passes_as_expand(tmp_path: Path) -> None:
    report, _ = _lint(_tree(tmp_path), *[p.name for p in BASE.iterdir() if p.is_dir()][1:])
    assert not report.failed()
    assert {r.kind for r in report.migrations if r.new} == {Kind.EXPAND}
    # The document's own example locks tables while it indexes and adds the foreign key.
    assert {"require-concurrent-index-creation", "constraint-missing-not-valid"} <= _rules(
        report, "warning"
    )
    assert report.failed("warning")


def test_a_missing_down_script_fails(tmp_path: Path) -> None:
    report, _ = _lint(_tree(tmp_path, "missing_down"), "20260301000000_add_nickname")
    assert _rules(report) == {"missing-down"}
    finding = next(f for f in report.findings if f.rule == "missing-down")
    assert finding.file.endswith("20260301000000_add_nickname/migration.sql")
    assert "down.sql" in finding.message


def test_not_null_without_default_is_breaking_with_the_six_steps(tmp_path: Path) -> None:
    report, _ = _lint(_tree(tmp_path, "not_null_no_default"), "20260301000000_add_age")
    assert _kind(report, "20260301000000_add_age") is Kind.BREAKING
    finding = next(f for f in report.findings if f.rule == "add-column-not-null-without-default")
    assert finding.severity == "error"
    assert finding.line == 2
    assert finding.fix is not None
    assert "§9.3" in finding.fix
    assert "(4) SET NOT NULL" in finding.fix


def test_a_rename_is_breaking(tmp_path: Path) -> None:
    report, _ = _lint(_tree(tmp_path, "rename"), "20260301000000_rename_name")
    assert _kind(report, "20260301000000_rename_name") is Kind.BREAKING
    assert _rules(report) == {"rename-column"}


def test_a_reviewed_exception_passes_and_keeps_its_reason(tmp_path: Path) -> None:
    report, _ = _lint(_tree(tmp_path, "allowed_rename"), "20260301000000_rename_name")
    assert not report.failed()
    assert _kind(report, "20260301000000_rename_name") is Kind.CONTRACT
    finding = next(f for f in report.findings if f.rule == "rename-column")
    assert finding.severity == "notice"
    assert finding.allowed == "no code reads users.name yet (feature flag off)"


def test_an_exception_without_a_reason_fails(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        extra={
            "20260301000000_x": (
                "-- release-actions: allow rename-column\n"
                'ALTER TABLE "users" RENAME COLUMN "name" TO "full_name";\n',
                'ALTER TABLE "users" RENAME COLUMN "full_name" TO "name";\n',
            )
        },
    )
    report, _ = _lint(root, "20260301000000_x")
    assert _rules(report) == {"allow-without-reason"}


def test_an_exception_that_excuses_nothing_is_a_warning(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        extra={
            "20260301000000_x": (
                "-- release-actions: allow truncate -- not needed\n"
                'ALTER TABLE "users" ADD COLUMN "bio" TEXT;\n',
                'ALTER TABLE "users" DROP COLUMN "bio";\n',
            )
        },
    )
    report, _ = _lint(root, "20260301000000_x")
    assert not report.failed()
    assert _rules(report, "warning") == {"unused-allow"}


def test_a_syntax_error_fails_with_file_and_line(tmp_path: Path) -> None:
    report, _ = _lint(_tree(tmp_path, "syntax_error"), "20260301000000_broken")
    finding = next(f for f in report.findings if f.rule == "syntax-error")
    assert finding.severity == "error"
    assert finding.line == 3
    assert finding.file.endswith("20260301000000_broken/migration.sql")


def test_drops_are_contract_steps_and_set_not_null_needs_a_backfill(tmp_path: Path) -> None:
    report, _ = _lint(_tree(tmp_path, "contract"), "20260301000000_contract_email_verified")
    assert not report.failed()
    assert _kind(report, "20260301000000_contract_email_verified") is Kind.CONTRACT
    assert {"set-not-null", "drop-column"} <= _rules(report, "notice")


def test_set_not_null_with_no_backfill_is_breaking(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        extra={
            "20260301000000_x": (
                'ALTER TABLE "trip_plans" ALTER COLUMN "category_id" SET NOT NULL;\n',
                'ALTER TABLE "trip_plans" ALTER COLUMN "category_id" DROP NOT NULL;\n',
            )
        },
    )
    report, _ = _lint(root, "20260301000000_x")
    assert _rules(report) == {"not-null-without-backfill"}


def test_expand_and_contract_of_one_column_in_one_release_fail(tmp_path: Path) -> None:
    root = _tree(tmp_path, "contract")
    report, _ = _lint(
        root,
        "20260127000000_add_email_verified",
        "20260203000000_backfill_email_verified",
        "20260301000000_contract_email_verified",
    )
    assert _rules(report) == {"expand-contract-same-release"}
    finding = next(f for f in report.findings if f.rule == "expand-contract-same-release")
    assert "20260127000000_add_email_verified" in finding.message
    assert finding.line == 3  # the SET NOT NULL
    assert finding.fix is not None
    assert "later" in finding.fix


def test_changes_to_a_table_created_in_the_same_release_are_expand(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        extra={
            "20260301000000_a": (
                'CREATE TABLE "notes" ("id" INT PRIMARY KEY, "body" TEXT);\n',
                'DROP TABLE "notes";\n',
            ),
            "20260302000000_b": (
                'ALTER TABLE "notes" ADD COLUMN "owner" INT NOT NULL;\n'
                'ALTER TABLE "notes" RENAME COLUMN "body" TO "text";\n',
                'ALTER TABLE "notes" RENAME COLUMN "text" TO "body";\n'
                'ALTER TABLE "notes" DROP COLUMN "owner";\n',
            ),
        },
    )
    report, _ = _lint(root, "20260301000000_a", "20260302000000_b")
    assert not report.failed()
    assert _kind(report, "20260302000000_b") is Kind.EXPAND


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ('ALTER TABLE "users" ALTER COLUMN "name" TYPE TEXT;', "change-column-type"),
        ('ALTER TABLE "users" RENAME TO "people";', "rename-table"),
        ('TRUNCATE "trip_plans";', "truncate"),
    ],
)
def test_more_breaking_changes(tmp_path: Path, sql: str, rule: str) -> None:
    root = _tree(tmp_path, extra={"20260301000000_x": (sql + "\n", "SELECT 1;\n")})
    report, _ = _lint(root, "20260301000000_x")
    assert rule in _rules(report)


def test_a_concurrent_index_must_stand_alone(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        extra={
            "20260301000000_x": (
                'ALTER TABLE "users" ADD COLUMN "bio" TEXT;\n'
                'CREATE INDEX CONCURRENTLY "users_bio_idx" ON "users" ("bio");\n',
                'DROP INDEX "users_bio_idx";\nALTER TABLE "users" DROP COLUMN "bio";\n',
            )
        },
    )
    report, _ = _lint(root, "20260301000000_x")
    finding = next(f for f in report.findings if f.rule == "non-transactional-statement")
    assert finding.severity == "error"
    assert finding.line == 2


def test_the_builtin_locking_rules_stand_in_for_squawk(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        extra={
            "20260301000000_x": (
                'CREATE INDEX "users_name_idx" ON "users" ("name");\n'
                'ALTER TABLE "users" ADD CONSTRAINT "users_name_key" UNIQUE ("name");\n'
                'ALTER TABLE "users" ADD CONSTRAINT "c" CHECK ("name" <> \'\') NOT VALID;\n',
                'DROP INDEX IF EXISTS "users_name_idx";\n',
            )
        },
    )
    report, _ = _lint(root, "20260301000000_x")
    assert "built-in" in report.locking_rules
    assert _rules(report, "warning") == {
        "require-concurrent-index-creation",
        "disallowed-unique-constraint",
    }


def test_squawk_findings_are_mapped_and_can_be_excused(tmp_path: Path) -> None:
    if find_squawk() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("squawk (pip install squawk-cli) is required under CI=true")
        pytest.skip("squawk is not installed")
    root = _tree(
        tmp_path,
        extra={
            "20260301000000_x": (
                "-- release-actions: allow require-concurrent-index-creation -- tiny table\n"
                'CREATE INDEX "users_name_idx" ON "users" ("name");\n'
                'ALTER TABLE "users" ADD CONSTRAINT "users_name_key" UNIQUE ("name");\n',
                'DROP INDEX IF EXISTS "users_name_idx";\n',
            )
        },
    )
    report, _ = _lint(root, "20260301000000_x", squawk=True)
    assert report.locking_rules.startswith("squawk")
    by_rule = {f.rule: f for f in report.findings}
    assert by_rule["require-concurrent-index-creation"].allowed == "tiny table"
    assert by_rule["require-concurrent-index-creation"].severity == "notice"
    assert by_rule["disallowed-unique-constraint"].severity == "warning"
    assert by_rule["disallowed-unique-constraint"].line == 3
    assert by_rule["disallowed-unique-constraint"].source == "squawk"
    # Rules that the expand/contract rules own are not reported twice; style rules are noise.
    assert not {"prefer-robust-stmts", "renaming-column", "ban-drop-column"} & set(by_rule)
