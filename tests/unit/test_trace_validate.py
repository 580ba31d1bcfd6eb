"""Format rules shared by both loaders, the bad-input fixtures, and the public API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from unittest.mock import patch

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kvmgen.errors import TraceError, UsageError
from kvmgen.inputs import open_trace
from kvmgen.trace import Op
from kvmgen.trace.checks import check_trace_spaces as check_trace_for_run
from kvmgen.trace.formats import detect_format
from kvmgen.trace.validate.fields import GFN, PAGES, SLOT, Problem, Where, check_range, parse_int
from kvmgen.trace.validate.layout import Slot, SlotTable

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"
EXPECTED: dict[str, str] = yaml.safe_load((BAD / "_expected.yaml").read_text("utf-8"))
BAD_FILES = sorted(p.name for p in BAD.iterdir() if not p.name.startswith("_"))


def load(text: str, name: str = "t.yaml"):
    return open_trace(text.encode(), name=name)


def error(text: str, name: str = "t.yaml") -> str:
    with pytest.raises(TraceError) as caught:
        load(text, name)
    return str(caught.value)


def trace_of(*events: str, header: str = ""):
    body = "".join(f"\n  - {e}" for e in events) or " []"
    return load(f"kvmgen: 1\n{header}events:{body}\n")


def error_of(*events: str, header: str = "") -> str:
    with pytest.raises(TraceError) as caught:
        trace_of(*events, header=header)
    return str(caught.value)


# --- the bad-input fixtures ------------------------------------------------------


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_fixture(name: str) -> None:
    assert name in EXPECTED, f"add {name} to tests/data/bad/_expected.yaml"
    with pytest.raises(TraceError) as caught:
        open_trace((BAD / name).read_bytes(), name=name)
    assert str(caught.value) == EXPECTED[name]


def test_every_expectation_has_a_fixture() -> None:
    assert sorted(EXPECTED) == BAD_FILES


def test_fixture_errors_are_one_line_with_exit_code_2() -> None:
    for name in BAD_FILES[:5]:
        with pytest.raises(TraceError) as caught:
            open_trace(BAD / name)
        assert "\n" not in str(caught.value)
        assert caught.value.exit_code == 2
        assert caught.value.path == str(BAD / name)


# --- integers and ranges ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (31, 31), ("31", 31), ("0x1f", 31), ("0X1F", 31), ("-5", -5), ("0", 0)],
)
def test_parse_int_accepts(value: object, expected: int) -> None:
    assert parse_int(value) == expected


@pytest.mark.parametrize(
    "value",
    [True, False, None, 1.0, "1.0", "010", "0b1", "1_000", " 5", "0x", "", "+7", "+0x1f", [1], {}],
)
def test_parse_int_refuses(value: object) -> None:
    with pytest.raises(Problem, match="expected an integer"):
        parse_int(value)


def test_parse_int_refuses_absurdly_long_decimal_text() -> None:
    with pytest.raises(Problem, match="a number with 5000 digits"):
        parse_int("9" * 5000)


def test_range_messages() -> None:
    with pytest.raises(Problem, match=r"^expected an integer >= 1, got -5$"):
        check_range(-5, PAGES)
    with pytest.raises(Problem, match=r"^expected an integer 0\.\.32767, got -1$"):
        check_range(-1, SLOT)
    with pytest.raises(Problem, match=r"got 1099511627776 \(0x10000000000\)$"):
        check_range(1 << 40, GFN)
    with pytest.raises(Problem, match=r"got a 301-bit number$"):
        check_range(1 << 300, GFN)
    assert check_range((1 << 40) - 1, GFN) == (1 << 40) - 1


# --- value rules -----------------------------------------------------------------


def test_gpa_becomes_gfn_by_shifting() -> None:
    trace = trace_of("{op: access, gpa: 0x12345678}", "{op: access, gpa: 0xfffffffffffff}")
    assert [e.gfn for e in trace.events] == [0x12345, (1 << 40) - 1]


def test_boundaries_are_inclusive() -> None:
    trace = trace_of(
        "{op: create, slot: 32767, as: 1, gfn: 0xfffffffff0, pages: 0x10}",
        "{op: access, gfn: 0xffffffffff, vcpu: 4095, repeat: 0x4000000000000000}",
        "{op: flags, slot: 32767, as: 1, flags: 0xffffffff}",
        "{op: bump, count: 0x4000000000000000}",
    )
    create, access, flags, bump = trace.events
    assert (create.slot, create.gfn + create.pages) == (32767, 1 << 40)
    assert (access.vcpu, access.repeat) == (4095, 1 << 62)
    assert flags.flags == (1 << 32) - 1
    assert bump.repeat == 1 << 62
    assert (trace.max_vcpu, trace.max_address_space) == (4095, 1)


def test_explicit_repeat_one_is_allowed_everywhere() -> None:
    trace = trace_of(
        "{op: create, slot: 0, gfn: 0, pages: 1, repeat: 1}",
        "{op: move, slot: 0, gfn: 8, repeat: 1}",
        "{op: flags, slot: 0, repeat: 1, during: [{op: access, gfn: 8, window: in_progress}]}",
        "{op: delete, slot: 0, repeat: 1}",
    )
    assert [e.repeat for e in trace.events] == [1, 1, 1, 1]


def test_during_on_every_update_op() -> None:
    window = "during: [{op: access, gpa: 0x2000, window: before_zap, repeat: 3, kind: write}]"
    trace = trace_of(
        f"{{op: create, slot: 0, gfn: 0, pages: 4, {window}}}",
        f"{{op: flags, slot: 0, flags: 1, {window}}}",
        f"{{op: move, slot: 0, gfn: 4, {window}}}",
        f"{{op: delete, slot: 0, {window}}}",
        "{op: create, slot: 1, gfn: 0, pages: 4, during: []}",
    )
    for event in trace.events[:4]:
        (sub,) = event.during
        assert (sub.op, sub.index, sub.sub, sub.gfn, sub.repeat) == (
            Op.ACCESS,
            event.index,
            0,
            2,
            3,
        )
    assert trace.events[4].during == ()


def test_vcpu_checked_against_header_only_when_given() -> None:
    assert trace_of("{op: access, gfn: 1, vcpu: 3}", header="vm: {vcpus: 4}\n").max_vcpu == 3
    assert trace_of("{op: access, gfn: 1, vcpu: 100}").max_vcpu == 100


def test_during_access_vcpu_and_as_count_in_maxima() -> None:
    trace = trace_of(
        "{op: create, slot: 0, gfn: 0, pages: 1, during: "
        "[{op: access, gfn: 9, as: 1, vcpu: 7, window: in_progress}]}"
    )
    assert (trace.max_address_space, trace.max_vcpu) == (1, 7)


def test_header_slots_count_in_max_address_space() -> None:
    trace = trace_of(header="vm:\n  slots:\n    - {slot: 0, as: 1, gfn: 0, pages: 1}\n")
    assert trace.max_address_space == 1
    assert trace.vm.slots[0].address_space == 1


def test_unknown_key_lists_what_the_op_takes() -> None:
    assert error_of("{op: delete, slot: 0, gfn: 1}").endswith(
        "unknown key 'gfn': expected one of op, slot, as, repeat, during, t, note"
    )


def test_first_problem_in_file_order_of_events_wins() -> None:
    message = error_of("{op: access, gfn: -1}", "{op: nope}")
    assert message.startswith("t.yaml:3:23: event 0 (access): gfn:")


def test_t_must_be_finite() -> None:
    assert error_of("{op: bump, count: 1, t: 1.0e+400}").endswith(
        "t: expected a finite number, got inf (a float)"
    )
    assert trace_of("{op: bump, count: 1, t: 0x" + "f" * 190 + "}").events[0].t == 2.0**760 - 1


def test_integer_beyond_float_range_is_not_finite() -> None:
    # Loaders cap integer text well below this; a tree built another way may not.
    with pytest.raises(TraceError, match="t: expected a finite number, got a 2001-bit number"):
        Where("x").number({"t": 1 << 2000}, "t")


def test_kernel_below_mmio_generation_and_far_future_load() -> None:
    assert load("kvmgen: 1\nvm: {kernel: '3.2'}\nevents: []\n").vm.kernel == "3.2"
    assert load("kvmgen: 1\nvm: {kernel: '7.1'}\nevents: []\n").vm.kernel == "7.1"


# --- slot layout -----------------------------------------------------------------


def test_adjacent_slots_do_not_overlap() -> None:
    trace = trace_of(
        "{op: create, slot: 0, gfn: 0x10, pages: 0x10}",
        "{op: create, slot: 1, gfn: 0x20, pages: 0x10}",
        "{op: create, slot: 2, gfn: 0x0, pages: 0x10}",
    )
    assert len(trace.events) == 3


def test_slot_ids_and_ranges_are_per_address_space() -> None:
    trace = trace_of(
        "{op: create, slot: 0, gfn: 0, pages: 16}",
        "{op: create, slot: 0, as: 1, gfn: 0, pages: 16}",
        "{op: delete, slot: 0}",
        "{op: flags, slot: 0, as: 1}",
    )
    assert [e.address_space for e in trace.events] == [0, 1, 0, 1]


def test_slot_id_and_range_are_free_again_after_delete() -> None:
    trace = trace_of(
        "{op: create, slot: 5, gfn: 0, pages: 16}",
        "{op: delete, slot: 5}",
        "{op: create, slot: 5, gfn: 8, pages: 16}",
    )
    assert trace.events[2].gfn == 8


def test_move_may_overlap_its_own_old_range() -> None:
    trace = trace_of(
        "{op: create, slot: 0, gfn: 0x100, pages: 0x10}",
        "{op: move, slot: 0, gfn: 0x108}",
        "{op: move, slot: 0, gfn: 0x100}",
    )
    assert [e.pages for e in trace.events] == [0x10, 0x10, 0x10]


def test_move_frees_the_old_range() -> None:
    trace_of(
        "{op: create, slot: 0, gfn: 0x100, pages: 0x10}",
        "{op: move, slot: 0, gfn: 0x200}",
        "{op: create, slot: 1, gfn: 0x100, pages: 0x10}",
    )


def test_containing_range_overlaps() -> None:
    assert error_of(
        "{op: create, slot: 0, gfn: 0x100, pages: 0x10}",
        "{op: create, slot: 1, gfn: 0x0, pages: 0x1000}",
    ).endswith(
        "slot 1 (gfn 0x0-0xfff) overlaps slot 0 (gfn 0x100-0x10f, line 3) in address space 0"
    )


def test_header_slots_can_be_updated_by_events() -> None:
    trace = trace_of(
        "{op: flags, slot: 3}",
        "{op: move, slot: 3, gfn: 0}",
        "{op: delete, slot: 3}",
        header="vm:\n  slots:\n    - {slot: 3, gfn: 0xfd000, pages: 0x1000, flags: 1}\n",
    )
    assert trace.vm.slots[0].flags == 1
    assert trace.events[1].pages == 0x1000


def test_slot_table_many_slots_stays_fast() -> None:
    table = SlotTable()
    for i in range(20_000):
        assert table.overlapping(i * 4, 4) is None
        table.add(Slot(i, i * 4, 4, None))
    assert table.overlapping(4 * 19_999 + 3, 10).slot == 19_999
    assert table.overlapping(2, 1).slot == 0
    assert table.remove(7).gfn == 28
    assert table.overlapping(28, 4) is None


# --- public API ------------------------------------------------------------------


def test_load_from_file_path_reads_and_hashes(tmp_path: Path) -> None:
    path = tmp_path / "trace.yml"
    data = b"kvmgen: 1\nevents: [{op: bump, count: 2}]\n"
    path.write_bytes(data)
    trace = open_trace(path)
    assert trace.path == str(path)
    assert trace.format == "yaml"
    assert trace.sha256 == hashlib.sha256(data).hexdigest()


def test_unreadable_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"missing\.yaml: no such file"):
        open_trace(tmp_path / "missing.yaml")
    with pytest.raises(TraceError, match="cannot read the trace"):
        open_trace(tmp_path)


def test_format_detection() -> None:
    assert detect_format("a.JSON", b"kvmgen: 1") == "json"
    assert detect_format("a.yml", b"{}") == "yaml"
    assert detect_format("<stdin>", b" \n\t{") == "json"
    assert detect_format("<stdin>", b"\xef\xbb\xbf{") == "json"
    assert detect_format("<stdin>", b"kvmgen: 1") == "yaml"
    assert detect_format("trace.txt", b"[") == "yaml"
    assert detect_format("a.json", b"kvmgen: 1", "yaml") == "yaml"
    with pytest.raises(UsageError, match="unknown trace format 'toml'"):
        detect_format("a.json", b"", "toml")


def test_stdin_name_is_used_in_messages() -> None:
    with pytest.raises(TraceError, match=r"^<stdin>:1:12: kvmgen: unsupported format version 3"):
        open_trace(b'{"kvmgen": 3, "events": []}', name="<stdin>")
    assert open_trace(b'{"kvmgen": 1, "events": []}', name="<stdin>").format == "json"


def test_fmt_overrides_suffix() -> None:
    trace = open_trace(b'{"kvmgen": 1, "events": []}', "json", name="x.yaml")
    assert trace.format == "json"


# --- check_trace_for_run -----------------------------------------------------------


def test_run_check_passes_when_every_as_exists() -> None:
    trace = trace_of("{op: bump, as: 1, count: 1}")
    check_trace_for_run(trace, 2)


def test_run_check_names_the_first_event() -> None:
    trace = trace_of(
        "{op: access, gfn: 1}", "{op: bump, as: 1, count: 1}", "{op: bump, as: 1, count: 2}"
    )
    with pytest.raises(TraceError) as caught:
        check_trace_for_run(trace, 1)
    assert str(caught.value) == (
        "t.yaml:4:5: event 1 (bump): as: address space 1 does not exist in this run, "
        "which has only address space 0"
    )


def test_run_check_names_a_during_access() -> None:
    event = (
        "{op: create, slot: 0, gfn: 0, pages: 1, during: "
        "[{op: access, gfn: 9, window: before_zap}, "
        "{op: access, gfn: 9, as: 1, window: in_progress}]}"
    )
    trace = trace_of(event)
    with pytest.raises(TraceError) as caught:
        check_trace_for_run(trace, 1)
    column = len("  - ") + event.rindex("{op: access") + 1
    assert str(caught.value).startswith(
        f"t.yaml:3:{column}: event 0 (create): during[1].as: address space 1 does not exist"
    )


def test_run_check_names_a_header_slot_first() -> None:
    trace = trace_of(
        "{op: bump, as: 1, count: 1}",
        header=(
            "vm:\n  slots:\n    - {slot: 0, gfn: 0, pages: 1}\n"
            "    - {slot: 0, as: 1, gfn: 0, pages: 1}\n"
        ),
    )
    with pytest.raises(TraceError) as caught:
        check_trace_for_run(trace, 1)
    assert str(caught.value) == (
        "t.yaml:5: vm.slots[1].as: address space 1 does not exist in this run, "
        "which has only address space 0"
    )


# --- robustness: nothing but TraceError, whatever the bytes ----------------------

GOOD = (
    b"kvmgen: 1\nvm: {kernel: '5.10', vcpus: 2, slots: [{slot: 1, gfn: 0x10, pages: 2}]}\n"
    b"events:\n  - {op: create, slot: 0, gfn: 0, pages: 4, during: "
    b"[{op: access, gfn: 1, window: in_progress}]}\n  - {op: access, gpa: '0x1000', vcpu: 1}\n"
)


def _load_or_message(name: str, data: bytes) -> object:
    try:
        return open_trace(data, name=name)
    except TraceError as caught:
        assert "\n" not in str(caught)
        return str(caught)


def _must_load_or_fail_cleanly(name: str, data: bytes) -> None:
    """One line on failure, and the same trace or message with the jitted scans forced on."""
    plain = _load_or_message(name, data)
    with patch("kvmgen.trace.formats.scan.SCAN_MIN_BYTES", 0):
        assert _load_or_message(name, data) == plain


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_trace_error(data: bytes) -> None:
    _must_load_or_fail_cleanly("fuzz.yaml", data)
    _must_load_or_fail_cleanly("fuzz.json", data)


@given(st.integers(0, len(GOOD) - 1), st.binary(min_size=1, max_size=4))
def test_mutated_good_trace_only_raises_trace_error(at: int, junk: bytes) -> None:
    data = GOOD[:at] + junk + GOOD[at + 1 :]
    _must_load_or_fail_cleanly("fuzz.yaml", data)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["op", "slot", "gfn", "pages", "as", "during", "window", "x"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_arbitrary_structures_only_raise_trace_error(events: object) -> None:
    doc = {"kvmgen": 1, "events": events}
    _must_load_or_fail_cleanly("fuzz.json", json.dumps(doc).encode())
    _must_load_or_fail_cleanly("fuzz.yaml", yaml.safe_dump(doc).encode())
