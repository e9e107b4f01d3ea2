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

    def __post_init__(self) -> None:
        # A library's log record (a retry quoting a URL) is text the tool writes as well:
        # it goes through the runtime, redacted and defused, not straight to sys.stderr.
        self.runtime.route_logging()

    @property
    def env(self) -> dict[str, str]:
        return self.runtime.env

    def say(self, text: str) -> None:
        click.echo(text, file=self.runtime.out)

    def note(self, text: str) -> None:
        """Progress for a person: standard output, or standard error while it carries JSON."""
        click.echo(text, file=self.runtime.err if self.json else self.runtime.out)

    def emit_json(self, data: Any) -> None:
        click.echo(
            json.dumps(data, indent=2, ensure_ascii=False, default=str), file=self.runtime.out
        )
