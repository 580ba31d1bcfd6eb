"""Bias policies and run specifications (kvmgen/model/policy.py), per model.md section 1."""

from __future__ import annotations

import pytest

from kvmgen.errors import UsageError
from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS
from kvmgen.model.policy import (
    Policy,
    check_address_spaces,
    getter_offset,
    initial_generations,
    parse_policy,
    resolve_runs,
)
from kvmgen.model.versions import era_for_version

U64 = (1 << 64) - 1
TWO64 = 1 << 64
M19 = (1 << 19) - 1


# ---- parse_policy


@pytest.mark.parametrize(
    ("text", "name", "value"),
    [
        ("historical", "historical", None),
        ("HISTORICAL", "historical", None),
        (" none ", "none", 0),
        ("None", "none", 0),
        ("0", "0", 0),
        ("150", "150", 150),
        ("0x96", "150", 150),
        ("151", "151", 151),
        (str(U64), str(U64), U64),
        ("0xffffffffffffffff", str(U64), U64),
    ],
)
def test_parse_policy(text: str, name: str, value: int | None) -> None:
    assert parse_policy(text) == Policy(name, value)


@pytest.mark.parametrize(
    "text", ["", "-1", "-150", "hist", "1.5", "abc", str(TWO64), "0x10000000000000000", "1e3"]
)
def test_parse_policy_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--bias"):
        parse_policy(text)


def test_policy_bias_for() -> None:
    historical = parse_policy("historical")
    assert historical.bias_for(ERAS["E5"]) == 150
    assert historical.bias_for(ERAS["E1"]) == 150
    assert historical.bias_for(ERAS["E6"]) == 0
    assert historical.bias_for(ERAS["E12"]) == 0
    assert parse_policy("none").bias_for(ERAS["E5"]) == 0
    assert parse_policy("7").bias_for(ERAS["E12"]) == 7


# ---- initial_generations (model.md section 1, "Bias policy")


@pytest.mark.parametrize("name", ["E0", "E1", "E2"])
@pytest.mark.parametrize("bias", [0, 150, 151, U64])
def test_initial_generations_zero_eras(name: str, bias: int) -> None:
    # E0 has no generation; E1/E2 start at 0 and put the bias into the getter.
    assert initial_generations(ERAS[name], 1, bias) == (0,)


@pytest.mark.parametrize(
    ("bias", "start"),
    [
        (0, 0),
        (150, TWO64 - 150),  # 0xffffffffffffff6a
        (151, TWO64 - 151),
        (1 << 63, 1 << 63),  # -2^63 mod 2^64
        (U64, 1),  # -(2^64-1) mod 2^64
    ],
)
def test_initial_generations_e3_e4(bias: int, start: int) -> None:
    assert initial_generations(ERAS["E3"], 1, bias) == (start,)
    assert initial_generations(ERAS["E4"], 2, bias) == (start, start)


def test_e3_historical_start_is_0xffffffffffffff6a() -> None:
    assert initial_generations(ERAS["E3"], 1, 150) == (0xFFFFFFFFFFFFFF6A,)


@pytest.mark.parametrize(
    ("bias", "starts"),
    [
        (0, (0, 2)),
        (150, (TWO64 - 150, TWO64 - 148)),
        (151, (TWO64 - 151, TWO64 - 149)),
        (1, (TWO64 - 1, 1)),
        (2, (TWO64 - 2, 0)),
        (U64, (1, 3)),  # 2*as - (2^64 - 1) = 2*as + 1 mod 2^64
    ],
)
def test_initial_generations_e5(bias: int, starts: tuple[int, int]) -> None:
    assert initial_generations(ERAS["E5"], 2, bias) == starts


