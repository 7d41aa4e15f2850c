"""The connectivity field: its rules, and every DenseNet preset under dense, log and window:W against
an independent model wired the same way (params by its modules, MACs by FlopCounterMode)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from densegui.cli import main
from densegui.core.arch import registry
from densegui.core.arch.densenet import connectivity as conn
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import ConfigError

SPECS = ("dense", "log", "window:2", "window:5")


def reads(spec: str, i: int) -> list[int]:
    """The issue's rules, written out again: layer i (1-based) of a block reads these sources."""
    if spec == "dense":
        return list(range(i))
    if spec.startswith("window:"):
        w = int(spec.split(":")[1])
        return [j for j in range(i) if j >= i - w]
    return sorted({i - 2 ** m for m in range(i.bit_length() + 1) if i - 2 ** m >= 0})


@pytest.mark.parametrize("spec", SPECS + ("window:1", "window:64"))
def test_sources_follow_the_rules(spec):
    for i in range(1, 70):
        assert list(conn.sources(spec, i)) == reads(spec, i), (spec, i)


def all_pairs_longest(spec: str, depth: int) -> int:
    """Floyd–Warshall over a block's feature maps 0 … depth (edges source → reader)."""
    inf = math.inf
    d = [[inf] * (depth + 1) for _ in range(depth + 1)]
    for t in range(1, depth + 1):
        for s in reads(spec, t):
            d[s][t] = 1
    for m in range(depth + 1):
        for a in range(depth + 1):
            for b in range(depth + 1):
                if d[a][m] + d[m][b] < d[a][b]:
                    d[a][b] = d[a][m] + d[m][b]
    return max(d[s][t] for s in range(depth + 1) for t in range(s + 1, depth + 1))


@pytest.mark.parametrize("spec", SPECS)
def test_backprop_distance(spec):
    for depth in (1, 2, 3, 6, 12, 24):
        assert conn.longest_path(spec, depth) == all_pairs_longest(spec, depth), (spec, depth)
    assert conn.longest_path("dense", 64) == 1 and conn.longest_path("window:4", 64) == 16
    assert conn.longest_path("log", 64) <= 1 + math.log2(64)  # Log-DenseNet's bound


@pytest.mark.parametrize("bad", ["window:0", "window:x", "window:", "sparse", "", "window:129", 3, None])
def test_bad_values_get_one_line(bad):
    with pytest.raises(ConfigError) as err:
        DenseNetConfig(connectivity=bad).validate()
    assert "\n" not in str(err.value) and "connectivity" in str(err.value)


def test_spellings_are_made_canonical():
    assert DenseNetConfig(connectivity="Window:04").connectivity == "window:4"
    assert DenseNetConfig(connectivity=" LOG ").validate().connectivity == "log"


