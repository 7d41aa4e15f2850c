"""Find the DenseNets in a state_dict by their structure, and infer their configuration.

Names are not trusted to follow one library's scheme: :mod:`densegui.core.weights.scan` finds
the dense layers, blocks and networks by shapes and numbered names (``features.denseblock1.
denselayer3`` in torchvision and timm, MONAI's ``.layers``, ``dense1.2`` elsewhere). Each part is
then placed and checked with the shapes the DenseNet plan (:mod:`densegui.core.arch.densenet.plan`)
gives it, and named as the plan names it:

* **dense blocks**: every layer as the plan's block of that growth rate and layer kind (basic, or
  bottleneck) has it, for the input channels the block's first layer reads;
* **transitions**: the 1×1 convolution and BatchNorm the plan puts between a block's output and
  the next block's input; one compression θ must give them all (:func:`fit_compression`);
* **head**: the final BatchNorm and the weight matrix of the last block's output channels
  (torchvision's ``features.norm5`` and ``classifier``, MONAI's ``class_layers.out``, any name);
* **stem**: the convolutions and BatchNorms left, shape by shape against each of densegui's stems
  (torchvision's 7×7 one, the CIFAR 3×3 one, timm's deep stem of three 3×3 convolutions).

A stem or head that is not recognised (a network without classifier) does not stop the analysis,
since Figure 5 needs only the blocks and transitions: the :class:`Layout` says what was not
recognised and what that affects. Damaged blocks (a missing tensor, a wrong shape) are refused
with one line naming the tensor; the whole is checked against the plan's state dict at the end.

Not in the weights: ``drop_rate`` (0), ``memory_efficient`` (False) and ``input_size`` (32 for
the cifar stem, 224 for the others, raised to the smallest size the network accepts if needed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import pairwise
from typing import TYPE_CHECKING

from densegui.core.arch.densenet.config import STEMS, DenseNetConfig
from densegui.core.arch.densenet.connectivity import infer as infer_connectivity
from densegui.core.arch.densenet.plan import dense_block
from densegui.core.arch.densenet.plan import head as plan_head
from densegui.core.arch.densenet.plan import plan as dense_plan
from densegui.core.arch.densenet.plan import stem as plan_stem
from densegui.core.arch.densenet.plan import transition as plan_transition
from densegui.core.errors import ConfigError
from densegui.core.weights.reading import CheckpointError
from densegui.core.weights.scan import (
    Block,
    InferenceError,
    Layout,
    NotADenseNet,
    Scan,
    Shape,
    check_numbered,
    describe_kind,
    describe_stem,
    fmt,
    key_of,
    natural,
    networks_of,
    not_a_densenet,
    pick,
    unit_convs,
    unit_linears,
    unit_modules,
    unit_norms,
)
from densegui.core.weights.statedict import check_matches

if TYPE_CHECKING:
    import torch

    from densegui.core.arch.plan import Plan

__all__ = ["InferenceError", "Layout", "NotADenseNet", "find_networks", "fit_compression", "infer_config"]


def _last(module: str) -> str:
    return module.rpartition(".")[2]


def _check_blocks(scan: Scan, blocks: list[Block]) -> DenseNetConfig:
    """Check every layer against the plan's for its block's input channels (read from the file);
    return the configuration so far (k, bn_size, bottleneck, depths; not validated)."""
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
    shape = DenseNetConfig(growth_rate=k, bn_size=inter // k, bottleneck=bottleneck,
                           block_depths=tuple(len(block.layers) for block in blocks))
    # Which earlier feature maps each layer reads shows in its first conv's input channels.
    reads = [([scan.weight(layer.convs[0])[1] for layer in block.layers], scan.weight(block.layers[0].convs[0])[1])
             for block in blocks]
    if all(layer.kind == first.kind for block in blocks for layer in block.layers):
        spec = infer_connectivity(reads, k)
        if spec is not None:
            shape = shape.replace(connectivity=spec)
    for b, block in enumerate(blocks, 1):
        check_numbered([layer.index for layer in block.layers], f"block {b}'s dense layer")
        block.c0 = scan.weight(block.layers[0].convs[0])[1]
        block.units, block.end = dense_block(shape, b, block.c0)
        for layer, unit in zip(block.layers, block.units):
            if layer.kind != first.kind:
                raise InferenceError(f"{layer.root!r} holds {describe_kind(scan, layer)}, while {first.root!r} is "
                                     f"{describe_kind(scan, first)}; every dense layer must be alike.")
            got, want = scan.weight(layer.convs[0]), unit_convs(unit)[0][1]
            if got != want:
                raise InferenceError(f"tensor {key_of(layer.convs[0], 'weight')!r} has shape {fmt(got)}, expected "
                                     f"{fmt(want)} (k={k}, {unit.in_channels} input channels); the weights are "
                                     "inconsistent (no dense, log or window:W connectivity reads those channels).")
            needed = len(unit_norms(unit))
            if len(layer.norms) != needed:
                raise InferenceError(
                    f"the DenseNet weights are incomplete: {layer.root!r} has {len(layer.norms)} BatchNorm"
                    f"{'s' if len(layer.norms) != 1 else ''}, expected {needed} (one before each convolution).")
    return shape


# The pooling after a deep stem leaves nothing in the weights.
_BLUR = ("deep stem read as timm's densenet264d has it, with max pooling: timm's densenetblur121d has the "
         "same weights but blur-pools, so its activations differ from densegui's model from the stem on")


class _Mapper:
    """Assigns a network's modules to the plan's (torchvision's) names, part by part, finding each
    part by the shapes the plan gives it and noting what it cannot place."""

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
        for block in blocks:
            for layer, unit in zip(block.layers, block.units):
                for (canonical, _), conv in zip(unit_convs(unit), layer.convs):
                    self.take(canonical, conv)
                for (canonical, _), norm in zip(unit_norms(unit), layer.norms):
                    self.take(canonical, norm)

    def transitions(self, blocks: list[Block]) -> list[tuple[int, int]]:
        """(input, output) channels of each transition, found by the plan's shapes for them."""
        scan, found = self.scan, []
        for b, (block, nxt) in enumerate(pairwise(blocks), 1):
            unit = plan_transition(b, block.end, nxt.c0)
            (conv_name, want), = unit_convs(unit)
            (norm_name, _), = unit_norms(unit)
            conv = pick(self.free(lambda m, want=want: scan.is_conv(m) and scan.weight(m)[1:] == want[1:]),
                        _last(conv_name))
            if conv is None:
                raise InferenceError(f"the DenseNet weights are incomplete: no transition after dense block {b} "
                                     f"(a 1×1 convolution from its {block.end} output channels to the "
                                     f"{nxt.c0} input channels of block {b + 1}).")
            out = scan.weight(conv)[0]
            if out != want[0]:
                raise InferenceError(f"tensor {key_of(conv, 'weight')!r} (the transition after dense block {b}) gives "
                                     f"{out} channels but block {b + 1} takes {nxt.c0}; the weights are inconsistent.")
            owner = conv.rpartition(".")[0]
            norm = pick(self.free(lambda m, owner=owner: bool(owner) and m.startswith(owner + ".") and scan.is_norm(m)),
                        _last(norm_name))
            if norm is None:
                raise InferenceError(f"the DenseNet weights are incomplete: the transition after dense block {b} "
                                     f"({owner or conv!r}) has no BatchNorm of {block.end} channels before its "
                                     "convolution.")
            self.take(conv_name, conv)
            self.take(norm_name, norm)
            found.append((block.end, out))
        return found

    def head(self, final: int) -> int:
        """The final BatchNorm and the classifier, found by the plan's sizes; returns the number of classes."""
        scan, num_classes = self.scan, DenseNetConfig.num_classes
        (classifier_name, want), = unit_linears(plan_head(final, num_classes))
        (norm_name, norm_size), = unit_norms(plan_head(final, num_classes))
        classifier = pick(self.free(lambda m: scan.is_linear(m) and scan.weight(m)[1] == want["weight"][1],
                                    unowned=True), _last(classifier_name))
        if classifier is None:
            self.unknown("classifier", f"no classifier found (a weight matrix N×{final} after the last block): the "
                                       "last block's classifier column stays empty, and the configuration's "
                                       f"{num_classes} classes are a placeholder")
        else:
            num_classes = scan.weight(classifier)[0]
            self.take(classifier_name, classifier)
            if scan.params[classifier].get("bias") != unit_linears(plan_head(final, num_classes))[0][1]["bias"]:
                self.unknown("classifier bias", f"the classifier {classifier!r} has no bias of {num_classes}: the "
                                                f"model densegui builds has one, so the summary counts {num_classes} "
                                                "parameters more")
        norm5 = pick(self.free(lambda m: scan.is_norm(m) and scan.norm_size(m) == norm_size), _last(norm_name))
        if norm5 is None:
            self.unknown("final BatchNorm", f"no final BatchNorm of {final} channels found: the summary counts one "
                                            "the file does not have")
        else:
            self.take(norm_name, norm5)
        return num_classes

    def stem(self, shape: DenseNetConfig, c0: int) -> tuple[str, int]:
        """The densegui stem whose plan is what is left before the first block (which takes ``c0``
        channels), convolution by convolution and BatchNorm by BatchNorm; in_channels."""
        scan = self.scan
        convs, norms = self.free(scan.is_conv), self.free(scan.is_norm)
        in_ch = scan.weight(convs[0])[1] if convs else 3
        for name in STEMS:
            unit = plan_stem(shape.replace(stem=name, init_features=c0, in_channels=in_ch), size=1)
            want_convs, want_norms = unit_convs(unit), unit_norms(unit)
            if ([scan.weight(c) for c in convs] == [s for _, s in want_convs]
                    and [scan.norm_size(n) for n in norms] == [c for _, c in want_norms]):
                for (canonical, _), module in zip(want_convs + want_norms, convs + norms):
                    self.take(canonical, module)
                if name == "deep":
                    self.notes.append(_BLUR)
                return name, in_ch
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
    shape = _check_blocks(scan, blocks)
    mapper = _Mapper(scan, owned, unowned)
    mapper.blocks(blocks)
    transitions = mapper.transitions(blocks)
    num_classes = mapper.head(blocks[-1].end)
    c0 = blocks[0].c0
    stem, in_ch = mapper.stem(shape, c0)
    mapper.leftovers()

    cfg = shape.replace(compression=fit_compression(transitions), init_features=None if c0 == 2 * shape.growth_rate
                        else c0, stem=stem, in_channels=in_ch, num_classes=num_classes,
                        input_size=input_size or (32 if stem == "cifar" else 224))
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
    p = dense_plan(cfg)
    try:
        check_matches(shapes, cfg, names={c.rpartition(".")[0]: o.rpartition(".")[0] for c, o in mapper.names.items()},
                      optional=tuple(prefix for part in mapper.unrecognised for prefix in _optional(p, part)))
    except CheckpointError as exc:
        raise InferenceError(str(exc)) from None
    return Layout(cfg, mapper.names, root, mapper.notes, tuple(mapper.unrecognised))


def _optional(p: Plan, part: str) -> tuple[str, ...]:
    """Key prefixes of ``build_model``'s state_dict that an unrecognised ``part`` leaves out."""
    if part == "stem":
        return tuple(f"{m}." for m in unit_modules(p.of_kind("stem")[0]))
    head = p.of_kind("head")[0]
    if part == "classifier":
        return (f"{head.mixer}.",)
    if part == "classifier bias":
        return (f"{head.mixer}.bias",)
    return tuple(f"{m}." for m in unit_modules(head) if m != head.mixer)  # the final BatchNorm


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
    networks, unowned = networks_of(scan)
    if not networks:
        raise not_a_densenet(scan, list(state_dict))
    return [_network(scan, blocks, root, owned, unowned, input_size) for blocks, root, owned in networks]


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

