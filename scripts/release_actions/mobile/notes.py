"""Store release notes from a CHANGELOG section, in the layout of the source's template (§10.1)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from release_actions.core import changelog as cl
from release_actions.core.versions import Version
from release_actions.errors import ReleaseActionsError

Store = Literal["play", "appstore"]
STORES: tuple[Store, ...] = ("play", "appstore")
LIMITS: dict[Store, int] = {"play": 500, "appstore": 4000}
"""Characters per language: Play's release notes ("recent changes") and App Store's
"What's New". Both count characters, not bytes: 1 per code point, so 1 per kanji."""
STORE_NAMES: dict[Store, str] = {"play": "Google Play", "appstore": "App Store"}

Category = Literal["features", "improvements", "fixes", "known_issues", "notices"]
CATEGORIES: tuple[Category, ...] = ("features", "improvements", "fixes", "known_issues", "notices")

# Keep a Changelog types first, then release-please / python-semantic-release, then the
# same words in Japanese (a CHANGELOG.ja.md) and the template's own headings. Deprecated and
# Removed are notices, not known issues: "removed the old export" is not a bug to be fixed.
CATEGORY_OF: dict[str, Category] = {
    "added": "features",
    "changed": "improvements",
    "fixed": "fixes",
    "security": "fixes",
    "deprecated": "notices",
    "removed": "notices",
    "features": "features",
    "feature": "features",
    "new features": "features",
    "performance improvements": "improvements",
    "performance": "improvements",
    "improvements": "improvements",
    "bug fixes": "fixes",
    "fixes": "fixes",
    "security fixes": "fixes",
    "known issues": "known_issues",
    "breaking changes": "notices",
    "breaking": "notices",
    "notices": "notices",
    "追加": "features",
    "新機能": "features",
    "変更": "improvements",
    "改善": "improvements",
    "修正": "fixes",
    "バグ修正": "fixes",
    "セキュリティ": "fixes",
    "既知の問題": "known_issues",
    "非推奨": "notices",
    "削除": "notices",
    "お知らせ": "notices",
}

Language = Literal["ja", "en"]


@dataclass(frozen=True)
class Locale:
    name: str
    language: Language
    play: str
    """Play's language code (`ja-JP`, `en-US`)."""
    appstore: str
    """App Store Connect's locale (`ja`, `en-US`)."""

    def store_code(self, store: Store) -> str:
        return self.play if store == "play" else self.appstore


LOCALES: dict[str, Locale] = {
    "ja": Locale("ja", "ja", "ja-JP", "ja"),
    "ja-JP": Locale("ja-JP", "ja", "ja-JP", "ja"),
    "en": Locale("en", "en", "en-US", "en-US"),
    "en-US": Locale("en-US", "en", "en-US", "en-US"),
    "en-GB": Locale("en-GB", "en", "en-GB", "en-GB"),
    "en-AU": Locale("en-AU", "en", "en-AU", "en-AU"),
    "en-CA": Locale("en-CA", "en", "en-CA", "en-CA"),
}

_HEADINGS: dict[Language, dict[str, str]] = {
    "ja": {
        "date": "リリース日",
        "features": "新機能",
        "improvements": "改善",
        "fixes": "バグ修正",
        "known_issues": "既知の問題",
        "notices": "お知らせ",
        "how_to_update": "アップデート方法",
        "feedback": "フィードバック",
    },
    "en": {
        "date": "Release date",
        "features": "New features",
        "improvements": "Improvements",
        "fixes": "Bug fixes",
        "known_issues": "Known issues",
        "notices": "Notices",
        "how_to_update": "How to update",
        "feedback": "Feedback",
    },
}
_HOW_TO_UPDATE: dict[Language, dict[Store, str]] = {
    "ja": {
        "play": "Google Play から最新版をダウンロードしてください。",
        "appstore": "App Store から最新版をダウンロードしてください。",
    },
    "en": {
        "play": "Download the latest version from Google Play.",
        "appstore": "Download the latest version from the App Store.",
    },
}
_FEEDBACK: dict[Language, str] = {
    "ja": "ご意見・ご要望は {contact} までお寄せください。",
    "en": "Send us your comments and requests at {contact}.",
}
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


class NotesError(ReleaseActionsError):
    """Raised when store release notes cannot be made: an unknown locale, or no room at all."""


def locale(name: str) -> Locale:
    try:
        return LOCALES[name]
    except KeyError:
        raise NotesError(
            f"No release-note headings for locale `{name}`.",
            hint="Use one of " + ", ".join(f"`{k}`" for k in LOCALES) + ".",
        ) from None


def heading(language: Language, key: str) -> str:
    text = _HEADINGS[language][key]
    return f"【{text}】" if language == "ja" else f"{text}:"