# ----------------------------------------------------------------------------- independent model
class Reference(nn.Module):
    """A DenseNet written here from the configuration's fields (not densegui's model): torchvision's
    module names, each dense layer concatenating ``reads(spec, i)`` of its block's feature maps."""

    def __init__(self, cfg: DenseNetConfig) -> None:
        super().__init__()
        k, c0 = cfg.growth_rate, cfg.init_features or 2 * cfg.growth_rate
        self.cfg = cfg
        stem = {"imagenet": [nn.Conv2d(cfg.in_channels, c0, 7, 2, 3, bias=False), nn.BatchNorm2d(c0), nn.ReLU(),
                             nn.MaxPool2d(3, 2, 1)],
                "cifar": [nn.Conv2d(cfg.in_channels, c0, 3, 1, 1, bias=False)]}[cfg.stem]
        self.stem = nn.Sequential(*stem)
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for b, depth in enumerate(cfg.block_depths):
            layers = nn.ModuleList()
            for i in range(1, depth + 1):
                cin = sum(c0 if j == 0 else k for j in reads(cfg.connectivity, i))
                if cfg.bottleneck:
                    inter = cfg.bn_size * k
                    layers.append(nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, inter, 1, bias=False),
                                                nn.BatchNorm2d(inter), nn.ReLU(), nn.Conv2d(inter, k, 3, 1, 1, bias=False)))
                else:
                    layers.append(nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, k, 3, 1, 1, bias=False)))
            self.blocks.append(layers)
            end = c0 + depth * k
            if b < len(cfg.block_depths) - 1:
                c0 = int(math.floor(cfg.compression * end + 1e-9))
                self.transitions.append(nn.Sequential(nn.BatchNorm2d(end), nn.ReLU(), nn.Conv2d(end, c0, 1, bias=False),
                                                      nn.AvgPool2d(2, 2)))
        self.norm = nn.BatchNorm2d(end)
        self.fc = nn.Linear(end, cfg.num_classes)

    def forward(self, x):
        x = self.stem(x)
        for b, layers in enumerate(self.blocks):
            maps = [x]
            for i, layer in enumerate(layers, 1):
                maps.append(layer(torch.cat([maps[j] for j in reads(self.cfg.connectivity, i)], 1)))
            x = torch.cat(maps, 1)
            if b < len(self.transitions):
                x = self.transitions[b](x)
        x = torch.relu(self.norm(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def no_norms(model: nn.Module) -> None:
    """BatchNorm to identity: it has no MACs in densegui's convention, and is slow on the meta device."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, nn.Identity())


@pytest.mark.parametrize("spec", ("log", "window:2", "dense"))
def test_every_preset_summary_against_an_independent_model(spec, capsys):
    names = [n for n in registry.preset_names() if isinstance(registry.get_preset(n), DenseNetConfig)]
    assert len(names) >= 11
    for name in names:
        cfg = registry.get_preset(name).replace(connectivity=spec)
        if cfg.stem not in ("imagenet", "cifar"):
            continue
        assert main(["summary", "--preset", name, "--connectivity", spec, "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        with torch.device("meta"):
            ref = Reference(cfg)
        assert got["params"] == sum(p.numel() for p in ref.parameters()), name
        no_norms(ref)
        with FlopCounterMode(display=False) as counter:
            ref(torch.empty(1, cfg.in_channels, cfg.input_size, cfg.input_size, device="meta"))
        assert got["macs"] == counter.get_total_flops() // 2, name
        assert got["config"]["connectivity"] == spec


def test_the_model_concatenates_only_the_chosen_maps_and_both_memory_modes_agree():
    cfg = DenseNetConfig(growth_rate=3, block_depths=(5, 4), stem="cifar", in_channels=2, num_classes=4, input_size=8,
                         bottleneck=True, bn_size=2, connectivity="log").validate()
    torch.manual_seed(0)
    plain = registry.build_model(cfg)
    efficient = registry.build_model(cfg.replace(memory_efficient=True))
    efficient.load_state_dict(plain.state_dict())
    seen = {}
    for name, m in plain.named_modules():
        if name.count("denselayer") and name.endswith(tuple(f"denselayer{i}" for i in range(1, 10))):
            m.register_forward_pre_hook(lambda mod, args, name=name: seen.__setitem__(name, len(args[0])))
    x = torch.randn(3, 2, 8, 8)
    outs = []
    for model in (plain, efficient):
        model.train()
        y = model(x)
        y.square().sum().backward()
        outs.append((y.detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(outs[0][1], outs[1][1], strict=True))
    assert seen == {f"features.denseblock{b}.denselayer{i}": len(reads("log", i))
                    for b, d in enumerate(cfg.block_depths, 1) for i in range(1, d + 1)}


@pytest.mark.parametrize("spec", ("log", "window:3", "window:1", "dense"))
def test_a_bare_state_dict_gets_its_connectivity_back(spec):
    from densegui.core.weights.infer import infer_config

    for name in ("densenet121", "densenet-40-k12", "densenet-bc-100-k12"):
        cfg = registry.get_preset(name).replace(connectivity=spec)
        state = registry.build_model(cfg, device="meta").state_dict()
        got = infer_config(state)
        assert got.connectivity == spec and got.replace(input_size=cfg.input_size) == cfg, name


def test_graph_in_degrees_are_the_sources(tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["graph", "--preset", "densenet121", "--connectivity", "log", "--dot", str(out)]) == 0
    edges = [line.split("->") for line in out.read_text().splitlines() if "->" in line]
    into: dict[str, int] = {}
    for _src, rest in edges:
        target = rest.split("[")[0].strip().strip('"')
        into[target] = into.get(target, 0) + 1
    cfg = registry.get_preset("densenet121")
    for b, depth in enumerate(cfg.block_depths, 1):
        for i in range(1, depth + 1):
            assert into[f"features.denseblock{b}.denselayer{i}"] == len(reads("log", i))
    assert into["classifier"] == cfg.block_depths[-1] + 1  # the head still reads the whole block


@pytest.mark.parametrize("bad", ["window:0", "window:x", "sparse"])
def test_the_cli_refuses_bad_values_in_one_line(bad, capsys):
    assert main(["summary", "--preset", "densenet121", "--connectivity", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "connectivity" in err and "Traceback" not in err


@pytest.mark.parametrize("spec", SPECS)
def test_summary_reports_connections_and_backprop_distance(spec, capsys):
    cfg = registry.get_preset("densenet-bc-100-k12").replace(connectivity=spec)
    assert main(["summary", "--preset", "densenet-bc-100-k12", "--connectivity", spec, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    depths = cfg.block_depths
    into_layers = sum(len(reads(spec, i)) for d in depths for i in range(1, d + 1))
    assert got["connections"] == into_layers + sum(d + 1 for d in depths)  # + every transition's and the head's
    assert got["backprop_distance"] == max(all_pairs_longest(spec, d) for d in depths) == cfg.backprop_distance()
    assert main(["summary", "--preset", "resnet50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backprop_distance"] is None
