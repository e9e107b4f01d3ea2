"""The `release-actions` command line: a lazy root group, one module per command group."""

from __future__ import annotations

import contextlib
import difflib
import importlib
import re
import sys
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import click

from release_actions.app.session import Session as Session
from release_actions.errors import PolicyError, PolicyWarning, ReleaseActionsError
from release_actions.gha import Runtime

# name -> "module:attribute". Modules load only when their command runs, so
# `release-actions version validate` never imports a cloud SDK, jinja2 or pydantic.
COMMANDS: dict[str, tuple[str, str]] = {
    "version": ("release_actions.cli.version:group", "Validate, compare and bump SemVer versions."),
    "changelog": (
        "release_actions.cli.changelog:group",
        "Lint, check, extract and release CHANGELOG sections.",
    ),
    "calendar": ("release_actions.cli.calendar:group", "The release calendar gate."),
    "branch": ("release_actions.cli.branch:group", "Check branch and tag names."),
    "policy": (
        "release_actions.cli.policy:group",
        "Show, validate and describe the release policy.",
    ),
    "validate": (
        "release_actions.cli.validate:command",
        "Check a release: tag, CHANGELOG, calendar, branch.",
    ),
    "release": ("release_actions.cli.release:group", "Publish GitHub Releases."),
    "rehearse": (
        "release_actions.cli.rehearse:command",
        "Rehearse a release on the built-in simulator.",
    ),
    "canary": ("release_actions.cli.canary:group", "Analyse and run canary rollouts."),
    "monitor": (
        "release_actions.cli.monitor:command",
        "Watch a deploy and roll back on a trigger.",
    ),
    "environments": (
        "release_actions.cli.environments:group",
        "Plan and apply GitHub environments as code.",
    ),
    "readiness": (
        "release_actions.cli.readiness:command",
        "Check a tag against the pre-release checklist.",
    ),
    "hotfix": (
        "release_actions.cli.hotfix:group",
        "Cherry-pick a hotfix back as pull requests.",
    ),
    "db": (
        "release_actions.cli.db:group",
        "Lint, verify, deploy and roll back database migrations.",
    ),
    "rollback": (
        "release_actions.cli.rollback:group",
        "Roll a deploy back to its known-good version; list the records.",
    ),
    "status": (
        "release_actions.cli.control:status",
        "Show a rollout in progress: step, weight, evidence, next step.",
    ),
    "promote": (
        "release_actions.cli.control:promote",
        "Skip the pause of a rollout in progress (--full: every step).",
    ),
    "abort": (
        "release_actions.cli.control:abort",
        "Roll a rollout in progress back now, recorded as manual.",
    ),
    "control": (
        "release_actions.cli.control:control",
        "status, promote or abort by name (the control action).",
    ),
    "notify": (
        "release_actions.cli.notify:command",
        "Send one release message (Slack or summary).",
    ),
    "argo": ("release_actions.cli.argo:group", "Render Argo Rollouts manifests from the policy."),
    "action": ("release_actions.cli.action:group", "What the composite actions run."),
    "mobile": ("release_actions.cli.mobile:group", "Mobile app update versions, store notes."),
    "train": (
        "release_actions.cli.train:group",
        "The release train: plan, cut, freeze check, stage and ship.",
    ),
    "flags": ("release_actions.cli.flags:group", "Feature flags: export, stage, advance, audit."),
    "metrics": ("release_actions.cli.metrics:group", "DORA four keys, release quality, reviews."),
    "statuspage": (
        "release_actions.cli.statuspage:group",
        "Statuspage incidents and scheduled maintenance.",
    ),
}