def release_date(language: Language, day: date) -> str:
    if language == "ja":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"


# -- the section's items ----------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One entry as the CHANGELOG writes it, marker and continuation lines included."""

    text: str
    line: int
    subsection: str | None


@dataclass
class Entries:
    by_category: dict[Category, list[Item]] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    """Subsections that no heading takes (Documentation, Chores): name -> items."""

    def flat(self) -> list[tuple[Category, Item]]:
        return [(c, i) for c in CATEGORIES for i in self.by_category.get(c, [])]


_ITEM = re.compile(r"^ {0,3}[-*+][ \t]+\S")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def category_of(name: str) -> Category | None:
    key = " ".join(re.sub(r"[^\w\s]", " ", name).lower().split())
    return CATEGORY_OF.get(key)


def items(log: cl.Changelog, section: cl.Section) -> list[Item]:
    """The section's entries, split at the subsections the parser found and at list markers.

    Text outside a list (a paragraph) is an entry of its own. Each entry's text is the file's,
    byte for byte, without the line ending of its last line.
    """
    text = log.text[section.body_start : section.body_end]
    first_line = section.line + 1
    heads = {s.line: s.name for s in section.subsections}
    out: list[tuple[int, str | None, list[str]]] = []
    subsection: str | None = None
    current: list[str] | None = None
    blank = False
    fence: str | None = None
    for n, line in enumerate(text.splitlines(keepends=True), start=first_line):
        content = line.rstrip("\r\n")
        if n in heads and fence is None:
            subsection, current, blank = heads[n], None, False
            continue
        opens = _FENCE.match(content)
        if fence is not None:
            # Inside a code block nothing starts an entry; the block ends at its fence.
            if current is not None:
                current.append(line)
            stripped = content.strip()
            if opens and stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            continue
        if not content.strip():
            blank = True
            if current is not None:
                current.append(line)
            continue
        starts = (
            _ITEM.match(content) is not None
            or current is None
            or (blank and not content.startswith(("  ", "\t")))
        )
        if starts:
            current = [line]
            out.append((n, subsection, current))
        elif current is not None:
            current.append(line)
        if opens:
            fence = opens.group(1)
        blank = False
    result = []
    for n, sub, lines in out:
        while lines and not lines[-1].strip():
            lines.pop()
        body = "".join(lines).rstrip("\r\n")
        if body.strip():
            result.append(Item(body, n, sub))
    return result


def entries(log: cl.Changelog, section: cl.Section) -> Entries:
    found = Entries()
    for item in items(log, section):
        # Entries before any subsection are changes without a type: improvements.
        cat = "improvements" if item.subsection is None else category_of(item.subsection)
        if cat is None:
            assert item.subsection is not None
            found.left_out[item.subsection] = found.left_out.get(item.subsection, 0) + 1
            continue
        found.by_category.setdefault(cat, []).append(item)
    return found


# -- the notes --------------------------------------------------------------------------


@dataclass(frozen=True)
class LocaleNotes:
    locale: Locale
    text: str
    items: int
    items_total: int
    left_out: tuple[Item, ...]
    warnings: tuple[str, ...]

    @property
    def characters(self) -> int:
        return len(self.text)


@dataclass(frozen=True)
class StoreNotes:
    version: str
    store: Store
    limit: int
    date: str
    notes: tuple[LocaleNotes, ...]

    @property
    def warnings(self) -> list[str]:
        return [w for n in self.notes for w in n.warnings]

    def payload(self) -> dict[str, Any]:
        """What the store's API takes: Play's `releaseNotes`, App Store's `whatsNew` per locale."""
        if self.store == "play":
            return {
                "releaseNotes": [{"language": n.locale.play, "text": n.text} for n in self.notes]
            }
        return {
            "localizations": [{"locale": n.locale.appstore, "whatsNew": n.text} for n in self.notes]
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "store": self.store,
            "limit": self.limit,
            "date": self.date,
            "notes": [
                {
                    "locale": n.locale.name,
                    "language": n.locale.store_code(self.store),
                    "text": n.text,
                    "characters": n.characters,
                    "items": n.items,
                    "itemsTotal": n.items_total,
                    "truncated": n.items < n.items_total,
                    "leftOut": [{"line": i.line, "text": i.text} for i in n.left_out],
                    "warnings": list(n.warnings),
                }
                for n in self.notes
            ],
            **self.payload(),
            "warnings": self.warnings,
        }


Block = tuple[str, list[str]]


def render(head: str, blocks: Sequence[Block], tail: Sequence[Block]) -> str:
    """The notes: the date line, then each heading with its lines; blank lines between."""
    parts = [head] if head else []
    parts += ["\n".join([title, *lines]) for title, lines in [*blocks, *tail] if lines]
    return "\n\n".join(parts)


