"""The report (kvmgen/report/*): document keys of model.md section 5, comparisons,
JSON bytes and schema, the rich tables and the plain-language reasons.

Expected numbers are worked out by hand from docs/model.md; the comments show how.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rich.console import Console

from kvmgen.inputs import open_trace
from kvmgen.model.eras import ERAS
from kvmgen.model.policy import parse_policy
from kvmgen.model.versions import era_for_version
from kvmgen.report.document import DELTA_METRICS, build_document, comparisons, metrics, run_dict
from kvmgen.report.explain import event_records, stale_reason, wrap_reason, zap_reason
from kvmgen.report.json_report import dumps, dumps_line, schema
from kvmgen.report.table import render, verdicts
from kvmgen.session import Session, Target, resolve_target, run_session
from kvmgen.stats import OUTCOMES
from kvmgen.trace.records import Event, Op, Trace, VmHeader, Window

pytestmark = pytest.mark.usefixtures("warm_engine")

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "traces"
TWO64 = 1 << 64
U64 = TWO64 - 1


def make_trace(*events: Event, path: str = "hand-built") -> Trace:
    numbered = tuple(
        Event(
            index=i,
            op=e.op,
            address_space=e.address_space,
            slot=e.slot,
            gfn=e.gfn,
            pages=e.pages,
            flags=e.flags,
            vcpu=e.vcpu,
            repeat=e.repeat,
            during=tuple(
                Event(
                    index=i,
                    op=d.op,
                    sub=j,
                    gfn=d.gfn,
                    vcpu=d.vcpu,
                    window=d.window,
                )
                for j, d in enumerate(e.during)
            ),
        )
        for i, e in enumerate(events)
    )
    return Trace(path=path, format="yaml", version=1, vm=VmHeader(), events=numbered)


def access(gfn: int, vcpu: int = 0, window: Window = Window.NONE) -> Event:
    return Event(index=0, op=Op.ACCESS, gfn=gfn, vcpu=vcpu, window=window)


def create(slot: int, gfn: int, pages: int, during: tuple[Event, ...] = ()) -> Event:
    return Event(index=0, op=Op.CREATE, slot=slot, gfn=gfn, pages=pages, during=during)


def flags(slot: int, repeat: int = 1) -> Event:
    return Event(index=0, op=Op.FLAGS, slot=slot, repeat=repeat)


def session_for(trace: Trace, target: Target, **kwargs: Any) -> Session:
    return run_session(trace, [target], **kwargs)


@pytest.fixture(scope="module")
def e5(warm_engine: None) -> Session:
    """traces/e5-undetected-wrap.yaml on 4.19 (E5), historical and none."""
    trace = open_trace(TRACES / "e5-undetected-wrap.yaml")
    return run_session(trace, [resolve_target(trace, None, None)])


@pytest.fixture(scope="module")
def probe(warm_engine: None) -> Session:
    """traces/wrap-probe-6.18.yaml: 6.18 (E12), NAS 1, 1 create + 1,099,999 flags."""
    trace = open_trace(TRACES / "wrap-probe-6.18.yaml")
    return run_session(trace, [resolve_target(trace, None, None)])


@pytest.fixture(scope="module")
def e3(warm_engine: None) -> Session:
    """E3, 1 create + 2 flags: 3 bumps of +2 from 2^64 - 150 (historical) or 0 (none)."""
    trace = make_trace(create(0, 0x100, 16), flags(0, repeat=2))
    return run_session(trace, [Target(ERAS["E3"])])


def e2_cache_trace() -> Trace:
    # Three vCPUs each cache an MMIO gfn; a create maps all three as RAM. E2's vCPU
    # cache carries no generation, so each vCPU's next access is a cache hit on RAM:
    # three harmful stale hits, three records (different vCPUs).
    return make_trace(
        access(0x200, 0),
        access(0x201, 1),
        access(0x202, 2),
        create(0, 0x200, 0x10),
        access(0x200, 0),
        access(0x201, 1),
        access(0x202, 2),
    )


def e0_trace() -> Trace:
    # E0: vCPU 0 makes an MMIO SPTE for 0x300; a create maps 0x300 as RAM and vCPU 1
    # accesses it before E0's MMIO drop: the check has no generation and passes.
    return make_trace(
        access(0x300, 0),
        create(0, 0x300, 4, during=(access(0x300, 1, Window.BEFORE_ZAP),)),
        access(0x300, 1),
    )


# ---- run_dict: model.md section 5 keys, typed


SECTION5 = {
    "era": str,
    "address_spaces": int,
    "updates": int,
    "bumps": list,
    "final_generation": list,
    "wraps": list,
    "zaps": dict,
    "accesses": dict,
    "stale_hits": dict,
    "costs": dict,
}


def check_run_dict(run: dict[str, Any]) -> None:
    for key, kind in SECTION5.items():
        assert key in run, key
        assert isinstance(run[key], kind), key
    assert "kernel" in run and (run["kernel"] is None or isinstance(run["kernel"], str))
    assert "bias" in run and (run["bias"] is None or type(run["bias"]) is int)
    assert re.fullmatch(r"E([0-9]|1[0-2])", run["era"])
    nas = run["address_spaces"]
    assert len(run["bumps"]) == nas
    assert len(run["final_generation"]) == nas
    for g in run["final_generation"]:
        assert type(g) is int
        assert 0 <= g <= U64
    for w in run["wraps"]:
        assert {"as", "update", "detected"} <= set(w)
        assert type(w["as"]) is int and type(w["update"]) is int
        assert type(w["detected"]) is bool
    assert type(run["zaps"]["wrap"]) is int
    assert type(run["zaps"]["memslot_flush"]) is int
    for name in OUTCOMES:
        assert type(run["accesses"][name]) is int
    assert type(run["stale_hits"]["harmful"]) is int
    assert type(run["stale_hits"]["benign"]) is int
    assert isinstance(run["stale_hits"]["list"], list)
    assert all(type(v) is int for v in run["costs"].values())


def test_run_dict_keys_and_types(e5: Session, probe: Session, e3: Session) -> None:
    for session in (e5, probe, e3):
        for run in session.runs:
            check_run_dict(run_dict(run))


def test_e5_run_dicts_hand_computed(e5: Session) -> None:
    hist, none = (run_dict(r) for r in e5.runs)
    assert hist["era"] == none["era"] == "E5"
    assert hist["kernel"] == "4.19"
    assert hist["address_spaces"] == 2
    assert (hist["bias"], none["bias"]) == (150, 0)
    assert hist["initial_generation"] == [TWO64 - 150, TWO64 - 148]
    # updates: 3 creates; bumps: AS 0 = 2 creates + 262,143 raw, AS 1 = 1 create + 40 raw
    assert hist["updates"] == none["updates"] == 3
    assert hist["bumps"] == none["bumps"] == [262_145, 41]
    # historical: AS 0 = -150 + 4 * 262,145 = 1,048,430; AS 1 = -148 + 4 * 41 = 16
    assert hist["final_generation"] == [1_048_430, 16]
    # none: AS 0 = 4 * 262,145; AS 1 = 2 + 4 * 41
    assert none["final_generation"] == [1_048_580, 166]
    # historical: AS 1 wraps at its bump 37 (zap, detected; still update 2), AS 0 at
    # its bump 38 (update 3) with no zap: 0xffffe -> 0x2
    assert hist["wraps"] == [
        {"as": 1, "update": 2, "bump": 37, "detected": True, "before": 0xFFFFC, "after": 0},
        {"as": 0, "update": 3, "bump": 38, "detected": False, "before": 0xFFFFE, "after": 2},
    ]
    assert (hist["wraps_total"], hist["wraps_undetected"]) == (2, 1)
    # none: AS 0 reaches 2^20 at its bump 262,144 (zap, detected); AS 1 = 2 mod 4 never
    assert none["wraps"] == [
        {"as": 0, "update": 3, "bump": 262_144, "detected": True, "before": 0xFFFFC, "after": 0}
    ]
    assert hist["zaps"]["wrap"] == none["zaps"]["wrap"] == 1
    assert hist["zaps"]["memslot_flush"] == none["zaps"]["memslot_flush"] == 0
    # the historical zap (AS 1, before any access) drops nothing; the no-bias zap drops
    # the MMIO SPTE of 0xfebf1
    assert hist["zaps"]["dropped"]["wrap"] == {"ram": 0, "mmio": 0}
    assert none["zaps"]["dropped"]["wrap"] == {"ram": 0, "mmio": 1}
    assert hist["accesses"] == {
        **dict.fromkeys(OUTCOMES, 0),
        "mmio_slow_path": 1,
        "mmio_fast_path": 1,
        "total": 2,
    }
    assert none["accesses"] == {
        **dict.fromkeys(OUTCOMES, 0),
        "mmio_slow_path": 1,
        "ram_refault": 1,
        "total": 2,
    }
    # the SPTE made at -146 stores 2^20 - 146 = 0xfff6e; AS 0 ends at exactly that
    assert hist["stale_hits"]["harmful"] == 1
    assert hist["stale_hits"]["benign"] == 0
    (hit,) = hist["stale_hits"]["list"]
    assert hit == {
        "update": 3,
        "event": 6,
        "during": None,
        "as": 0,
        "gfn": 0xFEBF1,
        "vcpu": 1,
        "source": "spte",
        "kind": "harmful",
        "race": None,
        "count": 1,
        "spte": {"generation": TWO64 - 146, "stored": 0xFFF6E},
        "cache": None,
        "current": {"generation": 0xFFF6E, "mmio_generation": 0xFFF6E},
    }
    assert none["stale_hits"] == {"harmful": 0, "benign": 0, "records": 0, "list": []}
    # costs: exit 8,796 + slow path 11,796 + one zap 15,000 + 262,186 bumps x 99,000
    assert hist["costs"]["total"] == 8_796 + 11_796 + 15_000 + 262_186 * 99_000
    assert hist["costs"]["invalidation"] == 15_000
    # none: slow path + RAM refault 3,000 + zap 15,000 + 123.6 (one SPTE) -> 15,124
    assert none["costs"]["invalidation"] == 15_124 + 3_000
    assert hist["records_truncated"] == {"wraps": 0, "zap_events": 0, "stale_hits": 0}


def test_final_generation_above_2_63_is_an_exact_integer(e3: Session) -> None:
    hist, none = (run_dict(r) for r in e3.runs)
    assert hist["final_generation"] == [TWO64 - 150 + 3 * 2]  # 0xffffffffffffff70
    assert none["final_generation"] == [6]
    data = dumps(build_document(e3))
    assert b"18446744073709551472" in data
    assert json.loads(data)["runs"][0]["final_generation"] == [18_446_744_073_709_551_472]


def test_e0_bias_is_null(warm_engine: None) -> None:
    session = session_for(e0_trace(), Target(ERAS["E0"]))
    (run,) = session.runs
    doc = run_dict(run)
    check_run_dict(doc)
    assert doc["bias"] is None
    assert doc["policies"] == ["historical", "none"]
    (comp,) = comparisons(session)
    assert comp["same_run"] is True
    assert comp["historical_bias"] is None
    # the before_zap access passes E0's check on an SPTE of a gfn that is RAM now
    (hit,) = doc["stale_hits"]["list"]
    assert (hit["kind"], hit["race"], hit["source"], hit["vcpu"]) == (
        "harmful",
        "before_zap",
        "spte",
        1,
    )
    assert hit["spte"]["stored"] is None
    assert hit["current"]["mmio_generation"] is None


# ---- comparisons


def test_comparison_delta_is_historical_minus_none(e5: Session) -> None:
    (comp,) = comparisons(e5)
    hist, none = e5.runs
    assert comp["era"] == "E5"
    assert comp["kernel"] == "4.19"
    assert comp["address_spaces"] == 2
    assert comp["historical_bias"] == 150
    assert comp["same_run"] is False
    assert list(comp["delta"]) == list(DELTA_METRICS)
    a, b = metrics(hist), metrics(none)
    assert comp["delta"] == {m: a[m] - b[m] for m in DELTA_METRICS}
    # hand-computed from the two runs above
    assert comp["delta"] == {
        "wrap_zaps": 0,
        "memslot_flush_zaps": 0,
        "sptes_dropped": -1,
        "ram_refaults": -1,
        "mmio_refaults": 0,
        "mmio_slow_paths": 0,
        "wraps": 1,
        "undetected_wraps": 1,
        "harmful_stale_hits": 1,
        "benign_stale_hits": 0,
        "invalidation_cycles": 15_000 - 18_124,
        "total_cycles": 8_796 - 3_000 - 124,  # an MMIO exit vs a refault and a dropped SPTE
    }


def test_comparison_direction_does_not_depend_on_request_order(e5: Session) -> None:
    reordered = run_session(
        e5.trace,
        [resolve_target(e5.trace, None, None)],
        policies=[parse_policy("none"), parse_policy("historical")],
    )
    assert [r.spec.policies for r in reordered.runs] == [("none",), ("historical",)]
    assert comparisons(reordered)[0]["delta"] == comparisons(e5)[0]["delta"]


def test_single_policy_gives_no_comparison(e5: Session) -> None:
    only = run_session(
        e5.trace, [resolve_target(e5.trace, None, None)], policies=[parse_policy("none")]
    )
    assert comparisons(only) == []
    assert build_document(only)["comparisons"] == []


def test_e12_same_run(probe: Session) -> None:
    (run,) = probe.runs
    doc = run_dict(run)
    assert doc["era"] == "E12"
    assert doc["kernel"] == "6.18"
    assert doc["address_spaces"] == 1
    assert doc["policies"] == ["historical", "none"]
    assert doc["bias"] == 0
    assert doc["updates"] == 1_100_000
    assert doc["bumps"] == [1_100_000]
    assert doc["final_generation"] == [1_100_000]
    # kernel-semantics.md 11: zaps at updates 524,288 and 1,048,576 exactly
    assert [(w["update"], w["detected"]) for w in doc["wraps"]] == [
        (524_288, True),
        (1_048_576, True),
    ]
    assert [(z["kind"], z["update"]) for z in doc["zaps"]["events"]] == [
        ("wrap", 524_288),
        ("wrap", 1_048_576),
    ]
    assert doc["zaps"]["memslot_flush"] == 0
    (comp,) = comparisons(probe)
    assert comp["same_run"] is True
    assert comp["historical_bias"] == 0
    assert set(comp["delta"].values()) == {0}


def test_records_truncated_with_a_small_record_limit(probe: Session) -> None:
    small = run_session(probe.trace, [resolve_target(probe.trace, None, None)], record_limit=1)
    doc = run_dict(small.runs[0])
    assert doc["wraps_total"] == 2
    assert len(doc["wraps"]) == 1
    assert doc["wraps"][0]["update"] == 524_288
    assert doc["zaps"]["wrap"] == 2
    assert len(doc["zaps"]["events"]) == 1
    assert doc["records_truncated"] == {"wraps": 1, "zap_events": 1, "stale_hits": 0}
    full = run_dict(probe.runs[0])
    assert full["records_truncated"] == {"wraps": 0, "zap_events": 0, "stale_hits": 0}


def test_stale_records_truncated(warm_engine: None) -> None:
    trace = e2_cache_trace()
    full = run_dict(session_for(trace, Target(ERAS["E2"])).runs[0])
    assert full["stale_hits"]["harmful"] == 3
    assert full["stale_hits"]["records"] == 3
    assert [h["vcpu"] for h in full["stale_hits"]["list"]] == [0, 1, 2]
    assert {h["source"] for h in full["stale_hits"]["list"]} == {"vcpu_cache"}
    assert full["accesses"]["cache_hit"] == 3
    cut = run_dict(session_for(trace, Target(ERAS["E2"]), record_limit=1).runs[0])
    assert cut["stale_hits"]["harmful"] == 3  # counts stay exact
    assert cut["stale_hits"]["records"] == 3
    assert len(cut["stale_hits"]["list"]) == 1
    assert cut["records_truncated"]["stale_hits"] == 2


# ---- JSON bytes and schema


def test_dumps_is_deterministic_with_trailing_newline(e5: Session) -> None:
    again = run_session(e5.trace, [resolve_target(e5.trace, None, None)])
    first = dumps(build_document(e5))
    second = dumps(build_document(again))
    assert first == second
    assert first.endswith(b"}\n")
    assert not first.endswith(b"\n\n")
    assert json.loads(first) == build_document(e5)
    # fixed key order: the version first
    assert first.startswith(b'{\n  "kvmgen_report": 3,')


def test_document_header(e5: Session) -> None:
    doc = build_document(e5)
    path = TRACES / "e5-undetected-wrap.yaml"
    assert doc["kvmgen_report"] == 3
    # content identity, not the file's bytes: no path, no format
    assert doc["trace"] == {"sha256": e5.digest(), "events": 7}
    assert doc["trace"]["sha256"] != hashlib.sha256(path.read_bytes()).hexdigest()
    assert doc["outcomes"] == list(OUTCOMES)
    assert doc["partial"] is False
    assert doc["skipped"] == []
    assert doc["cost_model"]["memslot_bump_us"]["cycles"] == pytest.approx(99_000)
    assert "cycles" not in doc["cost_model"]["clock_ghz"]
    assert build_document(e5, partial=True)["partial"] is True


def test_dumps_line_is_one_line() -> None:
    line = dumps_line({"b": 1, "a": [U64]})
    assert line == b'{"b":1,"a":[18446744073709551615]}\n'


def test_schema_is_valid_and_validates_documents(
    e5: Session, probe: Session, e3: Session, warm_engine: None
) -> None:
    spec = schema()
    validator_cls = jsonschema.validators.validator_for(spec)
    validator_cls.check_schema(spec)
    validator = validator_cls(spec)
    sessions = [
        e5,
        probe,
        e3,
        session_for(e0_trace(), Target(ERAS["E0"])),
        session_for(e2_cache_trace(), Target(ERAS["E2"]), record_limit=1),
        session_for(
            make_trace(create(0, 0, 8), flags(0, 3)),
            Target(ERAS["E11"], era_for_version("6.4")),
            address_spaces=1,
            policies=[parse_policy(p) for p in ("historical", "none", "150")],
        ),
    ]
    for session in sessions:
        doc = json.loads(dumps(build_document(session)))
        validator.validate(doc)


def test_schema_rejects_broken_documents(e3: Session) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    doc = json.loads(dumps(build_document(e3)))
    too_big = json.loads(json.dumps(doc))
    too_big["runs"][0]["final_generation"] = [TWO64]
    assert not validator.is_valid(too_big)
    no_runs = {k: v for k, v in doc.items() if k != "runs"}
    assert not validator.is_valid(no_runs)
    bad_era = json.loads(json.dumps(doc))
    bad_era["runs"][0]["era"] = "E13"
    assert not validator.is_valid(bad_era)


# ---- rich rendering


def rendered(session: Session) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    render(session, console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]


def test_render_side_by_side_with_verdict(e5: Session) -> None:
    text = rendered(e5)
    lines = text.splitlines()
    header = next(line for line in lines if "historical, bias 150" in line)
    assert "none, bias 0" in header  # the two runs are columns of one table
    updates = next(line for line in lines if cells(line)[:1] == ["updates"])
    # label, then one cell per run (a difference column may follow)
    assert cells(updates)[:3] == ["updates", "3", "3"]
    wrap_zaps = next(line for line in lines if cells(line)[:1] == ["wrap zaps"])
    assert cells(wrap_zaps)[:3] == ["wrap zaps", "1", "1"]
    harmful = next(line for line in lines if cells(line)[:1] == ["stale hits: harmful"])
    assert cells(harmful)[:3] == ["stale hits: harmful", "1", "0"]
    verdict = [line for line in lines if line.startswith("verdict E5 (4.19): bias 150 vs none")]
    assert len(verdict) == 1
    for part in (
        "0 wrap zaps",
        "-1 SPTE dropped",
        "-1 refault",
        "-3.12 k invalidation cycles",
        "+1 harmful and 0 benign stale hits",
        "+1 undetected wrap.",
    ):
        assert part in verdict[0]
    assert "UNDETECTED" in text
    assert "0xfebf1" in text


def test_render_single_run_for_e12(probe: Session) -> None:
    text = rendered(probe)
    header = next(line for line in text.splitlines() if "bias 0" in line)
    assert "historical/none, bias 0" in header
    assert "verdict E12 (6.18):" in text
    assert "one run serves both" in text
    assert verdicts(probe) == [
        "E12 (6.18): the historical policy has no bias here; one run serves both."
    ]


# ---- plain-language reasons


def test_stale_reason_names_the_gfn_in_hex(e5: Session) -> None:
    hist = e5.runs[0]
    (hit,) = hist.result.stale_hits
    text = stale_reason(hit, hist.spec.era)
    assert "0xfebf1" in text
    assert "0xffffffffffffff6e" in text  # made at 2^64 - 146
    assert "0xfff6e" in text
    assert "RAM now" in text


def test_stale_reason_names_the_era_when_it_explains_the_hit(warm_engine: None) -> None:
    e2 = session_for(e2_cache_trace(), Target(ERAS["E2"])).runs[0]
    text = stale_reason(e2.result.stale_hits[0], e2.spec.era)
    assert "gfn 0x200" in text
    assert "E2" in text
    assert "vCPU 0" in text
    e0 = session_for(e0_trace(), Target(ERAS["E0"])).runs[0]
    text = stale_reason(e0.result.stale_hits[0], e0.spec.era)
    assert "gfn 0x300" in text
    assert "E0" in text
    assert "before_zap" in text


def test_wrap_and_zap_reasons(e5: Session) -> None:
    hist = e5.runs[0]
    era = hist.spec.era
    detected, silent = hist.result.wraps
    assert "20-bit" in wrap_reason(detected, era)
    assert "0xffffc -> 0x0" in wrap_reason(detected, era)
    text = wrap_reason(silent, era)
    assert "0xffffe -> 0x2" in text
    assert "bump 38" in text
    assert "undetected" in text
    (zap,) = hist.result.zap_events
    text = zap_reason(zap, era)
    assert "E5" in text
    assert "AS 1" in text
    assert "bump 37" in text


def test_event_records(e5: Session) -> None:
    hist = e5.runs[0]
    notes = {e.index: e.note for e in e5.trace.events if e.note}
    records = event_records(hist, notes)
    assert [(r["type"], r["update"]) for r in records] == [
        ("zap", 2),
        ("wrap", 2),
        ("wrap", 3),
        ("stale_hit", 3),
    ]
    for record in records:
        assert record["era"] == "E5"
        assert record["kernel"] == "4.19"
        assert record["bias"] == 150
        assert record["why"]
        assert dumps_line(record).count(b"\n") == 1
    stale = records[-1]
    assert stale["gfn"] == 0xFEBF1
    assert "0xfebf1" in stale["why"]
    assert stale["note"] == "262,144 AS 0 bumps after the stamp"
