"""Keep a Changelog 1.1.0 and the release-please and python-semantic-release headings: parse, lint, extract, release."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from release_actions.core.versions import Version
from release_actions.errors import ChangelogError, InvalidVersionError

CHANGE_TYPES = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
UNRELEASED = "Unreleased"

_FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^ {0,3}(?P<hashes>#{1,6})(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
Style = Literal["keep-a-changelog", "release-please", "dash", "parenthesised"]
"""How a release heading is written: `## [1.2.3] - DATE`, `## [1.2.3](URL) (DATE)`,
`## 1.2.3 - DATE`, `## 1.2.3 (DATE)` (python-semantic-release, and release-please when
there is no previous tag to compare with)."""

_BRACKETED = re.compile(
    r"^\[(?P<label>[^\]\s]+)\]"
    r"(?:\((?P<url>[^)\s]+)\)(?:\s+\((?P<pdate>[^)\s]+)\))?"
    r"|(?:\s+[-–—]\s+(?P<date>\S+))?(?P<yanked>\s+\[YANKED\])?)\s*$",
    re.IGNORECASE,
)
_PLAIN = re.compile(
    r"^(?P<label>[^\[\]()\s]+)"
    r"(?:\s+\((?P<pdate>[^)\s]+)\)|\s+[-–—]\s+(?P<date>\S+)(?P<yanked>\s+\[YANKED\])?)?\s*$",
    re.IGNORECASE,
)
_VERSIONISH = re.compile(r"(?<![\w.])[vV]?[0-9]+\.[0-9]+(?:\.[0-9]+)?")
# release-please writes `## 1.0.0 (DATE)` for a first release and links every later one,
# so its two headings are one style for the check that a file does not mix styles.
_FAMILY: dict[Style, str] = {
    "keep-a-changelog": "keep-a-changelog",
    "release-please": "parenthesised",
    "parenthesised": "parenthesised",
    "dash": "dash",
}
_STYLE_NAMES: dict[Style, str] = {
    "keep-a-changelog": "Keep a Changelog",
    "release-please": "release-please",
    "dash": "a plain version with a date after a dash",
    "parenthesised": "python-semantic-release / release-please without a link",
}
_LINK_DEF = re.compile(r"^ {0,3}\[(?P<label>[^\]]+)\]:\s*(?P<url>\S+)\s*$")
_DATE = re.compile(r"^(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})$")


@dataclass
class Subsection:
    name: str
    line: int
    items: int


@dataclass
class Section:
    """One `## [label] - date` section; offsets index the decoded text."""

    label: str
    line: int
    heading: str
    date: str | None
    yanked: bool
    version: Version | None
    body_start: int
    body_end: int
    subsections: list[Subsection] = field(default_factory=list)
    style: Style | None = None
    url: str | None = None
    # A heading that names a version but is in none of the styles above.
    unrecognised: bool = False

    @property
    def is_unreleased(self) -> bool:
        return self.label.lower() == UNRELEASED.lower()


@dataclass
class Changelog:
    text: str
    path: str
    newline: str
    sections: list[Section]
    links: dict[str, tuple[int, str]]
    title_line: int | None
    # Where the trailing block of link definitions starts, so the last section's body
    # does not swallow it.
    links_start: int

    def find(self, version: Version | str) -> Section | None:
        if isinstance(version, str) and version.lower() == UNRELEASED.lower():
            return next((s for s in self.sections if s.is_unreleased), None)
        wanted = version if isinstance(version, Version) else Version.parse(version)
        for s in self.sections:
            # Build metadata is part of the identity of a section heading, though not of
            # precedence: `1.0.0+a` and `1.0.0+b` are different entries.
            if s.version is not None and s.version == wanted and s.version.build == wanted.build:
                return s
        for s in self.sections:
            if s.version is not None and s.version == wanted and not s.version.build:
                return s
        return None

    def body(self, section: Section) -> str:
        """The section's text exactly as in the file, without the blank lines around it."""
        raw = self.text[section.body_start : section.body_end]
        lines = raw.splitlines(keepends=True)
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if lines:
            # The last line's own line ending belongs to the file, not the body.
            lines[-1] = lines[-1].rstrip("\r\n")
        return "".join(lines)

    @property
    def released(self) -> list[Section]:
        return [s for s in self.sections if not s.is_unreleased]


