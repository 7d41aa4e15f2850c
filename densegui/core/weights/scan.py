"""The structure of a state_dict, found by shapes and numbered names, not by one library's scheme.

A *module* is a key without its last part; a convolution is a module with a 4-D ``weight``, a
BatchNorm one with running statistics (or a 1-D weight and bias), a linear layer one with a 2-D
``weight``. A *dense layer* candidate is the part of a convolution's module path up to its last
numbered name; layers numbered alike under one parent form a *block*, blocks numbered alike under
one parent a *network*. :mod:`densegui.core.weights.infer` checks these against the DenseNet plan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from densegui.core.errors import DenseguiError

if TYPE_CHECKING:
    import torch

    from densegui.core.arch.plan import Unit

_NUMBERED = re.compile(r"^(.*?)(\d+)$")
Shape = tuple[int, ...]


class InferenceError(DenseguiError):
    """A state_dict whose DenseNet configuration cannot be worked out."""


class NotADenseNet(InferenceError):
    """A state_dict without any dense block."""


def natural(text: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t]


def fmt(shape: Shape) -> str:
    return "×".join(map(str, shape)) or "scalar"


def under(path: str, root: str) -> bool:
    return not root or path == root or path.startswith(root + ".")


def key_of(module: str, param: str) -> str:
    return f"{module}.{param}" if module else param


class Scan:
    """The modules of a state_dict: path → {parameter name: shape}, and their kinds."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.params: dict[str, dict[str, Shape]] = {}
        for key, value in state_dict.items():
            module, _, param = key.rpartition(".")
            self.params.setdefault(module, {})[param] = tuple(value.shape)
        self.order = sorted(self.params, key=natural)

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
class Layout:
    """One network found in a state_dict (by :mod:`densegui.core.weights.infer` or ``infer_rdnet``).

    ``names`` maps the key names of ``build_model(config)`` (torchvision's, timm's) to the keys of the
    state_dict. ``unrecognised`` lists the parts ("stem", "final BatchNorm", "classifier") that
    were not recognised: their keys are missing from ``names`` and ``config`` guesses them, so
    the renamed weights load with ``strict=True`` only when it is empty. ``notes`` says, for the
    user, what was not recognised or ignored and what that affects.
    """

    config: Any  # the family's configuration: a DenseNetConfig (infer), an RDNetConfig (infer_rdnet)
    names: dict[str, str]
    root: str = ""
    notes: list[str] = field(default_factory=list)
    unrecognised: tuple[str, ...] = ()

    def rename(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The network's tensors under the model's names."""
        return {new: state_dict[old] for new, old in self.names.items()}


@dataclass
class Layer:
    root: str
    index: int
    convs: list[str]  # in order: the first convolution (the one Figure 5 reads), then the 3×3 one of a bottleneck
    norms: list[str]
    kind: str  # "basic", "bottleneck" or "other"


@dataclass
class Block:
    path: str
    number: int | None
    layers: list[Layer]
    # Set by the inference from the plan: input and output channels, the plan's unit per layer.
    c0: int = 0
    end: int = 0
    units: list[Unit] = field(default_factory=list)


def layer_kind(scan: Scan, convs: list[str]) -> tuple[str, list[str]]:
    kernels = [scan.weight(c)[2:] for c in convs]
    if kernels == [(3, 3)]:
        return "basic", convs
    if sorted(kernels) == [(1, 1), (3, 3)]:
        return "bottleneck", sorted(convs, key=lambda c: scan.weight(c)[2])
    return "other", convs


def describe_kind(scan: Scan, layer: Layer) -> str:
    if layer.kind == "basic":
        return "a basic layer (one 3×3 convolution)"
    if layer.kind == "bottleneck":
        return "a bottleneck layer (a 1×1, then a 3×3 convolution)"
    kernels = ", ".join("×".join(map(str, scan.weight(c)[2:])) for c in layer.convs)
    return f"{len(layer.convs)} convolution{'s' if len(layer.convs) > 1 else ''} ({kernels})"


def find_layers(scan: Scan) -> dict[tuple[str, str], list[Layer]]:
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
    groups: dict[tuple[str, str], list[Layer]] = {}
    for root, (group, index, convs) in roots.items():
        kind, ordered = layer_kind(scan, convs)
        norms = [m for m in scan.order if m.startswith(root + ".") and scan.is_norm(m)]
        groups.setdefault(group, []).append(Layer(root, index, ordered, norms, kind))
    return groups


def find_blocks(scan: Scan) -> dict[tuple[str, str], list[Block]]:
    """Dense blocks (groups whose layers are mostly dense layers), grouped into networks."""
    networks: dict[tuple[str, str], list[Block]] = {}
    for (path, _name), layers in find_layers(scan).items():
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
        networks.setdefault(net, []).append(Block(path, number, sorted(layers, key=lambda layer: layer.index)))
    return networks


def networks_of(scan: Scan) -> tuple[list[tuple[list[Block], str, set[str]]], set[str]]:
    """Each network's blocks, root and the modules it owns, in the order of their roots (empty: no
    network), and the modules no network owns. A module belongs to the network with the longest
    root that contains it."""
    # The growth shows only with two layers: one lone 3×3 convolution under a numbered name is no DenseNet.
    networks = {net: blocks for net, blocks in find_blocks(scan).items()
                if len(blocks) > 1 or len(blocks[0].layers) > 1}
    roots = {net: network_root(net[0]) for net in networks}
    owner: dict[str, tuple[str, str] | None] = {}
    for m in scan.order:
        holders = [net for net, root in roots.items() if under(m, root)]
        owner[m] = max(holders, key=lambda net: len(roots[net])) if holders else None
    found = [(networks[net], roots[net], {m for m, holder in owner.items() if holder == net})
             for net in sorted(networks, key=lambda n: natural(roots[n]))]
    return found, {m for m, net in owner.items() if net is None}


def network_root(container: str) -> str:
    """The network's own prefix: its blocks' container, above torchvision's ``features``."""
    head, _, last = container.rpartition(".")
    return head if last == "features" else container


