"""Find the RDNets in a state_dict (timm's names, under any prefix) and infer their configuration.

An RDNet is recognised by timm's block names (``dense_stages.S.P.dense_blockJ.``, which densegui's
model keeps); everything else comes from the tensor shapes:

* **stem**: ``stem.0`` is the patch conv (init_features × in_channels × p × p);
* **stages**: a block count per stage, the growth rate from the first block's last 1×1 conv, ESE
  from the first stage whose blocks have ``layers.5.fc`` on (every later one must have it too);
* **transitions**: ``dense_stages.S.1`` downsamples when its kernel is 2×2 (1×1 otherwise); one
  compression θ must give every transition's output as ⌊θ·C/8⌋·8 (:func:`fit_ratio`);
* **width ratio**: the same rule over each block's 1×1 expansion (``layers.2``);
* **head**: ``head.fc``'s rows are the classes. A file without it (timm's ``num_classes=0``) is
  read with the classifier unrecognised, as a headless DenseNet is.

The whole is then checked against the plan's state dict (:func:`registry.expected_shapes`): a
missing, unexpected or misshapen tensor is one line naming it. Not in the weights: ``input_size``
(224, raised to the smallest size the network accepts if needed). torch-free.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from densegui.core.arch.rdnet.config import RDNetConfig, multiple_of_8
from densegui.core.arch.rdnet.plan import stage_path
from densegui.core.errors import ConfigError
from densegui.core.weights.reading import CheckpointError
from densegui.core.weights.scan import InferenceError, Layout, Shape, fmt
from densegui.core.weights.statedict import check_matches

if TYPE_CHECKING:
    import torch

__all__ = ["find_networks", "fit_ratio", "has_rdnet", "infer_config"]

# A block's tensor under a root: stage S (its blocks are dense_stages.S.0 or .2), block J.
_BLOCK = re.compile(r"^(?P<root>(?:[^.]+\.)*?)dense_stages\.\d+\.\d+\.dense_block\d+\.")
_STAGE = re.compile(r"^dense_stages\.(?P<s>\d+)\.(?P<pos>\d+)\.dense_block(?P<j>\d+)\.")
_CLASSIFIER = "head.fc"


class _Shaped:
    """A shape standing in for a tensor in :func:`check_matches`."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape


def _roots(keys) -> list[str]:
    """The prefixes ("" or ending in ".") under which RDNet blocks are, in key order."""
    found: dict[str, None] = {}
    for key in keys:
        m = _BLOCK.match(key)
        if m:
            found.setdefault(m.group("root"))
    return list(found)


