"""The DenseNet module: torchvision key structure (both key styles), architecture,
initialisation, meta builds and memory-efficient equivalence.

The expected torchvision state_dict is generated here from first principles
(torchvision's naming scheme and shape formulas in REFERENCE.md), not from the
model under test.
"""

from __future__ import annotations

import inspect
import re
from collections import OrderedDict

import pytest
import torch
from helpers.configs import FORWARD_SPACE, random_valid_configs
from helpers.libraries import torchvision_models
from torch import nn

from densegui.core.arch.densenet.config import DenseNetConfig

from densegui.core.arch.registry import get_preset
from densegui.core.arch.densenet.model import DenseLayer, DenseNet, build_model
from densegui.core.weights.statedict import rename_legacy_keys

TV = {  # torchvision's constructors: (growth_rate, block_config, num_init_features)
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _bn(prefix: str, c: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,)), (f"{prefix}.running_mean", (c,)),
            (f"{prefix}.running_var", (c,)), (f"{prefix}.num_batches_tracked", ())]


def torchvision_keys(k: int, blocks: tuple[int, ...], init: int, bn_size: int = 4,
                     num_classes: int = 1000) -> list[tuple[str, tuple[int, ...]]]:
    """torchvision DenseNet state_dict keys and shapes, in registration order."""
    keys = [("features.conv0.weight", (init, 3, 7, 7)), *_bn("features.norm0", init)]
    c = init
    for b, depth in enumerate(blocks, 1):
        for i in range(1, depth + 1):
            p = f"features.denseblock{b}.denselayer{i}"
            cin = c + (i - 1) * k
            keys += _bn(f"{p}.norm1", cin) + [(f"{p}.conv1.weight", (bn_size * k, cin, 1, 1))]
            keys += _bn(f"{p}.norm2", bn_size * k) + [(f"{p}.conv2.weight", (k, bn_size * k, 3, 3))]
        c += depth * k
        if b < len(blocks):
            keys += _bn(f"features.transition{b}.norm", c) + [(f"features.transition{b}.conv.weight", (c // 2, c, 1, 1))]
            c //= 2
    keys += _bn("features.norm5", c) + [("classifier.weight", (num_classes, c)), ("classifier.bias", (num_classes,))]
    return keys


def random_state(keys) -> OrderedDict:
    g = torch.Generator().manual_seed(0)
    out = OrderedDict()
    for name, shape in keys:
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(int(torch.randint(0, 1000, (), generator=g)))
        else:
            out[name] = torch.randn(shape, generator=g)
    return out


def to_legacy(state: OrderedDict, with_counters: bool) -> OrderedDict:
    """The key style of torchvision's released .pth files: denselayerM.norm.1.weight ...

    Those files predate BatchNorm's num_batches_tracked, so by default it is left out too.
    """
    out = OrderedDict()
    for key, value in state.items():
        parts = key.split(".")
        if not with_counters and parts[-1] == "num_batches_tracked":
            continue
        if len(parts) >= 5 and parts[2].startswith("denselayer") and parts[3][-1] in "12" and parts[3][:-1] in ("norm", "conv"):
            if parts[-1] != "num_batches_tracked":
                parts[3:4] = [parts[3][:-1], parts[3][-1]]
        out[".".join(parts)] = value
    return out


def test_expected_key_generator_matches_reference_facts():
    keys = dict(torchvision_keys(*TV["densenet121"]))
    assert keys["features.conv0.weight"] == (64, 3, 7, 7)
    assert keys["features.denseblock1.denselayer3.conv1.weight"] == (128, 64 + 32 * 2, 1, 1)
    assert keys["features.denseblock1.denselayer6.conv2.weight"] == (32, 128, 3, 3)
    assert keys["features.transition1.conv.weight"] == (128, 256, 1, 1)
    assert keys["classifier.weight"] == (1000, 1024)
    n = sum(torch.Size(s).numel() for name, s in keys.items() if not name.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert n == 7_978_856  # torchvision's published densenet121 num_params


@pytest.mark.parametrize("name", list(TV))
def test_state_dict_keys_and_shapes_are_torchvisions(name):
    expected = torchvision_keys(*TV[name])
    model = build_model(get_preset(name), "meta")
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == expected


@pytest.mark.parametrize("name", ["densenet121", "densenet161"])
def test_torchvision_state_dict_loads_strict_both_key_styles(name):
    cfg = get_preset(name)
    state = random_state(torchvision_keys(*TV[name]))
    # densenet161 (28.7M parameters) loads by assignment into a meta model: just as strict, much faster
    device, assign = ("cpu", False) if name == "densenet121" else ("meta", True)
    model = build_model(cfg, device)
    result = model.load_state_dict(state, strict=True, assign=assign)
    assert not result.missing_keys and not result.unexpected_keys
    loaded = model.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key

    for with_counters in (False, True):
        legacy = to_legacy(state, with_counters)
        assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
        assert "features.denseblock4.denselayer16.conv.2.weight" in legacy or name != "densenet121"
        fresh = build_model(cfg, device)
        fresh.load_state_dict(legacy, strict=True, assign=assign)
        loaded = fresh.state_dict()
        for key, value in state.items():
            if key.endswith("num_batches_tracked") and not with_counters:
                assert int(loaded[key]) == 0  # BatchNorm fills in missing counters of old files
            else:
                assert torch.equal(loaded[key], value), key


def test_strict_load_still_rejects_wrong_state_dicts():
    model = build_model(get_preset("densenet121"))
    other = random_state(torchvision_keys(*TV["densenet169"]))
    with pytest.raises(RuntimeError):
        model.load_state_dict(other, strict=True)
    state = random_state(torchvision_keys(*TV["densenet121"]))
    del state["features.denseblock2.denselayer3.conv2.weight"]
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict(state, strict=True)


def test_rename_legacy_keys_unit():
    v = torch.zeros(1)
    state = OrderedDict([
        ("features.conv0.weight", v),
        ("features.denseblock1.denselayer1.norm.1.weight", v),
        ("features.denseblock1.denselayer1.norm.1.running_var", v),
        ("features.denseblock1.denselayer1.conv.1.weight", v),
        ("features.denseblock1.denselayer12.relu.2.weight", v),
        ("features.denseblock1.denselayer1.conv.2.weight", v),
        ("features.transition1.norm.weight", v),
        ("features.norm5.bias", v),
        ("classifier.weight", v),
    ])
    state._metadata = {"": {"version": 1}}  # type: ignore[attr-defined]
    out = rename_legacy_keys(state)
    assert list(out) == [
        "features.conv0.weight",
        "features.denseblock1.denselayer1.norm1.weight",
        "features.denseblock1.denselayer1.norm1.running_var",
        "features.denseblock1.denselayer1.conv1.weight",
        "features.denseblock1.denselayer12.relu2.weight",
        "features.denseblock1.denselayer1.conv2.weight",
        "features.transition1.norm.weight",
        "features.norm5.bias",
        "classifier.weight",
    ]
    assert out._metadata == {"": {"version": 1}}  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- architecture
def test_cifar_basic_structure():
    cfg = get_preset("densenet-40-k12")
    model = build_model(cfg, "meta")
    top = [n for n, _ in model.features.named_children()]
    assert top == ["conv0", "denseblock1", "transition1", "denseblock2", "transition2", "denseblock3", "norm5"]
    assert model.features.conv0.kernel_size == (3, 3) and model.features.conv0.stride == (1, 1)
    layer = model.features.denseblock2.denselayer12
    assert not hasattr(layer, "conv2") and not hasattr(layer, "norm2")
    assert layer.conv1.kernel_size == (3, 3) and layer.conv1.in_channels == 160 + 11 * 12
    assert model.features.transition2.conv.out_channels == 304  # θ = 1
    assert model.classifier.in_features == 448 and model.classifier.out_features == 10
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_random_configs_forward_shapes_and_channels():
    for cfg in random_valid_configs(11, 25, FORWARD_SPACE):
        model = build_model(cfg).eval()
        x = torch.randn(2, cfg.in_channels, cfg.input_size, cfg.input_size)
        with torch.no_grad():
            feats = model.features(x)
            out = model(x)
        assert out.shape == (2, cfg.num_classes)
        assert feats.shape == (2, cfg.final_channels, cfg.spatial_sizes()[-1], cfg.spatial_sizes()[-1])
        assert model.config == cfg


def test_initialisation_is_torchvisions():
    torch.manual_seed(0)
    model = build_model(get_preset("densenet121"))
    conv = model.features.denseblock3.denselayer20.conv1.weight  # [128, 864, 1, 1]
    fan_in = conv.shape[1]
    assert abs(conv.std().item() / (2.0 / fan_in) ** 0.5 - 1) < 0.02  # He-normal, fan_in
    assert abs(conv.mean().item()) < 0.01 * (2.0 / fan_in) ** 0.5 * 10
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert torch.all(model.classifier.bias == 0)


def test_meta_build_allocates_nothing_and_matches_cpu():
    cfg = get_preset("densenet264")
    meta = build_model(cfg, "meta")
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert all(b.device.type == "meta" for b in meta.buffers())
    small = get_preset("densenet-bc-100-k12")
    a, b = build_model(small, "meta").state_dict(), build_model(small, "cpu").state_dict()
    assert [(k, v.shape) for k, v in a.items()] == [(k, v.shape) for k, v in b.items()]


# ----------------------------------------------------------------------------- timm's deep stem
DEEP = [DenseNetConfig(growth_rate=4, block_depths=(2, 3), bn_size=2, stem="deep", num_classes=5, input_size=19),
        DenseNetConfig(growth_rate=3, block_depths=(1, 2, 2), bottleneck=False, compression=0.6, init_features=7,
                       stem="deep", in_channels=2, num_classes=3, input_size=32, drop_rate=0.3),
        DenseNetConfig(growth_rate=5, block_depths=(2,), init_features=3, stem="deep", in_channels=1, num_classes=2,
                       input_size=4)]


def deep_stem_keys(k: int, init: int, in_ch: int) -> list[tuple[str, tuple[int, ...]]]:
    """timm's stem_type="deep" stem: 3×3/2 conv to k, 3×3 to k, 3×3 to init, each with a BatchNorm."""
    widths = (in_ch, k, k, init)
    return [item for i in range(3) for item in
            [(f"features.conv{i}.weight", (widths[i + 1], widths[i], 3, 3)), *_bn(f"features.norm{i}", widths[i + 1])]]


def test_deep_stem_keys_and_shapes_are_timms_and_the_plans():
    from densegui.core.arch.registry import expected_shapes

    cfg = get_preset("densenet121").replace(stem="deep")
    got = [(k, tuple(v.shape)) for k, v in build_model(cfg, "meta").state_dict().items()]
    assert got == deep_stem_keys(32, 64, 3) + torchvision_keys(32, (6, 12, 24, 16), 64)[6:]
    assert list(expected_shapes(cfg).items()) == got
    top = [n for n, _ in build_model(DEEP[0], "meta").features.named_children()][:10]
    assert top == ["conv0", "norm0", "relu0", "conv1", "norm1", "relu1", "conv2", "norm2", "relu2", "pool0"]


def test_deep_stem_downsamples_by_four_like_the_imagenet_stem():
    for size in (1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 224):
        deep, imagenet = (DenseNetConfig(stem=s, input_size=size) for s in ("deep", "imagenet"))
        assert deep.spatial_sizes() == imagenet.spatial_sizes()
        assert deep.min_input_size() == imagenet.min_input_size() == 29
    for cfg in DEEP:
        model = build_model(cfg).eval()
        with torch.no_grad():
            feats = model.features[:10](torch.randn(2, cfg.in_channels, cfg.input_size, cfg.input_size))
        assert feats.shape == (2, cfg.num_init_features, cfg.spatial_sizes()[0], cfg.spatial_sizes()[0])
    with pytest.raises(Exception, match=r"input_size 28 is too small for the deep stem and 3 transitions; "
                                        r"input_size must be at least 29\."):
        DenseNetConfig(stem="deep", input_size=28).validate()


def test_deep_stem_params_macs_and_saved_bytes_are_exact():
    """The table's stem row against the module, FlopCounterMode and autograd's saved tensors."""
    from helpers.reference import saved_bytes
    from torch.utils.flop_counter import FlopCounterMode

    from densegui.core.arch.densenet.table import layer_table

    for i, cfg in enumerate(DEEP):
        table, model = layer_table(cfg), build_model(cfg).eval()
        stem = table.rows[0]
        stem_modules = [m for n, m in model.features.named_children() if re.fullmatch(r"(conv|norm)[0-2]", n)]
        assert table.params == sum(p.numel() for p in model.parameters())
        assert stem.params == sum(p.numel() for m in stem_modules for p in m.parameters())
        assert stem.weighted_layers == 3 and table.depth == layer_table(cfg.replace(stem="imagenet")).depth + 2
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model(torch.randn(1, cfg.in_channels, cfg.input_size, cfg.input_size))
        counts = {k: sum(v.values()) for k, v in fc.get_flop_counts().items()}
        assert fc.get_total_flops() == 2 * table.macs
        assert sum(counts[f"DenseNet.features.conv{j}"] for j in range(3)) == 2 * stem.macs
        for eff in (False, True):
            batch = 2 + i
            got = saved_bytes(cfg.replace(memory_efficient=eff), batch)
            assert table.activation_bytes(batch, efficient=eff) == got, (cfg, eff)


# ----------------------------------------------------------------------------- memory-efficient mode
def _step(model: DenseNet, x: torch.Tensor, seed: int):
    torch.manual_seed(seed)
    xx = x.clone().requires_grad_(True)
    out = model(xx)
    (out * torch.linspace(-1, 1, out.numel(), device=out.device).view_as(out)).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return out.detach(), grads, xx.grad.clone()


@pytest.mark.parametrize("bottleneck,drop,stem", [(True, 0.0, "imagenet"), (False, 0.0, "cifar"),
                                                  (True, 0.2, "cifar"), (False, 0.3, "imagenet")])
def test_memory_efficient_same_outputs_and_gradients(bottleneck, drop, stem):
    cfg = DenseNetConfig(growth_rate=6, block_depths=(3, 4, 2), compression=0.5, bottleneck=bottleneck, bn_size=2,
                         stem=stem, in_channels=3, num_classes=7, drop_rate=drop, input_size=24 if stem == "cifar" else 32)
    torch.manual_seed(1)
    naive = build_model(cfg).train()
    efficient = build_model(cfg.replace(memory_efficient=True)).train()
    efficient.load_state_dict(naive.state_dict())
    assert all(isinstance(m, DenseLayer) and m.memory_efficient for m in efficient.modules() if isinstance(m, DenseLayer))
    x = torch.randn(3, 3, cfg.input_size, cfg.input_size)
    out_a, grads_a, gx_a = _step(naive, x, seed=5)
    out_b, grads_b, gx_b = _step(efficient, x, seed=5)
    torch.testing.assert_close(out_b, out_a, atol=1e-5, rtol=1e-4)
    assert set(grads_a) == set(grads_b)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], atol=1e-5, rtol=1e-4, msg=name)
    torch.testing.assert_close(gx_b, gx_a, atol=1e-5, rtol=1e-4)
    assert any(g.abs().sum() > 0 for g in grads_a.values())


def test_memory_efficient_known_side_effect_bn1_running_stats_update_twice():
    """Documented (REFERENCE.md, docs/core.md): recomputing BN1 in backward updates its
    running statistics a second time; outputs and gradients are unaffected."""
    cfg = DenseNetConfig(growth_rate=4, block_depths=(2,), bn_size=2, stem="cifar", num_classes=3, input_size=8)
    torch.manual_seed(0)
    naive = build_model(cfg).train()
    eff = build_model(cfg.replace(memory_efficient=True)).train()
    eff.load_state_dict(naive.state_dict())
    x = torch.randn(2, 3, 8, 8)
    _step(naive, x, 0)
    _step(eff, x, 0)
    n1 = naive.features.denseblock1.denselayer1.norm1
    e1 = eff.features.denseblock1.denselayer1.norm1
    assert int(n1.num_batches_tracked) == 1 and int(e1.num_batches_tracked) == 2
    assert not torch.allclose(n1.running_mean, e1.running_mean)
    # BN2 is outside the recomputed region: identical
    torch.testing.assert_close(eff.features.denseblock1.denselayer1.norm2.running_mean,
                               naive.features.denseblock1.denselayer1.norm2.running_mean)


def test_set_memory_efficient_and_eval_path():
    cfg = DenseNetConfig(growth_rate=4, block_depths=(2, 2), bn_size=2, stem="cifar", num_classes=3, input_size=8)
    model = build_model(cfg).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
    model.set_memory_efficient(True)
    assert model.config.memory_efficient
    assert all(m.memory_efficient for m in model.modules() if isinstance(m, DenseLayer))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref)
    torch.testing.assert_close(model(x), ref)  # grad enabled, eval mode: checkpoint path
    model.set_memory_efficient(False)
    assert not model.config.memory_efficient


# ----------------------------------------------------------------------------- real torchvision (where installed)
# README's test command installs it (helpers/libraries.py says how); the first-principles tests
# above cover the same ground without it.
tv_models = torchvision_models()
tv_densenet = tv_models.densenet if tv_models is not None else None

needs_torchvision = pytest.mark.skipif(tv_models is None, reason="torchvision not installed here")


@needs_torchvision
# k = 32 and k = 48 (169 and 201 differ from 121 only in block depths, whose layouts the generated
# torchvision state dicts above load for every preset)
@pytest.mark.parametrize("name", ["densenet121", "densenet161"])
def test_real_torchvision_state_dict_loads_and_gives_same_outputs(name):
    torch.manual_seed(0)
    ref = getattr(tv_models, name)(weights=None).eval()
    state = ref.state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == torchvision_keys(*TV[name])
    ours = build_model(get_preset(name)).eval()
    ours.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-4)
    # the legacy key style, renamed by our function and by torchvision's own regular expression
    source = inspect.getsource(tv_densenet._load_state_dict)
    pattern = re.compile(re.search(r're\.compile\(\s*r"(.+?)"', source, re.S).group(1))
    legacy = to_legacy(state, with_counters=False)
    renamed_tv = OrderedDict()
    for key, value in legacy.items():
        m = pattern.match(key)
        renamed_tv[m.group(1) + m.group(2) if m else key] = value
    assert list(rename_legacy_keys(legacy)) == list(renamed_tv)
    ref.load_state_dict(renamed_tv, strict=True)  # torchvision accepts what it renamed
    fresh = build_model(get_preset(name)).eval()
    fresh.load_state_dict(legacy, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), ref(x), atol=1e-5, rtol=1e-4)


