"""The Actions runtime: outputs that round-trip exactly, annotations, masks, groups."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from release_actions.errors import OutputError
from release_actions.gha import Runtime, escape_data, escape_property, markdown_table
from tests.support.runner_files import parse_file_commands

HOSTILE = [
    "",
    "EOF",
    "line1\nEOF\nevil=1",
    "$(id)`id`';id;#\"",
    "${{ github.token }}",
    "a\r\nb\rc\n",
    "\n\n\n",
    "::set-output name=x::y\n::add-mask::z",
    "name<<ghadelimiter_00\nvalue",
    "x" * (1 << 20),
]


def make(tmp_path: Path, actions: bool = True) -> tuple[Runtime, io.StringIO, Path, Path]:
    out = tmp_path / "output"
    summary = tmp_path / "summary"
    buf = io.StringIO()
    env = {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    if actions:
        env["GITHUB_ACTIONS"] = "true"
    return Runtime(env=env, out=buf, err=buf), buf, out, summary


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_round_trip_without_extra_keys(tmp_path: Path, value: str) -> None:
    rt, _, out, _ = make(tmp_path)
    rt.set_output("body", value)
    rt.set_output("after", "ok")
    rt.flush()
    assert parse_file_commands(out.read_bytes().decode("utf-8")) == [
        ("body", value),
        ("after", "ok"),
    ]


@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))))
@settings(max_examples=300)
def test_any_text_round_trips(value: str) -> None:
    rt = Runtime(env={})
    rt.set_output("v", value)
    rendered = rt._render_outputs()
    assert parse_file_commands(rendered) == [("v", value)]


def test_delimiters_are_random_per_value(tmp_path: Path) -> None:
    rt, _, out, _ = make(tmp_path)
    rt.set_output("a", "1")
    rt.set_output("b", "2")
    rt.flush()
    heads = [line for line in out.read_text().splitlines() if "<<" in line]
    delimiters = {h.split("<<")[1] for h in heads}
    assert len(delimiters) == 2 and all(len(d) >= 32 for d in delimiters)


def test_nul_and_bad_names_are_refused(tmp_path: Path) -> None:
    rt, _, out, _ = make(tmp_path)
    with pytest.raises(OutputError, match="NUL"):
        rt.set_output("x", "a\x00b")
    for name in ["", "a b", "a=b", "a<<b", "1x", "a\nb"]:
        with pytest.raises(OutputError):
            rt.set_output(name, "v")
    rt.flush()
    assert not out.exists()


def test_nothing_is_written_before_flush(tmp_path: Path) -> None:
    rt, _, out, summary = make(tmp_path)
    rt.set_output("a", "1")
    rt.summary("# title")
    assert not out.exists() and not summary.exists()
    rt.flush()
    assert out.exists() and summary.read_text() == "# title\n"


def test_booleans_and_none(tmp_path: Path) -> None:
    rt, _, out, _ = make(tmp_path)
    rt.set_output("t", True)
    rt.set_output("f", False)
    rt.set_output("n", None)
    rt.set_output("i", 3)
    rt.flush()
    assert dict(parse_file_commands(out.read_bytes().decode())) == {
        "t": "true",
        "f": "false",
        "n": "",
        "i": "3",
    }


def test_annotations_escape_properties_and_data(tmp_path: Path) -> None:
    rt, buf, _, _ = make(tmp_path)
    rt.annotate("error", "bad\nthing 100%", file="a,b:c.yml", line=7, title="T: x")
    assert buf.getvalue() == "::error file=a%2Cb%3Ac.yml,line=7,title=T%3A x::bad%0Athing 100%25\n"


def test_outside_actions_annotations_are_for_people(tmp_path: Path) -> None:
    rt, buf, _, _ = make(tmp_path, actions=False)
    rt.annotate("warning", "look", file="p.yml", line=3)
    rt.mask("secret")
    with rt.group("Step 1"):
        pass
    assert buf.getvalue() == "p.yml:3: warning: look\n== Step 1\n"


def test_mask_each_line(tmp_path: Path) -> None:
    rt, buf, _, _ = make(tmp_path)
    rt.mask("line one\nline two\n")
    assert buf.getvalue() == "::add-mask::line one\n::add-mask::line two\n"


def test_group_closes_on_error(tmp_path: Path) -> None:
    rt, buf, _, _ = make(tmp_path)
    with pytest.raises(RuntimeError), rt.group("g"):
        raise RuntimeError
    assert buf.getvalue() == "::group::g\n::endgroup::\n"


def test_untrusted_text_is_fenced_by_stop_commands(tmp_path: Path) -> None:
    rt, buf, _, _ = make(tmp_path)
    rt.echo_untrusted("::add-mask::x\n::error::fake")
    lines = buf.getvalue().splitlines()
    token = lines[0].removeprefix("::stop-commands::")
    assert len(token) == 32 and lines[-1] == f"::{token}::"
    assert lines[1:-1] == ["::add-mask::x", "::error::fake"]


def test_escapes() -> None:
    assert escape_data("a%\r\n") == "a%25%0D%0A"
    assert escape_property("a:b,c") == "a%3Ab%2Cc"


def test_markdown_table_cells_cannot_break_the_table() -> None:
    table = markdown_table(["a", "b"], [["x|y", "1\n2"]])
    assert table.splitlines()[2] == "| x\\|y | 1<br>2 |"
