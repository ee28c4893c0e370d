"""What the engine takes and gives: specs, jobs, data, results and run options."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.engine.convnet import ConvNet
from pipeline.engine.models import INITS, Arch

LOSSES = ("mse", "half_mse", "cross_entropy")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainSpec:
    """What every model of a group shares."""

    arch: Arch | ConvNet
    optimizer: str = "sgd"  # sgd | momentum | nesterov | adam | adamw
    loss: str = "cross_entropy"  # mse | half_mse (d2l's squared_loss) | cross_entropy
    epochs: int = 1
    batch_size: int | None = None  # None: full batch
    log_every: int = 1
    init: str = "torch"  # see models.INITS
    init_scale: float = 1.0  # the std of "normal", the value of "constant"
    decay_bias: bool = False  # weight decay on biases too (torch.optim's default)
    grad_norms: bool = False  # log each weight's full-batch gradient norm, from epoch 0
    # diverged: a loss that is NaN/inf or, when set, above diverge_factor x the model's
    # first loss (cross-entropy blows up to large finite values rather than to inf)
    diverge_factor: float | None = None
    # train until converged: a model whose training loss fell by less than this
    # (relative) over the last tenth of `epochs` (see stopping.py) is frozen and logs no
    # more; `epochs` is then the bound. None: every model trains all its epochs
    stop_tol: float | None = None
    # train until the model fits its training rows: one whose training loss is at or
    # below this is frozen and logs no more (a classifier's cross-entropy falls towards 0
    # while it trains, so a relative fall never settles). None: no such stop
    stop_below: float | None = None
    # evaluate validation and test once, where each model's training ends (its last curve
    # row), not at every log (the training rows are evaluated at every log, for stopping)
    splits_at_end: bool = False
    # data augmentation (a CNN's): every training image of every step moved by a random
    # whole number of pixels, up to this many in each direction, the uncovered border
    # zero (in the spirit of AlexNet's random crops); each model draws its shifts from
    # its own stream, and evaluation sees the images unmoved. 0: none
    shift: int = 0
    # the learning rate over epochs: "constant", or "cosine", each model's rate times
    # (1 + cos(pi (e - 1) / epochs)) / 2 in epoch e (1, 2, ...): annealed towards zero
    # over the bound, as torch.optim.lr_scheduler.CosineAnnealingLR(T_max=epochs) stepped
    # once per epoch (d2l 12.11)
    schedule: str = "constant"

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {SCHEDULES}")
        if self.schedule != "constant" and self.stop_tol is not None:
            raise ValueError("stop_tol stops a model whose loss has settled, which an annealed "
                             "rate brings about whatever the model: use it with a constant "
                             "schedule only")
        if not isinstance(self.shift, int) or isinstance(self.shift, bool) or self.shift < 0:
            raise ValueError(f"shift must be a whole number of pixels, at least 0, got "
                             f"{self.shift!r}")
        if self.shift and not isinstance(self.arch, ConvNet):
            raise ValueError("shift moves images: it applies to a ConvNet only")
        if self.shift and self.shift >= min(self.arch.input[1:]):
            raise ValueError(f"shift {self.shift} would move a {self.arch.input[1:]} image "
                             "out of its frame; it must be smaller than the image")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; expected one of {INITS}")

    @property
    def classification(self) -> bool:
        return self.loss == "cross_entropy"


@dataclass(frozen=True, eq=False, repr=False)
class Weights:
    """One model's given starting parameters, in Arch's layout (W as (fan_in, fan_out),
    biases as (fan_out,)): a pre-trained model to fine-tune. Its repr is a digest of the
    values, so a job's repr (the cell cache's key) names exactly what it starts from."""

    arrays: tuple[np.ndarray, ...]

    def __repr__(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for a in self.arrays:
            a = np.ascontiguousarray(a, dtype=np.float32)
            h.update(repr(a.shape).encode() + a.tobytes())
        return f"Weights({h.hexdigest()[:16]})"

    def tensors(self) -> list[torch.Tensor]:
        return [torch.tensor(np.asarray(a, dtype=np.float32)) for a in self.arrays]


@dataclass(frozen=True)
class Job:
    """One model: its spec and its own knobs."""

    spec: TrainSpec
    seed: int
    lr: float
    weight_decay: float = 0.0  # optimizer decay (L2 for SGD/Adam, decoupled for AdamW)
    l2_penalty: float = 0.0  # lambda * ||w||^2 / 2 added to the loss
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    dropout: tuple[float, ...] = ()  # one rate per hidden layer; () means none
    active_inputs: int | None = None  # train on the first k input features only
    rows: tuple[int, ...] | None = None  # training rows (a fold); None: all
    start: Weights | None = None  # start from these parameters; None: spec.init's draw


@dataclass
class TrainData:
    """Training, test and (optional) validation tensors shared by every model."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], device="cpu") -> TrainData:
        keys = ["x_train", "y_train", "x_test", "y_test"]
        if "x_val" in arrays:
            keys += ["x_val", "y_val"]
        return cls(*(torch.as_tensor(arrays[k], device=device) for k in keys))

    def splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The evaluation splits other than the training rows: val (if any), test."""
        out = {} if self.x_val is None else {"val": (self.x_val, self.y_val)}
        return out | {"test": (self.x_test, self.y_test)}

    def to(self, device) -> TrainData:
        return TrainData(*(None if t is None else t.to(device) for t in
                           (self.x_train, self.y_train, self.x_test, self.y_test,
                            self.x_val, self.y_val)))


@dataclass
class Result:
    job: Job
    metrics: dict[str, float]  # final train/val/test loss (and accuracy)
    curve: list[dict[str, float]]  # one row per logged epoch
    params: list[torch.Tensor]  # [W0 (in, out), b0 (out,), ...] on the CPU
    diverged: bool
    diverged_epoch: int | None
    seconds: float  # the group's wall time divided by its size
    extra: dict = field(default_factory=dict)
    stopped_epoch: int | None = None  # where it converged and stopped (spec.stop_tol)


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs, never what it computes: every option gives the same numbers."""

    workers: int = 1  # forked single-thread CPU processes
    cache: object | None = None  # a CellCache, or None
    executor: str = "local"  # local | ray
    ray_address: str | None = None  # None: a local Ray on the loopback interface
    ray_gpus_per_task: float = 0.0
    group_size: int | None = None  # at most this many models per group
    max_memory: int = 2 * 2 ** 30  # bytes of training memory, all workers together
    progress: bool | None = None  # None: a bar when the output is a terminal
    desc: str = "train"
