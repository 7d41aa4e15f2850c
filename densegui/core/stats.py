"""The analytic layer table: everything about a DenseNet that follows from its
configuration alone, with no model built and no forward pass.

One row per stem, dense layer, transition and head, with channels, spatial
size, parameters, MACs and activation sizes (the row and table types are
family-neutral, in :mod:`densegui.core.table`; ResNets: :mod:`densegui.core.resnet`).

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
  bottleneck tensors are kept. ``tests/core/test_stats.py`` checks both numbers
  byte-for-byte against what autograd really saves.

The timing probe's analytic figures live here too: :func:`flops_per_iteration`
(its FLOPs convention, :data:`FLOPS_CONVENTION`) and :func:`estimate_memory`
(the CPU memory guard's estimate). This module never imports torch.
"""

from __future__ import annotations

from functools import lru_cache

from densegui.core.config import DenseNetConfig
from densegui.core.table import CUDA_MASK, F32, I64, MASK, LayerRow, LayerTable, estimate_from_table

# LayerRow and LayerTable live in densegui.core.table (shared by every family); re-exported here.
__all__ = ["CUDA_MASK", "F32", "FLOPS_CONVENTION", "I64", "MASK", "LayerRow", "LayerTable", "compute_layer_table",
           "estimate_memory", "flops_per_iteration", "layer_table"]


def _bn_vectors(channels: int) -> int:
    return 2 * channels * F32  # save_mean + save_invstd


def layer_table(config: DenseNetConfig) -> LayerTable:
    """The per-layer table of a validated config (validates it first).

    Tables are immutable and cached per configuration: on one slider change the window's
    headline and the timing probe's memory estimate both ask for the same table.
    :func:`compute_layer_table` is the uncached computation (benchmarks time that one).
    """
    return _cached_layer_table(config)


def compute_layer_table(config: DenseNetConfig) -> LayerTable:
    """:func:`layer_table` without the cache."""
    cfg = config.validate()
    k, bn = cfg.growth_rate, cfg.bn_size * cfg.growth_rate
    drop = cfg.drop_rate > 0
    rows: list[LayerRow] = []
    s_in = cfg.input_size
    init = cfg.num_init_features
    x_bytes = cfg.in_channels * s_in * s_in * F32  # the input, saved by conv0

    # ---- stem
    if cfg.stem == "imagenet":
        s1 = (s_in - 1) // 2 + 1
        s2 = (s1 - 1) // 2 + 1
        params = cfg.in_channels * init * 49 + 2 * init
        macs = init * s1 * s1 * cfg.in_channels * 49
        # conv0 keeps x; norm0 keeps conv0's output; relu0 (in place) and
        # pool0 keep norm0's output; pool0 keeps int64 indices.
        saved = x_bytes + 2 * init * s1 * s1 * F32 + init * s2 * s2 * I64
        rows.append(LayerRow("features.conv0", "stem", None, None, cfg.in_channels, init, s2, params, macs,
                             init * s2 * s2, saved, saved, _bn_vectors(init), _bn_vectors(init)))
    else:
        s2 = s_in
        params = cfg.in_channels * init * 9
        macs = init * s2 * s2 * cfg.in_channels * 9
        rows.append(LayerRow("features.conv0", "stem", None, None, cfg.in_channels, init, s2, params, macs,
                             init * s2 * s2, x_bytes, x_bytes, 0, 0))

    # ---- dense blocks and transitions
    sizes = cfg.spatial_sizes()
    for b, ((c0, c_end), depth) in enumerate(zip(cfg.block_channels(), cfg.block_depths), 1):
        hw = sizes[b - 1] ** 2
        for i in range(1, depth + 1):
            cin = c0 + (i - 1) * k
            last = i == depth
            if cfg.bottleneck:
                params = 2 * cin + cin * bn + 2 * bn + bn * k * 9
                macs = hw * (bn * cin + k * bn * 9)
                inner = 2 * bn * hw * F32  # conv1 output (kept by norm2) + norm2 output (kept by conv2)
                naive = 2 * cin * hw * F32 + inner
                efficient = inner
                fixed = _bn_vectors(cin) + _bn_vectors(bn)
                fixed_eff = _bn_vectors(bn)  # BN1 lives inside the recomputed region
            else:
                params = 2 * cin + cin * k * 9
                macs = hw * k * cin * 9
                naive = 2 * cin * hw * F32  # the concatenation (kept by norm1) + norm1 output (kept by conv1)
                efficient = 0
                fixed = _bn_vectors(cin)
                fixed_eff = 0
            mask = k * hw * MASK if drop else 0
            # Efficient mode keeps the layer's inputs for recomputation: the
            # block input once (charged to layer 1) and each new feature map
            # that a later layer reads.
            if i == 1:
                efficient += c0 * hw * F32
            if not last:
                efficient += k * hw * F32
            rows.append(LayerRow(f"features.denseblock{b}.denselayer{i}", "dense", b, i, cin, k, sizes[b - 1],
                                 params, macs, k * hw, naive + mask, efficient + mask, fixed, fixed_eff,
                                 2 if cfg.bottleneck else 1))
        if b < cfg.num_blocks:
            out = cfg.transition_out(c_end)
            s_next = sizes[b]
            params = 2 * c_end + c_end * out
            macs = hw * out * c_end
            # norm keeps the block's concatenation, conv its BN output, pool the conv output.
            saved = 2 * c_end * hw * F32 + out * hw * F32
            rows.append(LayerRow(f"features.transition{b}", "transition", b, None, c_end, out, s_next, params, macs,
                                 out * s_next * s_next, saved, saved, _bn_vectors(c_end), _bn_vectors(c_end)))

    # ---- head: norm5 → relu → global average pool → classifier
    c, hw = cfg.final_channels, sizes[-1] ** 2
    params = 2 * c + c * cfg.num_classes + cfg.num_classes
    macs = c * cfg.num_classes
    saved = 2 * c * hw * F32 + c * F32  # block concat (norm5), norm5/relu output (pool), pooled vector (linear)
    rows.append(LayerRow("classifier", "head", None, None, c, cfg.num_classes, 1, params, macs, cfg.num_classes,
                         saved, saved, _bn_vectors(c), _bn_vectors(c)))
    return LayerTable(cfg, tuple(rows), _inference_live_elements(cfg))


