"""Release assets from globs: matching, the workspace boundary, names, digests, types."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from release_actions.core import assets as A
from release_actions.core.assets import AssetError, resolve_files


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "dist" / "nested").mkdir(parents=True)
    (root / "dist" / "app-1.0.0.tar.gz").write_bytes(b"tarball")
    (root / "dist" / "app-1.0.0.zip").write_bytes(b"zip")
    (root / "dist" / "nested" / "app.whl").write_bytes(b"wheel")
    (root / "notes.txt").write_text("n")
    return root


def names(found: list[A.LocalAsset]) -> list[str]:
    return [a.name for a in found]


def test_split_patterns_takes_lines_and_commas_once() -> None:
    assert A.split_patterns(["dist/*.zip, dist/*.tar.gz\n\n  notes.txt \r\n", "dist/*.zip"]) == [
        "dist/*.zip",
        "dist/*.tar.gz",
        "notes.txt",
    ]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("app.tar.gz", "application/gzip"),  # the bytes are gzip, not a bare tar
        ("app.tar.xz", "application/x-xz"),
        ("app.zip", "application/zip"),
        ("notes.txt", "text/plain"),
        ("app", "application/octet-stream"),
        ("app.unknownext", "application/octet-stream"),
    ],
)
def test_content_type(name: str, kind: str) -> None:
    assert A.content_type(name) == kind


def test_globs_match_in_order_with_digests_and_sizes(ws: Path) -> None:
    found, unmatched = resolve_files(["dist/*.zip", "dist/**/*.whl", "*.txt"], cwd=ws, workspace=ws)
    assert names(found) == ["app-1.0.0.zip", "app.whl", "notes.txt"]
    assert unmatched == []
    zip_ = found[0]
    assert (zip_.shown, zip_.size, zip_.content_type) == (
        "dist/app-1.0.0.zip",
        3,
        "application/zip",
    )
    assert zip_.sha256 == hashlib.sha256(b"zip").hexdigest()


def test_a_file_matched_twice_is_attached_once(ws: Path) -> None:
    os.symlink(ws / "notes.txt", ws / "dist" / "notes.txt")  # the same file by another path
    found, _ = resolve_files(["*.txt", "dist/*", "dist/app-1.0.0.zip"], cwd=ws, workspace=ws)
    assert names(found) == ["notes.txt", "app-1.0.0.tar.gz", "app-1.0.0.zip"]


def test_an_unmatched_glob_is_an_error_naming_it(ws: Path) -> None:
    with pytest.raises(AssetError) as info:
        resolve_files(["dist/*.zip", "build/*.jar"], cwd=ws, workspace=ws)
    assert "`build/*.jar`" in info.value.message and "dist/*.zip" not in info.value.message
    assert "fail-on-unmatched-files" in (info.value.hint or "")
    found, unmatched = resolve_files(
        ["dist/*.zip", "build/*.jar"], cwd=ws, workspace=ws, fail_on_unmatched=False
    )
    assert (names(found), unmatched) == (["app-1.0.0.zip"], ["build/*.jar"])


def test_a_glob_of_folders_only_matches_nothing(ws: Path) -> None:
    with pytest.raises(AssetError, match="`dist`"):
        resolve_files(["dist"], cwd=ws, workspace=ws)


def test_dotdot_out_of_the_workspace_is_refused(ws: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s")
    with pytest.raises(AssetError) as info:
        resolve_files(["../secret.txt"], cwd=ws, workspace=ws)
    assert "outside the workspace" in info.value.message and "`../secret.txt`" in info.value.message
    with pytest.raises(AssetError, match="outside the workspace"):
        resolve_files([str(tmp_path / "*.txt")], cwd=ws, workspace=ws)
    # `..` that stays inside is fine.
    found, _ = resolve_files(["dist/../notes.txt"], cwd=ws, workspace=ws)
    assert names(found) == ["notes.txt"]


def test_a_symlink_out_of_the_workspace_is_refused(ws: Path, tmp_path: Path) -> None:
    (tmp_path / "id_rsa").write_text("key")
    os.symlink(tmp_path / "id_rsa", ws / "dist" / "innocent.zip")
    with pytest.raises(AssetError) as info:
        resolve_files(["dist/*.zip"], cwd=ws, workspace=ws)
    assert "dist/innocent.zip" in info.value.message
    assert str(tmp_path / "id_rsa") in info.value.message


def test_a_working_directory_below_the_workspace_may_reach_up_inside_it(ws: Path) -> None:
    found, _ = resolve_files(["../notes.txt"], cwd=ws / "dist", workspace=ws)
    assert names(found) == ["notes.txt"]


def test_two_files_with_one_name_are_an_error_naming_both(ws: Path) -> None:
    (ws / "dist" / "nested" / "app-1.0.0.zip").write_bytes(b"other")
    with pytest.raises(AssetError) as info:
        resolve_files(["dist/**/*.zip"], cwd=ws, workspace=ws)
    assert "`dist/app-1.0.0.zip`" in info.value.message
    assert "`dist/nested/app-1.0.0.zip`" in info.value.message


@pytest.mark.parametrize("name", ["my app.zip", "app(1).zip", ".hidden", "app~1.deb", "trail."])
def test_names_github_would_rename_are_refused(ws: Path, name: str) -> None:
    (ws / name).write_text("x")
    with pytest.raises(AssetError, match="GitHub renames"):
        resolve_files([name], cwd=ws, workspace=ws)


def test_sha256sums_is_what_sha256sum_checks(ws: Path) -> None:
    found, _ = resolve_files(["dist/*", "notes.txt"], cwd=ws, workspace=ws)
    text = A.sha256sums(found)
    assert text.splitlines()[0] == (f"{hashlib.sha256(b'tarball').hexdigest()}  app-1.0.0.tar.gz")
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum is not installed")
    flat = ws / "flat"
    flat.mkdir()
    for a in found:
        shutil.copy(a.path, flat / a.name)
    (flat / "SHA256SUMS").write_text(text)
    done = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=flat, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK") == len(found)


def test_the_checksums_asset_is_held_in_memory_and_cannot_clash(ws: Path) -> None:
    found, _ = resolve_files(["dist/*.zip"], cwd=ws, workspace=ws)
    sums = A.checksums_asset(found)
    assert (sums.name, sums.content_type, sums.data) == (
        "SHA256SUMS",
        "text/plain",
        A.sha256sums(found).encode(),
    )
    (ws / "SHA256SUMS").write_text("mine")
    theirs, _ = resolve_files(["SHA256SUMS"], cwd=ws, workspace=ws)
    with pytest.raises(AssetError, match="`SHA256SUMS`"):
        A.checksums_asset(theirs)
