"""Does torch.compile speed up the spiral training step (forward + backward)?

    python -m benchmarks.spiral_compile

Prints the eager and compiled milliseconds per step of one group of spiral MLPs
(2-100-3, 3000 points, full batch), their ratio, and the compile time. The engine stays
eager unless this ratio says otherwise.
"""

from __future__ import annotations

import time

import torch

from pipeline.config import Config
from pipeline.datasets import generate
from pipeline.engine.loop import per_model_loss
from pipeline.engine.models import Arch, forward

G = 3  # the default spiral grid's group: one activation x 3 seeds


def _ms_per_call(fn, args, n: int = 200) -> float:
    for _ in range(10):
        fn(*args)
    start = time.perf_counter()
    for _ in range(n):
        fn(*args)
    return (time.perf_counter() - start) / n * 1e3


def main() -> None:
    torch.set_flush_denormal(True)
    arrays = generate("spiral", Config().data.spiral)
    x, y = torch.as_tensor(arrays["x_train"]), torch.as_tensor(arrays["y_train"])
    arch = Arch((2, 100, 3), "relu")
    gen = torch.Generator().manual_seed(0)
    params = [(torch.randn(G, 2, 100, generator=gen) * 0.5).requires_grad_(),  # (G, in, h)
              torch.zeros(G, 1, 100, requires_grad=True),  # (G, 1, h)
              (torch.randn(G, 100, 3, generator=gen) * 0.1).requires_grad_(),  # (G, h, out)
              torch.zeros(G, 1, 3, requires_grad=True)]  # (G, 1, out)

    def step(*p):
        loss = per_model_loss("cross_entropy", forward(arch, list(p), x), y)  # (G,)
        return torch.autograd.grad(loss.sum(), p)

    eager = _ms_per_call(step, params)
    start = time.perf_counter()
    compiled = torch.compile(step)
    compiled(*params)
    compile_s = time.perf_counter() - start
    fast = _ms_per_call(compiled, params)
    print(f"spiral step, {G} models: eager {eager:.2f} ms, compiled {fast:.2f} ms "
          f"(eager / compiled = {eager / fast:.2f}), compile time {compile_s:.1f} s")


if __name__ == "__main__":
    main()
