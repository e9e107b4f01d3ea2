"""Database URLs and connections: psycopg imported lazily, passwords kept out of every log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from release_actions.db.errors import DatabaseError
from release_actions.errors import require


def psycopg() -> Any:
    return require("psycopg", "db")


def _conninfo() -> Any:
    return require("psycopg.conninfo", "db")


def parts(url: str) -> dict[str, str]:
    """The libpq parameters of a URL or key=value string."""
    try:
        return dict(_conninfo().conninfo_to_dict(url))
    except Exception as exc:  # psycopg.ProgrammingError; its text never holds the password
        raise DatabaseError(
            "The database URL cannot be read.",
            hint="Give a URL such as `postgresql://user:password@host:5432/dbname`.",
        ) from exc


def password(url: str) -> str | None:
    return parts(url).get("password") or None


def describe(url: str) -> str:
    """A printable name of the database: host, port and name, never the credentials."""
    p = parts(url)
    host = p.get("host") or "localhost"
    port = p.get("port") or "5432"
    return f"{host}:{port}/{p.get('dbname') or p.get('user') or ''}"


def with_database(url: str, dbname: str, *, keep_password: bool = True) -> str:
    p = parts(url)
    p["dbname"] = dbname
    if not keep_password:
        p.pop("password", None)
    return str(_conninfo().make_conninfo("", **p))


def connect(url: str, *, autocommit: bool = True, connect_timeout: int = 10) -> Any:
    pg = psycopg()
    try:
        return pg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout)
    except pg.OperationalError as exc:
        secret = password(url)
        text = str(exc).strip()
        if secret:
            text = text.replace(secret, "***")
        raise DatabaseError(
            f"Cannot connect to {describe(url)}: {text}",
            hint="Check `DATABASE_URL` (or `--database-url`): host, port, user, password, "
            "and that the server accepts connections from this runner.",
        ) from None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn a driver error outside a migration's own SQL into a DatabaseError without secrets."""
    pg = psycopg()
    try:
        yield
    except pg.Error as exc:
        secret = password(url)
        text = str(exc).strip() or type(exc).__name__
        if secret:
            text = text.replace(secret, "***")
        hint = None
        if getattr(exc, "sqlstate", None) == "42501":
            hint = (
                "The database user lacks a privilege: `db verify` needs CREATEDB, `db deploy` "
                "needs to create the bookkeeping table and change the schema."
            )
        raise DatabaseError(f"{describe(url)}: {text}", hint=hint) from None
