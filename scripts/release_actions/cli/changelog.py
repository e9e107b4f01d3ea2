"""`release-actions changelog`: lint, check, extract and release CHANGELOG sections."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.core import changelog as cl
from release_actions.core.versions import Version
from release_actions.errors import ChangelogError

file_option = click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path),
    default=Path("CHANGELOG.md"),
    show_default=True,
    help="The CHANGELOG to read.",
)


def _version(text: str, prefix: str | None = None) -> Version:
    return Version.parse(text, prefix=prefix or "")


@click.group("changelog")
def group() -> None:
    """Keep a Changelog 1.1.0 files, and release-please and python-semantic-release headings (source §3.1, §3.2)."""


@group.command("lint")
@file_option
@json_option
@pass_state
def lint(state: Session, path: Path, as_json: bool) -> None:
    """Check order, dates, duplicates, empty sections and versions; exit 1 on an error."""
    log = cl.read(path)
    findings = cl.lint(log)
    errors = sum(f.severity == "error" for f in findings)
    if as_json:
        state.emit_json(
            {
                "file": str(path),
                "errors": errors,
                "warnings": len(findings) - errors,
                "findings": [f.__dict__ for f in findings],
            }
        )
    for f in findings:
        state.runtime.annotate(f.severity, f"{f.message} [{f.rule}]", file=str(path), line=f.line)
    state.runtime.set_output("errors", errors)
    state.runtime.set_output("warnings", len(findings) - errors)
    if not as_json:
        state.say(f"{path}: {errors} error(s), {len(findings) - errors} warning(s)")
    if errors:
        raise check_failed()


@group.command("check")
@click.argument("version")
@file_option
@json_option
@pass_state
def check(state: Session, version: str, path: Path, as_json: bool) -> None:
    """Exit 0 if VERSION has a dated, non-empty section, 1 if not."""
    log = cl.read(path)
    try:
        section = cl.require_released(log, _version(version))
    except ChangelogError as exc:
        if as_json:
            state.emit_json(
                {
                    "file": str(path),
                    "version": version,
                    "released": False,
                    "reason": exc.message,
                    "line": exc.line,
                    "hint": exc.hint,
                }
            )
        state.runtime.annotate("error", exc.message, file=exc.file, line=exc.line)
        if exc.hint:
            state.say(f"hint: {exc.hint}")
        raise check_failed() from None
    if as_json:
        state.emit_json(
            {
                "file": str(path),
                "version": version,
                "released": True,
                "label": section.label,
                "date": section.date,
                "line": section.line,
            }
        )
    else:
        state.say(f"{path}:{section.line}: {section.label} released on {section.date}")


@group.command("extract")
@click.argument("version")
@file_option
@click.option(
    "--output-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the body to this file, exactly.",
)
@click.option(
    "--output",
    "output_name",
    default="body",
    show_default=True,
    help="Name of the step output that carries the body (in Actions).",
)
@json_option
@pass_state
def extract(
    state: Session,
    version: str,
    path: Path,
    output_file: Path | None,
    output_name: str,
    as_json: bool,
) -> None:
    """Print the body of VERSION's section (`Unreleased` for the unreleased one), byte for byte."""
    log = cl.read(path)
    section = (
        log.find(version) if version.lower() == "unreleased" else cl.require(log, _version(version))
    )
    if section is None:
        raise ChangelogError(
            f"{path} has no section for {version}.",
            hint=f"Sections found: {', '.join(s.label for s in log.sections) or 'none'}.",
            file=str(path),
        )
    body = log.body(section)
    if output_file is not None:
        cl.write_atomic(output_file, body)
        state.runtime.set_output("body-file", str(output_file.resolve()))
    state.runtime.set_output(output_name, body)
    state.runtime.set_output("date", section.date or "")
    state.runtime.set_output("line", section.line)
    if as_json:
        state.emit_json(
            {
                "file": str(path),
                "version": section.label,
                "date": section.date,
                "line": section.line,
                "body": body,
            }
        )
    elif state.runtime.in_actions:
        state.runtime.echo_untrusted(body)
    else:
        click.echo(body, file=state.runtime.out, nl=bool(body))


@group.command("release")
@click.argument("version")
@file_option
@click.option(
    "--date",
    "on",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Release date (default: today).",
)
@click.option(
    "--repo-url",
    default=None,
    help="Repository URL for compare links (default: from the [unreleased] link, or "
    "GITHUB_SERVER_URL/GITHUB_REPOSITORY).",
)
@click.option("--tag-prefix", default="v", show_default=True)
@json_option
@pass_state
def release(
    state: Session,
    version: str,
    path: Path,
    on: object,
    repo_url: str | None,
    tag_prefix: str,
    as_json: bool,
) -> None:
    """Turn [Unreleased] into a dated VERSION section, in the style of the file's newest heading."""
    log = cl.read(path)
    v = _version(version)
    day = on.date() if on is not None else date.today()  # type: ignore[attr-defined]
    if repo_url is None and "unreleased" not in log.links:
        server, repo = state.env.get("GITHUB_SERVER_URL"), state.env.get("GITHUB_REPOSITORY")
        if server and repo:
            repo_url = f"{server.rstrip('/')}/{repo}"
    text = cl.release(log, v, on=day, repo_url=repo_url, tag_prefix=tag_prefix)
    if as_json:
        state.emit_json(
            {
                "file": str(path),
                "version": str(v),
                "date": f"{day:%Y-%m-%d}",
                "written": not state.dry_run,
            }
        )
    if state.dry_run:
        state.say(f"Would release {v} on {day:%Y-%m-%d} in {path} (dry run, nothing written).")
        return
    cl.write_atomic(path, text)
    state.runtime.set_output("version", str(v))
    state.say(f"{path}: released {v} on {day:%Y-%m-%d}")
