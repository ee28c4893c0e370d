"""What each trained model did beyond its final metrics, from its final weights, its
curve and its data; `run_study` adds it to every cell:

- the null model's scores beside it (`null_SPLIT_loss`, `null_SPLIT_acc`): the majority
  class and the training class frequencies for a classifier, the training mean for a
  regression, fitted on the cell's own training rows and scored as the model is;
- `collapsed`: the model predicts one class for every test point, or one output whatever
  the input. Such runs are counted beside diverged ones, never averaged (stats._ok);
- `converged`: the training loss fell by less than `converge_tol` (relative) over the
  last tenth of training (for a spec that trains until the model fits its training rows,
  `stop_below`: its last training loss is at or below that floor); empty where the curve
  has no point there;
- its value on every test point (`Points`, attached to the cells table), so that an
  interval of a difference on one test set counts the test points' sampling as well as
  the seeds' spread (stats.compare).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
CONSTANT = 1e-6  # relative: outputs that vary less than this over the test points


class Points:
    """Per cell (the cells table's "cell" column), its value on every test point for
    test_loss and (classifiers) test_acc: a correct prediction is 1, a wrong one 0.

    Attached to the cells table as `cells.attrs["points"]`; pandas keeps attrs through
    filters, copies and concatenations (not merges), and copies them deeply: this object
    is shared instead, never copied."""

    def __init__(self):
        self.values: dict[str, dict[int, np.ndarray]] = {}

    def add(self, cell: int, metric: str, values: np.ndarray) -> None:
        self.values.setdefault(metric, {})[int(cell)] = np.asarray(values, dtype=np.float64)

    def paired(self, metric: str, a: list[int], b: list[int]) -> np.ndarray | None:
        """The per-point differences, one row per pair (a[s], b[s]) and one column per
        test point: a's value minus b's; None where a cell has no values or the two sides
        were scored on different test sets."""
        store = self.values.get(metric, {})
        if not a or any(int(i) not in store for i in [*a, *b]):
            return None
        sizes = {len(store[int(i)]) for i in [*a, *b]}
        if len(sizes) != 1:
            return None
        return np.array([store[int(i)] - store[int(j)] for i, j in zip(a, b)])

    def save(self, path) -> None:
        """One .npz: per metric, the cells, their values end to end and where each ends."""
        from pipeline.io import write_npz

        arrays = {}
        for metric, by_cell in self.values.items():
            cells = sorted(by_cell)
            arrays[f"{metric}__cell"] = np.array(cells, dtype=np.int64)
            arrays[f"{metric}__end"] = np.cumsum([len(by_cell[c]) for c in cells])
            arrays[f"{metric}__values"] = (np.concatenate([by_cell[c] for c in cells])
                                           if cells else np.zeros(0))
        write_npz(path, {"metrics": sorted(self.values)}, **arrays)

    @classmethod
    def load(cls, path) -> Points:
        from pipeline.io import read_npz

        arrays, meta = read_npz(path)
        out = cls()
        for metric in meta["metrics"]:
            ends = arrays[f"{metric}__end"]
            for cell, start, end in zip(arrays[f"{metric}__cell"], [0, *ends[:-1]], ends):
                out.add(int(cell), metric, arrays[f"{metric}__values"][start:end])
        return out

    def __deepcopy__(self, memo):
        return self

    def __eq__(self, other):  # pandas compares attrs when it concatenates frames
        return self is other

    __hash__ = object.__hash__


def attach(cells: pd.DataFrame, points: Points) -> pd.DataFrame:
    cells.attrs["points"] = points
    return cells


def null_scores(loss: str, y_train: np.ndarray, splits: dict[str, np.ndarray]) -> dict:
    """The null model's loss (and accuracy) on each split: fitted on y_train alone."""
    out = {}
    if loss == "cross_entropy":
        counts = np.bincount(y_train.astype(int).ravel(),
                             minlength=int(max(y.max() for y in splits.values())) + 1)
        freq = counts / counts.sum()
        majority = int(np.argmax(counts))  # the smallest class among equals
        with np.errstate(divide="ignore"):
            logp = np.log(freq)
        for split, y in splits.items():
            y = y.astype(int).ravel()
            out[f"null_{split}_loss"] = float(-logp[y].mean())
            out[f"null_{split}_acc"] = float((y == majority).mean())
        return out
    mean = y_train.reshape(len(y_train), -1).mean(axis=0)
    half = 0.5 if loss == "half_mse" else 1.0
    for split, y in splits.items():
        err = (y.reshape(len(y), -1) - mean) ** 2
        out[f"null_{split}_loss"] = float(half * err.mean())
    return out


def point_values(loss: str, out: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """A model's loss (and correctness) on every point, from its outputs (N, out)."""
    if loss == "cross_entropy":
        y = y.astype(int).ravel()
        z = out - out.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return {"test_loss": -logp[np.arange(len(y)), y],
                "test_acc": (out.argmax(axis=1) == y).astype(np.float64)}
    err = (out - y.reshape(len(y), -1)) ** 2
    return {"test_loss": (0.5 if loss == "half_mse" else 1.0) * err.mean(axis=1)}


def collapsed(loss: str, out: np.ndarray) -> bool:
    """One class for every point, or one output whatever the input."""
    if not np.all(np.isfinite(out)):
        return False  # a diverged model: counted as such
    if loss == "cross_entropy":
        return len(out) > 1 and bool(np.all(out.argmax(axis=1) == out[0].argmax()))
    spread = np.ptp(out, axis=0).max()
    return len(out) > 1 and bool(spread <= CONSTANT * max(1.0, float(np.abs(out).max())))


def converged(curve: list[dict], epochs: int, tol: float, below: float | None = None) -> float:
    """1.0 where the training loss fell by less than tol (relative) over the last tenth of
    training, or (a classifier) its training accuracy moved by less than tol there; 0.0
    where it still moved more; NaN where the curve has no point there (the engine's rule,
    by which it stops a model trained until it converges). With `below` (a spec that
    trains until the model fits its training rows) the floor is the rule instead: 1.0
    where the last training loss is at or below it, else 0.0."""
    from pipeline.engine.stopping import settled, window

    if below is not None:  # the floor is the rule: fits its training rows, or has not
        if not curve or not np.isfinite(curve[-1].get("train_loss", np.nan)):
            return np.nan
        return float(curve[-1]["train_loss"] <= below)
    return settled(curve, window(epochs), tol)


def add(out_cells: pd.DataFrame, results: list, arrays: dict, tol: float,
        known: dict | None = None) -> pd.DataFrame:
    """Every cell's null scores, collapsed and converged columns, and its test points.
    known: the outcomes of results already scored (by the result's identity), kept across
    calls (the bracketing rounds score the cells trained before them again), so that each
    trained model predicts its test set once."""
    known = {} if known is None else known
    points = Points()
    rows = []
    keys = out_cells[["cell", "dataset", "seed"]].to_dict("records")
    for key, res in zip(keys, results):
        if id(res) not in known:
            known[id(res)] = (res, _outcome(res, arrays[key["dataset"]], int(key["seed"]), tol))
        row, values = known[id(res)][1]
        for metric, v in values.items():
            points.add(key["cell"], metric, v)
        rows.append(dict(row))
    extra = pd.DataFrame(rows, index=out_cells.index)
    return attach(pd.concat([out_cells, extra], axis=1), points)


def _outcome(res, arrays, seed: int, tol: float) -> tuple[dict, dict]:
    """One trained model's null scores, collapsed and converged flags, and test points."""
    import torch

    from pipeline.datasets import draw
    from pipeline.engine import predict

    data = draw(arrays, seed)
    job = res.job
    spec = job.spec
    y_train = data["y_train"] if job.rows is None else data["y_train"][list(job.rows)]
    splits = {s: data[f"y_{s}"] for s in SPLITS if f"y_{s}" in data}
    row = null_scores(spec.loss, y_train, splits)
    row["collapsed"] = False
    row["converged"] = converged(res.curve, spec.epochs, tol, spec.stop_below)
    values = {}
    if not res.diverged:
        x = torch.as_tensor(data["x_test"])
        y_hat = predict(spec.arch, [p.float() for p in res.params], x).double().numpy()
        # a model whose inputs do not vary (a degree-0 polynomial) is constant by design
        used = data["x_test"][:, :job.active_inputs or data["x_test"].shape[1]]
        row["collapsed"] = bool(np.ptp(used, axis=0).any()) and collapsed(spec.loss, y_hat)
        values = point_values(spec.loss, y_hat, data["y_test"])
    return row, values
