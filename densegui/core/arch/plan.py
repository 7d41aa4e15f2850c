"""A network's structure as plain data: the ordered units of a configuration (torch-free).

A family's planner (``Family.plan``) states, once, which units a configuration has (stem, dense
layers, transitions, residual blocks, head …), what each one reads, its channels and spatial size,
and every state-dict entry with its shape. Everything else that needs the structure derives it from
here: parameter counts and MACs (:meth:`Plan.params`, :meth:`Plan.macs`), the state-dict shapes a
checkpoint must have (:meth:`Plan.state_shapes`), the reuse targets, the profiler's kinds (by path
prefix) and the summary's cancel points.

The specs are built with :func:`conv`, :func:`bn`, :func:`linear`, :func:`ln` and :func:`param`,
which also record the multiply-accumulates each weight costs, so a planner never spells them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any, NamedTuple


class Tensor(NamedTuple):
    """One state-dict entry of a unit. (Named tuples, not dataclasses: a plan has thousands of
    these and is rebuilt on every slider change.)"""

    key: str  # the full state-dict key ("features.denseblock1.denselayer1.conv1.weight")
    shape: tuple[int, ...]
    buffer: bool = False  # running statistics and counters: in the state dict, not parameters
    macs: int = 0  # multiply-accumulates this weight costs per sample (convs and linears)

    @property
    def numel(self) -> int:
        return prod(self.shape)


class Unit(NamedTuple):
    """One row of a network: a stem, a dense layer, a transition, a residual block, a head …"""

    path: str  # module path, torchvision's or timm's names ("features.denseblock2.denselayer7", "layer1.0")
    kind: str  # the family's row kind: "stem" | "dense" | "transition" | "residual" | "head" | …
    block: int | None  # 1-based dense block or stage (None: stem and head)
    index: int | None  # 1-based layer inside its block (None where there is no such index)
    in_channels: int
    out_channels: int
    in_size: int  # spatial side of the input
    out_size: int  # spatial side of the output (1 for a head)
    tensors: tuple[Tensor, ...] = ()
    # What this unit concatenates, in order: the paths of the units (or "<block path>.input" for a
    # dense block's input) whose outputs it reads, and the channels each contributes. Empty for a unit
    # that reads only the previous unit's output.
    sources: tuple[str, ...] = ()
    source_channels: tuple[int, ...] = ()
    weighted_layers: int = 1  # convs + linears on the main path (the L of "DenseNet-121")
    # The module whose weight is the unit's first channel mixing over its sources (the reuse metric
    # reads its input-channel slices): "…denselayer3.conv1"; None where the unit mixes no sources.
    mixer: str | None = None
    residual: bool = False  # the unit adds its input to its output (a residual block's identity or projection)

    @property
    def params(self) -> int:
        n = 0
        for t in self.tensors:
            if not t[2]:  # (buffer)
                n += prod(t[1])
        return n

    @property
    def macs(self) -> int:
        n = 0
        for t in self.tensors:
            n += t[3]
        return n


@dataclass(frozen=True)
class Plan:
    config: Any
    units: tuple[Unit, ...]
    extra: tuple[Tensor, ...] = field(default=())  # entries of no unit (none in the built-in families)

    @property
    def params(self) -> int:
        return sum(u.params for u in self.units) + sum(t.numel for t in self.extra if not t.buffer)

    @property
    def macs(self) -> int:
        return sum(u.macs for u in self.units)

    def tensors(self):
        for u in self.units:
            yield from u.tensors
        yield from self.extra

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every state-dict key of the built module with its shape, in module order."""
        return {t.key: t.shape for t in self.tensors()}

    def unit(self, path: str) -> Unit:
        for u in self.units:
            if u.path == path:
                return u
        raise KeyError(path)

    def of_kind(self, kind: str) -> list[Unit]:
        return [u for u in self.units if u.kind == kind]


# ----------------------------------------------------------------------------- spec builders
_new = tuple.__new__  # a Tensor without the keyword handling of its constructor (plans are rebuilt per edit)

def param(key: str, *shape: int, buffer: bool = False, macs: int = 0) -> Tensor:
    return Tensor(key, tuple(shape), buffer, macs)


def conv(prefix: str, out_ch: int, in_ch: int, kernel: int, out_size: int, *, groups: int = 1,
         bias: bool = False) -> tuple[Tensor, ...]:
    """A Conv2d's weight (and bias) with its MACs at ``out_size``² output positions."""
    per_group = in_ch // groups
    w = _new(Tensor, (f"{prefix}.weight", (out_ch, per_group, kernel, kernel), False,
                      out_ch * per_group * kernel * kernel * out_size * out_size))
    return (w, _new(Tensor, (f"{prefix}.bias", (out_ch,), False, 0))) if bias else (w,)


def bn(prefix: str, channels: int) -> tuple[Tensor, ...]:
    """A BatchNorm2d: affine weight and bias, running statistics and the batch counter."""
    c = (channels,)
    return (_new(Tensor, (f"{prefix}.weight", c, False, 0)), _new(Tensor, (f"{prefix}.bias", c, False, 0)),
            _new(Tensor, (f"{prefix}.running_mean", c, True, 0)), _new(Tensor, (f"{prefix}.running_var", c, True, 0)),
            _new(Tensor, (f"{prefix}.num_batches_tracked", (), True, 0)))


def ln(prefix: str, channels: int) -> tuple[Tensor, ...]:
    """A LayerNorm (or any affine norm without running statistics)."""
    return Tensor(f"{prefix}.weight", (channels,)), Tensor(f"{prefix}.bias", (channels,))


def linear(prefix: str, in_features: int, out_features: int, *, bias: bool = True) -> tuple[Tensor, ...]:
    w = Tensor(f"{prefix}.weight", (out_features, in_features), False, out_features * in_features)
    return (w, Tensor(f"{prefix}.bias", (out_features,))) if bias else (w,)


def stride2(size: int, kernel: int = 3, padding: int = 1) -> int:
    """The output side of a stride-2 window: ``(size + 2·padding − kernel) // 2 + 1``
    (a 7×7/2 conv with padding 3 and a 3×3/2 pool with padding 1 both give ``(size − 1) // 2 + 1``)."""
    return (size + 2 * padding - kernel) // 2 + 1