def decode(raw: bytes, path: str) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    nul = raw.find(b"\x00")
    if nul != -1:
        raise ChangelogError(
            f"{path} contains a NUL byte; a CHANGELOG must be text.",
            file=path,
            line=raw[:nul].count(b"\n") + 1,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChangelogError(
            f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded).",
            file=path,
            line=raw[: exc.start].count(b"\n") + 1,
        ) from exc


MAX_CHANGELOG_BYTES = 4 * 1024 * 1024
"""A CHANGELOG larger than this is refused: twenty years of weekly releases fit in 1 MiB,
and a file from the tag must not keep the release job parsing."""


def read(path: Path) -> Changelog:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CHANGELOG_BYTES + 1)
        if len(raw) > MAX_CHANGELOG_BYTES:
            raise ChangelogError(
                f"{path} is {path.stat().st_size:,} bytes; the limit is 4 MiB for a CHANGELOG.",
                hint="Move old sections to a CHANGELOG archive file.",
                file=str(path),
            )
    except FileNotFoundError:
        raise ChangelogError(
            f"{path} does not exist.",
            hint="Create it in Keep a Changelog form (https://keepachangelog.com/en/1.1.0/), "
            "or pass --file PATH.",
            file=str(path),
        ) from None
    except OSError as exc:
        raise ChangelogError(f"Cannot read {path}: {exc.strerror}.", file=str(path)) from exc
    return parse(decode(raw, str(path)), str(path))


def parse(text: str, path: str = "CHANGELOG.md") -> Changelog:
    """Parse without judging: lint() says what is wrong; only NUL bytes are refused here."""
    if "\x00" in text:
        raise ChangelogError(
            f"{path} contains a NUL byte; a CHANGELOG must be text.",
            file=path,
            line=text[: text.index("\x00")].count("\n") + 1,
        )
    newline = "\r\n" if "\r\n" in text else "\n"
    sections: list[Section] = []
    links: dict[str, tuple[int, str]] = {}
    title_line: int | None = None
    fence: str | None = None
    offset = 0
    link_block_start: int | None = None
    current: Section | None = None
    subsection: Subsection | None = None
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):
        start = offset
        offset += len(line)
        content = line.rstrip("\r\n")
        if fence is not None:
            stripped = content.strip()
            if (
                stripped.startswith(fence[0])
                and set(stripped) == {fence[0]}
                and len(stripped) >= len(fence)
                and len(content) - len(content.lstrip(" ")) <= 3
            ):
                fence = None
            continue
        m = _FENCE_OPEN.match(content)
        if m and not (m["fence"][0] == "`" and "`" in m["info"]):
            fence = m["fence"]
            link_block_start = None
            continue
        link = _LINK_DEF.match(content)
        if link:
            links.setdefault(link["label"].lower(), (lineno, link["url"]))
            if link_block_start is None:
                link_block_start = start
            continue
        if content.strip() and link_block_start is not None:
            link_block_start = None
        h = _HEADING.match(content)
        if h:
            level = len(h["hashes"])
            heading_text = (h["text"] or "").strip()
            if level <= 2 and current is not None:
                current.body_end = start
                current = None
                subsection = None
            if level == 1:
                if title_line is None:
                    title_line = lineno
                continue
            if level == 2:
                current = _section(heading_text, lineno, offset, len(text))
                sections.append(current)
                continue
            if level == 3 and current is not None:
                subsection = Subsection(heading_text, lineno, 0)
                current.subsections.append(subsection)
                continue
        if subsection is not None and re.match(r"^\s{0,3}[-*+]\s+\S", content):
            subsection.items += 1
    links_start = link_block_start if link_block_start is not None else len(text)
    if sections and sections[-1].body_end > links_start >= sections[-1].body_start:
        sections[-1].body_end = links_start
    return Changelog(text, path, newline, sections, links, title_line, links_start)


