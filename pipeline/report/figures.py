"""Draw a study's figure specs (findings.Figure) as SVG and PNG, with seaborn.

Summary tables carry VALUE_mean and VALUE_ci95: a figure draws the mean with the same
95% t-interval the tables print, never an interval of its own. The SVG is deterministic
(fixed hash salt, no date), so the same numbers give the same bytes.
"""

from __future__ import annotations

import io
import itertools
import math
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from pipeline import stats  # noqa: E402
from pipeline.report import numbers  # noqa: E402
from pipeline.report.drawn import PDF_SCALE, PNG_DPI, Drawn  # noqa: E402, F401

sns.set_theme(style="whitegrid", context="paper")
plt.rcParams["svg.hashsalt"] = "report"  # stable ids: the same numbers give the same SVG


SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _unicode_tick(label: str) -> str:
    """A log axis's mathtext tick label as plain text: $\\mathdefault{2\\times10^{-3}}$
    -> 2×10⁻³. The same label, without a pass through the mathtext parser (which took a
    sixth of the report's drawing time)."""
    m = re.fullmatch(r"\$\\mathdefault\{(.*)\}\$", label)
    if m is None:
        return label
    body = re.sub(r"\^\{([-\d]+)\}", lambda e: e.group(1).translate(SUPERSCRIPT), m.group(1))
    return body.replace("\\times", "×").replace("-", "\N{MINUS SIGN}")


class UnicodeLogFormatter(ticker.Formatter):
    """Wraps a log axis's formatter: the same ticks labelled, as plain text."""

    def __init__(self, inner: ticker.Formatter):
        self.inner = inner

    def set_axis(self, axis):
        super().set_axis(axis)
        self.inner.set_axis(axis)

    def set_locs(self, locs):
        self.inner.set_locs(locs)

    def __call__(self, x, pos=None) -> str:
        return _unicode_tick(self.inner(x, pos))


def _plain_log_ticks(ax) -> None:
    for axis in (ax.xaxis, ax.yaxis):
        for get, set_ in ((axis.get_major_formatter, axis.set_major_formatter),
                          (axis.get_minor_formatter, axis.set_minor_formatter)):
            if isinstance(get(), ticker.LogFormatterMathtext):
                set_(UnicodeLogFormatter(get()))


def render(fig, png: bool = False) -> Drawn:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    raster = None
    if png:
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=PNG_DPI, bbox_inches="tight",
                    metadata={"Software": None})
        raster = out.getvalue()
    plt.close(fig)
    text = buf.getvalue()
    return Drawn(text[text.index("<svg"):], raster)  # no XML prolog: the SVG sits in HTML


def draw(spec: dict, frame: pd.DataFrame, load, png: bool = False) -> Drawn:
    """spec: a Figure as a dict; frame: its data; load(name) -> another table; png: draw
    a PNG too."""
    for col, value in spec.get("where", {}).items():
        frame = frame[frame[col] == value]
    kinds = {"lines": lines, "bars": bars, "heatmap": heatmap, "classmap": classmap,
             "images": images}
    if spec["kind"] not in kinds:
        raise ValueError(f"figure kind {spec['kind']!r} is not one of {sorted(kinds)}")
    return render(kinds[spec["kind"]](spec, frame, load), png)


def _long(frame: pd.DataFrame, spec: dict) -> tuple[pd.DataFrame, str | None]:
    """One row per (row, y): columns x, hue..., value, ci95, series."""
    ys, hue = spec["y"], spec.get("hue")
    parts = []
    for y in ys:
        mean = f"{y}_mean" if f"{y}_mean" in frame else y
        part = frame.assign(value=frame[mean],
                            ci95=frame[f"{y}_ci95"] if f"{y}_ci95" in frame else np.nan,
                            series=y.replace("_", " "))
        parts.append(part)
    long = pd.concat(parts, ignore_index=True)
    if len(ys) > 1 and hue is None:
        return long, "series"
    return long, hue


def _panels(spec: dict, frame: pd.DataFrame):
    """(title, frame) per panel: one per value of `col`, else one."""
    col = spec.get("col")
    if col:
        return [(f"{col} = {v}", frame[frame[col] == v]) for v in dict.fromkeys(frame[col])]
    return [("", frame)]