def _inference_live_elements(cfg: DenseNetConfig) -> int:
    """The largest dense block's live feature maps in inference (its concatenation, the features
    list it is built from, one layer's BN output and the next layer's input: 4 × the block
    output), or the stem's conv0 + norm0 outputs if larger; per sample."""
    sizes = cfg.spatial_sizes()
    block_out = max(c_end * sizes[i] ** 2 for i, (_, c_end) in enumerate(cfg.block_channels()))
    s1 = (cfg.input_size + 1) // 2
    stem = 2 * cfg.num_init_features * s1 * s1 if cfg.stem == "imagenet" else 0
    return max(4 * block_out, stem)


_cached_layer_table = lru_cache(maxsize=64)(compute_layer_table)


# ------------------------------------------------------ the probe's estimates
FLOPS_CONVENTION = "2 × analytic conv+linear MACs × batch; ×3 for a training step (backward ≈ 2 × forward)"


def flops_per_iteration(cfg: DenseNetConfig, batch_size: int, mode: str) -> int:
    """FLOPs of one probe iteration (``mode`` "inference" or "training"), by :data:`FLOPS_CONVENTION`."""
    flops = 2 * layer_table(cfg).macs * batch_size
    return 3 * flops if mode == "training" else flops


def estimate_memory(cfg: DenseNetConfig, batch_size: int, mode: str) -> int:
    """Estimated bytes a probe run of a DenseNet needs beyond what the process already holds
    (:func:`densegui.core.table.estimate_from_table`; any family: :func:`densegui.core.arch.estimate_memory`).

    In inference the live feature maps are the largest dense block's: its concatenation, the
    features list it is built from, one layer's BN output and the next layer's input (4 × the
    block output).
    """
    return estimate_from_table(layer_table(cfg), batch_size, mode, efficient=cfg.memory_efficient)
