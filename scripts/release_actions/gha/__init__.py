"""The GitHub Actions runtime: outputs, job summary, annotations, masks, groups.

Inside Actions (``GITHUB_ACTIONS=true``) these speak the runner's file and workflow
commands; outside, the same calls print for a person, so one code path serves both.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from release_actions.errors import OutputError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def escape_data(text: str) -> str:
    """Workflow-command data escaping, as @actions/core's escapeData."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Workflow-command property escaping, as @actions/core's escapeProperty."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


class Runtime:
    """One process's view of the runner; built from an environment so tests can pass their own."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.in_actions = self.env.get("GITHUB_ACTIONS") == "true"
        self.verbose = 0
        self._outputs: dict[str, str] = {}
        self._summary: list[str] = []

    # -- outputs -------------------------------------------------------------------

    def set_output(self, name: str, value: str | int | float | bool | None) -> None:
        """Queue an output; nothing reaches $GITHUB_OUTPUT until ``flush`` (all or nothing)."""
        if not _NAME.match(name):
            raise OutputError(f"`{name}` is not a valid output name.")
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = "" if value is None else str(value)
        if "\x00" in text:
            raise OutputError(
                f"The value of output `{name}` contains a NUL byte, which the runner cannot carry."
            )
        self._outputs[name] = text

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self._outputs)

    def _render_outputs(self) -> str:
        parts = []
        for name, value in self._outputs.items():
            # A fresh random delimiter per value: the source document's fixed `EOF` ended
            # the value early at any line reading `EOF` and let the rest set outputs.
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            if delimiter in value:  # 128 random bits; refuse rather than trust luck
                raise OutputError(f"The value of output `{name}` contains its delimiter.")
            parts.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        return "".join(parts)

    def flush(self) -> None:
        """Write queued outputs and summary, each file in one append."""
        target = self.env.get("GITHUB_OUTPUT")
        if self._outputs and target:
            rendered = self._render_outputs()
            with Path(target).open("a", encoding="utf-8", newline="\n") as fh:
                fh.write(rendered)
        summary = self.env.get("GITHUB_STEP_SUMMARY")
        if self._summary and summary:
            with Path(summary).open("a", encoding="utf-8", newline="\n") as fh:
                fh.write("".join(self._summary))
        self._outputs.clear()
        self._summary.clear()

    # -- job summary ---------------------------------------------------------------

    def summary(self, markdown: str) -> None:
        self._summary.append(markdown if markdown.endswith("\n") else markdown + "\n")

    @property
    def summary_text(self) -> str:
        return "".join(self._summary)

    # -- annotations, masks, groups -------------------------------------------------

    def annotate(
        self,
        level: str,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        title: str | None = None,
    ) -> None:
        if level not in ("error", "warning", "notice"):
            raise ValueError(level)
        if self.in_actions:
            props = []
            if file:
                props.append(f"file={escape_property(file)}")
            if line:
                props.append(f"line={line}")
            if title:
                props.append(f"title={escape_property(title)}")
            head = f"::{level} {','.join(props)}::" if props else f"::{level}::"
            print(head + escape_data(message), file=self.out, flush=True)
        else:
            where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
            print(f"{where}{level}: {message}", file=self.err, flush=True)

    def mask(self, value: str) -> None:
        """Mask a secret in the log the moment it exists; each line separately, as the runner needs."""
        if not self.in_actions or not value:
            return
        for piece in value.splitlines():
            if piece.strip():
                print(f"::add-mask::{escape_data(piece)}", file=self.out, flush=True)

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        if self.in_actions:
            print(f"::group::{escape_data(title)}", file=self.out, flush=True)
            try:
                yield
            finally:
                print("::endgroup::", file=self.out, flush=True)
        else:
            print(f"== {title}", file=self.out, flush=True)
            yield

    def echo_untrusted(self, text: str) -> None:
        """Print text that may contain `::command::` lines (a CHANGELOG, a PR title) inertly."""
        if self.in_actions:
            token = secrets.token_hex(16)
            print(f"::stop-commands::{token}", file=self.out)
            print(text, file=self.out)
            print(f"::{token}::", file=self.out, flush=True)
        else:
            print(text, file=self.out, flush=True)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; cell text is escaped so it cannot break the table."""

    def cell(text: str) -> str:
        return (
            text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "<br>")
        )

    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
