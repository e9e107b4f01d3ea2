"""`release-actions mobile`: forced/recommended update versions and store release notes (§8, §10.1)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.core.versions import Version

# Subcommands kept in other modules, loaded only when they run: name -> ("module:attr", help).
# A store's commands (`play`, `appstore`) are added here with one line each; a key with a
# space belongs to the subgroup it starts with (`version-config publish`).
LAZY: dict[str, tuple[str, str]] = {
    "play": (
        "release_actions.cli.mobile_store:play",
        "Google Play staged rollouts and their gate.",
    ),
    "appstore": (
        "release_actions.cli.mobile_store:appstore",
        "App Store phased releases and their gate.",
    ),
    "rollout": (
        "release_actions.cli.mobile_store:rollout",
        "play or appstore COMMAND by platform.",
    ),
    "version-config publish": (
        "release_actions.cli.mobile_config:publish",
        "Publish the version config: a pull request, or Firebase Remote Config.",
    ),
    "version-config propose": (
        "release_actions.cli.mobile_config:propose",
        "After the gate completed a rollout: a pull request raising recommendedVersion to it.",
    ),
}


class MobileGroup(click.Group):
    def lazy(self) -> dict[str, tuple[str, str]]:
        """This group's entries of LAZY: `mobile`'s plain names, a subgroup's by its prefix."""
        prefix = "" if self.name == "mobile" else f"{self.name} "
        return {
            key.removeprefix(prefix): spec
            for key, spec in LAZY.items()
            if key.startswith(prefix) and " " not in key.removeprefix(prefix)
        }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.lazy(), *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self.lazy()
        if cmd_name not in lazy:
            return super().get_command(ctx, cmd_name)
        module, attr = lazy[cmd_name][0].split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        lazy = self.lazy()
        rows = [(name, cmd.get_short_help_str()) for name, cmd in self.commands.items()]
        rows += [(name, lazy[name][1]) for name in lazy if name not in self.commands]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


@click.group("mobile", cls=MobileGroup)
def group() -> None:
    """Mobile apps: the forced/recommended update config (source §8.4), store release notes (§10.1)."""


def _latest(text: str | None) -> Version | None:
    from release_actions.mobile.version_config import parse_client_version

    return None if text is None else parse_client_version(text, "--latest")


latest_option = click.option(
    "--latest",
    default=None,
    metavar="VERSION",
    help="The newest version released in the stores: no version in the config may be newer.",
)


@group.command("version-check")
@click.option(
    "--config",
    "path",
    type=click.Path(path_type=Path),
    required=True,
    help="The version config (JSON, or YAML with the same keys).",
)
@click.option("--version", "client", required=True, help="The client's app version (SemVer).")
@click.option("--platform", type=click.Choice(["ios", "android"]), required=True)
@latest_option
@json_option
@pass_state
def version_check(
    state: Session, path: Path, client: str, platform: str, latest: str | None, as_json: bool
) -> None:
    """Answer as the source's `/api/v1/app/version-check` does for VERSION on PLATFORM."""
    from release_actions.mobile import version_config as vc

    config = vc.load(path, latest=_latest(latest))
    answer = config.check(vc.parse_client_version(client), platform).to_json()
    for key, value in answer.items():
        state.runtime.set_output(_kebab(key), "" if value is None else value)
    if as_json:
        # Exactly the endpoint's body: no `ok`, so an app's fixture can be this output.
        state.emit_json(answer, document=True)
        return
    verdict = (
        "must update"
        if answer["forceUpdate"]
        else "should update"
        if answer["recommendedUpdate"]
        else "is up to date"
    )
    state.say(
        f"{client} on {platform} {verdict} (minimum {answer['minimumVersion']}, "
        f"recommended {answer['recommendedVersion']})."
    )
    if answer["message"] is not None:
        state.say(f"message: {answer['message']}")
    state.say(f"store: {answer['storeUrl']}")


@group.group("version-config", cls=MobileGroup)
def version_config() -> None:
    """Validate the version config; raise its versions after a rollout."""


@version_config.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@latest_option
@json_option
@pass_state
def validate(state: Session, path: Path, latest: str | None, as_json: bool) -> None:
    """Exit 0 if PATH is a valid version config; 2 with every problem, by file and line, if not."""
    from release_actions.mobile import version_config as vc

    config = vc.load(path, latest=_latest(latest))
    state.runtime.set_output("minimum-version", str(config.minimum_version))
    state.runtime.set_output("recommended-version", str(config.recommended_version))
    if as_json:
        state.emit_json(
            {
                "file": str(path),
                "format": config.format,
                "minimumVersion": str(config.minimum_version),
                "recommendedVersion": str(config.recommended_version),
                "forceUpdate": config.force_update,
            }
        )
    else:
        state.say(
            f"{path}: valid (minimum {config.minimum_version}, recommended "
            f"{config.recommended_version}, forceUpdate {str(config.force_update).lower()})"
        )


