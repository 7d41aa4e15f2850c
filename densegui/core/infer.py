"""Infer a :class:`DenseNetConfig` from a state_dict alone.

Reads only tensor names and shapes (torchvision naming; legacy keys and
``module.`` prefixes are normalised first):

* stem: ``features.conv0.weight`` 7×7 with ``features.norm0`` → imagenet;
  3×3 without ``norm0`` → cifar. Its shape gives init features and input channels.
* layers: ``denselayerM.conv2`` present → bottleneck (``conv1`` 1×1 to
  bn_size·k, ``conv2`` 3×3 to k); absent → basic (``conv1`` 3×3 to k).
* blocks: the number of ``denselayerM`` in each ``denseblockN``.
* compression: one θ with ⌊θ·m⌋ equal to every transition's output channels
  (the shortest decimal in the interval all transitions allow).
* classes: ``classifier.weight`` rows.

Not in the weights: ``drop_rate`` (0), ``memory_efficient`` (False) and
``input_size`` (224 for the imagenet stem, 32 for cifar, raised to the
smallest size the network accepts if needed). Every inconsistency is a
:class:`InferenceError` with a one-line message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from densegui.core.config import DenseNetConfig
from densegui.core.errors import ConfigError, DenseguiError
from densegui.core.statedict import normalize_state_dict

if TYPE_CHECKING:
    import torch

_BLOCK = re.compile(r"^features\.denseblock(\d+)\.denselayer(\d+)\.")
_TRANS = re.compile(r"^features\.transition(\d+)\.")


class InferenceError(DenseguiError):
    """A state_dict whose DenseNet configuration cannot be worked out."""


def _shape(sd: Mapping[str, torch.Tensor], key: str, ndim: int | None = None) -> tuple[int, ...]:
    if key not in sd:
        raise InferenceError(f"the DenseNet weights are incomplete: tensor {key!r} is missing.")
    shape = tuple(sd[key].shape)
    if ndim is not None and len(shape) != ndim:
        raise InferenceError(f"tensor {key!r} has {len(shape)} dimensions, expected {ndim}.")
    return shape


def _fmt(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def _contiguous(numbers: set[int], what: str) -> int:
    n = max(numbers)
    gaps = sorted(set(range(1, n + 1)) - numbers)
    if gaps:
        raise InferenceError(f"the DenseNet weights are incomplete: {what} {gaps[0]} is missing (found up to {n}).")
    return n


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


def infer_config(state_dict: Mapping[str, torch.Tensor], *, input_size: int | None = None) -> DenseNetConfig:
    """The configuration whose model loads ``state_dict`` with ``strict=True``
    (``module.`` prefixes and torchvision's legacy key names are accepted too)."""
    sd = normalize_state_dict(state_dict)
    if "features.conv0.weight" not in sd or not any(_BLOCK.match(k) for k in sd):
        sample = ", ".join(repr(k) for k in list(sd)[:3])
        raise InferenceError(
            "not a DenseNet state_dict: expected torchvision-style keys such as 'features.conv0.weight' and "
            f"'features.denseblock1.denselayer1.conv1.weight', found {sample or 'no tensors'}.")

    # Stem.
    c0 = _shape(sd, "features.conv0.weight", 4)
    init, in_ch, kh, kw = c0
    has_norm0 = "features.norm0.weight" in sd
    if kh == kw == 7 and has_norm0:
        stem = "imagenet"
    elif kh == kw == 3 and not has_norm0:
        stem = "cifar"
    else:
        raise InferenceError(
            f"unrecognised stem: conv0 is {kh}×{kw} {'with' if has_norm0 else 'without'} norm0 "
            "(imagenet: 7×7 with norm0; cifar: 3×3 without).")

    # Block and layer structure from the names.
    layers: dict[int, set[int]] = {}
    for key in sd:
        m = _BLOCK.match(key)
        if m:
            layers.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    num_blocks = _contiguous(set(layers), "dense block")
    depths = tuple(_contiguous(layers[b], f"block {b}'s dense layer") for b in range(1, num_blocks + 1))
    transitions_found = {int(m.group(1)) for k in sd if (m := _TRANS.match(k))}
    extra = sorted(t for t in transitions_found if t >= num_blocks)
    if extra:
        raise InferenceError(f"tensor for transition {extra[0]} found but the network has only {num_blocks} "
                             f"dense blocks; the weights are inconsistent.")

    first = "features.denseblock1.denselayer1"
    bottleneck = f"{first}.conv2.weight" in sd
    if bottleneck:
        inter, _, h1, w1 = _shape(sd, f"{first}.conv1.weight", 4)
        k, inter2, _, _ = _shape(sd, f"{first}.conv2.weight", 4)
        if inter2 != inter or k < 1 or inter % k:
            raise InferenceError(
                f"bottleneck of {first} is inconsistent: conv1 gives {inter} channels, conv2 takes {inter2} "
                f"and gives {k} (bn_size·k must be a multiple of k).")
        bn_size = inter // k
    else:
        k = _shape(sd, f"{first}.conv1.weight", 4)[0]
        bn_size = DenseNetConfig.bn_size

    # Walk the network checking every layer and transition against k, bn_size.
    channels = init
    transitions: list[tuple[int, int]] = []
    for b, depth in enumerate(depths, 1):
        for ell in range(1, depth + 1):
            name = f"features.denseblock{b}.denselayer{ell}"
            c_in = channels + (ell - 1) * k
            has_conv2 = f"{name}.conv2.weight" in sd
            if has_conv2 != bottleneck:
                raise InferenceError(f"{name} is {'a bottleneck' if has_conv2 else 'a basic'} layer but "
                                     f"{first} is {'a bottleneck' if bottleneck else 'a basic'} layer.")
            w1 = _shape(sd, f"{name}.conv1.weight", 4)
            want1 = (bn_size * k, c_in, 1, 1) if bottleneck else (k, c_in, 3, 3)
            if w1 != want1:
                raise InferenceError(f"tensor '{name}.conv1.weight' has shape {_fmt(w1)}, expected {_fmt(want1)} "
                                     f"(k={k}, {c_in} input channels); the weights are inconsistent.")
            if bottleneck:
                w2 = _shape(sd, f"{name}.conv2.weight", 4)
                if w2 != (k, bn_size * k, 3, 3):
                    raise InferenceError(f"tensor '{name}.conv2.weight' has shape {_fmt(w2)}, expected "
                                         f"{_fmt((k, bn_size * k, 3, 3))}; the weights are inconsistent.")
        end = channels + depth * k
        if b < num_blocks:
            key = f"features.transition{b}.conv.weight"
            out_ch, m, th, tw = _shape(sd, key, 4)
            if m != end or (th, tw) != (1, 1) or out_ch < 1:
                raise InferenceError(f"tensor {key!r} has shape {_fmt((out_ch, m, th, tw))}, expected "
                                     f"N×{end}×1×1 after block {b}; the weights are inconsistent.")
            transitions.append((m, out_ch))
            channels = out_ch
        else:
            channels = end

    norm5 = _shape(sd, "features.norm5.weight")
    if norm5 != (channels,):
        raise InferenceError(f"tensor 'features.norm5.weight' has shape {_fmt(norm5)}, expected {channels}; "
                             "the weights are inconsistent.")
    cls = _shape(sd, "classifier.weight", 2)
    if cls[1] != channels:
        raise InferenceError(f"tensor 'classifier.weight' has shape {_fmt(cls)}, expected N×{channels}; "
                             "the weights are inconsistent.")

    compression = fit_compression(transitions)
    cfg = DenseNetConfig(
        growth_rate=k,
        block_depths=depths,
        compression=compression,
        bottleneck=bottleneck,
        bn_size=bn_size,
        init_features=None if init == 2 * k else init,
        stem=stem,
        in_channels=in_ch,
        num_classes=cls[0],
        input_size=input_size or (224 if stem == "imagenet" else 32),
    )
    if input_size is None and cfg.spatial_sizes()[-1] < 1:
        cfg = cfg.replace(input_size=cfg.min_input_size())
    try:
        return cfg.validate()
    except ConfigError as exc:
        raise InferenceError(f"the inferred configuration is not supported: {exc}") from None
