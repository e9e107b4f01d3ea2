"""Database migrations that can always be rolled back (source §9)."""

from __future__ import annotations

from release_actions.db.layout import Migration, MigrationSettings, discover, migrations_at_ref
from release_actions.db.safety import ContractMigration, contract_migrations_between

__all__ = [
    "ContractMigration",
    "Migration",
    "MigrationSettings",
    "contract_migrations_between",
    "discover",
    "migrations_at_ref",
]
