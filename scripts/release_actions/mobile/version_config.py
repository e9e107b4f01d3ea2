"""Forced and recommended app updates (source §8.4): the version config, its check and its bump."""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from release_actions.core.versions import Version
from release_actions.core.yamlpos import MAX_YAML_BYTES, Loc, Located, did_you_mean, load_yaml
from release_actions.errors import InvalidVersionError, PolicyError, PolicyIssue
from release_actions.mobile.base import Platform

KEYS = ("minimumVersion", "recommendedVersion", "forceUpdate", "updateMessage", "storeUrls")
"""The keys of the source's `VersionConfig`, in its order; every one is required."""
STORE_KEYS = ("ios", "android")
_STORE_HOSTS = {"ios": "apps.apple.com", "android": "play.google.com"}
VERSION_KEYS = ("minimumVersion", "recommendedVersion")

Format = Literal["json", "yaml"]


class VersionConfigError(PolicyError):
    """Raised when a version config file is unreadable, not JSON or YAML, or does not validate."""

    title = "Invalid version config"


@dataclass(frozen=True)
class VersionCheck:
    """What the source's `/api/v1/app/version-check` answers one client."""

    force_update: bool
    recommended_update: bool
    message: str | None
    store_url: str
    minimum_version: str
    recommended_version: str

    def to_json(self) -> dict[str, Any]:
        """The endpoint's body: its six fields, its names, its order."""
        return {
            "forceUpdate": self.force_update,
            "recommendedUpdate": self.recommended_update,
            "message": self.message,
            "storeUrl": self.store_url,
            "minimumVersion": self.minimum_version,
            "recommendedVersion": self.recommended_version,
        }


@dataclass(frozen=True)
class VersionConfig:
    """A validated version config file."""

    path: str
    format: Format
    minimum_version: Version
    recommended_version: Version
    force_update: bool
    update_message: str
    store_urls: dict[str, str]
    """`ios` and `android` to their store page."""

    def check(self, client: Version, platform: Platform | str) -> VersionCheck:
        """The source endpoint's answer, with SemVer 2.0.0 precedence for its `compareVersions`.

        As in the source: `forceUpdate` needs both a client below `minimumVersion` and the
        config's `forceUpdate` switch (off, a client below the minimum is only recommended to
        update, since minimum <= recommended); `message` is `updateMessage` whenever the
        client is below the minimum, switch or not, and null otherwise. Unlike the source,
        the platform is `ios` or `android` only: the source sent every other value,
        a missing header included, to the Play Store.
        """
        platform = Platform(platform)
        below_minimum = client < self.minimum_version
        return VersionCheck(
            force_update=below_minimum and self.force_update,
            recommended_update=client < self.recommended_version,
            message=self.update_message if below_minimum else None,
            store_url=self.store_urls[platform.value],
            minimum_version=str(self.minimum_version),
            recommended_version=str(self.recommended_version),
        )


def parse_client_version(text: str, option: str = "--version") -> Version:
    """A client's version (`X-App-Version`); the source compared whatever the header held."""
    try:
        return Version.parse(text)
    except InvalidVersionError as exc:
        raise InvalidVersionError(f"`{option}`: {exc.message}", hint=exc.hint) from None


# -- reading ----------------------------------------------------------------------------


@dataclass
class Source:
    """A config file's text and where each value in it is."""

    path: str
    format: Format
    text: str
    """The decoded text, a byte-order mark included, so a rewrite keeps it."""
    located: Located
    value_offsets: dict[Loc, int]
    """For JSON: where each value starts in ``text``. Empty for YAML, which ruamel locates."""


def format_of(path: Path, text: str) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yml", ".yaml"):
        return "yaml"
    return "json" if text.lstrip("\ufeff \t\r\n").startswith("{") else "yaml"


