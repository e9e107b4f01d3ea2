"""Migration SQL split into statements by PostgreSQL's own parser (pglast), with their lines."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_actions.db.errors import MigrationSqlError
from release_actions.errors import require

# `-- release-actions: allow rule[, rule] -- the reason`: a reviewed exception, kept in
# the SQL so the reason travels with the statement it excuses.
_ALLOW = re.compile(
    r"release-actions:\s*allow\s+(?P<rules>[A-Za-z0-9_-]+(?:\s*,\s*[A-Za-z0-9_-]+)*)"
    r"\s*(?:--\s*(?P<reason>.*?))?\s*(?:\*/)?\s*$"
)


@dataclass(frozen=True)
class Allow:
    """A reviewed exception written in the SQL."""

    rules: tuple[str, ...]
    reason: str
    line: int


@dataclass(frozen=True)
class Statement:
    """One top-level statement, its text and where it is."""

    index: int
    text: str
    line: int
    end_line: int
    node: Any = field(compare=False, repr=False)
    allows: tuple[Allow, ...] = ()

    def allowed(self, rule: str) -> Allow | None:
        for allow in self.allows:
            if rule in allow.rules:
                return allow
        return None

    @property
    def kind(self) -> str:
        return type(self.node).__name__

    def line_at(self, position: int) -> int:
        """The file line of a 1-based character position inside this statement (server errors)."""
        return self.line + self.text[: max(position - 1, 0)].count("\n")


@dataclass(frozen=True)
class Script:
    path: Path
    text: str
    statements: tuple[Statement, ...]
    allows: tuple[Allow, ...]

    @property
    def needs_no_transaction(self) -> bool:
        return any(not runs_in_transaction(s.node) for s in self.statements)

    @property
    def manages_transactions(self) -> bool:
        return any(s.kind == "TransactionStmt" for s in self.statements)


class _Lines:
    def __init__(self, text: str) -> None:
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)


def _pglast() -> Any:
    return require("pglast", "db")


def parse(text: str, path: Path | str) -> Script:
    """Parse a script; SQL that does not parse raises with the file and line of the fault."""
    pglast = _pglast()
    path = Path(path)
    lines = _Lines(text)
    try:
        raw = pglast.parser.parse_sql(text)
    except pglast.parser.ParseError as exc:
        offset = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        if offset is None:  # "at end of input": the fault is where the text stops
            offset = len(text.rstrip()) - 1
        line = lines.line(min(max(offset, 0), max(len(text) - 1, 0)))
        raise MigrationSqlError(
            f"{path.name} does not parse as PostgreSQL: {exc.args[0]}.",
            hint="Fix the SQL; it was checked with PostgreSQL's own parser, so the server "
            "would refuse it too.",
            file=str(path),
            line=line,
        ) from None
    allows = tuple(_allows(text, lines, pglast))
    statements = []
    ends = []
    for i, item in enumerate(raw):
        start = item.stmt_location or 0
        length = item.stmt_len or len(text) - start
        body = text[start : start + length].strip()
        start += len(text[start : start + length]) - len(text[start : start + length].lstrip())
        end = start + len(body)
        ends.append(lines.line(max(end - 1, start)))
        statements.append((i, body, lines.line(start), item.stmt))
    attached: list[list[Allow]] = [[] for _ in statements]
    for allow in allows:
        # A comment excuses the statement it sits in or the next one after it.
        for i, end_line in enumerate(ends):
            if end_line >= allow.line:
                attached[i].append(allow)
                break
    result = tuple(
        Statement(i, body, line, ends[i], node, tuple(attached[i]))
        for i, body, line, node in statements
    )
    return Script(path, text, result, allows)


def parse_file(path: Path) -> Script:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationSqlError(
            f"{path} is not UTF-8 text: {exc}.", file=str(path), line=None
        ) from None
    return parse(text, path)


def _allows(text: str, lines: _Lines, pglast: Any) -> list[Allow]:
    found = []
    for token in pglast.parser.scan(text):
        if token.name not in ("SQL_COMMENT", "C_COMMENT"):
            continue
        comment = text[token.start : token.end + 1]
        body = comment[2:-2] if comment.startswith("/*") else comment[2:]
        m = _ALLOW.search(body.strip())
        if m:
            rules = tuple(r.strip() for r in m["rules"].split(","))
            found.append(Allow(rules, (m["reason"] or "").strip(), lines.line(token.start)))
    return found


def runs_in_transaction(node: Any) -> bool:
    """False for statements PostgreSQL refuses inside a transaction block.

    Such a migration runs statement by statement outside a transaction, so a failure can
    leave part of it applied; lint asks for these statements to stand alone.
    """
    kind = type(node).__name__
    if kind in (
        "VacuumStmt",
        "CreatedbStmt",
        "DropdbStmt",
        "AlterSystemStmt",
        "CreateTableSpaceStmt",
        "DropTableSpaceStmt",
    ):
        return kind == "VacuumStmt" and not getattr(node, "is_vacuumcmd", True)
    if kind in ("IndexStmt", "DropStmt"):
        return not getattr(node, "concurrent", False)
    if kind == "ReindexStmt":
        return not any(
            getattr(p, "defname", "") == "concurrently"
            for p in (getattr(node, "params", None) or ())
        )
    if kind == "AlterTableStmt":
        for cmd in node.cmds or ():
            part = getattr(cmd, "def_", None)
            if type(part).__name__ == "PartitionCmd" and getattr(part, "concurrent", False):
                return False
    return True


def qualified(relation: Any) -> str:
    """A relation's name as lint compares it: `public.` is the same as no schema."""
    schema = getattr(relation, "schemaname", None)
    name = str(getattr(relation, "relname", ""))
    return name if not schema or schema == "public" else f"{schema}.{name}"
