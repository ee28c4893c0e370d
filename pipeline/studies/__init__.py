"""The study registry: every module of this package other than `base` is a study, and
holds one `Study` subclass named STUDY. Adding a study is adding a module here (plus its
params section and its dvc.yaml stage); nothing else names it.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path

NOT_STUDIES = {"base"}


@cache
def names() -> tuple[str, ...]:
    """Every study's name, without importing any study."""
    found = (m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]))
    return tuple(sorted(n for n in found if n not in NOT_STUDIES and not n.startswith("_")))


def load(name: str):
    """The Study class of one study (imports that study's module only)."""
    if name not in names():
        raise KeyError(f"no study named {name!r}; the studies are {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{name}").STUDY
