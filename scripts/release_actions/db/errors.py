"""The errors of database migrations, under the project's one hierarchy."""

from __future__ import annotations

from release_actions.errors import IntegrationError, ReleaseActionsError


class MigrationError(ReleaseActionsError):
    """Raised when a migration tree is malformed or a migration cannot be run as asked."""


class MigrationSqlError(MigrationError):
    """Raised when a migration's SQL does not parse or fails on the server; names file and line."""


class ChecksumMismatchError(MigrationError):
    """Raised when an applied migration's file has changed since it was applied."""


class MigrationLockError(MigrationError):
    """Raised when another run holds the migration lock for longer than the lock timeout."""


class DatabaseError(IntegrationError):
    """Raised when the database cannot be reached or refuses an operation outside a migration."""
