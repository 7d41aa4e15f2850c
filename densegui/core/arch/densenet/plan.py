"""The DenseNet plan: the one place that states which units a :class:`DenseNetConfig` has, what each
dense layer concatenates, and every state-dict entry with its shape (torchvision's names).

:func:`plan` composes the pieces below; architecture inference
(:mod:`densegui.core.weights.infer`) asks the same pieces what a stem, a dense block, a
transition or a head of given channels holds, before the whole configuration is known. The
pieces take the configuration unvalidated and never read its spatial sizes: sizes only scale MACs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from densegui.core.arch.plan import Plan, Unit, bn, conv, linear, stride2

if TYPE_CHECKING:
    from densegui.core.arch.densenet.config import DenseNetConfig


def plan(config: DenseNetConfig) -> Plan:
    """The validated ``config``'s units in module order (cached per configuration)."""
    return _plan(config.validate())


def stem(cfg: DenseNetConfig, size: int | None = None) -> Unit:
    """The stem ``cfg.stem`` names, on a ``size``² input (default: ``cfg.input_size``)."""
    init, c_in = cfg.num_init_features, cfg.in_channels
    size = cfg.input_size if size is None else size
    if cfg.stem == "imagenet":  # 7×7/2 conv, BN, ReLU, 3×3/2 max pool
        s1 = stride2(size, 7, 3)
        return Unit("features.conv0", "stem", None, None, c_in, init, size, stride2(s1),
                    conv("features.conv0", init, c_in, 7, s1) + bn("features.norm0", init))
    if cfg.stem == "deep":  # timm's: 3×3/2 conv to k, 3×3 to k, 3×3 to init (each BN, ReLU), 3×3/2 max pool
        s1, k = stride2(size, 3, 1), cfg.growth_rate
        tensors = (conv("features.conv0", k, c_in, 3, s1) + bn("features.norm0", k) + conv("features.conv1", k, k, 3, s1)
                   + bn("features.norm1", k) + conv("features.conv2", init, k, 3, s1) + bn("features.norm2", init))
        return Unit("features.conv0", "stem", None, None, c_in, init, size, stride2(s1), tensors, weighted_layers=3)
    # one 3×3 conv
    return Unit("features.conv0", "stem", None, None, c_in, init, size, size, conv("features.conv0", init, c_in, 3, size))


def dense_block(cfg: DenseNetConfig, b: int, c0: int, size: int = 1,
                block_input: str = "") -> tuple[list[Unit], int]:
    """Dense block ``b``'s layers when it takes ``c0`` channels, and its output channels
    (``block_input``: the path of the unit whose output it takes)."""
    k, inter = cfg.growth_rate, cfg.bn_size * cfg.growth_rate
    depth = cfg.block_depths[b - 1]
    paths = tuple(f"features.denseblock{b}.denselayer{i}" for i in range(1, depth + 1))
    # Densely, layer i reads the block input and layers 1 … i−1: prefixes of one tuple (slices are cheap).
    sources, channels = (block_input, *paths), (c0, *(k,) * depth)
    dense = cfg.connectivity == "dense"
    units: list[Unit] = []
    for i, p in enumerate(paths, 1):
        if dense:
            srcs, chans = sources[:i], channels[:i]
        else:
            picked = cfg.layer_sources(i)
            srcs, chans = tuple(sources[j] for j in picked), tuple(channels[j] for j in picked)
        cin = sum(chans)
        if cfg.bottleneck:
            tensors = (bn(f"{p}.norm1", cin) + conv(f"{p}.conv1", inter, cin, 1, size) + bn(f"{p}.norm2", inter)
                       + conv(f"{p}.conv2", k, inter, 3, size))
        else:
            tensors = bn(f"{p}.norm1", cin) + conv(f"{p}.conv1", k, cin, 3, size)
        units.append(Unit(p, "dense", b, i, cin, k, size, size, tensors, srcs, chans,
                          2 if cfg.bottleneck else 1, f"{p}.conv1"))
    return units, c0 + len(units) * k


def transition(b: int, c_end: int, out: int, size: int = 1, out_size: int = 1,
               layers: tuple[Unit, ...] = (), block_input: str = "") -> Unit:
    """The transition after dense block ``b`` (``layers``), from ``c_end`` to ``out`` channels."""
    p = f"features.transition{b}"
    sources, channels = _sources(layers, block_input)
    return Unit(p, "transition", b, None, c_end, out, size, out_size,
                bn(f"{p}.norm", c_end) + conv(f"{p}.conv", out, c_end, 1, size), sources, channels, 1, f"{p}.conv")


def head(c: int, num_classes: int, size: int = 1, layers: tuple[Unit, ...] = (), block_input: str = "") -> Unit:
    """The final BatchNorm and the classifier, on the last block's ``c`` output channels."""
    sources, channels = _sources(layers, block_input)
    return Unit("classifier", "head", None, None, c, num_classes, size, 1,
                bn("features.norm5", c) + linear("classifier", c, num_classes), sources, channels, 1, "classifier")


def _sources(layers: tuple[Unit, ...], block_input: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """What a unit after a dense block concatenates: the block's input and every layer's output."""
    if not layers:
        return (), ()
    return (block_input, *(u.path for u in layers)), (layers[0].source_channels[0], *(u.out_channels for u in layers))


# A few plans only: the layer tables are cached, and a plan is thousands of objects the cyclic
# garbage collector would otherwise walk in every full collection.
@lru_cache(maxsize=4)
def _plan(cfg: DenseNetConfig) -> Plan:
    units = [stem(cfg)]
    sizes = cfg.spatial_sizes()
    c0 = cfg.num_init_features
    for b in range(1, cfg.num_blocks + 1):
        block_input = units[-1].path
        layers, c_end = dense_block(cfg, b, c0, sizes[b - 1], block_input)
        units += layers
        if b < cfg.num_blocks:
            c0 = cfg.transition_out(c_end)
            units.append(transition(b, c_end, c0, sizes[b - 1], sizes[b], tuple(layers), block_input))
        else:
            units.append(head(c_end, cfg.num_classes, sizes[-1], tuple(layers), block_input))
    return Plan(cfg, tuple(units))
