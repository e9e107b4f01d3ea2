"""`release-actions mobile play|appstore|rollout`: staged store rollouts in production (source §8.3)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.core.policy import load_policy

if TYPE_CHECKING:
    from release_actions.app.mobile_store import StoreApp, StoreOutcome
    from release_actions.core.policy import Policy
    from release_actions.mobile.rollout import StateStore

F = TypeVar("F", bound=Callable[..., Any])

HOUR = 3600.0
PLAY_COMMANDS = ("status", "start", "advance", "halt", "resume", "complete")
APPSTORE_COMMANDS = ("status", "advance", "pause", "resume", "complete")


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(fn: F) -> F:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


state_options = _stack(
    click.option(
        "--state-file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Keep the gate's state in this JSON file (a local run, tests) instead of on the "
        "repository's state branch.",
    ),
    click.option(
        "--state-branch",
        default=None,
        metavar="BRANCH",
        help="The branch that keeps the gate's state between scheduled runs, one file per "
        "app (default: release-actions/mobile-state; needs `contents: write`).",
    ),
    click.option(
        "--repo",
        "repository",
        default=None,
        metavar="OWNER/NAME",
        help="The repository of the state branch and the rollback records (default: "
        "GITHUB_REPOSITORY).",
    ),
)

common_options = _stack(
    click.option(
        "--version",
        "version_name",
        default=None,
        help="The version users see (`4.2.0`): Play's release name, the App Store version, "
        "the CHANGELOG section of the notes. Default: the one the gate saved.",
    ),
    click.option(
        "--at",
        default=None,
        metavar="TIME",
        help="ISO 8601 time of the look (default: now), for rehearsals and tests. Looks are "
        "taken on the hour: Play's vitals are hourly.",
    ),
    click.option(
        "--record-file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Where a halt writes its rollback record (JSON). Default: under RUNNER_TEMP.",
    ),
    policy_option,
    state_options,
    json_option,
)

reason_option = click.option(
    "--reason", default=None, help="halt, pause, resume, complete: why (required; recorded)."
)

play_options = _stack(
    click.option(
        "--package",
        "package",
        required=True,
        metavar="NAME",
        help="The app's package name, such as `com.example.app`.",
    ),
    click.option(
        "--version-code",
        default=None,
        metavar="N",
        help="Play's versionCode being rolled out. Default: the one the gate saved.",
    ),
    click.option(
        "--track", default="production", show_default=True, help="The Play track rolled out."
    ),
)

notes_options = _stack(
    click.option(
        "--notes-from-changelog",
        is_flag=True,
        help="Set the release notes (Play `releaseNotes`) per locale from the CHANGELOG's "
        "section of `--version`.",
    ),
    click.option(
        "--changelog",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="The CHANGELOG of the notes (default CHANGELOG.md); giving it implies "
        "`--notes-from-changelog`.",
    ),
    click.option(
        "--locale",
        "locales",
        multiple=True,
        help="A locale of the notes (repeat; default: ja and en).",
    ),
)

start_options = _stack(
    click.option(
        "--from-track",
        default=None,
        metavar="TRACK",
        help="start: promote the version code from this track (`internal`, where fastlane "
        "uploaded it) instead of uploading it.",
    ),
    click.option(
        "--bundle",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="start: the .aab to upload when Play does not have the version code yet.",
    ),
)

sentry_options = _stack(
    click.option(
        "--sentry-org",
        default=None,
        help="iOS: the Sentry organization the crash data comes from (env SENTRY_ORG).",
    ),
    click.option(
        "--sentry-project",
        default=None,
        help="iOS: the numeric Sentry project ID (env SENTRY_PROJECT).",
    ),
    click.option(
        "--sentry-release",
        default=None,
        help="iOS: the Sentry release of a build, with `{version_code}` for the build number "
        "and `{version}` for its version string, such as "
        "`com.example.app@{version}+{version_code}`, so the previous version's release is "
        "named too (env SENTRY_RELEASE).",
    ),
)


def _now(at: str | None) -> float:
    """The look's time, on the hour: the hours the gate takes in are Play's UTC hours."""
    from release_actions.cli.calendar import parse_at

    when = parse_at(at).timestamp() if at else time.time()
    return math.floor(when / HOUR) * HOUR


def _states(
    state: Session,
    platform: str,
    app: str,
    *,
    file: Path | None,
    branch: str | None,
    repo: str | None,
) -> tuple[Callable[[], StateStore], str]:
    """A maker of the gate's state store (a fresh read each time) and where it is, in words."""
    from release_actions.mobile.rollout import FileStateStore
    from release_actions.mobile.state import DEFAULT_BRANCH, BranchStateStore, state_path

    if file is not None:
        if branch is not None:
            raise click.UsageError("Give `--state-file` or `--state-branch`, not both.")
        return (lambda: FileStateStore(file)), str(file)
    name = branch or DEFAULT_BRANCH
    path = state_path(platform, app)
    return (
        lambda: BranchStateStore.from_env(state.env, branch=name, path=path, repository=repo)
    ), f"{path} on branch {name}"


