"""Seaborn figures, returned as inline SVG text (dense layers rasterized inside the SVG)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")
plt.rcParams["svg.hashsalt"] = "report"  # stable ids: the same numbers give the same SVG


def to_svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog: the SVG sits inside HTML


def decision_boundaries(bounds: pd.DataFrame, points: pd.DataFrame | None) -> str:
    panels = list(dict.fromkeys(bounds["activation"]))
    cols = min(3, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.0 * rows), squeeze=False)
    for ax, act in zip(axes.flat, panels):
        b = bounds[bounds["activation"] == act]
        res = int(round(np.sqrt(len(b))))
        grid = b["predicted"].to_numpy().reshape(res, res)
        extent = (b["x0"].min(), b["x0"].max(), b["x1"].min(), b["x1"].max())
        ax.imshow(grid, origin="lower", extent=extent, cmap="Pastel1", vmin=0, vmax=8,
                  aspect="auto", interpolation="nearest")
        if points is not None:
            ax.scatter(points["x0"], points["x1"], c=points["y"], cmap="Set1", vmin=0, vmax=8,
                       s=2, rasterized=True)
        ax.set_title(f"{act} ({b['optimizer'].iloc[0]})")
        ax.set_xticks([]), ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return to_svg(fig)


def bars(frame: pd.DataFrame, x: str, y: str, hue: str | None, ylabel: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 3))
    sns.barplot(frame, x=x, y=y, hue=hue, ax=ax, errorbar=("ci", 95))
    ax.set_ylabel(ylabel)
    return to_svg(fig)


def lines(frame: pd.DataFrame, x: str, y: str, hue: str | None, *, logx=False, logy=False,
          ylabel: str | None = None, style: str | None = None) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.lineplot(frame, x=x, y=y, hue=hue, style=style, marker="o", ax=ax, errorbar=("ci", 95))
    if logx:  # a log axis; symlog where zero is on the grid (lambda = 0)
        if (frame[x] > 0).all():
            ax.set_xscale("log")
        else:
            ax.set_xscale("symlog", linthresh=1e-2)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel or y)
    return to_svg(fig)


def weights_vs_truth(weights: pd.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(6, 3))
    learned = weights.rename(columns={"weight": "value"}).assign(series="learned")
    truth = (weights.drop_duplicates("index")[["index", "true_weight"]]
             .rename(columns={"true_weight": "value"}).assign(series="truth"))
    sns.barplot(pd.concat([learned, truth]), x="index", y="value", hue="series", ax=ax)
    ax.set_xlabel("coefficient of x^i / i!")
    return to_svg(fig)


def heatmaps(frame: pd.DataFrame, values: dict[str, str], row: str, col: str) -> str:
    fig, axes = plt.subplots(1, len(values), figsize=(4.2 * len(values), 3.4), squeeze=False)
    for ax, (value, title) in zip(axes.flat, values.items()):
        pivot = frame.pivot_table(index=row, columns=col, values=value, aggfunc="mean")
        sns.heatmap(pivot, annot=True, fmt=".3f", cmap="viridis", ax=ax, cbar=False)
        ax.set_title(title)
    return to_svg(fig)


def kfold_selection(folds: pd.DataFrame, selection: pd.DataFrame) -> str:
    parts = list(dict.fromkeys(selection["selection"]))
    fig, axes = plt.subplots(1, len(parts), figsize=(4.5 * len(parts), 3.2), squeeze=False)
    for ax, part in zip(axes.flat, parts):
        f = folds[folds["selection"] == part]
        s = selection[selection["selection"] == part]
        sns.stripplot(f, x="value", y="val_loss", hue="fold", ax=ax, native_scale=True,
                      size=3, legend=False)
        ax.plot(s["value"], s["test_loss"], "k-", label="test (refit)")
        chosen = s[s["chosen"]]
        ax.plot(chosen["value"], chosen["cv_mean"], "r*", markersize=12, label="CV choice")
        ax.set_yscale("log")
        ax.set_xlabel(part)
        ax.set_ylabel("loss")
        if part == "lambda":
            ax.set_xscale("symlog", linthresh=1e-2)
        ax.legend(fontsize=7)
    return to_svg(fig)
