"""The analytic layer table: everything about a DenseNet that follows from its
configuration alone, with no model built and no forward pass.

One row per stem, dense layer, transition and head, with channels, spatial
size, parameters, MACs and activation sizes (the row and table types are
family-neutral, in :mod:`densegui.core.arch.table`; ResNets: :mod:`densegui.core.arch.resnet.config`).

Conventions (shown to users wherever these numbers appear):

* **MACs** are multiply-accumulates of convolutions and the classifier at
  batch 1 (BatchNorm, ReLU and pooling are not counted). FLOPs ≈ 2 × MACs;
  ``torch.utils.flop_counter`` reports exactly 2 × this number.
* **Activation memory of a training step** is the number of bytes of the
  tensors autograd keeps from the forward pass for the backward pass
  (float32; parameters and BatchNorm running statistics excluded; BatchNorm's
  saved mean/inv-std vectors, max-pool indices and dropout masks included; dropout masks are
  counted as float32, as the CPU keeps them; ``activation_bytes(device="cuda")`` counts the
  1-byte masks CUDA keeps).
  *Naive*: every layer materialises its own concatenation and BN output.
  *Memory-efficient*: concat + BN + ReLU + first conv are recomputed in the
  backward pass, so only each layer's new features (shared storage) and its
  bottleneck tensors are kept. ``tests/core/arch/test_stats.py`` checks both numbers
  byte-for-byte against what autograd really saves.

Parameters and MACs come from the plan (:mod:`densegui.core.arch.densenet.plan`); this module adds
the saved-activation bytes. It never imports torch.
"""

from __future__ import annotations

from functools import lru_cache

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.densenet.plan import plan
from densegui.core.arch.plan import Unit, stride2
from densegui.core.arch.table import F32, I64, MASK, LayerRow, LayerTable, bn_vectors, row_of


def layer_table(config: DenseNetConfig) -> LayerTable:
    """The per-layer table of a validated config (validates it first).

    Tables are immutable and cached per configuration: on one slider change the window's
    headline and the timing probe's memory estimate both ask for the same table.
    :func:`compute_layer_table` is the uncached computation (benchmarks time that one).
    """
    return _cached_layer_table(config)


def compute_layer_table(config: DenseNetConfig) -> LayerTable:
    """:func:`layer_table` without the cache: the plan's units, with their saved-activation bytes."""
    p = plan(config)
    cfg = p.config
    drop = cfg.drop_rate > 0
    inter = cfg.bn_size * cfg.growth_rate
    rows: list[LayerRow] = []
    for u in p.units:
        hw, hw_out = u.in_size ** 2, u.out_size ** 2
        if u.kind == "stem":
            x_bytes = u.in_channels * hw * F32  # the input, saved by conv0
            if cfg.stem == "cifar":
                saved, fixed = x_bytes, 0
            else:
                # imagenet: conv0 → norm0 → relu0 → pool0; deep: three conv → norm → relu, then pool0.
                # Each BN keeps its conv's output; each in-place ReLU and what follows it (the next
                # conv, or pool0) keep the BN's output; pool0 keeps int64 indices.
                s1, widths = _stem_size(cfg, u.in_size), _norm_widths(u)
                saved = x_bytes + sum(2 * c * s1 * s1 * F32 for c in widths) + u.out_channels * hw_out * I64
                fixed = sum(bn_vectors(c) for c in widths)
            rows.append(row_of(u, u.out_channels * hw_out, saved, saved, fixed, fixed))
        elif u.kind == "dense":
            cin, k = u.in_channels, u.out_channels
            if cfg.bottleneck:
                inner = 2 * inter * hw * F32  # conv1 output (kept by norm2) + norm2 output (kept by conv2)
                naive, efficient = 2 * cin * hw * F32 + inner, inner
                fixed, fixed_eff = bn_vectors(cin) + bn_vectors(inter), bn_vectors(inter)  # BN1 is recomputed
            else:
                naive, efficient = 2 * cin * hw * F32, 0  # the concatenation (norm1) + norm1's output (conv1)
                fixed, fixed_eff = bn_vectors(cin), 0
            mask = k * hw * MASK if drop else 0
            # Efficient mode keeps the layer's inputs for recomputation: the block input once
            # (charged to layer 1) and each new feature map that a later layer reads.
            if u.index == 1:
                efficient += u.source_channels[0] * hw * F32
            if u.index < cfg.block_depths[u.block - 1]:
                efficient += k * hw * F32
            rows.append(row_of(u, k * hw, naive + mask, efficient + mask, fixed, fixed_eff))
        elif u.kind == "transition":
            # norm keeps the block's concatenation, conv its BN output, pool the conv output.
            saved = 2 * u.in_channels * hw * F32 + u.out_channels * hw * F32
            rows.append(row_of(u, u.out_channels * hw_out, saved, saved, bn_vectors(u.in_channels),
                             bn_vectors(u.in_channels)))
        else:  # head: norm5 → relu → global average pool → classifier
            c = u.in_channels
            # block concat (norm5), norm5/relu output (pool), pooled vector (linear)
            saved = 2 * c * hw * F32 + c * F32
            rows.append(row_of(u, u.out_channels, saved, saved, bn_vectors(c), bn_vectors(c)))
    return LayerTable(cfg, tuple(rows), _inference_live_elements(cfg, p.units[0]))


def _stem_size(cfg: DenseNetConfig, size: int) -> int:
    """The side of a downsampling stem's conv outputs (before its max pool)."""
    return stride2(size, 7, 3) if cfg.stem == "imagenet" else stride2(size, 3, 1)


def _norm_widths(u: Unit) -> list[int]:
    """The channels of each BatchNorm of a plan unit, in order."""
    return [t.shape[0] for t in u.tensors if t.key.endswith(".running_mean")]


def _inference_live_elements(cfg: DenseNetConfig, stem: Unit) -> int:
    """The largest dense block's live feature maps in inference (its concatenation, the features
    list it is built from, one layer's BN output and the next layer's input: 4 × the block
    output), or the stem's widest conv + BN outputs if larger; per sample."""
    sizes = cfg.spatial_sizes()
    block_out = max(c_end * sizes[i] ** 2 for i, (_, c_end) in enumerate(cfg.block_channels()))
    widths = _norm_widths(stem)
    s1 = _stem_size(cfg, cfg.input_size)
    return max(4 * block_out, 2 * max(widths) * s1 * s1 if widths else 0)


_cached_layer_table = lru_cache(maxsize=64)(compute_layer_table)