def fit(head: str, blocks: Sequence[Block], tail: Sequence[Block], limit: int) -> tuple[str, int]:
    """The notes with as many items as fit in ``limit`` characters, and how many that is.

    Items are kept in order and whole: the cut falls between two items, never inside one,
    so no word, surrogate pair or grapheme cluster is split. The date line and the closing
    blocks (how to update, feedback) always stay.
    """
    total = sum(len(lines) for _, lines in blocks)
    for keep in range(total, -1, -1):
        kept: list[Block] = []
        left = keep
        for title, lines in blocks:
            kept.append((title, lines[:left]))
            left -= min(left, len(lines))
        text = render(head, kept, tail)
        if len(text) <= limit:
            return text, keep
    raise NotesError(
        f"Even without any entry the notes are {len(render(head, [], tail))} characters; "
        f"the store allows {limit}.",
        hint="Shorten the feedback contact, or leave it out.",
    )


def notes_for(
    found: Entries,
    loc: Locale,
    store: Store,
    day: date,
    *,
    feedback: str | None = None,
    limit: int | None = None,
    source: str | None = None,
) -> LocaleNotes:
    """One locale's notes; ``source`` names the CHANGELOG when its left-out subsections are
    to be reported (once per file, not once per locale)."""
    lang = loc.language
    limit = LIMITS[store] if limit is None else limit
    flat = found.flat()
    head = f"{_HEADINGS[lang]['date']}{'：' if lang == 'ja' else ': '}{release_date(lang, day)}"
    blocks: list[Block] = [
        (heading(lang, c), [i.text for i in found.by_category.get(c, [])]) for c in CATEGORIES
    ]
    tail: list[Block] = [(heading(lang, "how_to_update"), [_HOW_TO_UPDATE[lang][store]])]
    if feedback:
        tail.append((heading(lang, "feedback"), [_FEEDBACK[lang].format(contact=feedback)]))
    text, kept = fit(head, blocks, tail, limit)
    warnings: list[str] = []
    where = f"{loc.name} ({loc.store_code(store)})"
    cut = [item for _, item in flat[kept:]]
    if not flat:
        warnings.append(f"{where}: the section has no entry for the store's headings.")
    elif cut:
        warnings.append(
            f"{where}: {STORE_NAMES[store]} allows {limit} characters; the notes keep "
            f"{kept} of {len(flat)} entries ({len(text)} characters) and leave out "
            f"{len(cut)}, from the entry at line {cut[0].line} on."
        )
    if found.left_out and source is not None:
        names = ", ".join(f"`{name}` ({n})" for name, n in found.left_out.items())
        warnings.append(
            f"{source}: subsections with no store heading are left out: {names}. "
            "Headings: Added -> new features; Changed -> improvements; Fixed, Security -> "
            "bug fixes; Known Issues -> known issues; Deprecated, Removed -> notices."
        )
    return LocaleNotes(loc, text, kept, len(flat), tuple(cut), tuple(warnings))


def build(
    log: cl.Changelog,
    version: Version,
    store: Store,
    locales: Sequence[str],
    *,
    locale_logs: Mapping[str, cl.Changelog] | None = None,
    feedback: str | None = None,
) -> StoreNotes:
    """Notes for each locale: entries from ``log``, or from that locale's own CHANGELOG.

    The release date is the one of ``version``'s section in ``log``. A locale without its
    own CHANGELOG gets the entries as ``log`` writes them, under headings in its language.
    """
    section = cl.require_released(log, version)
    assert section.date is not None
    day = date.fromisoformat(section.date)
    locale_logs = dict(locale_logs or {})
    resolved = [locale(name) for name in locales]
    for name in locale_logs:
        if name not in locales:
            raise NotesError(
                f"A CHANGELOG is given for locale `{name}`, which is not asked for.",
                hint="Add `--locale " + name + "`, or drop its CHANGELOG.",
            )
    codes: dict[str, str] = {}
    for loc in resolved:
        code = loc.store_code(store)
        if code in codes:
            raise NotesError(
                f"Locales `{codes[code]}` and `{loc.name}` are both `{code}` in "
                f"{STORE_NAMES[store]}: give one of them.",
            )
        codes[code] = loc.name
    out = []
    reported: set[str] = set()
    for loc in resolved:
        own = locale_logs.get(loc.name)
        if own is None:
            found = entries(log, section)
        else:
            found = entries(own, cl.require_released(own, version))
        path = (own or log).path
        out.append(
            notes_for(
                found,
                loc,
                store,
                day,
                feedback=feedback,
                source=None if path in reported else path,
            )
        )
        reported.add(path)
    return StoreNotes(str(version), store, LIMITS[store], section.date, tuple(out))