class NoSuchCommand(click.UsageError):
    """Raised when a command name is unknown; says the nearest ones (click 8.1 does not)."""

    def __init__(self, name: str, known: Sequence[str], ctx: click.Context) -> None:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"No such command {name!r}.{hint}", ctx)
        self.command_name = name


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        path, _ = COMMANDS[cmd_name]
        module, attr = path.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # click suggests from `self.commands`, which a lazy group leaves empty.
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            raise NoSuchCommand(name, self.list_commands(ctx), ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help lists the groups without importing them all.
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    # Not click.version_option(__version__): the version is read only when it is asked for.
    if not value or ctx.resilient_parsing:
        return
    from release_actions import version

    click.echo(f"release-actions, version {version()}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@click.option("-v", "--verbose", count=True, help="More detail; -vv shows tracebacks.")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, dry_run: bool) -> None:
    """Release management and automatic rollback for GitHub Actions."""
    if isinstance(ctx.obj, Session):  # from main(), which prints its JSON when it ends
        ctx.obj.verbose, ctx.obj.dry_run = verbose, dry_run
        ctx.obj.runtime.verbose = verbose
        return
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()
    runtime.verbose = verbose
    ctx.obj = Session(runtime=runtime, verbose=verbose, dry_run=dry_run)


pass_state = click.make_pass_decorator(Session)


def check_failed() -> click.exceptions.Exit:
    """Exit 1: the check ran and said no. Outputs are still written; errors exit 2."""
    return click.exceptions.Exit(1)


# The exit codes of every command (docs/cli-conventions.md).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


def _json_requested(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    # Eager, so that an error in any later parameter is already reported as JSON.
    state = ctx.find_object(Session)
    if value and state is not None:
        state.json = True
        state.runtime.commands_on_stderr()
        state.command = command_name(ctx)
    return value


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    is_eager=True,
    callback=_json_requested,
    help="Print one JSON object on standard output, on success and on failure "
    "(docs/cli-conventions.md).",
)


def command_name(ctx: click.Context) -> str:
    """The command's path below the program: `canary analyze`."""
    return " ".join(ctx.command_path.split()[1:])


def _command_from_args(args: Sequence[str]) -> str:
    """The command path that ``args`` name, as far as it resolves (for errors before parsing)."""
    names: list[str] = []
    command: click.Command = cli
    ctx = click.Context(cli)
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("-"):
            continue
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(ctx, arg)
        if sub is None:
            break
        names.append(arg)
        command = sub
    return " ".join(names)


def _wants_json(state: Session, args: Sequence[str]) -> bool:
    if state.json:
        return True
    given = list(args)
    return "--json" in (given[: given.index("--")] if "--" in given else given)


def error_code(exc: BaseException) -> str:
    """A stable word for an error: its class's name in snake case, without `Error`.

    `PolicyError` is `policy`, `MetricsError` `metrics`, click's `NoSuchOption`
    `no_such_option`, their base classes `error`; anything that is not the project's or
    click's is `internal`.
    """
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        return "interrupted"
    if not isinstance(exc, ReleaseActionsError | click.ClickException):
        return "internal"
    if type(exc) in (ReleaseActionsError, click.ClickException):
        return "error"
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_fields(exc: BaseException) -> dict[str, Any]:
    """The `error` object of the JSON failure envelope (docs/cli-conventions.md)."""
    out: dict[str, Any] = {
        "code": error_code(exc),
        "type": type(exc).__name__,
        "message": str(exc),
        "field": None,
        "file": None,
        "line": None,
        "hint": None,
    }
    if isinstance(exc, ReleaseActionsError):
        out["message"] = exc.message
        out["hint"] = exc.hint
        out["file"] = exc.file
        out["line"] = exc.line
        if isinstance(exc, PolicyError) and exc.issues:
            out["field"] = exc.issues[0].key
            out["issues"] = [
                {"file": i.path, "line": i.line, "field": i.key, "message": i.message}
                for i in exc.issues
            ]
    elif isinstance(exc, click.ClickException):
        out["message"] = exc.format_message()
        param = getattr(exc, "param", None)
        out["field"] = param.opts[0] if param is not None and param.opts else None
        if isinstance(exc, click.exceptions.NoSuchOption):
            out["field"] = exc.option_name
        elif getattr(exc, "command_name", None):
            out["field"] = exc.command_name  # type: ignore[attr-defined]
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            out["hint"] = f"`{exc.ctx.command_path} --help` shows the usage."
    elif isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        out["message"] = "Interrupted."
    else:
        out["message"] = f"Unexpected error: {type(exc).__name__}: {exc}"
        out["hint"] = "This is a bug; rerun with -vv for the traceback and report it."
    return out


def exit_code_of(exc: BaseException) -> int:
    """The exit code of an exception that ends a command: one mapping for every command.

    A usage error, an unreadable file (click's `FileError` says 1), a policy that does not
    validate and a service that refuses are 2; 1 is kept for a check that said no.
    """
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, ReleaseActionsError):
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        return EXIT_ERROR
    return EXIT_INTERNAL


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    out: Any = None,
    err: Any = None,
) -> int:
    """Run the CLI and turn the project's errors into annotations and an exit code.

    Outputs and the job summary are written only when the command finishes (exit 0 or a
    check that failed with 1): an error midway leaves neither half-written.
    """
    runtime = Runtime(env=env, out=out, err=err)
    state = Session(runtime=runtime)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with policy_warnings_to(runtime):
            code = cli.main(
                args=args,
                prog_name="release-actions",
                standalone_mode=False,
                obj=state,
            )
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        print("Aborted.", file=runtime.err)
        return _failed(state, args, exc)
    except click.ClickException as exc:
        exc.show(file=runtime.err)
        return _failed(state, args, exc)
    except ReleaseActionsError as exc:
        _report(runtime, exc, runtime.verbose)
        return _failed(state, args, exc)
    except Exception as exc:
        runtime.annotate("error", f"Unexpected error: {type(exc).__name__}: {exc}")
        if runtime.verbose >= 2:
            traceback.print_exc(file=runtime.err)
        else:
            print(
                "This is a bug; rerun with -vv for the traceback and report it.", file=runtime.err
            )
        return _failed(state, args, exc)
    code = 0 if code is None else int(code)
    if code in (EXIT_OK, EXIT_CHECK_FAILED):
        state.finish_json(code)
        runtime.flush()
    elif _wants_json(state, args):
        state.command = state.command or _command_from_args(args)
        state.fail_json({"code": "failed", "type": None, "message": f"exit {code}"}, code)
    return code


