"""RDNet everywhere a family goes on the command line (issue #24): presets, compare (with a tiny
measured run), sweeps of the growth rate, the width ratio and stage depths (one-depth fields past
the eighth stage), and the probe's per-kind breakdown by the family's profile rules. Figures are
checked against the layer table and the module built on the meta device."""

from __future__ import annotations

import csv
import json

from helpers.cli import run

from densegui.core.arch import registry as arch
from densegui.core.arch.published import published_error
from densegui.core.probe.profiling import module_kinds

RDNETS = [name for name, p in arch.presets().items() if p.family == arch.family_of(arch.get_preset("rdnet-tiny")).name]


def meta_params(cfg) -> int:
    return sum(p.numel() for p in arch.build_model(cfg, "meta").parameters())


def expand(depths: str) -> tuple[int, ...]:
    """"3×11" or "3,3,3" → the depths."""
    out: list[int] = []
    for part in depths.split(","):
        d, _, n = part.partition("×")
        out += [int(d)] * int(n or 1)
    return tuple(out)


def test_presets_lists_every_rdnet_with_its_depths_and_published_top1(capsys):
    assert len(RDNETS) == 4
    code, out, err = run(["presets"], capsys)
    assert code == 0 and err == ""
    for name in RDNETS:
        cfg = arch.get_preset(name)
        cols = next(line for line in out.splitlines() if line.startswith(name + " ")).split()
        assert cols[1] == "rdnet" and len(cols[3]) <= 13  # (the column is 14 wide)
        assert expand(cols[3]) == cfg.stage_depths
        assert f"{arch.layer_table(cfg).params:,}" in cols
    code, out, _ = run(["presets", "--json"], capsys)
    data = json.loads(out)
    for name in RDNETS:
        (top1,) = [r for r in data[name]["published"] if r["metric"] == "top-1 accuracy"]
        assert top1["dataset"] == "ImageNet" and 80 < top1["value"] < 90
        assert published_error(name, "ImageNet").value == round(100 - top1["value"], 6)


def test_compare_three_families(capsys):
    names = ["densenet121", "resnet50", "rdnet-tiny"]
    code, out, err = run(["compare", *names, "--json"], capsys)
    assert code == 0 and err == ""
    rows = json.loads(out)["rows"]
    assert [r["name"] for r in rows] == names
    assert [r["family"] for r in rows] == [arch.family_of(arch.get_preset(n)).name for n in names]
    for r in rows:
        table = arch.layer_table(arch.get_preset(r["name"]))
        assert (r["params"], r["macs"], r["memory"]["naive_bytes"]) == (table.params, table.macs, table.naive_bytes)
    assert rows[2]["params"] == meta_params(arch.get_preset("rdnet-tiny"))
    assert rows[2]["memory"]["efficient_bytes"] is None  # no memory-efficient mode
    code, out, _ = run(["compare", *names], capsys)
    line = next(line for line in out.splitlines() if line.startswith("rdnet-tiny "))
    accuracy = next(p["value"] for p in rows[2]["published"] if p["metric"] == "top-1 accuracy")
    assert f"top-1 accuracy {accuracy:g}% (error {100 - accuracy:.4g}%)" in line
    assert "—" in line.split()  # the efficient column


def test_compare_measures_a_tiny_rdnet(capsys, tmp_path):
    cfg = arch.get_preset("rdnet-tiny").replace(stage_depths=(1, 1, 1), growth_rates=(8, 8, 16), downsample=(0, 1, 1),
                                                init_features=16, num_classes=10, input_size=32).validate()
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg.to_dict()))
    code, out, err = run(["compare", str(path), "--measure", "--device", "cpu", "--rounds", "1", "--repeats", "2",
                          "--batch-size", "2", "--json"], capsys)
    assert code == 0, err
    (row,) = json.loads(out)["rows"]
    assert row["family"] == "rdnet" and row["params"] == meta_params(cfg)
    m = row["measured"]
    assert m["device"] == "cpu" and m["batch_size"] == 2 and m["latency_ms"] > 0 and m["throughput"] > 0


