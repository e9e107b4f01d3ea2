"""Schema snapshots with pg_dump, normalised so two equal schemas compare equal."""

from __future__ import annotations

import difflib
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from release_actions.db.connect import parts, password, with_database
from release_actions.db.errors import DatabaseError

# Debian's postgresql packages put the binaries here and only some wrappers on PATH.
PG_BIN_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql*/bin",
)

_DOLLAR = re.compile(r"\$[A-Za-z_0-9]*\$")


def _version_key(path: str) -> tuple[int, str]:
    m = re.search(r"/(\d+)/bin", path)
    return (int(m[1]) if m else 0, path)


def find_binary(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A PostgreSQL binary: on PATH, else the newest under the usual install folders."""
    found = shutil.which(name, path=(env or {}).get("PATH")) if env is not None else None
    found = found or shutil.which(name)
    if found:
        return found
    candidates = [
        str(Path(folder) / name)
        for pattern in PG_BIN_GLOBS
        for folder in glob.glob(pattern)
        if (Path(folder) / name).is_file()
    ]
    return max(candidates, key=_version_key) if candidates else None


def dump(url: str, dbname: str, pg_dump: str, *, exclude_tables: tuple[str, ...] = ()) -> str:
    """`pg_dump --schema-only` of one database; the password goes by environment, not argv."""
    env = dict(os.environ)
    secret = password(url)
    if secret:
        env["PGPASSWORD"] = secret
    args = [pg_dump, "--schema-only", "--no-owner", "--no-privileges", "--quote-all-identifiers"]
    args += [f"--exclude-table={t}" for t in exclude_tables]
    args.append(f"--dbname={with_database(url, dbname, keep_password=False)}")
    proc = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=120)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        if secret:
            err = err.replace(secret, "***")
        raise DatabaseError(
            f"pg_dump of {parts(url).get('host', 'localhost')}/{dbname} failed: {err}",
            hint="pg_dump must be at least the server's major version; pass `--pg-dump PATH`.",
        )
    return proc.stdout


def normalise(text: str) -> list[str]:
    """The dump without comments, SET lines and ordering noise: statements sorted, columns sorted."""
    kept = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("--") or line.startswith("\\"):
            continue
        if re.match(r"^SET [a-z_]+ = ", line) or line.startswith("SELECT pg_catalog.set_config("):
            continue
        kept.append(line)
    blocks: list[list[str]] = []
    current: list[str] = []
    in_body = False
    for line in kept:
        current.append(line)
        if len(_DOLLAR.findall(line)) % 2:
            in_body = not in_body
        if not in_body and line.endswith(";"):
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    out: list[tuple[str, ...]] = []
    for block in blocks:
        if block[0].startswith("CREATE TABLE ") and len(block) > 2 and block[-1].startswith(")"):
            # A column put back by a down script lands last; its place is not the schema.
            columns = sorted(line.strip().rstrip(",") for line in block[1:-1])
            out.append((block[0], *(f"    {c}" for c in columns), block[-1]))
        else:
            out.append(tuple(block))
    out.sort()
    result: list[str] = []
    for statement in out:
        result.extend(statement)
        result.append("")
    return result


def diff(before: list[str], after: list[str], before_label: str, after_label: str) -> str:
    return "\n".join(
        difflib.unified_diff(before, after, fromfile=before_label, tofile=after_label, lineterm="")
    )


def require_pg_dump(explicit: str | None, env: Mapping[str, str] | None) -> str:
    found = explicit or find_binary("pg_dump", env)
    if not found:
        raise DatabaseError(
            "pg_dump is not installed, so schemas cannot be compared.",
            hint="Install the PostgreSQL client (`apt-get install postgresql-client`) or pass "
            "`--pg-dump PATH`.",
        )
    return found