def read_source(path: Path) -> Source:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise VersionConfigError(
            f"Cannot read {path}: {exc.strerror}.",
            hint="Pass --config PATH: a JSON or YAML file with the keys "
            + ", ".join(f"`{k}`" for k in KEYS)
            + " (source section 8.4).",
            file=str(path),
        ) from exc
    if len(raw) > MAX_YAML_BYTES:
        raise VersionConfigError(
            f"{path} is larger than 1 MiB; a version config is a few hundred bytes.",
            file=str(path),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise VersionConfigError(
            f"{path} is not UTF-8 text",
            [PolicyIssue(str(path), line, "(document)", f"byte {exc.start} cannot be decoded")],
        ) from exc
    return parse_source(text, str(path), format_of(path, text))


def parse_source(text: str, path: str, fmt: Format) -> Source:
    if fmt == "json":
        located, offsets = _load_json(text, path)
        return Source(path, fmt, text, located, offsets)
    try:
        located = load_yaml(text.removeprefix("\ufeff"), path)
    except PolicyError as exc:
        raise VersionConfigError(exc.message, exc.issues) from exc
    return Source(path, fmt, text, located, {})


class _Lines:
    def __init__(self, text: str) -> None:
        self.starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)


def _load_json(text: str, path: str) -> tuple[Located, dict[Loc, int]]:
    """JSON with the line of every key, refusing duplicate keys (json.loads keeps the last)."""
    body = text.removeprefix("\ufeff")
    start = len(text) - len(body)
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        raise VersionConfigError(
            f"{path} is not valid JSON",
            [PolicyIssue(path, exc.lineno, "(document)", f"{exc.msg} (column {exc.colno})")],
        ) from exc
    except RecursionError:
        raise VersionConfigError(
            f"{path} is not valid JSON",
            [PolicyIssue(path, None, "(document)", "nested too deeply")],
        ) from None
    lines = _Lines(text)
    located = Located(None, path, {(): 1})
    offsets: dict[Loc, int] = {}
    decoder = json.JSONDecoder()
    issues: list[PolicyIssue] = []

    def ws(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def value(i: int, loc: Loc) -> tuple[Any, int]:
        i = ws(i)
        offsets[loc] = i
        if text[i] == "{":
            out: dict[str, Any] = {}
            i = ws(i + 1)
            if text[i] == "}":
                return out, i + 1
            while True:
                i = ws(i)
                key, end = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]
                child = (*loc, key)
                line = lines.line(i)
                if key in out:
                    issues.append(
                        PolicyIssue(
                            path,
                            line,
                            ".".join(str(p) for p in child),
                            f"appears twice (first at line {located.lines[child]}); "
                            "JSON readers keep one of the two silently",
                        )
                    )
                else:
                    located.lines[child] = line
                i = ws(ws(end) + 1)  # past the colon
                out[key], i = value(i, child)
                i = ws(i)
                if text[i] == ",":
                    i += 1
                    continue
                return out, i + 1
        if text[i] == "[":
            items: list[Any] = []
            i = ws(i + 1)
            if text[i] == "]":
                return items, i + 1
            while True:
                child = (*loc, len(items))
                located.lines[child] = lines.line(ws(i))
                item, i = value(i, child)
                items.append(item)
                i = ws(i)
                if text[i] == ",":
                    i += 1
                    continue
                return items, i + 1
        return decoder.raw_decode(text, i)

    try:
        located.data, _ = value(start, ())
    except RecursionError:
        raise VersionConfigError(
            f"{path} is nested too deeply for a version config",
            [PolicyIssue(path, None, "(document)", "nested too deeply")],
        ) from None
    if issues:
        raise VersionConfigError(f"{path} has duplicate keys", issues)
    return located, offsets


# -- validating -------------------------------------------------------------------------


