"""Cell cache: a finished cell's result stored under a content key, so that a re-run
trains only the cells whose key is new (add one grid value: train only its cells).

The key hashes the job (spec, seed, every per-model knob, training rows), the training
data, the engine's source code, the torch version and the device type. Because a cell's
numbers do not depend on its group (tests/test_engine.py), a cached result equals what
training it again would give. Entries are .npz files (no pickle), written atomically.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from pipeline.io import read_npz, write_npz

ENGINE_FILES = ("models.py", "optim.py", "rng.py", "train.py")


def _engine_digest() -> str:
    h = hashlib.sha256(torch.__version__.encode())
    for name in ENGINE_FILES:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


def data_digest(data) -> str:
    h = hashlib.sha256()
    for t in (data.x_train, data.y_train, data.x_test, data.y_test):
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class CellCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.engine = _engine_digest()

    def key(self, job, data_key: str, device: torch.device) -> str:
        text = f"{self.engine}|{data_key}|{torch.device(device).type}|{job!r}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, job):
        from pipeline.engine.train import Result

        path = self._path(key)
        if not path.exists():
            return None
        arrays, meta = read_npz(path)
        params = [torch.from_numpy(arrays[f"p{i}"]) for i in range(meta["n_params"])]
        return Result(job, meta["metrics"], meta["curve"], params, meta["diverged"],
                      meta["diverged_epoch"], meta["seconds"], extra={"cached": True})

    def put(self, key: str, result) -> None:
        # NaN metrics of diverged cells are fine in this JSON: only this module reads it
        meta = {"metrics": result.metrics, "curve": result.curve, "diverged": result.diverged,
                "diverged_epoch": result.diverged_epoch, "seconds": result.seconds,
                "n_params": len(result.params)}
        write_npz(self._path(key), meta, **{f"p{i}": p.numpy() for i, p in
                                            enumerate(result.params)})
