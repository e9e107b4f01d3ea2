"""Lint migrations: down scripts, locking rules (squawk) and expand/contract rules (source §9)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from release_actions.db.errors import MigrationSqlError
from release_actions.db.layout import Migration
from release_actions.db.sql import Allow, Script, Statement, parse_file, qualified


class Kind(StrEnum):
    """How a migration relates to the code running beside it.

    expand: old and new code both work after it. contract: it removes what only old code
    used, so it is safe once that code is gone and taking the application back past it is
    not. breaking: no deploy order makes it safe; it must be rewritten as expand/contract.
    """

    EXPAND = "expand"
    CONTRACT = "contract"
    BREAKING = "breaking"


_RANK = {Kind.EXPAND: 0, Kind.CONTRACT: 1, Kind.BREAKING: 2}

Severity = Literal["error", "warning", "notice"]

SIX_STEPS = (
    "the six steps of source §9.3: (1) add the new column nullable, (2) deploy code that "
    "writes both and reads the new one, (3) backfill in small batches, (4) SET NOT NULL, "
    "(5) deploy code that no longer uses the old column, (6) drop the old column - with "
    "the contract steps (4-6) in a later release than the expand steps (1-3)"
)

FIXES: dict[str, str] = {
    "missing-down": "Add a down script that undoes the migration in reverse order "
    "(DROP ... IF EXISTS), as source §9.2 does with down.sql beside migration.sql.",
    "add-column-not-null-without-default": "Add the column nullable or with a DEFAULT, so "
    "the running code can still insert rows; make it NOT NULL later, following " + SIX_STEPS + ".",
    "not-null-without-backfill": "Backfill first, in batches, in an earlier migration "
    "(source §9.3 step 3), then SET NOT NULL: " + SIX_STEPS + ".",
    "rename-column": "A rename breaks the code that is running while it deploys. Add a "
    "column with the new name instead and follow " + SIX_STEPS + ".",
    "rename-table": "A rename breaks the code that is running while it deploys. Create the "
    "new table (or a view under the new name) and follow " + SIX_STEPS + ".",
    "rename-object": "A rename breaks the code that uses the old name. Create the new "
    "object beside the old one and remove the old one in a later release.",
    "change-column-type": "Changing a type rewrites the table and breaks readers of the old "
    "type. Add a column of the new type and follow " + SIX_STEPS + ".",
    "truncate": "A down script cannot bring deleted rows back. Copy the data aside first, "
    "or write `-- release-actions: allow truncate -- <reason>` once reviewed.",
    "drop-column": "A contract step (source §9.3 step 6): ship it only after a release "
    "whose code no longer reads or writes the column (step 5).",
    "drop-table": "A contract step: ship it only after a release whose code no longer uses "
    "the table.",
    "drop-object": "A contract step: ship it only after a release whose code no longer "
    "uses the object.",
    "drop-default": "A contract step: code that inserts without the column fails once the "
    "default is gone; ship it after that code is gone.",
    "set-not-null": "A contract step (source §9.3 step 4): ship it after the code that "
    "writes the column is deployed and the backfill has run.",
    "expand-contract-same-release": "Split the change across releases: the expand steps "
    "(1-3) in this release, the contract steps (4-6) in a later one, with the code deploy "
    "in between, as " + SIX_STEPS + ".",
    "non-transactional-statement": "PostgreSQL refuses this statement inside a "
    "transaction, so the migration runs without one and a failure can leave it half "
    "applied. Put the statement alone in its own migration.",
    "allow-without-reason": "Say why the exception is safe: "
    "`-- release-actions: allow <rule> -- <reason>`.",
    "unused-allow": "Remove the comment, or put it directly above the statement it excuses.",
    "syntax-error": "Fix the SQL; PostgreSQL's own parser refused it.",
}

# Squawk's rules and how they count here. Rules that the expand/contract rules below
# already judge are dropped, so one statement is not reported twice; style rules and the
# per-statement timeout rules are dropped as noise for a migration linter.
SQUAWK_RULES: dict[str, Severity | None] = {
    "ban-drop-database": "error",
    "ban-truncate-cascade": "error",
    "ban-concurrent-index-creation-in-transaction": "error",
    "transaction-nesting": "error",
    "ban-uncommitted-transaction": "error",
    "adding-field-with-default": "warning",
    "adding-foreign-key-constraint": "warning",
    "adding-serial-primary-key-field": "warning",
    "constraint-missing-not-valid": "warning",
    "disallowed-unique-constraint": "warning",
    "require-concurrent-index-creation": "warning",
    "require-concurrent-index-deletion": "warning",
    "require-concurrent-partition-detach": "warning",
    "require-concurrent-reindex": "warning",
    "ban-create-domain-with-constraint": "warning",
    "ban-alter-domain-with-add-constraint": "warning",
    "identifier-too-long": "warning",
    "unused-ignore": "warning",
    "syntax-error": "warning",  # pglast is the authority on syntax; squawk's parser differs
    "adding-not-nullable-field": None,
    "adding-required-field": None,
    "ban-drop-column": None,
    "ban-drop-table": None,
    "ban-drop-not-null": None,
    "changing-column-type": None,
    "renaming-column": None,
    "renaming-table": None,
    "ban-char-field": None,
    "prefer-big-int": None,
    "prefer-bigint-over-int": None,
    "prefer-bigint-over-smallint": None,
    "prefer-identity": None,
    "prefer-robust-stmts": None,
    "prefer-text-field": None,
    "prefer-timestamptz": None,
    "prefer-timestamp-tz": None,
    "renaming-object": None,
    "prefer-repack": None,
    "require-timeout-settings": None,
    "require-lock-timeout": None,
    "require-statement-timeout": None,
    "require-table-schema": None,
    "require-enum-value-ordering": None,
}

_SERIAL = {"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"}


@dataclass(frozen=True)
class Change:
    """One schema change a statement makes, as expand/contract sees it."""

    kind: Kind
    action: str
    table: str
    column: str | None
    line: int
    rule: str | None = None
    allowed: Allow | None = None

    @property
    def target(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    file: str
    line: int | None = None
    fix: str | None = None
    source: str = "release-actions"
    allowed: str | None = None

    def annotation(self) -> str:
        text = f"{self.message} [{self.rule}]"
        if self.allowed is not None:
            return f"{text} Allowed: {self.allowed}"
        return f"{text} Fix: {self.fix}" if self.fix else text

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MigrationReport:
    migration: Migration
    new: bool
    kind: Kind = Kind.EXPAND
    changes: list[Change] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    script: Script | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.migration.name,
            "new": self.new,
            "kind": self.kind.value,
            "file": str(self.migration.up),
            "changes": [
                {"kind": c.kind.value, "action": c.action, "target": c.target, "line": c.line}
                for c in self.changes
            ],
        }


@dataclass
class LintReport:
    migrations: list[MigrationReport]
    findings: list[Finding]
    locking_rules: str

    def count(self, severity: Severity) -> int:
        return sum(f.severity == severity for f in self.findings)

    def failed(self, fail_on: Severity = "error") -> bool:
        levels: tuple[Severity, ...] = ("error",) if fail_on == "error" else ("error", "warning")
        return any(f.severity in levels for f in self.findings)


class _History:
    """What earlier statements did: which columns were backfilled or given a default."""

    def __init__(self) -> None:
        self.filled: set[tuple[str, str]] = set()
        self.fresh_tables: set[str] = set()


def _last_name(names: Iterable[Any]) -> str:
    parts = [getattr(n, "sval", "") for n in names or ()]
    return parts[-1] if parts else ""


def _constraint_types(column_def: Any) -> set[str]:
    return {c.contype.name for c in (getattr(column_def, "constraints", None) or ())}


def _object_name(obj: Any) -> str:
    items = obj if isinstance(obj, tuple) else (obj,)
    names = [getattr(i, "sval", None) for i in items]
    names = [n for n in names if n]
    if len(names) > 1 and names[0] == "public":
        names = names[1:]
    return ".".join(str(n) for n in names) or type(obj).__name__


def _has_default(column_def: Any) -> bool:
    kinds = _constraint_types(column_def)
    if kinds & {"CONSTR_DEFAULT", "CONSTR_IDENTITY", "CONSTR_GENERATED"}:
        return True
    return _last_name(getattr(column_def.typeName, "names", ())) in _SERIAL


def _not_null(column_def: Any) -> bool:
    return bool(column_def.is_not_null) or bool(
        _constraint_types(column_def) & {"CONSTR_NOTNULL", "CONSTR_PRIMARY"}
    )


def classify_statement(stmt: Statement, history: _History, in_release: bool) -> list[Change]:
    """The changes one statement makes; `history` carries what earlier statements did."""
    node = stmt.node
    kind = type(node).__name__
    line = stmt.line
    changes: list[Change] = []

    def add(kind_: Kind, action: str, table: str, column: str | None, rule: str | None) -> None:
        if kind_ is not Kind.EXPAND and table in history.fresh_tables:
            # No running code knows a table this release created, so nothing can break.
            kind_, rule = Kind.EXPAND, None
        allowed = stmt.allowed(rule) if rule else None
        if allowed and kind_ is Kind.BREAKING:
            kind_ = Kind.CONTRACT
        changes.append(Change(kind_, action, table, column, line, rule, allowed))

    if kind in ("CreateStmt", "CreateTableAsStmt"):
        rel = node.relation if kind == "CreateStmt" else node.into.rel
        table = qualified(rel)
        if in_release:
            history.fresh_tables.add(table)
        add(Kind.EXPAND, "create table", table, None, None)
    elif kind == "AlterTableStmt":
        table = qualified(node.relation)
        for cmd in node.cmds or ():
            sub = cmd.subtype.name
            if sub == "AT_AddColumn":
                col = cmd.def_.colname
                if _has_default(cmd.def_):
                    history.filled.add((table, col))
                if _not_null(cmd.def_) and not _has_default(cmd.def_):
                    add(
                        Kind.BREAKING,
                        "add column NOT NULL",
                        table,
                        col,
                        "add-column-not-null-without-default",
                    )
                else:
                    add(Kind.EXPAND, "add column", table, col, None)
            elif sub == "AT_DropColumn":
                add(Kind.CONTRACT, "drop column", table, cmd.name, "drop-column")
            elif sub == "AT_AlterColumnType":
                add(Kind.BREAKING, "change column type", table, cmd.name, "change-column-type")
            elif sub == "AT_SetNotNull":
                if (table, cmd.name) in history.filled:
                    add(Kind.CONTRACT, "set not null", table, cmd.name, "set-not-null")
                else:
                    add(
                        Kind.BREAKING,
                        "set not null without backfill",
                        table,
                        cmd.name,
                        "not-null-without-backfill",
                    )
            elif sub == "AT_ColumnDefault":
                if cmd.def_ is None:
                    add(Kind.CONTRACT, "drop default", table, cmd.name, "drop-default")
                else:
                    add(Kind.EXPAND, "set default", table, cmd.name, None)
            else:
                add(Kind.EXPAND, sub.removeprefix("AT_"), table, getattr(cmd, "name", None), None)
    elif kind == "RenameStmt":
        what = node.renameType.name
        if what == "OBJECT_COLUMN":
            add(
                Kind.BREAKING,
                "rename column",
                qualified(node.relation),
                node.subname,
                "rename-column",
            )
        elif what in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE"):
            add(Kind.BREAKING, "rename table", qualified(node.relation), None, "rename-table")
        elif what in ("OBJECT_SCHEMA", "OBJECT_TYPE", "OBJECT_FUNCTION", "OBJECT_PROCEDURE"):
            name = node.subname or _object_name(node.object)
            add(
                Kind.BREAKING,
                f"rename {what.removeprefix('OBJECT_').lower()}",
                name,
                None,
                "rename-object",
            )
        else:  # indexes, constraints, sequences: names no query reads
            add(
                Kind.EXPAND, "rename", qualified(node.relation) if node.relation else "", None, None
            )
    elif kind == "DropStmt":
        what = node.removeType.name
        for obj in node.objects or ():
            name = _object_name(obj)
            if what == "OBJECT_TABLE":
                add(Kind.CONTRACT, "drop table", name, None, "drop-table")
            elif what in ("OBJECT_INDEX", "OBJECT_TRIGGER"):
                add(Kind.EXPAND, f"drop {what.removeprefix('OBJECT_').lower()}", name, None, None)
            else:
                add(
                    Kind.CONTRACT,
                    f"drop {what.removeprefix('OBJECT_').lower()}",
                    name,
                    None,
                    "drop-object",
                )
    elif kind == "TruncateStmt":
        for rel in node.relations or ():
            add(Kind.BREAKING, "truncate", qualified(rel), None, "truncate")
    elif kind == "UpdateStmt":
        table = qualified(node.relation)
        for target in node.targetList or ():
            if getattr(target, "name", None):
                history.filled.add((table, target.name))
        add(Kind.EXPAND, "backfill", table, None, None)
    else:
        add(Kind.EXPAND, kind.removesuffix("Stmt").lower(), "", None, None)
    return changes


def _builtin_locking(stmt: Statement, fresh: set[str]) -> list[tuple[str, str]]:
    """The key squawk rules, for when squawk cannot run: (rule, message) pairs."""
    node = stmt.node
    kind = type(node).__name__
    found = []
    if kind == "IndexStmt" and not node.concurrent and qualified(node.relation) not in fresh:
        found.append(
            (
                "require-concurrent-index-creation",
                "Creating an index without CONCURRENTLY blocks writes to the table while it builds.",
            )
        )
    elif kind == "DropStmt" and node.removeType.name == "OBJECT_INDEX" and not node.concurrent:
        found.append(
            (
                "require-concurrent-index-deletion",
                "Dropping an index without CONCURRENTLY blocks reads and writes of its table.",
            )
        )
    elif kind == "DropdbStmt":
        found.append(("ban-drop-database", "Dropping a database is never a migration step."))
    elif kind == "TruncateStmt" and node.behavior.name == "DROP_CASCADE":
        found.append(("ban-truncate-cascade", "TRUNCATE ... CASCADE empties other tables too."))
    elif kind == "AlterTableStmt" and qualified(node.relation) not in fresh:
        for cmd in node.cmds or ():
            con = cmd.def_ if cmd.subtype.name == "AT_AddConstraint" else None
            if con is None:
                continue
            ctype = con.contype.name
            if ctype in ("CONSTR_CHECK", "CONSTR_FOREIGN") and not con.skip_validation:
                found.append(
                    (
                        "constraint-missing-not-valid",
                        "A new constraint scans the table and blocks writes while it does; "
                        "add it NOT VALID, then VALIDATE CONSTRAINT in a later migration.",
                    )
                )
            elif ctype in ("CONSTR_UNIQUE", "CONSTR_PRIMARY") and not con.indexname:
                found.append(
                    (
                        "disallowed-unique-constraint",
                        "A UNIQUE constraint builds its index under a lock that blocks reads; "
                        "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX.",
                    )
                )
    return found


def find_squawk(env: Mapping[str, str] | None = None) -> str | None:
    """The squawk binary: the one pip put beside this Python first, then PATH."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file():
        return str(beside)
    return shutil.which("squawk", path=(env or {}).get("PATH")) or shutil.which("squawk")


