"""The analytic layer table of any family: one row per stem, dense layer, transition, residual
block or head, with channels, spatial size, parameters, MACs and saved-activation bytes.

Each family builds it from its plan (``Family.table``); :func:`densegui.core.arch.registry.layer_table`
picks the right one.
This module imports no configuration module and never imports torch.

Row kinds: DenseNets "stem" | "dense" | "transition" | "head"; ResNets "stem" | "residual" |
"head". ``block`` is the dense block or ResNet stage (1-based), ``index`` the layer or residual
block inside it (1-based). The conventions of the numbers are in :mod:`densegui.core.arch.densenet.table`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

F32 = 4
I64 = 8
MASK = 4  # dropout mask bytes per element: PyTorch's CPU dropout keeps a float32 mask (CUDA keeps 1-byte masks)
CUDA_MASK = 1
FLOPS_CONVENTION = "2 × analytic conv+linear MACs × batch; ×3 for a training step (backward ≈ 2 × forward)"


def bn_vectors(channels: int) -> int:
    """Bytes of the two vectors a training BatchNorm saves besides its input (mean, inv-std)."""
    return 2 * channels * F32


class LayerRow(NamedTuple):  # (a named tuple: a table of hundreds of rows is rebuilt on every slider change)
    name: str  # module path of the group (torchvision's names)
    kind: str  # "stem" | "dense" | "transition" | "head" (DenseNet); "stem" | "residual" | "head" (ResNet)
    block: int | None  # 1-based dense block or ResNet stage (stem and head: None, transition N: N)
    index: int | None  # 1-based dense layer or residual block inside its block/stage
    in_channels: int
    out_channels: int
    out_size: int  # spatial side of the output (1 for the head)
    params: int
    macs: int
    out_elements: int  # elements of this group's output, per sample
    saved_naive: int  # bytes saved for backward per sample, naive mode
    saved_efficient: int  # bytes saved for backward per sample, memory-efficient mode (= naive for ResNets)
    fixed_naive: int  # batch-independent saved bytes (BN mean/inv-std), naive mode
    fixed_efficient: int  # the same in memory-efficient mode
    # Weighted layers (convs + linear) on the main path: the L of "DenseNet-121" / "ResNet-50"
    # (projection shortcuts are not counted, as in the papers' names).
    weighted_layers: int = 1

    def to_dict(self) -> dict:
        return self._asdict()


def row_of(unit: Any, out_elements: int, saved_naive: int, saved_efficient: int, fixed_naive: int,
           fixed_efficient: int) -> LayerRow:
    """The row of a plan unit (``densegui.core.arch.plan.Unit``) with the bytes its family counts."""
    return LayerRow(unit.path, unit.kind, unit.block, unit.index, unit.in_channels, unit.out_channels, unit.out_size,
                    unit.params, unit.macs, out_elements, saved_naive, saved_efficient, fixed_naive, fixed_efficient,
                    unit.weighted_layers)


@dataclass(frozen=True)
class LayerTable:
    config: Any  # a DenseNetConfig, ResNetConfig, …: any family's validated configuration
    rows: tuple[LayerRow, ...]
    # Largest set of feature-map elements alive at once in an inference forward pass, per sample
    # (the probe's memory guard); 0 where the family's builder does not say.
    inference_live_elements: int = 0

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def depth(self) -> int:
        """Weighted layers on the main path (121 for densenet121, 50 for resnet50)."""
        return sum(r.weighted_layers for r in self.rows)

    def depth_fraction(self) -> list[float]:
        """Each row's position as a fraction of the network's depth: the weighted layers up to and
        including the row, over :attr:`depth` (the head is 1.0). Networks of different depth share
        this axis."""
        total, seen, out = self.depth, 0, []
        for r in self.rows:
            seen += r.weighted_layers
            out.append(seen / total)
        return out

    def activation_bytes(self, batch: int = 1, efficient: bool = False, device: str = "cpu") -> int:
        """Bytes saved for backward in one training step of ``batch`` samples.

        The rows count dropout masks as float32 (CPU); on a CUDA ``device``
        PyTorch keeps 1-byte masks, which this corrects for.
        """
        if efficient:
            total = sum(batch * r.saved_efficient + r.fixed_efficient for r in self.rows)
        else:
            total = sum(batch * r.saved_naive + r.fixed_naive for r in self.rows)
        if getattr(self.config, "drop_rate", 0) > 0 and str(device).startswith("cuda"):
            total -= (MASK - CUDA_MASK) * batch * sum(r.out_elements for r in self.dense_rows())
        return total

    @property
    def naive_bytes(self) -> int:
        return self.activation_bytes(1, efficient=False)

    @property
    def efficient_bytes(self) -> int:
        return self.activation_bytes(1, efficient=True)

    def dense_rows(self) -> list[LayerRow]:
        return [r for r in self.rows if r.kind == "dense"]


def estimate_from_table(table: LayerTable, batch_size: int, mode: str, efficient: bool = False) -> int:
    """Estimated bytes a probe run needs beyond what the process already holds.

    Weights (fp32), plus in training their gradients and SGD momentum and the
    analytic bytes autograd saves (``LayerTable.activation_bytes``, exact for
    fp32); in inference ``table.inference_live_elements`` per sample. 25% + 64 MiB
    margin covers workspaces, the allocator and gradients in flight.
    """
    cfg = table.config
    weights = F32 * table.params
    x = F32 * batch_size * cfg.in_channels * cfg.input_size ** 2
    if mode == "training":
        base = 3 * weights + table.activation_bytes(batch_size, efficient=efficient) + x
    else:
        base = weights + x + F32 * batch_size * table.inference_live_elements
    return int(base * 1.25) + 64 * 2**20