@version_config.command("bump")
@click.argument(
    "path", type=click.Path(path_type=Path), required=False, default=None, metavar="[PATH]"
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The version config, as for `version-check` (instead of PATH).",
)
@click.option("--recommended", default=None, metavar="VERSION", help="The new recommendedVersion.")
@click.option("--minimum", default=None, metavar="VERSION", help="The new minimumVersion.")
@latest_option
@json_option
@pass_state
def bump(
    state: Session,
    path: Path | None,
    config_path: Path | None,
    recommended: str | None,
    minimum: str | None,
    latest: str | None,
    as_json: bool,
) -> None:
    """Raise the config's versions in place, keeping its format (after a rollout completes).

    Only the values change; the file is replaced whole or not at all. The pull request that
    proposes the change is the workflow's to open (outputs `changed`, `file`).
    """
    from release_actions.core.changelog import write_atomic
    from release_actions.mobile import version_config as vc

    if (path is None) == (config_path is None):
        raise click.UsageError("Give the config file once: as PATH or as `--config PATH`.")
    target = path or config_path
    assert target is not None
    if recommended is None and minimum is None:
        raise click.UsageError("Give `--recommended VERSION`, `--minimum VERSION`, or both.")
    source = vc.read_source(target)
    result = vc.bump(
        source,
        recommended=None
        if recommended is None
        else vc.parse_client_version(recommended, "--recommended"),
        minimum=None if minimum is None else vc.parse_client_version(minimum, "--minimum"),
        latest=_latest(latest),
    )
    written = result.changed and not state.dry_run
    if written:
        write_atomic(target, result.text)
    state.runtime.set_output("changed", result.changed)
    state.runtime.set_output("file", str(target))
    state.runtime.set_output("recommended-version", result.after["recommendedVersion"])
    state.runtime.set_output("minimum-version", result.after["minimumVersion"])
    if as_json:
        state.emit_json(
            {
                "file": str(target),
                "changed": result.changed,
                "written": written,
                "before": result.before,
                "after": result.after,
            }
        )
        return
    if not result.changed:
        state.say(f"{target}: already {_versions(result.after)}; nothing to change.")
    elif state.dry_run:
        state.say(f"{target}: would set {_versions(result.after)} (dry run, nothing written).")
    else:
        state.say(f"{target}: {_versions(result.before)} -> {_versions(result.after)}")


@group.command("notes")
@click.option("--version", "version", required=True, help="The version whose section to use.")
@click.option(
    "--changelog",
    "path",
    type=click.Path(path_type=Path),
    default=Path("CHANGELOG.md"),
    show_default=True,
    help="The CHANGELOG; its entries are used as written for every locale without its own.",
)
@click.option("--store", type=click.Choice(["play", "appstore"]), required=True)
@click.option(
    "--locale",
    "locales",
    multiple=True,
    help="A locale to write notes for (repeat; default: ja and en). "
    "ja, ja-JP, en, en-US, en-GB, en-AU, en-CA.",
)
@click.option(
    "--locale-changelog",
    "locale_changelogs",
    multiple=True,
    metavar="LOCALE=PATH",
    help="That locale's own CHANGELOG, such as `ja=CHANGELOG.ja.md` (repeat).",
)
@click.option(
    "--feedback",
    default=None,
    metavar="CONTACT",
    help="Where users send feedback (`support@example.com`); without it there is no "
    "feedback paragraph.",
)
@json_option
@pass_state
def notes(
    state: Session,
    version: str,
    path: Path,
    store: str,
    locales: tuple[str, ...],
    locale_changelogs: tuple[str, ...],
    feedback: str | None,
    as_json: bool,
) -> None:
    """Release notes for the store from VERSION's CHANGELOG section, per locale, within its limit.

    Headings: Added -> new features; Changed -> improvements; Fixed, Security -> bug fixes;
    Known Issues -> known issues; Deprecated, Removed -> notices. Entries stay as written.
    Play allows 500 characters per language, App Store 4000; notes longer than that are
    cut between two entries, with a warning.
    """
    from release_actions.core import changelog as cl
    from release_actions.mobile import notes as mn
    from release_actions.mobile import version_config as vc

    logs: dict[str, cl.Changelog] = {}
    for pair in locale_changelogs:
        name, sep, file = pair.partition("=")
        if not sep or not name or not file:
            raise click.BadParameter(
                f"`{pair}` is not LOCALE=PATH, such as `ja=CHANGELOG.ja.md`.",
                param_hint="'--locale-changelog'",
            )
        logs[name] = cl.read(Path(file))
    wanted = vc.parse_client_version(version, "--version")
    result = mn.build(
        cl.read(path),
        wanted,
        store,  # type: ignore[arg-type]
        list(locales) or ["ja", "en"],
        locale_logs=logs,
        feedback=feedback,
    )
    for warning in result.warnings:
        state.runtime.annotate("warning", warning, file=str(path), title="Store release notes")
    payload = result.payload()
    state.runtime.set_output("notes", json.dumps(payload, ensure_ascii=False))
    state.runtime.set_output("truncated", any(n.items < n.items_total for n in result.notes))
    if as_json:
        state.emit_json(result.to_json())
        return
    for n in result.notes:
        state.say(
            f"== {n.locale.name} ({n.locale.store_code(result.store)}): "
            f"{n.characters}/{result.limit} characters =="
        )
        if state.runtime.in_actions:
            state.runtime.echo_untrusted(n.text)
        else:
            state.say(n.text)
        state.say("")


def _kebab(name: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name)


def _versions(v: dict[str, str]) -> str:
    return f"minimum {v['minimumVersion']}, recommended {v['recommendedVersion']}"
