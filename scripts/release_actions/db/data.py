"""Rows for `db verify`: fill the tables a migration touches, then check down brings them back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from release_actions.db.connect import quote_ident
from release_actions.db.sql import Script

ROWS = 3
LOSSY_DOWN = "lossy-down"

Row = tuple[str | None, ...]

_INT_RANGE = {
    "int2": (-(2**15), 2**15 - 1),
    "int4": (-(2**31), 2**31 - 1),
    "int8": (-(2**63), 2**63 - 1),
}
_UNICODE = "日本語テキスト ✓ é ü 🙂 'quote' \"double\" \\ back\nnew line"


def touched_tables(scripts: Iterable[Script]) -> set[str]:
    """Every relation a script names, as `schema.name` with quoted parts (some may not exist)."""
    from pglast import ast
    from pglast.visitors import Visitor

    found: set[str] = set()

    class _Relations(Visitor):
        def visit_RangeVar(self, _ancestors: Any, node: Any) -> None:
            found.add(_name(node.schemaname, node.relname))

        def visit_DropStmt(self, _ancestors: Any, node: Any) -> None:
            if node.removeType.name != "OBJECT_TABLE":
                return
            for obj in node.objects or ():
                parts = [str(getattr(p, "sval", "")) for p in obj]
                found.add(_name(parts[-2] if len(parts) > 1 else None, parts[-1]))

    visitor = _Relations()
    for script in scripts:
        for stmt in script.statements:
            if isinstance(stmt.node, ast.Node):
                visitor(stmt.node)
    return found


def set_not_null_columns(scripts: Iterable[Script]) -> set[tuple[str, str]]:
    """(table, column) pairs some migration makes NOT NULL, tables named as in `touched_tables`."""
    out = set()
    for script in scripts:
        for stmt in script.statements:
            node = stmt.node
            if type(node).__name__ != "AlterTableStmt":
                continue
            for cmd in node.cmds or ():
                if cmd.subtype.name == "AT_SetNotNull":
                    out.add((_name(node.relation.schemaname, node.relation.relname), cmd.name))
    return out


def _name(schema: str | None, name: str) -> str:
    return f"{quote_ident(schema or 'public')}.{quote_ident(name)}"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(), what a value is cast to
    base: str  # pg_type.typname of the type or the domain's base type
    category: str
    typmod: int
    not_null: bool
    skip: bool  # identity, generated, or a sequence default: left to the database
    has_default: bool
    labels: tuple[str, ...] = ()


@dataclass
class Table:
    name: str  # oid::regclass::text, quoted as needed
    key: str  # `schema.name`, both parts quoted, as touched_tables gives it
    columns: list[Column]
    primary_key: list[str]
    foreign_keys: list[tuple[str, str, list[str], list[str]]]  # name, parent key, cols, parent cols


@dataclass
class Filler:
    """Writes generated rows; `round` makes each fill's values differ from the last one's."""

    conn: Any
    never_null: set[tuple[str, str]] = field(default_factory=set)
    round: int = 0

    def existing(self) -> dict[str, Table]:
        rows = self.conn.execute(
            "SELECT c.oid, n.nspname, c.relname "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 2, 3"
        ).fetchall()
        return {_name(n, r): self._table(oid, _name(n, r)) for oid, n, r in rows}

    def _table(self, oid: int, key: str) -> Table:
        name = self.conn.execute("SELECT %s::regclass::text", (oid,)).fetchone()[0]
        columns = [
            Column(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                bool(r[6]) or bool(r[7]) or "nextval(" in (r[8] or ""),
                r[8] is not None,
                tuple(r[9] or ()),
            )
            for r in self.conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
                "COALESCE(b.typname, t.typname), COALESCE(b.typcategory, t.typcategory), "
                "CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, "
                "a.attnotnull OR COALESCE(t.typnotnull, false), a.attidentity <> '', "
                "a.attgenerated <> '', pg_get_expr(d.adbin, d.adrelid), "
                "ARRAY(SELECT e.enumlabel::text FROM pg_enum e "
                "      WHERE e.enumtypid = COALESCE(b.oid, t.oid) ORDER BY e.enumsortorder) "
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype "
                "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                (oid,),
            ).fetchall()
        ]
        pk = self.conn.execute(
            "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) "
            "FROM pg_index i WHERE i.indrelid = %s AND i.indisprimary",
            (oid,),
        ).fetchone()
        fks = self.conn.execute(
            "SELECT c.conname, n.nspname, p.relname, "
            "ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o) "
            "  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), "
            "ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o) "
            "  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) "
            "FROM pg_constraint c JOIN pg_class p ON p.oid = c.confrelid "
            "JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE c.contype = 'f' AND c.conrelid = %s ORDER BY c.conname",
            (oid,),
        ).fetchall()
        foreign_keys = [(f[0], _name(f[1], f[2]), list(f[3]), list(f[4])) for f in fks]
        return Table(name, key, columns, list(pk[0]) if pk else [], foreign_keys)

    def fill(self, wanted: Iterable[str]) -> tuple[dict[str, int], list[str]]:
        """Rows into each wanted table that exists, parents first; (rows per table, notes)."""
        tables = self.existing()
        filled: dict[str, int] = {}
        names: dict[str, str] = {}
        notes: list[str] = []
        self.round += 1

        def visit(key: str, path: tuple[str, ...]) -> None:
            if key in filled or key in path or key not in tables:
                return
            table = tables[key]
            for _fk, parent, _cols, _pcols in table.foreign_keys:
                visit(parent, (*path, key))
            filled[key] = self._fill_table(table, tables, notes)
            names[key] = table.name

        for key in sorted(wanted):
            visit(key, ())
        return {names[k]: n for k, n in filled.items()}, notes

    def _fill_table(self, table: Table, tables: dict[str, Table], notes: list[str]) -> int:
        columns = [c for c in table.columns if not c.skip]
        values: list[list[str | None]] = [[] for _ in range(ROWS)]
        for column in columns:
            never_null = column.not_null or (table.key, column.name) in self.never_null
            for i in range(ROWS):
                value = _value(column, i, self.round, never_null)
                if value is _NO_VALUE:
                    notes.append(
                        f"skipped {table.name}: no value can be made up for NOT NULL column "
                        f"`{column.name}` of type {column.type} without a default."
                    )
                    return 0
                values[i].append(value if isinstance(value, str) else None)
        names = [c.name for c in columns]
        for fk_name, parent, cols, pcols in table.foreign_keys:
            if parent not in tables:
                continue
            select = ", ".join(f"{quote_ident(c)}::text" for c in pcols)
            present = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in pcols)
            source = tables[parent].name
            # Identifiers from the catalog, quoted; no value is put into the text.
            query = f"SELECT {select} FROM {source} WHERE {present} ORDER BY 1 LIMIT %s"  # noqa: S608
            parent_rows = self.conn.execute(query, (ROWS,)).fetchall()
            required = any(c.not_null for c in table.columns if c.name in cols)
            if not parent_rows and required:
                notes.append(
                    f"skipped {table.name}: its foreign key `{fk_name}` needs a row in "
                    f"{tables[parent].name}, which has none and could not be filled."
                )
                return 0
            for i in range(ROWS):
                for j, col in enumerate(cols):
                    if col in names:
                        row = parent_rows[i % len(parent_rows)] if parent_rows else None
                        values[i][names.index(col)] = row[j] if row else None
        if not names:
            sql = f"INSERT INTO {table.name} DEFAULT VALUES"
        else:
            targets = ", ".join(quote_ident(n) for n in names)
            casts = ", ".join(f"%s::{c.type}" for c in columns)
            sql = f"INSERT INTO {table.name} ({targets}) VALUES ({casts})"  # noqa: S608
        inserted = 0
        first_error = ""
        for row_values in values:
            try:
                with self.conn.transaction():
                    self.conn.execute(sql, row_values if names else None)
                inserted += 1
            except Exception as exc:  # a CHECK or UNIQUE constraint refused this one row
                first_error = first_error or str(exc).strip().splitlines()[0]
        if not inserted:
            notes.append(f"could not fill {table.name}: {first_error}")
        return inserted

    def rows(self, tables: Iterable[Table]) -> dict[str, Snapshot]:
        out = {}
        for table in tables:
            cols = [c.name for c in table.columns]
            select = ", ".join(f"{quote_ident(c)}::text" for c in cols) or "NULL"
            query = f"SELECT {select} FROM {table.name}"  # noqa: S608 - quoted catalog names
            rows = [tuple(r) for r in self.conn.execute(query)]
            out[table.key] = Snapshot(table.name, cols, table.primary_key, _sorted(rows))
        return out


@dataclass(frozen=True)
class Snapshot:
    """A table's rows as text, sorted; `columns` name the values of each row in order."""

    table: str
    columns: list[str]
    primary_key: list[str]
    rows: list[Row]

    def project(self, columns: Sequence[str]) -> list[Row]:
        index = [self.columns.index(c) for c in columns]
        return _sorted([tuple(r[i] for i in index) for r in self.rows])