@pytest.mark.parametrize("name", ["E6", "E7", "E10", "E11", "E12"])
@pytest.mark.parametrize(
    ("bias", "starts"),
    [
        (0, (0, 1)),
        (150, ((1 << 19) - 150, (1 << 19) - 149)),  # 524138, 524139
        (151, ((1 << 19) - 151, (1 << 19) - 150)),
        ((1 << 19) + 3, ((1 << 19) - 3, (1 << 19) - 2)),
        (1 << 19, (0, 1)),
        (U64, (1, 2)),  # as + 1 mod 2^19
    ],
)
def test_initial_generations_19_bit_modern(name: str, bias: int, starts: tuple[int, int]) -> None:
    assert initial_generations(ERAS[name], 2, bias) == starts


@pytest.mark.parametrize("name", ["E8", "E9"])
@pytest.mark.parametrize(
    ("bias", "starts"),
    [
        (0, (0, 1)),
        (150, ((1 << 18) - 150, (1 << 18) - 149)),  # 261994, 261995
        (151, ((1 << 18) - 151, (1 << 18) - 150)),
        (U64, (1, 2)),
    ],
)
def test_initial_generations_18_bit_modern(name: str, bias: int, starts: tuple[int, int]) -> None:
    assert initial_generations(ERAS[name], 2, bias) == starts


def test_modern_starts_keep_bit_63_clear() -> None:
    for name in ("E6", "E8", "E12"):
        for bias in (1, 150, 151, 1 << 63, U64):
            for g in initial_generations(ERAS[name], 2, bias):
                assert g < 1 << 19


def test_modern_nas1_start() -> None:
    assert initial_generations(ERAS["E12"], 1, 150) == ((1 << 19) - 150,)
    assert initial_generations(ERAS["E11"], 1, 0) == (0,)


def test_e6_slot_flush_variant_starts_like_e6() -> None:
    assert initial_generations(E6_SLOT_FLUSH, 2, 150) == (524138, 524139)


# ---- getter_offset (E1/E2: (g + 2^19 - 1 - B) mod 2^19 when B > 0)


@pytest.mark.parametrize("name", ["E1", "E2"])
@pytest.mark.parametrize(
    ("bias", "offset"),
    [
        (0, 0),
        (1, M19 - 1),
        (150, M19 - 150),  # 524137 = 0x7ff69
        (151, M19 - 151),
        (M19, 0),
        (1 << 19, M19),  # 2^19 - 1 - 2^19 = -1 mod 2^19
        ((1 << 19) + 10, (1 << 19) - 11),
        (U64, 0),  # 2^19 - 2^64 = 0 mod 2^19
    ],
)
def test_getter_offset(name: str, bias: int, offset: int) -> None:
    assert getter_offset(ERAS[name], bias) == offset


def test_getter_offset_150_is_0x7ff69() -> None:
    assert getter_offset(ERAS["E2"], 150) == 0x7FF69


@pytest.mark.parametrize("name", ["E0", "E3", "E4", "E5", "E6", "E9", "E12"])
def test_getter_offset_is_zero_outside_e1_e2(name: str) -> None:
    assert getter_offset(ERAS[name], 150) == 0


# ---- resolve_runs


def policies(*names: str) -> list[Policy]:
    return [parse_policy(n) for n in names]


@pytest.mark.parametrize("name", ["E6", "E7", "E8", "E9", "E10", "E11", "E12"])
def test_historical_and_none_are_one_run_on_modern_eras(name: str) -> None:
    era = ERAS[name]
    (run,) = resolve_runs(era, 2, policies("historical", "none"))
    assert run.policies == ("historical", "none")
    assert run.bias == 0
    assert run.init_generations == (0, 1)
    assert run.mmio_offset == 0
    assert run.as_shipped
    assert run.warnings == ()
    assert run.label == f"{name} ({ERAS[name].versions}), historical/none, bias 0"


def test_historical_and_none_are_one_run_on_e0() -> None:
    (run,) = resolve_runs(ERAS["E0"], 1, policies("historical", "none"))
    assert run.policies == ("historical", "none")
    assert run.bias is None
    assert run.init_generations == (0,)
    assert run.as_shipped
    assert run.label == "E0 (up to 3.10), historical/none, no MMIO generation"


