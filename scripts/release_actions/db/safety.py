"""Rollback safety across code and schema: which contract migrations an app rollback would cross."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from release_actions.db.errors import MigrationSqlError
from release_actions.db.layout import Migration, MigrationSettings, discover
from release_actions.db.lint import Change, Kind, _History, classify_statement
from release_actions.db.sql import parse_file


@dataclass(frozen=True)
class ContractMigration:
    """An applied migration the target release does not know, that removes or tightens schema.

    The older code of the target release may still use what it removed: taking the
    application back past it can break, and `down` would bring back the column or table
    but not its data.
    """

    name: str
    kind: Kind
    file: str
    changes: tuple[Change, ...]

    def describe(self) -> str:
        what = ", ".join(f"{c.action} `{c.target}` (line {c.line})" for c in self.changes)
        return f"`{self.name}` ({self.kind.value}): {what}"


def _judge(changes: list[Change]) -> tuple[Kind, tuple[Change, ...]]:
    risky = tuple(c for c in changes if c.kind is not Kind.EXPAND)
    if any(c.kind is Kind.BREAKING for c in risky):
        return Kind.BREAKING, risky
    return (Kind.CONTRACT if risky else Kind.EXPAND), risky


def classify_many(
    catalog: Sequence[Migration], wanted: Iterable[str]
) -> dict[str, tuple[Kind, tuple[Change, ...]] | None]:
    """The kind and non-expand changes of the `wanted` migrations, each judged after the
    migrations before it in `catalog` (None where its SQL does not parse).

    The earlier ones matter: a SET NOT NULL is a contract after a backfill and breaking
    without one.
    """
    names = set(wanted)
    order = {m.name: i for i, m in enumerate(catalog)}
    last = max((order[n] for n in names if n in order), default=-1)
    history = _History()
    out: dict[str, tuple[Kind, tuple[Change, ...]] | None] = {}
    for m in catalog[: last + 1]:
        # A table the migration itself creates is no hazard when it changes.
        history.fresh_tables = set()
        try:
            script = parse_file(m.up)
        except MigrationSqlError:
            if m.name in names:
                out[m.name] = None
            continue
        changes = [c for s in script.statements for c in classify_statement(s, history, True)]
        if m.name in names:
            out[m.name] = _judge(changes)
    return out


def contract_migrations_between(
    applied_names: Iterable[str],
    target_release_migrations: Iterable[str],
    *,
    migrations: Sequence[Migration] | None = None,
    settings: MigrationSettings | None = None,
) -> list[ContractMigration]:
    """The contract (or breaking) migrations applied to the database but absent from the
    release the application would go back to, oldest first.

    `applied_names` comes from the database (`db status --json`, or the `applied` outputs
    of the deploys since), `target_release_migrations` from the target release's tree
    (`migrations_at_ref(tag, settings)`). The files are read from `migrations`, or from
    the current checkout under `settings`; an applied name with no file here counts as a
    contract, since nothing shows it is safe.
    """
    catalog = (
        list(migrations) if migrations is not None else discover(settings or MigrationSettings())
    )
    files = {m.name: m for m in catalog}
    order = {m.name: i for i, m in enumerate(catalog)}
    keep = set(target_release_migrations)
    crossed = sorted(
        (n for n in dict.fromkeys(applied_names) if n not in keep),
        key=lambda n: (order.get(n, len(order)), n),
    )
    judged = classify_many(catalog, crossed)
    found = []
    for name in crossed:
        migration = files.get(name)
        if migration is None:
            found.append(ContractMigration(name, Kind.CONTRACT, "", ()))
            continue
        verdict = judged.get(name)
        if verdict is None:
            # Fail safe: what cannot be read cannot be shown to be harmless.
            found.append(ContractMigration(name, Kind.CONTRACT, str(migration.up), ()))
        elif verdict[0] is not Kind.EXPAND:
            found.append(ContractMigration(name, verdict[0], str(migration.up), verdict[1]))
    return found