@dataclass(frozen=True)
class RowDifference:
    """Rows of one table that up and down did not bring back."""

    table: str
    column: str | None
    key: dict[str, str | None]
    before: str | None
    after: str | None
    changed: int
    total: int
    rows_before: int
    rows_after: int

    def describe(self) -> str:
        if self.column is None:
            return (
                f"table `{self.table}` had {self.rows_before} row(s) before and "
                f"{self.rows_after} after"
                + (f"; sample row missing: {_show_key(self.key)}" if self.key else "")
            )
        before, after = self.before, self.after
        sized = any(v is not None and len(v) > _SHOWN for v in (before, after))
        return (
            f"table `{self.table}`, column `{self.column}` differs in {self.changed} of "
            f"{self.total} row(s); sample row {_show_key(self.key)}: "
            f"before: {_show(before, sized)}, after: {_show(after, sized)}"
        )


def compare(before: dict[str, Snapshot], after: dict[str, Snapshot]) -> list[RowDifference]:
    """Each table whose rows (over the columns it had before and still has) changed."""
    out = []
    for key, old in before.items():
        new = after.get(key)
        if new is None:
            continue  # the schema comparison reports a table that went
        columns = [c for c in old.columns if c in new.columns]
        rows_old, rows_new = old.project(columns), new.project(columns)
        if rows_old == rows_new:
            continue
        out.append(_difference(old.table, columns, old.primary_key, rows_old, rows_new))
    return out


