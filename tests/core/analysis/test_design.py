"""core/analysis/design.py: parsing --vary, sweep rows exact against independent counts, comparisons with
published results (the paper's Figure 3 relation), and the round-robin order of measurements."""

from __future__ import annotations

import math

import pytest

from densegui.core.arch import registry as arch

from densegui.core.analysis import design
from densegui.core.errors import ConfigError
from densegui.core.probe.types import ProbeSettings
from densegui.core.arch.published import published_error
from helpers.reference import count_macs, count_params

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("text, field, values", [
    ("k=12:48:12", "growth_rate", (12, 24, 36, 48)),
    ("growth_rate=12:47:12", "growth_rate", (12, 24, 36)),
    ("theta=0.1:0.5:0.2", "compression", (0.1, 0.3, 0.5)),
    ("block3=4,8,16", "block3", (4, 8, 16)),
    ("input_size=64", "input_size", (64,)),
])
def test_parse_vary(text, field, values):
    vary = design.parse_vary(text)
    assert vary.field == field and vary.values == pytest.approx(values)
    assert all(isinstance(v, int) for v in vary.values) == design.FIELDS[field].integer


@pytest.mark.parametrize("text, phrase", [
    ("k", "FIELD=START:STOP:STEP"), ("nope=1:2:1", "unknown field"), ("k=1:2", "START:STOP:STEP"),
    ("k=5:1:1", "START ≤ STOP"), ("k=1:10:0", "STEP > 0"), ("k=1.5:3:1", "whole number"),
    ("k=1:100000:1", "at most"), ("k=a,b", "not a number"), ("theta=nan:1:1", "finite"),
])
def test_parse_vary_refuses_in_one_line(text, phrase):
    with pytest.raises(ConfigError) as info:
        design.parse_vary(text)
    assert phrase in str(info.value) and "\n" not in str(info.value)


def test_densenet_sweep_rows_are_exact():
    base = arch.get_preset("densenet-bc-100-k12")
    rows = design.sweep_rows(base, design.parse_vary("k=6:24:6"))
    assert [r["value"] for r in rows] == [6, 12, 18, 24]
    for r in rows:
        cfg = arch.config_from_dict(r["config"])
        assert cfg == base.replace(growth_rate=r["value"]).validate()
        table = arch.layer_table(cfg)
        assert r["params"] == count_params(cfg) == table.params
        assert r["macs"] == count_macs(cfg)
        assert r["memory"]["naive_bytes"] == table.naive_bytes
        assert r["memory"]["efficient_bytes"] == table.efficient_bytes
    assert rows[1]["name"] == "densenet-bc-100-k12"  # k = 12 is the preset itself


def test_one_block_and_all_blocks():
    base = arch.get_preset("densenet121")
    one = design.sweep_rows(base, design.parse_vary("block3=8,24"))
    assert [arch.config_from_dict(r["config"]).block_depths for r in one] == [(6, 12, 8, 16), (6, 12, 24, 16)]
    every = design.sweep_rows(base, design.parse_vary("blocks=3"))
    assert arch.config_from_dict(every[0]["config"]).block_depths == (3, 3, 3, 3)


def test_invalid_values_keep_their_row_with_the_reason():
    rows = design.sweep_rows(arch.get_preset("densenet121"), design.parse_vary("theta=0,0.5"))
    assert rows[0]["config"] is None and "compression" in rows[0]["error"]
    assert rows[1]["params"] == 7_978_856


def test_fields_follow_the_family_and_the_block_count():
    with pytest.raises(ConfigError, match="resnet field"):
        design.sweep_rows(arch.get_preset("densenet121"), design.parse_vary("width=32"))
    with pytest.raises(ConfigError, match="densenet field"):
        design.sweep_rows(arch.get_preset("resnet50"), design.parse_vary("k=32"))
    names = {f.name for f in design.fields_for(arch.get_preset("densenet-40-k12"))}
    assert {"growth_rate", "block3", "input_size"} <= names and "block4" not in names and "width" not in names
    names = {f.name for f in design.fields_for(arch.get_preset("resnet50"))}
    assert {"width", "stage4", "stages"} <= names and "growth_rate" not in names


def test_resnet_width_and_depth_sweeps_are_exact():
    base = arch.get_preset("resnet18")
    rows = design.sweep_rows(base, design.parse_vary("width=32:64:32"))
    first = arch.config_from_dict(rows[0]["config"])
    assert first.widths == (32, 64, 128, 256) and first.stem_width == 32
    assert rows[1]["params"] == 11_689_512  # width 64 is torchvision's resnet18
    model = arch.build_model(first, "meta")
    assert rows[0]["params"] == sum(p.numel() for p in model.parameters())
    assert all(r["memory"]["efficient_bytes"] is None for r in rows)  # no memory-efficient mode, as in summary --json
    deep = design.sweep_rows(base, design.parse_vary("stage3=6"))
    assert arch.config_from_dict(deep[0]["config"]).stage_depths == (2, 2, 6, 2)


def test_compare_rows_carry_published_results():
    rows = design.compare_rows(["densenet201", "resnet101"])
    d, r = rows
    assert (d["family"], r["family"]) == ("densenet", "resnet")
    assert (d["params"], r["params"]) == (20_013_928, 44_549_160)
    assert d["published"] and r["published"]
    assert {"dataset", "metric", "value", "source"} <= set(d["published"][0])


