"""Keep a Changelog parsing, lint, byte-exact extraction, and cutting a release."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from release_actions.core import changelog as cl
from release_actions.core.versions import Version
from release_actions.errors import ChangelogError

EXAMPLE = """\
# Changelog

## [Unreleased]

### Added

- Trip sharing.

## [1.6.0] - 2026-11-24

### Added

- Filters.

```markdown
## [9.9.9] - 2020-01-01
### Added
- not a section: this is inside a fenced block
```

~~~
## [8.8.8] - 2020-01-01
~~~

### Fixed

- Time zones.

## [1.5.2] - 2026-11-10

### Fixed

- Pool exhaustion.

[unreleased]: https://github.com/triptrip/webapp/compare/v1.6.0...HEAD
[1.6.0]: https://github.com/triptrip/webapp/compare/v1.5.2...v1.6.0
[1.5.2]: https://github.com/triptrip/webapp/releases/tag/v1.5.2
"""


def test_sections_skip_headings_inside_fences() -> None:
    log = cl.parse(EXAMPLE)
    assert [s.label for s in log.sections] == ["Unreleased", "1.6.0", "1.5.2"]
    assert [s.line for s in log.sections] == [3, 9, 29]
    assert log.find("1.6.0").date == "2026-11-24"  # type: ignore[union-attr]


def test_body_is_exact_and_excludes_link_definitions() -> None:
    log = cl.parse(EXAMPLE)
    body = log.body(log.find("1.6.0"))  # type: ignore[arg-type]
    start = EXAMPLE.index("### Added\n\n- Filters.")
    end = EXAMPLE.index("- Time zones.") + len("- Time zones.")
    assert body == EXAMPLE[start:end]
    assert log.body(log.find("1.5.2")) == "### Fixed\n\n- Pool exhaustion."  # type: ignore[arg-type]


def test_crlf_file_keeps_crlf_in_the_body() -> None:
    log = cl.parse(EXAMPLE.replace("\n", "\r\n"))
    body = log.body(log.find("1.6.0"))  # type: ignore[arg-type]
    assert "\r\n" in body and "\n" not in body.replace("\r\n", "")
    assert body == cl.parse(EXAMPLE).body(cl.parse(EXAMPLE).find("1.6.0")).replace("\n", "\r\n")  # type: ignore[arg-type]


def test_read_refuses_nul_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "CHANGELOG.md"
    path.write_bytes(b"# Changelog\n\n## [1.0.0] - 2026-01-01\n- a\x00b\n")
    with pytest.raises(ChangelogError) as exc:
        cl.read(path)
    assert exc.value.line == 4 and "NUL" in exc.value.message


def test_read_refuses_invalid_utf8_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "CHANGELOG.md"
    path.write_bytes(b"# Changelog\n\n- caf\xe9\n")
    with pytest.raises(ChangelogError) as exc:
        cl.read(path)
    assert exc.value.line == 3


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ChangelogError) as exc:
        cl.read(tmp_path / "nope.md")
    assert "keepachangelog" in (exc.value.hint or "")


def test_lint_of_a_good_file_is_clean() -> None:
    assert cl.lint(cl.parse(EXAMPLE), today=date(2026, 11, 28)) == []


def _rules(text: str) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for f in cl.lint(cl.parse(text), today=date(2026, 11, 28)):
        out.setdefault(f.rule, set()).add(f.line)
    return out


def test_lint_finds_each_problem_on_its_line() -> None:
    bad = """\
# Changelog

## [1.0.0] - 2026-01-01

### Added

- a

## [Unreleased]

## [1.2.0] - 2026-02-01

### Added

- b

## [1.2.0] - 2026-02-01

### Fixed

- c

## [1.1.0] - 2026-13-01

### Fixed

## [banana] - 2026-01-01

- d

## [0.9.0]

- e

### Frobbed

- f

## [0.1.0] - 2027-01-01