def _section(text: str, line: int, body_start: int, end: int) -> Section:
    bracketed = _BRACKETED.match(text)
    m = bracketed or _PLAIN.match(text)
    label = m["label"] if m else text
    pdate = m["pdate"] if m else None
    day = pdate or (m["date"] if m else None)
    style: Style | None = None
    if m is None:
        pass
    elif bracketed and m["url"]:
        style = "release-please"
    elif bracketed:
        style = "keep-a-changelog"
    elif pdate:
        style = "parenthesised"
    elif m["date"]:
        style = "dash"
    version: Version | None = None
    unreleased = label.lower() == UNRELEASED.lower()
    if m and not unreleased:
        try:
            version = Version.parse(label)
        except InvalidVersionError:
            version = None
    return Section(
        label=label,
        line=line,
        heading=text,
        date=day,
        yanked=bool(m and m["yanked"]),
        version=version,
        body_start=body_start,
        body_end=end,
        style=None if unreleased else style,
        url=bracketed["url"] if bracketed else None,
        unrecognised=m is None and bool(_VERSIONISH.search(text)),
    )


def style_of(log: Changelog) -> Style:
    """The style of the newest release heading; Keep a Changelog when there is none."""
    return next((s.style for s in log.released if s.style is not None), "keep-a-changelog")


def heading(
    style: Style,
    version: Version | str,
    day: str,
    *,
    v: bool = False,
    url: str | None = None,
) -> str:
    """A release heading in ``style``; release-please without a URL is its bare form."""
    shown = f"v{version}" if v else str(version)
    if style == "keep-a-changelog":
        return f"## [{shown}] - {day}"
    if style == "dash":
        return f"## {shown} - {day}"
    if style == "release-please" and url:
        return f"## [{shown}]({url}) ({day})"
    return f"## {shown} ({day})"


def accepted_styles(version: Version | str = "1.2.3") -> str:
    """The heading styles this module reads, for error messages."""
    return (
        f"`## [{version}] - YYYY-MM-DD` (Keep a Changelog), "
        f"`## [{version}](https://github.com/OWNER/REPO/compare/...) (YYYY-MM-DD)` (release-please), "
        f"`## {version} - YYYY-MM-DD`, or `## {version} (YYYY-MM-DD)` / `## v{version} (YYYY-MM-DD)` "
        "(python-semantic-release, release-please without a link)"
    )


def _unrecognised(log: Changelog, version: Version) -> Section | None:
    """A heading in none of the styles that names ``version``, so the error can point at it."""
    for s in log.sections:
        if s.unrecognised:
            for token in _VERSIONISH.finditer(s.heading):
                rest = s.heading[token.start() :].split()[0].strip("[]():,")
                try:
                    if Version.parse(rest) == version:
                        return s
                except InvalidVersionError:
                    continue
    return None


def require(log: Changelog, version: Version) -> Section:
    """``version``'s section, or an error naming the file, and the line of a heading in no style."""
    section = log.find(version)
    if section is not None:
        return section
    odd = _unrecognised(log, version)
    if odd is not None:
        raise ChangelogError(
            f"{log.path}:{odd.line}: `## {odd.heading}` is not in a heading style this tool reads.",
            hint=f"Write it as one of {accepted_styles(version)}.",
            file=log.path,
            line=odd.line,
        )
    today = f"{date.today():%Y-%m-%d}"
    raise ChangelogError(
        f"{log.path} has no section for {version}.",
        hint=f"Add `{heading(style_of(log), version, today)}` (or run "
        f"`release-actions changelog release {version}` to turn [Unreleased] into it).",
        file=log.path,
    )


@dataclass(frozen=True)
class Finding:
    severity: Literal["error", "warning"]
    line: int
    message: str
    rule: str


