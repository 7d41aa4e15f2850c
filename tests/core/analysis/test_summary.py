"""torchinfo wrapper: text + rows, totals against the analytic table and the
model itself, explicit device, cache cleared (no model kept alive)."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
import torchinfo
import torchinfo.torchinfo as torchinfo_impl
from torch import nn

import densegui.core.analysis.summary as summary_mod
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.registry import get_preset
from densegui.core.errors import ConfigError
from densegui.core.arch.densenet.model import build_model
from densegui.core.arch.densenet.table import layer_table
from densegui.core.analysis.summary import summarize

SMALL = DenseNetConfig(growth_rate=4, block_depths=(2, 3), bn_size=2, compression=0.5, input_size=32, num_classes=10)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def torchinfo_extra(cfg: DenseNetConfig) -> int:
    """torchinfo also counts one mult-add per BatchNorm affine parameter and per linear bias."""
    model = build_model(cfg, "meta")
    bn = sum(m.weight.numel() + m.bias.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    return bn + model.classifier.bias.numel()


@pytest.mark.parametrize("name", ["densenet-40-k12", "densenet-bc-100-k12"])
def test_totals_match_analytic_table(name):
    cfg = get_preset(name)
    result = summarize(cfg, depth=3)
    table = layer_table(cfg)
    assert result.total_params == table.params
    # the analytic table counts conv + linear multiply-accumulates only (documented convention)
    assert result.total_macs == table.macs + torchinfo_extra(cfg)
    assert "Total params: " + f"{table.params:,}" in result.text
    assert "Units." not in result.text  # torchinfo 1.8's enum repr on Python 3.11, fixed up
    shown = float(result.text.split("Total mult-adds (M): ")[1].split()[0])
    assert shown == round(result.total_macs / 1e6, 2)
    assert result.config == cfg and result.depth == 3


def test_rows_are_named_like_the_model_and_respect_depth():
    model_names = {n for n, _ in build_model(SMALL, "meta").named_modules()}
    for depth in (1, 2, 3, 4):
        result = summarize(SMALL, depth=depth)
        assert result.rows[0].class_name == "DenseNet" and result.rows[0].name == ""
        assert {r.name for r in result.rows} <= model_names
        assert max(r.depth for r in result.rows) == depth  # the rows the text shows
        lines = result.text.splitlines()
        rules = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
        assert rules[2] - rules[1] - 1 == len(result.rows)  # the layer lines lie between the 2nd and 3rd rule
        assert result.total_params == layer_table(SMALL).params
    rows = {r.name: r for r in summarize(SMALL, depth=4).rows}
    assert rows["features.conv0"].output_size == (1, 8, 16, 16)
    assert rows["features.conv0"].params == 8 * 3 * 7 * 7
    assert rows["classifier"].output_size == (1, 10)
    # a dense layer's input is the concatenation of everything before it
    for row in layer_table(SMALL).dense_rows():
        s = rows[row.name]
        assert s.input_size == (1, row.in_channels, row.out_size, row.out_size), row.name
        assert s.output_size == (1, row.out_channels, row.out_size, row.out_size)
        assert s.params == row.params


def test_explicit_cpu_device_gives_the_same_rows_and_batch():
    meta = summarize(SMALL, depth=3, device="meta")
    cpu = summarize(SMALL, depth=3, device="cpu")
    assert [(r.name, r.output_size, r.params, r.macs) for r in meta.rows] == \
           [(r.name, r.output_size, r.params, r.macs) for r in cpu.rows]
    b4 = summarize(SMALL, depth=2, batch=4)
    assert b4.rows[0].input_size == (4, 3, 32, 32) and b4.rows[0].output_size == (4, 10)


def test_cache_cleared_and_model_released(monkeypatch):
    refs = []
    real_build = summary_mod.build_model

    def spy(cfg, device=None):
        model = real_build(cfg, device)
        refs.append(weakref.ref(model))
        return model

    monkeypatch.setattr(summary_mod, "build_model", spy)
    result = summarize(SMALL)
    assert result.rows and len(refs) == 1
    assert torchinfo_impl._cached_forward_pass == {}
    del result
    gc.collect()
    assert refs[0]() is None  # nothing (torchinfo's cache included) keeps the model alive


def test_cache_cleared_even_when_torchinfo_fails(monkeypatch):
    def boom(*args, **kwargs):
        torchinfo_impl._cached_forward_pass["x"] = []
        raise RuntimeError("boom")

    monkeypatch.setattr(torchinfo, "summary", boom)  # (summarize imports both when it runs)
    with pytest.raises(RuntimeError):
        summarize(SMALL)
    assert torchinfo_impl._cached_forward_pass == {}


def test_invalid_config_is_a_config_error():
    with pytest.raises(ConfigError, match="input_size"):
        summarize(SMALL.replace(input_size=2))


def test_explicit_device_is_respected(monkeypatch):
    """torchinfo moves a model to CUDA in place unless told the device; on a CUDA machine
    this checks that a CPU summary leaves the model on the CPU."""
    models = []
    real_build = summary_mod.build_model
    monkeypatch.setattr(summary_mod, "build_model",
                        lambda cfg, device=None: models.append(real_build(cfg, device)) or models[-1])
    summarize(SMALL, device="cpu")
    assert models and all(p.device.type == "cpu" for p in models[0].parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA path: the CPU and meta paths are tested above")
def test_cuda_summary_matches_meta():
    meta = summarize(SMALL, depth=3)
    cuda = summarize(SMALL, depth=3, device="cuda")
    assert [(r.name, r.output_size, r.params, r.macs) for r in meta.rows] == \
           [(r.name, r.output_size, r.params, r.macs) for r in cuda.rows]
    assert cuda.total_params == meta.total_params and cuda.total_macs == meta.total_macs


@pytest.mark.parametrize("variant", [
    dict(),
    dict(memory_efficient=True, drop_rate=0.2),
    dict(bottleneck=False, compression=1.0, stem="imagenet", input_size=64),
    dict(stem="imagenet", input_size=57),  # odd sides: every window's rounding
])
def test_meta_summary_with_shape_only_batchnorm_equals_the_cpu_summary(variant):
    """On meta, BatchNorm skips PyTorch's slow decomposition (densegui.core.analysis.summary); the whole
    table, every row and every total must still equal the summary of a real CPU forward pass."""
    cfg = SMALL.replace(**variant)
    meta = summarize(cfg, depth=4, device="meta")
    cpu = summarize(cfg, depth=4, device="cpu")
    assert meta.rows == cpu.rows
    assert (meta.total_params, meta.total_macs) == (cpu.total_params, cpu.total_macs)
    assert meta.text == cpu.text
    assert any(r.class_name == "BatchNorm2d" and r.output_size for r in meta.rows)


# ----------------------------------------------------------------------------- ResNets
def test_resnet_summary_totals_rows_and_meta_equals_cpu():
    from densegui.core.arch import registry as arch
    from densegui.core.arch.resnet.config import ResNetConfig

    cfg = ResNetConfig(stage_depths=(1, 2), widths=(4, 8), block="bottleneck", stem_width=8, input_size=32,
                       num_classes=10)
    meta = summarize(cfg, depth=3)
    table = arch.layer_table(cfg)
    model = arch.build_model(cfg, "meta")
    bn = sum(m.weight.numel() + m.bias.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert meta.total_params == table.params
    assert meta.total_macs == table.macs + bn + model.fc.bias.numel()  # torchinfo's convention (see above)
    assert meta.config == cfg and meta.rows[0].class_name == "ResNet"
    rows = {r.name: r for r in meta.rows}
    for row in table.rows:
        if row.kind == "residual":
            s = rows[row.name]
            assert s.input_size[1] == row.in_channels and s.output_size == (1, row.out_channels, row.out_size,
                                                                            row.out_size)
            assert s.params == row.params
    assert {r.name for r in meta.rows} <= {n for n, _ in model.named_modules()}
    cpu = summarize(cfg, depth=3, device="cpu")
    assert meta.rows == cpu.rows and meta.text == cpu.text
    assert summarize(arch.get_preset("resnet50"), depth=1).total_params == 25_557_032


@pytest.mark.parametrize("fields", [
    dict(stage_depths=(1, 1, 1), widths=(4, 8, 16), block="basic", stem="cifar", stem_width=4, shortcut="A",
         input_size=33),
    dict(stage_depths=(1, 1), widths=(4, 8), block="basic", stem="imagenet", stem_width=4, input_size=45),
])
def test_resnet_meta_summary_with_shape_only_ops_equals_the_cpu_summary(fields):
    """Option-A shortcuts, residual adds, strided convolutions and the max pool are shape-only on meta."""
    from densegui.core.arch.resnet.config import ResNetConfig

    cfg = ResNetConfig(num_classes=10, **fields)
    meta, cpu = summarize(cfg, depth=4), summarize(cfg, depth=4, device="cpu")
    assert meta.rows == cpu.rows and meta.text == cpu.text


def test_first_meta_summaries_import_neither_sympy_nor_dynamo(tmp_path):
    """A fresh process's first meta summaries (the window's first one is one) must not pull in SymPy
    (meta convolutions' shape checks) or torch._dynamo (decompositions): both take seconds to import."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from densegui.core.arch.registry import get_preset\n"
            "from densegui.core.analysis.summary import summarize\n"
            "for name in ('densenet121', 'densenet-bc-100-k12', 'resnet50', 'resnet20'):\n"
            "    summarize(get_preset(name), depth=3)\n"
            "print(sorted(m for m in ('sympy', 'torch._dynamo') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_family_of_plain_torch_modules_needs_no_shape_only_hook(toy_family):
    """ToyNet (tests/helpers/toyfamily): torch's own layers only, so no ``shape_only`` hook; its meta
    summary still equals the CPU one."""
    from densegui.core.arch import registry

    assert toy_family.shape_only is None
    cfg = toy_family.presets["toynet-m"].config
    meta, cpu = summarize(cfg, depth=4), summarize(cfg, depth=4, device="cpu")
    assert meta.rows == cpu.rows and meta.text == cpu.text
    assert meta.total_params == registry.plan(cfg).params and meta.rows[0].class_name == "ToyNet"