- g
"""
    rules = _rules(bad)
    assert rules["unreleased-first"] == {9}
    assert 11 in rules["order"]  # 1.2.0 after 1.0.0
    assert rules["duplicate"] == {17}
    assert rules["date"] == {23, 31}  # month 13, and no date at all
    assert rules["empty-subsection"] == {25}
    assert rules["semver"] == {27}
    assert rules["change-type"] == {35}
    assert rules["date-future"] == {39}
    assert 3 in rules["link"]


def test_require_released_errors() -> None:
    log = cl.parse(EXAMPLE)
    assert cl.require_released(log, Version.parse("1.6.0")).line == 9
    with pytest.raises(ChangelogError, match=r"no section for 2\.0\.0") as exc:
        cl.require_released(log, Version.parse("2.0.0"))
    assert "changelog release 2.0.0" in (exc.value.hint or "")
    undated = cl.parse("## [1.0.0]\n\n- a\n")
    with pytest.raises(ChangelogError, match="no valid date") as exc2:
        cl.require_released(undated, Version.parse("1.0.0"))
    assert exc2.value.line == 1


def test_release_turns_unreleased_into_a_dated_section() -> None:
    text = cl.release(
        cl.parse(EXAMPLE), Version.parse("1.7.0"), on=date(2026, 12, 1), repo_url=None
    )
    log = cl.parse(text)
    assert [s.label for s in log.sections] == ["Unreleased", "1.7.0", "1.6.0", "1.5.2"]
    assert log.body(log.find("Unreleased")) == ""  # type: ignore[arg-type]
    assert log.body(log.find("1.7.0")) == "### Added\n\n- Trip sharing."  # type: ignore[arg-type]
    assert log.links["unreleased"][1] == "https://github.com/triptrip/webapp/compare/v1.7.0...HEAD"
    assert log.links["1.7.0"][1] == "https://github.com/triptrip/webapp/compare/v1.6.0...v1.7.0"
    assert cl.lint(log, today=date(2026, 12, 1)) == []
    # Everything below the new section is untouched.
    assert text.endswith(
        EXAMPLE[EXAMPLE.index("## [1.6.0]") :].replace(
            "[unreleased]: https://github.com/triptrip/webapp/compare/v1.6.0...HEAD\n",
            "[unreleased]: https://github.com/triptrip/webapp/compare/v1.7.0...HEAD\n"
            "[1.7.0]: https://github.com/triptrip/webapp/compare/v1.6.0...v1.7.0\n",
        )
    )


def test_release_keeps_crlf() -> None:
    text = cl.release(
        cl.parse(EXAMPLE.replace("\n", "\r\n")),
        Version.parse("1.7.0"),
        on=date(2026, 12, 1),
        repo_url=None,
    )
    assert "\n" not in text.replace("\r\n", "")


def test_first_release_links_to_its_tag() -> None:
    text = cl.release(
        cl.parse("# Changelog\n\n## [Unreleased]\n\n- first\n"),
        Version.parse("0.1.0"),
        on=date(2026, 1, 2),
        repo_url="https://github.com/o/r",
    )
    log = cl.parse(text)
    assert log.links["0.1.0"][1] == "https://github.com/o/r/releases/tag/v0.1.0"
    assert log.links["unreleased"][1] == "https://github.com/o/r/compare/v0.1.0...HEAD"


@pytest.mark.parametrize(
    ("text", "version", "match"),
    [
        ("## [1.0.0] - 2026-01-01\n- a\n", "1.1.0", "no `## \\[Unreleased\\]`"),
        ("## [Unreleased]\n\n## [1.0.0] - 2026-01-01\n- a\n", "1.1.0", "nothing to release"),
        ("## [Unreleased]\n- x\n## [1.0.0] - 2026-01-01\n- a\n", "1.0.0", "already has"),
        ("## [Unreleased]\n- x\n## [1.0.0] - 2026-01-01\n- a\n", "0.9.0", "not higher"),
    ],
)
def test_release_refusals(text: str, version: str, match: str) -> None:
    with pytest.raises(ChangelogError, match=match):
        cl.release(cl.parse(text), Version.parse(version), on=date(2026, 2, 1), repo_url=None)


def test_write_atomic_replaces_whole(tmp_path: Path) -> None:
    path = tmp_path / "CHANGELOG.md"
    path.write_text("old")
    cl.write_atomic(path, "new\r\ntext")
    assert path.read_bytes() == b"new\r\ntext"
    assert [p.name for p in tmp_path.iterdir()] == ["CHANGELOG.md"]


# -- property tests ---------------------------------------------------------------------

line_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="\x00\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
    ),
    max_size=30,
).filter(lambda s: not s.lstrip().startswith(("#", "`", "~", "[")) and s.strip() != "")
bodies = st.lists(line_text.map(lambda s: "- " + s), min_size=1, max_size=5).map("\n".join)


@given(st.lists(bodies, min_size=1, max_size=5), st.sampled_from(["\n", "\r\n"]))
@settings(max_examples=150)
def test_render_then_parse_round_trips_every_body(section_bodies: list[str], nl: str) -> None:
    versions = [f"1.{len(section_bodies) - i}.0" for i in range(len(section_bodies))]
    parts = ["# Changelog", ""]
    for v, body in zip(versions, section_bodies, strict=True):
        parts += [
            f"## [{v}] - 2026-01-0{min(len(section_bodies) - versions.index(v), 9)}",
            "",
            body,
            "",
        ]
    text = nl.join("\n".join(parts).split("\n"))
    log = cl.parse(text)
    assert [s.label for s in log.sections] == versions
    for v, body in zip(versions, section_bodies, strict=True):
        assert log.body(log.find(v)) == nl.join(body.split("\n"))  # type: ignore[arg-type]


@given(st.text(max_size=400))
@settings(max_examples=300)
def test_parse_and_lint_never_crash(text: str) -> None:
    try:
        log = cl.parse(text)
    except ChangelogError:
        assert "\x00" in text
        return
    for section in log.sections:
        assert isinstance(log.body(section), str)
    for finding in cl.lint(log, today=date(2026, 1, 1)):
        assert finding.line >= 1


# -- heading styles: Keep a Changelog, release-please, python-semantic-release ---------

KAC = """\
# Changelog

