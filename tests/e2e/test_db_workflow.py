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
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from tests.e2e.act_harness import ActRun, make_consumer, run_act
from tests.fakes.statuspage import API_KEY, PAGE_ID, StatuspageFake
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


# The consumer's policy names the fake's page (`status-page: true` runs only).
STATUS_PAGE_POLICY = {
    ".github/release-policy.yml": f"notifications:\n  status_page:\n    page_id: {PAGE_ID}\n".encode()
}


def _run(
    consumer: Path,
    staging: str,
    production: str,
    since: str = "",
    status_page: StatuspageFake | None = None,
) -> ActRun:
    secrets = {"STAGING_DATABASE_URL": staging, "PRODUCTION_DATABASE_URL": production}
    env = {}
    if status_page is not None:
        secrets["STATUSPAGE_API_KEY"] = API_KEY
        env["STATUSPAGE_BASE_URL"] = status_page.base_url
    return run_act(
        consumer,
        event_name="push",
        event={
            "ref": "refs/heads/main",
            "repository": {"full_name": "triptrip/webapp", "default_branch": "main"},
        },
        workflow=".github/workflows/db-migration.yml",
        env=env,
        variables={"SINCE": since, "STATUS_PAGE": "true" if status_page else "false"},
        secrets=secrets,
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


def _migrated_between(url: str) -> tuple[datetime, datetime]:
    """When the first migration began and the last one ended, by the database's clock."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT min(started_at), max(finished_at) FROM _prisma_migrations"
        ).fetchone()
    assert row is not None and row[0] is not None and row[1] is not None
    return row[0], row[1]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_release_is_linted_verified_then_applied_to_staging_and_production(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    """With `status-page: true`: the page is in maintenance while production migrates."""
    staging, production = databases
    consumer = make_consumer(tmp_path, "db", files={**_base_files(), **STATUS_PAGE_POLICY})
    # The previous release had the base history; this push adds one migration.
    _git(consumer, "tag", "v1.0.0")
    for rel, data in _case_files("allowed_rename").items():
        (consumer / rel).parent.mkdir(parents=True, exist_ok=True)
        (consumer / rel).write_bytes(data)
    _git(consumer, "add", "-A")
    _git(consumer, "commit", "-qm", "rename users.name")
    new = "20260301000000_rename_name"

    with StatuspageFake() as page:
        run = _run(consumer, staging, production, since="v1.0.0", status_page=page)

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

    # The status page: nothing was scheduled for now, so the production job announced a
    # maintenance from now, started it before the first migration and completed it after the
    # last one (the fake's clock and PostgreSQL's are the machine's).
    assert API_KEY not in run.log
    (maintenance,) = page.created()
    path = f"/v1/pages/{PAGE_ID}/incidents"
    assert page.writes() == [
        ("POST", path),
        ("PATCH", f"{path}/{maintenance['id']}"),
        ("PATCH", f"{path}/{maintenance['id']}"),
    ]
    sent = [r.body["incident"] for r in page.requests if r.method != "GET"]
    assert sent[0]["status"] == "scheduled" and sent[0]["name"] == "[Scheduled] System Maintenance"
    assert [s.get("status") for s in sent[1:]] == ["in_progress", "completed"]
    updates = {u["status"]: _at(u["created_at"]) for u in maintenance["incident_updates"]}
    first_began, last_ended = _migrated_between(production)
    assert updates["in_progress"] < first_began
    assert last_ended < updates["completed"]
    assert maintenance["status"] == "completed"
    assert {page.status_of("TripTrip API"), page.status_of("TripTrip Web")} == {"operational"}
    production_log = _job_lines(run, "Migrate production")
    assert "from now and started it on page" in production_log
    assert f"Maintenance {maintenance['id']} is completed on page" in production_log
    assert "did not succeed" not in production_log and "Status page" not in production_log


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


def test_a_status_page_that_is_down_does_not_stop_the_migration(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    staging, production = databases
    consumer = make_consumer(tmp_path, "db", files={**_base_files(), **STATUS_PAGE_POLICY})

    with StatuspageFake() as page:
        page.fail_next(503, times=1000, message="Service Unavailable")
        run = _run(consumer, staging, production, status_page=page)

    assert run.returncode == 0, run.log[-6000:]
    assert run.result("RESULT") == "success"
    assert _applied(production) == BASE
    assert json.loads(run.result("APPLIED_PRODUCTION")) == BASE
    production_log = _job_lines(run, "Migrate production")
    # The start was tried (and retried) and given up; nothing was completed, and the job
    # says the migration went on without the page.
    assert page.requests and page.writes() == []
    assert "HTTP 503: Service Unavailable" in production_log
    assert "Run Main Complete the status page maintenance" not in production_log
    assert "could not be started" in production_log and "the migration went on" in production_log


def test_a_failed_production_migration_still_completes_the_maintenance(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    staging, production = databases
    # Production has drifted: a table the first migration creates is there already.
    with psycopg.connect(production) as conn:
        conn.execute('CREATE TABLE "users" ("id" integer)')
    consumer = make_consumer(tmp_path, "db", files={**_base_files(), **STATUS_PAGE_POLICY})

    with StatuspageFake() as page:
        run = _run(consumer, staging, production, status_page=page)

    assert run.returncode != 0
    assert _applied(staging) == BASE
    production_log = _job_lines(run, "Migrate production")
    assert "Job failed" in production_log
    # Started before the migration, and completed after it failed rather than left "in
    # progress"; the job summary says that the migration did not succeed.
    (maintenance,) = page.created()
    assert [r.body["incident"].get("status") for r in page.requests if r.method != "GET"] == [
        "scheduled",
        "in_progress",
        "completed",
    ]
    assert maintenance["status"] == "completed"
    assert page.status_of("TripTrip API") == "operational"
    assert "ended in `failure`" in production_log
    assert "the production migration did not succeed" in production_log