def test_any_bias_on_e0_is_the_same_single_run() -> None:
    (run,) = resolve_runs(ERAS["E0"], 1, policies("historical", "none", "150"))
    assert run.policies == ("historical", "none", "150")
    assert run.bias is None


def test_e5_gives_two_runs_in_request_order() -> None:
    hist, none = resolve_runs(ERAS["E5"], 2, policies("historical", "none"))
    assert hist.policies == ("historical",)
    assert hist.bias == 150
    assert hist.init_generations == (TWO64 - 150, TWO64 - 148)
    assert hist.as_shipped
    assert none.policies == ("none",)
    assert none.bias == 0
    assert none.init_generations == (0, 2)
    assert not none.as_shipped
    assert hist.label == "E5 (4.11-5.0), historical, bias 150"
    assert none.label == "E5 (4.11-5.0), none, bias 0"
    # reversed request, reversed runs
    first, second = resolve_runs(ERAS["E5"], 2, policies("none", "historical"))
    assert (first.bias, second.bias) == (0, 150)


def test_e2_runs_carry_the_getter_offset() -> None:
    hist, none = resolve_runs(ERAS["E2"], 1, policies("historical", "none"))
    assert hist.mmio_offset == M19 - 150
    assert hist.init_generations == (0,)
    assert none.mmio_offset == 0


def test_literal_bias_equal_to_historical_joins_its_run() -> None:
    (run, none) = resolve_runs(ERAS["E5"], 2, policies("historical", "150", "none", "0"))
    assert run.policies == ("historical", "150")
    assert run.bias == 150
    assert none.policies == ("none", "0")


def test_duplicate_policy_is_listed_once() -> None:
    (run,) = resolve_runs(ERAS["E12"], 1, policies("none", "none", "0x0", "0"))
    assert run.policies == ("none", "0")


def test_hypothetical_bias_on_modern_era_is_a_separate_run() -> None:
    shipped, hypo = resolve_runs(ERAS["E12"], 2, policies("historical", "none", "150"))
    assert shipped.policies == ("historical", "none")
    assert hypo.policies == ("150",)
    assert hypo.bias == 150
    assert hypo.init_generations == (524138, 524139)
    assert not hypo.as_shipped


def test_kernel_choice_is_carried_into_runs() -> None:
    choice = era_for_version("4.19")
    runs = resolve_runs(choice.era, 2, policies("historical", "none"), choice)
    assert [r.kernel for r in runs] == ["4.19", "4.19"]
    assert all(r.era is ERAS["E5"] for r in runs)
    assert resolve_runs(ERAS["E5"], 2, policies("none"))[0].kernel is None


# ---- warnings


@pytest.mark.parametrize("name", ["E6", "E8", "E10", "E12"])
def test_hypothetical_bias_warning_on_modern_eras(name: str) -> None:
    era = ERAS[name]
    (run,) = resolve_runs(era, 2, policies("150"))
    (warning,) = run.warnings
    assert "hypothetical" in warning
    assert name in warning
    assert f"2^{era.nominal_width}" in warning
    assert "bit 63" in warning


def test_no_bias_warning_on_modern_eras_without_bias() -> None:
    (run,) = resolve_runs(ERAS["E12"], 2, policies("none"))
    assert run.warnings == ()


@pytest.mark.parametrize(("name", "nas"), [("E3", 1), ("E4", 2), ("E5", 2)])
def test_odd_bias_warning_on_e3_to_e5(name: str, nas: int) -> None:
    (run,) = resolve_runs(ERAS[name], nas, policies("151"))
    (warning,) = run.warnings
    assert "151" in warning
    assert "odd" in warning
    (even,) = resolve_runs(ERAS[name], nas, policies("150"))
    assert even.warnings == ()


@pytest.mark.parametrize("name", ["E1", "E2"])
def test_odd_bias_is_fine_in_the_getter_eras(name: str) -> None:
    (run,) = resolve_runs(ERAS[name], 1, policies("151"))
    assert run.warnings == ()