def lint(log: Changelog, *, today: date | None = None) -> list[Finding]:
    """Everything Keep a Changelog 1.1.0 asks of the file, each with its line.

    A file in one of the other heading styles is held to the same order, dates and
    entries, but not to Keep a Changelog's link definitions or change types.
    """
    today = today or date.today()
    out: list[Finding] = []

    def add(sev: Literal["error", "warning"], line: int, rule: str, msg: str) -> None:
        out.append(Finding(sev, line, msg, rule))

    if log.title_line is None:
        add("warning", 1, "title", "No `# Changelog` title.")
    if not log.sections:
        add("error", 1, "no-sections", "No `## [version] - YYYY-MM-DD` sections.")
    file_style = style_of(log)
    seen: dict[str, int] = {}
    previous: Section | None = None
    for i, s in enumerate(log.sections):
        if s.is_unreleased:
            if i != 0:
                add(
                    "error", s.line, "unreleased-first", "`[Unreleased]` must be the first section."
                )
            if s.date:
                add("error", s.line, "unreleased-date", "`[Unreleased]` must not have a date.")
        elif s.unrecognised:
            add(
                "error",
                s.line,
                "heading",
                f"`## {s.heading}` is not in a heading style this tool reads: {accepted_styles()}.",
            )
        else:
            style = s.style or file_style
            if s.style is not None and _FAMILY[s.style] != _FAMILY[file_style]:
                add(
                    "warning",
                    s.line,
                    "mixed-styles",
                    f"`## {s.heading}` is in the {_STYLE_NAMES[s.style]} style, but the newest "
                    f"release uses {_STYLE_NAMES[file_style]} "
                    f"(`{heading(file_style, '1.2.3', 'YYYY-MM-DD')}`): use one style.",
                )
            if s.version is None:
                add(
                    "error",
                    s.line,
                    "semver",
                    f"`{s.label}` is not a SemVer 2.0.0 version (MAJOR.MINOR.PATCH[-PRE][+BUILD]).",
                )
            if s.date is None:
                add(
                    "error",
                    s.line,
                    "date",
                    f"`{s.label}` has no release date: `{heading(style, s.label, 'YYYY-MM-DD')}`.",
                )
            else:
                d = _parse_date(s.date)
                if d is None:
                    add("error", s.line, "date", f"`{s.date}` is not a date in YYYY-MM-DD form.")
                elif d > today:
                    add("warning", s.line, "date-future", f"`{s.date}` is in the future.")
            key = s.label.lower()
            if key in seen:
                add(
                    "error",
                    s.line,
                    "duplicate",
                    f"`{s.label}` appears twice (first at line {seen[key]}).",
                )
            else:
                seen[key] = s.line
            if previous is not None and previous.version and s.version:
                if not s.version < previous.version:
                    add(
                        "error",
                        s.line,
                        "order",
                        f"`{s.label}` comes after `{previous.label}` but is not lower: newest first.",
                    )
                pd, sd = _parse_date(previous.date or ""), _parse_date(s.date or "")
                if pd and sd and sd > pd:
                    add(
                        "error",
                        s.line,
                        "date-order",
                        f"`{s.label}` ({s.date}) is dated after the newer `{previous.label}` ({previous.date}).",
                    )
            if s.version is not None:
                previous = s
            if not log.body(s).strip():
                add("error", s.line, "empty-section", f"`{s.label}` has no entries.")
            if style == "keep-a-changelog" and key not in log.links:
                add(
                    "warning",
                    s.line,
                    "link",
                    f"`[{s.label}]` has no link definition at the end of the file.",
                )
        for sub in s.subsections:
            if (s.style or file_style) == "keep-a-changelog" and sub.name not in CHANGE_TYPES:
                add(
                    "warning",
                    sub.line,
                    "change-type",
                    f"`### {sub.name}` is not a Keep a Changelog type ({', '.join(CHANGE_TYPES)}).",
                )
            if sub.items == 0:
                add(
                    "error",
                    sub.line,
                    "empty-subsection",
                    f"`### {sub.name}` under `{s.label}` has no entries.",
                )
        names = [sub.name for sub in s.subsections]
        for name in set(names):
            if names.count(name) > 1:
                dup = [sub for sub in s.subsections if sub.name == name][1]
                add(
                    "error",
                    dup.line,
                    "duplicate-subsection",
                    f"`### {name}` appears twice under `{s.label}`.",
                )
    return sorted(out, key=lambda f: (f.line, f.rule))


