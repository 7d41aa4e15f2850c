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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import ConfigError, DenseguiError
from densegui.core.weights.statedict import CheckpointError, check_matches, is_tensor

if TYPE_CHECKING:
    import torch

_NUMBERED = re.compile(r"^(.*?)(\d+)$")
Shape = tuple[int, ...]


class InferenceError(DenseguiError):
    """A state_dict whose DenseNet configuration cannot be worked out."""


class NotADenseNet(InferenceError):
    """A state_dict without any dense block."""


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


def _natural(text: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t]


def _fmt(shape: Shape) -> str:
    return "×".join(map(str, shape)) or "scalar"


def _under(path: str, root: str) -> bool:
    return not root or path == root or path.startswith(root + ".")


def _key(module: str, param: str) -> str:
    return f"{module}.{param}" if module else param


class _Scan:
    """The modules of a state_dict: path → {parameter name: shape}, and their kinds."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.params: dict[str, dict[str, Shape]] = {}
        for key, value in state_dict.items():
            module, _, param = key.rpartition(".")
            self.params.setdefault(module, {})[param] = tuple(value.shape)
        self.order = sorted(self.params, key=_natural)

    def weight(self, m: str) -> Shape | None:
        return self.params[m].get("weight")

    def is_conv(self, m: str) -> bool:
        w = self.weight(m)
        return w is not None and len(w) == 4

    def is_linear(self, m: str) -> bool:
        w = self.weight(m)
        return w is not None and len(w) == 2

    def is_norm(self, m: str) -> bool:
        p, w = self.params[m], self.weight(m)
        return "running_mean" in p or "running_var" in p or (w is not None and len(w) == 1 and "bias" in p)

    def norm_size(self, m: str) -> int:
        p = self.params[m]
        sizes = [s[0] for name in ("weight", "running_mean", "bias", "running_var") if len(s := p.get(name, ())) == 1]
        return sizes[0] if sizes else 0


@dataclass
class _Layer:
    root: str
    index: int
    convs: list[str]  # in order: the first convolution (the one Figure 5 reads), then the 3×3 one of a bottleneck
    norms: list[str]
    kind: str  # "basic", "bottleneck" or "other"


@dataclass
class _Block:
    path: str
    number: int | None
    layers: list[_Layer]
    c0: int = 0
    end: int = 0


def _kind(scan: _Scan, convs: list[str]) -> tuple[str, list[str]]:
    kernels = [scan.weight(c)[2:] for c in convs]
    if kernels == [(3, 3)]:
        return "basic", convs
    if sorted(kernels) == [(1, 1), (3, 3)]:
        return "bottleneck", sorted(convs, key=lambda c: scan.weight(c)[2])
    return "other", convs


def _describe_kind(scan: _Scan, layer: _Layer) -> str:
    if layer.kind == "basic":
        return "a basic layer (one 3×3 convolution)"
    if layer.kind == "bottleneck":
        return "a bottleneck layer (a 1×1, then a 3×3 convolution)"
    kernels = ", ".join("×".join(map(str, scan.weight(c)[2:])) for c in layer.convs)
    return f"{len(layer.convs)} convolution{'s' if len(layer.convs) > 1 else ''} ({kernels})"


def _layers(scan: _Scan) -> dict[tuple[str, str], list[_Layer]]:
    """Candidate dense layers, grouped by (parent path, name before the number)."""
    roots: dict[str, tuple[tuple[str, str], int, list[str]]] = {}
    for m in scan.order:
        if not scan.is_conv(m):
            continue
        tokens = m.rpartition(".")[0].split(".") if "." in m else []
        for i in range(len(tokens) - 1, -1, -1):
            found = _NUMBERED.match(tokens[i])
            if found:
                root = ".".join(tokens[: i + 1])
                roots.setdefault(root, ((".".join(tokens[:i]), found.group(1)), int(found.group(2)), []))[2].append(m)
                break
    groups: dict[tuple[str, str], list[_Layer]] = {}
    for root, (group, index, convs) in roots.items():
        kind, ordered = _kind(scan, convs)
        norms = [m for m in scan.order if m.startswith(root + ".") and scan.is_norm(m)]
        groups.setdefault(group, []).append(_Layer(root, index, ordered, norms, kind))
    return groups


def _blocks(scan: _Scan) -> dict[tuple[str, str], list[_Block]]:
    """Dense blocks (groups whose layers are mostly dense layers), grouped into networks."""
    networks: dict[tuple[str, str], list[_Block]] = {}
    for (path, _name), layers in _layers(scan).items():
        dense = sum(layer.kind != "other" for layer in layers)
        if not dense or 2 * dense < len(layers):
            continue
        tokens = path.split(".") if path else []
        net: tuple[str, str] = (path.rpartition(".")[0], "")
        number = None
        for i in range(len(tokens) - 1, -1, -1):
            found = _NUMBERED.match(tokens[i])
            if found:
                net, number = (".".join(tokens[:i]), found.group(1)), int(found.group(2))
                break
        networks.setdefault(net, []).append(_Block(path, number, sorted(layers, key=lambda layer: layer.index)))
    return networks


def _root(container: str) -> str:
    """The network's own prefix: its blocks' container, above torchvision's ``features``."""
    head, _, last = container.rpartition(".")
    return head if last == "features" else container