def _saved(states: Callable[[], StateStore]) -> dict[str, Any]:
    return states().load() or {}


def _notes(
    state: Session,
    store: str,
    version_name: str | None,
    changelog: Path | None,
    wanted: bool,
    locales: tuple[str, ...],
) -> dict[str, str] | None:
    if not wanted and changelog is None:
        return None
    from release_actions.core import changelog as cl
    from release_actions.mobile import notes as mn
    from release_actions.mobile import version_config as vc

    if not version_name:
        raise click.UsageError("Release notes from the CHANGELOG need `--version`.")
    path = changelog or Path("CHANGELOG.md")
    result = mn.build(
        cl.read(path),
        vc.parse_client_version(version_name, "--version"),
        store,  # type: ignore[arg-type]
        list(locales) or ["ja", "en"],
    )
    for warning in result.warnings:
        state.runtime.annotate("warning", warning, file=str(path), title="Store release notes")
    return {n.locale.store_code(result.store): n.text for n in result.notes}


def run_play(
    state: Session,
    command: str,
    *,
    package: str,
    version_code: str | None,
    version_name: str | None,
    track: str,
    from_track: str | None,
    bundle: Path | None,
    notes_from_changelog: bool,
    changelog: Path | None,
    locales: tuple[str, ...],
    reason: str | None,
    at: str | None,
    record_file: Path | None,
    policy_path: Path | None,
    state_file: Path | None,
    state_branch: str | None,
    repository: str | None,
    as_json: bool,
) -> None:
    from release_actions.app.mobile_store import open_play

    _check_options(command, reason=reason, from_track=from_track, bundle=bundle)
    policy = load_policy(policy_path)
    states, where = _states(
        state, "android", package, file=state_file, branch=state_branch, repo=repository
    )
    if version_code is None:
        saved = _saved(states)
        if not saved.get("version_code"):
            raise click.UsageError(
                f"No `--version-code`, and the gate has no rollout of `{package}` in {where}: "
                "give the version code."
            )
        version_code = str(saved["version_code"])
        version_name = version_name or saved.get("version_name") or None
    notes = _notes(state, "play", version_name, changelog, notes_from_changelog, locales)
    app = open_play(
        state,
        package=package,
        version_code=version_code,
        version_name=version_name,
        track=track,
        bundle=bundle,
        notes=notes,
    )
    outcome = _run(
        state,
        command,
        app,
        states,
        where,
        from_track=from_track,
        reason=reason,
        at=at,
        record_file=record_file,
        policy=policy,
        repository=repository,
    )
    outcome.notes = notes or {}
    _report(state, outcome, as_json)