def validate(source: Source, *, latest: Version | None = None) -> VersionConfig:
    """The config, or one error listing every problem with its file, line and key."""
    located = source.located
    path = source.path
    issues: list[PolicyIssue] = []

    def issue(loc: Loc, message: str) -> None:
        key = ".".join(str(p) for p in loc) or "(document)"
        issues.append(PolicyIssue(path, located.line_of(loc), key, message))

    data = located.data
    if not isinstance(data, dict):
        issue((), f"must be a mapping with the keys {_listed(KEYS)} (got {_kind(data)})")
        raise VersionConfigError(f"{path} is not a version config", issues)
    _keys(data, (), KEYS, issue)

    versions: dict[str, Version] = {}
    for key in VERSION_KEYS:
        if key in data:
            v = _version(data[key], (key,), issue)
            if v is not None:
                versions[key] = v
    minimum, recommended = versions.get("minimumVersion"), versions.get("recommendedVersion")
    if minimum is not None and recommended is not None and recommended < minimum:
        issue(
            ("recommendedVersion",),
            f"`{recommended}` is lower than `minimumVersion` `{minimum}`: every client below the "
            "minimum must also be below the recommended version; raise it to at least the minimum",
        )
    if latest is not None:
        for key, v in versions.items():
            if v > latest:
                issue(
                    (key,),
                    f"`{v}` is newer than the newest released version `{latest}`: no client could "
                    "update to it; use a version that is in the stores",
                )

    force = data.get("forceUpdate")
    if "forceUpdate" in data and not isinstance(force, bool):
        issue(("forceUpdate",), f"must be true or false (got {_shown(force)})")
    message = data.get("updateMessage")
    if "updateMessage" in data and (not isinstance(message, str) or not message.strip()):
        issue(
            ("updateMessage",),
            f"must be the text shown to a user who must update (got {_shown(message)}); "
            "the source's app shows it as the force-update screen's message",
        )

    urls: dict[str, str] = {}
    stores = data.get("storeUrls")
    if "storeUrls" in data:
        if not isinstance(stores, dict):
            issue(
                ("storeUrls",),
                f"must be a mapping with `ios` and `android` (got {_kind(stores)})",
            )
        else:
            _keys(stores, ("storeUrls",), STORE_KEYS, issue)
            for platform in STORE_KEYS:
                if platform in stores:
                    url = _store_url(stores[platform], platform, ("storeUrls", platform), issue)
                    if url is not None:
                        urls[platform] = url

    if issues:
        issues.sort(key=lambda i: (i.line or 0, i.key))
        raise VersionConfigError(
            f"{path} is not a valid version config ({len(issues)} problem(s))", issues
        )
    assert minimum is not None
    assert recommended is not None
    return VersionConfig(
        path=path,
        format=source.format,
        minimum_version=minimum,
        recommended_version=recommended,
        force_update=bool(force),
        update_message=str(message),
        store_urls=urls,
    )


def load(path: Path, *, latest: Version | None = None) -> VersionConfig:
    return validate(read_source(path), latest=latest)


def _keys(data: dict[str, Any], loc: Loc, allowed: tuple[str, ...], issue: Any) -> None:
    for key in data:
        if key not in allowed:
            near = did_you_mean(key, allowed)
            issue(
                (*loc, key),
                f"unknown key: {near}" if near else f"unknown key: the keys are {_listed(allowed)}",
            )
    for key in allowed:
        if key not in data:
            issue(loc, f"`{key}` is missing; the keys are {_listed(allowed)}, all required")


def _version(value: Any, loc: Loc, issue: Any) -> Version | None:
    if not isinstance(value, str):
        issue(loc, f'must be a version in quotes, such as "1.5.0" (got {_shown(value)})')
        return None
    if value[:1] in ("v", "V"):
        issue(
            loc,
            f"`{value}`: write the version without the `v` (`{value[1:]}`); the endpoint "
            "returns it to apps as it is written",
        )
        return None
    try:
        return Version.parse(value)
    except InvalidVersionError as exc:
        issue(loc, exc.message)
        return None


