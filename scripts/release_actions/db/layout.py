"""Where migrations live: the Prisma layout by default, a plain up/down layout as an option."""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from release_actions.db.errors import MigrationError

Layout = Literal["prisma", "plain"]
LAYOUTS: tuple[Layout, ...] = ("prisma", "plain")

DEFAULT_DIRS: dict[str, Path] = {
    "prisma": Path("prisma/migrations"),
    "plain": Path("migrations"),
}

# Prisma's own bookkeeping table; sharing it lets a team move between `prisma migrate`
# and the built-in runner without losing the record of what is applied.
DEFAULT_TABLE = "_prisma_migrations"

_PLAIN = re.compile(r"^(?P<version>[0-9A-Za-z]+)_(?P<label>.+)\.(?P<dir>up|down)\.sql$")


@dataclass(frozen=True)
class MigrationSettings:
    """The migration part of the release policy; `dir=None` means the layout's usual folder.

    Kept a plain frozen dataclass so the policy model can build it from its own section.
    """

    dir: Path | None = None
    layout: Layout = "prisma"
    table: str = DEFAULT_TABLE
    lock_timeout_seconds: float = 10.0
    deploy_command: str | None = None
    status_command: str | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise MigrationError(
                f"Unknown migration layout `{self.layout}`: use one of "
                + ", ".join(f"`{name}`" for name in LAYOUTS)
                + "."
            )

    @property
    def path(self) -> Path:
        return self.dir if self.dir is not None else DEFAULT_DIRS[self.layout]

    @property
    def default_deploy_command(self) -> str | None:
        """The consumer's own tool runs by default where the layout implies one (Prisma)."""
        if self.deploy_command is not None:
            return self.deploy_command
        return "npx prisma migrate deploy" if self.layout == "prisma" else None

    @property
    def default_status_command(self) -> str | None:
        if self.status_command is not None:
            return self.status_command
        return "npx prisma migrate status" if self.layout == "prisma" else None


@dataclass(frozen=True)
class Migration:
    """One migration: its name as the tracking table records it, and its two scripts."""

    name: str
    up: Path
    down: Path | None

    @cached_property
    def up_bytes(self) -> bytes:
        return self.up.read_bytes()

    @property
    def up_sql(self) -> str:
        return self.up_bytes.decode("utf-8")

    @property
    def down_sql(self) -> str | None:
        return None if self.down is None else self.down.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        """sha256 of the up script as stored, as Prisma writes in `_prisma_migrations.checksum`."""
        return hashlib.sha256(self.up_bytes).hexdigest()


def _plain_key(name: str) -> tuple[int, int | str, str]:
    # Unpadded numeric versions (1, 2, 10) sort as numbers; timestamps sort the same either way.
    version = name.split("_", 1)[0]
    return (0, int(version), name) if version.isdigit() else (1, version, name)


def discover(settings: MigrationSettings) -> list[Migration]:
    """Every migration under the settings' folder, in the order they apply."""
    root = settings.path
    if not root.is_dir():
        raise MigrationError(
            f"The migrations folder {root} does not exist.",
            hint=f"Pass `--dir` (and `--layout`, one of {', '.join(LAYOUTS)}) to point at it.",
            file=str(root),
        )
    if settings.layout == "prisma":
        return _discover_prisma(root)
    return _discover_plain(root)


def _discover_prisma(root: Path) -> list[Migration]:
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        up = folder / "migration.sql"
        if not up.is_file():
            raise MigrationError(
                f"{folder} has no migration.sql.",
                hint="Each Prisma migration is a folder `<timestamp>_<name>/` holding "
                "`migration.sql` (and `down.sql`); remove the folder or add the script.",
                file=str(folder),
            )
        down = folder / "down.sql"
        found.append(Migration(folder.name, up, down if down.is_file() else None))
    # Prisma applies folders in lexical order of their names.
    return found


def _discover_plain(root: Path) -> list[Migration]:
    ups: dict[str, Path] = {}
    downs: dict[str, Path] = {}
    for path in root.iterdir():
        m = _PLAIN.match(path.name)
        if not m or not path.is_file():
            continue
        name = path.name[: -len(f".{m['dir']}.sql")]
        (ups if m["dir"] == "up" else downs)[name] = path
    orphans = sorted(set(downs) - set(ups))
    if orphans:
        raise MigrationError(
            f"{downs[orphans[0]]} has no matching up script.",
            hint=f"Add {orphans[0]}.up.sql beside it, or remove the down script.",
            file=str(downs[orphans[0]]),
        )
    return [Migration(name, ups[name], downs.get(name)) for name in sorted(ups, key=_plain_key)]


