"""The family contract, checked once over every registered family (DenseNet, ResNet, and ToyNet,
a third family that exists only in the tests and arrives through the entry points).

For each family, against the real ``nn.Module`` and independent measurements:

* the plan's state-dict keys and shapes equal the meta model's ``state_dict``, in order;
* parameters: the plan and the table against ``sum(p.numel())``, in total and per row;
* MACs: every conv/linear weight's MACs against ``FlopCounterMode`` on its module (= 2 × MACs), and
  the total;
* channels and sizes: forward hooks on every unit that is a module (inputs of dense layers are lists);
* activation bytes: the distinct storages autograd saves in a training step
  (``saved_tensors_hooks``), byte for byte, in memory-efficient mode too where the family has it.

Configurations: every preset (params, keys, MACs on the meta device) and, for the runtime checks,
small random ones (the built-in families' generators in tests/helpers) or the family's presets.
"""

from __future__ import annotations

import pytest
import torch
from helpers.configs import MEASURED_SPACE, random_valid_configs
from helpers.reference import saved_bytes
from helpers.rdnets import random_rdnet_configs
from helpers.resnets import random_resnet_configs
from torch.utils.flop_counter import FlopCounterMode

from densegui.core.arch import registry
from densegui.core.arch.family import MEMORY_EFFICIENT
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.resnet.config import ResNetConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# A stride-2 stage on a 1×1 map keeps size and channels but still gets torchvision's projection.
RESNET_EDGE = [ResNetConfig(stage_depths=(1, 1, 1), widths=(3, 3, 3), block=b, stem="imagenet", stem_width=3 * e,
                            input_size=7, shortcut=s, num_classes=4)
               for b, e in (("basic", 1), ("bottleneck", 4)) for s in "AB"]


DEEP_STEM = [DenseNetConfig(growth_rate=3, block_depths=(2, 3), stem="deep", input_size=20, bottleneck=b,
                            drop_rate=d, num_classes=4) for b, d in ((True, 0.0), (False, 0.2))]


def small_configs(family, seed: int, count: int) -> list:
    """Configurations small enough to run on the CPU: random ones where the tests have a generator."""
    if family.name == "densenet":
        return random_valid_configs(seed, count, MEASURED_SPACE) + DEEP_STEM
    if family.name == "resnet":
        return random_resnet_configs(seed, count) + RESNET_EDGE
    if family.name == "rdnet":
        return random_rdnet_configs(seed, count)
    return [p.config for p in family.presets.values()]


@pytest.fixture(params=["densenet", "resnet", "rdnet", "toynet"])
def family(request):
    if request.param == "toynet":
        return request.getfixturevalue("toy_family")
    return registry.get_family(request.param)


def test_the_toy_family_is_registered_through_an_entry_point(toy_family):
    assert registry.family_of(toy_family.config()) is toy_family
    assert set(toy_family.presets) <= set(registry.presets())


def _meta_model(cfg):
    return registry.build_model(cfg, "meta")


# ----------------------------------------------------------------------------- structure
def test_plan_keys_and_shapes_are_the_state_dict(family):
    for cfg in [p.config for p in family.presets.values()] + small_configs(family, 1, 10):
        plan = registry.plan(cfg)
        sd = _meta_model(cfg).state_dict()
        assert list(plan.state_shapes().items()) == [(k, tuple(v.shape)) for k, v in sd.items()], cfg
        assert registry.expected_shapes(cfg) == plan.state_shapes()
        # units chain: each unit reads the spatial size the one before it makes
        assert all(a.out_size == b.in_size for a, b in zip(plan.units, plan.units[1:])), cfg


def test_table_rows_are_the_plan_units(family):
    for cfg in [p.config for p in family.presets.values()] + small_configs(family, 2, 10):
        plan, table = registry.plan(cfg), registry.layer_table(cfg)
        assert [(r.name, r.kind, r.block, r.index, r.in_channels, r.out_channels, r.out_size, r.params, r.macs)
                for r in table.rows] == [(u.path, u.kind, u.block, u.index, u.in_channels, u.out_channels,
                                          u.out_size, u.params, u.macs) for u in plan.units], cfg


# ----------------------------------------------------------------------------- parameters
def test_params_against_the_module_in_total_and_per_row(family):
    for cfg in [p.config for p in family.presets.values()] + small_configs(family, 3, 25):
        model = _meta_model(cfg)
        params = dict(model.named_parameters())
        table = registry.layer_table(cfg)
        assert table.params == registry.plan(cfg).params == sum(p.numel() for p in params.values()), cfg
        seen = set()
        for unit in registry.plan(cfg).units:
            keys = [t.key for t in unit.tensors if not t.buffer]
            assert unit.params == sum(params[k].numel() for k in keys), (cfg, unit.path)
            seen.update(keys)
        assert seen == set(params)  # the rows partition the parameters


