"""Per-model random streams, so results are independent of grouping."""

from __future__ import annotations

import hashlib

import torch


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for one named stream of one model seed."""
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class ModelRng:
    """The random streams of one model: init, batch order, dropout masks, and the shifts
    of data augmentation."""

    def __init__(self, seed: int):
        self.seed = seed
        self.init = torch.Generator().manual_seed(stream_seed(seed, "init"))
        self.order = torch.Generator().manual_seed(stream_seed(seed, "order"))
        self.dropout = torch.Generator().manual_seed(stream_seed(seed, "dropout"))
        self.augment = torch.Generator().manual_seed(stream_seed(seed, "augment"))

    def permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.order)

    def uniform(self, out: torch.Tensor, p: float) -> None:
        """Dropout's draws for rate p, written into out (contiguous): uniform numbers
        from the dropout stream, or ones (and no draw) when p is 0; out >= p is the mask
        of kept units (probability 1 - p). (torch.nn.Dropout's bernoulli_ draws the same
        distribution three times slower on CPUs without MKL's generator.)"""
        if p == 0.0:
            out.fill_(1.0)
        else:
            torch.rand(out.shape, generator=self.dropout, out=out)

    def shifts(self, n: int, most: int) -> torch.Tensor:
        """(n, 2) whole-pixel shifts (down, right), each uniform in -most..most."""
        return torch.randint(-most, most + 1, (n, 2), generator=self.augment)
