"""The session a use case runs in: the Actions runtime, and how it talks to a person."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click

from release_actions.gha import Runtime


@dataclass
class Session:
    """What every command and use case gets: verbosity, dry-run, JSON mode and the runtime.

    The runtime owns outputs, the job summary, annotations and masks; the session adds the
    person-facing text, which goes to standard error while standard output carries JSON.
    Everything goes through the runtime's streams, which redact secrets and defuse lines
    that the runner would read as workflow commands.
    """

    runtime: Runtime
    verbose: int = 0
    dry_run: bool = False
    json: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    """The command's path below the program, such as `canary analyze`, once it is known."""
    _pending: tuple[Any, bool] | None = field(default=None, repr=False)
    _streamed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        # A library's log record (a retry quoting a URL) is text the tool writes as well:
        # it goes through the runtime, redacted and defused, not straight to sys.stderr.
        self.runtime.route_logging()

    @property
    def env(self) -> dict[str, str]:
        return self.runtime.env

    def say(self, text: str) -> None:
        """The command's answer for a person: standard output, unless it carries JSON."""
        click.echo(text, file=self.runtime.err if self.json else self.runtime.out)

    def note(self, text: str) -> None:
        """Progress for a person: standard output, or standard error while it carries JSON."""
        click.echo(text, file=self.runtime.err if self.json else self.runtime.out)

    def emit_json(self, data: Any, *, document: bool = False) -> None:
        """Keep the command's one JSON result; `finish_json` prints it when the command ends.

        A result (a mapping) gets `"ok"`: true on exit 0, false when the check said no
        (exit 1). A ``document``, such as the policy itself, prints as it is. An error
        prints the envelope of `error_envelope` instead, with this result in it.
        See docs/cli-conventions.md.
        """
        if not self.json:
            self.json = True
            self.runtime.commands_on_stderr()
        self._pending = (data, document)

    def stream_json(self, data: Any) -> None:
        """Print one JSON line now, for a command that reports as it goes (`status --watch`).

        Nothing is added when the command ends; an error still ends the stream with the
        failure envelope.
        """
        self.json = self._streamed = True
        click.echo(json.dumps(data, ensure_ascii=False, default=str), file=self.runtime.out)
        self.runtime.out.flush()

    def finish_json(self, code: int) -> None:
        """Print the kept result for exit ``code`` (0 or 1); with none, print `{"ok": ...}`."""
        if not self.json or (self._streamed and self._pending is None):
            return
        data, document = self._pending if self._pending is not None else ({}, False)
        self._pending = None
        if not document and isinstance(data, dict):
            data = {"ok": code == 0, **{k: v for k, v in data.items() if k != "ok"}}
        self._print(data)

    def fail_json(self, error: dict[str, Any], code: int) -> None:
        """Print the failure envelope: the error, the exit code, and any result kept so far."""
        envelope: dict[str, Any] = {
            "ok": False,
            "command": self.command,
            "exit_code": code,
            "error": error,
        }
        if self._pending is not None:
            envelope["result"] = self._pending[0]
            self._pending = None
        self._print(envelope)

    def _print(self, data: Any) -> None:
        click.echo(
            json.dumps(data, indent=2, ensure_ascii=False, default=str), file=self.runtime.out
        )
