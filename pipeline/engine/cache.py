"""Cell cache: a finished cell's result stored under a content key, so that a re-run
trains only the cells whose key is new (add one grid value: train only its cells).

The key hashes the job (spec, seed, every per-model knob, training rows), the data, every
source file of the engine, torch's version and build, the processor, the CPU capability
torch dispatches to, the BLAS reproducibility mode and the device (a GPU by its name and
CUDA version; with Ray, the driver's). A cell's numbers do not depend on its group or its
position in it (tests/test_engine.py), so a cached result is the result a cold run gives on
this kind of processor. Entries are .npz files (no pickle), written atomically.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from pipeline.engine import blas
from pipeline.engine.types import Job, Result, TrainData
from pipeline.io import read_npz, write_npz


def engine_digest() -> str:
    """What else decides a cell's numbers: the engine's code and the numeric platform."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    platform = (torch.__version__, torch.version.git_version, blas.processor(),
                torch.backends.cpu.get_cpu_capability(), blas.mode())
    h.update(repr(platform).encode())
    return h.hexdigest()


def data_digest(data: TrainData) -> str:
    h = hashlib.sha256()
    for t in (data.x_train, data.y_train, data.x_test, data.y_test, data.x_val, data.y_val):
        if t is None:
            h.update(b"none")
            continue
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class CellCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.engine = engine_digest()

    def key(self, job: Job, data_key: str, device: torch.device) -> str:
        dev = torch.device(device)  # a GPU by its name and CUDA version (a CPU: in engine)
        where = dev.type if dev.type == "cpu" else blas.arithmetic(dev)
        text = f"{self.engine}|{data_key}|{where}|{job!r}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, job: Job) -> Result | None:
        path = self._path(key)
        if not path.exists():
            return None
        arrays, meta = read_npz(path)
        params = [torch.from_numpy(arrays[f"p{i}"]) for i in range(meta["n_params"])]
        return Result(job, meta["metrics"], meta["curve"], params, meta["diverged"],
                      meta["diverged_epoch"], meta["seconds"], extra={"cached": True},
                      stopped_epoch=meta.get("stopped_epoch"))

    def put(self, key: str, result: Result) -> None:
        # NaN metrics of diverged cells are fine in this JSON: only this module reads it
        meta = {"metrics": result.metrics, "curve": result.curve, "diverged": result.diverged,
                "diverged_epoch": result.diverged_epoch, "seconds": result.seconds,
                "stopped_epoch": result.stopped_epoch,
                "n_params": len(result.params)}
        write_npz(self._path(key), meta, **{f"p{i}": p.numpy() for i, p in
                                            enumerate(result.params)})

    def lookup(self, jobs: list[Job], data: TrainData, device: torch.device
               ) -> tuple[list[str], dict[int, Result]]:
        """Every job's key, and the stored result of each job that has one (by index)."""
        digest = data_digest(data)
        keys = [self.key(job, digest, device) for job in jobs]
        hits = {i: hit for i, (job, key) in enumerate(zip(jobs, keys))
                if (hit := self.get(key, job)) is not None}
        return keys, hits
