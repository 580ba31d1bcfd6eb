"""Parsing and evaluating --max / --max-regression limits."""

from __future__ import annotations

import pytest

from kvmgen.errors import UsageError
from kvmgen.gate.limits import (
    MAX,
    MAX_REGRESSION,
    Limit,
    exceeds_max,
    exceeds_regression,
    merge_limits,
    parse_options,
    regression_percent,
)
from kvmgen.gate.metrics import METRICS


def test_max_values_last_one_wins():
    got = parse_options(["harmful_stale_hits=0", "total_cycles=2e9", "harmful_stale_hits=3"], MAX)
    assert got == {"harmful_stale_hits": 3, "total_cycles": 2e9}
    assert isinstance(got["harmful_stale_hits"], int)


def test_regression_all_then_specific_regardless_of_order():
    got = parse_options(["total_cycles=10%", "all=0"], MAX_REGRESSION)
    assert set(got) == set(METRICS)
    assert got["total_cycles"] == 10
    assert got["wrap_zaps"] == 0


def test_unknown_metric_is_one_line_listing_valid_names():
    with pytest.raises(UsageError) as info:
        parse_options(["harmful=0"], MAX)
    text = str(info.value)
    assert "\n" not in text
    assert "unknown metric 'harmful'" in text
    for metric in METRICS:
        assert metric in text
    # "all" is only a --max-regression shorthand
    with pytest.raises(UsageError, match="unknown metric 'all'"):
        parse_options(["all=0"], MAX)


@pytest.mark.parametrize(
    "text", ["wrap_zaps", "wrap_zaps=", "=3", "wrap_zaps=-1", "wrap_zaps=nan", "wrap_zaps=x"]
)
def test_bad_values(text):
    with pytest.raises(UsageError):
        parse_options([text], MAX)


def test_percent_sign_only_for_regressions():
    assert parse_options(["wraps=12.5%"], MAX_REGRESSION) == {"wraps": 12.5}
    with pytest.raises(UsageError):
        parse_options(["wraps=5%"], MAX)


def test_later_layers_win_per_metric():
    config = ({"wraps": 1, "wrap_zaps": 2}, {"total_cycles": 5})
    cli = ({"wraps": 0}, {})
    limits = merge_limits(config, cli)
    assert limits == (
        Limit(MAX, "wrap_zaps", 2),
        Limit(MAX, "wraps", 0),
        Limit(MAX_REGRESSION, "total_cycles", 5),
    )
    assert limits[1].text == "wraps <= 0"
    assert limits[2].text == "total_cycles <= baseline +5%"
    assert limits[2].option == "--max-regression total_cycles=5"


def test_max_is_inclusive():
    assert not exceeds_max(3, 3)
    assert exceeds_max(4, 3)
    assert exceeds_max(1, 0.5)


@pytest.mark.parametrize(
    ("old", "new", "pct", "bad"),
    [
        (100, 110, 10, False),
        (100, 111, 10, True),
        (100, 90, 0, False),
        (100, 100, 0, False),
        (100, 101, 0, True),
        (0, 0, 0, False),
        (0, 1, 1000, True),  # any rise from 0
        (3, 4, 33.4, False),
        (3, 4, 33.3, True),
    ],
)
def test_regression_boundaries(old, new, pct, bad):
    assert exceeds_regression(new, old, pct) is bad


def test_regression_percent():
    assert regression_percent(150, 100) == 50.0
    assert regression_percent(5, 0) is None
