"""Store release notes (source §10.1): layout, headings per locale, and the stores' limits."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from release_actions.core import changelog as cl
from release_actions.core.versions import Version
from release_actions.errors import ChangelogError
from release_actions.mobile import notes as mn

V160 = Version.parse("1.6.0")

KEEP_A_CHANGELOG = (
    "# Changelog\n\n## [Unreleased]\n\n## [1.6.0] - 2026-01-20\n\n"
    "### Added\n\n"
    "- **AI旅行提案**: AIがあなたの好みに基づいて旅行プランを提案します\n"
    "- **リアルタイム価格**: 宿泊施設の価格がリアルタイムで更新されます\n\n"
    "### Changed\n\n- 検索結果の表示速度が30%向上しました\n  (社内ベンチマーク)\n\n"
    "### Fixed\n\n- 特定の条件で地図が表示されない問題を修正\n\n"
    "### Security\n\n- Tokens are rotated on logout.\n\n"
    "### Deprecated\n\n- The old export is deprecated.\n\n"
    "### Removed\n\n- iOS 14 のサポートを終了しました\n\n"
    "### Known Issues\n\n- iOS 15以下では一部のアニメーションが正常に動作しない場合があります\n\n"
    "## [1.5.0] - 2026-01-06\n\n### Added\n\n- First.\n\n"
    "[unreleased]: https://github.com/o/r/compare/v1.6.0...HEAD\n"
    "[1.6.0]: https://github.com/o/r/compare/v1.5.0...v1.6.0\n"
    "[1.5.0]: https://github.com/o/r/releases/tag/v1.5.0\n"
)

JA_PLAY = """リリース日：2026年1月20日

【新機能】
- **AI旅行提案**: AIがあなたの好みに基づいて旅行プランを提案します
- **リアルタイム価格**: 宿泊施設の価格がリアルタイムで更新されます

【改善】
- 検索結果の表示速度が30%向上しました
  (社内ベンチマーク)

【バグ修正】
- 特定の条件で地図が表示されない問題を修正
- Tokens are rotated on logout.

【既知の問題】
- iOS 15以下では一部のアニメーションが正常に動作しない場合があります

【お知らせ】
- The old export is deprecated.
- iOS 14 のサポートを終了しました

【アップデート方法】
Google Play から最新版をダウンロードしてください。

