"""The `release-actions` command line: a lazy root group, one module per command group."""

from __future__ import annotations

import contextlib
import importlib
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
}


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
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()
    runtime.verbose = verbose
    ctx.obj = Session(runtime=runtime, verbose=verbose, dry_run=dry_run)


pass_state = click.make_pass_decorator(Session)


def check_failed() -> click.exceptions.Exit:
    """Exit 1: the check ran and said no. Outputs are still written; errors exit 2."""
    return click.exceptions.Exit(1)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


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
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with policy_warnings_to(runtime):
            code = cli.main(
                args=args,
                prog_name="release-actions",
                standalone_mode=False,
                obj=runtime,
            )
    except click.exceptions.Abort:
        print("Aborted.", file=runtime.err)
        return 130
    except click.ClickException as exc:
        exc.show(file=runtime.err)
        return exc.exit_code
    except ReleaseActionsError as exc:
        _report(runtime, exc, runtime.verbose)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        runtime.annotate("error", f"Unexpected error: {type(exc).__name__}: {exc}")
        if runtime.verbose >= 2:
            traceback.print_exc(file=runtime.err)
        else:
            print(
                "This is a bug; rerun with -vv for the traceback and report it.", file=runtime.err
            )
        return 3
    code = 0 if code is None else int(code)
    if code in (0, 1):
        runtime.flush()
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
                title="Invalid release policy",
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
