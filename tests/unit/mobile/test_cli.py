"""`release-actions mobile version-check|version-config|notes`, driven with a cleared environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.unit.mobile.test_notes import JA_PLAY, KEEP_A_CHANGELOG
from tests.unit.mobile.test_version_config import ANDROID, IOS, MESSAGE, config_data, write_json

ENDPOINT_FIELDS = [
    "forceUpdate",
    "recommendedUpdate",
    "message",
    "storeUrl",
    "minimumVersion",
    "recommendedVersion",
]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_json(tmp_path, config_data())


def test_version_check_json_is_the_endpoint_body(run_cli: RunCli, config: Path) -> None:
    r = run_cli(
        "mobile", "version-check", "--config", str(config), "--version", "1.4.2",
        "--platform", "android", "--json",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    body = json.loads(r.stdout)
    assert list(body) == ENDPOINT_FIELDS
    assert body == {
        "forceUpdate": True,
        "recommendedUpdate": True,
        "message": MESSAGE,
        "storeUrl": ANDROID,
        "minimumVersion": "1.5.0",
        "recommendedVersion": "1.6.0",
    }
    assert r.outputs["force-update"] == "true"
    assert r.outputs["store-url"] == ANDROID


def test_version_check_text(run_cli: RunCli, config: Path) -> None:
    r = run_cli(
        "mobile", "version-check", "--config", str(config), "--version", "1.6.0+42",
        "--platform", "ios", actions=False,
    )  # fmt: skip
    assert r.code == 0, r.stderr
    assert "1.6.0+42 on ios is up to date" in r.stdout
    assert IOS in r.stdout
    assert r.outputs["message"] == ""


@pytest.mark.parametrize("bad", ["1.6", "v", "1.06.0", "latest"])
def test_version_check_refuses_a_version_that_is_not_semver(
    run_cli: RunCli, config: Path, bad: str
) -> None:
    r = run_cli(
        "mobile", "version-check", "--config", str(config), "--version", bad,
        "--platform", "ios", "--json", actions=False,
    )  # fmt: skip
    assert r.code == 2
    error = json.loads(r.stdout)["error"]
    assert error["code"] == "invalid_version"
    assert "`--version`" in error["message"]
    assert "MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]" in error["message"]


def test_version_check_refuses_an_unknown_platform(run_cli: RunCli, config: Path) -> None:
    r = run_cli(
        "mobile", "version-check", "--config", str(config), "--version", "1.0.0",
        "--platform", "web",
    )  # fmt: skip
    assert r.code == 2
    assert "'ios'" in r.stderr
    assert "'android'" in r.stderr


def test_validate_annotates_file_and_line(run_cli: RunCli, tmp_path: Path) -> None:
    path = write_json(tmp_path, config_data(forceUpdate="true"))
    r = run_cli("mobile", "version-config", "validate", str(path))
    assert r.code == 2
    assert (
        f"::error file={path},line=4,title=Invalid version config::"
        "`forceUpdate`: must be true or false (got 'true')"
    ) in r.stdout
    ok = run_cli("mobile", "version-config", "validate", str(write_json(tmp_path, config_data())))
    assert ok.code == 0, ok.stderr
    assert ok.outputs["recommended-version"] == "1.6.0"


def test_validate_with_latest(run_cli: RunCli, config: Path) -> None:
    r = run_cli(
        "mobile",
        "version-config",
        "validate",
        str(config),
        "--latest",
        "1.5.9",
        "--json",
        actions=False,
    )
    assert r.code == 2
    error = json.loads(r.stdout)["error"]
    assert error["field"] == "recommendedVersion"
    assert error["line"] == 3


def test_bump_writes_the_file_and_sets_outputs(run_cli: RunCli, config: Path) -> None:
    before = config.read_text(encoding="utf-8")
    r = run_cli(
        "mobile", "version-config", "bump", "--config", str(config), "--recommended", "1.7.0",
        "--latest", "1.7.0",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    assert config.read_text(encoding="utf-8") == before.replace(
        '"recommendedVersion": "1.6.0"', '"recommendedVersion": "1.7.0"'
    )
    assert r.outputs["changed"] == "true"
    assert r.outputs["recommended-version"] == "1.7.0"
    again = run_cli("mobile", "version-config", "bump", str(config), "--recommended", "1.7.0")
    assert again.code == 0
    assert again.outputs["changed"] == "false"


def test_bump_leaves_the_file_alone_on_error_and_dry_run(run_cli: RunCli, config: Path) -> None:
    before = config.read_bytes()
    r = run_cli("mobile", "version-config", "bump", str(config), "--recommended", "1.5.0")
    assert r.code == 2
    assert "would lower it" in r.stdout + r.stderr
    r = run_cli("mobile", "version-config", "bump", str(config), "--minimum", "1.9.0")
    assert r.code == 2
    r = run_cli(
        "--dry-run", "mobile", "version-config", "bump", str(config), "--recommended", "2.0.0",
        "--json",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["written"] is False
    assert config.read_bytes() == before
    assert list(config.parent.glob(".*.tmp")) == []
    r = run_cli("mobile", "version-config", "bump", str(config))
    assert r.code == 2
    assert "--recommended" in r.stderr


def test_notes_for_play(run_cli: RunCli, tmp_path: Path) -> None:
    log = tmp_path / "CHANGELOG.md"
    log.write_text(KEEP_A_CHANGELOG, encoding="utf-8")
    r = run_cli(
        "mobile", "notes", "--version", "1.6.0", "--changelog", str(log), "--store", "play",
        "--feedback", "support@triptrip.com", "--json",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["releaseNotes"][0] == {"language": "ja-JP", "text": JA_PLAY}
    assert [n["language"] for n in data["releaseNotes"]] == ["ja-JP", "en-US"]
    assert data["notes"][0]["characters"] == len(JA_PLAY)
    assert data["notes"][0]["truncated"] is False
    assert json.loads(r.outputs["notes"]) == {"releaseNotes": data["releaseNotes"]}
    assert r.outputs["truncated"] == "false"


def test_notes_for_the_app_store_with_a_locale_changelog(run_cli: RunCli, tmp_path: Path) -> None:
    log = tmp_path / "CHANGELOG.md"
    log.write_text(KEEP_A_CHANGELOG, encoding="utf-8")
    ja = tmp_path / "CHANGELOG.ja.md"
    ja.write_text("# 変更履歴\n\n## [1.6.0] - 2026-01-20\n\n### 追加\n\n- AI旅行提案\n", "utf-8")
    r = run_cli(
        "mobile", "notes", "--version", "v1.6.0", "--changelog", str(log), "--store", "appstore",
        "--locale", "en", "--locale", "ja", "--locale-changelog", f"ja={ja}", actions=False,
    )  # fmt: skip
    assert r.code == 0, r.stderr
    assert "== en (en-US): " in r.stdout
    assert "== ja (ja): " in r.stdout
    assert "【新機能】\n- AI旅行提案\n\n【アップデート方法】\nApp Store から" in r.stdout
    r = run_cli(
        "mobile", "notes", "--version", "1.6.0", "--changelog", str(log), "--store", "play",
        "--locale-changelog", "ja",
    )  # fmt: skip
    assert r.code == 2
    assert "LOCALE=PATH" in r.stderr


def test_notes_warn_when_cut(run_cli: RunCli, tmp_path: Path) -> None:
    entries = "\n".join(f"- 地図の表示に関する問題その{n}を修正しました。" for n in range(60))
    log = tmp_path / "CHANGELOG.md"
    log.write_text(f"# Changelog\n\n## [1.6.0] - 2026-01-20\n\n### Fixed\n\n{entries}\n", "utf-8")
    r = run_cli(
        "mobile", "notes", "--version", "1.6.0", "--changelog", str(log), "--store", "play",
        "--locale", "ja",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    assert "::warning file=" in r.stdout
    assert "allows 500 characters" in r.stdout
    assert r.outputs["truncated"] == "true"
    text = json.loads(r.outputs["notes"])["releaseNotes"][0]["text"]
    assert len(text) <= 500


def test_mobile_help_lists_its_commands(
    run_cli: RunCli, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli("mobile", "--help", actions=False)
    assert r.code == 0
    shown = capsys.readouterr().out  # click prints help itself
    for name in ("version-check", "version-config", "notes"):
        assert name in shown