def _missing(numbers: list[int], what: str) -> None:
    start = 0 if min(numbers) == 0 else 1
    gaps = sorted(set(range(start, max(numbers) + 1)) - set(numbers))
    if gaps:
        raise InferenceError(f"the DenseNet weights are incomplete: {what} {gaps[0]} is missing "
                             f"(found up to {max(numbers)}).")


def _check_blocks(scan: _Scan, blocks: list[_Block]) -> tuple[int, int, bool]:
    """Check every layer against the first one; return (k, bn_size, bottleneck)."""
    first = blocks[0].layers[0]
    if first.kind == "other":
        raise InferenceError(f"{first.root!r} holds {_describe_kind(scan, first)}, not a dense layer's 3×3 "
                             "convolution (basic) or 1×1 and 3×3 convolutions (bottleneck).")
    bottleneck = first.kind == "bottleneck"
    k = scan.weight(first.convs[-1])[0]
    inter = scan.weight(first.convs[0])[0] if bottleneck else k * DenseNetConfig.bn_size
    if k < 1 or inter % k:
        raise InferenceError(f"bottleneck of {first.root!r} is inconsistent: its 1×1 convolution gives {inter} "
                             f"channels, its 3×3 one gives {k} (bn_size·k must be a multiple of k).")
    for b, block in enumerate(blocks, 1):
        _missing([layer.index for layer in block.layers], f"block {b}'s dense layer")
        block.c0 = scan.weight(block.layers[0].convs[0])[1]
        for ell, layer in enumerate(block.layers):
            if layer.kind != first.kind:
                raise InferenceError(f"{layer.root!r} holds {_describe_kind(scan, layer)}, while {first.root!r} is "
                                     f"{_describe_kind(scan, first)}; every dense layer must be alike.")
            c_in = block.c0 + ell * k
            got = scan.weight(layer.convs[0])
            want = (inter, c_in, 1, 1) if bottleneck else (k, c_in, 3, 3)
            if got != want:
                raise InferenceError(f"tensor {_key(layer.convs[0], 'weight')!r} has shape {_fmt(got)}, expected "
                                     f"{_fmt(want)} (k={k}, {c_in} input channels); the weights are inconsistent.")
            needed = 2 if bottleneck else 1
            if len(layer.norms) != needed:
                raise InferenceError(
                    f"the DenseNet weights are incomplete: {layer.root!r} has {len(layer.norms)} BatchNorm"
                    f"{'s' if len(layer.norms) != 1 else ''}, expected {needed} (one before each convolution).")
        block.end = block.c0 + len(block.layers) * k
    return k, inter // k, bottleneck


def _pick(candidates: list[str], prefer: str) -> str | None:
    if not candidates:
        return None
    named = [c for c in candidates if c.rpartition(".")[2] == prefer]
    return (named or candidates)[0]


def _describe_stem(scan: _Scan, convs: list[str], norms: list[str]) -> str:
    if not convs:
        return "no stem convolution"
    kernels = ", ".join("×".join(map(str, scan.weight(c)[2:])) for c in convs)
    bn = f" and {len(norms)} BatchNorm{'s' if len(norms) != 1 else ''}" if norms else ", no BatchNorm"
    return f"{len(convs)} convolution{'s' if len(convs) > 1 else ''} ({kernels}){bn}"


