"""The column form of events: round trips, merging, records on demand."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings

from kvmgen.trace.records import Event, Op, Window
from kvmgen.trace.table import EventTable, TableEvents, merge_by_index
from tests.property.strategies import traces


@settings(max_examples=60)
@given(trace=traces(2))
def test_records_round_trip(trace):
    table = EventTable.from_events(trace.events)
    assert table.records() == tuple(trace.events)
    assert TableEvents(table) == trace.events
    assert len(TableEvents(table)) == len(trace.events)


def _noted(events):
    return [replace(e, note=f"n{e.index}") if e.index % 3 == 0 else e for e in events]


@settings(max_examples=60)
@given(trace=traces(2))
def test_merge_puts_every_event_back_in_place(trace):
    events = _noted(trace.events)
    # Split by a rule that sends events with during rows both ways.
    a = [e for e in events if e.index % 2 == 0]
    b = [e for e in events if e.index % 2 == 1]
    merged = merge_by_index(EventTable.from_events(a), EventTable.from_events(b))
    assert merged.records() == tuple(events)
    assert merged.event_notes() == {e.index: e.note for e in events if e.note}


def test_merge_of_a_block_far_into_a_trace():
    # A block of a streamed trace: indexes near 10^12 must not size anything by them.
    start = 10**12
    during = (Event(index=start + 1, op=Op.ACCESS, sub=0, gfn=3, window=Window.IN_PROGRESS),)
    a = [Event(index=start, op=Op.ACCESS, gfn=1), Event(index=start + 2, op=Op.ACCESS, gfn=2)]
    b = [Event(index=start + 1, op=Op.DELETE, slot=0, during=during)]
    merged = merge_by_index(EventTable.from_events(a), EventTable.from_events(b))
    assert merged.records() == (a[0], b[0], a[1])


def test_table_events_index_and_slice():
    events = [Event(index=i, op=Op.ACCESS, gfn=i) for i in range(5)]
    seq = TableEvents(EventTable.from_events(events))
    assert seq[0] == events[0] and seq[-1] == events[-1]
    assert seq[1:3] == tuple(events[1:3])