def test_exact_presets_have_their_published_params(family):
    for name, preset in family.presets.items():
        if preset.exact:
            assert registry.layer_table(preset.config).params == preset.params, name


# ----------------------------------------------------------------------------- MACs
def _flop_counts(model, cfg, device="cpu"):
    x = torch.randn(1, cfg.in_channels, cfg.input_size, cfg.input_size, device=device)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.eval()(x)
    return fc.get_total_flops(), {k: sum(v.values()) for k, v in fc.get_flop_counts().items()}


def test_macs_of_every_weight_against_the_flop_counter(family):
    for cfg in small_configs(family, 4, 10):
        model = registry.build_model(cfg)
        total, per_module = _flop_counts(model, cfg)
        plan = registry.plan(cfg)
        assert total == 2 * plan.macs == 2 * registry.layer_table(cfg).macs, cfg
        root = type(model).__name__
        for t in plan.tensors():
            if t.macs:
                assert 2 * t.macs == per_module.get(f"{root}.{t.key.rpartition('.')[0]}", 0), (cfg, t.key)


def test_macs_of_the_presets_against_the_flop_counter(family):
    names = list(family.presets)
    for name in names[:1] + names[-1:]:  # the first and the last: an ImageNet and a CIFAR net of each family
        cfg = family.presets[name].config
        total, _ = _flop_counts(_meta_model(cfg), cfg, "meta")
        assert total == 2 * registry.layer_table(cfg).macs, name


# ----------------------------------------------------------------------------- channels and sizes
def test_channels_and_sizes_against_forward_hooks(family):
    for cfg in small_configs(family, 5, 10):
        model = registry.build_model(cfg).eval()
        plan = registry.plan(cfg)
        seen: dict[str, tuple] = {}
        modules = dict(model.named_modules())

        def hook(path):
            def fn(module, args, output):
                x = args[0]
                parts = x if isinstance(x, (list, tuple)) else [x]
                seen[path] = (sum(t.shape[1] for t in parts), tuple(parts[0].shape[2:]), tuple(output.shape))
            return fn

        for unit in plan.units:
            if unit.path in modules:
                modules[unit.path].register_forward_hook(hook(unit.path))
        with torch.no_grad():
            out = model(torch.randn(2, cfg.in_channels, cfg.input_size, cfg.input_size))
        assert tuple(out.shape) == (2, plan.units[-1].out_channels)
        assert len(seen) >= len(plan.units) - 2, cfg  # every unit but perhaps a composite stem and head
        for unit in plan.units:
            if unit.path not in seen:
                continue
            cin, in_hw, shape = seen[unit.path]
            assert cin == unit.in_channels, (cfg, unit.path)
            assert in_hw in ((), (unit.in_size, unit.in_size)), (cfg, unit.path)
            if unit.kind != "stem":  # a stem's first module may not be all of it (conv0 before its pool)
                assert shape[1] == unit.out_channels, (cfg, unit.path)
                assert (shape[-1] if len(shape) == 4 else 1) == unit.out_size, (cfg, unit.path)
        rows = registry.layer_table(cfg).rows
        assert all(r.out_elements == r.out_channels * (r.out_size ** 2 if r.kind != "head" else 1) for r in rows)


# ----------------------------------------------------------------------------- activation memory
def test_activation_bytes_against_autograd_saved_tensors(family):
    configs = small_configs(family, 6, 10)
    if family.name == "densenet":  # every stem, both layer kinds, with and without dropout masks
        configs = (random_valid_configs(404, 10, MEASURED_SPACE, drop_rate=0.0)
                   + random_valid_configs(405, 8, MEASURED_SPACE, drop_rate=0.3) + DEEP_STEM)
        assert len({(c.stem, c.bottleneck, c.drop_rate > 0) for c in configs}) >= 8
    modes = (False, True) if family.can(MEMORY_EFFICIENT) else (False,)
    for i, cfg in enumerate(configs):
        batch = 2 + i % 3
        table = registry.layer_table(cfg)
        for efficient in modes:
            run = cfg.replace(memory_efficient=efficient) if family.can(MEMORY_EFFICIENT) else cfg
            assert table.activation_bytes(batch, efficient=efficient) == saved_bytes(run, batch), (cfg, efficient)
        if not family.can(MEMORY_EFFICIENT):
            assert table.activation_bytes(batch, efficient=True) == table.activation_bytes(batch)