class _Mapper:
    """Assigns a network's modules to torchvision's names, part by part, noting what it cannot place."""

    def __init__(self, scan: _Scan, owned: set[str], unowned: set[str]) -> None:
        self.scan, self.owned, self.unowned = scan, owned, unowned
        self.used: set[str] = set()
        self.names: dict[str, str] = {}  # torchvision key → the file's key
        self.notes: list[str] = []
        self.unrecognised: list[str] = []

    def take(self, canonical: str, module: str) -> None:
        self.used.add(module)
        for param in self.scan.params[module]:
            self.names[f"{canonical}.{param}"] = _key(module, param)

    def free(self, test, *, unowned: bool = False) -> list[str]:
        """The network's modules not assigned yet that pass ``test``, in natural order."""
        return [m for m in self.scan.order if (m in self.owned or unowned and m in self.unowned)
                and m not in self.used and test(m)]

    def unknown(self, part: str, note: str) -> None:
        self.unrecognised.append(part)
        self.notes.append(note)

    def blocks(self, blocks: list[_Block]) -> None:
        for b, block in enumerate(blocks, 1):
            for ell, layer in enumerate(block.layers, 1):
                for i, conv in enumerate(layer.convs, 1):
                    self.take(f"features.denseblock{b}.denselayer{ell}.conv{i}", conv)
                for i, norm in enumerate(layer.norms, 1):
                    self.take(f"features.denseblock{b}.denselayer{ell}.norm{i}", norm)

    def transitions(self, blocks: list[_Block]) -> list[tuple[int, int]]:
        """(input, output) channels of each transition, found by those channel counts."""
        scan, found = self.scan, []
        for b, (block, nxt) in enumerate(zip(blocks, blocks[1:]), 1):
            conv = _pick(self.free(lambda m: scan.is_conv(m) and scan.weight(m)[1:] == (block.end, 1, 1)), "conv")
            if conv is None:
                raise InferenceError(f"the DenseNet weights are incomplete: no transition after dense block {b} "
                                     f"(a 1×1 convolution from its {block.end} output channels to the "
                                     f"{nxt.c0} input channels of block {b + 1}).")
            out = scan.weight(conv)[0]
            if out != nxt.c0:
                raise InferenceError(f"tensor {_key(conv, 'weight')!r} (the transition after dense block {b}) gives "
                                     f"{out} channels but block {b + 1} takes {nxt.c0}; the weights are inconsistent.")
            owner = conv.rpartition(".")[0]
            norm = _pick(self.free(lambda m: bool(owner) and m.startswith(owner + ".") and scan.is_norm(m)), "norm")
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
        classifier = _pick(self.free(lambda m: scan.is_linear(m) and scan.weight(m)[1] == final, unowned=True),
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
        norm5 = _pick(self.free(lambda m: scan.is_norm(m) and scan.norm_size(m) == final), "norm5")
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
        self.unknown("stem", f"stem not recognised ({_describe_stem(scan, convs, norms)} before the first block, "
                             f"which takes {c0} channels): the heatmaps do not need it, but the configuration shows "
                             f"densegui's {stem} stem ({shown}) instead, so the summary cannot rebuild the file's stem"
                             + ("" if convs else "; 3 input channels assumed"))
        self.used.update(convs + norms)
        return stem, in_ch

    def leftovers(self) -> None:
        ignored = self.free(lambda m: bool(self.scan.params[m]))
        for m in ignored:  # a bias without its weight is a damaged file, not an unknown part
            if "bias" in self.scan.params[m] and "weight" not in self.scan.params[m]:
                raise InferenceError(f"the DenseNet weights are incomplete: tensor {_key(m, 'bias')!r} is there "
                                     f"but {_key(m, 'weight')!r} is missing.")
        if ignored:
            shown = ", ".join(repr(_key(m, next(iter(self.scan.params[m])))) for m in ignored[:3])
            self.notes.append(f"ignored {len(ignored)} module{'s' if len(ignored) > 1 else ''} the DenseNet has no "
                              f"place for ({shown}{', …' if len(ignored) > 3 else ''})")


def _network(scan: _Scan, blocks: list[_Block], root: str, owned: set[str], unowned: set[str],
             input_size: int | None) -> Layout:
    blocks.sort(key=lambda block: (block.number if block.number is not None else -1, _natural(block.path)))
    numbers = [block.number for block in blocks if block.number is not None]
    if len(numbers) == len(blocks):
        _missing(numbers, "dense block")
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


def _not_a_densenet(scan: _Scan, keys: list[str]) -> NotADenseNet:
    sample = ", ".join(repr(k) for k in keys[:3]) or "no tensors"
    dims = sorted({len(w) for m in scan.order if (w := scan.weight(m)) is not None and len(w) in (3, 5)})
    if dims and not any(scan.is_conv(m) for m in scan.order):
        return NotADenseNet(f"not a DenseNet state_dict densegui can show: its convolutions are {dims[0] - 2}-D "
                              f"({dims[0]}-dimensional weights, e.g. {sample}); densegui handles 2-D DenseNets.")
    return NotADenseNet(
        "not a DenseNet state_dict: no dense block found (numbered layers whose first convolutions take k more input "
        "channels each, as in 'features.denseblock1.denselayer1.conv1.weight'); "
        f"found {len(keys)} tensor{'s' if len(keys) != 1 else ''}: {sample}{', …' if len(keys) > 3 else ''}.")


def find_networks(state_dict: Mapping[str, torch.Tensor], *, input_size: int | None = None) -> list[Layout]:
    """Every DenseNet in ``state_dict``, in the order of their names (usually one).

    Each module belongs to the network with the longest root that contains it; a head outside
    every root (``backbone.features…`` next to ``head.fc``) can be found too.
    """
    scan = _Scan(state_dict)
    # The growth shows only with two layers: one lone 3×3 convolution under a numbered name is no DenseNet.
    networks = {net: blocks for net, blocks in _blocks(scan).items()
                if len(blocks) > 1 or len(blocks[0].layers) > 1}
    if not networks:
        raise _not_a_densenet(scan, list(state_dict))
    roots = {net: _root(net[0]) for net in networks}
    owner: dict[str, tuple[str, str] | None] = {}
    for m in scan.order:
        holders = [net for net, root in roots.items() if _under(m, root)]
        owner[m] = max(holders, key=lambda net: len(roots[net])) if holders else None
    unowned = {m for m, net in owner.items() if net is None}
    layouts = []
    for net in sorted(networks, key=lambda n: _natural(roots[n])):
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


# ------------------------------------------------------------------ the DenseNets in a loaded file
# How load_checkpoint picks among several DenseNets in one file (model and EMA copy, …).
CHOICE_RULE = "the trained weights before EMA copies, then the least nested, then the first in the file"
_EMA = re.compile(r"(?:^|[^a-z])ema(?:[^a-z]|$)", re.IGNORECASE)


@dataclass
class Candidate:
    """One DenseNet in a file: its name (the keys leading to its state_dict, then its prefix:
    ``"state_dict/model"``), that state_dict and its :class:`Layout` (None: densegui's own names)."""

    name: str
    tensors: Mapping[str, torch.Tensor]
    layout: Layout | None
    depth: int = 0
    order: int = 0


def _tensor_mappings(obj: Any, path: tuple[str, ...] = (), depth: int = 0) -> list[tuple[tuple[str, ...], dict]]:
    """Every mapping in ``obj`` holding tensors under string keys, with the keys leading to it."""
    found = []
    if isinstance(obj, Mapping):
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and is_tensor(v)}
        if tensors:
            found.append((path, tensors))
        items: Any = obj.items()
    elif isinstance(obj, (list, tuple)) and len(obj) <= 10_000:
        items = enumerate(obj)
    else:
        return found
    if depth < 6:
        for key, value in items:
            if isinstance(value, (Mapping, list, tuple)):
                found += _tensor_mappings(value, (*path, str(key)), depth + 1)
    return found


