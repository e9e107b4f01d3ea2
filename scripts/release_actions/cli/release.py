"""`release-actions release`: publish the GitHub Release of a tag from its CHANGELOG section."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.core import changelog as cl
from release_actions.core.versions import Version
from release_actions.errors import (
    ChangelogError,
    IntegrationError,
    InvalidVersionError,
    ReleaseActionsError,
)
from release_actions.gha import markdown_table

_LATEST = {"auto": None, "true": True, "false": False}


@click.group("release")
def group() -> None:
    """GitHub Releases (source §3.2: the release's notes are its CHANGELOG section)."""


def _body(version: Version, changelog: Path | None, body_file: Path | None) -> tuple[str, str]:
    """The release body and where it came from; bytes are kept exactly (CRLF included)."""
    if body_file is not None:
        if changelog is not None:
            raise click.UsageError("Only one of `--changelog` or `--body-file` can be set.")
        try:
            return cl.decode(body_file.read_bytes(), str(body_file)), str(body_file)
        except ChangelogError as exc:
            raise ReleaseActionsError(
                exc.message.replace("a CHANGELOG", "a release body"), file=exc.file, line=exc.line
            ) from None
    path = changelog or Path("CHANGELOG.md")
    log = cl.read(path)
    section = cl.require_released(log, version)
    return log.body(section), f"{path}:{section.line}"


@group.command("publish")
@click.option("--tag", required=True, help="The release tag, such as `v1.2.3`.")
@click.option(
    "--changelog",
    "changelog_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The CHANGELOG whose section of the tag's version is the body [default: CHANGELOG.md].",
)
@click.option(
    "--body-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Use this file, byte for byte, as the body instead of the CHANGELOG section.",
)
@click.option("--repo", default=None, help="OWNER/NAME [default: $GITHUB_REPOSITORY].")
@click.option(
    "--name",
    default=None,
    help="Release title [default: the existing release's title, or the tag].",
)
@click.option("--draft", is_flag=True, help="Create it, or keep it, as a draft.")
@click.option(
    "--prerelease/--no-prerelease",
    default=None,
    help="Mark as pre-release [default: from SemVer: any pre-release identifier, `rc` too].",
)
@click.option(
    "--make-latest",
    type=click.Choice(list(_LATEST)),
    default="auto",
    show_default=True,
    help="`auto`: latest unless a higher version already has a published release.",
)
@click.option(
    "--target-commitish",
    default=None,
    help="Branch or SHA to create the tag from, when the tag does not exist yet.",
)
@json_option
@pass_state
def publish(
    state: Session,
    tag: str,
    changelog_path: Path | None,
    body_file: Path | None,
    repo: str | None,
    name: str | None,
    draft: bool,
    prerelease: bool | None,
    make_latest: str,
    target_commitish: str | None,
    as_json: bool,
) -> None:
    """Create the GitHub Release of TAG, or update the one an earlier run made.

    Outputs: `id`, `url`, `upload-url`, `created`, `prerelease`, `latest`.
    """
    from release_actions.core.policy import load_policy
    from release_actions.integrations import github as gh

    policy = load_policy(None)
    prefix = policy.tag.prefix
    version = Version.parse(tag, prefix=prefix)
    if version.build and not policy.tag.allow_build_metadata:
        raise InvalidVersionError(
            f"`{tag}` has build metadata, which the policy does not allow in release tags "
            "(tag.allow_build_metadata)."
        )
    body, source = _body(version, changelog_path, body_file)
    repo_name = repo or state.env.get("GITHUB_REPOSITORY", "").strip()
    if not repo_name:
        raise ReleaseActionsError(
            "No repository: pass `--repo OWNER/NAME` or set `GITHUB_REPOSITORY`.",
            hint="Inside GitHub Actions the runner sets GITHUB_REPOSITORY by itself.",
        )
    choice = Choice(name, draft, prerelease, _LATEST[make_latest], version, prefix)
    if state.dry_run:
        _dry_run(state, repo_name, tag, body, source, choice, as_json)
        return

    token = gh.resolve_token(state.env)
    state.runtime.mask(token)
    repository = gh.get_repo(gh.client(state.env, token), repo_name)
    result = gh.publish_release(
        repository,
        tag,
        body,
        name=choice.name,
        draft=choice.draft,
        prerelease=choice.prerelease,
        make_latest=choice.make_latest,
        target_commitish=target_commitish,
        version=version,
        tag_prefix=prefix,
    )
    for dup in result.duplicates:
        state.runtime.annotate(
            "warning",
            f"Release {tag} has another draft with the same tag (id {dup}); this run updated "
            f"release {result.id}. Delete the extra draft on GitHub.",
        )
    out = state.runtime
    out.set_output("id", result.id)
    out.set_output("url", result.html_url)
    out.set_output("upload-url", result.upload_url)
    out.set_output("created", result.created)
    out.set_output("prerelease", result.prerelease)
    out.set_output("latest", result.make_latest)
    verb = "Created" if result.created else "Updated"
    out.summary(
        f"### GitHub Release {tag}\n\n"
        + markdown_table(
            ["Release", f"[{result.name}]({result.html_url})"],
            [
                ["Repository", repo_name],
                ["Action", verb.lower()],
                ["Draft", _yes(result.draft)],
                ["Pre-release", _yes(result.prerelease)],
                ["Latest", f"{_yes(result.make_latest)} ({result.latest_reason})"],
                ["Notes from", source],
            ],
        )
        + "\n"
    )
    if as_json:
        state.emit_json(result.to_dict())
        return
    kinds = [k for k, on in (("draft", result.draft), ("pre-release", result.prerelease)) if on]
    latest_text = "latest" if result.make_latest else f"not latest: {result.latest_reason}"
    state.say(
        f"{verb} release {tag} in {repo_name} ({', '.join([*kinds, latest_text])}): "
        f"{result.html_url}"
    )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@dataclass(frozen=True)
class Choice:
    """The user's choices, passed alike to the plan (dry run) and to the publish."""

    name: str | None
    draft: bool
    prerelease: bool | None
    make_latest: bool | None
    version: Version
    tag_prefix: str


def _dry_run(
    state: Session, repo_name: str, tag: str, body: str, source: str, choice: Choice, as_json: bool
) -> None:
    """Say what publish would do; with a token it reads the releases, and it never writes."""
    from release_actions.integrations import github as ghm

    lines = body.count("\n") + 1 if body else 0
    try:
        token = ghm.resolve_token(state.env)
    except IntegrationError:
        token = None
    if token is None:
        pre = choice.prerelease
        data: dict[str, object] = {
            "dry_run": True,
            "repo": repo_name,
            "tag": tag,
            "prerelease": choice.version.is_prerelease if pre is None else pre,
            "action": None,
            "body_lines": lines,
            "body_source": source,
        }
        if as_json:
            state.emit_json(data)
        else:
            state.say(
                f"Would publish release {tag} in {repo_name} ({lines} line(s) of notes from "
                f"{source}); with no token, whether it creates or updates, and whether it "
                "becomes latest, is not known (dry run, nothing written)."
            )
        return
    state.runtime.mask(token)
    repository = ghm.get_repo(ghm.client(state.env, token), repo_name)
    plan = ghm.plan_release(
        repository,
        tag,
        name=choice.name,
        draft=choice.draft,
        prerelease=choice.prerelease,
        make_latest=choice.make_latest,
        version=choice.version,
        tag_prefix=choice.tag_prefix,
    )
    if as_json:
        state.emit_json(
            {"dry_run": True, **plan.to_dict(), "body_lines": lines, "body_source": source}
        )
        return
    kinds = [k for k, on in (("draft", plan.draft), ("pre-release", plan.prerelease)) if on]
    latest_text = "latest" if plan.make_latest else "not latest"
    state.say(
        f"Would {plan.action} release {tag} in {repo_name} "
        f"({', '.join([*kinds, latest_text])}: {plan.latest_reason}; {lines} line(s) of notes "
        f"from {source}) (dry run, nothing written)."
    )


@group.command("floating-tag")
@click.option("--tag", required=True, help="The release tag just published, such as `v1.2.3`.")
@click.option("--repo", default=None, help="OWNER/NAME [default: $GITHUB_REPOSITORY].")
@json_option
@pass_state
def floating_tag(state: Session, tag: str, repo: str | None, as_json: bool) -> None:
    """Move the major tag (`v1`) to TAG, so `uses: ...@v1` gets this release.

    Pre-releases, and releases older than the newest of their major, leave it where it is.
    Outputs: `moved` (true/false), `floating-tag` (such as `v1`), `sha` (empty when not moved).
    Needs `permissions: contents: write`.
    """
    from release_actions.core.policy import load_policy
    from release_actions.integrations import github as gh

    prefix = load_policy(None).tag.prefix
    version = Version.parse(tag, prefix=prefix)
    repo_name = repo or state.env.get("GITHUB_REPOSITORY", "").strip()
    if not repo_name:
        raise ReleaseActionsError(
            "No repository: pass `--repo OWNER/NAME` or set `GITHUB_REPOSITORY`.",
            hint="Inside GitHub Actions the runner sets GITHUB_REPOSITORY by itself.",
        )
    token = gh.resolve_token(state.env)
    state.runtime.mask(token)
    repository = gh.get_repo(gh.client(state.env, token), repo_name)
    if state.dry_run:
        state.say(
            f"Would move {prefix}{version.major} to {tag} if it is the newest release (dry run)."
        )
        return
    result = gh.move_floating_tag(repository, tag, version, prefix=prefix)
    state.runtime.set_output("moved", result.moved)
    state.runtime.set_output("floating-tag", result.floating)
    state.runtime.set_output("sha", result.sha if result.moved else "")
    if as_json:
        state.emit_json(result.__dict__)
    else:
        state.say(result.reason)


_SHA = re.compile(r"^[0-9a-f]{40}$")


def pin_uses(text: str, repo: str, sha: str, comment: str) -> tuple[str, int]:
    """``text`` with every ``uses: REPO/...@REF`` pointing at ``sha`` (``# comment``), and how many."""
    pattern = re.compile(
        r"^(?P<lead>\s*(?:-\s+)?uses:\s*)(?P<q>[\"']?)(?P<path>"
        + re.escape(repo)
        + r"/[^@\s\"']+)@[^\s\"'#]+(?P=q)[ \t]*(?:#[^\n]*)?$",
        re.MULTILINE,
    )
    return pattern.subn(lambda m: f"{m['lead']}{m['path']}@{sha} # {comment}", text)


@group.command("pin-actions")
@click.option(
    "--sha",
    required=True,
    help="The 40-hex commit that holds the same `actions/` (the tagged commit).",
)
@click.option(
    "--tag", default=None, help="The release tag, written as the pin's comment (`# v1.2.3`)."
)
@click.option(
    "--repo",
    default="triptrip/release-actions",
    show_default=True,
    help="OWNER/NAME of the actions whose references are pinned.",
)
@click.option(
    "--dir",
    "root",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("."),
    help="The repository's root [default: the current directory].",
)
@json_option
@pass_state
def pin_actions(
    state: Session, sha: str, tag: str | None, repo: str, root: Path, as_json: bool
) -> None:
    """Point every `uses: REPO/...@REF` of `.github/workflows/*.yml` at SHA, `# TAG` after it.

    The self-release runs it on the tagged commit and commits the result on top, so a
    consumer pinned to the release's SHA also runs pinned nested actions: the reusable
    workflows no longer follow a moving `@v1`. Outputs: `files` (the changed workflows,
    comma-separated; empty when none), `count` (the references rewritten).
    """
    sha = sha.strip().lower()
    if not _SHA.match(sha):
        raise ReleaseActionsError(
            f"`--sha` must be a full 40-hex commit SHA, got {sha!r}.",
            hint="Inside a workflow pass `${{ github.sha }}` through `env:`.",
        )
    folder = root / ".github" / "workflows"
    paths = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    if not paths:
        raise ReleaseActionsError(
            f"No workflows in `{folder}`.", hint="Pass `--dir` the repository's root."
        )
    changed: list[str] = []
    total = 0
    for path in paths:
        text = path.read_text("utf-8")
        new, count = pin_uses(text, repo, sha, tag or sha[:12])
        total += count
        if new != text:
            changed.append(str(path.relative_to(root)))
            if not state.dry_run:
                path.write_text(new, "utf-8")
    state.runtime.set_output("files", ",".join(changed))
    state.runtime.set_output("count", total)
    if as_json:
        state.emit_json({"files": changed, "count": total, "sha": sha, "dry_run": state.dry_run})
    else:
        verb = "Would pin" if state.dry_run else "Pinned"
        state.say(
            f"{verb} {total} reference(s) to {repo} at {sha}"
            + (f" # {tag}" if tag else "")
            + (f" in {', '.join(changed)}" if changed else " (already pinned)")
            + "."
        )