def run_appstore(
    state: Session,
    command: str,
    *,
    app_id: str,
    version_name: str | None,
    sentry_org: str | None,
    sentry_project: str | None,
    sentry_release: str | None,
    reason: str | None,
    at: str | None,
    record_file: Path | None,
    policy_path: Path | None,
    state_file: Path | None,
    state_branch: str | None,
    repository: str | None,
    as_json: bool,
) -> None:
    from release_actions.app.mobile_store import SentrySettings, open_appstore

    _check_options(command, reason=reason, from_track=None, bundle=None)
    policy = load_policy(policy_path)
    states, where = _states(
        state, "ios", app_id, file=state_file, branch=state_branch, repo=repository
    )
    if not version_name:
        version_name = _saved(states).get("version_name") or None
        if not version_name:
            raise click.UsageError(
                f"No `--version`, and the gate has no rollout of app {app_id} in {where}: give "
                "the App Store version, such as `4.2.0`."
            )
    app = open_appstore(
        state,
        app_id=app_id,
        version=version_name,
        # From the session's environment, not click's `envvar` (os.environ): one source of
        # the environment, which tests clear.
        sentry=SentrySettings(
            sentry_org or state.env.get("SENTRY_ORG") or None,
            sentry_project or state.env.get("SENTRY_PROJECT") or None,
            sentry_release or state.env.get("SENTRY_RELEASE") or None,
        ),
        now=_now(at),
    )
    outcome = _run(
        state,
        "halt" if command == "pause" else command,
        app,
        states,
        where,
        from_track=None,
        reason=reason,
        at=at,
        record_file=record_file,
        policy=policy,
        repository=repository,
    )
    _report(state, outcome, as_json)


def run_appstore_notes(
    state: Session,
    *,
    app_id: str,
    version_name: str,
    changelog: Path | None,
    locales: tuple[str, ...],
    as_json: bool,
) -> None:
    """``whatsNew`` per locale from the CHANGELOG; only the locales whose text differs are sent."""
    from release_actions.app.mobile_store import appstore_release

    notes = _notes(state, "appstore", version_name, changelog, True, locales)
    assert notes is not None
    store = appstore_release(state, app_id=app_id, version=version_name)
    change = store.set_release_notes(notes)
    runtime = state.runtime
    runtime.set_output("changed", change.changed)
    runtime.set_output("locales", ",".join(sorted(notes)))
    if as_json:
        state.emit_json(
            {
                "command": "notes",
                "platform": "ios",
                "app": app_id,
                "version_name": version_name,
                "changed": change.changed,
                "message": change.message,
                "release_notes": notes,
                "characters": {locale: len(text) for locale, text in notes.items()},
            }
        )
    else:
        state.say(f"App Store release notes of {version_name} (app {app_id}): {change.message}")
        for locale, text in sorted(notes.items()):
            state.say(f"  {locale}: {len(text)} characters")


def _check_options(
    command: str, *, reason: str | None, from_track: str | None, bundle: Path | None
) -> None:
    if command in ("halt", "pause", "resume", "complete") and not (reason and reason.strip()):
        raise click.UsageError(f"`{command}` needs `--reason`: it goes into the gate's state.")
    if command != "start" and (from_track or bundle):
        raise click.UsageError("`--from-track` and `--bundle` belong to `start`.")
    if from_track and bundle:
        raise click.UsageError(
            "Only one of `--from-track` or `--bundle` can be set: promote a version code "
            "another track has, or upload it."
        )


def _run(
    state: Session,
    command: str,
    app: StoreApp,
    states: Callable[[], StateStore],
    where: str,
    *,
    from_track: str | None,
    reason: str | None,
    at: str | None,
    record_file: Path | None,
    policy: Policy,
    repository: str | None,
) -> StoreOutcome:
    from release_actions.app import mobile_store as ms

    now = _now(at)
    if command == "status":
        outcome = ms.status(state, policy, app, states())
    elif command == "start":
        outcome = ms.start(state, policy, app, states(), from_track=from_track, now=now)
    elif command == "advance":
        outcome = ms.advance(
            state,
            policy,
            app,
            states,
            now=now,
            record_file=record_file,
            repository=repository,
        )
    else:
        assert reason is not None
        outcome = ms.by_hand(
            state,
            policy,
            app,
            states(),
            what=command,
            reason=reason.strip(),
            now=now,
            record_file=record_file,
            repository=repository,
        )
    outcome.state_where = where
    return outcome


