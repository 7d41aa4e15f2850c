"""The RDNet plan: the units of an :class:`RDNetConfig` with timm's module names (``stem``,
``dense_stages.S.[2.]dense_blockJ``, ``dense_stages.S.1`` for the transition into stage S, ``head``)
and every state-dict entry's shape, in timm's order.

A transition belongs to the stage before it (``block``), as a DenseNet's does: it reads that
stage's whole concatenation."""

from __future__ import annotations

from functools import lru_cache

from densegui.core.arch.plan import Plan, Unit, conv, linear, ln, param
from densegui.core.arch.rdnet.config import RDNetConfig, multiple_of_8


def plan(config: RDNetConfig) -> Plan:
    """The validated ``config``'s units in module order (cached per configuration)."""
    return _plan(config.validate())


def stage_path(s: int) -> str:
    """The module holding 0-based stage ``s``'s blocks (after its transition's norm and conv)."""
    return f"dense_stages.{s}.{2 if s else 0}"


@lru_cache(maxsize=4)
def _plan(cfg: RDNetConfig) -> Plan:
    sizes = cfg.spatial_sizes()
    c, p = cfg.init_features, cfg.patch_size
    units = [Unit("stem", "stem", None, None, cfg.in_channels, c, cfg.input_size, sizes[0],
                  conv("stem.0", c, cfg.in_channels, p, sizes[0], bias=True) + ln("stem.1", c))]
    size = sizes[0]
    whole: tuple[tuple[str, ...], tuple[int, ...]] = ((), ())  # what the last stage's concatenation holds
    for s, (depth, k) in enumerate(zip(cfg.stage_depths, cfg.growth_rates, strict=True)):
        if s:
            out, kernel, t = multiple_of_8(c * cfg.compression), 2 if cfg.downsample[s] else 1, f"dense_stages.{s}"
            units.append(Unit(f"{t}.1", "transition", s, None, c, out, size, sizes[s],
                              ln(f"{t}.0", c) + conv(f"{t}.1", out, c, kernel, sizes[s], bias=True), *whole, 1,
                              f"{t}.1"))
            c, size = out, sizes[s]
        srcs, chans = [units[-1].path], [c]
        for j in range(depth):
            path, q = f"{stage_path(s)}.dense_block{j}", f"{stage_path(s)}.dense_block{j}.layers.layers"
            cin = sum(chans)
            inter = multiple_of_8(cin * cfg.width_ratio)
            tensors = ((param(f"{path}.gamma", k),) + conv(f"{q}.0", cin, cin, 7, size, groups=cin, bias=True)
                       + ln(f"{q}.1", cin) + conv(f"{q}.2", inter, cin, 1, size, bias=True)
                       + conv(f"{q}.4", k, inter, 1, size, bias=True))
            if s + 1 >= cfg.ese_from:  # effective squeeze-excitation: a 1×1 conv on the pooled features
                tensors += conv(f"{q}.5.fc", k, k, 1, 1, bias=True)
            units.append(Unit(path, "dense", s + 1, j + 1, cin, k, size, size, tensors, tuple(srcs), tuple(chans),
                              3, f"{q}.2"))
            srcs.append(path)
            chans.append(k)
        whole = (tuple(srcs), tuple(chans))
        c = sum(chans)
    units.append(Unit("head", "head", None, None, c, cfg.num_classes, size, 1,
                      ln("head.norm", c) + linear("head.fc", c, cfg.num_classes), *whole, 1, "head.fc"))
    return Plan(cfg, tuple(units))
