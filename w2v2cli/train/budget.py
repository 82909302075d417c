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
finished. `optim.max_updates` caps the plan; 0 there means no cap (the budget alone sets the length: what
`--max-minutes` without `--max-updates` asks for). Until the first plan, such a run's lr schedule treats it as
endless (`w2v2cli.train.optim.lr_at` with no length: the warm-up's start).

The planned length depends on the machine's speed, so two runs with a budget are not the same run bit for bit
(a run with `max_updates` alone is); the plan is part of the trainer state, so a resumed run keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

from w2v2cli.train.state import TrainerState

MIN_UPDATES = 10  # updates before the first plan
MIN_SECONDS = 5.0  # seconds of training before the first plan
FIX_AT = 0.5  # share of the budget after which the planned length no longer changes
OVERRUN = 1.1  # the run stops at this multiple of the budget, its schedule unfinished


def planned_updates(done: int, elapsed: float, budget: float, cap: int | None) -> int | None:
    """The run's length in updates: `done` updates took `elapsed` seconds, so `budget` seconds hold
    `done * budget / elapsed`; never fewer than `done` (a run past its budget stops now), never more than `cap`
    (None: no cap). Nothing measured yet: the cap."""
    if done <= 0 or elapsed <= 0:
        return cap
    fits = int(done * budget / elapsed)
    return max(done, fits if cap is None else min(cap, fits))


def can_plan(done: int, elapsed: float) -> bool:
    """Enough updates and time measured for a first estimate."""
    return done >= MIN_UPDATES and elapsed >= MIN_SECONDS


@dataclass
class BudgetStep:
    """What one look at the budget decided: `replanned` (the planned length changed: tell the progress display and
    the task), `note` (a plan to announce: the first one, and the one fixed at FIX_AT), `overrun` (the warning of a
    run stopped at the overrun guard)."""

    replanned: bool = False
    note: str | None = None
    overrun: str | None = None


def follow(state: TrainerState, max_minutes: float, cap: int | None, elapsed: float) -> BudgetStep:
    """After an update of a run with a budget of `max_minutes`: plans its length from the speed so far until
    FIX_AT of the budget has passed, then keeps it (`state.planned_updates`, `state.plan_fixed`); at OVERRUN x the
    budget with updates still planned, says to stop. `elapsed`: training seconds, the same on every rank."""
    budget = max_minutes * 60.0
    st = state
    if not st.plan_fixed and can_plan(st.update, elapsed):
        first = not st.planned_updates
        st.planned_updates = planned_updates(st.update, elapsed, budget, cap)
        st.plan_fixed = elapsed >= FIX_AT * budget or st.planned_updates <= st.update
        note = None
        if first or st.plan_fixed:
            note = (f"time budget {max_minutes:g} min: {st.planned_updates} updates ({elapsed / st.update:.3g} s per "
                    f"update over the first {st.update}; "
                    + ("fixed now" if st.plan_fixed else f"planned again until {FIX_AT:.0%} of the budget") + ")")
        return BudgetStep(replanned=True, note=note)
    if st.plan_fixed and elapsed > OVERRUN * budget and st.update < st.planned_updates:
        return BudgetStep(overrun=f"{elapsed / 60:.1f} min of training is past the time budget of {max_minutes:g} "
                                  f"min (x{OVERRUN:g}): stopping at update {st.update} of the {st.planned_updates} "
                                  "planned, before the lr schedule ended (the machine slowed down after the plan "
                                  "was fixed)")
    return BudgetStep()
