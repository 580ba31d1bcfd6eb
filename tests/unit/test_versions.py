"""Kernel version -> era (kvmgen/model/versions.py), per model.md section 1 and
kernel-semantics.md section 9, including the boundaries model.md decides."""

from __future__ import annotations

import pytest

from kvmgen.errors import UsageError
from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS, ZapScope
from kvmgen.model.versions import era_for_version, lookup_era, parse_version

TABLE = [
    # E0: < 3.11, modelled as 3.10
    ("2.6", "E0"),
    ("3.0", "E0"),
    ("3.9", "E0"),
    ("3.10", "E0"),
    ("3.11", "E1"),
    # model.md: 3.12 is E2
    ("3.12", "E2"),
    ("3.17", "E2"),
    ("3.18", "E3"),
    ("4.1", "E3"),
    ("4.2", "E4"),
    ("4.10", "E4"),
    ("4.11", "E5"),
    ("4.19", "E5"),
    ("5.0", "E5"),
    ("5.1", "E6"),
    ("5.2", "E6"),
    ("5.3", "E6"),
    ("5.4", "E7"),
    # model.md: 5.5 is E7
    ("5.5", "E7"),
    ("5.6", "E8"),
    ("5.9", "E8"),
    ("5.10", "E9"),
    ("5.12", "E9"),
    # model.md: 5.13-5.16 are E10, 5.17-6.7 E11
    ("5.13", "E10"),
    ("5.14", "E10"),
    ("5.15", "E10"),
    ("5.16", "E10"),
    ("5.17", "E11"),
    ("5.19", "E11"),
    ("6.0", "E11"),
    ("6.1", "E11"),
    ("6.2", "E11"),
    ("6.6", "E11"),
    ("6.7", "E11"),
    ("6.8", "E12"),
    ("6.12", "E12"),
    ("6.18", "E12"),
]


@pytest.mark.parametrize(("version", "era"), TABLE)
def test_version_table(version: str, era: str) -> None:
    choice = era_for_version(version)
    assert choice.era.name == era
    assert choice.kernel == version


@pytest.mark.parametrize("version", ["5.1", "5.2", "5.1.21", "5.2.1"])
def test_5_1_and_5_2_are_the_slot_flush_variant(version: str) -> None:
    choice = era_for_version(version)
    assert choice.era is E6_SLOT_FLUSH
    assert choice.era.name == "E6"
    assert choice.era.variant == "5.1-5.2"
    assert choice.era.flush_scope == ZapScope.SLOT_RAM_SPTES
    assert any("slot" in note for note in choice.notes)


@pytest.mark.parametrize("version", ["5.3", "5.3.18"])
def test_5_3_is_plain_e6(version: str) -> None:
    choice = era_for_version(version)
    assert choice.era is ERAS["E6"]
    assert choice.era.variant is None
    assert choice.era.flush_scope == ZapScope.ALL_SPTES


def test_era_e6_alone_means_5_3() -> None:
    assert lookup_era("E6") is ERAS["E6"]
    assert lookup_era("E6").variant is None


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("4.19", (4, 19, 0)),
        ("5.2.1", (5, 2, 1)),
        ("v5.4", (5, 4, 0)),
        ("v6.8", (6, 8, 0)),
        ("6.18.44-fc-v669", (6, 18, 44)),
        ("6.18.44-generic", (6, 18, 44)),
        ("5.14.0-362.el9.x86_64", (5, 14, 0)),
        ("6.1.0-rc3", (6, 1, 0)),
        (" 4.19 ", (4, 19, 0)),
    ],
)
def test_parse_version(text: str, parsed: tuple[int, int, int]) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize(
    ("text", "era"),
    [
        ("6.18.44-fc-v669", "E12"),
        ("v5.4", "E7"),
        ("v3.10", "E0"),
        ("5.14.0-362.el9.x86_64", "E10"),
        ("4.19.0-25-amd64", "E5"),
    ],
)
def test_suffixed_versions_map_by_major_minor(text: str, era: str) -> None:
    choice = era_for_version(text)
    assert choice.era.name == era
    assert choice.kernel == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "5",
        "5.",
        ".5",
        "5.x",
        "E5",
        "5.4.3.2",
        "5..4",
        "-5.4",
        "5.4 6",
        "four.nineteen",
        "5.4/6",
        "100.1",
    ],
)
def test_garbage_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        era_for_version(text)
    assert repr(text) in str(info.value)
    with pytest.raises(UsageError):
        parse_version(text)


def test_usage_error_exits_with_2() -> None:
    with pytest.raises(UsageError) as info:
        era_for_version("nonsense")
    assert int(info.value.exit_code) == 2


@pytest.mark.parametrize("version", ["1.2.13", "0.99"])
def test_ancient_versions_are_e0(version: str) -> None:
    choice = era_for_version(version)
    assert choice.era is ERAS["E0"]
    assert any("3.10" in note for note in choice.notes)


@pytest.mark.parametrize("version", ["6.19", "7.0", "7.3.1", "10.2"])
def test_newer_than_checked_is_e12_with_a_note(version: str) -> None:
    choice = era_for_version(version)
    assert choice.era is ERAS["E12"]
    assert any("newer" in note and "6.18" in note for note in choice.notes)


@pytest.mark.parametrize("version", ["6.18", "6.8", "6.18.44-fc-v669"])
def test_checked_versions_get_no_newer_note(version: str) -> None:
    assert not any("newer" in note for note in era_for_version(version).notes)


@pytest.mark.parametrize("version", ["2.6", "3.9"])
def test_pre_3_10_says_it_is_modelled_as_3_10(version: str) -> None:
    choice = era_for_version(version)
    assert choice.era is ERAS["E0"]
    assert any("3.10" in note for note in choice.notes)


def test_plain_mainline_versions_have_no_notes() -> None:
    for version in ("3.10", "4.19", "5.3", "5.5", "6.1", "6.8", "6.18", "v5.4"):
        assert era_for_version(version).notes == (), version


@pytest.mark.parametrize("version", ["4.19.5", "6.18.44-fc-v669", "6.1-rc1"])
def test_stable_and_distro_versions_warn_about_backports(version: str) -> None:
    assert any("backport" in note for note in era_for_version(version).notes)


@pytest.mark.parametrize(
    ("text", "name"), [("E0", "E0"), ("e5", "E5"), (" E12 ", "E12"), ("e10", "E10")]
)
def test_lookup_era(text: str, name: str) -> None:
    assert lookup_era(text) is ERAS[name]


@pytest.mark.parametrize("text", ["E13", "E-1", "5", "", "E5.1", "era5"])
def test_lookup_unknown_era(text: str) -> None:
    with pytest.raises(UsageError, match="unknown era"):
        lookup_era(text)
