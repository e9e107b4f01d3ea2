"""The db-migration reusable workflow under act: lint, verify, staging, production, on PostgreSQL.

The consumer calls `triptrip/release-actions/.github/workflows/db-migration.yml@v1`, which
act resolves to this checkout through `--local-repository`, as GitHub resolves it to the
tag. act does not enforce `environment:` (no reviewers, wait timers or environment-scoped
secrets: the secrets given with `-s` reach every job) nor `concurrency:`; what is tested
here is the order of the jobs, what each one does, and that a failure stops the ones after.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.act_harness import ActRun, make_consumer, run_act
from tests.integration.postgres_server import (
    PostgresServer,
    fresh_database,
    shared_postgres_server,
)

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"
MIGRATIONS = "prisma/migrations"
BASE = [
    "20260105000000_init",
    "20260120000000_add_trip_categories",
    "20260127000000_add_email_verified",
]
PASSWORD = "s3cret-pw"  # in both URLs (fresh_database); trust auth ignores it


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with shared_postgres_server() as server:
        yield server


@pytest.fixture
def databases(pg_server: PostgresServer) -> Iterator[tuple[str, str]]:
    with fresh_database(pg_server) as staging, fresh_database(pg_server) as production:
        yield staging, production


def _base_files() -> dict[str, bytes]:
    """The consumer's migration history: the first of the fixture tree's base migrations."""
    root = FIXTURES / "prisma" / "base"
    files = {f"{MIGRATIONS}/migration_lock.toml": (root / "migration_lock.toml").read_bytes()}
    for name in BASE:
        for path in sorted((root / name).glob("*.sql")):
            files[f"{MIGRATIONS}/{name}/{path.name}"] = path.read_bytes()
    return files


def _case_files(case: str) -> dict[str, bytes]:
    root = FIXTURES / "cases" / case
    return {
        f"{MIGRATIONS}/{path.relative_to(root)}": path.read_bytes()
        for path in sorted(root.rglob("*.sql"))
    }


def _git(consumer: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci", *args],
        cwd=consumer,
        check=True,
        capture_output=True,
    )


def _run(consumer: Path, staging: str, production: str, since: str = "") -> ActRun:
    return run_act(
        consumer,
        event_name="push",
        event={
            "ref": "refs/heads/main",
            "repository": {"full_name": "triptrip/webapp", "default_branch": "main"},
        },
        workflow=".github/workflows/db-migration.yml",
        variables={"SINCE": since},
        secrets={"STAGING_DATABASE_URL": staging, "PRODUCTION_DATABASE_URL": production},
        timeout=300,
    )


def _applied(url: str) -> list[str] | None:
    """Names in `_prisma_migrations` that are applied, or None when the table does not exist."""
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('_prisma_migrations')").fetchone() == (None,):
            return None
        rows = conn.execute(
            "SELECT migration_name FROM _prisma_migrations "
            "WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name"
        ).fetchall()
    return [r[0] for r in rows]


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def _job_lines(run: ActRun, job: str) -> str:
    return "\n".join(line for line in run.log.splitlines() if f"/{job}" in line)


def test_a_release_is_linted_verified_then_applied_to_staging_and_production(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    staging, production = databases
    consumer = make_consumer(tmp_path, "db", files=_base_files())
    # The previous release had the base history; this push adds one migration.
    _git(consumer, "tag", "v1.0.0")
    for rel, data in _case_files("allowed_rename").items():
        (consumer / rel).parent.mkdir(parents=True, exist_ok=True)
        (consumer / rel).write_bytes(data)
    _git(consumer, "add", "-A")
    _git(consumer, "commit", "-qm", "rename users.name")
    new = "20260301000000_rename_name"

    run = _run(consumer, staging, production, since="v1.0.0")

    assert run.returncode == 0, run.log[-6000:]
    assert run.result("RESULT") == "success"
    everything = [*BASE, new]
    # Every job ran, in order, and only this release's migration was linted and round-tripped.
    assert "1 new of 4 migration(s): 0 error(s)" in _job_lines(run, "Lint migrations")
    verify = _job_lines(run, "Verify down scripts")
    assert "Started a throwaway PostgreSQL" in verify
    assert f"Checking {new}" in verify and f"Checking {BASE[0]}" not in verify
    assert "1 migration(s) round-tripped on a scratch database: all good." in verify
    # Applied on both, as the bookkeeping table and the workflow's outputs say.
    assert _applied(staging) == everything
    assert _applied(production) == everything
    assert json.loads(run.result("APPLIED_STAGING")) == everything
    assert json.loads(run.result("APPLIED_PRODUCTION")) == everything
    # A rename is a contract step (the old name goes), allowed here by a reviewed comment.
    assert json.loads(run.result("CONTRACT")) == [new]
    assert "Migrating 127.0.0.1:" in _job_lines(run, "Migrate staging")
    assert "Migrating 127.0.0.1:" in _job_lines(run, "Migrate production")
    # The URLs' password was masked everywhere.
    assert PASSWORD not in run.log


def test_a_down_script_that_leaves_a_column_behind_stops_the_release_in_verify(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    staging, production = databases
    consumer = make_consumer(tmp_path, "db", files={**_base_files(), **_case_files("leaky_down")})

    run = _run(consumer, staging, production)

    assert run.returncode != 0
    assert "Job succeeded" in _job_lines(run, "Lint migrations")
    verify = _job_lines(run, "Verify down scripts")
    assert "does not restore the schema" in verify
    assert '+    "bio" "text"' in verify
    assert "Job failed" in verify
    # Neither database was touched: no job after verify ran.
    assert "Migrate staging" not in run.log and "Migrate production" not in run.log
    for url in (staging, production):
        assert _applied(url) is None
        assert _tables(url) == []
    # act ends the run at the first failed job, so the caller's `if: always()` job that
    # records the outputs does not run here; on GitHub it sees `result == 'failure'`.
    assert run.result("RESULT") == ""
