"""SemVer 2.0.0: the spec's own examples, precedence rules, bumps, and never a crash on text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from release_actions.core.versions import Version, compare
from release_actions.errors import InvalidVersionError

# The precedence chain of semver.org section 11, lowest first.
SPEC_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]

# semver.org's reference regular expression, used as an independent oracle.
OFFICIAL = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$",
    re.ASCII,
)


def test_spec_precedence_chain() -> None:
    versions = [Version.parse(v) for v in SPEC_ORDER]
    for low, high in zip(versions, versions[1:], strict=False):
        assert low < high, (low, high)
        assert compare(low, high) == -1
        assert compare(high, low) == 1
    shuffled = [versions[i] for i in (3, 0, 10, 7, 1, 9, 2, 8, 4, 6, 5)]
    assert sorted(shuffled) == versions


def test_build_metadata_is_ignored_for_precedence() -> None:
    assert compare(Version.parse("1.0.0+abc1234"), Version.parse("1.0.0+zzz")) == 0
    assert Version.parse("2.0.0+abc1234").build == ("abc1234",)


@pytest.mark.parametrize(
    "text",
    [
        "1.0.0",
        "1.1.0",
        "1.1.1",
        "2.0.0-alpha.1",
        "2.0.0-beta.1",
        "2.0.0-rc.1",
        "2.0.0+abc1234",
        "1.0.0-0.3.7",
        "1.0.0-x.7.z.92",
        "1.0.0-x-y-z.--",
        "1.0.0+21AF26D3----117B344092BD",
    ],
)
def test_valid_versions_round_trip(text: str) -> None:
    assert str(Version.parse(text)) == text
    assert str(Version.parse("v" + text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "1.2",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-01",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "v",
        "",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\n",
        "1.2.٣",
        "1.2.3-rc.1$(id)",
        "1.2.3`id`",
        "vv1.2.3",
    ],
)
def test_invalid_versions_are_refused(text: str) -> None:
    with pytest.raises(InvalidVersionError) as exc:
        Version.parse(text)
    assert "SemVer" in exc.value.message


def test_any_prerelease_is_a_prerelease_rc_too() -> None:
    # The source workflow only flagged alpha and beta; rc tags went out as final releases.
    for text in ["2.0.0-rc.1", "2.0.0-alpha.1", "2.0.0-beta.1", "2.0.0-0", "2.0.0-preview"]:
        assert Version.parse(text).is_prerelease
    assert not Version.parse("2.0.0+build.5").is_prerelease


def test_prefix_is_required_when_given() -> None:
    assert str(Version.parse("v1.2.3", prefix="v")) == "1.2.3"
    with pytest.raises(InvalidVersionError, match="must start with `v`"):
        Version.parse("1.2.3", prefix="v")
    assert str(Version.parse("release-1.2.3", prefix="release-")) == "1.2.3"


def test_to_dict_has_the_documented_keys() -> None:
    assert Version.parse("1.2.3-rc.1+b7").to_dict() == {
        "version": "1.2.3-rc.1+b7",
        "major": 1,
        "minor": 2,
        "patch": 3,
        "prerelease": "rc.1",
        "build": "b7",
        "is_prerelease": True,
    }


@pytest.mark.parametrize(
    ("start", "part", "pre", "expected"),
    [
        ("1.2.3", "patch", None, "1.2.4"),
        ("1.2.3", "minor", None, "1.3.0"),
        ("1.2.3", "major", None, "2.0.0"),
        ("1.2.3", "prerelease", None, "1.2.4-rc.1"),
        ("1.2.3", "minor", "beta", "1.3.0-beta.1"),
        ("2.0.0-rc.1", "prerelease", None, "2.0.0-rc.2"),
        ("2.0.0-rc.1", "major", None, "2.0.0"),
        ("2.1.0-rc.1", "major", None, "3.0.0"),
        ("2.1.0-rc.1", "minor", None, "2.1.0"),
        ("2.1.1-rc.1", "patch", None, "2.1.1"),
        ("2.0.0-alpha.3", "prerelease", "beta", "2.0.0-beta.1"),
        ("2.0.0-alpha", "prerelease", None, "2.0.0-alpha.1"),
    ],
)
def test_bump(start: str, part: str, pre: str | None, expected: str) -> None:
    bumped = Version.parse(start).bump(part, pre=pre)  # type: ignore[arg-type]
    assert str(bumped) == expected
    assert bumped > Version.parse(start)


def test_bump_refuses_to_go_backwards() -> None:
    with pytest.raises(InvalidVersionError, match="would not be higher"):
        Version.parse("2.0.0-rc.1").bump("prerelease", pre="alpha")


ident = st.from_regex(r"\A(0|[1-9][0-9]{0,3}|[0-9]{0,2}[A-Za-z-][0-9A-Za-z-]{0,5})\Z")
build_ident = st.from_regex(r"\A[0-9A-Za-z-]{1,6}\Z")
versions = st.builds(
    Version,
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.lists(ident, max_size=4).map(tuple),
    st.lists(build_ident, max_size=3).map(tuple),
)


@given(versions)
def test_render_parse_round_trip(v: Version) -> None:
    again = Version.parse(str(v))
    assert again == v and again.build == v.build and str(again) == str(v)


@given(versions, versions)
def test_order_is_total_and_antisymmetric(a: Version, b: Version) -> None:
    assert compare(a, b) == -compare(b, a)
    assert (a == b) == (compare(a, b) == 0)


@given(versions, versions, versions)
def test_order_is_transitive(a: Version, b: Version, c: Version) -> None:
    x, y, z = sorted([a, b, c])
    assert x <= y <= z and x <= z


@given(st.text(max_size=40))
def test_parse_never_crashes_and_agrees_with_the_official_grammar(text: str) -> None:
    try:
        v = Version.parse(text)
    except InvalidVersionError:
        stripped = text[1:] if text[:1] in ("v", "V") else text
        assert not OFFICIAL.match(text) or text.endswith("\n")
        assert not OFFICIAL.match(stripped) or stripped.endswith("\n")
    else:
        assert OFFICIAL.match(str(v))