def _difference(
    table: str, columns: list[str], pk: list[str], old: list[Row], new: list[Row]
) -> RowDifference:
    if pk and all(c in columns for c in pk):
        at = [columns.index(c) for c in pk]
    else:
        at = list(range(len(columns)))
    by_key_new = {tuple(r[i] for i in at): r for r in new}
    changed: list[tuple[Row, Row]] = []
    missing: list[Row] = []
    if at != list(range(len(columns))):
        for row in old:
            other = by_key_new.get(tuple(row[i] for i in at))
            if other is None:
                missing.append(row)
            elif other != row:
                changed.append((row, other))
    else:
        # No key to match rows by: pair what is gone with what appeared, in sorted order.
        gone = list((Counter(old) - Counter(new)).elements())
        came = list((Counter(new) - Counter(old)).elements())
        changed = list(zip(sorted(gone, key=_row_key), sorted(came, key=_row_key), strict=False))
        missing = sorted(gone, key=_row_key)[len(came) :]
    if changed:
        row, other = changed[0]
        col = next(i for i in range(len(columns)) if row[i] != other[i])
        key_cols = pk if at != list(range(len(columns))) else columns
        key = {c: row[columns.index(c)] for c in key_cols if c != columns[col]}
        count = sum(1 for a, b in changed if a[col] != b[col])
        return RowDifference(
            table, columns[col], key, row[col], other[col], count, len(old), len(old), len(new)
        )
    sample = missing[0] if missing else None
    key = {c: sample[columns.index(c)] for c in (pk or columns)} if sample else {}
    return RowDifference(table, None, key, None, None, len(missing), len(old), len(old), len(new))