def _report(state: Session, outcome: StoreOutcome, as_json: bool) -> None:
    from release_actions.mobile.report import MobileReport, next_step, summary_markdown

    runtime = state.runtime
    data = outcome.to_dict()
    decision = outcome.decision
    runtime.set_output("decision", decision)
    runtime.set_output("fraction", f"{outcome.look.fraction:g}")
    runtime.set_output("stage", outcome.look.stage_index)
    runtime.set_output("record-id", outcome.record["id"] if outcome.record else "")
    runtime.set_output("version-code", data["version_code"] or "")
    for warning in outcome.look.warnings:
        runtime.annotate("warning", warning, title="Mobile gate")
    title = f"Mobile rollout of `{outcome.app}` ({outcome.platform})"
    if outcome.state is not None and outcome.command != "status":
        report = MobileReport(outcome.state, decision, record=outcome.record)
        runtime.summary(summary_markdown(report, title=title))
    if as_json:
        state.emit_json(data)
    else:
        where = f"{data['fraction']:.0%}" if data["fraction"] else "not rolling out"
        state.say(f"{title}: {decision} at {where} (stage {data['stage'] + 1})")
        state.say(f"  {outcome.look.reason}")
        for change in outcome.look.changes:
            state.say(f"  store: {change.message}")
        if data["store"]:
            store = data["store"]
            state.say(
                f"  store: {store['state']} on `{store['track']}`, fraction "
                f"{store['fraction'] if store['fraction'] is not None else 'none'}, previous "
                f"version code {store['previous_version_code'] or 'none'}"
            )
        if outcome.record:
            state.say(f"  rollback record {outcome.record['id']}")
        if decision == "halted" and outcome.look.action == "halted":
            state.say(f"  next step: {next_step(outcome.platform)}")
        state.say(f"  gate state: {outcome.state_where}")
    # Exit 1 on the look that halts; later looks report `halted` and exit 0, so an hourly
    # schedule does not fail every hour of a halt (its summary and output still say so).
    if outcome.look.action == "halted":
        raise check_failed()


# -- the commands -----------------------------------------------------------------------------


@click.group("play")
def play() -> None:
    """Google Play staged rollouts: start, the hourly gate, halt, resume, complete."""


def _play_command(name: str, help_text: str, *, start: bool = False, notes: bool = False) -> None:
    decorators: list[Callable[[F], F]] = [play_options, common_options]
    if start:
        decorators.append(start_options)
    if notes:
        decorators.append(notes_options)
    if name in ("halt", "resume", "complete"):
        decorators.append(reason_option)

    def command(state: Session, **kw: Any) -> None:
        kw.setdefault("from_track", None)
        kw.setdefault("bundle", None)
        kw.setdefault("notes_from_changelog", False)
        kw.setdefault("changelog", None)
        kw.setdefault("locales", ())
        kw.setdefault("reason", None)
        run_play(state, name, **kw)

    command.__doc__ = help_text
    fn: Any = pass_state(command)
    for decorator in reversed(decorators):
        fn = decorator(fn)
    play.command(name)(fn)


_play_command(
    "status", "Where the version's rollout stands in Play and in the gate; changes nothing."
)
_play_command(
    "start",
    "Begin the staged rollout at the first stage's fraction (idempotent): from `--from-track`, "
    "with `--bundle` uploaded, or a version code Play has. Exit 0.",
    start=True,
    notes=True,
)
_play_command(
    "advance",
    "The scheduled gate: one look that holds, advances, completes or halts (exit 1 on the "
    "halt: record, kill switch, notice). Safe to run at any time.",
)
_play_command("halt", "Halt the rollout by hand (recorded as a manual rollback); exit 1.")
_play_command("resume", "Resume a halted rollout at its fraction; the gate judges from here on.")
_play_command("complete", "Release to everyone now, whatever the stage.")


@click.group("appstore")
def appstore() -> None:
    """App Store phased releases: the hourly gate, pause, resume, complete (Apple sets the pace)."""


def _appstore_command(name: str, help_text: str) -> None:
    decorators: list[Callable[[F], F]] = [
        click.option("--app-id", required=True, metavar="ID", help="Apple's numeric app ID."),
        common_options,
        sentry_options,
    ]
    if name in ("pause", "resume", "complete"):
        decorators.append(reason_option)

    def command(state: Session, **kw: Any) -> None:
        kw.setdefault("reason", None)
        run_appstore(state, name, **kw)

    command.__doc__ = help_text
    fn: Any = pass_state(command)
    for decorator in reversed(decorators):
        fn = decorator(fn)
    appstore.command(name)(fn)


