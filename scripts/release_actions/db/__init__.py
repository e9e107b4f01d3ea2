"""Database migrations that can always be rolled back (source §9)."""

from __future__ import annotations

from release_actions.db.ephemeral import (
    EphemeralPostgres,
    EphemeralPostgresError,
    PostgresUnavailableError,
    ephemeral_database,
    ephemeral_server,
)
from release_actions.db.layout import Migration, MigrationSettings, discover, migrations_at_ref
from release_actions.db.safety import ContractMigration, contract_migrations_between

__all__ = [
    "ContractMigration",
    "EphemeralPostgres",
    "EphemeralPostgresError",
    "Migration",
    "MigrationSettings",
    "PostgresUnavailableError",
    "contract_migrations_between",
    "discover",
    "ephemeral_database",
    "ephemeral_server",
    "migrations_at_ref",
]