def run_squawk(binary: str, files: Sequence[Path], pg_version: str) -> list[dict[str, Any]]:
    """Squawk's findings as its JSON reporter gives them (lines there count from 0)."""
    if not files:
        return []
    proc = subprocess.run(
        [binary, "--reporter=json", f"--pg-version={pg_version}", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    try:
        data = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"squawk exited {proc.returncode} without JSON: {(proc.stderr or proc.stdout)[:300]}"
        ) from exc
    if not isinstance(data, list):
        raise RuntimeError("squawk's JSON report is not a list")
    return data


def _statement_at(script: Script, line: int) -> Statement | None:
    for stmt in script.statements:
        if stmt.line <= line <= stmt.end_line:
            return stmt
    return None


def lint(
    migrations: Sequence[Migration],
    new: Sequence[Migration],
    *,
    squawk: str | Literal[False] | None = None,
    pg_version: str = "15",
) -> LintReport:
    """Lint `new` in the context of all `migrations` (the history they build on).

    `squawk=None` looks the binary up, a path uses it, False uses the built-in subset.
    """
    new_names = {m.name for m in new}
    reports: list[MigrationReport] = []
    findings: list[Finding] = []
    history = _History()
    for migration in migrations:
        is_new = migration.name in new_names
        report = MigrationReport(migration, is_new)
        reports.append(report)
        up = str(migration.up)
        if is_new and migration.down is None:
            expected = (
                migration.up.parent / "down.sql"
                if migration.up.name == "migration.sql"
                else migration.up.with_name(migration.name + ".down.sql")
            )
            report.findings.append(
                Finding(
                    "missing-down",
                    "error",
                    f"Migration `{migration.name}` has no down script ({expected}): it "
                    "cannot be rolled back.",
                    up,
                    None,
                    FIXES["missing-down"],
                )
            )
        try:
            script = parse_file(migration.up)
        except MigrationSqlError as exc:
            report.kind = Kind.BREAKING
            report.findings.append(
                Finding(
                    "syntax-error",
                    "error" if is_new else "warning",
                    exc.message,
                    up,
                    exc.line,
                    FIXES["syntax-error"],
                )
            )
            continue
        report.script = script
        if is_new and migration.down is not None:
            try:
                parse_file(migration.down)
            except MigrationSqlError as exc:
                report.findings.append(
                    Finding(
                        "syntax-error",
                        "error",
                        exc.message,
                        str(migration.down),
                        exc.line,
                        FIXES["syntax-error"],
                    )
                )
        for stmt in script.statements:
            report.changes.extend(classify_statement(stmt, history, in_release=is_new))
        if not is_new:
            continue
        report.kind = max(
            (c.kind for c in report.changes), key=_RANK.__getitem__, default=Kind.EXPAND
        )
        for change in report.changes:
            if change.rule is None or (change.kind is Kind.EXPAND and not change.allowed):
                continue
            severity: Severity = (
                "error" if change.kind is Kind.BREAKING and not change.allowed else "notice"
            )
            report.findings.append(
                Finding(
                    change.rule,
                    severity,
                    _describe(change, migration),
                    up,
                    change.line,
                    FIXES.get(change.rule),
                    allowed=change.allowed.reason if change.allowed else None,
                )
            )
        stray = [s for s in script.statements if not _runs_in_tx(s)]
        if stray and len(script.statements) > 1 and not script.manages_transactions:
            for stmt in stray:
                report.findings.append(
                    _maybe_allowed(
                        stmt,
                        Finding(
                            "non-transactional-statement",
                            "error",
                            f"`{stmt.text.splitlines()[0][:80]}` cannot run inside a "
                            f"transaction and shares `{migration.name}` with "
                            f"{len(script.statements) - 1} other statement(s).",
                            up,
                            stmt.line,
                            FIXES["non-transactional-statement"],
                        ),
                    )
                )
    findings_new = [r for r in reports if r.new and r.script is not None]
    locking = _locking(findings_new, squawk, pg_version)
    for report in reports:
        findings.extend(report.findings)
    findings.extend(locking[0])
    findings.extend(_same_release(reports))
    findings.extend(_allow_findings(reports, findings))
    findings.sort(key=lambda f: (f.file, f.line or 0, f.rule))
    return LintReport(reports, findings, locking[1])


def _runs_in_tx(stmt: Statement) -> bool:
    from release_actions.db.sql import runs_in_transaction

    return runs_in_transaction(stmt.node)


def _maybe_allowed(stmt: Statement | None, finding: Finding) -> Finding:
    allow = stmt.allowed(finding.rule) if stmt is not None else None
    if allow is None:
        return finding
    return Finding(
        finding.rule,
        "notice",
        finding.message,
        finding.file,
        finding.line,
        finding.fix,
        finding.source,
        allow.reason,
    )


def _describe(change: Change, migration: Migration) -> str:
    what = {
        "add-column-not-null-without-default": f"`{migration.name}` adds `{change.target}` "
        "NOT NULL without a DEFAULT: the running code's inserts fail until it is deployed.",
        "not-null-without-backfill": f"`{migration.name}` sets `{change.target}` NOT NULL "
        "with no backfill before it: existing NULL rows make it fail, and code that does "
        "not write the column breaks.",
        "set-not-null": f"`{migration.name}` sets `{change.target}` NOT NULL: a contract step.",
        "rename-column": f"`{migration.name}` renames column `{change.target}`: the running "
        "code still uses the old name.",
        "rename-table": f"`{migration.name}` renames `{change.target}`: the running code "
        "still uses the old name.",
        "rename-object": f"`{migration.name}` renames `{change.target}`.",
        "change-column-type": f"`{migration.name}` changes the type of `{change.target}`.",
        "truncate": f"`{migration.name}` empties `{change.target}`: rows are lost for good.",
        "drop-column": f"`{migration.name}` drops column `{change.target}`: a contract step.",
        "drop-table": f"`{migration.name}` drops table `{change.target}`: a contract step.",
        "drop-object": f"`{migration.name}` does `{change.action} {change.target}`: a "
        "contract step.",
        "drop-default": f"`{migration.name}` drops the default of `{change.target}`: a "
        "contract step.",
    }
    return what.get(change.rule or "", f"`{migration.name}`: {change.action} {change.target}")


def _locking(
    reports: list[MigrationReport], squawk: str | Literal[False] | None, pg_version: str
) -> tuple[list[Finding], str]:
    scripts = {str(r.migration.up): r.script for r in reports if r.script is not None}
    binary = find_squawk() if squawk is None else (squawk or None)
    findings: list[Finding] = []
    if binary:
        try:
            raw = run_squawk(binary, [r.migration.up for r in reports], pg_version)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            note = f"built-in subset (squawk at {binary} failed: {exc})"
        else:
            for item in raw:
                rule = str(item.get("rule_name") or "unknown")
                severity = SQUAWK_RULES.get(rule, "warning")
                if severity is None:
                    continue
                file = str(item.get("file"))
                line = int(item.get("line", 0)) + 1
                script = scripts.get(file)
                stmt = _statement_at(script, line) if script else None
                message = str(item.get("message") or rule)
                findings.append(
                    _maybe_allowed(
                        stmt,
                        Finding(
                            rule, severity, message, file, line, item.get("help") or None, "squawk"
                        ),
                    )
                )
            return findings, f"squawk ({binary})"
    else:
        note = "built-in subset (squawk not installed: pip install squawk-cli)"
    for report in reports:
        assert report.script is not None
        fresh: set[str] = set()
        for stmt in report.script.statements:
            if type(stmt.node).__name__ == "CreateStmt":
                fresh.add(qualified(stmt.node.relation))
            for rule, message in _builtin_locking(stmt, fresh):
                severity = SQUAWK_RULES.get(rule) or "warning"
                findings.append(
                    _maybe_allowed(
                        stmt, Finding(rule, severity, message, str(report.migration.up), stmt.line)
                    )
                )
    return findings, note


def _same_release(reports: list[MigrationReport]) -> list[Finding]:
    """An expand and a contract of one column in one release leave no moment for the deploy."""
    expands: dict[tuple[str, str | None], tuple[MigrationReport, Change]] = {}
    findings = []
    for report in reports:
        if not report.new:
            continue
        for change in report.changes:
            if change.action == "add column" and change.kind is Kind.EXPAND:
                expands.setdefault((change.table, change.column), (report, change))
    for report in reports:
        if not report.new:
            continue
        for change in report.changes:
            if change.kind is Kind.EXPAND or change.rule is None:
                continue
            hit = expands.get((change.table, change.column))
            if hit is None or change.column is None:
                continue
            first, added = hit
            stmt = _stmt_for(report, change.line)
            findings.append(
                _maybe_allowed(
                    stmt,
                    Finding(
                        "expand-contract-same-release",
                        "error",
                        f"`{change.target}` is added in `{first.migration.name}` (expand, "
                        f"line {added.line}) and changed by `{change.action}` in "
                        f"`{report.migration.name}` (contract) in the same release: the "
                        "code deploy between them has no moment to happen.",
                        str(report.migration.up),
                        change.line,
                        FIXES["expand-contract-same-release"],
                    ),
                )
            )
    return findings


def _stmt_for(report: MigrationReport, line: int) -> Statement | None:
    return _statement_at(report.script, line) if report.script else None


def _allow_findings(reports: list[MigrationReport], findings: list[Finding]) -> list[Finding]:
    used = {(f.file, f.rule) for f in findings if f.allowed is not None}
    used |= {
        (str(r.migration.up), c.rule) for r in reports for c in r.changes if c.allowed and c.rule
    }
    out = []
    for report in reports:
        if not report.new or report.script is None:
            continue
        up = str(report.migration.up)
        for allow in report.script.allows:
            if not allow.reason:
                out.append(
                    Finding(
                        "allow-without-reason",
                        "error",
                        f"The exception for {', '.join(allow.rules)} gives no reason.",
                        up,
                        allow.line,
                        FIXES["allow-without-reason"],
                    )
                )
            unused = [r for r in allow.rules if (up, r) not in used]
            if unused:
                out.append(
                    Finding(
                        "unused-allow",
                        "warning",
                        f"The exception for {', '.join(unused)} excuses nothing here.",
                        up,
                        allow.line,
                        FIXES["unused-allow"],
                    )
                )
    return out