def _axes(n: int, width: float = 5.2, height: float = 3.2, per_row: int = 2):
    """n panels, at most per_row to a row (a page is not wider than two)."""
    cols, rows = min(n, per_row), -(-n // per_row)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols if n > 1 else 6.4,
                                                  height * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def lines(spec: dict, frame: pd.DataFrame, load):
    hue_given = spec.get("hue") is not None and len(spec["y"]) > 1
    panels = ([(y.replace("_", " "), dict(spec, y=[y])) for y in spec["y"]] if hue_given
              else [("", spec)])
    facets = [(t1 or t2, s, f) for t1, s in panels for t2, f in _panels(s, frame)]
    fig, axes = _axes(len(facets))
    any_cut = False
    for ax, (title, s, part) in zip(axes, facets):
        long, hue = _long(part, s)
        x = s["x"]
        keys = list(dict.fromkeys(long[hue])) if hue else [None]
        palette = dict(zip(keys, sns.color_palette(n_colors=max(len(keys), 1))))
        cut = []  # intervals reaching zero or below, on a log axis: drawn once it is scaled
        for key in keys:
            one = long if key is None else long[long[hue] == key]
            one = one.sort_values(x)
            dense = len(one) > 40  # a curve, not a handful of measured points
            ax.plot(one[x], one["value"], marker=None if dense else "o", ms=3,
                    lw=1 if dense else 1.5, color=palette[key],
                    label=None if key is None else str(key))
            if one["ci95"].notna().any():
                lo, hi = one["value"] - one["ci95"], one["value"] + one["ci95"]
                if s.get("logy") and (lo <= 0).any():
                    ax.plot(one[x], hi, alpha=0)  # the axis still reaches the upper ends
                    cut.append((one[x], lo, hi, palette[key]))
                else:
                    ax.fill_between(one[x], lo, hi, alpha=0.2, color=palette[key], lw=0)
        _scales(ax, s, x, long)
        if cut:  # a log axis cannot reach zero: such intervals run to its bottom edge
            bottom = ax.get_ylim()[0]
            ax.set_ylim(bottom=bottom)
            for xs, lo, hi, color in cut:
                ax.fill_between(xs, lo.where(lo > 0, bottom), hi, alpha=0.2, color=color, lw=0)
            any_cut = True
        _guides(ax, s, x, part, load)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(s.get("xlabel") or x)
        ax.set_ylabel(s.get("ylabel") or ", ".join(s["y"]))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, title=None if hue in (None, "series") else hue,
                      title_fontsize=7)
    fig.tight_layout()
    if any_cut:
        fig.text(0.5, 0, "Shaded intervals that reach zero or below run to the bottom edge "
                 "of the log axis.", ha="center", va="top", fontsize=7)
    return fig


def _guides(ax, spec: dict, x: str, part: pd.DataFrame, load) -> None:
    """Dashed guides: vline / hline at a value; truth: a column of the same rows;
    reference: [table, x, y] of another table."""
    extra = spec.get("extra", {})
    style = {"color": "0.25", "ls": "--", "lw": 1}
    if "vline" in extra:
        ax.axvline(extra["vline"], **style)
    if "hline" in extra:
        ax.axhline(extra["hline"], **style)
    if "truth" in extra:
        truth = part.drop_duplicates(x).sort_values(x)
        ax.plot(truth[x], truth[extra["truth"]], label="truth", **style)
    if "reference" in extra:
        ref, rx, ry = extra["reference"]
        table = load(ref).sort_values(rx)
        ax.plot(table[rx], table[ry], label=ry.replace("_", " "), **style)


def _scales(ax, spec: dict, x: str, frame: pd.DataFrame) -> None:
    if spec.get("logx"):
        if (frame[x] > 0).all():
            ax.set_xscale("log")
        else:  # zero on the grid (lambda = 0)
            positive = frame[x][frame[x] > 0]
            ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1.0)
    symlog = spec.get("extra", {}).get("symlog_x", [])
    if symlog and spec.get("col") and frame[spec["col"]].iloc[0] in symlog:
        positive = frame[x][frame[x] > 0]
        ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1.0)
    if spec.get("logy"):
        ax.set_yscale("log")
    _plain_log_ticks(ax)


