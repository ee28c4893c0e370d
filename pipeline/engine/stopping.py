"""When a model has converged: its training loss changed by less than a tolerance
(relative) over the last tenth of its training, or, for a classifier, its training
accuracy moved by less than that; or, where a spec asks for it, its training loss is at
or below a floor (it fits its training rows). The loop stops a model by this rule
(TrainSpec.stop_tol, stop_below) and the study outcomes flag every model by it, so the
two agree."""

from __future__ import annotations

import math


def window(epochs: int) -> int:
    """The last tenth of training, in epochs (at least one)."""
    return max(1, epochs // 10)


def settled(curve: list[dict], span: int, tol: float) -> float:
    """1.0 where the curve's last logged row shows the training loss changed by less than
    tol (relative, falling or rising) since the last row at least `span` epochs before it,
    or the training accuracy moved by less than tol; 0.0 where it still moved more (a loss
    that climbs has not settled either); NaN where the curve has no such earlier row or
    its losses are not finite."""
    if not curve:
        return math.nan
    end = curve[-1]
    earlier = [r for r in curve if r["epoch"] <= end["epoch"] - span]
    if not earlier:
        return math.nan
    start = earlier[-1]
    before, last = start.get("train_loss", math.nan), end.get("train_loss", math.nan)
    if not (math.isfinite(last) and math.isfinite(before)):
        return math.nan
    fall = before - last
    done = fall == 0 if last <= 0 else abs(fall) / last < tol
    acc = end.get("train_acc")
    if acc is not None and math.isfinite(acc) and math.isfinite(start.get("train_acc", math.nan)):
        done = done or abs(acc - start["train_acc"]) < tol
    return float(done)
