"""`changelog check|extract|lint|release` and `validate` on release-please and python-semantic-release files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunCli

RELEASE_PLEASE = (
    "# Changelog\n\n"
    "## [1.2.3](https://github.com/o/r/compare/v1.2.2...v1.2.3) (2026-01-10)\n\n"
    "### Bug Fixes\n\n* **api:** `$(id)` stays text ([#12](https://github.com/o/r/issues/12))\n\n"
    "## 1.2.2 (2026-01-02)\n\n### Features\n\n* First.\n"
)
SEMANTIC_RELEASE = (
    "# CHANGELOG\n\n## v1.2.3 (2026-01-10)\n\n### Bug Fixes\n\n- Time zones.\r\n- Pools.\n\n"
    "## v1.2.2 (2026-01-02)\n\n### Features\n\n- First.\n"
)
PLAIN_DASH = (
    "# Changelog\n\n## 1.2.3 - 2026-01-10\n\n### Fixed\n\n- Time zones.\n\n"
    "## 1.2.2 - 2026-01-02\n\n### Added\n\n- First.\n"
)
STYLES = {
    "release-please": (
        RELEASE_PLEASE,
        "### Bug Fixes\n\n* **api:** `$(id)` stays text ([#12](https://github.com/o/r/issues/12))",
    ),
    "python-semantic-release": (SEMANTIC_RELEASE, "### Bug Fixes\n\n- Time zones.\r\n- Pools."),
    "plain-dash": (PLAIN_DASH, "### Fixed\n\n- Time zones."),
}


@pytest.fixture(params=list(STYLES))
def styled(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    text, body = STYLES[request.param]
    path = tmp_path / "CHANGELOG.md"
    path.write_bytes(text.encode())
    return path, body


def test_check(run_cli: RunCli, styled: tuple[Path, str]) -> None:
    path, _ = styled
    r = run_cli("changelog", "check", "1.2.3", "--file", str(path), actions=False)
    assert r.code == 0, r.stdout + r.stderr
    assert f"{path}:3: " in r.stdout and "2026-01-10" in r.stdout
    assert run_cli("changelog", "check", "1.2.4", "--file", str(path)).code == 1


def test_extract_is_byte_exact(run_cli: RunCli, styled: tuple[Path, str], tmp_path: Path) -> None:
    path, body = styled
    notes = tmp_path / "notes.md"
    r = run_cli("changelog", "extract", "v1.2.3", "--file", str(path), "--output-file", str(notes))
    assert r.code == 0, r.stdout + r.stderr
    assert notes.read_bytes() == body.encode()
    assert r.outputs["body"] == body and r.outputs["date"] == "2026-01-10"
    assert r.outputs["line"] == "3"


def test_lint_is_clean(run_cli: RunCli, styled: tuple[Path, str]) -> None:
    path, _ = styled
    r = run_cli("changelog", "lint", "--file", str(path))
    assert r.code == 0 and "::warning" not in r.stdout, r.stdout
    assert r.outputs["warnings"] == "0"


def test_validate_passes(run_cli: RunCli, styled: tuple[Path, str]) -> None:
    path, _ = styled
    r = run_cli(
        "validate", "--tag", "v1.2.3", "--changelog", str(path),
        "--skip", "calendar", "--skip", "branch",
    )  # fmt: skip
    assert r.code == 0, r.stdout + r.stderr
    assert "| changelog | ✅ pass |" in r.summary


def test_a_heading_in_no_style_is_an_error_with_its_line(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "CHANGELOG.md"
    path.write_text("# Changelog\n\n## Release 1.2.3 on 2026-01-10\n\n- Fix.\n")
    r = run_cli("changelog", "check", "1.2.3", "--file", str(path))
    assert r.code == 1
    assert f"::error file={path},line=3::" in r.stdout
    assert "## [1.2.3](" in r.stdout and "## v1.2.3 (" in r.stdout
    extract = run_cli("changelog", "extract", "1.2.3", "--file", str(path))
    assert extract.code == 2 and f"file={path},line=3" in extract.stdout
    lint = run_cli("changelog", "lint", "--file", str(path))
    assert lint.code == 1 and f"::error file={path},line=3::" in lint.stdout


def test_release_keeps_the_files_style(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "CHANGELOG.md"
    path.write_text(
        SEMANTIC_RELEASE.replace("# CHANGELOG\n\n", "# CHANGELOG\n\n## Unreleased\n\n- Next.\n\n")
    )
    r = run_cli(
        "changelog", "release", "1.3.0", "--file", str(path), "--date", "2026-02-01",
        env={"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r"},
    )  # fmt: skip
    assert r.code == 0, r.stdout + r.stderr
    assert path.read_text().startswith(
        "# CHANGELOG\n\n## Unreleased\n\n## v1.3.0 (2026-02-01)\n\n- Next.\n\n## v1.2.3 (2026-01-10)\n"
    )
    assert "]: " not in path.read_text()


def test_lint_warns_when_a_file_mixes_styles(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "CHANGELOG.md"
    path.write_text(PLAIN_DASH.replace("## 1.2.2 - 2026-01-02", "## v1.2.2 (2026-01-02)"))
    r = run_cli("changelog", "lint", "--file", str(path))
    assert r.code == 0
    assert f"::warning file={path},line=9::" in r.stdout and "[mixed-styles]" in r.stdout