def _what(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = ", ".join(map(repr, list(obj)[:4])) + (", …" if len(obj) > 4 else "")
        return f"a {type(obj).__name__} with keys {keys}" if obj else f"an empty {type(obj).__name__}"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items ({sum(is_tensor(v) for v in obj)} tensors)"
    return f"a {type(obj).__name__}"


def find_candidates(obj: Any, name: str) -> list[Candidate]:
    """The DenseNets anywhere in a loaded object (nested dicts and lists), ordered by
    :data:`CHOICE_RULE`; CheckpointError (one line, prefixed with the file ``name``) if none."""
    found: list[Candidate] = []
    refusals: list[InferenceError] = []
    mappings = _tensor_mappings(obj)
    for path, tensors in mappings:
        try:
            layouts = find_networks(tensors)
        except InferenceError as exc:
            refusals.append(exc)
            continue
        for layout in layouts:
            parts = [*path, layout.root] if layout.root else list(path)
            depth = len(path) + (layout.root.count(".") + 1 if layout.root else 0)
            found.append(Candidate("/".join(parts), tensors, layout, depth, len(found)))
    if not found:
        if not mappings:
            raise CheckpointError(f"{name!r} holds no state_dict: found {_what(obj)}; needed a mapping of names to "
                                  "tensors (a state_dict), alone or inside a dict.")
        damaged = [e for e in refusals if not isinstance(e, NotADenseNet)]
        raise CheckpointError(f"{name}: {(damaged or refusals)[0]}")
    return sorted(found, key=lambda c: (bool(_EMA.search(c.name)), c.depth, c.order))


def choose_candidate(found: list[Candidate], candidate: str | None, name: str) -> Candidate:
    """``found[0]``, or the one named ``candidate``; CheckpointError listing the names if none is."""
    if candidate is None:
        return found[0]
    for c in found:
        if c.name == candidate:
            return c
    names = ", ".join(repr(c.name) for c in found)
    raise CheckpointError(f"{name!r} holds no DenseNet {candidate!r}; it holds {names}.")
