"""Independent reference computations the tests compare densegui's numbers with.

Written from the definitions (the paper's channel formula, tensor names and shapes, counting the
tensors or hooking the layers of a model built on the meta device), not from densegui's analytic code.
"""

from __future__ import annotations

import numpy as np
import torch

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.densenet.model import build_model


def count_params(cfg: DenseNetConfig) -> int:
    """Parameters of a model built on the meta device, tensor by tensor."""
    return sum(p.numel() for p in build_model(cfg, "meta").parameters())


def count_macs(cfg: DenseNetConfig) -> int:
    """Conv + linear multiply-accumulates from forward hooks on a meta-device model."""
    model = build_model(cfg, "meta").eval()
    total = 0

    def conv_hook(m, _inp, out):
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, _inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        model(torch.empty(1, cfg.in_channels, cfg.input_size, cfg.input_size, device="meta"))
    return total


def final_channels(cfg: DenseNetConfig) -> int:
    """Channels after the last block, by the paper's formula (k0 + ℓ·k per block, ⌊θ·m⌋ per transition)."""
    c = cfg.init_features if cfg.init_features is not None else 2 * cfg.growth_rate
    for i, d in enumerate(cfg.block_depths):
        c += d * cfg.growth_rate
        if i < len(cfg.block_depths) - 1:
            c = int(cfg.compression * c + 1e-9)
    return c


def naive_matrices(sd: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """Figure 5 by the REFERENCE definition, straight from the tensor names and shapes:
    k0 = layer 1's input channels, k = growth (layer 1's last conv outputs), one explicit slice per cell."""
    out = []
    b = 1
    while f"features.denseblock{b}.denselayer1.conv1.weight" in sd:
        depth = 0
        while f"features.denseblock{b}.denselayer{depth + 1}.conv1.weight" in sd:
            depth += 1
        first = sd[f"features.denseblock{b}.denselayer1.conv1.weight"]
        last_conv = sd.get(f"features.denseblock{b}.denselayer1.conv2.weight", first)
        k0, k = first.shape[1], last_conv.shape[0]
        targets = [sd[f"features.denseblock{b}.denselayer{t}.conv1.weight"] for t in range(1, depth + 1)]
        nxt = f"features.transition{b}.conv.weight"
        targets.append(sd[nxt] if nxt in sd else sd["classifier.weight"])
        m = np.full((depth + 1, depth + 1), np.nan)
        for t, w in enumerate(targets):
            for s in range(depth + 1):
                lo, hi = (0, k0) if s == 0 else (k0 + (s - 1) * k, k0 + s * k)
                if hi <= w.shape[1]:
                    m[s, t] = w[:, lo:hi].abs().double().mean().item()
        out.append(m)
        b += 1
    return out


def saved_bytes(cfg, batch: int, device: str = "cpu") -> int:
    """Bytes of the distinct storages autograd saves in one training step of ``cfg`` (either family),
    counted through saved-tensor hooks; parameters and buffers are not counted."""
    from densegui.core.arch import registry as arch

    torch.manual_seed(0)
    model = arch.build_model(cfg, device).train()
    exclude = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    storages: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in exclude:
            storages[s.data_ptr()] = s.nbytes()
        return t

    x = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, device=device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
        out.sum().backward()  # recomputation in backward saves through the hooks too: must not be counted
    return sum(storages.values())
