"""Model flags shared by ``summary``, ``probe`` and ``train``."""

from __future__ import annotations

import argparse

from densegui.core.config import DEFAULT_PRESET, STEMS, DenseNetConfig, get_preset
from densegui.core.errors import ConfigError


def _blocks(text: str) -> tuple[int, ...]:
    try:
        depths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 6,12,24,16, got {text!r}") from None
    return depths


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model", "start from a preset or a JSON config, then override fields")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--preset", metavar="NAME", help=f"a preset (see `densegui presets`; default {DEFAULT_PRESET})")
    src.add_argument("--config", metavar="FILE.json", help="a configuration file: `summary --json`'s config object, or that whole output")
    g.add_argument("--growth-rate", "-k", type=int, metavar="K", help="growth rate k")
    g.add_argument("--blocks", type=_blocks, metavar="D1,D2,..", help="layers per dense block, e.g. 6,12,24,16")
    g.add_argument("--compression", type=float, metavar="THETA", help="compression θ in (0, 1] at transitions")
    g.add_argument("--bottleneck", action=argparse.BooleanOptionalAction, default=None,
                   help="1×1 bottleneck conv to bn_size·k channels before each 3×3 conv")
    g.add_argument("--bn-size", type=int, help="bottleneck width factor")
    g.add_argument("--init-features", type=int, help="channels out of the stem (default 2k)")
    g.add_argument("--stem", choices=STEMS, help="imagenet (7×7/2 conv + max pool) or cifar (3×3 conv)")
    g.add_argument("--in-channels", type=int, help="input image channels")
    g.add_argument("--num-classes", type=int, help="classifier outputs")
    g.add_argument("--drop-rate", type=float, help="dropout after each dense layer's 3×3 conv")
    g.add_argument("--input-size", type=int, help="input image side in pixels")
    g.add_argument("--memory-efficient", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute concat+BN+ReLU+first conv in backward (less memory, more time)")


_OVERRIDES = {
    "growth_rate": "growth_rate",
    "blocks": "block_depths",
    "compression": "compression",
    "bottleneck": "bottleneck",
    "bn_size": "bn_size",
    "init_features": "init_features",
    "stem": "stem",
    "in_channels": "in_channels",
    "num_classes": "num_classes",
    "drop_rate": "drop_rate",
    "input_size": "input_size",
    "memory_efficient": "memory_efficient",
}


def config_from_args(args: argparse.Namespace, default: DenseNetConfig | None = None) -> DenseNetConfig:
    """The validated configuration the model flags describe: ``--config``, else ``--preset``, else
    ``default`` (or the default preset), with the field flags applied on top."""
    if getattr(args, "config", None):
        base = DenseNetConfig.from_file(args.config)
    elif getattr(args, "preset", None) or default is None:
        base = get_preset(getattr(args, "preset", None) or DEFAULT_PRESET)
    else:
        base = default
    changes = {field: getattr(args, flag) for flag, field in _OVERRIDES.items() if getattr(args, flag, None) is not None}
    try:
        return base.replace(**changes).validate()
    except TypeError as exc:  # pragma: no cover - replace() only gets known fields
        raise ConfigError(str(exc)) from None
