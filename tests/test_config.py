"""params.yaml validation: every kind of bad input is one clear line and exit 2."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipeline import studies
from pipeline.config import ConfigError, load_config, parse_config, resolve_device
from tests.conftest import ROOT, TINY, run_cli


def test_default_params_file_is_valid_and_matches_defaults():
    config = load_config(ROOT / "params.yaml")
    # params.yaml spells out every knob; the schema's defaults are the same published settings
    assert config == parse_config({})


def _with(params: dict, dotted: str, value) -> dict:
    node = params
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return params


BAD = [
    ("spiral.width", -5, "spiral.width", "-5"),
    ("spiral.activations", [], "spiral.activations", "[]"),
    ("spiral.course.lr", "fast", "spiral.course.lr", "'fast'"),
    ("spiral.course.lr", 0.0, "spiral.course.lr", "0.0"),
    ("spiral.activations", ["relu", "swish"], "spiral.activations.1", "'swish'"),
    ("spiral.epocs", 10, "spiral.epocs", "unknown key"),
    ("regularization.dropout.p1", [0.5, 1.0], "regularization.dropout.p1.1", "1.0"),
    ("regularization.dropout.p2", [-0.1], "regularization.dropout.p2.0", "-0.1"),
    ("data.spiral.classes", 1, "data.spiral.classes", "1"),
    ("data.images.source", "cifar", "data.images.source", "'cifar'"),
    ("device", "tpu", "device", "'tpu'"),
    ("polynomial.degrees", [3, 25], "polynomial.degrees", "degree 25"),
    ("seeds", [1, 1], "seeds", "[1, 1]"),
    ("optimizers.lrs", [0.1, 0.1], "optimizers.lrs", "repeats"),
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


def test_a_stage_validates_its_own_study_and_the_shared_keys(tiny_params):
    """The spiral stage does not load the polynomial study, but still rejects unknown
    sections and bad shared keys."""
    bad = _with(copy.deepcopy(tiny_params), "polynomial.lr", -1)
    parse_config(bad, studies=("spiral",))
    with pytest.raises(ConfigError, match="polynomial.lr"):
        parse_config(bad, studies=("polynomial",))
    with pytest.raises(ConfigError, match="seeds"):
        parse_config(_with(copy.deepcopy(tiny_params), "seeds", []), studies=("spiral",))
    with pytest.raises(ConfigError, match="nonsense: unknown key"):
        parse_config(tiny_params | {"nonsense": {}}, studies=())


def test_yaml_syntax_error_and_missing_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("spiral:\n  width: [1, 2\n")
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


def test_unknown_study_or_dataset_is_one_line(tmp_path):
    for args, expect in ((["study", "spirals"], "no study named 'spirals'"),
                         (["data", "spirals", "--out", str(tmp_path / "x.npz")],
                          "no dataset named 'spirals'")):
        proc = run_cli("--params", str(TINY), *args)
        assert proc.returncode == 2 and expect in proc.stderr, proc.stderr
        assert proc.stderr.strip().count("\n") == 0


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


# ---------------------------------------------------------------- the corpus

CORPUS = sorted((ROOT / "tests" / "bad_params").glob("*.yaml"))


def _merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and \
            isinstance(out.get(key), dict) else value
    return out


def _bad_params(path: Path, tmp_path: Path) -> tuple[Path, str]:
    """The corpus file as a whole params file, and the message it must produce."""
    lines = path.read_text().splitlines()
    expect = lines[0].removeprefix("# expect: ")
    if lines[1].startswith("# raw"):
        return path, expect
    params = _merge(yaml.safe_load(TINY.read_text()), yaml.safe_load(path.read_text()))
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(params))
    return out, expect


def _stages(expect: str) -> list[list[str]]:
    """The check, which every other stage depends on, and the stages that read the bad key:
    its study's, or its dataset's; shared keys and whole-file problems fail every stage (a
    data stage needs no device)."""
    head = expect.split(".")[0].split(":")[0]
    if head in studies.names():
        return [["check"], ["study", head]]
    if head == "data":
        return [["check"], ["data", expect.split(".")[1]]]
    if head == "device":
        return [["check"], ["study", "spiral"]]
    return [["check"], ["data", "spiral"], ["study", "spiral"], ["aggregate"]]


def test_corpus_is_large():
    assert len(CORPUS) >= 30


def test_corpus_covers_every_section():
    """Each shared key, each dataset and each study section of params.yaml has a bad file
    in the corpus whose message names it."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    sections = {k for k in params if k != "data"} | {f"data.{k}" for k in params["data"]}
    assert set(studies.names()) <= sections
    named = [path.read_text().splitlines()[0].removeprefix("# expect: ") for path in CORPUS]
    missing = {s for s in sections
               if not any(n == s or n.startswith((f"{s}.", f"{s}:")) for n in named)}
    assert not missing, f"no bad params file names {sorted(missing)}"


@pytest.mark.parametrize("path", CORPUS + [ROOT / "tests" / "bad_params" / "missing.yaml"],
                         ids=lambda p: p.stem)
def test_bad_params_corpus(path, tmp_path, capsys):
    """Each bad file: exit 2, one line naming the key, no traceback, nothing written."""
    import torch

    from pipeline.__main__ import main
    from pipeline.datasets import build

    if path.exists():
        params, expect = _bad_params(path, tmp_path)
    else:
        params, expect = path, "params file not found"
    if "cuda" in expect and torch.cuda.is_available():
        pytest.skip("a CUDA device is present here")
    data = tmp_path / "data"
    good = load_config(TINY)
    for name in type(good.data).model_fields:
        build(name, good, data / f"{name}.npz")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for stage in _stages(expect) if path.exists() else [["data", "spiral"]]:
        extra = {"check": ["--out", str(tmp_path / "params.ok")],
                 "data": ["--out", str(tmp_path / "new.npz")],
                 "study": ["--data", str(data), "--results", str(tmp_path / "results"),
                           "--reports", str(tmp_path / "reports"),
                           "--runs", str(tmp_path / "runs")],
                 "aggregate": ["--results", str(tmp_path / "results"),
                               "--reports", str(tmp_path / "reports")]}[stage[0]]
        code = main(["--params", str(params), *stage, *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2, (stage, err)
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
        assert expect in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