def _failed(state: Session, args: Sequence[str], exc: BaseException) -> int:
    """The exit code of ``exc``; with --json, the failure envelope on standard output."""
    code = exit_code_of(exc)
    if _wants_json(state, args):
        if not state.command:
            ctx = getattr(exc, "ctx", None)
            state.command = (
                command_name(ctx) if isinstance(ctx, click.Context) else _command_from_args(args)
            )
        state.fail_json(error_fields(exc), code)
    return code


@contextlib.contextmanager
def policy_warnings_to(runtime: Runtime) -> Iterator[None]:
    """Every command's log shows a policy key that does nothing, once, with its file and line."""
    seen: set[str] = set()

    def show(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> None:
        if isinstance(message, PolicyWarning):
            issue = message.issue
            if str(issue) not in seen:
                seen.add(str(issue))
                runtime.annotate(
                    "warning",
                    f"`{issue.key}`: {issue.message}",
                    file=issue.path,
                    line=issue.line,
                    title="Release policy",
                )
            return
        shown(message, category, *args, **kw)

    with warnings.catch_warnings():
        warnings.simplefilter("always", PolicyWarning)
        shown = warnings.showwarning
        warnings.showwarning = show
        yield


def _report(runtime: Runtime, exc: ReleaseActionsError, verbose: int) -> None:
    if isinstance(exc, PolicyError) and exc.issues:
        print(exc.message, file=runtime.err)
        for issue in exc.issues:
            runtime.annotate(
                "error",
                f"`{issue.key}`: {issue.message}",
                file=issue.path,
                line=issue.line,
                title=exc.title,
            )
    else:
        runtime.annotate("error", exc.message, file=exc.file, line=exc.line)
    if exc.hint:
        print(f"hint: {exc.hint}", file=runtime.err)
    if verbose >= 2:
        traceback.print_exception(exc, file=runtime.err)
    elif not runtime.in_actions:
        print("(rerun with -vv for details)", file=runtime.err)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
