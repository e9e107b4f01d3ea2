"""How the Actions runner reads $GITHUB_OUTPUT and $GITHUB_ENV, mirrored from actions/runner.

FileCommandManager.cs on Linux: lines end at LF only; `NAME=VALUE`, or `NAME<<DELIM`
followed by the value up to a line equal to DELIM, taken as the exact substring between.
Tests parse what we write the way the runner does, so "round trip" means what it means
on a real runner.
"""

from __future__ import annotations


class RunnerParseError(ValueError):
    pass


def _read_line(text: str, index: int) -> tuple[str | None, int, int]:
    """(line, new index, length of the newline consumed)."""
    if index >= len(text):
        return None, index, 0
    lf = text.find("\n", index)
    if lf < 0:
        return text[index:], len(text), 0
    return text[index:lf], lf + 1, 1


def parse_file_commands(text: str) -> list[tuple[str, str]]:
    """Every (name, value) pair in file order, as the runner would set them."""
    pairs: list[tuple[str, str]] = []
    line, index, _ = _read_line(text, 0)
    while line is not None:
        if line:
            eq, hd = line.find("="), line.find("<<")
            if eq >= 0 and (hd < 0 or eq < hd):
                name, value = line.split("=", 1)
                pairs.append((name, value))
            elif hd >= 0 and (eq < 0 or hd < eq):
                name, delimiter = line.split("<<", 1)
                if not name or not delimiter:
                    raise RunnerParseError(f"bad heredoc line {line!r}")
                start = end = index
                temp, index, nl = _read_line(text, index)
                while temp != delimiter:
                    if temp is None:
                        raise RunnerParseError(f"matching delimiter not found {delimiter!r}")
                    end = index - nl
                    temp, index, nl = _read_line(text, index)
                pairs.append((name, text[start:end] if end > start else ""))
            else:
                raise RunnerParseError(f"invalid format {line!r}")
        line, index, _ = _read_line(text, index)
    return pairs
