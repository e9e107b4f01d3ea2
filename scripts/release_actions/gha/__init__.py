"""The GitHub Actions runtime: outputs, job summary, annotations, masks, groups.

Inside Actions (``GITHUB_ACTIONS=true``) these speak the runner's file and workflow
commands; outside, the same calls print for a person, so one code path serves both.

The runtime is the one place where text leaves the tool, so it is also the one place that
keeps secrets and workflow commands out of it: every writer (standard output and error,
outputs, the job summary, annotations, groups) redacts the values registered with ``mask``
and the user info of URLs, and the two streams defuse any line from data that the runner
would read as a command. Only the runtime's own command writers speak commands.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, cast
from urllib.parse import quote, unquote, urlsplit

from release_actions.errors import OutputError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def escape_data(text: str) -> str:
    """Workflow-command data escaping, as @actions/core's escapeData."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Workflow-command property escaping, as @actions/core's escapeProperty."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


# -- secrets -----------------------------------------------------------------------------

# Shorter values are still masked for the runner, but the tool's own text is not redacted
# for them: a one-letter test token would otherwise turn every "t" into "***".
MIN_REDACTED_LENGTH = 4

# Variables whose values are credentials, redacted from the start; readers of them mask
# them for the runner as well (``Runtime.mask``) when they read them.
SECRET_ENV = frozenset(
    {
        "DD_API_KEY",
        "DATADOG_API_KEY",
        "DD_APP_KEY",
        "DD_APPLICATION_KEY",
        "DATADOG_APP_KEY",
        "PROMETHEUS_TOKEN",
        "LD_API_KEY",
        "LAUNCHDARKLY_API_KEY",
        "LAUNCHDARKLY_ACCESS_TOKEN",
        "STATUSPAGE_API_KEY",
        "SLACK_WEBHOOK_URL",
        "SLACK_BOT_TOKEN",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "KUBE_CONFIG",
        "DATABASE_URL",
        "ACTIONS_RUNTIME_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    }
)
_SECRET_ENV_SUFFIX = re.compile(r"_(TOKEN|API_KEY|APP_KEY|SECRET|PASSWORD|WEBHOOK_URL)$")

# Setting names (``--provider-setting KEY=VALUE``, policy keys) whose values are secrets.
_SECRET_NAME = re.compile(
    r"(token|password|passwd|secret|api_?key|app_?key|application_key|credential|private_key)",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """Whether a setting or variable called ``name`` holds a credential."""
    return bool(_SECRET_NAME.search(name))


def is_secret_env(name: str) -> bool:
    return name in SECRET_ENV or bool(_SECRET_ENV_SUFFIX.search(name))


def url_password(url: str) -> str | None:
    """The password in a URL's user info (``http://user:password@host``), or None."""
    try:
        password = urlsplit(url.strip()).password
    except ValueError:
        return None
    return password or None


# scheme://userinfo@ ; the user info runs to the last "@" before the path, so a password
# with a raw "@" in it is hidden whole.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^\s/?#\"'<>\\]*)@")


def redact_urls(text: str) -> str:
    """URLs lose their user info: ``http://alice:***@host``; a user alone may be a token."""

    def hide(m: re.Match[str]) -> str:
        user, sep, _ = m.group("info").partition(":")
        return f"{m.group('scheme')}{user}:***@" if sep else f"{m.group('scheme')}***@"

    return _URL_USERINFO.sub(hide, text) if "@" in text else text


# -- workflow commands -------------------------------------------------------------------

_LINE_END = re.compile(r"\r\n|\r|\n")


def _ignorable(ch: str) -> bool:
    # A superset of what the runner's TrimStart skips: whitespace, and controls and format
    # characters, so that nothing invisible can sit in front of a command.
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf")


def _content_start(line: str) -> int:
    i = 0
    while i < len(line) and _ignorable(line[i]):
        i += 1
    return i


def defuse(line: str, *, line_start: bool = True) -> str:
    """Make a line of data inert for the runner, keeping it readable.

    The runner runs a line as a command when it starts with ``::`` after leading whitespace
    and, in the legacy form, when ``##[`` appears anywhere in it. A space goes between the
    marker's two characters: ``: :error::x`` and ``## [error]x`` read the same to a person.
    """
    if line_start:
        i = _content_start(line)
        if line.startswith("::", i):
            line = f"{line[:i]}: :{line[i + 2 :]}"
    return line.replace("##[", "## [")


class GuardedStream:
    """A text stream that redacts and defuses every line written to it.

    Lines are held until they end (at "\n" or "\r", where the runner splits them too) or
    until ``flush`` shows enough of one to decide whether it could be a command, so a line
    written in pieces is checked whole. Anything else is passed to the wrapped stream.
    """

    def __init__(self, raw: TextIO, redact: Callable[[str], str]) -> None:
        self.raw = raw
        self._redact = redact
        self._pending = ""
        self._mid_line = False  # part of the current line is already written

    def write(self, text: str | bytes) -> int:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", "replace")
        self._pending += text
        while (m := _LINE_END.search(self._pending)) is not None:
            line, self._pending = self._pending[: m.end()], self._pending[m.end() :]
            self._emit(line)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _emit(self, text: str) -> None:
        if not text:
            return
        text = defuse(self._redact(text), line_start=not self._mid_line)
        self.raw.write(text)
        self._mid_line = not text.endswith(("\n", "\r"))

    def flush(self) -> None:
        pending = self._pending
        if pending:
            start = pending[_content_start(pending) :]
            decided = self._mid_line or len(start) >= 2 or (start and start != ":")
            if decided:
                # A trailing "#" may begin a "##[" with the next write.
                keep = min(len(pending) - len(pending.rstrip("#")), 2)
                self._pending = pending[len(pending) - keep :] if keep else ""
                self._emit(pending[: len(pending) - keep])
        self.raw.flush()

    def drain(self) -> None:
        """Write what is held, ending the line if one is open (before a command, at the end)."""
        self._emit(self._pending)
        self._pending = ""
        self.raw.flush()

    def command(self, line: str) -> None:
        """A workflow command from the runtime itself: on a line of its own, unchanged."""
        self.drain()
        if self._mid_line:
            self.raw.write("\n")
        self.raw.write(line + "\n")
        self._mid_line = False
        self.raw.flush()

    def getvalue(self) -> str:
        self.flush()
        return str(self.raw.getvalue())  # type: ignore[attr-defined]

    def isatty(self) -> bool:
        isatty = getattr(self.raw, "isatty", None)
        return bool(isatty()) if isatty else False

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":  # bytes written there would pass unchecked
            raise AttributeError(name)
        return getattr(self.raw, name)


class _LogHandler(logging.Handler):
    """The package's log records, redacted in place and shown through the newest runtime.

    It sits on the ``release_actions`` logger, so it sees every record of the package before
    any handler above it: a retry warning quoting a URL reaches no handler unredacted.
    """

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.runtime: Runtime | None = None

    def handle(self, record: logging.LogRecord) -> bool:
        runtime = self.runtime
        if runtime is None:
            return False
        message = runtime.redact(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_text:
            record.exc_text = runtime.redact(record.exc_text)
        if record.levelno >= logging.WARNING:
            print(message, file=runtime.err, flush=True)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() writes
        pass


_LOG_HANDLER = _LogHandler()


class Runtime:
    """One process's view of the runner; built from an environment so tests can pass their own."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.in_actions = self.env.get("GITHUB_ACTIONS") == "true"
        self.verbose = 0
        self._outputs: dict[str, str] = {}
        self._summary: list[str] = []
        self._secrets: set[str] = set()
        self._secret_re: re.Pattern[str] | None = None
        self._masked: set[str] = set()
        self._out = GuardedStream(out or sys.stdout, self.redact)
        self._err = GuardedStream(err or sys.stderr, self.redact)
        # Every caller prints through these; they behave as the text streams they wrap.
        self.out: TextIO = cast("TextIO", self._out)
        self.err: TextIO = cast("TextIO", self._err)
        # Where the runtime's own lines go (workflow commands, group titles, inert text):
        # standard output, or standard error while standard output carries one JSON object.
        # The runner reads workflow commands on both streams.
        self._cmd = self._out
        for name, value in self.env.items():
            if value and is_secret_env(name):
                self._register(value)

    # -- redaction -----------------------------------------------------------------

    def _register(self, value: str) -> None:
        """Redact ``value`` (and its lines, and its JSON and URL spellings) from now on."""
        forms = {value, *(piece.strip() for piece in value.splitlines())}
        password = url_password(value)
        if password:
            forms |= {password, unquote(password)}
        for form in list(forms):
            forms |= {json.dumps(form)[1:-1], quote(form, safe=""), escape_data(form)}
        added = {f for f in forms if len(f) >= MIN_REDACTED_LENGTH} - self._secrets
        if added:
            self._secrets |= added
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._secret_re = re.compile("|".join(re.escape(f) for f in ordered))

    def redact(self, text: str) -> str:
        """``text`` without any registered secret, and with URLs stripped of user info."""
        if self._secret_re is not None:
            text = self._secret_re.sub("***", text)
        return redact_urls(text)

    def route_logging(self) -> None:
        """Show the package's log records through this runtime, redacted (the newest wins)."""
        _LOG_HANDLER.runtime = self
        logger = logging.getLogger("release_actions")
        if _LOG_HANDLER not in logger.handlers:
            logger.addHandler(_LOG_HANDLER)

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
        return {name: self.redact(value) for name, value in self._outputs.items()}

    def _render_outputs(self) -> str:
        parts = []
        for name, raw in self._outputs.items():
            value = self.redact(raw)
            # A fresh random delimiter per value: the source document's fixed `EOF` ended
            # the value early at any line reading `EOF` and let the rest set outputs.
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            if delimiter in value:  # 128 random bits; refuse rather than trust luck
                raise OutputError(f"The value of output `{name}` contains its delimiter.")
            parts.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        return "".join(parts)

    def commands_on_stderr(self) -> None:
        """Keep standard output for a command's JSON: masks, annotations and groups go to stderr."""
        self._out.drain()
        self._cmd = self._err

    def flush(self) -> None:
        """Write queued outputs and summary, each file in one append."""
        self._out.drain()
        self._err.drain()
        target = self.env.get("GITHUB_OUTPUT")
        if self._outputs and target:
            rendered = self._render_outputs()
            with Path(target).open("a", encoding="utf-8", newline="\n") as fh:
                fh.write(rendered)
        summary = self.env.get("GITHUB_STEP_SUMMARY")
        if self._summary and summary:
            with Path(summary).open("a", encoding="utf-8", newline="\n") as fh:
                fh.write(self.summary_text)
        self._outputs.clear()
        self._summary.clear()

    # -- job summary ---------------------------------------------------------------

    def summary(self, markdown: str) -> None:
        self._summary.append(markdown if markdown.endswith("\n") else markdown + "\n")

    @property
    def summary_text(self) -> str:
        return self.redact("".join(self._summary))

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
        message = self.redact(message)
        file = self.redact(file) if file else file
        title = self.redact(title) if title else title
        if self.in_actions:
            props = []
            if file:
                props.append(f"file={escape_property(file)}")
            if line:
                props.append(f"line={line}")
            if title:
                props.append(f"title={escape_property(title)}")
            head = f"::{level} {','.join(props)}::" if props else f"::{level}::"
            self._cmd.command(head + escape_data(message))
        else:
            where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
            print(f"{where}{level}: {message}", file=self.err, flush=True)

    def mask(self, value: str) -> None:
        """Mask a secret the moment it exists: for the runner, each line separately, as it
        needs; for the tool's own writers, which replace it with ``***`` in every text."""
        if not value:
            return
        self._register(value)
        if not self.in_actions:
            return
        for piece in value.splitlines():
            if piece.strip() and piece not in self._masked:
                self._masked.add(piece)
                self._cmd.command(f"::add-mask::{escape_data(piece)}")

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        if self.in_actions:
            self._cmd.command(f"::group::{escape_data(self.redact(title))}")
            try:
                yield
            finally:
                self._cmd.command("::endgroup::")
        else:
            print(f"== {title}", file=self._cmd, flush=True)
            yield

    def echo_untrusted(self, text: str) -> None:
        """Print text that may contain `::command::` lines (a CHANGELOG, a PR title) inertly."""
        if self.in_actions:
            token = secrets.token_hex(16)
            self._cmd.command(f"::stop-commands::{token}")
            # Inside the fence the runner runs nothing but the token, so only redaction applies.
            self._cmd.raw.write(self.redact(text) + "\n")
            self._cmd.command(f"::{token}::")
        else:
            print(text, file=self._cmd, flush=True)


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
