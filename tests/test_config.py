"""params.yaml validation: every kind of bad input is one clear line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import Config, ConfigError, load_config, parse_config, resolve_device
from tests.conftest import ROOT, run_cli


def test_default_params_file_is_valid_and_matches_defaults():
    config = load_config(ROOT / "params.yaml")
    # params.yaml spells out every knob; the schema's defaults are the same published settings
    assert config == Config()


def _with(params: dict, dotted: str, value) -> dict:
    node = params
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return params


BAD = [
    ("spiral.widths", [-5], "spiral.widths.0", "-5"),
    ("spiral.widths", [], "spiral.widths", "[]"),
    ("spiral.lr", "fast", "spiral.lr", "'fast'"),
    ("spiral.lr", 0.0, "spiral.lr", "0.0"),
    ("spiral.activations", ["relu", "swish"], "spiral.activations.1", "'swish'"),
    ("spiral.epocs", 10, "spiral.epocs", "unknown key"),
    ("regularization.dropout.p1", [0.5, 1.0], "regularization.dropout.p1.1", "1.0"),
    ("regularization.dropout.p2", [-0.1], "regularization.dropout.p2.0", "-0.1"),
    ("data.spiral.classes", 1, "data.spiral.classes", "1"),
    ("data.images.source", "cifar", "data.images.source", "'cifar'"),
    ("device", "tpu", "device", "'tpu'"),
    ("polynomial.degrees", [3, 25], "polynomial.degrees", "degree 25"),
    ("seeds", [1, 1], "seeds", "[1, 1]"),
    ("report.baseline", "--output=/tmp/x", "report.baseline", "not a git revision"),
]


@pytest.mark.parametrize("key,value,names,shows", BAD)
def test_bad_value_names_key_and_value(tiny_params, key, value, names, shows):
    with pytest.raises(ConfigError) as err:
        parse_config(_with(tiny_params, key, value))
    message = str(err.value)
    assert names in message and shows in message
    assert "\n" not in message


def test_misspelt_section_is_rejected(tiny_params):
    tiny_params["spirals"] = tiny_params.pop("spiral")
    with pytest.raises(ConfigError, match=r"spirals: unknown key"):
        parse_config(tiny_params)


def test_yaml_syntax_error_and_missing_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("spiral:\n  widths: [1, 2\n")
    with pytest.raises(ConfigError, match=r"YAML syntax error"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"params file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"expected a mapping"):
        load_config(tmp_path / "list.yaml")


def test_cuda_without_gpu_is_a_config_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match=r"device: 'cuda'"):
        resolve_device("cuda")


def test_cli_bad_params_exit_2_one_line_no_output(tmp_path, tiny_params):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_with(tiny_params, "data.spiral.noise", -1)))
    out = tmp_path / "spiral.npz"
    proc = run_cli("--params", str(params), "data", "spiral", "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "data.spiral.noise" in proc.stderr and "-1" in proc.stderr
    assert not out.exists() and list(Path(tmp_path).iterdir()) == [params]


def test_kfold_k_larger_than_dataset_is_rejected(tiny_params):
    with pytest.raises(ConfigError, match=r"kfold.k: 500 folds exceed"):
        parse_config(_with(tiny_params, "kfold.k", 500))
    with pytest.raises(ConfigError, match=r"kfold.k"):
        parse_config(_with(tiny_params, "kfold.k", 1))


def test_stale_dataset_is_refused(tmp_path, tiny_params):
    from pipeline.datasets import build, load

    config = parse_config(tiny_params)
    build("spiral", config, tmp_path / "spiral.npz")
    assert load("spiral", tmp_path, config.data.spiral)["x_train"].shape == (300, 2)
    other = parse_config(_with(tiny_params, "data.spiral.noise", 0.5))
    with pytest.raises(ConfigError, match=r"dvc repro data@spiral"):
        load("spiral", tmp_path, other.data.spiral)


CORPUS = sorted((ROOT / "tests" / "bad_params").glob("*.yaml"))


def test_corpus_is_large():
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("path", CORPUS + [ROOT / "tests" / "bad_params" / "missing.yaml"],
                         ids=lambda p: p.stem)
def test_bad_params_corpus(path, tmp_path, capsys):
    """Each bad file: exit 2, one line naming the key, no traceback, nothing written."""
    import torch

    from pipeline.__main__ import main

    expect = path.read_text().splitlines()[0].removeprefix("# expect: ") if path.exists() \
        else "params file not found"
    if "cuda" in expect and torch.cuda.is_available():
        pytest.skip("a CUDA device is present here")
    from pipeline.datasets import build

    data = tmp_path / "data"
    for name in ("spiral", "images", "wilson"):
        build(name, load_config(ROOT / "tests" / "params_tiny.yaml"), data / f"{name}.npz")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = tmp_path / "results"
    for args in (["data", "spiral", "--out", str(tmp_path / "new.npz")],
                 ["study", "spiral", "--data", str(data), "--out", str(out),
                  "--metrics", str(tmp_path / "m.json")]):
        if "cuda" in expect and args[0] == "data":
            continue  # the data stages run no model, so they need no device
        code = main(["--params", str(path), *args])
        err = capsys.readouterr().err.strip()
        assert code == 2, err
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
        assert expect in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