## [Unreleased]

### Added

- Trip sharing.

## [1.6.0] - 2026-11-24

### Added

- Filters.

## [1.5.2] - 2026-11-10

### Fixed

- Pool exhaustion.

[unreleased]: https://github.com/o/r/compare/v1.6.0...HEAD
[1.6.0]: https://github.com/o/r/compare/v1.5.2...v1.6.0
[1.5.2]: https://github.com/o/r/releases/tag/v1.5.2
"""

# release-please (conventional-changelog-conventionalcommits header partial): a compare
# link in the heading, or the bare version for the first release (no previous tag).
RELEASE_PLEASE = """\
# Changelog

## [Unreleased]

### Features

* Trip sharing.

## [1.6.0](https://github.com/o/r/compare/v1.5.2...v1.6.0) (2026-11-24)

### Features

* Filters.

## 1.5.2 (2026-11-10)

### Bug Fixes

* Pool exhaustion.
"""

# python-semantic-release's default template: `## vX.Y.Z (YYYY-MM-DD)`.
SEMANTIC_RELEASE = """\
# CHANGELOG

## Unreleased

### Features

- Trip sharing.

## v1.6.0 (2026-11-24)

### Features

- Filters.

## v1.5.2 (2026-11-10)

### Bug Fixes

- Pool exhaustion.
"""

PLAIN_DASH = """\
# Changelog

## Unreleased

### Added

- Trip sharing.

## 1.6.0 - 2026-11-24

### Added

- Filters.

## 1.5.2 - 2026-11-10

### Fixed