def sweep_json(capsys, *argv) -> dict:
    code, out, err = run(["sweep", *argv, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_growth_and_width_ratio_sweeps_are_exact(capsys):
    base = arch.get_preset("rdnet-tiny")
    rows = sweep_json(capsys, "--preset", "rdnet-tiny", "--vary", "growth=48,64,80")["rows"]
    assert [r["value"] for r in rows] == [48, 64, 80]
    for r in rows:
        cfg = arch.config_from_dict(r["config"])
        assert cfg.growth_rates[0] == r["value"]
        scale = r["value"] / base.growth_rates[0]  # the other stages keep their ratio to the first
        assert cfg.growth_rates == tuple(round(g * scale) for g in base.growth_rates)
        assert r["params"] == arch.layer_table(cfg).params == meta_params(cfg)
    assert rows[1]["params"] == arch.layer_table(base).params  # 64: the preset itself
    rows = sweep_json(capsys, "--preset", "rdnet-tiny", "--vary", "width_ratio=2,3,4")["rows"]
    params = [r["params"] for r in rows]
    assert params == sorted(params) and params[-1] == arch.layer_table(base).params
    for r in rows:
        cfg = arch.config_from_dict(r["config"])
        assert cfg.width_ratio == r["value"] and r["macs"] == arch.layer_table(cfg).macs
    assert meta_params(arch.config_from_dict(rows[0]["config"])) == params[0]


def test_stage_depth_sweeps_past_the_eighth_stage(capsys, tmp_path):
    rows = sweep_json(capsys, "--preset", "rdnet-tiny", "--vary", "stage3=1:4:1")["rows"]
    assert [arch.config_from_dict(r["config"]).stage_depths[2] for r in rows] == [1, 2, 3, 4]
    assert [r["params"] for r in rows] == sorted(r["params"] for r in rows)
    rows = sweep_json(capsys, "--preset", "rdnet-small", "--vary", "stage11=1,6")["rows"]  # (fields stopped at 8)
    for r in rows:
        cfg = arch.config_from_dict(r["config"])
        assert cfg.stage_depths == (3,) * 10 + (r["value"],) and r["params"] == arch.layer_table(cfg).params
    rows = sweep_json(capsys, "--preset", "rdnet-tiny", "--vary", "stages=2")["rows"]
    assert arch.config_from_dict(rows[0]["config"]).stage_depths == (2,) * 7
    rows = sweep_json(capsys, "--preset", "rdnet-tiny", "--vary", "stage9=1")["rows"]  # a stage it lacks
    assert rows[0]["config"] is None and rows[0]["error"] == "the configuration has 7 stages, not 9."
    code, out, err = run(["sweep", "--preset", "rdnet-tiny", "--vary", "growth=48,64", "--csv", str(tmp_path)], capsys)
    assert code == 0, err
    with open(tmp_path / "sweep.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert [int(r["value"]) for r in table] == [48, 64] and table[1]["efficient_bytes"] == ""
    code, out, err = run(["sweep", "--preset", "rdnet-tiny", "--vary", "bn_size=1,2"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "bn_size is a densenet field" in err
    code, out, _ = run(["sweep", "--help"], capsys)
    assert code == 0 and "stage1…stage16" in " ".join(out.split())  # (not 16 names a family)


def test_profile_rules_give_every_module_its_kind():
    cfg = arch.get_preset("rdnet-tiny")
    family = arch.family_of(cfg)
    model = arch.build_model(cfg, "meta")
    kinds = module_kinds(model, family)

    def kind(path: str) -> str:  # a module runs in the range of its nearest labelled ancestor
        while path not in kinds:
            if not path:
                return "other"
            path = path.rpartition(".")[0]
        return kinds[path]

    import torch.nn as nn

    seen: dict[str, str] = {}
    for path, m in model.named_modules():
        k, name = kind(path), type(m).__name__
        if isinstance(m, nn.Conv2d):
            if m.groups == m.in_channels > 1:
                assert k == "depthwise convs", path
            elif path.startswith("stem"):
                assert k == "stem"
            elif ".dense_block" in path:
                assert k == ("ESE" if path.endswith(".fc") else "pointwise convs"), path
            else:
                assert k == "transitions", path
        elif name == "DenseStage":  # its closing torch.cat of the stage
            assert k == "concatenation", path
        elif name == "DenseBlock":  # its torch.cat of the inputs, and γ
            assert k == "concatenation", path
        elif isinstance(m, (nn.LayerNorm, nn.GELU)) and ".dense_block" in path:
            assert k == "LayerNorm/GELU", path
        seen[path] = k
    assert set(seen.values()) - {"other"} == set(family.kinds)
    assert {p for p, k in seen.items() if k == "other"} <= {"", "dense_stages", *(f"dense_stages.{s}" for s in range(7))}
    # The MACs by kind (from the plan): the 1×1 convs carry most, as in the paper's design.
    macs: dict[str, int] = {}
    for unit in arch.plan(cfg).units:
        for t in unit.tensors:
            module = t.key.rpartition(".")[0]
            macs[kind(module)] = macs.get(kind(module), 0) + t.macs
    total = sum(macs.values())
    assert total == arch.layer_table(cfg).macs
    assert macs["pointwise convs"] / total > 0.8 and macs["depthwise convs"] > 0 and macs["ESE"] > 0


def test_a_tiny_probe_breaks_time_down_by_every_kind(capsys):
    code, out, err = run(["probe", "--preset", "rdnet-tiny", "--stages", "1,1,1", "--growth-rates", "8,8,16",
                          "--downsample", "0,1,1", "--init-features", "16", "--num-classes", "10", "--input-size", "32",
                          "--device", "cpu", "--repeats", "3", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    shares = {k: v["fraction"] for k, v in data["breakdown"].items()}
    family = arch.family_of(arch.get_preset("rdnet-tiny"))
    assert set(family.kinds) <= set(shares) and all(shares[k] > 0 for k in family.kinds)
    assert shares.get("other", 0.0) < 0.05 and abs(sum(shares.values()) - 1) < 1e-6
