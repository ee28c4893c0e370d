"""Atomic writes: a temp file (or folder) beside the target, then a rename.

A stage killed half-way leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

FLOAT_FORMAT = "%.9g"  # fixed formatting: equal numbers give byte-identical CSVs


def _usual_mode(base: int) -> int:
    """The mode open() (base 0o666) or mkdir (0o777) would give under the current umask:
    temp files are private (0600, 0700) until renamed."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


@contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temp path beside `path`; rename it over `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _usual_mode(0o666))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path):
    """Yield a temp folder beside `path`; on success it replaces `path` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        os.chmod(tmp, _usual_mode(0o777))
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
            os.replace(path, old / "x")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_with(path: str | Path, write: Callable[[Path], None], suffix: str = "") -> None:
    with atomic_path(path, suffix) as tmp:
        write(tmp)


def write_json(path: str | Path, obj: object) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    _write_with(path, lambda p: p.write_text(text))


def write_text(path: str | Path, text: str) -> None:
    _write_with(path, lambda p: p.write_text(text))


def write_csv(path: str | Path, frame) -> None:
    _write_with(path, lambda p: frame.to_csv(p, index=False, float_format=FLOAT_FORMAT))


def write_npz(path: str | Path, meta: dict, **arrays: np.ndarray) -> None:
    """Arrays plus the generating params (as JSON) in one .npz."""
    meta_json = np.array(json.dumps(meta))  # key order kept: callers rely on it
    _write_with(path, lambda p: np.savez(p, meta=meta_json, **arrays), suffix=".npz")


def read_npz(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k != "meta"}
        meta = json.loads(str(f["meta"])) if "meta" in f.files else {}
    return arrays, meta
