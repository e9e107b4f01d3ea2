"""Coverage reports: JaCoCo XML, and the one report in a folder (a downloaded artifact)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from release_actions.integrations.readiness import (
    CoverageError,
    coverage_item,
    find_report,
    parse_coverage,
)

COUNTER_TYPES = ("INSTRUCTION", "BRANCH", "LINE", "COMPLEXITY", "METHOD", "CLASS")
counts = st.integers(0, 10**9)


def counter(kind: str, missed: int | str, covered: int | str) -> str:
    return f'<counter type="{kind}" missed="{missed}" covered="{covered}"/>'


def jacoco(missed: int, covered: int, *, nested: tuple[int, int] = (1, 0)) -> str:
    """A JaCoCo report as `jacoco:report` writes it, with its DOCTYPE and nested counters."""
    inner = counter("LINE", *nested)
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd">'
        '<report name="webapp"><sessioninfo id="s" start="1" dump="2"/>'
        '<package name="com/example"><class name="com/example/App" sourcefilename="App.java">'
        f'<method name="main" desc="()V" line="3">{inner}</method>{inner}</class>'
        f'<sourcefile name="App.java"><line nr="3" mi="0" ci="2" mb="0" cb="0"/>{inner}'
        f"</sourcefile>{inner}</package>"
        f"{counter('INSTRUCTION', 5, 6)}{counter('LINE', missed, covered)}"
        f"{counter('METHOD', 1, 1)}</report>"
    )


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(
    missed=counts,
    covered=counts,
    nested=st.tuples(counts, counts),
    others=st.lists(st.tuples(st.sampled_from(COUNTER_TYPES), counts, counts), max_size=4),
)
def test_jacoco_reads_the_report_level_line_counter(
    tmp_path: Path,
    missed: int,
    covered: int,
    nested: tuple[int, int],
    others: list[tuple[str, int, int]],
) -> None:
    # Other report-level counters and every nested (package, class, method) counter are noise.
    extra = "".join(counter(k, m, c) for k, m, c in others if k != "LINE")
    text = jacoco(missed, covered, nested=nested).replace("</report>", f"{extra}</report>")
    path = tmp_path / "jacoco.xml"
    path.write_text(text)
    if covered + missed == 0:
        with pytest.raises(CoverageError, match="counts no lines"):
            parse_coverage(path)
        return
    cov = parse_coverage(path)
    assert cov.format == "JaCoCo XML"
    assert (cov.covered, cov.total) == (covered, covered + missed)
    assert cov.percent == covered * 100 / (covered + missed)


def test_jacoco_85_passes_and_60_fails(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_text(jacoco(15, 85))
    item = coverage_item(path, 80.0)
    assert item.ok is True
    assert item.detail.startswith("85.00 % (JaCoCo XML, 85 of 100 lines")
    path.write_text(jacoco(40, 60))
    assert coverage_item(path, 80.0).ok is False


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            '<report name="x"><package name="p">' + counter("LINE", 1, 9) + "</package></report>",
            'no report-level `<counter type="LINE">`',
        ),
        ('<report name="x">' + counter("LINE", 1, "many") + "</report>", "not a count"),
        (
            '<!DOCTYPE report [<!ENTITY a "aaaaaaaaaa">]><report name="&a;">'
            + counter("LINE", 1, 9)
            + "</report>",
            "declares XML entities",
        ),
        ("<html><body/></html>", "neither Cobertura"),
    ],
)
def test_bad_jacoco_reports_say_why(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "jacoco.xml"
    path.write_text(text)
    with pytest.raises(CoverageError, match=words.replace("(", r"\(")):
        parse_coverage(path)


# -- a folder --------------------------------------------------------------------------------


LCOV = "TN:\nSF:src/a.ts\nDA:1,1\nLF:10\nLH:9\nend_of_record\n"
COBERTURA = '<coverage line-rate="0.9" lines-valid="10" lines-covered="9"><packages/></coverage>'


def test_the_one_report_in_a_folder_is_found_by_content(tmp_path: Path) -> None:
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "index.html").write_text("<!doctype html><html><body>90 %</body></html>")
    (tmp_path / "README.txt").write_text("Coverage of the webapp.\n")
    (tmp_path / "coverage-final.json").write_text('{"src/a.ts": {"s": {}}}')  # istanbul's
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "report-of-the-build.data").write_text(jacoco(15, 85))
    assert find_report(tmp_path) == tmp_path / "site" / "report-of-the-build.data"


def test_a_single_report_by_its_usual_name(tmp_path: Path) -> None:
    (tmp_path / "lcov.info").write_text(LCOV)
    assert find_report(tmp_path) == tmp_path / "lcov.info"


def test_several_reports_in_a_folder_are_an_error_that_lists_them(tmp_path: Path) -> None:
    (tmp_path / "lcov.info").write_text(LCOV)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cobertura.xml").write_text(COBERTURA)
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(CoverageError) as info:
        find_report(tmp_path)
    message = str(info.value.message) + (info.value.hint or "")
    assert "2 coverage reports" in message
    assert "`sub/cobertura.xml` (Cobertura XML)" in message and "`lcov.info` (LCOV)" in message
    assert "notes.txt" not in message
    assert "--coverage-file" in message


def test_a_folder_without_a_report_is_an_error_that_lists_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "coverage.xml").write_text("<coverage")
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(CoverageError) as info:
        find_report(tmp_path)
    message = info.value.message + (info.value.hint or "")
    assert "no coverage report" in message
    assert "`coverage.xml` (not well-formed XML" in message and "`notes.txt`" in message


def test_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CoverageError, match="is empty"):
        find_report(tmp_path)


def test_a_file_is_its_own_report(tmp_path: Path) -> None:
    (tmp_path / "x.info").write_text(LCOV)
    assert find_report(tmp_path / "x.info") == tmp_path / "x.info"


def test_no_coverage_is_a_warning_that_says_what_to_pass() -> None:
    item = coverage_item(None, 80.0)
    assert item.ok is None and item.status == "warning"
    assert item.detail == "not measured: pass `--coverage-file`"
    hint = "the release workflow got no `coverage-artifact`"
    assert coverage_item(None, 80.0, missing=hint).detail == f"not measured: {hint}"