def _store_url(value: Any, platform: str, loc: Loc, issue: Any) -> str | None:
    if not isinstance(value, str):
        issue(loc, f"must be an https:// URL (got {_shown(value)})")
        return None
    parts = urlsplit(value) if value.isprintable() and " " not in value else None
    if parts is None or parts.scheme != "https" or not parts.hostname:
        issue(
            loc,
            f"must be an https:// URL with a host, such as "
            f"`https://{_STORE_HOSTS[platform]}/...` (got {_shown(value)})",
        )
        return None
    other = next(p for p in STORE_KEYS if p != platform)
    if parts.hostname == _STORE_HOSTS[other]:
        issue(
            loc,
            f"is the {other} store's URL ({parts.hostname}): are `ios` and `android` swapped?",
        )
        return None
    return value


def _listed(keys: tuple[str, ...]) -> str:
    return ", ".join(f"`{k}`" for k in keys)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false"}.get(
        type(value), f"{type(value).__name__} {value!r}"
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- bumping ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bump:
    """A bump of the config's versions: the new text, and what changed."""

    path: str
    before: dict[str, str]
    after: dict[str, str]
    text: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def bump(
    source: Source,
    *,
    recommended: Version | None = None,
    minimum: Version | None = None,
    latest: Version | None = None,
) -> Bump:
    """Raise `recommendedVersion` (and/or `minimumVersion`) in the file's own text.

    Only the value changes: key order, indentation, quoting, comments and line endings stay
    as they are, byte for byte. A version is never lowered here: lowering is a decision to
    make by hand. The new text is validated whole before it is returned.
    """
    config = validate(source, latest=latest)
    wanted = {"minimumVersion": minimum, "recommendedVersion": recommended}
    current = {
        "minimumVersion": config.minimum_version,
        "recommendedVersion": config.recommended_version,
    }
    text = source.text
    for key in VERSION_KEYS:
        new = wanted[key]
        if new is None or (new == current[key] and str(new) == str(current[key])):
            continue
        if new < current[key]:
            raise VersionConfigError(
                f"`{key}` is `{current[key]}`; `{new}` would lower it.",
                hint="Lowering a version that apps are told to reach is done by hand, "
                "with a review; this command only raises it.",
                file=source.path,
                line=source.located.line_of((key,)),
            )
        text = _replace(text, source, key, str(current[key]), str(new))
    new_source = parse_source(text, source.path, source.format)
    expected = dict(source.located.data)
    expected.update({k: str(v) for k, v in wanted.items() if v is not None})
    if new_source.located.data != expected:
        raise VersionConfigError(
            f"The rewritten {source.path} would not read back as intended; nothing was written.",
            hint="Change the version by hand; this command rewrites a plain or quoted scalar.",
            file=source.path,
        )
    validate(new_source, latest=latest)
    before = {k: str(current[k]) for k in VERSION_KEYS}
    after = {k: str(wanted[k] or current[k]) for k in VERSION_KEYS}
    return Bump(source.path, before, after, text)


def _replace(text: str, source: Source, key: str, old: str, new: str) -> str:
    offset = _value_offset(source, key)
    for quote in ('"', "'", ""):
        token = f"{quote}{old}{quote}"
        if text.startswith(token, offset):
            return text[:offset] + f"{quote}{new}{quote}" + text[offset + len(token) :]
    raise VersionConfigError(
        f"Cannot find `{key}`'s value `{old}` where the parser put it; nothing was written.",
        hint="Change the version by hand.",
        file=source.path,
        line=source.located.line_of((key,)),
    )


def _value_offset(source: Source, key: str) -> int:
    if source.format == "json":
        return source.value_offsets[(key,)]
    from ruamel.yaml import YAML

    doc = YAML(typ="rt").load(source.text.removeprefix("\ufeff"))
    line, col = doc.lc.value(key)
    bom = len(source.text) - len(source.text.removeprefix("\ufeff"))
    starts = _Lines(source.text).starts
    return int(starts[line] + col + (bom if line == 0 else 0))