【フィードバック】
ご意見・ご要望は support@triptrip.com までお寄せください。"""


def log_of(text: str, path: str = "CHANGELOG.md") -> cl.Changelog:
    return cl.parse(text, path)


def test_layout_and_mapping_in_japanese() -> None:
    result = mn.build(
        log_of(KEEP_A_CHANGELOG), V160, "play", ["ja"], feedback="support@triptrip.com"
    )
    (ja,) = result.notes
    assert ja.text == JA_PLAY
    assert ja.items == ja.items_total == 8
    assert result.warnings == []
    assert result.payload() == {"releaseNotes": [{"language": "ja-JP", "text": JA_PLAY}]}


def test_english_headings_keep_the_entries_as_written() -> None:
    result = mn.build(log_of(KEEP_A_CHANGELOG), V160, "appstore", ["en"])
    text = result.notes[0].text
    assert text.startswith("Release date: January 20, 2026\n\nNew features:\n- **AI旅行提案**")
    for heading in ("Improvements:", "Bug fixes:", "Known issues:", "Notices:"):
        assert f"\n\n{heading}\n- " in text
    assert text.endswith("How to update:\nDownload the latest version from the App Store.")
    assert "Feedback" not in text
    assert result.payload() == {"localizations": [{"locale": "en-US", "whatsNew": text}]}


def test_store_codes() -> None:
    log = log_of(KEEP_A_CHANGELOG)
    play = mn.build(log, V160, "play", ["ja", "en", "en-GB"]).payload()["releaseNotes"]
    assert [n["language"] for n in play] == ["ja-JP", "en-US", "en-GB"]
    apple = mn.build(log, V160, "appstore", ["ja", "en"]).payload()["localizations"]
    assert [n["locale"] for n in apple] == ["ja", "en-US"]
    with pytest.raises(mn.NotesError, match="both `ja-JP`"):
        mn.build(log, V160, "play", ["ja", "ja-JP"])
    with pytest.raises(mn.NotesError, match="`fr`") as e:
        mn.build(log, V160, "play", ["fr"])
    assert "`ja`" in (e.value.hint or "")


def test_a_locale_changelog_gives_that_locale_its_entries() -> None:
    ja = log_of(
        "# 変更履歴\n\n## [1.6.0] - 2026-01-20\n\n### 追加\n\n- AI旅行提案\n\n"
        "### 修正\n\n- 地図の不具合を修正\n",
        "CHANGELOG.ja.md",
    )
    result = mn.build(log_of(KEEP_A_CHANGELOG), V160, "play", ["ja", "en"], locale_logs={"ja": ja})
    assert "【新機能】\n- AI旅行提案\n\n【バグ修正】\n- 地図の不具合を修正" in result.notes[0].text
    assert "- **AI旅行提案**" in result.notes[1].text
    with pytest.raises(mn.NotesError, match="not asked for"):
        mn.build(log_of(KEEP_A_CHANGELOG), V160, "play", ["en"], locale_logs={"ja": ja})
    with pytest.raises(ChangelogError, match=r"CHANGELOG\.ja\.md has no section for 1\.5\.0"):
        mn.build(
            log_of(KEEP_A_CHANGELOG),
            Version.parse("1.5.0"),
            "play",
            ["ja"],
            locale_logs={"ja": ja},
        )


def test_release_please_headings_and_left_out_subsections() -> None:
    text = (
        "# Changelog\n\n## [1.6.0](https://github.com/o/r/compare/v1.5.0...v1.6.0) (2026-01-20)\n\n"
        "### ⚠ BREAKING CHANGES\n\n* drop iOS 14\n\n"
        "### Features\n\n* **map:** offline tiles ([#12](https://github.com/o/r/issues/12))\n\n"
        "### Bug Fixes\n\n* crash on launch\n\n"
        "### Performance Improvements\n\n* faster search\n\n"
        "### Miscellaneous Chores\n\n* bump deps\n* lint\n"
    )
    result = mn.build(log_of(text), V160, "play", ["en", "ja"])
    en = result.notes[0].text
    assert "New features:\n* **map:** offline tiles ([#12](https://github.com/o/r/issues/12))" in en
    assert "Improvements:\n* faster search" in en
    assert "Bug fixes:\n* crash on launch" in en
    assert "Notices:\n* drop iOS 14" in en
    assert "bump deps" not in en
    # Reported once for the file, not once per locale.
    assert len(result.warnings) == 1
    assert "`Miscellaneous Chores` (2)" in result.warnings[0]


def test_entries_without_a_subsection_and_code_blocks() -> None:
    text = (
        "# Changelog\n\n## 1.6.0 (2026-01-20)\n\n"
        "A paragraph of its own.\n\n"
        "- an entry\n  ```\n  - not an entry\n  ### not a heading\n  ```\n"
        "- next entry\n"
    )
    found = mn.items(log_of(text), log_of(text).sections[0])
    assert [i.text for i in found] == [
        "A paragraph of its own.",
        "- an entry\n  ```\n  - not an entry\n  ### not a heading\n  ```",
        "- next entry",
    ]
    assert [i.line for i in found] == [5, 7, 12]
    notes = mn.build(log_of(text), V160, "play", ["en"]).notes[0].text
    assert notes.startswith("Release date: January 20, 2026\n\nImprovements:\nA paragraph")


def test_an_unreleased_or_undated_section_is_refused() -> None:
    with pytest.raises(ChangelogError, match=r"has no section for 1\.7\.0"):
        mn.build(log_of(KEEP_A_CHANGELOG), Version.parse("1.7.0"), "play", ["ja"])
    undated = "# Changelog\n\n## [1.6.0]\n\n### Added\n\n- x\n"
    with pytest.raises(ChangelogError, match="no valid date"):
        mn.build(log_of(undated), V160, "play", ["ja"])


def long_changelog(entries: list[str]) -> str:
    body = "\n".join(f"- {e}" for e in entries)
    return f"# Changelog\n\n## [1.6.0] - 2026-01-20\n\n### Fixed\n\n{body}\n"


def test_play_cuts_between_entries_with_a_warning() -> None:
    entries = [f"地図の表示に関する問題その{n}を修正しました。" * 2 for n in range(30)]
    result = mn.build(log_of(long_changelog(entries)), V160, "play", ["ja"])
    (ja,) = result.notes
    assert len(ja.text) <= 500
    assert 0 < ja.items < 30
    assert ja.items_total == 30
    assert ja.left_out[0].text == f"- {entries[ja.items]}"
    assert "allows 500 characters" in ja.warnings[0]
    assert f"keep {ja.items} of 30 entries" in ja.warnings[0]
    # The App Store takes them all.
    assert mn.build(log_of(long_changelog(entries)), V160, "appstore", ["ja"]).warnings == []


def test_japanese_counts_one_per_character() -> None:
    head = "リリース日：2026年1月20日"
    tail = [("【アップデート方法】", ["Google Play から最新版をダウンロードしてください。"])]
    base = len(mn.render(head, [("【バグ修正】", ["- "])], tail))
    exact = "- " + "字" * (500 - base)
    text, kept = mn.fit(head, [("【バグ修正】", [exact])], tail, 500)
    assert (len(text), kept) == (500, 1)
    assert len(text.encode("utf-8")) > 500
    text, kept = mn.fit(head, [("【バグ修正】", [exact + "字"])], tail, 500)
    assert kept == 0


def test_no_room_even_without_entries() -> None:
    with pytest.raises(mn.NotesError, match="without any entry"):
        mn.notes_for(
            mn.entries(log_of(KEEP_A_CHANGELOG), log_of(KEEP_A_CHANGELOG).sections[1]),
            mn.locale("en"),
            "play",
            date(2026, 1, 20),
            feedback="x" * 600,
        )


# -- properties -------------------------------------------------------------------------

# Words from any script, emoji with skin tones and ZWJ sequences, combining marks: none of
# them may be split. No line breaks inside an entry (str.splitlines breaks at U+2028 too).
_piece = st.one_of(
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs"), blacklist_characters="\x00"
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(["👩‍👩‍👧", "👍🏽", "é", "が", "🇯🇵", "字", "ｶﾞ", "𠮷"]),
)
_entry = st.lists(_piece, min_size=1, max_size=12).map(" ".join)
_sections = st.lists(
    st.tuples(st.sampled_from(cl.CHANGE_TYPES), st.lists(_entry, min_size=1, max_size=15)),
    min_size=1,
    max_size=6,
    unique_by=lambda t: t[0],
)


@given(sections=_sections, store=st.sampled_from(mn.STORES), lang=st.sampled_from(["ja", "en"]))
@settings(max_examples=200, deadline=None)
def test_notes_properties(
    sections: list[tuple[str, list[str]]], store: mn.Store, lang: str
) -> None:
    body = "\n\n".join(
        f"### {name}\n\n" + "\n".join(f"- {e}" for e in entries) for name, entries in sections
    )
    text = f"# Changelog\n\n## [1.6.0] - 2026-01-20\n\n{body}\n"
    log = log_of(text)
    found = mn.entries(log, log.sections[0])
    flat = [item.text for _, item in found.flat()]
    # Every entry is found, byte for byte.
    assert sorted(flat) == sorted(f"- {e}" for _, entries in sections for e in entries)
    notes = mn.build(log, V160, store, [lang]).notes[0]
    limit = mn.LIMITS[store]
    # Never over the limit, counted in code points.
    assert notes.characters <= limit
    kept = flat[: notes.items]
    # The cut is between entries: the notes are exactly the first entries, whole.
    head = notes.text.split("\n\n", 1)[0]
    tail = [(mn.heading(lang, "how_to_update"), [notes.text.rsplit("\n", 1)[1]])]  # type: ignore[arg-type]
    blocks = []
    left = notes.items
    for cat in mn.CATEGORIES:
        items = [i.text for i in found.by_category.get(cat, [])][:left]
        left -= len(items)
        blocks.append((mn.heading(lang, cat), items))  # type: ignore[arg-type]
    assert notes.text == mn.render(head, blocks, tail)
    for item in kept:
        assert item in notes.text
    # As many as fit: one more entry would not.
    if notes.items < len(flat):
        assert notes.warnings
        assert [i.text for i in notes.left_out] == flat[notes.items :]
        more = []
        left = notes.items + 1
        for cat in mn.CATEGORIES:
            items = [i.text for i in found.by_category.get(cat, [])][:left]
            left -= len(items)
            more.append((mn.heading(lang, cat), items))  # type: ignore[arg-type]
        assert len(mn.render(head, more, tail)) > limit
    else:
        assert not notes.left_out
