"""Find the DenseNets in a state_dict by their structure, and infer their configuration.

Names are not trusted to follow one library's scheme. A *module* is a key without its last part;
a convolution is a module with a 4-D ``weight``, a BatchNorm one with running statistics (or a
1-D weight and bias), a linear layer one with a 2-D ``weight``. Then:

* **dense layer**: the part of a convolution's module path up to its last numbered name
  (``features.denseblock1.denselayer3`` in torchvision and timm, also when MONAI puts the
  convolutions under ``.layers``; ``dense1.2`` elsewhere), holding one 3×3 convolution (basic)
  or a 1×1 and a 3×3 one (bottleneck), and a BatchNorm before each;
* **dense block**: the layers numbered alike under one parent (``features.denseblock1``); their
  first convolutions take k more input channels each, k being every layer's output channels;
* **network**: the blocks numbered alike under one parent, in the order of their numbers, chained
  by **transitions**: 1×1 convolutions (with a BatchNorm) from one block's output channels to the
  next block's input;
* **head**: a BatchNorm and a weight matrix sized for the last block's output (torchvision's
  ``features.norm5`` and ``classifier``, MONAI's ``class_layers.out``, any other name);
* **stem**: the convolutions and BatchNorms left. densegui builds two stems: ``imagenet`` (one
  7×7 convolution + BatchNorm) and ``cifar`` (one 3×3 convolution, no BatchNorm).

A stem or head that is not recognised (timm's deep stem of three 3×3 convolutions, a network
without classifier) does not stop the analysis, since Figure 5 needs only the blocks and
transitions: the :class:`Layout` says what was not recognised and what that affects. Damaged
blocks (a missing tensor, a wrong shape) are refused with one line naming the tensor.

Not in the weights: ``drop_rate`` (0), ``memory_efficient`` (False) and ``input_size`` (224 for
the imagenet stem, 32 for cifar, raised to the smallest size the network accepts if needed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import ConfigError
from densegui.core.weights.reading import CheckpointError
from densegui.core.weights.scan import (
    Block,
    InferenceError,
    NotADenseNet,
    Scan,
    Shape,
    check_numbered,
    describe_kind,
    describe_stem,
    find_blocks,
    fmt,
    key_of,
    natural,
    network_root,
    not_a_densenet,
    pick,
    under,
)
from densegui.core.weights.statedict import check_matches

if TYPE_CHECKING:
    import torch

__all__ = ["InferenceError", "Layout", "NotADenseNet", "find_networks", "fit_compression", "infer_config"]


@dataclass
class Layout:
    """One DenseNet found in a state_dict.

    ``names`` maps torchvision's key names (those of ``build_model(config)``) to the keys of the
    state_dict. ``unrecognised`` lists the parts ("stem", "final BatchNorm", "classifier") that
    were not recognised: their keys are missing from ``names`` and ``config`` guesses them, so
    the renamed weights load with ``strict=True`` only when it is empty. ``notes`` says, for the
    user, what was not recognised or ignored and what that affects.
    """

    config: DenseNetConfig
    names: dict[str, str]
    root: str = ""
    notes: list[str] = field(default_factory=list)
    unrecognised: tuple[str, ...] = ()

    def rename(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The network's tensors under torchvision's names."""
        return {new: state_dict[old] for new, old in self.names.items()}


def _check_blocks(scan: Scan, blocks: list[Block]) -> tuple[int, int, bool]:
    """Check every layer against the first one; return (k, bn_size, bottleneck)."""
    first = blocks[0].layers[0]
    if first.kind == "other":
        raise InferenceError(f"{first.root!r} holds {describe_kind(scan, first)}, not a dense layer's 3×3 "
                             "convolution (basic) or 1×1 and 3×3 convolutions (bottleneck).")
    bottleneck = first.kind == "bottleneck"
    k = scan.weight(first.convs[-1])[0]
    inter = scan.weight(first.convs[0])[0] if bottleneck else k * DenseNetConfig.bn_size
    if k < 1 or inter % k:
        raise InferenceError(f"bottleneck of {first.root!r} is inconsistent: its 1×1 convolution gives {inter} "
                             f"channels, its 3×3 one gives {k} (bn_size·k must be a multiple of k).")
    for b, block in enumerate(blocks, 1):
        check_numbered([layer.index for layer in block.layers], f"block {b}'s dense layer")
        block.c0 = scan.weight(block.layers[0].convs[0])[1]
        for ell, layer in enumerate(block.layers):
            if layer.kind != first.kind:
                raise InferenceError(f"{layer.root!r} holds {describe_kind(scan, layer)}, while {first.root!r} is "
                                     f"{describe_kind(scan, first)}; every dense layer must be alike.")
            c_in = block.c0 + ell * k
            got = scan.weight(layer.convs[0])
            want = (inter, c_in, 1, 1) if bottleneck else (k, c_in, 3, 3)
            if got != want:
                raise InferenceError(f"tensor {key_of(layer.convs[0], 'weight')!r} has shape {fmt(got)}, expected "
                                     f"{fmt(want)} (k={k}, {c_in} input channels); the weights are inconsistent.")
            needed = 2 if bottleneck else 1
            if len(layer.norms) != needed:
                raise InferenceError(
                    f"the DenseNet weights are incomplete: {layer.root!r} has {len(layer.norms)} BatchNorm"
                    f"{'s' if len(layer.norms) != 1 else ''}, expected {needed} (one before each convolution).")
        block.end = block.c0 + len(block.layers) * k
    return k, inter // k, bottleneck