def bars(spec: dict, frame: pd.DataFrame, load):
    long, hue = _long(frame, spec)
    x = spec["x"]
    fig, (ax,) = _axes(1)
    xs = list(dict.fromkeys(long[x]))
    keys = list(dict.fromkeys(long[hue])) if hue else [None]
    width = 0.8 / len(keys)
    palette = sns.color_palette(n_colors=len(keys))
    for k, (key, color) in enumerate(zip(keys, palette)):
        one = long if key is None else long[long[hue] == key]
        one = one.set_index(x).reindex(xs)
        pos = np.arange(len(xs)) - 0.4 + width * (k + 0.5)
        ax.bar(pos, one["value"], width, color=color, label=None if key is None else str(key))
        if one["ci95"].notna().any():
            ax.errorbar(pos, one["value"], yerr=one["ci95"], fmt="none", ecolor="0.2",
                        capsize=2, lw=1)
    ax.set_xticks(np.arange(len(xs)), [f"{v:g}" if isinstance(v, float) else str(v)
                                       for v in xs])
    ax.set_xlabel(spec.get("xlabel") or x)
    ax.set_ylabel(spec.get("ylabel") or ", ".join(spec["y"]))
    if hue:
        ax.legend(fontsize=7, title=None if hue == "series" else hue, title_fontsize=7)
    return fig


def heatmap(spec: dict, frame: pd.DataFrame, load):
    """One panel per y and per value of `col`: y's mean over row (extra) x x."""
    extra = spec.get("extra", {})
    titles = extra.get("titles", spec["y"])
    panels = [(y, f"{title}{', ' + name if name else ''}", part)
              for y, title in zip(spec["y"], titles) for name, part in _panels(spec, frame)]
    fig, axes = _axes(len(panels), width=4.2, height=3.4)
    for ax, (y, title, part) in zip(axes, panels):
        value = f"{y}_mean" if f"{y}_mean" in part else y
        pivot = part.pivot_table(index=extra["row"], columns=spec["x"], values=value)
        sns.heatmap(pivot, annot=True, fmt=".3f", cmap="viridis", ax=ax, cbar=False)
        ax.set_title(f"{title} (mean)", fontsize=9)
    return fig