def check_numbered(numbers: list[int], what: str) -> None:
    start = 0 if min(numbers) == 0 else 1
    gaps = sorted(set(range(start, max(numbers) + 1)) - set(numbers))
    if gaps:
        raise InferenceError(f"the DenseNet weights are incomplete: {what} {gaps[0]} is missing "
                             f"(found up to {max(numbers)}).")


def pick(candidates: list[str], prefer: str) -> str | None:
    if not candidates:
        return None
    named = [c for c in candidates if c.rpartition(".")[2] == prefer]
    return (named or candidates)[0]


def describe_stem(scan: Scan, convs: list[str], norms: list[str]) -> str:
    if not convs:
        return "no stem convolution"
    kernels = ", ".join("×".join(map(str, scan.weight(c)[2:])) for c in convs)
    bn = f" and {len(norms)} BatchNorm{'s' if len(norms) != 1 else ''}" if norms else ", no BatchNorm"
    return f"{len(convs)} convolution{'s' if len(convs) > 1 else ''} ({kernels}){bn}"


def not_a_densenet(scan: Scan, keys: list[str]) -> NotADenseNet:
    sample = ", ".join(repr(k) for k in keys[:3]) or "no tensors"
    dims = sorted({len(w) for m in scan.order if (w := scan.weight(m)) is not None and len(w) in (3, 5)})
    if dims and not any(scan.is_conv(m) for m in scan.order):
        return NotADenseNet(f"not a DenseNet state_dict densegui can show: its convolutions are {dims[0] - 2}-D "
                              f"({dims[0]}-dimensional weights, e.g. {sample}); densegui handles 2-D DenseNets.")
    return NotADenseNet(
        "not a DenseNet state_dict: no dense block found (numbered layers whose first convolutions take k more input "
        "channels each, as in 'features.denseblock1.denselayer1.conv1.weight'); "
        f"found {len(keys)} tensor{'s' if len(keys) != 1 else ''}: {sample}{', …' if len(keys) > 3 else ''}.")


# ------------------------------------------------------------------ the same of a plan unit
def unit_modules(unit: Unit) -> dict[str, dict[str, Shape]]:
    """A plan unit's modules, in order: path → {parameter name: shape}."""
    out: dict[str, dict[str, Shape]] = {}
    for t in unit.tensors:
        module, _, param = t.key.rpartition(".")
        out.setdefault(module, {})[param] = t.shape
    return out


def unit_convs(unit: Unit) -> list[tuple[str, Shape]]:
    """The unit's convolutions (module, weight shape), in order."""
    return [(m, p["weight"]) for m, p in unit_modules(unit).items() if len(p.get("weight", ())) == 4]


def unit_norms(unit: Unit) -> list[tuple[str, int]]:
    """The unit's BatchNorms (module, channels), in order."""
    return [(m, p["running_mean"][0]) for m, p in unit_modules(unit).items() if "running_mean" in p]


def unit_linears(unit: Unit) -> list[tuple[str, dict[str, Shape]]]:
    return [(m, p) for m, p in unit_modules(unit).items() if len(p.get("weight", ())) == 2]
