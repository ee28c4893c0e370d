"""params.yaml -> typed, validated config: the one place that knows the schema.

Every section rejects unknown keys, so a typo in params.yaml is an error, never a
silently ignored knob. `load_config` turns any problem into a `ConfigError` whose
message is one line naming the key and the offending value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, lt=1)]  # dropout rates: 1 would drop everything
Fraction = Annotated[float, Field(gt=0, lt=1)]

Activation = Literal["none", "relu", "leaky_relu", "sigmoid", "tanh", "gelu"]
Optimizer = Literal["sgd", "momentum", "nesterov", "adam", "adamw"]


def _grid(item):
    """A non-empty list of unique values: a study grid axis."""
    return Annotated[list[item], Field(min_length=1)]


class ConfigError(Exception):
    """A params problem, phrased as one line for the user."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# ---------------------------------------------------------------- datasets


class SpiralData(Section):
    """Spiral classes: the NYU-DLSP20 notebook generator or the CS231n one."""

    generator: Literal["dlsp20", "cs231n"] = "dlsp20"
    classes: Annotated[int, Field(ge=2)] = 3
    points_per_class: Annotated[int, Field(ge=2)] = 1000
    test_points_per_class: Annotated[int, Field(ge=2)] = 1000
    noise: NonNegFloat = 0.2
    seed: int = 0


class LinearData(Section):
    """d2l 3.3: y = Xw + b + noise."""

    n: PositiveInt = 1000
    w: Annotated[list[float], Field(min_length=1)] = [2.0, -3.4]
    b: float = 4.2
    noise: NonNegFloat = 0.01
    seed: int = 0


class PolynomialData(Section):
    """d2l 3.6: x ~ N(0, 1), features x^i / i!, cubic truth plus noise."""

    n_features: Annotated[int, Field(ge=1, le=40)] = 20  # x^0 .. x^19: degrees 0 .. 19
    n_train: PositiveInt = 100
    n_test: PositiveInt = 100
    true_w: Annotated[list[float], Field(min_length=1)] = [5.0, 1.2, -3.4, 5.6]
    noise: NonNegFloat = 0.1
    seed: int = 0

    @model_validator(mode="after")
    def _truth_fits(self):
        if len(self.true_w) > self.n_features:
            raise ValueError(
                f"true_w has {len(self.true_w)} coefficients but n_features is "
                f"{self.n_features} (features x^0 .. x^{self.n_features - 1})"
            )
        return self


class HighDimData(Section):
    """d2l 3.7: y = 0.05 + sum_i 0.01 x_i + noise, d = 200, 20 training rows."""

    n_train: PositiveInt = 20
    n_test: PositiveInt = 100
    d: PositiveInt = 200
    w: float = 0.01
    b: float = 0.05
    noise: NonNegFloat = 0.01
    seed: int = 0


class ImageData(Section):
    """scikit-learn's bundled digits by default; Fashion-MNIST from a local root."""

    source: Literal["digits", "fashion_mnist"] = "digits"
    test_fraction: Fraction = 0.2
    seed: int = 0
    root: str = "data/raw"
    download: bool = False
    limit_train: PositiveInt | None = None
    limit_test: PositiveInt | None = None


class WilsonData(Section):
    """Wilson et al. 2017, section 3.3: a separable problem where adaptive methods
    generalise worse than gradient descent."""

    n_train: Annotated[int, Field(ge=2)] = 50
    n_test: PositiveInt = 1000
    p_positive: Annotated[float, Field(gt=0.5, lt=1)] = 0.6
    seed: int = 0


class DataConfig(Section):
    spiral: SpiralData = SpiralData()
    linear: LinearData = LinearData()
    polynomial: PolynomialData = PolynomialData()
    highdim: HighDimData = HighDimData()
    images: ImageData = ImageData()
    wilson: WilsonData = WilsonData()


# ---------------------------------------------------------------- studies