def names_in_tree(paths: Iterable[str], layout: Layout) -> set[str]:
    """Migration names found in a list of paths relative to the migrations folder."""
    names = set()
    for path in paths:
        parts = path.split("/")
        if layout == "prisma" and len(parts) == 2 and parts[1] == "migration.sql":
            names.add(parts[0])
        elif layout == "plain" and len(parts) == 1:
            m = _PLAIN.match(parts[0])
            if m and m["dir"] == "up":
                names.add(parts[0][: -len(".up.sql")])
    return names


def migrations_at_ref(ref: str, settings: MigrationSettings) -> set[str]:
    """The migration names a git revision has, such as the previous release's tag."""
    root = settings.path
    cwd = root if root.is_dir() else Path(".")
    spec = "." if root.is_dir() else str(root)
    try:
        proc = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", ref, "--", spec],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise MigrationError("`git` is not installed, so `--since` cannot be used.") from exc
    if proc.returncode != 0:
        raise MigrationError(
            f"git cannot read revision `{ref}`: {proc.stderr.strip()}",
            hint="Fetch the history (actions/checkout with `fetch-depth: 0`) or name an "
            "existing tag or commit.",
        )
    return names_in_tree(proc.stdout.splitlines(), settings.layout)


@dataclass(frozen=True)
class Base:
    """The revision whose migrations shipped already: `commit`, and in words, which one."""

    commit: str
    describe: str


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip()
    return out if proc.returncode == 0 and out else None


def find_base(
    settings: MigrationSettings, env: Mapping[str, str], *, tag_prefix: str = "v"
) -> tuple[Base | None, str]:
    """What this branch or tag builds on, or None and why not.

    A tag push builds on the previous release tag; anything else on the merge base with
    the branch it merges into (the pull request's base, else the default branch).
    """
    root = settings.path
    cwd = root if root.is_dir() else Path(".")
    if _git(["rev-parse", "--git-dir"], cwd) is None:
        return None, f"{root} is not in a git repository (or `git` is not installed)"
    ref = env.get("GITHUB_REF", "")
    if ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
        previous = _git(
            ["describe", "--tags", "--abbrev=0", f"--match={tag_prefix}*", "HEAD^"], cwd
        )
        commit = _git(["rev-parse", "--verify", "--quiet", f"{previous}^{{commit}}"], cwd)
        if previous is None or commit is None:
            return None, (
                f"there is no release tag before `{tag}` in the history fetched "
                f"(tags matching `{tag_prefix}*`)"
            )
        return Base(commit, f"the previous release tag `{previous}`"), ""
    candidates = ["origin/HEAD", "origin/main", "main"]
    if env.get("GITHUB_BASE_REF"):
        candidates.insert(0, f"origin/{env['GITHUB_BASE_REF']}")
    head = _git(["rev-parse", "HEAD"], cwd)
    for candidate in candidates:
        commit = _git(["merge-base", "HEAD", candidate], cwd)
        if commit is not None and commit == head:
            # On the branch itself (a push to main after a merge): what the push added is
            # what its first parent lacks, not nothing.
            parent = _git(["rev-parse", "--verify", "--quiet", "HEAD^1"], cwd)
            if parent is not None:
                return Base(parent, f"the commit before this one on `{candidate}`"), ""
            continue
        if commit is not None:
            return Base(commit, f"the merge base with `{candidate}` ({commit[:12]})"), ""
    return None, (
        "no merge base with the default branch was found (tried "
        + ", ".join(f"`{c}`" for c in candidates)
        + ")"
    )


def select_new(
    migrations: Sequence[Migration],
    *,
    since: str | None = None,
    new: Sequence[str] = (),
    settings: MigrationSettings | None = None,
) -> list[Migration]:
    """The migrations this release adds: named ones, those absent at `since`, or all of them."""
    if since and new:
        raise MigrationError("Only one of `--since` or `--new` can be set.")
    if new:
        known = {m.name: m for m in migrations}
        unknown = [n for n in new if n not in known]
        if unknown:
            raise MigrationError(
                f"No migration named {', '.join(f'`{n}`' for n in unknown)}.",
                hint="Known migrations: " + (", ".join(known) or "none"),
            )
        wanted = set(new)
        return [m for m in migrations if m.name in wanted]
    if since:
        old = migrations_at_ref(since, settings or MigrationSettings())
        return [m for m in migrations if m.name not in old]
    return list(migrations)