def classmap(spec: dict, frame: pd.DataFrame, load):
    """Predicted class over a mesh, one panel per model, training points on top."""
    points = load(spec["extra"]["points"]) if "points" in spec.get("extra", {}) else None
    panels = list(dict.fromkeys(frame["panel"]))
    cols = min(4, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    for ax, name in itertools.zip_longest(axes.flat, panels):
        if name is None:
            ax.axis("off")
            continue
        b = frame[frame["panel"] == name]
        res = int(round(np.sqrt(len(b))))
        grid = b["predicted"].to_numpy().reshape(res, res)
        extent = (b["x0"].min(), b["x0"].max(), b["x1"].min(), b["x1"].max())
        ax.imshow(grid, origin="lower", extent=extent, cmap="Pastel1", vmin=0, vmax=8,
                  aspect="auto", interpolation="nearest")
        if points is not None:
            ax.scatter(points["x0"], points["x1"], c=points["y"], cmap="Set1", vmin=0, vmax=8,
                       s=1.5, rasterized=True)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    return fig


def images(spec: dict, frame: pd.DataFrame, load):
    """Rows of small grayscale images: columns panel (row label), index, pixels p0..pK."""
    pixel_cols = [c for c in frame.columns if c.startswith("p") and c[1:].isdigit()]
    side = int(round(np.sqrt(len(pixel_cols))))
    rows = list(dict.fromkeys(frame["panel"]))
    n = int(frame["index"].nunique())
    fig, axes = plt.subplots(len(rows), n, figsize=(max(0.9 * n, 4.5), 0.95 * len(rows)),
                             squeeze=False)
    for r, name in enumerate(rows):
        part = frame[frame["panel"] == name].sort_values("index")
        for c, (_, row) in enumerate(part.iterrows()):
            ax = axes[r, c]
            ax.imshow(row[pixel_cols].to_numpy(dtype=float).reshape(side, side),
                      cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    return fig


VERDICT_COLOURS = {"differs": "#1f5fa8", "tie": "#9a9a9a"}


def forest(rows: list[dict]):
    """A forest plot of a study's paired comparisons (answers.forest_rows): each
    difference with its interval, one panel per metric, the zero line, the verdict as
    colour, the interval's level beside it where a family's level applies. A panel whose
    differences span more than three orders of magnitude has a symmetric log axis."""
    frame = pd.DataFrame(rows)
    metrics = list(dict.fromkeys(frame["metric"]))
    heights = [max(1, (frame["metric"] == m).sum()) for m in metrics]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(7.2, 0.6 * len(metrics) +
                                                        0.27 * sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        part = frame[frame["metric"] == metric].reset_index(drop=True)
        y = np.arange(len(part))[::-1]
        several = part["finding"].nunique() > 1  # name each row's finding, rule between
        labels = [f"{f.replace('_', ' ')}: {v}" if several and not setting else v
                  for f, v, setting in zip(part["finding"], part["label"], part["setting"])]
        for k in range(1, len(part)):
            if part["finding"][k] != part["finding"][k - 1]:
                ax.axhline(y[k] + 0.5, color="#bbb", lw=0.6, ls=":")
        for yi, r in zip(y, part.itertuples()):
            colour = VERDICT_COLOURS[r.verdict]
            ax.plot([r.low, r.high], [yi, yi], color=colour, lw=2, solid_capstyle="butt")
            ax.plot([r.diff], [yi], "o", color=colour, ms=4)
            if r.level > stats.LEVEL + 1e-9:  # a family's level
                ax.annotate(numbers.level_text(r.level), (r.high, yi), xytext=(3, 0),
                            textcoords="offset points", va="center", fontsize=6,
                            color="#555")
        ax.axvline(0, color="#333", lw=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels([_short_label(v) for v in labels], fontsize=7)
        ax.set_ylim(-0.7, len(part) - 0.3)
        better = part["better"].iloc[0]
        ax.set_title(f"{metric}: difference ({better} is better)", fontsize=8, loc="left")
        ends = np.abs(np.r_[part["low"], part["high"], part["diff"]])
        ends = ends[np.isfinite(ends) & (ends > 0)]
        if len(ends) and ends.max() / ends.min() > 1000:
            _symlog(ax, part, float(np.quantile(ends, 0.1)))
        ax.tick_params(axis="x", labelsize=7)
    handles = [plt.Line2D([], [], color=c, lw=2, marker="o", ms=4) for c in
               VERDICT_COLOURS.values()]
    fig.legend(handles, ["interval excludes 0", "indistinguishable"], loc="upper right",
               fontsize=7, frameon=False, ncol=2,
               bbox_to_anchor=(1.0, 1.0 + 0.25 / fig.get_figheight()))
    fig.tight_layout()
    return fig


def _symlog(ax, part: pd.DataFrame, linthresh: float) -> None:
    """A symmetric log axis for differences spanning many orders of magnitude: linear
    within linthresh of zero, a tick at zero and at a few powers of ten either side."""
    ax.set_xscale("symlog", linthresh=linthresh)
    low = min(0.0, float(np.nanmin(part["low"])))
    high = max(0.0, float(np.nanmax(part["high"])))
    left, right = low * 2 if low < 0 else -linthresh, high * 2 if high > 0 else linthresh
    first = math.floor(math.log10(linthresh))
    ticks = [0.0]
    for bound, sign in ((high, 1), (-low, -1)):
        if bound <= linthresh:
            continue
        last = math.ceil(math.log10(bound))
        step = max(1, -(-(last - first) // 3))  # at most about 3 labels a side
        ticks += [sign * 10.0 ** k for k in range(last, first, -step)]
    ticks = sorted(t for t in ticks if left <= t <= right)
    ax.set_xticks(ticks)
    ax.set_xlim(left, right)
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xticklabels(["0" if t == 0 else ("\N{MINUS SIGN}" if t < 0 else "") + "10" +
                        str(round(math.log10(abs(t)))).translate(SUPERSCRIPT)
                        for t in ticks])


def _short_label(label: str, limit: int = 72) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"