class _Mapper:
    """Assigns a network's modules to torchvision's names, part by part, noting what it cannot place."""

    def __init__(self, scan: Scan, owned: set[str], unowned: set[str]) -> None:
        self.scan, self.owned, self.unowned = scan, owned, unowned
        self.used: set[str] = set()
        self.names: dict[str, str] = {}  # torchvision key → the file's key
        self.notes: list[str] = []
        self.unrecognised: list[str] = []

    def take(self, canonical: str, module: str) -> None:
        self.used.add(module)
        for param in self.scan.params[module]:
            self.names[f"{canonical}.{param}"] = key_of(module, param)

    def free(self, test, *, unowned: bool = False) -> list[str]:
        """The network's modules not assigned yet that pass ``test``, in natural order."""
        return [m for m in self.scan.order if (m in self.owned or unowned and m in self.unowned)
                and m not in self.used and test(m)]

    def unknown(self, part: str, note: str) -> None:
        self.unrecognised.append(part)
        self.notes.append(note)

    def blocks(self, blocks: list[Block]) -> None:
        for b, block in enumerate(blocks, 1):
            for ell, layer in enumerate(block.layers, 1):
                for i, conv in enumerate(layer.convs, 1):
                    self.take(f"features.denseblock{b}.denselayer{ell}.conv{i}", conv)
                for i, norm in enumerate(layer.norms, 1):
                    self.take(f"features.denseblock{b}.denselayer{ell}.norm{i}", norm)

    def transitions(self, blocks: list[Block]) -> list[tuple[int, int]]:
        """(input, output) channels of each transition, found by those channel counts."""
        scan, found = self.scan, []
        for b, (block, nxt) in enumerate(zip(blocks, blocks[1:]), 1):
            conv = pick(self.free(lambda m: scan.is_conv(m) and scan.weight(m)[1:] == (block.end, 1, 1)), "conv")
            if conv is None:
                raise InferenceError(f"the DenseNet weights are incomplete: no transition after dense block {b} "
                                     f"(a 1×1 convolution from its {block.end} output channels to the "
                                     f"{nxt.c0} input channels of block {b + 1}).")
            out = scan.weight(conv)[0]
            if out != nxt.c0:
                raise InferenceError(f"tensor {key_of(conv, 'weight')!r} (the transition after dense block {b}) gives "
                                     f"{out} channels but block {b + 1} takes {nxt.c0}; the weights are inconsistent.")
            owner = conv.rpartition(".")[0]
            norm = pick(self.free(lambda m: bool(owner) and m.startswith(owner + ".") and scan.is_norm(m)), "norm")
            if norm is None:
                raise InferenceError(f"the DenseNet weights are incomplete: the transition after dense block {b} "
                                     f"({owner or conv!r}) has no BatchNorm of {block.end} channels before its "
                                     "convolution.")
            self.take(f"features.transition{b}.conv", conv)
            self.take(f"features.transition{b}.norm", norm)
            found.append((block.end, out))
        return found

    def head(self, final: int) -> int:
        """The final BatchNorm and the classifier, found by their sizes; returns the number of classes."""
        scan, num_classes = self.scan, DenseNetConfig.num_classes
        classifier = pick(self.free(lambda m: scan.is_linear(m) and scan.weight(m)[1] == final, unowned=True),
                           "classifier")
        if classifier is None:
            self.unknown("classifier", f"no classifier found (a weight matrix N×{final} after the last block): the "
                                       "last block's classifier column stays empty, and the configuration's "
                                       f"{num_classes} classes are a placeholder")
        else:
            num_classes = scan.weight(classifier)[0]
            self.take("classifier", classifier)
            if scan.params[classifier].get("bias") != (num_classes,):
                self.unknown("classifier bias", f"the classifier {classifier!r} has no bias of {num_classes}: the "
                                                f"model densegui builds has one, so the summary counts {num_classes} "
                                                "parameters more")
        norm5 = pick(self.free(lambda m: scan.is_norm(m) and scan.norm_size(m) == final), "norm5")
        if norm5 is None:
            self.unknown("final BatchNorm", f"no final BatchNorm of {final} channels found: the summary counts one "
                                            "the file does not have")
        else:
            self.take("features.norm5", norm5)
        return num_classes

    def stem(self, c0: int) -> tuple[str, int]:
        """densegui's stem for what is left before the first block (which takes ``c0`` channels); in_channels."""
        scan = self.scan
        convs, norms = self.free(scan.is_conv), self.free(scan.is_norm)
        one = len(convs) == 1 and scan.weight(convs[0])[0] == c0
        kernel = scan.weight(convs[0])[2:] if one else None
        in_ch = scan.weight(convs[0])[1] if convs else 3
        if kernel == (7, 7) and len(norms) == 1 and scan.norm_size(norms[0]) == c0:
            self.take("features.conv0", convs[0])
            self.take("features.norm0", norms[0])
            return "imagenet", in_ch
        if kernel == (3, 3) and not norms:
            self.take("features.conv0", convs[0])
            return "cifar", in_ch
        stem = "imagenet" if norms or len(convs) != 1 else "cifar"
        shown = "a 7×7 convolution and a BatchNorm" if stem == "imagenet" else "one 3×3 convolution"
        self.unknown("stem", f"stem not recognised ({describe_stem(scan, convs, norms)} before the first block, "
                             f"which takes {c0} channels): the heatmaps do not need it, but the configuration shows "
                             f"densegui's {stem} stem ({shown}) instead, so the summary cannot rebuild the file's stem"
                             + ("" if convs else "; 3 input channels assumed"))
        self.used.update(convs + norms)
        return stem, in_ch

    def leftovers(self) -> None:
        ignored = self.free(lambda m: bool(self.scan.params[m]))
        for m in ignored:  # a bias without its weight is a damaged file, not an unknown part
            if "bias" in self.scan.params[m] and "weight" not in self.scan.params[m]:
                raise InferenceError(f"the DenseNet weights are incomplete: tensor {key_of(m, 'bias')!r} is there "
                                     f"but {key_of(m, 'weight')!r} is missing.")
        if ignored:
            shown = ", ".join(repr(key_of(m, next(iter(self.scan.params[m])))) for m in ignored[:3])
            self.notes.append(f"ignored {len(ignored)} module{'s' if len(ignored) > 1 else ''} the DenseNet has no "
                              f"place for ({shown}{', …' if len(ignored) > 3 else ''})")


