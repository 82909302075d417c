"""Training to a time budget (`optim.max_minutes`, `--max-minutes`): as many updates as fit, with a schedule that ends.

    >>> planned_updates(done=120, elapsed=30.0, budget=540.0, cap=100_000)   # 120 updates took 30 s: 9 min hold
    2160

A run with a budget does not know its length in updates, and the lr schedules (tri-stage, polynomial decay) are
functions of it. So the trainer measures: from update `MIN_UPDATES` (and `MIN_SECONDS` of training; the first
updates also build the kernels of each new batch shape) it sets the run's length to the updates that fit in the
budget at the speed so far, after every update, and the schedule stretches or shrinks with that estimate. Validation
and checkpoint time is part of the speed (it is part of the budget). At `FIX_AT` of the budget the length is fixed:
the rest of the schedule (the whole decay of a tri-stage schedule) then runs as planned. If the machine slows down
after that, the run would end late; at `OVERRUN` times the budget it stops (and says so) with its schedule not
finished. `optim.max_updates` caps the plan.

The planned length depends on the machine's speed, so two runs with a budget are not the same run bit for bit
(a run with `max_updates` alone is); the plan is part of the trainer state, so a resumed run keeps it.
"""

from __future__ import annotations

MIN_UPDATES = 10  # updates before the first plan
MIN_SECONDS = 5.0  # seconds of training before the first plan
FIX_AT = 0.5  # share of the budget after which the planned length no longer changes
OVERRUN = 1.1  # the run stops at this multiple of the budget, its schedule unfinished


def planned_updates(done: int, elapsed: float, budget: float, cap: int) -> int:
    """The run's length in updates: `done` updates took `elapsed` seconds, so `budget` seconds hold
    `done * budget / elapsed`; never fewer than `done` (a run past its budget stops now), never more than `cap`."""
    if done <= 0 or elapsed <= 0:
        return cap
    return max(done, min(cap, int(done * budget / elapsed)))


def can_plan(done: int, elapsed: float) -> bool:
    """Enough updates and time measured for a first estimate."""
    return done >= MIN_UPDATES and elapsed >= MIN_SECONDS
