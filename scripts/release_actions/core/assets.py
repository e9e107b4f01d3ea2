"""Release assets from untrusted globs: matched inside the workspace, named, hashed, typed."""

from __future__ import annotations

import glob
import hashlib
import mimetypes
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from release_actions.errors import ReleaseActionsError

CHECKSUMS_NAME = "SHA256SUMS"
# GitHub renames asset names with other characters (a space or `(` becomes `.`), so a
# rerun could not find the asset again by its name; refusing them up front is clearer.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$")
# What a compressed file is, by its compression, when mimetypes only names the inner type
# (`.tar.gz` is `application/x-tar` with encoding `gzip`): the bytes sent are the gzip.
_ENCODED = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class AssetError(ReleaseActionsError):
    """Raised when the `files` globs match nothing, leave the workspace, or clash by name."""


@dataclass(frozen=True)
class LocalAsset:
    """One file to attach: ``shown`` is how the user would name it (relative to the cwd)."""

    path: Path
    shown: str
    name: str
    size: int
    sha256: str
    content_type: str
    data: bytes | None = None  # in-memory content (the SHA256SUMS file), else read ``path``


def split_patterns(values: Iterable[str]) -> list[str]:
    """Globs from inputs that each hold several, one per line or comma-separated."""
    out: list[str] = []
    for value in values:
        for part in re.split(r"[\r\n,]+", value):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def content_type(name: str) -> str:
    """The media type for an asset name; `application/octet-stream` when it is not known."""
    kind, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        return _ENCODED.get(encoding, DEFAULT_CONTENT_TYPE)
    return kind or DEFAULT_CONTENT_TYPE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_name(name: str, shown: str) -> None:
    if not _SAFE_NAME.match(name) or name.endswith("."):
        bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9._+-]", c)})
        what = f" (here {', '.join(repr(c) for c in bad)})" if bad else ""
        raise AssetError(
            f"`{shown}`: GitHub renames assets whose names hold characters other than "
            f"letters, digits, `.`, `_`, `-` and `+`, or start or end with `.`{what}, so a "
            "rerun could not find the asset again.",
            hint="Rename the file before the release step (for example spaces to `-`).",
        )


def resolve_files(
    patterns: Sequence[str],
    *,
    cwd: Path,
    workspace: Path,
    fail_on_unmatched: bool = True,
) -> tuple[list[LocalAsset], list[str]]:
    """The files that ``patterns`` match, and the patterns that matched none.

    Patterns are relative to ``cwd`` (`**` reaches into folders); every match must
    resolve, symlinks followed, inside ``workspace``, since the globs come from workflow
    inputs. A file matched twice is attached once; two files with one name are an error,
    since a release holds one asset per name.
    """
    root = Path(os.path.realpath(workspace))
    seen: dict[Path, LocalAsset] = {}
    by_name: dict[str, LocalAsset] = {}
    unmatched: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, root_dir=cwd, recursive=True))
        files = 0
        for match in matches:
            path = cwd / match
            real = Path(os.path.realpath(path))
            if not real.is_relative_to(root):
                raise AssetError(
                    f"`files` pattern `{pattern}` matches `{match}`, which resolves to "
                    f"`{real}`, outside the workspace `{root}`; release assets must come from "
                    "the workspace.",
                    hint="Copy or build the file into the workspace first.",
                )
            try:
                mode = real.stat().st_mode
            except OSError:
                continue  # a dangling symlink: nothing to upload
            if not stat.S_ISREG(mode):
                continue  # folders (and sockets, pipes) are not assets
            files += 1
            if real in seen:
                continue
            name = Path(match).name
            check_name(name, match)
            other = by_name.get(name)
            if other is not None:
                raise AssetError(
                    f"`{other.shown}` and `{match}` would both be the release asset `{name}`; "
                    "a release holds one asset per name.",
                    hint="Narrow the `files` globs, or rename one of the files.",
                )
            asset = LocalAsset(
                path=real,
                shown=match,
                name=name,
                size=real.stat().st_size,
                sha256=_sha256(real),
                content_type=content_type(name),
            )
            seen[real] = by_name[name] = asset
        if files == 0:
            unmatched.append(pattern)
    if unmatched and fail_on_unmatched:
        listed = ", ".join(f"`{p}`" for p in unmatched)
        raise AssetError(
            f"`files` pattern{'s' if len(unmatched) > 1 else ''} {listed} matched no file "
            f"under `{cwd}`.",
            hint="Check the path and that the build step ran first (patterns are relative to "
            "`working-directory`, folders need `dir/*`), or set `fail-on-unmatched-files: "
            "false` to go on without them.",
        )
    return list(seen.values()), unmatched


def sha256sums(assets: Iterable[LocalAsset]) -> str:
    """The assets' digests in `sha256sum` format, so `sha256sum -c SHA256SUMS` checks them."""
    return "".join(f"{a.sha256}  {a.name}\n" for a in sorted(assets, key=lambda a: a.name))


def checksums_asset(assets: Sequence[LocalAsset]) -> LocalAsset:
    """The `SHA256SUMS` file itself, as an asset held in memory."""
    data = sha256sums(assets).encode("ascii")
    taken = [a.shown for a in assets if a.name == CHECKSUMS_NAME]
    if taken:
        raise AssetError(
            f"`{taken[0]}` would be the release asset `{CHECKSUMS_NAME}`, the name of the "
            "checksums file that `checksums` adds.",
            hint="Leave it out of `files`, or set `checksums: body`.",
        )
    return LocalAsset(
        path=Path(CHECKSUMS_NAME),
        shown=CHECKSUMS_NAME,
        name=CHECKSUMS_NAME,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type="text/plain",
        data=data,
    )