class SpiralStudy(Section):
    """NYU-DLSP20 04-spiral_classification: linear vs non-linear MLP."""

    activations: _grid(Activation) = ["none", "relu", "leaky_relu", "sigmoid", "tanh", "gelu"]
    widths: _grid(PositiveInt) = [100]
    optimizers: _grid(Literal["sgd", "adam"]) = ["sgd", "adam"]
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegFloat = 1e-5
    epochs: PositiveInt = 1000
    log_every: PositiveInt = 50
    boundary_resolution: Annotated[int, Field(ge=8, le=400)] = 100


class PolynomialStudy(Section):
    """d2l 3.6 (generalization): degree vs fit."""

    degrees: _grid(Annotated[int, Field(ge=0)]) = list(range(20))  # features = degree + 1
    train_sizes: _grid(PositiveInt) = [100]
    lr: PositiveFloat = 0.01
    batch_size: PositiveInt = 10
    epochs: PositiveInt = 400
    log_every: PositiveInt = 20
    init_std: PositiveFloat | None = None  # None: torch.nn.Linear's default, as in d2l
    min_norm_train_sizes: _grid(PositiveInt) = [10, 100]


class WeightDecayStudy(Section):
    lambdas: _grid(NonNegFloat) = [0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    forms: _grid(Literal["penalty", "decoupled"]) = ["penalty", "decoupled"]
    lr: PositiveFloat = 0.003
    batch_size: PositiveInt = 5
    epochs: PositiveInt = 100
    log_every: PositiveInt = 5
    init_std: PositiveFloat = 1.0


class DropoutStudy(Section):
    p1: _grid(Probability) = [0.0, 0.2, 0.5, 0.8]
    p2: _grid(Probability) = [0.0, 0.2, 0.5, 0.8]
    weight_decays: _grid(NonNegFloat) = [0.0, 1e-4, 1e-3]
    interaction_dropouts: _grid(Probability) = [0.0, 0.5]
    hidden: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] = [256, 256]
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: PositiveFloat = 0.5
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 30
    log_every: PositiveInt = 5
    init_std: PositiveFloat = 0.01


class RegularizationStudy(Section):
    weight_decay: WeightDecayStudy = WeightDecayStudy()
    dropout: DropoutStudy = DropoutStudy()


class OptimizerSpiral(Section):
    width: PositiveInt = 100
    epochs: PositiveInt = 300
    log_every: PositiveInt = 10


class OptimizerImages(Section):
    hidden: PositiveInt = 128
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 10
    log_every: PositiveInt = 1


class OptimizerWilson(Section):
    optimizers: _grid(Literal["sgd", "momentum", "nesterov", "adam"]) = ["sgd", "adam"]
    lr: PositiveFloat = 0.01
    epochs: PositiveInt = 400
    log_every: PositiveInt = 20


class OptimizersStudy(Section):
    """SGD, momentum, Nesterov and Adam across learning rates, same model and budget."""

    optimizers: _grid(Literal["sgd", "momentum", "nesterov", "adam"]) = [
        "sgd", "momentum", "nesterov", "adam"]
    lrs: _grid(PositiveFloat) = [0.0001, 0.001, 0.01, 0.1, 1.0]
    momentum: Annotated[float, Field(gt=0, lt=1)] = 0.9
    target_loss: PositiveFloat = 0.5
    diverge_factor: Annotated[float, Field(gt=1)] = 10.0
    spiral: OptimizerSpiral = OptimizerSpiral()
    images: OptimizerImages = OptimizerImages()
    wilson: OptimizerWilson = OptimizerWilson()


class WidthDepthData(Section):
    batch_size: PositiveInt | None = None  # None: full batch
    epochs: PositiveInt = 300
    log_every: PositiveInt = 50


class WidthDepthStudy(Section):
    """Depth x width at matched parameter budgets."""

    depths: _grid(Annotated[int, Field(ge=1, le=12)]) = [1, 2, 3, 4]
    widths: _grid(PositiveInt) = [8, 32, 128]
    budgets: _grid(PositiveInt) = [1000, 5000, 20000]
    activation: Activation = "relu"
    optimizer: Optimizer = "adam"
    lr: PositiveFloat = 0.01
    spiral: WidthDepthData = WidthDepthData(epochs=500, log_every=50)
    images: WidthDepthData = WidthDepthData(batch_size=64, epochs=20, log_every=5)


