"""YAML trace loading: exact records, YAML-specific typing, tags, aliases, documents."""

from __future__ import annotations

import hashlib
import textwrap

import pytest
import yaml

import kvmgen.trace.formats.yaml_full as yaml_loader
from kvmgen.errors import TraceError
from kvmgen.inputs import open_trace
from kvmgen.trace import (
    AccessKind,
    Event,
    Op,
    SlotDecl,
    Window,
)

MODEL_EXAMPLE = """\
kvmgen: 1                  # format version; required
vm:                        # optional header
  kernel: "4.19"
  address_spaces: 2
  vcpus: 2
  slots:
    - {slot: 3, as: 0, gfn: 0xfd000, pages: 0x1000}
events:
  - {op: create, slot: 0, gfn: 0x0, pages: 0xc0000}
  - {op: create, slot: 3, as: 1, gfn: 0xfd000, pages: 0x1000}
  - {op: access, gfn: 0xfebf1, vcpu: 1, kind: write}
  - {op: access, gpa: "0xfebf1000", repeat: 100}
  - {op: flags, slot: 0, flags: 1, repeat: 1000}
  - {op: move, slot: 0, gfn: 0x100}
  - {op: delete, slot: 0}
  - {op: bump, as: 1, count: 3}
  - op: create
    slot: 7
    gfn: 0x80000
    pages: 16
    during:
      - {op: access, gfn: 0x90000, window: before_zap}
      - {op: access, gfn: 0x80003, window: in_progress, vcpu: 1}
      - {op: access, gfn: 0x80004, window: before_zap}
      - {op: access, gfn: 0x80005, window: in_progress}
"""


def load(text: str, name: str = "t.yaml"):
    return open_trace(textwrap.dedent(text).encode(), name=name)


def error(text: str, name: str = "t.yaml") -> str:
    with pytest.raises(TraceError) as caught:
        load(text, name)
    return str(caught.value)


def events(body: str) -> tuple[Event, ...]:
    return load("kvmgen: 1\nevents:\n" + textwrap.dedent(body)).events


def test_model_example_header() -> None:
    trace = load(MODEL_EXAMPLE)
    assert trace.format == "yaml"
    assert trace.version == 1
    assert trace.path == "t.yaml"
    assert trace.sha256 == hashlib.sha256(MODEL_EXAMPLE.encode()).hexdigest()
    assert trace.vm.kernel == "4.19"
    assert trace.vm.era is None
    assert trace.vm.address_spaces == 2
    assert trace.vm.vcpus == 2
    assert trace.vm.line == 3
    assert trace.vm.slots == (SlotDecl(slot=3, address_space=0, gfn=0xFD000, pages=0x1000, line=7),)
    assert trace.max_address_space == 1
    assert trace.max_vcpu == 1


def test_model_example_events_exact() -> None:
    ev = load(MODEL_EXAMPLE).events
    assert ev[:8] == (
        Event(index=0, op=Op.CREATE, line=9, column=5, slot=0, gfn=0, pages=0xC0000, flags=0),
        Event(
            index=1,
            op=Op.CREATE,
            line=10,
            column=5,
            address_space=1,
            slot=3,
            gfn=0xFD000,
            pages=0x1000,
            flags=0,
        ),
        Event(index=2, op=Op.ACCESS, line=11, column=5, gfn=0xFEBF1, vcpu=1, kind=AccessKind.WRITE),
        Event(index=3, op=Op.ACCESS, line=12, column=5, gfn=0xFEBF1, repeat=100),
        Event(index=4, op=Op.FLAGS, line=13, column=5, slot=0, flags=1, repeat=1000),
        Event(index=5, op=Op.MOVE, line=14, column=5, slot=0, gfn=0x100, pages=0xC0000),
        Event(index=6, op=Op.DELETE, line=15, column=5, slot=0),
        Event(index=7, op=Op.BUMP, line=16, column=5, address_space=1, repeat=3),
    )


def test_during_is_stored_in_execution_order() -> None:
    create = load(MODEL_EXAMPLE).events[8]
    assert (create.op, create.line, create.column, create.slot, create.pages) == (
        Op.CREATE,
        17,
        5,
        7,
        16,
    )
    assert [(e.sub, e.window, e.gfn) for e in create.during] == [
        (1, Window.IN_PROGRESS, 0x80003),
        (3, Window.IN_PROGRESS, 0x80005),
        (0, Window.BEFORE_ZAP, 0x90000),
        (2, Window.BEFORE_ZAP, 0x80004),
    ]
    first = create.during[0]
    assert first == Event(
        index=8, op=Op.ACCESS, line=23, column=9, sub=1, gfn=0x80003, vcpu=1,
        window=Window.IN_PROGRESS,
    )  # fmt: skip


def test_iter_all_puts_during_after_its_update() -> None:
    trace = load(MODEL_EXAMPLE)
    flat = trace.iter_all()
    assert len(flat) == 13
    assert [e.sub for e in flat[-5:]] == [-1, 1, 3, 0, 2]


def test_unquoted_kernel_keeps_its_source_text() -> None:
    trace = load("kvmgen: 1\nvm: {kernel: 4.10}\nevents: []\n")
    assert trace.vm.kernel == "4.10"
    assert load("kvmgen: 1\nvm: {kernel: 5.2.1}\nevents: []\n").vm.kernel == "5.2.1"
    assert load("kvmgen: 1\nvm: {kernel: 6.10}\nevents: []\n").vm.kernel == "6.10"


