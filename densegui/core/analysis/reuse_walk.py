"""A DenseNet's eval forward pass in pieces, for the data measures and the pruning curve.

:class:`Walk` runs the network block by block with each target's mixing op (its first conv, or
the classifier) replaceable, so a measure can split that op by source or cut one source's slice.
Which targets exist, what they read and which modules are their mixers and input BatchNorms come
from the family's plan (:func:`densegui.core.analysis.reuse.block_layouts`); what runs between
them is the module's own (a dense layer's ReLU and bottleneck, a transition's pool).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densegui.core.analysis.reuse import BlockLayout, block_layouts, not_reusable, unavailable
from densegui.core.arch import registry
from densegui.core.arch.family import REUSE
from densegui.core.errors import DenseguiError

Cancel = Callable[[], bool] | None
Progress = Callable[[float, str], None] | None
Target = tuple[int, int]  # (1-based block, 0-based target: layers 0..L-1, then L = transition/classifier)
FirstOp = Callable[[Target, nn.Module, Tensor], Tensor]


class ReuseCancelled(DenseguiError):
    """``cancel()`` returned True during a data measure."""


def _plain(_target: Target, module: nn.Module, a: Tensor) -> Tensor:
    return module(a)


def check(cancel: Cancel) -> None:
    if cancel is not None and cancel():
        raise ReuseCancelled("cancelled.")


def after_mixer(layer: nn.Module, out: Tensor) -> Tensor:
    """A dense layer's output from its mixer's output (a bottleneck's BN, ReLU and 3×3 conv)."""
    return layer.conv2(layer.relu2(layer.norm2(out))) if layer.bottleneck else out


def losses(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per image: cross-entropy and correctness (float64)."""
    logits = logits.float()
    return F.cross_entropy(logits, y, reduction="none").double(), (logits.argmax(1) == y).double()


class Walk:
    """A network's eval forward pass in pieces, with each target's first op replaceable."""

    def __init__(self, model: nn.Module, layouts: list[BlockLayout]) -> None:
        self.model = model
        self.layouts = layouts
        # (source row, start, end) of each source a target reads, in its input (the plan's; sparse
        # connectivity reads fewer than every earlier row)
        self._reads = {(layout.block, t): reads for layout in layouts for t, reads in enumerate(layout.reads)}
        self._rows = {target: [r for r, _, _ in reads] for target, reads in self._reads.items()}
        self.layers = [[model.get_submodule(u.path) for u in layout.units[:-1]] for layout in layouts]
        self.ends = [model.get_submodule(layout.units[-1].path) for layout in layouts[:-1]]  # the transitions
        self._mixers = {(layout.block, t): model.get_submodule(u.mixer)
                        for layout in layouts for t, u in enumerate(layout.units)}
        self._norms = {(layout.block, t): model.get_submodule(norm)
                       for layout in layouts for t, norm in enumerate(layout.norms)}
        self.head = (len(layouts), len(layouts[-1].units) - 1)
        self.norm5 = self._norms[self.head]
        # the stem: what the first block's container follows
        container, _, first = layouts[0].units[0].path.rpartition(".")[0].rpartition(".")
        self.stem = []
        for name, m in model.get_submodule(container).named_children():
            if name == first:
                break
            self.stem.append(m)
        self.cancel: Cancel = None  # checked before every dense layer: a cancel lands within one layer

    def weight(self, target: Target) -> Tensor:
        return self.module(target).weight

    def module(self, target: Target) -> nn.Module:
        """``target``'s mixer: a dense layer's first conv, the transition's conv, the classifier."""
        return self._mixers[target]

    def norm(self, target: Target) -> nn.BatchNorm2d:
        """The BatchNorm that normalises ``target``'s input."""
        return self._norms[target]

    def depth(self, b: int) -> int:
        return len(self.layers[b - 1])

    def piece(self, target: Target, a: Tensor, start: int, end: int) -> Tensor:
        """The contribution of input channels [start, end) (``a`` holds just those) to ``target``'s
        first op, without its bias: that op is the sum of its sources' pieces (and the bias)."""
        module = self.module(target)
        w = module.weight[:, start:end]
        if isinstance(module, nn.Linear):
            return a @ w.T
        return F.conv2d(a, w, None, module.stride, module.padding, module.dilation, module.groups)

    def sources(self, target: Target) -> tuple[tuple[int, int, int], ...]:
        """(source row, start, end) of each source ``target`` reads, in increasing row order."""
        return self._reads[target]

    def rows(self, target: Target) -> list[int]:
        """The source rows ``target`` reads, in order."""
        return self._rows[target]

    def channels(self, target: Target, row: int) -> tuple[int, int]:
        """[start, end) of source ``row`` in ``target``'s input."""
        for r, start, end in self._reads[target]:
            if r == row:
                return start, end
        raise KeyError((target, row))

    def targets(self) -> list[Target]:
        return [(layout.block, t) for layout in self.layouts for t in range(len(layout.units))]

    def connections(self) -> list[tuple[Target, int]]:
        """Every real (target, source row) connection, in block, target, source order."""
        return [(t, r) for t in self.targets() for r in self.rows(t)]

    def run_stem(self, x: Tensor) -> Tensor:
        for m in self.stem:
            x = m(x)
        return x

    def run_block(self, b: int, feats: list[Tensor], first: FirstOp = _plain) -> Tensor:
        """Layers ``len(feats)``.. of block ``b`` on the features so far (``feats`` grows); the block output."""
        layers = self.layers[b - 1]
        for t in range(len(feats) - 1, len(layers)):
            check(self.cancel)
            layer, target = layers[t], (b, t)
            rows = self.rows(target)
            x = torch.cat(feats if len(rows) == len(feats) else [feats[r] for r in rows], 1)
            out = first(target, self.module(target), layer.relu1(self.norm(target)(x)))
            feats.append(after_mixer(layer, out))
        return torch.cat(feats, 1)

    def after_block(self, b: int, h: Tensor, first: FirstOp = _plain, keep: list | None = None) -> Tensor:
        """From block ``b``'s output to the logits (``keep`` collects each later block's features)."""
        for nb in range(b, len(self.layouts)):
            tr, target = self.ends[nb - 1], (nb, self.depth(nb))
            h = tr.pool(first(target, self.module(target), tr.relu(self.norm(target)(h))))
            feats = [h]
            h = self.run_block(nb + 1, feats, first)
            if keep is not None:
                keep.append(feats)
        pooled = self.pooled(h)
        if keep is not None:
            keep.append(pooled)
        return first(self.head, self.module(self.head), pooled)

    def after_transition(self, b: int, first_out: Tensor) -> Tensor:
        """From transition ``b``'s conv output (before its pool) to the logits."""
        feats = [self.ends[b - 1].pool(first_out)]
        return self.after_block(b + 1, self.run_block(b + 1, feats))

    def pooled(self, h: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(self.norm5(h)), 1), 1)

    def forward(self, x: Tensor, first: FirstOp = _plain, keep: list | None = None) -> Tensor:
        feats = [self.run_stem(x)]
        h = self.run_block(1, feats, first)
        if keep is not None:
            keep.append(feats)
        return self.after_block(1, h, first, keep)


def require_whole_network(config: Any, state_dict: Mapping[str, Tensor]) -> None:
    """One line if ``state_dict`` lacks a part of the network (a made-up part would be measured)."""
    plan = registry.plan(config)
    missing = [k for k in registry.expected_shapes(config) if k not in state_dict
               and not k.endswith("num_batches_tracked")]
    if missing:
        unit = next((u for u in plan.units if any(t.key == missing[0] for t in u.tensors)), None)
        part = ("stem" if unit is None or unit.kind != "head" else
                "classifier" if missing[0].startswith(f"{unit.mixer}.") else "final BatchNorm")
        raise DenseguiError(f"the data measures run the whole network, and this file's {part} was not "
                            f"recognised ({missing[0]!r} and {len(missing) - 1} more are missing); "
                            "the weight measures still work.")


def network(config: Any, state_dict: Mapping[str, Tensor], cancel: Cancel = None) -> Walk:
    """The eval-mode :class:`Walk` of ``state_dict``'s network (all of it), checking ``cancel`` before
    every dense layer. The data measures take one (``walk=``) so that a run of several builds the
    network once."""
    family = registry.family_of(config)
    if not family.can(REUSE):
        raise not_reusable(family)
    layouts = block_layouts(registry.plan(config))
    why = unavailable(layouts, family, "the data measures")
    if why is not None:
        raise DenseguiError(why)
    require_whole_network(config, state_dict)
    model = registry.build_model(config.replace(drop_rate=0.0, memory_efficient=False))
    model.load_state_dict(state_dict, strict=False)
    walk = Walk(model.to(memory_format=torch.channels_last).eval(), layouts)
    walk.cancel = cancel
    return walk