def _parse_date(text: str) -> date | None:
    m = _DATE.match(text)
    if not m:
        return None
    try:
        return date(int(m["y"]), int(m["m"]), int(m["d"]))
    except ValueError:
        return None


def require_released(log: Changelog, version: Version) -> Section:
    """The dated section of ``version``, or an error that says how to add it."""
    section = require(log, version)
    if section.date is None or _parse_date(section.date) is None:
        expected = heading(section.style or style_of(log), section.label, "YYYY-MM-DD")
        raise ChangelogError(
            f"The section of {version} in {log.path} has no valid date: expected `{expected}`.",
            file=log.path,
            line=section.line,
        )
    if not log.body(section).strip():
        raise ChangelogError(
            f"The section of {version} in {log.path} is empty.", file=log.path, line=section.line
        )
    return section


def release(
    log: Changelog, version: Version, *, on: date, repo_url: str | None, tag_prefix: str = "v"
) -> str:
    """The file's new text with [Unreleased] turned into a dated ``version`` section."""
    unreleased = log.find(UNRELEASED)
    if unreleased is None:
        raise ChangelogError(
            f"{log.path} has no `## [Unreleased]` section to release.", file=log.path
        )
    if not log.body(unreleased).strip():
        raise ChangelogError(
            f"`[Unreleased]` in {log.path} is empty: there is nothing to release.",
            file=log.path,
            line=unreleased.line,
        )
    if log.find(version) is not None:
        raise ChangelogError(f"{log.path} already has a section for {version}.", file=log.path)
    latest = max((s.version for s in log.released if s.version), default=None)
    if latest is not None and not version > latest:
        raise ChangelogError(
            f"{version} is not higher than the latest released version {latest}.", file=log.path
        )
    nl = log.newline
    text = log.text
    style = style_of(log)
    newest = next((s for s in log.released if s.style is not None), None)
    v = newest is not None and newest.label[:1] in ("v", "V")
    shown = f"v{version}" if v else str(version)
    heading_start = text.rfind("\n", 0, unreleased.body_start - 1) + 1
    # `## [Unreleased]` or `## Unreleased`: the heading stays as the file writes it.
    unreleased_heading = text[heading_start : unreleased.body_start].rstrip("\r\n")
    # The compare base: the option, else the [unreleased] link, else a release-please heading.
    base = repo_url.rstrip("/") if repo_url else None
    old = log.links.get(UNRELEASED.lower())
    known = [old[1]] if old is not None else []
    known += [s.url for s in log.released if s.url]
    for url in known if base is None else []:
        m = re.match(r"^(?P<base>.+)/compare/.+$", url)
        if m:
            base = m["base"]
            break
    tag = f"{tag_prefix}{version}"
    compare = f"{base}/compare/{tag_prefix}{latest}...{tag}" if base and latest else None
    new_heading = heading(style, version, f"{on:%Y-%m-%d}", v=v, url=compare)
    text = (
        text[:heading_start]
        + f"{unreleased_heading}{nl}{nl}{new_heading}{nl}"
        + text[unreleased.body_start :]
    )
    # Only Keep a Changelog keeps its links as definitions at the bottom of the file.
    if base is None or style != "keep-a-changelog":
        return text
    new_unreleased = f"[{UNRELEASED.lower()}]: {base}/compare/{tag}...HEAD"
    new_link = (
        f"[{shown}]: {compare}" if compare is not None else f"[{shown}]: {base}/releases/tag/{tag}"
    )
    lines = text.splitlines(keepends=True)
    if old is not None:
        # Line numbers moved by the two heading lines inserted above the definition.
        idx = old[0] - 1 + 2
        ending = nl if lines[idx].endswith(("\n", "\r")) else ""
        lines[idx] = new_unreleased + nl + new_link + ending
        return "".join(lines)
    if text and not text.endswith(("\n", "\r")):
        text += nl
    return text + nl + new_unreleased + nl + new_link + nl


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` whole or not at all: a crash never leaves half a CHANGELOG."""
    fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
