"""`release-actions release`: publish the GitHub Release of a tag from its CHANGELOG section."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from release_actions.core.assets import LocalAsset

_LATEST = {"auto": None, "true": True, "false": False}
# `checksums`: where the SHA-256 list goes; `true` is `body`, what the issue asked for.
_CHECKSUMS = {
    "false": (False, False),
    "true": (True, False),
    "body": (True, False),
    "asset": (False, True),
    "both": (True, True),
}


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
@click.option(
    "--files",
    "file_patterns",
    multiple=True,
    metavar="GLOBS",
    help="Files to attach, as globs relative to the current directory (`**` reaches into "
    "folders), one per line or comma-separated; repeatable. Each file must be inside "
    "$GITHUB_WORKSPACE (else the current directory).",
)
@click.option(
    "--fail-on-unmatched-files/--no-fail-on-unmatched-files",
    default=True,
    show_default=True,
    help="Fail when a `--files` glob matches no file (else warn and go on).",
)
@click.option(
    "--checksums",
    type=click.Choice(list(_CHECKSUMS)),
    default="false",
    show_default=True,
    help="List the files' SHA-256 in `sha256sum` format: in the body (`body`, or `true`), "
    "as a `SHA256SUMS` asset (`asset`), or `both`.",
)
@click.option(
    "--generate-notes",
    is_flag=True,
    help="Append GitHub's generated notes (merged pull requests since the previous release "
    "by SemVer) after the CHANGELOG section.",
)
@click.option(
    "--discussion-category",
    default=None,
    help="Open a discussion for the release in this existing category (not with `--draft`; "
    "needs `discussions: write`).",
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
    file_patterns: tuple[str, ...],
    fail_on_unmatched_files: bool,
    checksums: str,
    generate_notes: bool,
    discussion_category: str | None,
    as_json: bool,
) -> None:
    """Create the GitHub Release of TAG, or update the one an earlier run made.

    A rerun changes only what differs: an asset whose size and SHA-256 are the same is
    left alone, one whose content changed is replaced.
    Outputs: `id`, `url`, `upload-url`, `created`, `prerelease`, `latest`, `changed`,
    `assets` (JSON), `discussion-url`.
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
    discussion_category = (discussion_category or "").strip() or None
    if draft and discussion_category:
        raise click.UsageError(
            "`--discussion-category` cannot be used with `--draft`: GitHub opens no "
            "discussion for a draft release."
        )
    in_body, as_asset = _CHECKSUMS[checksums]
    assets = _assets(state, file_patterns, fail_on_unmatched_files)
    if (in_body or as_asset) and not assets:
        raise ReleaseActionsError(
            f"`--checksums {checksums}` lists the SHA-256 of the release files, but no files "
            "were given or matched.",
            hint="Set `files` (globs of the files to attach), or leave `checksums` at `false`.",
        )
    from release_actions.core.assets import checksums_asset, sha256sums

    sums = sha256sums(assets) if in_body else ""
    uploads = [*assets, checksums_asset(assets)] if as_asset else list(assets)
    choice = Choice(name, draft, prerelease, _LATEST[make_latest], version, prefix)
    if state.dry_run:
        _dry_run(state, repo_name, tag, body, source, choice, as_json, uploads)
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
        assets=uploads,
        generate_release_notes=generate_notes,
        checksums=sums,
        discussion_category=discussion_category,
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
    out.set_output("changed", result.changed)
    out.set_output(
        "assets",
        json.dumps([{"name": a.name, "url": a.url, "action": a.action} for a in result.assets]),
    )
    out.set_output("discussion-url", result.discussion_url or "")
    verb = "Created" if result.created else "Updated" if result.changed else "Left unchanged"
    rows = [
        ["Repository", repo_name],
        ["Action", verb.lower()],
        ["Draft", _yes(result.draft)],
        ["Pre-release", _yes(result.prerelease)],
        ["Latest", f"{_yes(result.make_latest)} ({result.latest_reason})"],
        ["Notes from", source + (" + GitHub's generated notes" if generate_notes else "")],
    ]
    if result.discussion_url:
        rows.append(["Discussion", result.discussion_url])
    summary = f"### GitHub Release {tag}\n\n" + markdown_table(
        ["Release", f"[{result.name}]({result.html_url})"], rows
    )
    if result.assets:
        summary += "\n" + markdown_table(
            ["Asset", "Size", "SHA-256", "This run"],
            [
                [f"[{a.name}]({a.url})", str(a.size), f"`{a.sha256[:16]}…`", a.action]
                for a in result.assets
            ],
        )
    out.summary(summary + "\n")
    if as_json:
        state.emit_json(result.to_dict())
        return
    kinds = [k for k, on in (("draft", result.draft), ("pre-release", result.prerelease)) if on]
    latest_text = "latest" if result.make_latest else f"not latest: {result.latest_reason}"
    nothing = "" if result.changed else "; nothing changed"
    state.say(
        f"{verb} release {tag} in {repo_name} ({', '.join([*kinds, latest_text])}{nothing}): "
        f"{result.html_url}"
    )
    for a in result.assets:
        state.say(f"  {a.action:<9} {a.name} ({a.size} bytes; {a.reason})")


def _assets(state: Session, patterns: tuple[str, ...], fail_on_unmatched: bool) -> list[LocalAsset]:
    """The files of ``--files``, checked before anything is written to GitHub."""
    from release_actions.core.assets import resolve_files, split_patterns

    globs = split_patterns(patterns)
    if not globs:
        return []
    cwd = Path.cwd()
    workspace = Path(state.env.get("GITHUB_WORKSPACE", "").strip() or cwd)
    found, unmatched = resolve_files(
        globs, cwd=cwd, workspace=workspace, fail_on_unmatched=fail_on_unmatched
    )
    for pattern in unmatched:
        state.runtime.annotate("warning", f"`files` pattern `{pattern}` matched no file.")
    return found


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
    state: Session,
    repo_name: str,
    tag: str,
    body: str,
    source: str,
    choice: Choice,
    as_json: bool,
    uploads: list[LocalAsset],
) -> None:
    """Say what publish would do; with a token it reads the releases, and it never writes."""
    from release_actions.integrations import github as ghm

    lines = body.count("\n") + 1 if body else 0
    files = [{"name": a.name, "path": a.shown, "size": a.size, "sha256": a.sha256} for a in uploads]
    for a in uploads:
        state.say(f"Would attach {a.name} ({a.size} bytes, sha256 {a.sha256[:16]}…) from {a.shown}")
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
            "assets": files,
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
            {
                "dry_run": True,
                **plan.to_dict(),
                "body_lines": lines,
                "body_source": source,
                "assets": files,
            }
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