def test_published_frontier_puts_densenets_left_of_resnets():
    """Figures 3 and 4 of the paper, from the published numbers: every ResNet is matched or beaten
    in ImageNet top-1 error by a DenseNet with fewer parameters; and where the DenseNets' errors
    span a ResNet's, the DenseNet curve reaches that error with fewer MACs (log-linear between
    neighbouring DenseNets)."""
    def point(name):
        err = published_error(name, "ImageNet")
        table = arch.layer_table(arch.get_preset(name))
        return err.value, table.params, table.macs

    dense = sorted(point(n) for n in arch.preset_names("densenet") if published_error(n, "ImageNet"))
    res = [point(n) for n in arch.preset_names("resnet") if published_error(n, "ImageNet")]
    assert len(dense) >= 4 and len(res) == 5
    for err, params, _macs in res:
        assert any(e <= err and p < params for e, p, _m in dense), (err, params)
    compared = 0
    for err, _params, macs in res:
        for (e0, _p0, m0), (e1, _p1, m1) in zip(dense, dense[1:]):
            if e0 <= err <= e1:
                t = (err - e0) / (e1 - e0)
                at_err = math.exp(math.log(m0) + t * (math.log(m1) - math.log(m0)))
                assert at_err < macs, (err, at_err, macs)
                compared += 1
                break
    assert compared == 3  # ResNet-50, -101, -152 lie within the DenseNets' error range


def test_measure_runs_round_robin_and_takes_medians(monkeypatch):
    import densegui.core.probe.run as probe_mod

    calls = []

    class Fake:
        def __init__(self, cfg, n):
            self.device, self.mode, self.batch_size, self.precision = "cpu", "inference", 1, "fp32"
            self.median_ms = {0: 10.0, 1: 30.0, 2: 20.0}[n] * (1 if cfg.growth_rate == 12 else 2)
            self.throughput = 1000 / self.median_ms
            self.peak_memory_bytes = 100 * (n + 1)

    def fake_run_probe(cfg, settings, cancel=None):
        calls.append(cfg.growth_rate)
        return Fake(cfg, sum(1 for c in calls if c == cfg.growth_rate) - 1)

    monkeypatch.setattr(probe_mod, "run_probe", fake_run_probe)
    a = arch.get_preset("densenet-bc-100-k12")
    b = a.replace(growth_rate=24)
    out = design.measure([a, b], ProbeSettings(), rounds=3)
    assert calls == [12, 24, 12, 24, 12, 24]  # A B A B A B, not A A A B B B
    assert [m["latency_ms"] for m in out] == [20.0, 40.0]  # medians of (10, 30, 20) and twice that
    assert out[0]["peak_memory_bytes"] == 200 and math.isclose(out[0]["throughput"], 50.0)
    with pytest.raises(ConfigError):
        design.measure([a], ProbeSettings(), rounds=0)


def test_current_value_is_the_configurations_own():
    d121, d40, r18 = (arch.get_preset(n) for n in ("densenet121", "densenet-40-k12", "resnet18"))
    assert design.current_value(d121, "growth_rate") == 32 and design.current_value(d121, "compression") == 0.5
    assert design.current_value(d121, "block3") == 24 and design.current_value(d121, "block5") is None
    assert design.current_value(d121, "blocks") is None and design.current_value(d40, "blocks") == 12
    assert design.current_value(r18, "width") == 64 and design.current_value(r18, "stages") == 2
    assert design.current_value(r18, "growth_rate") is None  # not a ResNet field


def test_a_third_family_gets_sweeps_from_its_fields(toy_family):
    """ToyNet (tests/helpers/toyfamily) arrives through the entry points; nothing in design.py names it."""
    cfg = toy_family.presets["toynet-m"].config
    fields = {f.name: f for f in design.fields_for(cfg)}
    assert list(fields) == ["depths", "stem_width", "in_channels", "input_size", "num_classes",
                            "stage1", "stage2", "stage3"]  # its own, the shared ones, one per stage it has
    assert fields["depths"].description == "every stage's depth" and fields["stage2"].description == "stage 2's depth"
    assert fields["stem_width"].description == "channels out of the stem" and fields["stem_width"].integer
    assert design.FIELDS["stage2"].families == ("resnet", "rdnet", "toynet") and "depths" in design.FIELDS
    rows = design.sweep_rows(cfg, design.parse_vary("stage2=1,3"))
    assert [arch.config_from_dict(r["config"]).depths for r in rows] == [(2, 1, 2), (2, 3, 2)]
    models = [arch.build_model(arch.config_from_dict(r["config"]), "meta") for r in rows]
    assert [r["params"] for r in rows] == [sum(p.numel() for p in m.parameters()) for m in models]
    assert all(r["family"] == "toynet" and r["memory"]["efficient_bytes"] is None for r in rows)
    every = design.sweep_rows(cfg, design.parse_vary("depths=3"))
    assert arch.config_from_dict(every[0]["config"]).depths == (3, 3, 3)
    assert design.sweep_rows(cfg, design.parse_vary("stage4=1"))[0]["error"] == "the configuration has 3 stages, not 4."
    assert design.current_value(cfg, "stem_width") == 8 and design.current_value(cfg, "stage3") == 2
    with pytest.raises(ConfigError, match="growth_rate is a densenet field; this configuration is a toynet"):
        design.sweep_rows(cfg, design.parse_vary("k=12"))
    with pytest.raises(ConfigError, match="stem_width is a toynet field; this configuration is a densenet"):
        design.sweep_rows(arch.get_preset("densenet121"), design.parse_vary("stem_width=8"))