def has_rdnet(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when some key is an RDNet block's (timm's names)."""
    return any(_BLOCK.match(k) for k in state_dict)


def find_networks(state_dict: Mapping[str, torch.Tensor], *, input_size: int | None = None) -> list[Layout]:
    """Every RDNet in ``state_dict`` (empty: none), in the order of their roots. Each key belongs
    to the longest root it starts with; a damaged or unsupported RDNet is an InferenceError."""
    roots = _roots(state_dict)
    owned: dict[str, dict[str, Shape]] = {root: {} for root in roots}
    for key, value in state_dict.items():
        holders = [r for r in roots if key.startswith(r)]
        if holders:
            root = max(holders, key=len)
            owned[root][key[len(root):]] = tuple(value.shape)
    return [_network(owned[root], root, input_size) for root in roots]


def infer_config(state_dict: Mapping[str, torch.Tensor], *, input_size: int | None = None) -> RDNetConfig:
    """The configuration of the one RDNet in ``state_dict``, whose head is recognised."""
    layouts = find_networks(state_dict, input_size=input_size)
    if len(layouts) != 1:
        raise InferenceError(f"the state_dict holds {len(layouts)} RDNets; expected one.")
    if layouts[0].unrecognised:
        raise InferenceError(f"{layouts[0].notes[0]}.")
    return layouts[0].config


def _numbered(numbers: set[int], what: str) -> int:
    gaps = sorted(set(range(max(numbers) + 1)) - numbers)
    if gaps:
        raise InferenceError(f"the RDNet weights are incomplete: {what} {gaps[0]} is missing "
                             f"(found up to {max(numbers)}).")
    return max(numbers) + 1


def fit_ratio(pairs: list[tuple[int, int]], default: float, top: float) -> float | None:
    """The simplest ratio r in (0, ``top``] with ⌊C·r/8⌋·8 = out for every (C, out) pair
    (``default`` when there is none; None when no single ratio fits).

    Each pair allows r ∈ [out/C, (out+8)/C); the result is the shortest decimal in them all."""
    if not pairs:
        return default
    lo = max(out / c for c, out in pairs)
    hi = min(min((out + 8) / c for c, out in pairs), top + 1e-12)

    def fits(r: float) -> bool:
        return 0 < r <= top and all(multiple_of_8(c * r) == out for c, out in pairs)

    for digits in range(1, 13):
        scale = 10 ** digits
        r = math.ceil(lo * scale - 1e-9) / scale
        if r < hi and fits(r):
            return r
    return lo if lo < hi and fits(lo) else None


def _need(sub: Mapping[str, Shape], key: str, root: str, what: str) -> Shape:
    if key not in sub:
        raise InferenceError(f"the RDNet weights are incomplete: no {what} ({root + key!r} is missing).")
    return sub[key]


def _network(sub: dict[str, Shape], root: str, input_size: int | None) -> Layout:
    shown = lambda key: repr(root + key)  # noqa: E731 - the file's own name, for the messages
    if "stem.2.weight" in sub or len(sub.get("stem.1.weight", ())) == 4:
        raise InferenceError("an RDNet with timm's overlapping stem (3×3 stride-2 convolutions) is not supported; "
                             "densegui's RDNet has the patch stem (a p×p conv with stride p, then LayerNorm).")
    stem = _need(sub, "stem.0.weight", root, "patch stem")
    if len(stem) != 4 or stem[2] != stem[3]:
        raise InferenceError(f"tensor {shown('stem.0.weight')} has shape {fmt(stem)}; an RDNet's patch stem is a "
                             "square p×p convolution.")
    init, in_ch, patch = stem[0], stem[1], stem[2]
    blocks: dict[int, set[int]] = {}
    for key in sub:
        m = _STAGE.match(key)
        if m:
            s = int(m.group("s"))
            if m.group("pos") != stage_path(s).rpartition(".")[2]:
                raise InferenceError(f"tensor {shown(key)}: stage {s + 1}'s blocks must be under "
                                     f"{root + stage_path(s)!r} (timm's layout).")
            blocks.setdefault(s, set()).add(int(m.group("j")))
    stages = _numbered(set(blocks), "stage")
    depths = tuple(_numbered(blocks[s], f"stage {s + 1}'s block") for s in range(stages))
    growth, ese, down, widths, transitions = [], [], [0], [], []
    for s, depth in enumerate(depths):
        if s:
            t = _need(sub, f"dense_stages.{s}.1.weight", root, f"transition into stage {s + 1}")
            if len(t) != 4 or t[2:] not in ((1, 1), (2, 2)):
                raise InferenceError(f"tensor {shown(f'dense_stages.{s}.1.weight')} has shape {fmt(t)}; an RDNet "
                                     "transition is a 1×1 or a 2×2 stride-2 convolution.")
            down.append(1 if t[2] == 2 else 0)
            transitions.append((t[1], t[0]))
        first = f"{stage_path(s)}.dense_block0"
        if f"{first}.gamma" not in sub:
            raise InferenceError(f"{root + first!r} has no layer scale γ ({shown(first + '.gamma')}): an RDNet "
                                 "without layer scale (timm's ls_init_value=0) is not supported.")
        growth.append(_need(sub, f"{first}.layers.layers.4.weight", root, f"stage {s + 1}'s growth conv")[0])
        ese.append(f"{first}.layers.layers.5.fc.weight" in sub)
        for j in range(depth):
            mixer = _need(sub, f"{stage_path(s)}.dense_block{j}.layers.layers.2.weight", root, "1×1 expansion")
            widths.append((mixer[1], mixer[0]))
    ese_from = ese.index(True) + 1 if any(ese) else stages + 1
    if not all(ese[ese_from - 1:]):
        lacking = ese.index(False, ese_from - 1) + 1
        raise InferenceError(f"stage {lacking} has no squeeze-excitation but stage {ese_from} before it has; "
                             "densegui's RDNet has ESE in every stage from one on.")
    width = fit_ratio(widths, RDNetConfig.width_ratio, 16.0)
    if width is None:
        raise InferenceError("no single width ratio gives every block's 1×1 expansion as ⌊C·ratio/8⌋·8 ("
                             + ", ".join(f"{c}→{o}" for c, o in widths[:4]) + "); densegui's RDNet has one ratio.")
    compression = fit_ratio(transitions, RDNetConfig.compression, 1.0)
    if compression is None:
        raise InferenceError("no single compression θ gives every transition's output as ⌊θ·C/8⌋·8 ("
                             + ", ".join(f"{c}→{o}" for c, o in transitions) + "); densegui's RDNet has one θ.")
    notes, unrecognised = [], ()
    fc = sub.get(f"{_CLASSIFIER}.weight")
    if fc is None:
        unrecognised = ("classifier",)
        notes.append(f"no classifier found ({shown(_CLASSIFIER + '.weight')} is missing): the last stage's "
                     f"classifier column stays empty, and the configuration's {RDNetConfig.num_classes} classes "
                     "are a placeholder")
    cfg = RDNetConfig(stage_depths=depths, growth_rates=tuple(growth), downsample=tuple(down), ese_from=ese_from,
                      width_ratio=width, compression=compression, init_features=init, patch_size=patch,
                      in_channels=in_ch, num_classes=fc[0] if fc else RDNetConfig.num_classes,
                      input_size=input_size or RDNetConfig.input_size)
    if input_size is None and cfg.spatial_sizes()[-1] < 1:
        cfg = cfg.replace(input_size=patch * 2 ** sum(down))
    try:
        cfg = cfg.validate()
    except ConfigError as exc:
        raise InferenceError(f"the inferred RDNet configuration is not supported: {exc}") from None
    try:
        check_matches({k: _Shaped(v) for k, v in sub.items()}, cfg,
                      names={m: root + m for m in {k.rpartition(".")[0] for k in sub}} if root else None,
                      optional=(f"{_CLASSIFIER}.",) if unrecognised else ())
    except CheckpointError as exc:
        raise InferenceError(str(exc)) from None
    return Layout(cfg, {k: root + k for k in sub}, root[:-1], notes, unrecognised)
