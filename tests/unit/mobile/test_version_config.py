"""The version config of source §8.4: what the endpoint answers, validation, and the bump."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from release_actions.core.versions import Version
from release_actions.errors import InvalidVersionError
from release_actions.mobile import version_config as vc

IOS = "https://apps.apple.com/app/triptrip/id123456789"
ANDROID = "https://play.google.com/store/apps/details?id=com.triptrip.app"
MESSAGE = "重要なセキュリティアップデートがあります。最新版に更新してください。"


def config_data(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "minimumVersion": "1.5.0",
        "recommendedVersion": "1.6.0",
        "forceUpdate": True,
        "updateMessage": MESSAGE,
        "storeUrls": {"ios": IOS, "android": ANDROID},
    }
    data.update(over)
    return data


def write_json(tmp_path: Path, data: object, name: str = "app-version.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def load(tmp_path: Path, **over: object) -> vc.VersionConfig:
    return vc.load(write_json(tmp_path, config_data(**over)))


# -- check: the source endpoint's answer ------------------------------------------------


@pytest.mark.parametrize(
    ("client", "force", "recommended", "message"),
    [
        ("1.4.9", True, True, MESSAGE),
        ("1.5.0-rc.1", True, True, MESSAGE),  # a pre-release is older than its release
        ("1.5.0", False, True, None),
        ("1.5.0+build.7", False, True, None),  # build metadata is ignored
        ("1.5.9", False, True, None),
        ("1.6.0-beta.2", False, True, None),
        ("1.6.0", False, False, None),
        ("2.0.0", False, False, None),
    ],
)
def test_check_answers_as_the_endpoint(
    tmp_path: Path, client: str, force: bool, recommended: bool, message: str | None
) -> None:
    answer = load(tmp_path).check(Version.parse(client), "ios").to_json()
    assert answer == {
        "forceUpdate": force,
        "recommendedUpdate": recommended,
        "message": message,
        "storeUrl": IOS,
        "minimumVersion": "1.5.0",
        "recommendedVersion": "1.6.0",
    }
    assert list(answer) == [
        "forceUpdate",
        "recommendedUpdate",
        "message",
        "storeUrl",
        "minimumVersion",
        "recommendedVersion",
    ]


def test_force_switch_off_recommends_but_keeps_the_message(tmp_path: Path) -> None:
    # The source: forceUpdate = needsForceUpdate && config.forceUpdate; message whenever
    # the client is below the minimum.
    answer = load(tmp_path, forceUpdate=False).check(Version.parse("1.4.0"), "android")
    assert answer.force_update is False
    assert answer.recommended_update is True
    assert answer.message == MESSAGE
    assert answer.store_url == ANDROID


def test_unknown_platform_is_refused(tmp_path: Path) -> None:
    # The source sent every platform but `ios` (a missing header included) to Play.
    with pytest.raises(ValueError, match="web"):
        load(tmp_path).check(Version.parse("1.0.0"), "web")


def test_client_version_that_is_not_semver_names_the_option() -> None:
    with pytest.raises(InvalidVersionError, match=r"`--version`: `1\.6` is not a SemVer") as e:
        vc.parse_client_version("1.6")
    assert "MAJOR.MINOR.PATCH" in e.value.message


versions = st.builds(
    lambda a, b, c, pre, build: Version(a, b, c, pre, build),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from([(), ("rc", "1"), ("alpha",), ("beta", "2"), ("1",)]),
    st.sampled_from([(), ("b7",), ("sha", "abc")]),
)


@given(a=versions, b=versions, client=versions, switch=st.booleans())
@settings(max_examples=300, deadline=None)
def test_check_properties(a: Version, b: Version, client: Version, switch: bool) -> None:
    minimum, recommended = sorted([a, b])
    config = vc.VersionConfig(
        "c.json", "json", minimum, recommended, switch, MESSAGE, {"ios": IOS, "android": ANDROID}
    )
    answer = config.check(client, "ios")
    # The app does `message!` when forced: a forced answer always has the message.
    assert not answer.force_update or answer.message == MESSAGE
    # Below the minimum is below the recommended version too.
    assert not answer.force_update or answer.recommended_update
    assert (answer.message is not None) == (client < minimum)
    # Build metadata never changes the answer.
    bare = Version(client.major, client.minor, client.patch, client.prerelease)
    assert config.check(bare, "ios") == answer


# -- validation -------------------------------------------------------------------------


def issues(path: Path, **kw: object) -> list[tuple[int | None, str, str]]:
    with pytest.raises(vc.VersionConfigError) as e:
        vc.load(path, **kw)  # type: ignore[arg-type]
    assert e.value.file == str(path)
    return [(i.line, i.key, i.message) for i in e.value.issues]


def test_valid_json_and_yaml(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert (config.minimum_version, config.recommended_version) == (
        Version.parse("1.5.0"),
        Version.parse("1.6.0"),
    )
    yml = tmp_path / "v.yml"
    yml.write_text(
        "# comment\nminimumVersion: 1.5.0\nrecommendedVersion: '1.6.0'\nforceUpdate: true\n"
        f"updateMessage: {MESSAGE}\nstoreUrls:\n  ios: {IOS}\n  android: {ANDROID}\n",
        encoding="utf-8",
    )
    assert vc.load(yml).format == "yaml"
    assert vc.load(yml).store_urls == {"ios": IOS, "android": ANDROID}


def test_unknown_keys_say_the_nearest_with_their_line(tmp_path: Path) -> None:
    data = config_data()
    data["recomendedVersion"] = data.pop("recommendedVersion")
    data["storeUrls"] = {"ios": IOS, "andriod": ANDROID}
    found = issues(write_json(tmp_path, data))
    by_key = {key: (line, msg) for line, key, msg in found}
    assert by_key["recomendedVersion"] == (9, "unknown key: did you mean 'recommendedVersion'?")
    assert by_key["storeUrls.andriod"] == (7, "unknown key: did you mean 'android'?")
    assert "`recommendedVersion` is missing" in by_key["(document)"][1]


def test_every_value_is_checked_at_once(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(
        "minimumVersion: v1.5.0\n"
        "recommendedVersion: 1.6\n"
        "forceUpdate: yes\n"
        "updateMessage: ''\n"
        "storeUrls:\n"
        f"  ios: {ANDROID}\n"
        "  android: http://play.google.com/x\n",
        encoding="utf-8",
    )
    found = {key: (line, msg) for line, key, msg in issues(path)}
    assert found["minimumVersion"][0] == 1
    assert "without the `v` (`1.5.0`)" in found["minimumVersion"][1]
    assert found["recommendedVersion"][0] == 2
    assert "in quotes" in found["recommendedVersion"][1]  # YAML made the float 1.6
    assert found["forceUpdate"] == (3, "must be true or false (got 'yes')")
    assert found["updateMessage"][0] == 4
    assert "swapped" in found["storeUrls.ios"][1]
    assert found["storeUrls.android"][0] == 7
    assert "https://" in found["storeUrls.android"][1]


def test_minimum_above_recommended_and_above_latest(tmp_path: Path) -> None:
    path = write_json(tmp_path, config_data(minimumVersion="1.7.0"))
    assert any(
        key == "recommendedVersion" and "lower than `minimumVersion` `1.7.0`" in msg
        for _, key, msg in issues(path)
    )
    path = write_json(tmp_path, config_data())
    found = issues(path, latest=Version.parse("1.5.5"))
    assert [(line, key) for line, key, _ in found] == [(3, "recommendedVersion")]
    assert "newer than the newest released version `1.5.5`" in found[0][2]
    vc.load(path, latest=Version.parse("1.6.0"))


def test_json_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text('{\n  "minimumVersion": "1.5.0",\n  oops\n}\n', encoding="utf-8")
    assert issues(path)[0][:2] == (3, "(document)")
    path.write_text(
        '{\n  "minimumVersion": "1.5.0",\n  "minimumVersion": "1.4.0"\n}\n', encoding="utf-8"
    )
    found = issues(path)
    assert found[0][:2] == (3, "minimumVersion")
    assert "appears twice (first at line 2)" in found[0][2]


def test_not_a_mapping_and_unreadable(tmp_path: Path) -> None:
    path = write_json(tmp_path, ["1.5.0"])
    assert "must be a mapping" in issues(path)[0][2]
    with pytest.raises(vc.VersionConfigError, match="Cannot read"):
        vc.load(tmp_path / "missing.json")


# -- bump -------------------------------------------------------------------------------


def test_bump_json_changes_only_the_value(tmp_path: Path) -> None:
    text = (
        f'{{\r\n\t"storeUrls": {{"ios": "{IOS}", "android": "{ANDROID}"}},\r\n'
        '\t"recommendedVersion"  :  "1.6.0",\r\n\t"minimumVersion": "1.5.0",\r\n'
        f'\t"forceUpdate": false, "updateMessage": "{MESSAGE}"\r\n}}'
    )
    source = vc.parse_source(text, "v.json", "json")
    result = vc.bump(source, recommended=Version.parse("1.7.0"))
    assert result.text == text.replace('"1.6.0"', '"1.7.0"')
    assert result.changed
    assert result.before["recommendedVersion"] == "1.6.0"
    assert result.after == {"minimumVersion": "1.5.0", "recommendedVersion": "1.7.0"}


def test_bump_yaml_keeps_comments_and_quotes(tmp_path: Path) -> None:
    text = (
        "\ufeff# app version (source 8.4)\n"
        "minimumVersion: 1.5.0      # この版未満は強制更新\n"
        "recommendedVersion: '1.6.0'  # この版未満は推奨更新\n"
        "forceUpdate: true\n"
        f'updateMessage: "{MESSAGE}"\n'
        f"storeUrls: {{ios: '{IOS}', android: '{ANDROID}'}}\n"
    )
    source = vc.parse_source(text, "v.yml", "yaml")
    result = vc.bump(source, recommended=Version.parse("1.7.0"), minimum=Version.parse("1.6.0"))
    assert result.text == text.replace("1.5.0 ", "1.6.0 ").replace("'1.6.0'", "'1.7.0'")


def test_bump_flow_yaml_on_the_first_line(tmp_path: Path) -> None:
    text = (
        "{minimumVersion: 1.5.0, recommendedVersion: 1.6.0, forceUpdate: true, updateMessage: m, "
        f"storeUrls: {{ios: '{IOS}', android: '{ANDROID}'}}}}\n"
    )
    result = vc.bump(vc.parse_source(text, "v.yml", "yaml"), recommended=Version.parse("1.10.0"))
    assert result.text == text.replace("recommendedVersion: 1.6.0", "recommendedVersion: 1.10.0")


def test_bump_refuses_to_lower_and_is_idempotent(tmp_path: Path) -> None:
    source = vc.read_source(write_json(tmp_path, config_data()))
    with pytest.raises(vc.VersionConfigError, match="would lower it") as e:
        vc.bump(source, recommended=Version.parse("1.5.9"))
    assert e.value.line == 3
    same = vc.bump(source, recommended=Version.parse("1.6.0"))
    assert not same.changed
    assert same.text == source.text


def test_bump_that_would_not_validate_raises(tmp_path: Path) -> None:
    source = vc.read_source(write_json(tmp_path, config_data()))
    with pytest.raises(vc.VersionConfigError, match="not a valid version config"):
        vc.bump(source, minimum=Version.parse("1.7.0"))  # above the recommended version
    with pytest.raises(vc.VersionConfigError, match="newer than the newest released"):
        vc.bump(source, recommended=Version.parse("1.8.0"), latest=Version.parse("1.7.0"))


json_layouts = st.tuples(
    st.permutations(vc.KEYS),
    st.sampled_from([None, 0, 1, 2, 4, "\t"]),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)


@given(layout=json_layouts, new=versions)
@settings(max_examples=150, deadline=None)
def test_bump_json_property(
    layout: tuple[tuple[str, ...], int | str | None, str, bool], new: Version
) -> None:
    order, indent, newline, ascii_only = layout
    data = config_data()
    text = json.dumps({k: data[k] for k in order}, indent=indent, ensure_ascii=ascii_only)
    text = text.replace("\n", newline)
    source = vc.parse_source(text, "v.json", "json")
    if new < Version.parse("1.6.0"):
        with pytest.raises(vc.VersionConfigError):
            vc.bump(source, recommended=new)
        return
    result = vc.bump(source, recommended=new)
    # Everything but the value is the file's, byte for byte.
    assert result.text == text.replace(
        '"recommendedVersion": "1.6.0"', f'"recommendedVersion": "{new}"'
    )
    assert json.loads(result.text)["recommendedVersion"] == str(new)