def _network(scan: Scan, blocks: list[Block], root: str, owned: set[str], unowned: set[str],
             input_size: int | None) -> Layout:
    blocks.sort(key=lambda block: (block.number if block.number is not None else -1, natural(block.path)))
    numbers = [block.number for block in blocks if block.number is not None]
    if len(numbers) == len(blocks):
        check_numbered(numbers, "dense block")
    k, bn_size, bottleneck = _check_blocks(scan, blocks)
    mapper = _Mapper(scan, owned, unowned)
    mapper.blocks(blocks)
    transitions = mapper.transitions(blocks)
    num_classes = mapper.head(blocks[-1].end)
    c0 = blocks[0].c0
    stem, in_ch = mapper.stem(c0)
    mapper.leftovers()

    cfg = DenseNetConfig(growth_rate=k, block_depths=tuple(len(block.layers) for block in blocks),
                         compression=fit_compression(transitions), bottleneck=bottleneck, bn_size=bn_size,
                         init_features=None if c0 == 2 * k else c0, stem=stem, in_channels=in_ch,
                         num_classes=num_classes, input_size=input_size or (224 if stem == "imagenet" else 32))
    if input_size is None and cfg.spatial_sizes()[-1] < 1:
        cfg = cfg.replace(input_size=cfg.min_input_size())
    try:
        cfg = cfg.validate()
    except ConfigError as exc:
        raise InferenceError(f"the inferred configuration is not supported: {exc}") from None
    shapes = {}
    for canonical, key in mapper.names.items():
        module, _, param = key.rpartition(".")
        shapes[canonical] = _Shaped(scan.params[module][param])
    try:
        check_matches(shapes, cfg, names={c.rpartition(".")[0]: o.rpartition(".")[0] for c, o in mapper.names.items()},
                      optional=tuple(prefix for part in mapper.unrecognised for prefix in _OPTIONAL[part]))
    except CheckpointError as exc:
        raise InferenceError(str(exc)) from None
    return Layout(cfg, mapper.names, root, mapper.notes, tuple(mapper.unrecognised))