- Pool exhaustion.
"""

STYLED = {
    "keep-a-changelog": KAC,
    "release-please": RELEASE_PLEASE,
    "python-semantic-release": SEMANTIC_RELEASE,
    "plain-dash": PLAIN_DASH,
}


@pytest.mark.parametrize("name", list(STYLED))
@pytest.mark.parametrize("nl", ["\n", "\r\n"])
def test_each_style_parses_checks_and_extracts(name: str, nl: str) -> None:
    text = STYLED[name].replace("\n", nl)
    log = cl.parse(text)
    assert [s.version and str(s.version) for s in log.sections] == [None, "1.6.0", "1.5.2"]
    assert [s.date for s in log.released] == ["2026-11-24", "2026-11-10"]
    section = cl.require_released(log, Version.parse("1.6.0"))
    assert section.line == 9
    bullet = "*" if name == "release-please" else "-"
    kind = "Added" if name in ("keep-a-changelog", "plain-dash") else "Features"
    assert log.body(section) == f"### {kind}{nl}{nl}{bullet} Filters."
    assert cl.require_released(log, Version.parse("1.5.2")).date == "2026-11-10"


@pytest.mark.parametrize("name", list(STYLED))
def test_a_file_in_one_style_lints_clean(name: str) -> None:
    assert cl.lint(cl.parse(STYLED[name]), today=date(2026, 11, 28)) == []


@pytest.mark.parametrize(
    "heading",
    ["## 1.6.0 / 2026-11-24", "## [1.6.0] 2026-11-24", "## Version 1.6.0 (2026-11-24)"],
)
def test_a_version_heading_in_no_style_names_its_line_and_the_styles(heading: str) -> None:
    log = cl.parse(f"# Changelog\n\n{heading}\n\n- Filters.\n", "docs/CHANGELOG.md")
    with pytest.raises(ChangelogError) as exc:
        cl.require_released(log, Version.parse("1.6.0"))
    assert exc.value.line == 3 and exc.value.file == "docs/CHANGELOG.md"
    text = exc.value.message + (exc.value.hint or "")
    assert "docs/CHANGELOG.md:3" in text
    for style in ("## [1.6.0] - ", "## [1.6.0](", "## 1.6.0 - ", "## v1.6.0 ("):
        assert style in text
    assert _rules(f"# Changelog\n\n{heading}\n\n- Filters.\n") == {"heading": {3}}


@pytest.mark.parametrize(
    ("name", "heading"),
    [
        ("keep-a-changelog", "## [1.7.0] - 2026-12-01"),
        (
            "release-please",
            "## [1.7.0](https://github.com/o/r/compare/v1.6.0...v1.7.0) (2026-12-01)",
        ),
        ("python-semantic-release", "## v1.7.0 (2026-12-01)"),
        ("plain-dash", "## 1.7.0 - 2026-12-01"),
    ],
)
def test_release_writes_the_heading_in_the_files_style(name: str, heading: str) -> None:
    before = STYLED[name]
    text = cl.release(cl.parse(before), Version.parse("1.7.0"), on=date(2026, 12, 1), repo_url=None)
    unreleased = before.splitlines()[2]
    assert f"{unreleased}\n\n{heading}\n\n" in text
    log = cl.parse(text)
    assert log.body(log.find("1.7.0")).endswith("Trip sharing.")  # type: ignore[arg-type]
    assert cl.lint(log, today=date(2026, 12, 1)) == []
    if name != "keep-a-changelog":
        # Link references at the bottom are Keep a Changelog's; the others get none.
        assert "]: " not in text


def test_release_please_link_uses_the_repo_url_and_a_bare_file_stays_bare() -> None:
    text = cl.release(
        cl.parse(RELEASE_PLEASE),
        Version.parse("1.7.0"),
        on=date(2026, 12, 1),
        repo_url="https://g/o/r",
    )
    assert "\n## [1.7.0](https://g/o/r/compare/v1.6.0...v1.7.0) (2026-12-01)\n" in text
    # `## 1.0.0 (DATE)` alone may be release-please's first release or
    # python-semantic-release without `v`: the new heading stays bare, not a guessed link.
    first = "# Changelog\n\n## [Unreleased]\n\n* a\n\n## 1.0.0 (2026-01-01)\n\n* b\n"
    bare = cl.release(
        cl.parse(first), Version.parse("1.1.0"), on=date(2026, 2, 1), repo_url="https://g/o/r"
    )
    assert "\n## [Unreleased]\n\n## 1.1.0 (2026-02-01)\n\n* a\n" in bare and "]: " not in bare


def test_a_file_that_mixes_styles_warns() -> None:
    mixed = KAC.replace("## [1.5.2] - 2026-11-10", "## v1.5.2 (2026-11-10)")
    findings = cl.lint(cl.parse(mixed), today=date(2026, 11, 28))
    mixing = [f for f in findings if f.rule == "mixed-styles"]
    assert [(f.severity, f.line) for f in mixing] == [("warning", 15)]
    assert "## [1.6.0] - " in mixing[0].message or "Keep a Changelog" in mixing[0].message
    # release-please's linked and bare headings are one style, not a mix.
    assert "mixed-styles" not in _rules(RELEASE_PLEASE)


semver_ids = st.from_regex(r"\A(0|[1-9][0-9]{0,3}|[0-9]*[a-zA-Z-][0-9a-zA-Z-]{0,5})\Z")
generated_versions = st.builds(
    lambda major, minor, patch, pre, build: (
        f"{major}.{minor}.{patch}"
        + (f"-{'.'.join(pre)}" if pre else "")
        + (f"+{'.'.join(build)}" if build else "")
    ),
    st.integers(0, 999),
    st.integers(0, 999),
    st.integers(0, 999),
    st.lists(semver_ids, max_size=3),
    st.lists(st.from_regex(r"\A[0-9a-zA-Z-]{1,6}\Z"), max_size=2),
)


def _heading(style: str, version: str, day: date, v: bool, link: bool) -> str:
    shown = f"v{version}" if v else version
    if style == "keep-a-changelog":
        return f"## [{shown}] - {day:%Y-%m-%d}"
    if style == "plain-dash":
        return f"## {shown} - {day:%Y-%m-%d}"
    if link:
        return f"## [{shown}](https://github.com/o/r/compare/v0.0.0...v{version}) ({day:%Y-%m-%d})"
    return f"## {shown} ({day:%Y-%m-%d})"


@given(
    generated_versions,
    st.dates(min_value=date(1970, 1, 1), max_value=date(9999, 12, 31)),
    st.sampled_from(["keep-a-changelog", "plain-dash", "parenthesised"]),
    st.booleans(),
    st.booleans(),
    bodies,
    st.sampled_from(["\n", "\r\n"]),
)
@settings(max_examples=200)
def test_every_heading_style_round_trips(
    version: str, day: date, style: str, v: bool, link: bool, body: str, nl: str
) -> None:
    heading = _heading(style, version, day, v, link)
    text = nl.join(["# Changelog", "", heading, "", *body.split("\n"), "", "## 0.0.0 - 1970-01-01"])
    log = cl.parse(text + nl)
    wanted = Version.parse(version)
    section = log.find(wanted)
    assert section is not None and section.line == 3
    assert str(section.version) == version and section.date == f"{day:%Y-%m-%d}"
    assert log.body(section) == nl.join(body.split("\n"))
    assert cl.require_released(log, wanted) is section