@needs_torchvision
def test_real_torchvision_memory_efficient_training_step_matches():
    torch.manual_seed(0)
    ref = tv_models.densenet121(weights=None, memory_efficient=True).train()
    ours = build_model(get_preset("densenet121").replace(memory_efficient=True)).train()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    out_r, grads_r, gx_r = _step(ref, x, 1)
    out_o, grads_o, gx_o = _step(ours, x, 1)
    torch.testing.assert_close(out_o, out_r, atol=1e-5, rtol=1e-4)
    for key in grads_r:
        torch.testing.assert_close(grads_o[key], grads_r[key], atol=1e-5, rtol=1e-4, msg=key)
    torch.testing.assert_close(gx_o, gx_r, atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA path: the CPU path is tested above")
@pytest.mark.parametrize("bottleneck", [True, False])
def test_memory_efficient_equivalence_on_cuda(bottleneck):
    cfg = DenseNetConfig(growth_rate=8, block_depths=(3, 4), bottleneck=bottleneck, bn_size=2, stem="cifar",
                         num_classes=5, input_size=16)
    torch.manual_seed(2)
    naive = build_model(cfg, "cuda").train()
    eff = build_model(cfg.replace(memory_efficient=True), "cuda").train()
    eff.load_state_dict(naive.state_dict())
    x = torch.randn(4, 3, 16, 16, device="cuda")
    out_a, grads_a, gx_a = _step(naive, x, 3)
    out_b, grads_b, gx_b = _step(eff, x, 3)
    torch.testing.assert_close(out_b, out_a, atol=1e-4, rtol=1e-3)
    for key in grads_a:
        torch.testing.assert_close(grads_b[key], grads_a[key], atol=1e-4, rtol=1e-3, msg=key)
