"""``densegui presets`` and ``densegui summary``: output, every override flag, the
``--json`` round trip and every bad-input path (one line on stderr, exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.cli import run

from densegui.cli import main
from densegui.core.arch import registry as arch
from densegui.core.arch.densenet.config import PRESETS, DenseNetConfig
from densegui.core.arch.densenet.table import layer_table
from densegui.core.arch.published import PUBLISHED
from densegui.core.arch.registry import get_preset
from densegui.core.arch.resnet.config import ResNetConfig

SMALL = ["--preset", "densenet-bc-100-k12", "--blocks", "2,2,2"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py



def run_json(argv, capsys) -> dict:
    code, out, err = run(["summary", *argv, "--json"], capsys)
    assert code == 0 and err == "", err
    return json.loads(out)


def assert_one_line_error(code, out, err, *needles):
    assert code == 2, (code, err)
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and "error" in err
    for needle in needles:
        assert needle in err, (needle, err)


# ----------------------------------------------------------------------------- presets
def test_presets_table(capsys):
    code, out, err = run(["presets"], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    for name, preset in PRESETS.items():
        line = next(line for line in lines if line.startswith(name + " "))
        assert f"{layer_table(preset.config).params:,}" in line
        assert ",".join(map(str, preset.config.block_depths)) in line
    assert "7,978,856" in out and "MACs" in out


def test_presets_table_lists_both_families(capsys):
    code, out, err = run(["presets"], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["preset", "family"]
    for name, preset in arch.PRESETS.items():
        line = next(line for line in lines if line.startswith(name + " "))
        assert line.split()[1] == preset.family
        assert f"{arch.layer_table(preset.config).params:,}" in line
    for published in ("11,689,512", "21,797,672", "25,557,032", "44,549,160", "60,192,808"):  # torchvision's
        assert published in out
    resnet50 = next(line for line in lines if line.startswith("resnet50 "))
    assert resnet50.split()[2] == "50" and "3,4,6,3" in resnet50 and "4.09" in resnet50


def test_presets_json_gives_configs_and_published_results(capsys):
    code, out, _ = run(["presets", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert list(data) == list(arch.PRESETS) and list(data)[:len(PRESETS)] == list(PRESETS)
    for name, entry in data.items():
        assert arch.config_from_dict(entry["config"]) == arch.get_preset(name)
        assert entry["family"] == arch.PRESETS[name].family == arch.config_from_dict(entry["config"]).family
        assert entry["params"] == arch.layer_table(arch.get_preset(name)).params
        assert entry["published"] == [p.to_dict() for p in PUBLISHED[name]] and entry["published"]
    assert DenseNetConfig.from_dict(data["densenet121"]["config"]) == get_preset("densenet121")
    assert {"dataset": "ImageNet", "metric": "top-1 accuracy", "value": 76.13,
            "source": "torchvision model card (IMAGENET1K_V1)"} in data["resnet50"]["published"]
    assert data["resnet50"]["published_params"] == 25_557_032 and data["resnet50"]["published_params_exact"]


# ----------------------------------------------------------------------------- summary
def test_summary_plain_output_has_torchinfo_table_and_footer(capsys):
    code, out, err = run(["summary", *SMALL], capsys)
    assert code == 0 and err == ""
    cfg = get_preset("densenet-bc-100-k12").replace(block_depths=(2, 2, 2))
    table = layer_table(cfg)
    assert "Layer (type (var_name))" in out and "denselayer2" in out and "Total params" in out
    assert f"Parameters:            {table.params:,}" in out
    assert f"MACs:                  {table.macs:,}" in out and "BatchNorm scale/shift" in out
    assert f"Final channels:        {cfg.final_channels}" in out
    assert "Activation memory:" in out and "naive" in out and "memory-efficient" in out


def test_summary_json_contents(capsys):
    data = run_json(SMALL + ["--batch-size", "3"], capsys)
    cfg = get_preset("densenet-bc-100-k12").replace(block_depths=(2, 2, 2))
    table = layer_table(cfg)
    assert data["config"] == cfg.to_dict()
    assert isinstance(data["params"], int) and data["params"] == table.params
    assert isinstance(data["macs"], int) and data["macs"] == table.macs
    assert len(data["layers"]) == len(table.rows)
    for entry, row in zip(data["layers"], table.rows):
        for key in ("name", "kind", "block", "in_channels", "out_channels", "params", "macs"):
            assert entry[key] == getattr(row, key)
    assert sum(e["params"] for e in data["layers"]) == data["params"]
    assert data["memory"]["naive_bytes"] == table.activation_bytes(3, efficient=False)
    assert data["memory"]["efficient_bytes"] == table.activation_bytes(3, efficient=True)
    assert data["memory"]["efficient_bytes"] < data["memory"]["naive_bytes"]


def test_json_config_round_trip(capsys, tmp_path):
    first = run_json(["--preset", "densenet-40-k12", "--growth-rate", "6", "--compression", "0.5",
                      "--drop-rate", "0.2", "--memory-efficient"], capsys)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(first["config"]), encoding="utf-8")
    second = run_json(["--config", str(path)], capsys)
    assert second == first
    # overrides apply on top of a config file too
    third = run_json(["--config", str(path), "--num-classes", "3"], capsys)
    assert third["config"]["num_classes"] == 3 and third["params"] != first["params"]
    # the whole --json output works as a config file too (its "config" object is used) ...
    whole = tmp_path / "summary.json"
    whole.write_text(json.dumps(first), encoding="utf-8")
    assert run_json(["--config", str(whole)], capsys) == first
    # ... but only when there is no configuration at the top level (no silent mix of the two)
    whole.write_text(json.dumps({**first, "growth_rate": 7}), encoding="utf-8")
    assert main(["summary", "--config", str(whole)]) == 2
    assert "unknown configuration field" in capsys.readouterr().err


def test_default_is_densenet121(capsys):
    data = run_json([], capsys)
    assert data["params"] == 7_978_856 and data["config"] == get_preset("densenet121").to_dict()


@pytest.mark.parametrize("flags,field,value", [
    (["--growth-rate", "8"], "growth_rate", 8),
    (["-k", "9"], "growth_rate", 9),
    (["--blocks", "3,4,5"], "block_depths", [3, 4, 5]),
    (["--blocks", "7"], "block_depths", [7]),
    (["--compression", "0.25"], "compression", 0.25),
    (["--compression", "1"], "compression", 1.0),
    (["--no-bottleneck"], "bottleneck", False),
    (["--bottleneck"], "bottleneck", True),
    (["--bn-size", "2"], "bn_size", 2),
    (["--init-features", "40"], "init_features", 40),
    (["--stem", "imagenet"], "stem", "imagenet"),
    (["--in-channels", "1"], "in_channels", 1),
    (["--num-classes", "100"], "num_classes", 100),
    (["--drop-rate", "0.2"], "drop_rate", 0.2),
    (["--input-size", "64"], "input_size", 64),
    (["--memory-efficient"], "memory_efficient", True),
])
def test_every_override_flag(capsys, flags, field, value):
    base = "densenet-40-k12" if field == "bottleneck" and value else "densenet-bc-100-k12"
    data = run_json(["--preset", base, *flags], capsys)
    assert data["config"][field] == value
    expected = get_preset(base).replace(**{field: tuple(value) if isinstance(value, list) else value})
    assert data["config"] == expected.to_dict()
    assert data["params"] == layer_table(expected).params


def test_no_bottleneck_changes_counts(capsys):
    a = run_json(["--preset", "densenet-bc-100-k12"], capsys)
    b = run_json(["--preset", "densenet-bc-100-k12", "--no-bottleneck"], capsys)
    assert a["params"] != b["params"] and not any("conv2" in e["name"] for e in b["layers"])


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv,needles", [
    (["summary", "--preset", "nope"], ["unknown preset 'nope'", "densenet121", "densenet-bc-190-k40"]),
    (["summary", "--blocks", "6,,12"], ["--blocks", "6,,12"]),
    (["summary", "--blocks", "a,b"], ["--blocks"]),
    (["summary", "--blocks", ""], ["--blocks"]),
    (["summary", "--blocks", "6;12"], ["--blocks"]),
    (["summary", "--blocks", "6,-1"], ["block_depths (block 2)"]),
    (["summary", "--blocks", "1,1,1,1,1,1,1,1,1"], ["block_depths", "1 to 8"]),
    (["summary", "--growth-rate", "0"], ["growth_rate", "1 to 256"]),
    (["summary", "--growth-rate", "257"], ["growth_rate"]),
    (["summary", "--growth-rate", "1.5"], ["--growth-rate", "1.5"]),
    (["summary", "--growth-rate", "x"], ["--growth-rate"]),
    (["summary", "--compression", "0"], ["compression", "(0, 1]"]),
    (["summary", "--compression", "1.5"], ["compression"]),
    (["summary", "--compression", "nan"], ["compression"]),
    (["summary", "--compression", "half"], ["--compression"]),
    (["summary", "--bn-size", "0"], ["bn_size"]),
    (["summary", "--bn-size", "17"], ["bn_size"]),
    (["summary", "--init-features", "0"], ["init_features"]),
    (["summary", "--init-features", "4096"], ["init_features"]),
    (["summary", "--stem", "resnet"], ["--stem", "resnet"]),
    (["summary", "--in-channels", "0"], ["in_channels"]),
    (["summary", "--in-channels", "65"], ["in_channels"]),
    (["summary", "--num-classes", "0"], ["num_classes"]),
    (["summary", "--num-classes", "100001"], ["num_classes"]),
    (["summary", "--drop-rate", "1"], ["drop_rate", "[0, 1)"]),
    (["summary", "--drop-rate", "-0.1"], ["drop_rate"]),
    (["summary", "--input-size", "0"], ["input_size"]),
    (["summary", "--input-size", "4096"], ["input_size"]),
    (["summary", "--input-size", "16"], ["input_size", "too small", "at least 29"]),
    (["summary", "--preset", "densenet-40-k12", "--input-size", "3"], ["input_size", "at least 4"]),
    (["summary", "--growth-rate", "1", "--init-features", "1", "--blocks", "1,1", "--compression", "0.1"],
     ["compression", "0 channels after transition 1"]),
    (["summary", "--depth", "11"], ["--depth"]),
    (["summary", "--batch-size", "0"], ["--batch-size"]),
    (["summary", "--preset", "densenet121", "--config", "x.json"], ["not allowed with"]),
    (["summary", "--bogus"], ["unrecognized arguments"]),
    (["nosuchcommand"], ["invalid choice"]),
])
def test_bad_flags(capsys, argv, needles):
    assert_one_line_error(*run(argv, capsys), *needles)


@pytest.mark.parametrize("content,needles", [
    (None, ["does not exist"]),
    ("DIR", ["is a directory"]),
    (b"\xff\xfe\x00garbage", ["cannot read"]),
    ("", ["not valid JSON"]),
    ("{\"growth_rate\": 12,", ["not valid JSON"]),
    ("[6, 12, 24, 16]", ["JSON object"]),
    ('{"growth_rat": 12}', ["unknown configuration field 'growth_rat'"]),
    ('{"growth_rate": "12"}', ["growth_rate", "integer"]),
    ('{"growth_rate": 12.0}', ["growth_rate", "integer"]),
    ('{"block_depths": "6,12"}', ["block_depths"]),
    ('{"block_depths": [6, "12"]}', ["block_depths (block 2)"]),
    ('{"compression": "0.5"}', ["compression"]),
    ('{"bottleneck": "yes"}', ["bottleneck"]),
    ('{"stem": 3}', ["stem"]),
    ('{"init_features": [64]}', ["init_features"]),
    ('{"drop_rate": null}', ["drop_rate"]),
    ('{"memory_efficient": 1}', ["memory_efficient"]),
    ('{"input_size": 8}', ["input_size", "too small"]),
    ('{"compression": 1' + "0" * 400 + "}", ["compression"]),
    ('{"growth_rate": 1' + "0" * 5000 + "}", ["not usable JSON"]),
    ("[" * 100_000 + "]" * 100_000, ["not usable JSON"]),
])
def test_bad_config_files(capsys, tmp_path, content, needles):
    path = tmp_path / "cfg.json"
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    code, out, err = run(["summary", "--config", str(path), "--json"], capsys)
    assert_one_line_error(code, out, err, *needles)
    assert len(err) < 400


def test_unreadable_config_file(capsys, tmp_path, monkeypatch):
    """A file the user may not read (chmod 000 does not stop root, so the OSError is injected)."""
    path = tmp_path / "cfg.json"
    path.write_text("{}", encoding="utf-8")
    real = type(path).read_text

    def denied(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(path), "read_text", denied)
    assert_one_line_error(*run(["summary", "--config", str(path)], capsys), "cannot read", "PermissionError")


def test_subprocess_unknown_preset_exit_2_one_line_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "densegui", "summary", "--preset", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "unknown preset 'nope'" in proc.stderr and "densenet121" in proc.stderr


# ----------------------------------------------------------------------------- ResNets
def test_resnet_summary_json_has_the_densenet_fields(capsys):
    dense = run_json(["--preset", "densenet121"], capsys)
    data = run_json(["--preset", "resnet50", "--batch-size", "2"], capsys)
    assert set(data) == set(dense) and set(data["memory"]) == set(dense["memory"])
    assert set(data["layers"][0]) == set(dense["layers"][0])
    table = arch.layer_table(arch.get_preset("resnet50"))
    assert data["family"] == "resnet" and dense["family"] == "densenet"
    assert data["params"] == 25_557_032 and data["macs"] == table.macs and data["depth"] == 50
    assert data["memory"]["naive_bytes"] == table.activation_bytes(2)
    assert data["memory"]["efficient_bytes"] is None  # no memory-efficient mode: the one null field
    assert data["final_channels"] == 2048 and [e["name"] for e in data["layers"]][:2] == ["conv1", "layer1.0"]
    assert ResNetConfig.from_dict(data["config"]) == arch.get_preset("resnet50")


def test_resnet_summary_plain_output(capsys):
    code, out, err = run(["summary", "--preset", "resnet20", "--depth", "2"], capsys)
    assert code == 0 and err == ""
    assert "BasicBlock" in out and "layer3" in out and "Parameters:            269,722" in out
    assert "no memory-efficient mode" in out


def test_resnet_json_config_round_trip(capsys, tmp_path):
    first = run_json(["--preset", "resnet20", "--widths", "8,16,32", "--shortcut", "B", "--num-classes", "100"], capsys)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(first["config"]), encoding="utf-8")
    assert run_json(["--config", str(path)], capsys) == first
    path.write_text(json.dumps(first), encoding="utf-8")  # the whole output works too
    assert run_json(["--config", str(path), "--num-classes", "100"], capsys) == first
    bare = {k: v for k, v in first["config"].items() if k != "family"}  # written by hand, no "family"
    path.write_text(json.dumps(bare), encoding="utf-8")
    assert run_json(["--config", str(path)], capsys) == first


@pytest.mark.parametrize("flags,field,value", [
    (["--stages", "1,2,3"], "stage_depths", [1, 2, 3]),
    (["--widths", "16,48,64"], "widths", [16, 48, 64]),
    (["--block", "bottleneck"], "block", "bottleneck"),
    (["--shortcut", "B"], "shortcut", "B"),
    (["--stem-width", "8"], "stem_width", 8),
    (["--stem", "imagenet"], "stem", "imagenet"),
    (["--in-channels", "1"], "in_channels", 1),
    (["--num-classes", "100"], "num_classes", 100),
    (["--input-size", "64"], "input_size", 64),
    (["--no-memory-efficient"], "memory_efficient", False),
])
def test_every_resnet_override_flag(capsys, flags, field, value):
    data = run_json(["--preset", "resnet20", *flags], capsys)
    assert data["config"][field] == value
    expected = arch.get_preset("resnet20").replace(**{field: tuple(value) if isinstance(value, list) else value})
    assert data["config"] == expected.to_dict()
    assert data["params"] == arch.layer_table(expected).params


@pytest.mark.parametrize("argv,needles", [
    (["--preset", "resnet50", "--growth-rate", "12"], ["--growth-rate is a DenseNet flag", "is a ResNet"]),
    (["--preset", "resnet50", "--blocks", "2,2"], ["--blocks is a DenseNet flag", "use --stages"]),
    (["--preset", "resnet50", "--no-bottleneck"], ["--bottleneck is a DenseNet flag"]),
    (["--preset", "resnet50", "--drop-rate", "0.1"], ["--drop-rate is a DenseNet flag"]),
    (["--preset", "densenet121", "--stages", "2,2"], ["--stages is a ResNet", "is a DenseNet", "use --blocks"]),
    (["--widths", "8,8,8,8"], ["--widths is a ResNet flag"]),
    (["--preset", "densenet121", "--block", "basic"], ["--block is a ResNet flag"]),
    (["--preset", "densenet121", "--shortcut", "A"], ["--shortcut is a ResNet flag"]),
    (["--preset", "resnet20", "--memory-efficient"], ["memory_efficient must be false for a ResNet"]),
    (["--preset", "resnet20", "--widths", "16,8,64"], ["shortcut A cannot reduce channels", "stage 2"]),
    (["--preset", "resnet50", "--widths", "64,128"], ["widths", "one width per stage (4 stages)"]),
    (["--preset", "resnet50", "--stages", "3,0,6,3"], ["stage_depths (stage 2)"]),
    (["--preset", "resnet50", "--stages", "3;4"], ["--stages", "3,4,6,3"]),
    (["--preset", "resnet50", "--block", "wide"], ["--block", "wide"]),
    (["--preset", "resnet50", "--shortcut", "C"], ["--shortcut"]),
    (["--preset", "resnet50", "--stem-width", "0"], ["stem_width"]),
])
def test_bad_resnet_flags(capsys, argv, needles):
    assert_one_line_error(*run(["summary", *argv, "--json"], capsys), *needles)


@pytest.mark.parametrize("content,needles", [
    ('{"family": "lenet"}', ["unknown family 'lenet'", "densenet, resnet"]),
    ('{"family": "resnet", "growth_rate": 12}', ["unknown ResNet configuration field 'growth_rate'"]),
    ('{"family": "densenet", "stage_depths": [1]}', ["unknown configuration field 'stage_depths'"]),
    ('{"growth_rate": 12, "widths": [8]}', ["mixes fields of different families", '"family"']),
    ('{"family": "resnet", "widths": "64"}', ["widths must be a list"]),
    ('{"family": "resnet", "block": 4}', ["block must be one of basic, bottleneck"]),
])
def test_bad_resnet_config_files(capsys, tmp_path, content, needles):
    path = tmp_path / "cfg.json"
    path.write_text(content, encoding="utf-8")
    assert_one_line_error(*run(["summary", "--config", str(path), "--json"], capsys), "cfg.json", *needles)


def test_a_command_may_refuse_a_family(capsys):
    import argparse

    from densegui.cli.common import add_model_args, config_from_args
    from densegui.core.arch.family import EXPLORE, TRAIN
    from densegui.core.errors import ConfigError

    parser = argparse.ArgumentParser()
    add_model_args(parser)
    args = parser.parse_args(["--preset", "resnet20"])
    with pytest.raises(ConfigError, match="takes a DenseNet, but resnet20 is a ResNet"):
        config_from_args(args, need=TRAIN)
    assert config_from_args(args, need=EXPLORE) == arch.get_preset("resnet20")



def test_a_family_registered_at_runtime_gets_its_flags(capsys, toy_family):
    """The model flags come from the families' fields: ToyNet (tests/helpers/toyfamily) gets a group
    of its own, takes the flags it shares by name, and is refused the others with a hint."""
    code, out, _ = run(["summary", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "ToyNet: fields of a ToyNet configuration --depths D1,D2,.. conv units per stage" in text
    assert "a DenseNet, ResNet, RDNet or ToyNet preset" in text and "DenseNets, ResNets and RDNets: imagenet" in text
    code, out, err = run(["summary", "--preset", "toynet-m", "--widths", "4,4,8", "--depths", "1,1,1", "--json"],
                         capsys)
    data = json.loads(out)
    assert code == 0 and err == "" and data["family"] == "toynet"
    assert data["config"]["widths"] == [4, 4, 8] and data["config"]["depths"] == [1, 1, 1]
    assert data["params"] == arch.layer_table(toy_family.config(depths=(1, 1, 1), widths=(4, 4, 8))).params
    assert data["final_channels"] == 8 and data["memory"]["efficient_bytes"] is None
    for argv, needles in [
        (["--stages", "1,1"], ["--stages is a ResNet or RDNet flag, but this configuration is a ToyNet; use --depths."]),
        (["--init-features", "8"], ["--init-features is a DenseNet or RDNet flag", "; use --stem-width."]),
        (["--memory-efficient"], ["--memory-efficient is a DenseNet flag, but this configuration is a ToyNet."]),
        (["--stem", "cifar"], ["--stem is a DenseNet, ResNet or RDNet flag"]),
    ]:
        assert_one_line_error(*run(["summary", "--preset", "toynet-s", *argv, "--json"], capsys), *needles)
    assert_one_line_error(*run(["summary", "--preset", "resnet20", "--depths", "1,1,1"], capsys),
                          "--depths is a ToyNet flag, but this configuration is a ResNet; use --stages.")
    code, out, _ = run(["presets"], capsys)
    assert code == 0 and [line.split()[:4] for line in out.splitlines() if line.startswith("toynet-s ")] == \
        [["toynet-s", "toynet", "5", "1,2"]]

# ------------------------------------------------------------------ first start (issue #15): help texts
def test_train_help_says_one_default_model(capsys):
    import re

    from densegui.core.train.types import default_config

    code, out, _ = run(["train", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "densenet121" not in text and "scikit-learn" not in text
    cfg = default_config()
    found = re.search(r"the shipped digits architecture \(basic layers, k=(\d+), θ=([\d.]+), blocks ([\d,]+), "
                      r"CIFAR stem with (\d+) features\)", text)
    assert found, text
    k, theta, blocks, init = found.groups()
    assert (int(k), float(theta), tuple(map(int, blocks.split(","))), int(init)) == \
        (cfg.growth_rate, cfg.compression, cfg.block_depths, cfg.num_init_features)
    assert not cfg.bottleneck and cfg.stem == "cifar"
    assert "--preset NAME a preset (see `densegui presets`; default: none, the digits architecture above)" in text


def test_top_level_help_shows_the_bare_command(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "densegui [--preset NAME | --config FILE.json] [--screenshot OUT.png]" in out
    code, out, err = run(["--bogus"], capsys)  # not a window option: still an error, not the window
    assert_one_line_error(code, out, err, "unrecognized arguments: --bogus")
