"""Rollback safety: the contract migrations an application rollback would cross."""

from __future__ import annotations

import shutil
from pathlib import Path

from release_actions.db import MigrationSettings, contract_migrations_between, discover
from release_actions.db.lint import Kind

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "migrations"
CONTRACT = "20260301000000_contract_email_verified"


def _catalog(tmp_path: Path) -> Path:
    root = tmp_path / "m"
    shutil.copytree(FIXTURES / "prisma" / "base", root)
    shutil.copytree(FIXTURES / "cases" / "contract" / CONTRACT, root / CONTRACT)
    return root


def test_going_back_past_a_contract_migration_is_reported(tmp_path: Path) -> None:
    root = _catalog(tmp_path)
    catalog = discover(MigrationSettings(dir=root))
    applied = [m.name for m in catalog]
    target = applied[:3]  # the release before the backfill, index and contract
    found = contract_migrations_between(applied, target, migrations=catalog)
    assert [c.name for c in found] == [CONTRACT]
    assert found[0].kind is Kind.CONTRACT
    assert {c.action for c in found[0].changes} == {"set not null", "drop column"}
    assert "drop column `users.is_verified`" in found[0].describe()


def test_expand_only_migrations_are_safe_to_cross(tmp_path: Path) -> None:
    root = _catalog(tmp_path)
    catalog = discover(MigrationSettings(dir=root))
    applied = [m.name for m in catalog][:-1]
    assert contract_migrations_between(applied, applied[:1], migrations=catalog) == []


def test_settings_read_the_checkout_and_unknown_names_fail_safe(tmp_path: Path) -> None:
    root = _catalog(tmp_path)
    found = contract_migrations_between(
        ["20260105000000_init", "20990101000000_from_the_future"],
        ["20260105000000_init"],
        settings=MigrationSettings(dir=root),
    )
    assert [(c.name, c.kind) for c in found] == [("20990101000000_from_the_future", Kind.CONTRACT)]
