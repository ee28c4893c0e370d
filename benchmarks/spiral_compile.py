"""Does torch.compile speed up the engine's spiral step (hand-written forward + backward)?

    python -m benchmarks.spiral_compile

Prints the eager and compiled milliseconds per model-step of one group of spiral MLPs
(2-100-3, 3000 points, full batch), their ratio, and the compile time (cold, then from
torch's on-disk cache in a second process). The engine stays eager unless this ratio
pays for the compile across a stage.
"""

from __future__ import annotations

import subprocess
import sys
import time

import torch

import pipeline  # noqa: F401  (reproducible BLAS before the first product)
from pipeline.config import Config
from pipeline.datasets import generate
from pipeline.engine import Arch, backprop

G = 5  # the default spiral grid's group: one activation x 5 seeds


def _ms_per_model_step(fn, n: int = 30) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best / G * 1e3


def main() -> None:
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    arrays = generate("spiral", Config().data.spiral)
    x, y = torch.as_tensor(arrays["x_train"]), torch.as_tensor(arrays["y_train"])
    arch = Arch((2, 100, 3), "relu")
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(G, 2, 100, generator=gen), torch.zeros(G, 1, 100),
              torch.randn(G, 100, 3, generator=gen) * 0.1, torch.zeros(G, 1, 3)]

    def step():
        return backprop.loss_and_grads(arch, params, "cross_entropy", x, y)

    eager = _ms_per_model_step(step)
    compiled_fn = torch.compile(step)
    start = time.perf_counter()
    compiled_fn()
    compile_s = time.perf_counter() - start
    fast = _ms_per_model_step(compiled_fn)
    print(f"spiral step, {G} models, one thread: eager {eager:.3f} ms, compiled {fast:.3f} ms "
          f"per model-step (eager / compiled = {eager / fast:.2f})")
    print(f"compile time in this process: {compile_s:.1f} s")
    if "--no-warm" not in sys.argv:  # a second process reads torch's on-disk cache
        warm = subprocess.run([sys.executable, "-m", "benchmarks.spiral_compile", "--no-warm"],
                              capture_output=True, text=True).stdout.strip().splitlines()
        print("with the on-disk cache warm: " + warm[-1].removeprefix("compile time in this "
                                                                      "process: "))


if __name__ == "__main__":
    main()
