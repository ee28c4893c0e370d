"""Approximation's arithmetic: which ReLU shapes write a sawtooth exactly, Telgarsky's
construction written out, and the width trend judged on the whole curve.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.specs import n_params


def folding(pieces: int, depth: int, width: int) -> list[int] | None:
    """How a ReLU net of `depth` hidden layers of `width` units writes a sawtooth of
    `pieces` linear pieces exactly, if it can by a simple construction: one hidden layer
    writes at most width + 1 pieces; deeper, each layer writes a zigzag of at most `width`
    pieces over [0, 1], and composing them multiplies the pieces (Telgarsky 2016; Montúfar
    et al. 2014). The pieces per layer, largest first; None where no such product of
    `depth` factors of at most `width` gives `pieces`."""
    if depth == 1:
        return [pieces] if pieces <= width + 1 else None

    def split(n: int, layers: int, most: int) -> list[int] | None:
        if layers == 0:
            return [] if n == 1 else None
        for k in range(min(n, most), 0, -1):
            if n % k == 0 and (rest := split(n // k, layers - 1, k)) is not None:
                return [k, *rest]
        return None

    factors = split(pieces, depth, width)
    return [k for k in factors if k > 1] if factors else None


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def telgarsky(teeth: int, x: np.ndarray, y: np.ndarray, interval: float) -> dict:
    """Telgarsky's (2016) sawtooth, written out as a ReLU net: u = (x + a) / 2a in [0, 1],
    then the tent map t(u) = 2 relu(u) - 4 relu(u - 1/2) composed k = log2(teeth) + 1
    times (t^k has 2^(k-1) teeth), each a hidden layer of two units; its test MSE."""
    k = int(round(math.log2(teeth))) + 1
    u = ((x.astype(np.float32) + np.float32(interval)) / np.float32(2 * interval))
    for _ in range(k):
        u = 2 * np.maximum(u, 0) - 4 * np.maximum(u - np.float32(0.5), 0)
    return {"teeth": teeth, "depth": k, "width": 2, "n_params": n_params((1, *[2] * k, 1)),
            "test_loss": float(np.mean((u - y) ** 2))}


def width_trend(cells: pd.DataFrame, target: str):
    """Whether the mean absolute error on `target` falls with width over the whole curve:
    per seed, the rank correlation of width and error over the widths that trained in it
    (a collapsed run left out and counted; a seed with fewer than three widths left, too),
    its mean with a 95% interval over seeds; and each step between neighbouring widths
    compared paired, at the family's level over the steps that have two pairs or more:
    the steps where it falls beyond that interval, where it rises beyond it, where its
    mean does not fall, and those that could not be compared, named."""
    w = cells[(cells["experiment"] == "width") & (cells["target"] == target)]
    gone = w["collapsed"].astype(bool) if "collapsed" in w else pd.Series(False, w.index)
    table = w[~gone].pivot_table(index="seed", columns="width", values="mean_error")
    widths = sorted(w["width"].unique())
    rho = []
    for _, row in table.iterrows():
        row = row.dropna()  # the widths that trained in this seed
        if len(row) >= 3:
            r = row.rank().to_numpy()
            rho.append(np.corrcoef(np.arange(len(r)), r)[0, 1] if r.std() > 0 else 0.0)
    n = len(rho)
    mean, half = stats.mean_ci(np.array(rho))
    pairs = []
    for lo, hi in zip(widths, widths[1:]):
        both = table[[lo, hi]].dropna() if {lo, hi} <= set(table.columns) else []
        pairs.append((lo, hi, len(both)))
    level = choices.family_level(max(1, sum(k >= 2 for *_, k in pairs)))
    steps = []
    for lo, hi, k in pairs:
        if k < 2:
            steps.append({"from": lo, "to": hi, "n": k, "diff": math.nan, "low": math.nan,
                          "high": math.nan, "verdict": "not compared"})
            continue
        c = stats.compare(cells, {"experiment": "width", "target": target, "width": hi},
                          {"experiment": "width", "target": target, "width": lo},
                          "mean_error", label_a=f"width {hi}", label_b=f"width {lo}",
                          higher_is_better=False, level=level)
        steps.append({"from": lo, "to": hi, "n": c.n, "diff": c.diff, "low": c.low,
                      "high": c.high,
                      "verdict": {"a": "falls", "b": "rises"}.get(c.verdict, "tie")})
    where = f"Over the {len(widths)} widths from {widths[0]} to {widths[-1]}"
    if not (n > 1 and math.isfinite(half)):
        trend = "cannot be judged"
        text = (f"{where}, whether the error on {target} falls with width cannot be judged: "
                f"{n} {'seed has' if n == 1 else 'seeds have'} three trained widths or more.")
    else:
        trend = ("falls" if mean + half < 0 else "rises" if mean - half > 0
                 else "no monotone trend shown")
        said = {"falls": f"the error on {target} falls with width",
                "rises": f"the error on {target} rises with width",
                "no monotone trend shown": f"no monotone trend of the error on {target} "
                                           f"with width is shown (the interval holds 0)"}
        text = (f"{where}, {said[trend]}: rank correlation of width and mean absolute error "
                f"{F.fmt(mean, 2)} (95% CI {F.fmt(mean - half, 2)} to "
                f"{F.fmt(mean + half, 2)}, {n} seeds).")
    n_gone = int(gone.sum())
    if n_gone:
        at = ", ".join(str(x) for x in sorted(w.loc[gone, "width"].unique()))
        text += f" Collapsed and left out: {n_gone} of {len(w)} runs (width {at})."

    def named(group: list[dict]) -> str:
        return ", ".join(f"{s['from']} to {s['to']}" for s in group)

    judged = [s for s in steps if s["verdict"] != "not compared"]
    falls = [s for s in judged if s["verdict"] == "falls"]
    rise = [s for s in judged if s["verdict"] == "rises"]
    up = [s for s in judged if s["verdict"] == "tie" and s["diff"] >= 0]
    unpaired = [s for s in steps if s["verdict"] == "not compared"]
    if judged:
        text += (f" Step by step, it falls beyond its {F.level_text(level)} interval at "
                 f"{len(falls)} of {len(judged)} steps"
                 + (f" ({named(falls)})" if falls else "") + ".")
    if rise:
        text += (" It rises beyond it from " + "; ".join(
            f"{s['from']} to {s['to']} ({F.fmt(s['diff'], 2)}, "
            f"{F.fmt_ci(s['low'], s['high'], level)})" for s in rise) + ".")
    if up:
        text += (" Its mean does not fall from " + named(up)
                 + ("" if rise else " (no step rises beyond its interval)") + ".")
    if unpaired:
        text += (" Not compared, with fewer than two seeds trained at both widths: "
                 + named(unpaired) + ".")
    return F.estimate(f"width_trend_{target}", text, rho=mean, low=mean - half,
                      high=mean + half, n=n, trend=trend, level=level, steps=steps,
                      collapsed=n_gone)
