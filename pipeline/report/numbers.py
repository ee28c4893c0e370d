"""Numbers as text: every number a sentence of the report prints is formatted here, and
the number markers a study writes into its own words (`pipeline.findings.fmt` and its
kin) are read back here."""

from __future__ import annotations

import json
import math
import re

import numpy as np

from pipeline.stats import LEVEL, RESIDUE


def fmt(v: float | None, digits: int = 3, zeros: bool = False) -> str:
    """A number for a sentence: 3 significant digits; 'n/a' for a missing one. zeros:
    keep trailing zeros (-0.30 beside -0.31), so that numbers read at one precision."""
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:#.{digits}g}".rstrip(".") if zeros and v != 0 else f"{v:.{digits}g}"


def is_residue(d: float, *scale: float) -> bool:
    """A difference of two numbers of this scale within float32's rounding residue."""
    big = max((abs(v) for v in scale if np.isfinite(v)), default=0.0)
    return bool(np.isfinite(d) and abs(d) <= RESIDUE * big)


def fmt_diff(d: float, *scale: float, digits: int = 2) -> str:
    """A difference of two numbers of this scale: a float32 rounding residue prints as 0."""
    return "0" if is_residue(d, *scale) else fmt(d, digits, zeros=True)


def ci_digits(low: float, high: float) -> int:
    """Significant digits (2 to 6), at the interval's larger end, at which the rounding
    step is at most a tenth of its width: its ends, and a difference inside it, print
    where they are, not at a neighbouring rounding (-2.660 to -2.644, not -2.7 to -2.6)."""
    width = abs(high - low)
    big = max(abs(low), abs(high))
    if not (np.isfinite(width) and width > 0 and big > 0):
        return 3
    digits = math.floor(math.log10(big)) + 2 - math.log10(width)
    return int(min(6, max(2, math.ceil(digits - 1e-9))))


def ci_decimals(low: float, high: float) -> int | None:
    """Decimal places for both ends of an interval (and a difference inside it): the
    larger end's at ci_digits, so that both ends read at one precision across a power of
    ten (-1.67 to -0.80); None where fixed-point would not read (tiny or huge numbers)."""
    big = max(abs(low), abs(high))
    if not (np.isfinite(big) and 1e-4 <= big < 1e6):
        return None
    return max(0, ci_digits(low, high) - 1 - math.floor(math.log10(big)))


def fmt_at(v: float, low: float, high: float) -> str:
    """v (an end of the interval low..high, or a number inside it) at the interval's
    precision; a nonzero number that would print as 0.00 keeps 2 significant digits, so
    that its sign (which side of zero an end lies) still reads."""
    places = ci_decimals(low, high)
    if places is None or not np.isfinite(v):
        return fmt(v, ci_digits(low, high), zeros=True)
    if v != 0 and round(v, places) == 0:
        return fmt(v, 2, zeros=True)
    return f"{v:.{places}f}"


def level_text(level: float) -> str:
    """A coverage in per cent, rounded down (98.75%, never 98.8%)."""
    return f"{math.floor(10000 * level + 1e-6) / 100:g}%"


def fmt_ci(low: float, high: float, level: float = LEVEL) -> str:
    """'95% CI low to high' at ci_digits."""
    return f"{level_text(level)} CI {fmt_at(low, low, high)} to {fmt_at(high, low, high)}"


def fmt_interval(mean: float, ci95: float) -> str:
    """'mean ± half-width', the mean to the decimal place of the half-width's second
    significant digit (12.7195 ± 0.0055, not 12.7 ± 0.0055; 0.00086 ± 0.00027)."""
    if not np.isfinite(ci95):
        return fmt(mean)
    return f"{fmt_like(mean, ci95)} ± {fmt(ci95, 2, zeros=True)}"


def fmt_like(v: float, ci95: float) -> str:
    """v to the decimal place of the half-width's second significant digit (a mean beside
    its interval, or a number read beside such a mean); 3 significant digits where the
    half-width is 0 or missing."""
    if not (np.isfinite(ci95) and ci95 > 0 and np.isfinite(v)) or v == 0:
        return fmt(v)
    place = math.floor(math.log10(ci95)) - 1  # the half-width's second digit
    digits = max(1, math.floor(math.log10(abs(v))) - place + 1)
    return fmt(v, min(digits, 8), zeros=True)



def diff_at(diff: float, low: float, high: float, *scale: float) -> str:
    """A difference at its interval's precision; a float32 residue of numbers of this scale
    prints as 0."""
    return "0" if is_residue(diff, *scale) else fmt_at(diff, low, high)


def difference(diff: float, low: float, high: float, level: float, *scale: float) -> str:
    """'difference d, 95% CI low to high', d at its interval's precision."""
    return f"difference {diff_at(diff, low, high, *scale)}, {fmt_ci(low, high, level)}"


NAMES = {"val_acc": "validation accuracy", "val_loss": "validation loss",
         "cv_loss": "cross-validation loss",
         "train_loss": "training loss", "train_acc": "training accuracy",
         "test_acc": "test accuracy", "test_loss": "test loss"}


def name(metric: str) -> str:
    """A metric's name in a sentence."""
    return NAMES.get(metric, metric.replace("_", " "))


CODE_WORD = re.compile(r"[a-z0-9]*_\w*\b|lr\b")  # a params name: leaky_relu, lr


def sentence(text: str) -> str:
    """Capitalise the first letter (labels may start a sentence in lower case), unless
    the sentence starts with a name as params.yaml spells it (leaky_relu, lr)."""
    return text if CODE_WORD.match(text) else text[:1].upper() + text[1:]


MARK = re.compile(r"⟦(\w+)(?::(.*?))?⟧")  # pipeline.findings writes these
FORMATS = {"fmt": lambda v, digits=3, zeros=False: fmt(v, digits, zeros),
           "fmt_interval": lambda mean, ci95: fmt_interval(_num(mean), _num(ci95)),
           "fmt_like": lambda v, ci95: fmt_like(_num(v), _num(ci95)),
           "fmt_ci": lambda low, high, level=LEVEL: fmt_ci(_num(low), _num(high), level),
           "level_text": lambda level: level_text(level),
           "fmt_difference": lambda *args: difference(*map(_num, args)),
           "name": lambda metric: name(metric)}


def _num(v) -> float:
    return math.nan if v is None else float(v)


def numbers(template: str) -> str:
    """A study's words with each number marker formatted; other markers are left."""
    def one(m: re.Match) -> str:
        if m.group(1) not in FORMATS:
            return m.group(0)
        args = json.loads(m.group(2)) if m.group(2) else []
        return FORMATS[m.group(1)](*args)
    return MARK.sub(one, template)