# Keys of build_model's state_dict that each unrecognised part leaves out.
_OPTIONAL = {"stem": ("features.conv0.", "features.norm0."), "classifier": ("classifier.",),
             "classifier bias": ("classifier.bias",), "final BatchNorm": ("features.norm5.",)}


class _Shaped:
    """A shape standing in for a tensor in :func:`check_matches`."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape




def find_networks(state_dict: Mapping[str, torch.Tensor], *, input_size: int | None = None) -> list[Layout]:
    """Every DenseNet in ``state_dict``, in the order of their names (usually one).

    Each module belongs to the network with the longest root that contains it; a head outside
    every root (``backbone.features…`` next to ``head.fc``) can be found too.
    """
    scan = Scan(state_dict)
    # The growth shows only with two layers: one lone 3×3 convolution under a numbered name is no DenseNet.
    networks = {net: blocks for net, blocks in find_blocks(scan).items()
                if len(blocks) > 1 or len(blocks[0].layers) > 1}
    if not networks:
        raise not_a_densenet(scan, list(state_dict))
    roots = {net: network_root(net[0]) for net in networks}
    owner: dict[str, tuple[str, str] | None] = {}
    for m in scan.order:
        holders = [net for net, root in roots.items() if under(m, root)]
        owner[m] = max(holders, key=lambda net: len(roots[net])) if holders else None
    unowned = {m for m, net in owner.items() if net is None}
    layouts = []
    for net in sorted(networks, key=lambda n: natural(roots[n])):
        owned = {m for m, holder in owner.items() if holder == net}
        layouts.append(_network(scan, networks[net], roots[net], owned, unowned, input_size))
    return layouts


def infer_config(state_dict: Mapping[str, torch.Tensor], *, input_size: int | None = None) -> DenseNetConfig:
    """The configuration whose model loads ``state_dict`` with ``strict=True`` once renamed to
    torchvision's names (prefixes, legacy keys, timm's and MONAI's names are accepted).

    Stricter than :func:`find_networks`: one network, whose stem and head are recognised."""
    layouts = find_networks(state_dict, input_size=input_size)
    if len(layouts) > 1:
        roots = ", ".join(repr(layout.root) for layout in layouts)
        raise InferenceError(f"the state_dict holds {len(layouts)} DenseNets (under {roots}); expected one.")
    if layouts[0].unrecognised:
        raise InferenceError(f"{layouts[0].notes[0]}.")
    return layouts[0].config


def fit_compression(transitions: list[tuple[int, int]]) -> float:
    """The simplest θ in (0, 1] with ⌊θ·m⌋ = out for every (m, out) pair.

    Each pair allows θ ∈ [out/m, (out+1)/m); the result is the shortest
    decimal in the intersection (0.5 rather than 0.50347…).
    """
    if not transitions:
        return DenseNetConfig.compression
    lo = max(o / m for m, o in transitions)
    hi = min((o + 1) / m for m, o in transitions)
    hi = min(hi, 1.0 + 1e-12)

    def fits(theta: float) -> bool:
        probe = DenseNetConfig(compression=theta)
        return 0.0 < theta <= 1.0 and all(probe.transition_out(m) == o for m, o in transitions)

    for digits in range(1, 13):
        scale = 10 ** digits
        theta = math.ceil(lo * scale - 1e-9) / scale
        if theta < hi and fits(theta):
            return theta
    if lo < hi and fits(lo):
        return lo
    parts = ", ".join(f"transition {i + 1}: {m}→{o}" for i, (m, o) in enumerate(transitions))
    raise InferenceError(
        f"no single compression θ gives every transition's output channels as ⌊θ·m⌋ ({parts}); "
        f"densegui's config has one θ for all transitions.")

