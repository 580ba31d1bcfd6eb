"""The one number formatter, counted nouns and the one run label (kvmgen.formatting)."""

from __future__ import annotations

import pytest

from kvmgen import formatting as f
from kvmgen.gate.metrics import RunId
from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS
from kvmgen.model.policy import parse_policy, resolve_runs
from kvmgen.model.versions import era_for_version


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (812, "812"),
        (999.4, "999"),
        (999.6, "1.00 k"),
        (3124, "3.12 k"),
        (15_000, "15.0 k"),
        (713_100, "713 k"),
        (999_600, "1.00 M"),
        (25_432_079, "25.4 M"),
        (1.98e9, "1.98 G"),
        (5e12, "5.00 T"),
        (-3124, "-3.12 k"),
    ],
)
def test_cycles_three_significant_digits(value, text):
    assert f.cycles(value) == text


def test_signed_values():
    assert f.signed(0) == "0"
    assert f.signed(1) == "+1"
    assert f.signed(-3124) == "-3,124"
    assert f.cycles(15_000, sign=True) == "+15.0 k"
    assert f.cycles(-3124, sign=True) == "-3.12 k"
    assert f.cycles(0, sign=True) == "0"


def test_counts_numbers_percent_and_hex():
    assert f.count(262_145) == "262,145"
    assert f.number(25_000_000) == "25,000,000"
    assert f.number(2e9) == "2,000,000,000"
    assert f.number(12.5) == "12.5"
    assert f.percent(0.891) == "+0.89%"
    assert f.percent(-12.5) == "-12.50%"
    assert f.hexadecimal(0xFFF6E) == "0xfff6e"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (0, "0 s"),
        (0.0004, "400 us"),
        (0.5, "500 ms"),
        (9.98333, "9.98 s"),
        (17, "17.0 s"),
        (59.99, "1.00 min"),
        (9000, "2.50 h"),
        (86400 * 12.1, "12.1 d"),
    ],
)
def test_seconds(value, text):
    assert f.seconds(value) == text


def test_long_durations_and_rates():
    assert f.seconds(86400 * 800).endswith(" y")
    assert f.rate(30) == "30/s"
    assert f.rate(2000 / 60) == "33.3/s"
    assert f.rate(0.5) == "0.5/s"
    assert f.rate(12_345) == "12.3 k/s"


@pytest.mark.parametrize(
    ("n", "noun", "irregular", "text"),
    [
        (1, "candidate", None, "1 candidate"),
        (2, "candidate", None, "2 candidates"),
        (0, "harmful stale hit", None, "0 harmful stale hits"),
        (1, "undetected wrap", None, "1 undetected wrap"),
        (1, "racing access", "racing accesses", "1 racing access"),
        (3, "racing access", "racing accesses", "3 racing accesses"),
        (2, "vCPU", None, "2 vCPUs"),
        (2, "frame", None, "2 frames"),
        (1_000, "bump", None, "1,000 bumps"),
        (2, "era not run", "eras not run", "2 eras not run"),
    ],
)
def test_plural(n, noun, irregular, text):
    assert f.plural(n, noun, irregular) == text


def test_plural_signed():
    assert f.plural_signed(-1, "SPTE dropped", "SPTEs dropped") == "-1 SPTE dropped"
    assert f.plural_signed(0, "wrap zap") == "0 wrap zaps"
    assert f.plural_signed(2, "refault") == "+2 refaults"


def test_run_label_names_kernel_or_range_policy_bias_and_odd_address_spaces():
    choice = era_for_version("4.19")
    (hist, none) = resolve_runs(
        choice.era, 2, [parse_policy("historical"), parse_policy("none")], choice
    )
    assert hist.label == "E5 (4.19), historical, bias 150"
    assert none.label == "E5 (4.19), none, bias 0"
    assert hist.describe("\n") == "E5 (4.19)\nhistorical, bias 150"
    # No kernel asked for: the era's range stands beside it.
    (e7,) = resolve_runs(ERAS["E7"], 2, [parse_policy("none")])
    assert e7.label == "E7 (5.4-5.5), none, bias 0"
    # One address space where the era defaults to two is said; a literal bias reads as one.
    (one,) = resolve_runs(ERAS["E12"], 1, [parse_policy("none")])
    assert one.label == "E12 (6.8+), none, bias 0, 1 AS"
    (lit,) = resolve_runs(ERAS["E12"], 2, [parse_policy("literal:150")])
    assert lit.label == "E12 (6.8+), literal:150, bias -150 mod 2^64"
    (e0,) = resolve_runs(ERAS["E0"], 1, [parse_policy("historical")])
    assert e0.label == "E0 (up to 3.10), historical, no MMIO generation"
    slot = era_for_version("5.2")
    (variant,) = resolve_runs(E6_SLOT_FLUSH, 2, [parse_policy("none")], slot)
    assert variant.label == "E6 (5.2) [5.1-5.2], none, bias 0"


@pytest.mark.parametrize(
    ("era", "nas", "policies", "kernel"),
    [
        ("E5", 2, ["historical"], "4.19"),
        ("E12", 1, ["none"], None),
        ("E12", 2, ["literal:150"], "6.8"),
        ("E5", 2, ["literal:150", "historical"], None),
        ("E0", 1, ["historical", "none"], "3.10"),
    ],
)
def test_a_run_read_back_from_a_report_has_the_same_label(era, nas, policies, kernel):
    """check, diff, JUnit and Markdown name runs from report JSON: the live label."""
    from kvmgen.report.document import run_dict
    from kvmgen.session import RunOutcome

    choice = era_for_version(kernel) if kernel else None
    specs = resolve_runs(ERAS[era], nas, [parse_policy(p) for p in policies], choice)
    for spec in specs:
        run = RunOutcome(spec, _result(spec), _costs(spec))
        assert RunId.from_run(run_dict(run)).label == spec.label


def _result(spec):
    from kvmgen.engine.replay import replay_engine
    from kvmgen.trace.records import Trace, VmHeader

    return replay_engine(Trace("t", "yaml", 1, VmHeader(), ()), spec)


def _costs(spec):
    from kvmgen.model.costs import CostModel, run_costs

    return run_costs(CostModel(), spec.era, _result(spec))
