"""Where each migration stands, from files and `_prisma_migrations` rows (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from release_actions.db.layout import Migration
from release_actions.db.runner import Row, plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _migration(tmp_path: Path, name: str, sql: str = "SELECT 1;") -> Migration:
    up = tmp_path / f"{name}.up.sql"
    up.write_text(sql)
    return Migration(name, up, None)


def _row(
    name: str, checksum: str, minutes: int, *, finished: bool = True, rolled: bool = False
) -> Row:
    at = T0 + timedelta(minutes=minutes)
    return Row(f"id-{name}-{minutes}", checksum, at if finished else None, name, None,
               at if rolled else None, at, 1)  # fmt: skip


def test_states_from_rows(tmp_path: Path) -> None:
    a, b, c, d = (_migration(tmp_path, n) for n in ("1_a", "2_b", "3_c", "4_d"))
    e = _migration(tmp_path, "5_e", "SELECT 2;")
    rows = [
        _row("1_a", a.checksum, 1),
        _row("2_b", b.checksum, 2, finished=False),  # failed part way
        _row("3_c", c.checksum, 3),
        _row("3_c", c.checksum, 4, rolled=True),  # applied, then rolled back
        _row("5_e", "0" * 64, 5),  # edited after it was applied
        _row("0_gone", "f" * 64, 0),  # applied from a newer checkout
    ]
    states = {e.name: e.state for e in plan([a, b, c, d, e], rows)}
    assert states == {
        "1_a": "applied",
        "2_b": "failed",
        "3_c": "pending",
        "4_d": "pending",
        "5_e": "modified",
        "0_gone": "missing",
    }


def test_a_rolled_back_failure_does_not_block(tmp_path: Path) -> None:
    a = _migration(tmp_path, "1_a")
    rows = [_row("1_a", a.checksum, 1, finished=False, rolled=True)]
    assert [e.state for e in plan([a], rows)] == ["pending"]
    rows.append(_row("1_a", a.checksum, 2))
    assert [e.state for e in plan([a], rows)] == ["applied"]
