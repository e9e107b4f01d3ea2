"""`release-actions version`: validate, compare and bump SemVer 2.0.0 versions."""

from __future__ import annotations

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.core.versions import BUMP_PARTS, Version, compare
from release_actions.errors import InvalidVersionError


@click.group("version")
def group() -> None:
    """Validate, compare and bump SemVer 2.0.0 versions (source §2.3)."""


@group.command("validate")
@click.argument("tag")
@click.option(
    "--prefix",
    default=None,
    help="Require this tag prefix (such as `v`); by default a leading `v` is optional.",
)
@json_option
@pass_state
def validate(state: Session, tag: str, prefix: str | None, as_json: bool) -> None:
    """Exit 0 if TAG is a SemVer 2.0.0 version or `v`-prefixed tag, 1 if not."""
    try:
        v = Version.parse(tag, prefix=prefix or "")
    except InvalidVersionError as exc:
        if as_json:
            state.emit_json({"valid": False, "reason": exc.message})
        else:
            state.runtime.annotate("error", exc.message)
        state.runtime.set_output("valid", False)
        raise check_failed() from None
    data = v.to_dict()
    for key, value in data.items():
        state.runtime.set_output(key.replace("_", "-"), value)
    state.runtime.set_output("valid", True)
    if as_json:
        state.emit_json(data)
    else:
        kind = "a pre-release" if v.is_prerelease else "a release"
        state.say(f"{tag}: valid, {kind} of {v.core}")


@group.command("compare")
@click.argument("a")
@click.argument("b")
@json_option
@pass_state
def compare_cmd(state: Session, a: str, b: str, as_json: bool) -> None:
    """Print -1, 0 or 1 as A is lower than, equal to or higher than B by SemVer precedence."""
    result = compare(Version.parse(a), Version.parse(b))
    if as_json:
        state.emit_json({"a": a, "b": b, "result": result})
    else:
        state.say(str(result))


@group.command("bump")
@click.argument("version")
@click.argument("part", type=click.Choice(BUMP_PARTS))
@click.option("--pre", default=None, help="Make it a pre-release with this label, such as `rc`.")
@click.option("--prefix", default="", help="Prefix of the printed version, such as `v`.")
@json_option
@pass_state
def bump(
    state: Session, version: str, part: str, pre: str | None, prefix: str, as_json: bool
) -> None:
    """Print the next version after VERSION."""
    nxt = Version.parse(version).bump(part, pre=pre)  # type: ignore[arg-type]
    state.runtime.set_output("version", str(nxt))
    state.runtime.set_output("tag", f"{prefix}{nxt}")
    if as_json:
        state.emit_json({"version": str(nxt), "tag": f"{prefix}{nxt}"})
    else:
        state.say(f"{prefix}{nxt}")
