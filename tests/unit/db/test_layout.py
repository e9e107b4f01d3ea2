"""Finding migrations in the Prisma and plain layouts, and picking this release's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from release_actions.db.errors import MigrationError
from release_actions.db.layout import (
    MigrationSettings,
    discover,
    migrations_at_ref,
    names_in_tree,
    select_new,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "migrations"


def test_settings_default_to_prismas_folder_and_command() -> None:
    s = MigrationSettings()
    assert s.path == Path("prisma/migrations")
    assert s.default_deploy_command == "npx prisma migrate deploy"
    assert s.default_status_command == "npx prisma migrate status"
    plain = MigrationSettings(layout="plain")
    assert plain.path == Path("migrations")
    assert plain.default_deploy_command is None
    assert MigrationSettings(dir=Path("db")).path == Path("db")


def test_an_unknown_layout_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(MigrationError, match="`prisma`, `plain`"):
        MigrationSettings(layout="flyway")  # type: ignore[arg-type]


def test_prisma_layout_in_folder_order_with_down_scripts() -> None:
    found = discover(MigrationSettings(dir=FIXTURES / "prisma" / "base"))
    assert [m.name for m in found][:2] == [
        "20260105000000_init",
        "20260120000000_add_trip_categories",
    ]
    assert all(m.down is not None for m in found)
    assert len(found[0].checksum) == 64


def test_plain_layout_sorts_versions_as_numbers() -> None:
    found = discover(MigrationSettings(dir=FIXTURES / "plain", layout="plain"))
    assert [m.name for m in found] == ["0001_create_accounts", "0002_add_plan", "10_add_country"]


def test_a_prisma_folder_without_its_script_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "20260101_x").mkdir()
    with pytest.raises(MigrationError, match=r"has no migration\.sql") as info:
        discover(MigrationSettings(dir=tmp_path))
    assert info.value.file == str(tmp_path / "20260101_x")


def test_a_plain_down_script_without_its_up_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "1_a.down.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="no matching up script"):
        discover(MigrationSettings(dir=tmp_path, layout="plain"))


def test_a_missing_folder_says_which_options_point_at_it(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist") as info:
        discover(MigrationSettings(dir=tmp_path / "nope"))
    assert "--dir" in (info.value.hint or "")


def test_select_new_by_name_and_unknown_names() -> None:
    found = discover(MigrationSettings(dir=FIXTURES / "prisma" / "base"))
    assert [m.name for m in select_new(found, new=["20260105000000_init"])] == [
        "20260105000000_init"
    ]
    assert select_new(found) == found
    with pytest.raises(MigrationError, match="No migration named `typo`"):
        select_new(found, new=["typo"])
    with pytest.raises(MigrationError, match="Only one of"):
        select_new(found, new=["20260105000000_init"], since="v1")


def test_names_in_tree_reads_both_layouts() -> None:
    paths = ["a_x/migration.sql", "a_x/down.sql", "migration_lock.toml", "b/c/migration.sql"]
    assert names_in_tree(paths, "prisma") == {"a_x"}
    assert names_in_tree(["1_a.up.sql", "1_a.down.sql", "notes.md"], "plain") == {"1_a"}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_since_a_tag_selects_the_migrations_added_after_it(tmp_path: Path) -> None:
    root = tmp_path / "prisma" / "migrations"
    shutil.copytree(FIXTURES / "prisma" / "base", root)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "base")
    _git(tmp_path, "tag", "v1.0.0")
    shutil.copytree(
        FIXTURES / "cases" / "contract" / "20260301000000_contract_email_verified",
        root / "20260301000000_contract_email_verified",
    )
    settings = MigrationSettings(dir=root)
    assert len(migrations_at_ref("v1.0.0", settings)) == 5
    new = select_new(discover(settings), since="v1.0.0", settings=settings)
    assert [m.name for m in new] == ["20260301000000_contract_email_verified"]
    with pytest.raises(MigrationError, match="cannot read revision `v9`"):
        migrations_at_ref("v9", settings)