_appstore_command(
    "status", "Where the phased release stands, and the gate's state; changes nothing."
)
_appstore_command(
    "advance",
    "The scheduled gate: one look (Sentry's crashes); Apple moves the days, the gate pauses on "
    "a halt (exit 1: record, kill switch, notice).",
)
_appstore_command("pause", "Pause the phased release by hand (recorded as a manual rollback).")
_appstore_command("resume", "Resume a paused phased release; the gate judges from here on.")
_appstore_command("complete", "Release to all users now.")


@appstore.command("notes")
@click.option("--app-id", required=True, metavar="ID", help="Apple's numeric app ID.")
@click.option(
    "--version",
    "version_name",
    required=True,
    help="The App Store version (`4.2.0`), which is also the CHANGELOG section of the notes.",
)
@click.option(
    "--changelog",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The CHANGELOG of the notes (default CHANGELOG.md).",
)
@click.option(
    "--locale",
    "locales",
    multiple=True,
    help="A locale of the notes (repeat; default: ja and en, App Store `ja` and `en-US`); "
    "the version must have each localization.",
)
@json_option
@pass_state
def appstore_notes(
    state: Session,
    /,
    app_id: str,
    version_name: str,
    changelog: Path | None,
    locales: tuple[str, ...],
    as_json: bool,
) -> None:
    """Set the version's What's New per locale from its CHANGELOG section (4000 characters,
    cut between entries with a warning). Apple takes it only before review: run it after the
    build is attached and before submitting; a rerun sends nothing."""
    run_appstore_notes(
        state,
        app_id=app_id,
        version_name=version_name,
        changelog=changelog,
        locales=locales,
        as_json=as_json,
    )


# -- one command for the composite action -----------------------------------------------------


@click.command("rollout")
@click.option(
    "--command",
    "what",
    type=click.Choice(["start", "advance", "halt", "resume", "complete", "status"]),
    required=True,
    help="As the `play` and `appstore` commands of that name (`halt` pauses on the App Store).",
)
@click.option("--platform", type=click.Choice(["android", "ios"]), required=True)
@click.option("--package", default=None, metavar="NAME", help="android: the package name.")
@click.option("--app-id", default=None, metavar="ID", help="ios: Apple's numeric app ID.")
@click.option("--version-code", default=None, metavar="N", help="android: Play's versionCode.")
@click.option("--track", default="production", show_default=True, help="android: the track.")
@start_options
@notes_options
@reason_option
@sentry_options
@common_options
@pass_state
def rollout(
    state: Session,
    /,
    what: str,
    platform: str,
    package: str | None,
    app_id: str | None,
    version_code: str | None,
    track: str,
    sentry_org: str | None,
    sentry_project: str | None,
    sentry_release: str | None,
    **kw: Any,
) -> None:
    """`play` or `appstore` COMMAND by platform, for the mobile action. Exit codes as those."""
    if platform == "android":
        if not package or app_id:
            raise click.UsageError("`--platform android` takes `--package`, not `--app-id`.")
        run_play(state, what, package=package, version_code=version_code, track=track, **kw)
        return
    if not app_id or package or version_code:
        raise click.UsageError(
            "`--platform ios` takes `--app-id` (and `--version`), not `--package` or "
            "`--version-code`."
        )
    if what == "start":
        raise click.UsageError(
            "The App Store starts a phased release itself when the version is released: "
            "use `advance` from then on."
        )
    for option in ("from_track", "bundle"):
        if kw.pop(option):
            raise click.UsageError(f"`--{option.replace('_', '-')}` belongs to android.")
    if kw.pop("notes_from_changelog") or kw.pop("changelog"):
        raise click.UsageError(
            "Release notes from the CHANGELOG are set by `start` on android; on the App Store "
            "they are set before review: `release-actions mobile appstore notes`."
        )
    kw.pop("locales", None)
    run_appstore(
        state,
        "pause" if what == "halt" else what,
        app_id=app_id,
        sentry_org=sentry_org,
        sentry_project=sentry_project,
        sentry_release=sentry_release,
        **kw,
    )