def test_kernel_and_era_may_agree() -> None:
    trace = load("kvmgen: 1\nvm: {kernel: 4.10, era: E4}\nevents: []\n")
    assert (trace.vm.kernel, trace.vm.era) == ("4.10", "E4")
    assert load("kvmgen: 1\nvm: {era: e5}\nevents: []\n").vm.era == "E5"


def test_kernel_5_1_is_era_e6() -> None:
    # 5.1 maps to the E6 slot-flush variant; its era name is still E6.
    trace = load("kvmgen: 1\nvm: {kernel: '5.1', era: E6}\nevents: []\n")
    assert trace.vm.era == "E6"


def test_hex_in_every_spelling() -> None:
    ev = events("""\
        - {op: access, gfn: 0x1f}
        - {op: access, gfn: "0x1f"}
        - {op: access, gfn: "31"}
        - {op: access, gfn: 0X1F}
        - {op: access, gpa: 0x1f000}
        - {op: access, gpa: 0x1ffff}
    """)
    assert [e.gfn for e in ev] == [31] * 6


def test_toggle_flags_is_none_and_value_kept() -> None:
    ev = events("""\
        - {op: create, slot: 1, gfn: 0, pages: 1, flags: 2}
        - {op: flags, slot: 1}
        - {op: flags, slot: 1, flags: 0}
    """)
    assert [e.flags for e in ev] == [2, None, 0]


def test_t_and_note_are_kept() -> None:
    ev = events("""\
        - {op: access, gfn: 1, t: 3, note: first}
        - {op: access, gfn: 2, t: 1.25, note: "quoted: yes"}
        - {op: access, gfn: 3, note: 42}
        - {op: access, gfn: 4, note: 2024-01-01}
        - {op: access, gfn: 5}
    """)
    assert [(e.t, e.note) for e in ev] == [
        (3.0, "first"),
        (1.25, "quoted: yes"),
        (None, "42"),
        (None, "2024-01-01"),
        (None, None),
    ]
    assert isinstance(ev[0].t, float)


def test_explicit_core_tags_are_honoured() -> None:
    ev = events("""\
        - {op: access, gfn: !!int "0x10", note: !!str 5}
        - !!map {op: bump, count: !!int 2}
    """)
    assert (ev[0].gfn, ev[0].note, ev[1].repeat) == (16, "5", 2)


def test_empty_events_list_is_a_valid_trace() -> None:
    trace = load("kvmgen: 1\nevents: []\n")
    assert trace.events == ()
    assert (trace.max_address_space, trace.max_vcpu) == (0, 0)


def test_bom_and_crlf_are_accepted() -> None:
    data = b"\xef\xbb\xbfkvmgen: 1\r\nevents:\r\n  - {op: access, gfn: 7}\r\n"
    trace = open_trace(data, name="crlf.yaml")
    assert (trace.events[0].gfn, trace.events[0].line, trace.events[0].column) == (7, 3, 5)


def test_yaml_bools_are_not_integers() -> None:
    assert error("kvmgen: 1\nevents:\n  - {op: access, gfn: on}\n").endswith(
        "gfn: expected an integer, got true"
    )


def test_yaml_1_1_integer_forms_are_refused() -> None:
    for text in ("010", "0b11", "1_000", "1:30", "0o17"):
        message = error(f"kvmgen: 1\nevents:\n  - {{op: access, gfn: {text}}}\n")
        assert message.endswith(f"got '{text}'"), message


def test_alias_is_refused_where_it_appears() -> None:
    assert error("kvmgen: 1\nevents: []\nx: *nope\n").startswith("t.yaml:3:4: ")


def test_billion_laughs_is_refused_without_expansion() -> None:
    lines = ["kvmgen: 1", "events: []", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 40)]
    message = error("\n".join(lines) + "\n")
    assert message == "t.yaml:3:5: anchor &a0: anchors and aliases are not allowed"


def test_merge_key_is_just_an_unknown_key() -> None:
    message = error("kvmgen: 1\nevents:\n  - {op: access, gfn: 1, <<: {vcpu: 1}}\n")
    assert "unknown key '<<'" in message


def test_non_string_keys_are_named_by_their_text() -> None:
    message = error("kvmgen: 1\nevents:\n  - {op: access, gfn: 1, 7: x}\n")
    assert message.startswith("t.yaml:3:26: event 0 (access): 7: unknown key '7'")


def test_syntax_error_has_line_and_column() -> None:
    assert error("kvmgen: 1\nevents: [\n").startswith("t.yaml:3:1: YAML syntax error: ")


def test_null_document_is_empty() -> None:
    # The document holds one empty (null) scalar, found where the parser sees it.
    assert error("---\n...\n") == (
        "t.yaml:2:1: empty trace: expected a mapping with the keys kvmgen, vm and events"
    )


@pytest.fixture
def pure_python_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_loader, "_Loader", yaml.SafeLoader)


def test_pure_python_parser_gives_the_same_records(monkeypatch: pytest.MonkeyPatch) -> None:
    default = load(MODEL_EXAMPLE)
    monkeypatch.setattr(yaml_loader, "_Loader", yaml.SafeLoader)
    assert load(MODEL_EXAMPLE) == default


@pytest.mark.usefixtures("pure_python_loader")
def test_pure_python_parser_locates_bad_characters() -> None:
    assert error('kvmgen: 1\nevents: []\nx: "é\x07"\n') == (
        "t.yaml:3:6: YAML syntax error: character 0x0007 is not allowed"
    )


def test_c_parser_locates_bad_characters_after_multibyte_text() -> None:
    assert error('kvmgen: 1\nevents: []\nx: "é\x07"\n') == (
        "t.yaml:3:6: YAML syntax error: character 0x0007 is not allowed"
    )