_SHOWN = 24


def _show(value: str | None, sized: bool, *, whole: bool = False) -> str:
    if value is None:
        return "NULL"
    text = value if whole or len(value) <= _SHOWN else value[:_SHOWN] + "…"
    text = "'" + text.replace("\n", "\\n") + "'"
    return f"{text} ({len(value)} characters)" if sized else text


def _show_key(key: dict[str, str | None]) -> str:
    return ", ".join(f"{c}={_show(v, False, whole=len(key) == 1)}" for c, v in key.items())


def _row_key(row: Row) -> tuple[tuple[bool, str], ...]:
    return tuple((v is None, v or "") for v in row)


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=_row_key)


class _NoValue:
    pass


_NO_VALUE = _NoValue()


def _value(column: Column, i: int, r: int, never_null: bool) -> str | _NoValue | None:
    """Row `i` of fill `r`: row 0 the largest value, row 1 NULL or the smallest, row 2 unicode."""
    made = _make(column, i, r)
    if i == 1 and not never_null:
        return None
    if made is not None:
        return made
    if not never_null:
        return None
    return None if column.has_default else _NO_VALUE


def _make(column: Column, i: int, r: int) -> str | None:
    base, tag = column.base, f"{r}.{i} "
    if column.labels:
        return column.labels[(r + i) % len(column.labels)]
    if base in _INT_RANGE:
        low, high = _INT_RANGE[base]
        return str((high - r, low + r, r)[i])
    if base == "numeric":
        if column.typmod >= 4:
            precision, scale = ((column.typmod - 4) >> 16) & 0xFFFF, (column.typmod - 4) & 0xFFFF
        else:
            precision, scale = 38, 9
        top = Decimal(10) ** (precision - scale) - Decimal(10) ** -scale
        return str((top - r, -top + r, Decimal(r))[i])
    if base in ("float4", "float8"):
        return (f"{1.5 + r}e30", f"-{1.5 + r}e-30", str(r))[i]
    if base == "bool":
        return ("true", "false", "true")[i]
    if base in ("varchar", "bpchar"):
        if column.typmod >= 4:
            n = column.typmod - 4
            # The longest value the column allows, so a down script that cuts shows.
            return ((tag + "x" * n)[:n], tag[:n], (tag + _UNICODE * n)[:n])[i]
        return _text(tag, i)
    if base in ("text", "citext", "name"):
        return _text(tag, i)
    if base in ("timestamp", "timestamptz"):
        zone = "+09:00" if base == "timestamptz" else ""
        return (
            f"{9999 - r:04d}-12-31 23:59:59.999999{zone}",
            f"{1900 + r:04d}-01-01 00:00:00{zone}",
            f"2038-01-19 03:14:{r % 60:02d}.5{zone}",
        )[i]
    if base == "date":
        return (f"{9999 - r:04d}-12-31", f"{1900 + r:04d}-01-01", "2000-02-29")[i]
    if base in ("time", "timetz"):
        return ("23:59:59.999999", "00:00:00", f"12:{r % 60:02d}:30")[i]
    if base == "interval":
        return ("178000000 years", "-1 day", f"{r} seconds")[i]
    if base == "uuid":
        return f"00000000-0000-4000-8000-{r * ROWS + i:012x}"
    if base in ("json", "jsonb"):
        return f'{{"n": {r * ROWS + i}, "text": "日本語 ✓", "list": [1, null, true]}}'
    if base == "bytea":
        return "\\x00ff" + f"{r * ROWS + i:08x}"
    if base in ("inet", "cidr"):
        return f"10.{r % 256}.{i}.0/24" if base == "cidr" else f"10.{r % 256}.0.{i}"
    return None


def _text(tag: str, i: int) -> str:
    return (tag + "long text " * 200, tag, tag + _UNICODE)[i]
