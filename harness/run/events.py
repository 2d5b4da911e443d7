"""Events: the first step at which a measure (or its ratio to a prediction) crosses a level, or
a predicted step. They are computed here, and only here: after a run, for its windows and its
record (:func:`event_step`), and while it runs, for measures that start at an event and for a run
that stops after one (:class:`EventWatcher`)."""

from __future__ import annotations

import math

import numpy as np

from .series import compared_series, predicted_value
from ..spec.types import EventSpec

__all__ = ["event_step", "EventWatcher"]


def event_step(event: EventSpec, trajectories: dict, hyper: dict) -> int | None:
    """The first step at which the event's series is ``>= above`` (or ``<= below``); for a
    predicted event, the predicted step rounded as the event says (None if not finite)."""
    if event.predicted:
        at = predicted_value(event.predict, event.args, hyper)
        if not math.isfinite(at):
            return None
        return int({"ceil": math.ceil, "floor": math.floor, "nearest": round}[event.round](at))
    steps, values, _ = compared_series(event.measure, event.predict, event.args, event.compare, trajectories, hyper)
    with np.errstate(invalid="ignore"):
        hit = values >= event.above if event.above is not None else values <= event.below
    idx = np.flatnonzero(hit)
    return int(steps[idx[0]]) if len(idx) else None


class EventWatcher:
    """Fires ``names`` during a run, each at the first step at which it happens, on the measures
    recorded at that step (a predicted event at its predicted step). ``fired``: event -> step."""

    def __init__(self, events: dict[str, EventSpec], names: set[str], bindings: dict):
        self.events, self.names, self.bindings = events, set(names), bindings
        self.fired: dict[str, int] = {}
        self._predicted = {n: event_step(events[n], {}, bindings) for n in self.names if events[n].predicted}

    def update(self, step: int, trajectories: dict) -> None:
        """Fire every watched event that happens at ``step`` (measures recorded up to ``step``)."""
        for name in self.names - set(self.fired):
            ev = self.events[name]
            if ev.predicted:
                hit = self._predicted[name] is not None and step >= self._predicted[name]
            else:
                hit = self._crossed_now(ev, trajectories, step)
            if hit:
                self.fired[name] = step

    def _crossed_now(self, event: EventSpec, trajectories: dict, step: int) -> bool:
        """Whether measured ``event``'s measure was recorded at ``step`` and crossed there."""
        t = trajectories[event.measure]
        if not t["steps"] or t["steps"][-1] != step:
            return False
        now = {k: {"steps": v["steps"][-1:], "values": v["values"][-1:]} for k, v in trajectories.items()
               if v["steps"] and v["steps"][-1] == step}
        return event_step(event, now, self.bindings) is not None