class KFoldPolynomial(Section):
    degrees: _grid(Annotated[int, Field(ge=0)]) = list(range(11))
    lr: PositiveFloat = 0.01
    batch_size: PositiveInt = 10
    epochs: PositiveInt = 400
    log_every: PositiveInt = 100
    init_std: PositiveFloat | None = None


class KFoldWeightDecay(Section):
    lambdas: _grid(NonNegFloat) = [0.0, 0.01, 0.1, 1.0, 3.0, 10.0]
    lr: PositiveFloat = 0.003
    batch_size: PositiveInt = 5
    epochs: PositiveInt = 100
    log_every: PositiveInt = 25
    init_std: PositiveFloat = 1.0


class KFoldStudy(Section):
    """K-fold cross-validation for model selection vs a held-out test set."""

    k: Annotated[int, Field(ge=2)] = 5
    shuffle_seed: int = 0
    polynomial: KFoldPolynomial = KFoldPolynomial()
    weight_decay: KFoldWeightDecay = KFoldWeightDecay()


class ReportConfig(Section):
    baseline: Annotated[str, Field(min_length=1)] = "HEAD"  # git revision to compare with

    @field_validator("baseline")
    @classmethod
    def _a_revision(cls, value: str) -> str:
        """Passed to git as a revision only: never an option, never two words."""
        if value.startswith("-") or value.split() != [value]:
            raise ValueError(f"{value!r} is not a git revision (a commit, branch or tag)")
        return value


class Config(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: Annotated[int, Field(ge=1, le=256)] = 2  # CPU processes; changes no number
    cell_cache: str | None = ".cell_cache"  # finished cells by content key; None: off
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # None: start a local Ray (loopback, `workers` CPUs)
    ray_gpus_per_task: Annotated[float, Field(ge=0, le=1)] = 0.0  # GPU fraction per task
    seeds: Annotated[list[int], Field(min_length=1)] = [0, 1, 2]
    data: DataConfig = DataConfig()
    spiral: SpiralStudy = SpiralStudy()
    polynomial: PolynomialStudy = PolynomialStudy()
    regularization: RegularizationStudy = RegularizationStudy()
    optimizers: OptimizersStudy = OptimizersStudy()
    width_depth: WidthDepthStudy = WidthDepthStudy()
    kfold: KFoldStudy = KFoldStudy()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _cross_checks(self):
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: {self.seeds} repeats a seed")
        n_features = self.data.polynomial.n_features
        for key, degrees in (("polynomial.degrees", self.polynomial.degrees),
                             ("kfold.polynomial.degrees", self.kfold.polynomial.degrees)):
            for d in degrees:
                if d >= n_features:
                    raise ValueError(
                        f"{key}: degree {d} needs {d + 1} features but "
                        f"data.polynomial.n_features is {n_features}"
                    )
        for name in ("polynomial", "highdim"):
            n = getattr(self.data, name).n_train
            if self.kfold.k > n:
                raise ValueError(
                    f"kfold.k: {self.kfold.k} folds exceed the {n} training rows of "
                    f"data.{name}")
        for key, sizes in (("train_sizes", self.polynomial.train_sizes),
                           ("min_norm_train_sizes", self.polynomial.min_norm_train_sizes)):
            for n in sizes:
                if n > self.data.polynomial.n_train:
                    raise ValueError(
                        f"polynomial.{key}: {n} exceeds data.polynomial.n_train "
                        f"({self.data.polynomial.n_train})"
                    )
        return self


# ---------------------------------------------------------------- loading


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key (value {err['input']!r})"
    if err["type"] == "value_error" or not loc:
        return f"{loc}: {msg}" if loc else msg
    return f"{loc}: {msg} (got {err['input']!r})"


def parse_config(raw: object, source: str = "params") -> Config:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_describe(errors[0])}{more}") from None


def load_config(path: str | Path = "params.yaml") -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: YAML syntax error: {problem}") from None
    return parse_config(raw, str(path))


def resolve_device(name: str):
    """auto -> cuda when available, else cpu; an explicit cuda must exist."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)
