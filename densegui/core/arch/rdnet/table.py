"""The RDNet layer table: the plan's units with the bytes autograd saves for backward (torch-free).

Per sample, float32, parameters excluded (the conventions of :mod:`densegui.core.arch.densenet.table`):

* a conv keeps its input; a LayerNorm its input and a mean and 1/std per position; GELU and the
  hard sigmoid their input; a product both factors (γ is a parameter); a concatenation, a mean over
  space and a permute nothing;
* **stem**: the image, the patch conv's output (the LayerNorm's input) and its two vectors;
* **block** (input C, expansion I, growth k, H×W): the concatenation (the depthwise conv's), the
  depthwise output (LayerNorm's), the LayerNorm output (the 1×1 conv's), the expansion twice
  (GELU's input and the second 1×1 conv's), the second conv's output (γ's product); with ESE also
  the pooled vector, the gate's input and output and the gated map (γ's product);
* **transition**: the stage's concatenation (LayerNorm's), its output (the conv's), two vectors;
* **head**: the pooled vector (LayerNorm's), two scalars, the normalised vector (the classifier's).

``tests/core/test_family_contract.py`` checks every number against autograd's saved tensors.
"""

from __future__ import annotations

from functools import lru_cache

from densegui.core.arch.rdnet.config import RDNetConfig, multiple_of_8
from densegui.core.arch.rdnet.plan import plan
from densegui.core.arch.table import F32, LayerRow, LayerTable, row_of


def layer_table(config: RDNetConfig) -> LayerTable:
    return _cached(config)


def compute_layer_table(config: RDNetConfig) -> LayerTable:
    p = plan(config)
    cfg = p.config
    rows: list[LayerRow] = []
    widest = 0
    for u in p.units:
        hw, hw_out = u.in_size ** 2, u.out_size ** 2
        if u.kind == "stem":
            saved = u.in_channels * hw + u.out_channels * hw_out + 2 * hw_out
        elif u.kind == "dense":
            c, k = u.in_channels, u.out_channels
            inter = multiple_of_8(c * cfg.width_ratio)
            saved = 3 * c * hw + 2 * hw + 2 * inter * hw + k * hw
            if u.block >= cfg.ese_from:
                saved += k * hw + 3 * k
            widest = max(widest, sum(u.source_channels) * hw)
        elif u.kind == "transition":
            saved = 2 * u.in_channels * hw + 2 * hw
        else:  # head
            saved = 2 * u.in_channels + 2
        saved *= F32
        rows.append(row_of(u, u.out_channels * (hw_out if u.kind != "head" else 1), saved, saved, 0, 0))
    # Inference: a stage's feature list, its concatenation and one block's widest tensors, as a DenseNet's.
    return LayerTable(cfg, tuple(rows), 4 * max(widest, max(c_end * s * s for (_, c_end), s in
                                                            zip(cfg.stage_channels(), cfg.spatial_sizes()))))


_cached = lru_cache(maxsize=64)(compute_layer_table)
