"""Choices that bracket their optimum: a grid whose choice lands at an end, or next to a
value where runs diverged, grows until the choice is interior.

A study declares its choices over ordered grids as `Bracket`s (`Study.brackets`).
`run_study` trains the grid, and then, round by round, every choice still at an edge
gets one more value: past an end by the grid's own step (a factor for a log-scale knob
such as a learning rate or a lambda), or between the choice and a neighbour where runs
diverged (their geometric mean on a log scale). Rounds stop when every choice is
interior, when the next value would cross a hard bound of the knob (or could not be
built: `feasible`), or after `bracket_rounds` rounds (a shared param). The added cells
carry their round (`bracket_round`); the same params give the same added values, and
the cell cache makes a re-run free.

A choice next to a diverged value, once the two are within a factor of STABLE of each
other, is at the knob's stability limit: the best stable value the grid can resolve,
no longer an edge past which the optimum may lie. So is an integer knob whose next value
cannot be built (a depth one layer deeper than any width fits the budget): nothing lies
between the two, and nothing past it exists.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from pipeline import choices, stats
from pipeline.choices import Selection

ROUND = "bracket_round"  # the cells' column: 0 for the grid, k for a value added in round k
STABLE = 2.0  # a choice within this factor of a diverged value is at the stability limit
HARD = "hard: "  # next_value's reason where the next integer value cannot be built


@dataclass(frozen=True)
class Bracket:
    """A choice of `column` on validation metric `on`, one per combination of the `by`
    columns among the rows matching `where`."""

    column: str
    on: str
    maximize: bool
    where: dict = field(default_factory=dict)
    by: tuple[str, ...] = ()
    scale: str = "log"  # log: steps are factors; linear: differences; int: integer steps
    bound: float = 0  # the least value the knob can take (choices.select: a bound, no edge)
    low: float = 0.0  # added values stay strictly between low and high
    high: float = math.inf
    # (fixed, value) -> "" where a cell can be built at that value, else the bound in words
    feasible: Callable[[dict, object], str] | None = None
    # cells -> the rows the choice is made among (each depth at its own chosen learning
    # rate, say); None: every row
    among: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    def rows(self, cells: pd.DataFrame) -> pd.DataFrame:
        return self.among(cells) if self.among is not None else cells

    def groups(self, cells: pd.DataFrame) -> list[dict]:
        """The fixed columns of each choice."""
        rows = stats.where(self.rows(cells), self.where)
        if not self.by:
            return [dict(self.where)]
        combos = rows[list(self.by)].drop_duplicates().to_dict("records")
        return [self.where | {k: stats._py(v) for k, v in c.items()} for c in combos]

    def select(self, cells: pd.DataFrame, fixed: dict) -> Selection:
        """The choice among the rows matching `fixed` (where and the by columns), with the
        values bracketing added and why it is still at an edge, where it is."""
        rows = stats.where(cells, self.where | fixed)  # every row: what the grid held
        cells = self.rows(cells)
        raw = choices.select(cells, self.column, self.where | fixed, self.on,
                           maximize=self.maximize, bound=self.bound)
        added = []
        if ROUND in rows:  # values no round-0 row holds (not rows another bracket added)
            grid = set(rows.loc[rows[ROUND] == 0, self.column])
            added = sorted(stats._py(v) for v in rows.loc[rows[ROUND] > 0, self.column].unique()
                           if v not in grid)
        sel = replace(raw, added=added)
        if not raw.edge:
            return sel
        value, why = self.next_value(cells, fixed, raw)
        if why == "stable":
            return replace(sel, edge=False, limit="", stop=f"at the stability limit: runs "
                           f"diverged at {stats._value(value)}")
        if why.startswith(HARD):
            return replace(sel, edge=False, limit="", stop=f"the last value that can be built; "
                           f"past it, {why[len(HARD):]}")
        if not why:
            done = int(rows[ROUND].max()) if ROUND in rows and len(rows) else 0
            why = (f"bracketing stopped after {done} round{'s' * (done != 1)}" if done
                   else "not bracketed")
        else:
            why = f"bracketing stopped at {why}"
        return replace(sel, stop=why, limit=f"{sel.limit}; {why}")

    def next_value(self, cells: pd.DataFrame, fixed: dict, sel: Selection | None = None
                   ) -> tuple[object, str]:
        """The value to add for a choice at an edge, and "" ; or (None, why not): "" for
        an interior choice, "stable" (with the diverged value) at the stability limit,
        HARD + why where the next integer value cannot be built, or the bound that stops
        it."""
        cells = self.rows(cells)
        sel = sel or choices.select(cells, self.column, self.where | fixed, self.on,
                                  maximize=self.maximize, bound=self.bound)
        if not sel.edge or isinstance(sel.chosen, str):
            return None, ""
        grid = sorted(sel.grid)
        chosen, at = sel.chosen, grid.index(sel.chosen)
        failed = choices.diverged_runs(stats.where(cells, self.where | fixed), self.column)
        neighbours = [grid[i] for i in (at + 1, at - 1)
                      if 0 <= i < len(grid) and grid[i] in failed]
        # an end of the grid is stepped past first: a stability limit on one side says
        # nothing about the other
        if len(grid) >= 2 and chosen == grid[-1]:
            value = self._step(chosen, grid[-2], up=True)
        elif len(grid) >= 2 and chosen == grid[0] and choices.edge_limit(chosen, grid, self.bound):
            value = self._step(chosen, grid[1], up=False)
        elif neighbours:
            other = neighbours[0]
            if self.scale == "log" and chosen > 0 and max(chosen, other) / min(chosen, other) \
                    <= STABLE:
                return other, "stable"
            value = self._between(chosen, other)
        else:
            return None, ""
        if value is None or value in grid:
            return None, "the grid's resolution"
        if not self.low < value < self.high:
            edge = self.high if value >= self.high else self.low
            return None, f"the bound of {self.column} ({stats._value(edge)})"
        if self.feasible is not None and (why := self.feasible(fixed, value)):
            if self.scale == "int" and abs(value - chosen) == 1:
                return None, HARD + why  # no value lies between: nothing past it exists
            return None, why
        return value, ""

    def _between(self, a, b):
        if self.scale == "log" and a > 0 and b > 0:
            return _round(math.sqrt(a * b))
        mid = (a + b) / 2
        return int(round(mid)) if self.scale == "int" else _round(mid)

    def _step(self, end, inner, up: bool):
        if self.scale == "log":
            if end <= 0 or inner <= 0:
                return None
            factor = max(end, inner) / min(end, inner)
            return _round(end * factor if up else end / factor)
        step = abs(end - inner)
        value = end + step if up else end - step
        return int(round(value)) if self.scale == "int" else _round(value)


def _round(v: float) -> float:
    """Two significant digits: the added values read like the grid's."""
    return float(f"{v:.2g}")


def extend(study, cells: pd.DataFrame, grid: list[dict], round_: int) -> list[dict]:
    """The cells to add in this round: for every choice still at an edge, its chosen
    value's cells (one per seed) with the next value."""
    added = []
    for b in study.brackets():
        for fixed in b.groups(cells):
            finished = stats._ok(stats.where(b.rows(cells), b.where | fixed))
            if finished[b.on].dropna().empty:
                continue  # every run failed (diverged or collapsed): no choice to bracket
            value, why = b.next_value(cells, fixed)
            if value is None or why:  # interior, or stopped ("stable" names its value)
                continue
            chosen = b.select(cells, fixed).chosen
            for cell in grid:
                if cell.get(b.column) == chosen and all(
                        cell.get(k) == v for k, v in fixed.items()):
                    added.append(study.extend(cell, b.column, value) | {ROUND: round_})
    # one cell per configuration and seed, in a fixed order
    seen, out = set(), []
    for cell in added:
        key = tuple(sorted((k, str(v)) for k, v in cell.items()))
        if key not in seen:
            seen.add(key)
            out.append(cell)
    return out


def mark(grid: list[dict]) -> list[dict]:
    """The study's own grid, round 0."""
    return [c | {ROUND: 0} for c in grid]

