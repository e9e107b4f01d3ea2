"""`release-actions mobile version-config publish`: the version config to a pull request or Remote Config."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.errors import IntegrationError, ReleaseActionsError

DEFAULT_BRANCH = "release-actions/version-config"
DEFAULT_PARAMETER = "app_version_config"
# Where Remote Config is asked: unset, Firebase itself; a proxy's or the tests' fake otherwise.
REMOTE_CONFIG_URL_VAR = "FIREBASE_REMOTE_CONFIG_URL"
PROJECT_VAR = "FIREBASE_PROJECT"


@click.command("publish")
@click.option(
    "--config",
    "path",
    required=True,
    help="The version config, as a path in the repository (`--to pr`) or a local file "
    "(`--to firebase`).",
)
@click.option(
    "--to",
    "to",
    type=click.Choice(["pr", "firebase"]),
    default="pr",
    show_default=True,
    help="`pr`: a pull request that changes the file on the default branch; `firebase`: a "
    "Remote Config parameter holding the config as JSON.",
)
@click.option("--recommended", default=None, metavar="VERSION", help="The new recommendedVersion.")
@click.option("--minimum", default=None, metavar="VERSION", help="The new minimumVersion.")
@click.option(
    "--latest",
    default=None,
    metavar="VERSION",
    help="The newest version released in the stores: no version in the config may be newer.",
)
@click.option(
    "--branch",
    default=DEFAULT_BRANCH,
    show_default=True,
    help="`--to pr`: the pull request's branch; a rerun with the same name updates its pull "
    "request instead of opening another.",
)
@click.option(
    "--base", default=None, help="`--to pr`: the branch to change [default: the default branch]."
)
@click.option("--repo", default=None, help="`--to pr`: OWNER/NAME [default: $GITHUB_REPOSITORY].")
@click.option(
    "--firebase-project",
    default=None,
    metavar="ID",
    help=f"`--to firebase`: the Firebase project ID [default: ${PROJECT_VAR}].",
)
@click.option(
    "--parameter",
    default=DEFAULT_PARAMETER,
    show_default=True,
    help="`--to firebase`: the Remote Config parameter.",
)
@json_option
@pass_state
def publish(
    state: Session,
    path: str,
    to: str,
    recommended: str | None,
    minimum: str | None,
    latest: str | None,
    branch: str,
    base: str | None,
    repo: str | None,
    firebase_project: str | None,
    parameter: str,
    as_json: bool,
) -> None:
    """Publish the version config (source §8.4) once a store rollout has completed.

    `--to pr` reads the file from the base branch on GitHub, raises its versions as `bump`
    does (only the values change, byte for byte), and opens a pull request from `--branch`
    with that change; a rerun updates the same pull request, and one with the same versions
    changes nothing. The job needs `permissions: contents: write, pull-requests: write`.

    `--to firebase` validates the local file (with the versions raised in memory when
    given) and sets a Remote Config parameter to it as JSON; the same value already
    published sends nothing. Credentials: FIREBASE_SERVICE_ACCOUNT_JSON, or workload identity.

    Outputs: `changed`, `recommended-version`, `minimum-version`; `branch`,
    `pull-request-number` and `pull-request-url` (empty when there was nothing to propose)
    for `pr`.
    """
    from release_actions.mobile import version_config as vc

    wanted = {
        "recommended": None
        if recommended is None
        else vc.parse_client_version(recommended, "--recommended"),
        "minimum": None if minimum is None else vc.parse_client_version(minimum, "--minimum"),
        "latest": None if latest is None else vc.parse_client_version(latest, "--latest"),
    }
    if to == "pr":
        if recommended is None and minimum is None:
            raise click.UsageError(
                "Give `--recommended VERSION`, `--minimum VERSION`, or both: `--to pr` proposes "
                "raising them."
            )
        result = _to_pull_request(state, _repo_path(path), wanted, branch, base, repo)
    else:
        result = _to_firebase(state, Path(path), wanted, firebase_project, parameter)
    runtime = state.runtime
    runtime.set_output("changed", result["changed"])
    runtime.set_output("recommended-version", result["after"]["recommendedVersion"])
    runtime.set_output("minimum-version", result["after"]["minimumVersion"])
    if to == "pr":
        pull = result["pull_request"] or {}
        runtime.set_output("branch", result["branch"])
        runtime.set_output("pull-request-number", pull.get("number") or "")
        runtime.set_output("pull-request-url", pull.get("url") or "")
    if as_json:
        state.emit_json(result)
        return
    state.say(result["message"])


@click.command("propose")
@click.option(
    "--config",
    "path",
    required=True,
    help="The version config, as a path in the repository, such as `config/app-version.json`.",
)
@click.option("--platform", type=click.Choice(["android", "ios"]), required=True)
@click.option("--package", default=None, metavar="NAME", help="android: the package name.")
@click.option("--app-id", default=None, metavar="ID", help="ios: Apple's numeric app ID.")
@click.option(
    "--version",
    "version_name",
    default=None,
    metavar="VERSION",
    help="The new recommendedVersion [default: the version the gate rolled out].",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The gate's state in this file instead of on the state branch. Excludes `--state-branch`.",
)
@click.option(
    "--state-branch",
    default=None,
    metavar="BRANCH",
    help="The branch of the gate's state [default: release-actions/mobile-state].",
)
@click.option(
    "--branch",
    default=DEFAULT_BRANCH,
    show_default=True,
    help="The pull request's branch; a rerun updates its pull request.",
)
@click.option("--repo", default=None, help="OWNER/NAME [default: $GITHUB_REPOSITORY].")
@json_option
@pass_state
def propose(
    state: Session,
    path: str,
    platform: str,
    package: str | None,
    app_id: str | None,
    version_name: str | None,
    state_file: Path | None,
    state_branch: str | None,
    branch: str,
    repo: str | None,
    as_json: bool,
) -> None:
    """Once the mobile gate has completed a rollout, propose its version as recommendedVersion.

    Reads the gate's saved state of the app (as `mobile rollout` keeps it); when its rollout
    is `completed`, opens (or updates) the pull request that `publish --to pr --recommended
    VERSION` would. Any other state proposes nothing and exits 0, so a step may run it after
    every look. The job needs `permissions: contents: write, pull-requests: write`.

    Outputs as `publish`'s, and `decision`: the gate's decision for the app.
    """
    from release_actions.mobile import version_config as vc
    from release_actions.mobile.rollout import FileStateStore
    from release_actions.mobile.state import DEFAULT_BRANCH as STATE_BRANCH
    from release_actions.mobile.state import BranchStateStore, state_path

    app = package if platform == "android" else app_id
    if not app or (package and app_id):
        raise click.UsageError(
            "`--platform android` takes `--package`, `--platform ios` takes `--app-id`: "
            "the app whose gate state is read."
        )
    if state_file is not None and state_branch is not None:
        raise click.UsageError("Give `--state-file` or `--state-branch`, not both.")
    if state_file is not None:
        saved = FileStateStore(state_file).load() or {}
    else:
        saved = (
            BranchStateStore.from_env(
                state.env,
                branch=state_branch or STATE_BRANCH,
                path=state_path(platform, app),
                repository=repo,
            ).load()
            or {}
        )
    decision = str(saved.get("decision") or "none")
    runtime = state.runtime
    runtime.set_output("decision", decision)
    if decision != "completed":
        result: dict[str, Any] = {
            "to": "pr",
            "file": path,
            "decision": decision,
            "changed": False,
            "pull_request": None,
            "message": f"The gate's rollout of {app} is {decision}, not completed: nothing "
            "to propose.",
        }
        for name in ("changed", "recommended-version", "minimum-version", "branch"):
            runtime.set_output(name, "false" if name == "changed" else "")
        runtime.set_output("pull-request-number", "")
        runtime.set_output("pull-request-url", "")
    else:
        version = version_name or str(saved.get("version_name") or "")
        if not version:
            raise ReleaseActionsError(
                f"The gate's state of {app} names no version, so there is nothing to raise "
                "recommendedVersion to.",
                hint="Pass `--version VERSION` (the action's `version` input).",
            )
        wanted = {
            "recommended": vc.parse_client_version(version, "--version"),
            "minimum": None,
            "latest": None,
        }
        result = _to_pull_request(state, _repo_path(path), wanted, branch, None, repo)
        result["decision"] = decision
        pull = result["pull_request"] or {}
        runtime.set_output("changed", result["changed"])
        runtime.set_output("recommended-version", result["after"]["recommendedVersion"])
        runtime.set_output("minimum-version", result["after"]["minimumVersion"])
        runtime.set_output("branch", result["branch"])
        runtime.set_output("pull-request-number", pull.get("number") or "")
        runtime.set_output("pull-request-url", pull.get("url") or "")
    if as_json:
        state.emit_json(result)
        return
    state.say(result["message"])


def _repo_path(text: str) -> str:
    """A path inside the repository, as the contents API names it: no `./`, no `..`."""
    pure = PurePosixPath(text.replace("\\", "/"))
    parts = [p for p in pure.parts if p not in (".", "")]
    if pure.is_absolute() or not parts or ".." in parts:
        raise click.BadParameter(
            f"`{text}` is not a path inside the repository, such as `config/app-version.json`.",
            param_hint="'--config'",
        )
    return "/".join(parts)


def _to_pull_request(
    state: Session,
    path: str,
    wanted: dict[str, Any],
    branch: str,
    base: str | None,
    repo_name: str | None,
) -> dict[str, Any]:
    from release_actions.integrations import cherry_pick as cp
    from release_actions.integrations import github as gh
    from release_actions.mobile import version_config as vc

    branch = cp.check_ref_name(branch, "`--branch`")
    if base is not None:
        base = cp.check_ref_name(base, "`--base`")
    _, repository = gh.open_repo(state.env, repo_name, state.runtime.mask)
    name = repository.full_name
    base = base or repository.default_branch
    found = gh.read_file(repository, path, base)
    if found is None:
        raise IntegrationError(
            f"`{path}` is not on `{base}` in {name}, so there is no version config to raise.",
            hint="Pass `--config` as the file's path from the repository's root, such as "
            "`config/app-version.json`.",
        )
    source = vc.parse_source(found[0], path, vc.format_of(Path(path), found[0]))
    bumped = vc.bump(
        source,
        recommended=wanted["recommended"],
        minimum=wanted["minimum"],
        latest=wanted["latest"],
    )
    versions = ", ".join(f"{k} {v}" for k, v in bumped.after.items() if bumped.before[k] != v)
    title = f"Version config: {versions or 'no change'}"
    body = (
        f"Raises the app version config `{path}` after a completed store rollout "
        "(source §8.4):\n\n"
        + "\n".join(
            f"- `{k}`: {bumped.before[k]} → {bumped.after[k]}"
            for k in bumped.after
            if bumped.before[k] != bumped.after[k]
        )
        + "\n\nOpened by `release-actions mobile version-config publish`; a rerun updates "
        "this pull request."
    )
    result: dict[str, Any] = {
        "to": "pr",
        "file": path,
        "repository": name,
        "base": base,
        "branch": branch,
        "before": bumped.before,
        "after": bumped.after,
        "pull_request": None,
        "dry_run": state.dry_run,
    }
    if not bumped.changed:
        result |= {
            "changed": False,
            "message": f"`{path}` on {base} already has {_versions(bumped.after)}; "
            "nothing to propose.",
        }
        return result
    if state.dry_run:
        result |= {
            "changed": False,
            "message": f"Would propose {versions} in `{path}` from `{branch}` to {base} "
            "(dry run, nothing written).",
        }
        return result
    proposal = gh.propose_file(
        repository,
        path=path,
        text=bumped.text,
        branch=branch,
        base=base,
        title=title,
        body=body,
        message=f"{title}\n\nRaised by release-actions after a completed store rollout.",
    )
    result |= {
        "changed": proposal.changed,
        "message": proposal.reason,
        "commit": proposal.committed,
        "pull_request": None
        if proposal.pull_number is None
        else {
            "number": proposal.pull_number,
            "url": proposal.pull_url,
            "created": proposal.created_pull,
        },
    }
    if proposal.pull_url:
        state.runtime.summary(
            f"### Version config\n\n{title}: [pull request #{proposal.pull_number}]"
            f"({proposal.pull_url}).\n"
        )
    return result


def _to_firebase(
    state: Session,
    path: Path,
    wanted: dict[str, Any],
    project: str | None,
    parameter: str,
) -> dict[str, Any]:
    from release_actions.mobile import version_config as vc
    from release_actions.mobile.remote_config import API, RemoteConfig

    project = (project or state.env.get(PROJECT_VAR, "")).strip()
    if not project:
        raise ReleaseActionsError(
            f"`--to firebase` needs the Firebase project: pass `--firebase-project ID` or set "
            f"`{PROJECT_VAR}`.",
            hint="The project ID is in the Firebase console's project settings, such as "
            "`triptrip-prod`.",
        )
    source = vc.read_source(path)
    bumped = vc.bump(
        source,
        recommended=wanted["recommended"],
        minimum=wanted["minimum"],
        latest=wanted["latest"],
    )
    config = vc.validate(
        vc.parse_source(bumped.text, str(path), source.format), latest=wanted["latest"]
    )
    params = {
        "minimumVersion": str(config.minimum_version),
        "recommendedVersion": str(config.recommended_version),
        "forceUpdate": config.force_update,
        "updateMessage": config.update_message,
        "storeUrls": dict(config.store_urls),
    }
    result: dict[str, Any] = {
        "to": "firebase",
        "file": str(path),
        "project": project,
        "parameter": parameter,
        "before": bumped.before,
        "after": bumped.after,
        "value": params,
        "dry_run": state.dry_run,
    }
    if state.dry_run:
        return result | {
            "changed": False,
            "message": f"Would set Remote Config `{parameter}` of {project} to "
            f"{_versions(bumped.after)} (dry run, nothing published).",
        }
    remote = RemoteConfig.from_env(
        project=project,
        env=state.env,
        mask=state.runtime.mask,
        parameter=parameter,
        base_url=state.env.get(REMOTE_CONFIG_URL_VAR, "").strip() or API,
    )
    change = remote.publish_version_config(
        params, description=f"release-actions: {_versions(bumped.after)}"
    )
    return result | {"changed": change.changed, "message": change.message}


def _versions(v: dict[str, str]) -> str:
    return f"minimum {v['minimumVersion']}, recommended {v['recommendedVersion']}"
