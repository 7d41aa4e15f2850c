"""The ResNet layer table: the plan's units with their saved-activation bytes (torch-free).

Conventions are the DenseNet ones (:mod:`densegui.core.arch.table`): saved bytes are the float32
tensors autograd keeps for backward in a training step: every conv's input, every BatchNorm's input
and its mean/inv-std vectors, every ReLU's output (in place: the BN output), the max pool's int64
indices and the classifier's pooled input. The residual add and option A's subsample-and-pad keep
nothing. ``tests/core/test_family_contract.py`` checks the bytes against autograd's saved tensors.
"""

from __future__ import annotations

from functools import lru_cache

from densegui.core.arch.plan import stride2
from densegui.core.arch.resnet.config import ResNetConfig
from densegui.core.arch.resnet.plan import plan
from densegui.core.arch.table import F32, I64, LayerRow, LayerTable, row_of
from densegui.core.arch.table import bn_vectors as _bn


def compute_resnet_layer_table(config: ResNetConfig) -> LayerTable:
    """:func:`resnet_layer_table` without the cache."""
    p = plan(config)
    cfg = p.config
    rows: list[LayerRow] = []
    live = 0
    for u in p.units:
        si, so, cin, c_out = u.in_size, u.out_size, u.in_channels, u.out_channels
        if u.kind == "stem":  # conv1 keeps x, bn1 its output, relu (in place) the BN output
            x_bytes = cin * si * si * F32
            if cfg.stem == "imagenet":
                s1 = stride2(si, 7, 3)
                # + the max pool's int64 indices and its output (kept by the first block's convs)
                saved = x_bytes + 2 * c_out * s1 * s1 * F32 + c_out * so * so * (I64 + F32)
                live = 2 * c_out * s1 * s1
            else:
                saved = x_bytes + 2 * c_out * si * si * F32
                live = 2 * c_out * si * si
            rows.append(_row(u, c_out * so * so, saved, _bn(c_out)))
        elif u.kind == "residual":
            w = cfg.widths[u.block - 1]
            reshape = cfg.reshapes(u.block, u.index)
            if cfg.block == "basic":
                # conv1 out, bn1 out (relu1 in place, kept by conv2), conv2 out, bn2 out = the block's
                # output (the add and relu run in place on it; relu keeps it)
                saved_el, fixed, mid = 4 * w * so * so, 2 * _bn(w), w * so * so
            else:
                # conv1/bn1 outputs at the input side, conv2/bn2 at the output side, conv3/bn3 (the output)
                saved_el = 2 * w * si * si + 2 * w * so * so + 2 * c_out * so * so
                fixed, mid = 2 * _bn(w) + _bn(c_out), max(w * si * si, c_out * so * so)
            if reshape and cfg.shortcut == "B":
                saved_el += c_out * so * so  # the projection conv's output, kept by its BN
                fixed += _bn(c_out)
            live = max(live, cin * si * si + 3 * mid + (c_out * so * so if reshape else 0))
            rows.append(_row(u, c_out * so * so, saved_el * F32, fixed))
        else:  # head: global average pool (keeps its input, already counted) → fc (keeps the pooled vector)
            rows.append(_row(u, c_out, cin * F32, 0))
    return LayerTable(cfg, tuple(rows), live)


def _row(u, out_elements: int, saved: int, fixed: int) -> LayerRow:
    return row_of(u, out_elements, saved, saved, fixed, fixed)  # (no memory-efficient mode: the same bytes)


_cached = lru_cache(maxsize=64)(compute_resnet_layer_table)


def resnet_layer_table(cfg: ResNetConfig) -> LayerTable:
    """The per-block table of a ResNet config (validated first); cached per configuration."""
    return _cached(cfg)
