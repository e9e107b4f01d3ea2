"""`release-actions db` driven through `main` with a cleared environment (no database needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import RunCli

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "migrations"


def _tree(tmp_path: Path, case: str) -> Path:
    root = tmp_path / "prisma" / "migrations"
    shutil.copytree(FIXTURES / "prisma" / "base", root)
    for m in (FIXTURES / "cases" / case).iterdir():
        shutil.copytree(m, root / m.name)
    return root


def test_lint_annotates_file_and_line_with_the_fix_and_exits_1(
    run_cli: RunCli, tmp_path: Path
) -> None:
    root = _tree(tmp_path, "not_null_no_default")
    result = run_cli("db", "lint", "--dir", str(root), "--new", "20260301000000_add_age")
    assert result.code == 1
    up = root / "20260301000000_add_age" / "migration.sql"
    line = next(x for x in result.stdout.splitlines() if x.startswith(f"::error file={up},line=2"))
    assert "add-column-not-null-without-default" in line
    assert "Fix%3A" not in line  # only properties are escaped that way; the message is plain
    assert "Fix: Add the column nullable" in line
    assert json.loads(result.outputs["kinds"]) == {"20260301000000_add_age": "breaking"}
    assert json.loads(result.outputs["breaking"]) == ["20260301000000_add_age"]
    assert result.outputs["errors"] == "1"
    assert "| 20260301000000_add_age | breaking | 1 |" in result.summary


def test_lint_passes_a_contract_release_and_lists_it(run_cli: RunCli, tmp_path: Path) -> None:
    root = _tree(tmp_path, "contract")
    result = run_cli(
        "db", "lint", "--dir", str(root), "--new", "20260301000000_contract_email_verified",
        "--no-squawk", "--json",
    )  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    assert json.loads(result.outputs["contract"]) == ["20260301000000_contract_email_verified"]
    body = json.loads(result.stdout)
    assert body["migrations"][0]["kind"] == "contract"
    assert "built-in" in body["locking_rules"]


def test_lint_fail_on_warning(run_cli: RunCli, tmp_path: Path) -> None:
    root = _tree(tmp_path, "contract")
    args = ("db", "lint", "--dir", str(root), "--no-squawk")
    new = ("--new", "20260120000000_add_trip_categories")
    assert run_cli(*args, *new).code == 0
    assert run_cli(*args, *new, "--fail-on", "warning").code == 1


def test_lint_refuses_since_and_new_together(run_cli: RunCli, tmp_path: Path) -> None:
    root = _tree(tmp_path, "contract")
    result = run_cli("db", "lint", "--dir", str(root), "--since", "v1", "--new", "x")
    assert result.code == 2
    assert "Only one of `--since` or `--new`" in result.stdout


def test_deploy_without_a_database_url_says_how_to_pass_it(run_cli: RunCli, tmp_path: Path) -> None:
    root = _tree(tmp_path, "contract")
    result = run_cli("db", "deploy", "--runner", "builtin", "--dir", str(root))
    assert result.code == 2
    assert "`DATABASE_URL`" in result.stdout
    assert "secrets.DATABASE_URL" in result.stderr


def test_an_unreachable_database_is_named_without_its_password(
    run_cli: RunCli, tmp_path: Path
) -> None:
    root = _tree(tmp_path, "contract")
    url = "postgresql://app:hunter2-secret@127.0.0.1:9/app?connect_timeout=2"
    result = run_cli("db", "status", "--runner", "builtin", "--dir", str(root),
                     env={"DATABASE_URL": url})  # fmt: skip
    assert result.code == 2
    assert "Cannot connect to 127.0.0.1:9/app" in result.stdout
    shown = [x for x in result.stdout.splitlines() if not x.startswith("::add-mask::")]
    assert "hunter2-secret" not in "\n".join(shown) + result.stderr
    assert "::add-mask::hunter2-secret" in result.stdout


def test_dry_run_of_the_consumers_command_runs_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    root = _tree(tmp_path, "contract")
    result = run_cli("--dry-run", "db", "deploy", "--dir", str(root),
                     env={"DATABASE_URL": "postgresql://u@127.0.0.1:9/x"})  # fmt: skip
    assert result.code == 0
    assert "Would run `npx prisma migrate deploy`" in result.stdout


def test_help_lists_the_commands(run_cli: RunCli, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("db", "--help").code == 0
    shown = capsys.readouterr().out
    for name in ("lint", "verify", "deploy", "status", "rollback", "resolve"):
        assert f"  {name} " in shown


# -- lint compares with the base branch by default -----------------------------------------

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

ADD_RANK = "20260301000000_add_rank"
DROP_TITLE = "20260302000000_drop_title"


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout


def _add(root: Path, name: str, up: str, down: str) -> None:
    (root / name).mkdir()
    (root / name / "migration.sql").write_text(up)
    (root / name / "down.sql").write_text(down)


def _repo_with_a_branch(tmp_path: Path) -> tuple[Path, Path]:
    """The fixture history shipped on `main`; a branch adds NOT NULL and drops a column."""
    repo = tmp_path / "repo"
    root = repo / "prisma" / "migrations"
    shutil.copytree(FIXTURES / "prisma" / "base", root)
    _git(repo.parent, "init", "-q", "-b", "main", str(repo))
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    _git(repo, "checkout", "-q", "-b", "feature")
    _add(
        root,
        ADD_RANK,
        'ALTER TABLE "users" ADD COLUMN "rank" INT NOT NULL;\n',
        'ALTER TABLE "users" DROP COLUMN IF EXISTS "rank";\n',
    )
    _add(
        root,
        DROP_TITLE,
        'ALTER TABLE "trip_plans" DROP COLUMN "title";\n',
        'ALTER TABLE "trip_plans" ADD COLUMN "title" TEXT;\n',
    )
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "rank, drop title")
    return repo, root


@needs_git
def test_lint_without_flags_sees_the_tables_the_base_branch_shipped(
    run_cli: RunCli, tmp_path: Path
) -> None:
    _, root = _repo_with_a_branch(tmp_path)
    result = run_cli("db", "lint", "--dir", str(root), "--no-squawk")
    assert result.code == 1, result.stdout + result.stderr
    add_up = root / ADD_RANK / "migration.sql"
    drop_up = root / DROP_TITLE / "migration.sql"
    assert any(
        line.startswith(f"::error file={add_up},line=1")
        and "add-column-not-null-without-default" in line
        for line in result.stdout.splitlines()
    ), result.stdout
    assert any(
        line.startswith(f"::notice file={drop_up},line=1") and "drop-column" in line
        for line in result.stdout.splitlines()
    ), result.stdout
    assert json.loads(result.outputs["kinds"]) == {ADD_RANK: "breaking", DROP_TITLE: "contract"}
    assert json.loads(result.outputs["contract"]) == [DROP_TITLE]
    assert "2 new of 7 migration(s)" in result.stdout
    assert "merge base with `main`" in result.stdout
    assert "counts as new" not in result.stdout


@needs_git
def test_lint_on_a_tag_push_compares_with_the_previous_release_tag(
    run_cli: RunCli, tmp_path: Path
) -> None:
    repo, root = _repo_with_a_branch(tmp_path)
    _git(repo, "checkout", "-q", "main")
    _git(repo, "tag", "v1.0.0", "HEAD")
    _git(repo, "tag", "unrelated-1", "HEAD")
    _git(repo, "merge", "-q", "--ff-only", "feature")
    _git(repo, "tag", "v1.1.0")
    result = run_cli(
        "db", "lint", "--dir", str(root), "--no-squawk",
        env={"GITHUB_REF": "refs/tags/v1.1.0"},
    )  # fmt: skip
    assert result.code == 1, result.stdout + result.stderr
    assert json.loads(result.outputs["kinds"]) == {ADD_RANK: "breaking", DROP_TITLE: "contract"}
    assert "previous release tag `v1.0.0`" in result.stdout
    # On `main` itself (a push after the merge) the merge base is HEAD: what the push added
    # is what the commit before it lacks, so the workflow's lint on main still sees it.
    plain = run_cli("db", "lint", "--dir", str(root), "--no-squawk")
    assert "the commit before this one on `main`" in plain.stdout
    assert json.loads(plain.outputs["kinds"]) == {ADD_RANK: "breaking", DROP_TITLE: "contract"}


@needs_git
def test_lint_without_a_known_base_counts_every_migration_and_says_so(
    run_cli: RunCli, tmp_path: Path
) -> None:
    root = _tree(tmp_path, "contract")  # not a git repository
    result = run_cli(
        "db", "lint", "--dir", str(root), "--no-squawk",
        env={"GIT_CEILING_DIRECTORIES": str(tmp_path)},
    )  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    warning = next(x for x in result.stdout.splitlines() if "counts as new" in x)
    assert warning.startswith("::warning")
    assert "fetch-depth: 0" in warning
    assert "6 new of 6 migration(s)" in result.stdout


@needs_git
def test_lint_on_a_tag_push_without_a_previous_tag_says_so(run_cli: RunCli, tmp_path: Path) -> None:
    repo, root = _repo_with_a_branch(tmp_path)
    _git(repo, "tag", "v1.0.0")
    result = run_cli(
        "db", "lint", "--dir", str(root), "--no-squawk",
        env={"GITHUB_REF": "refs/tags/v1.0.0"},
    )  # fmt: skip
    warning = next(x for x in result.stdout.splitlines() if "counts as new" in x)
    assert warning.startswith("::warning")
    assert "no release tag before `v1.0.0`" in warning
    assert "7 new of 7 migration(s)" in result.stdout