def test_odd_hypothetical_bias_on_modern_era_only_warns_hypothetical() -> None:
    (run,) = resolve_runs(ERAS["E12"], 1, policies("151"))
    assert len(run.warnings) == 1
    assert "hypothetical" in run.warnings[0]


def test_e0_bias_note() -> None:
    (run,) = resolve_runs(ERAS["E0"], 1, policies("150"))
    assert run.bias is None
    (warning,) = run.warnings
    assert "E0" in warning
    assert "no MMIO generation" in warning
    (plain,) = resolve_runs(ERAS["E0"], 1, policies("historical", "none"))
    assert plain.warnings == ()


def test_kernel_notes_come_first_in_warnings() -> None:
    choice = era_for_version("5.2.1")
    (run,) = resolve_runs(choice.era, 2, policies("150"), choice)
    assert run.warnings[: len(choice.notes)] == choice.notes
    assert "hypothetical" in run.warnings[-1]
    assert run.era.variant == "5.1-5.2"


# ---- check_address_spaces (model.md section 1, "Address spaces")


def test_e11_via_kernel_6_1_refuses_one_address_space() -> None:
    choice = era_for_version("6.1")
    with pytest.raises(UsageError) as info:
        check_address_spaces(choice.era, 1, choice)
    assert "address spaces 1" in str(info.value)
    assert "kernel 6.1" in str(info.value)
    check_address_spaces(choice.era, 2, choice)


@pytest.mark.parametrize("version", ["5.17", "6.0", "6.1.100"])
def test_e11_below_6_2_needs_two(version: str) -> None:
    choice = era_for_version(version)
    assert choice.era is ERAS["E11"]
    with pytest.raises(UsageError):
        check_address_spaces(choice.era, 1, choice)


@pytest.mark.parametrize("version", ["6.2", "6.4", "6.7"])
def test_e11_from_6_2_accepts_one_and_two(version: str) -> None:
    choice = era_for_version(version)
    assert choice.era is ERAS["E11"]
    check_address_spaces(choice.era, 1, choice)
    check_address_spaces(choice.era, 2, choice)


def test_e11_and_e12_by_era_alone_accept_one() -> None:
    check_address_spaces(ERAS["E11"], 1, None)
    check_address_spaces(ERAS["E11"], 2, None)
    check_address_spaces(ERAS["E12"], 1, None)
    check_address_spaces(ERAS["E12"], 1, era_for_version("6.8"))
    check_address_spaces(ERAS["E12"], 1, era_for_version("6.18"))


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("E0", 2),
        ("E1", 2),
        ("E2", 2),
        ("E3", 2),
        ("E4", 1),
        ("E5", 1),
        ("E6", 1),
        ("E9", 1),
        ("E10", 1),
        ("E11", 3),
        ("E12", 3),
        ("E12", 0),
    ],
)
def test_impossible_address_space_counts(name: str, bad: int) -> None:
    with pytest.raises(UsageError) as info:
        check_address_spaces(ERAS[name], bad, None)
    assert f"era {name}" in str(info.value)
    assert int(info.value.exit_code) == 2


def test_e3_refuses_two_and_e4_refuses_one() -> None:
    with pytest.raises(UsageError, match="era E3 has 1"):
        check_address_spaces(ERAS["E3"], 2, None)
    with pytest.raises(UsageError, match="era E4 has 2"):
        check_address_spaces(ERAS["E4"], 1, None)
    check_address_spaces(ERAS["E3"], 1, None)
    check_address_spaces(ERAS["E4"], 2, None)


@pytest.mark.parametrize(("version", "nas"), [("3.18", 2), ("4.1", 2), ("4.2", 1), ("5.10", 1)])
def test_kernel_versions_refuse_counts_they_could_not_have(version: str, nas: int) -> None:
    choice = era_for_version(version)
    with pytest.raises(UsageError, match=f"kernel {version}"):
        check_address_spaces(choice.era, nas, choice)
