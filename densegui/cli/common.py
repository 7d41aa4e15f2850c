"""Model flags shared by ``summary``, ``probe``, ``train`` and ``sweep``: a preset or config file of
either family, then field flags; a flag of the other family is refused in one line."""

from __future__ import annotations

import argparse

from densegui.core.arch import registry as arch
from densegui.core.arch.densenet.config import DEFAULT_PRESET, STEMS, DenseNetConfig
from densegui.core.errors import ConfigError
from densegui.core.arch.resnet.config import BLOCKS, SHORTCUTS


def _ints(example: str):
    def parse(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers like {example}, got {text!r}") from None
    return parse


_blocks = _ints("6,12,24,16")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model", "start from a preset or a JSON config, then override fields")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--preset", metavar="NAME",
                     help=f"a DenseNet or ResNet preset (see `densegui presets`; default {DEFAULT_PRESET})")
    src.add_argument("--config", metavar="FILE.json", help="a configuration file: `summary --json`'s config object, or that whole output")
    g.add_argument("--stem", choices=STEMS, help="imagenet (7×7/2 conv + max pool) or cifar (3×3 conv)")
    g.add_argument("--in-channels", type=int, help="input image channels")
    g.add_argument("--num-classes", type=int, help="classifier outputs")
    g.add_argument("--input-size", type=int, help="input image side in pixels")
    g.add_argument("--memory-efficient", action=argparse.BooleanOptionalAction, default=None,
                   help="DenseNets: recompute concat+BN+ReLU+first conv in backward (less memory, more time)")
    d = parser.add_argument_group("DenseNet", "fields of a DenseNet configuration")
    d.add_argument("--growth-rate", "-k", type=int, metavar="K", help="growth rate k")
    d.add_argument("--blocks", type=_blocks, metavar="D1,D2,..", help="layers per dense block, e.g. 6,12,24,16")
    d.add_argument("--compression", type=float, metavar="THETA", help="compression θ in (0, 1] at transitions")
    d.add_argument("--bottleneck", action=argparse.BooleanOptionalAction, default=None,
                   help="1×1 bottleneck conv to bn_size·k channels before each 3×3 conv")
    d.add_argument("--bn-size", type=int, help="bottleneck width factor")
    d.add_argument("--init-features", type=int, help="channels out of the stem (default 2k)")
    d.add_argument("--drop-rate", type=float, help="dropout after each dense layer's 3×3 conv")
    r = parser.add_argument_group("ResNet", "fields of a ResNet configuration")
    r.add_argument("--stages", type=_ints("3,4,6,3"), metavar="D1,D2,..", help="residual blocks per stage, e.g. 3,4,6,3")
    r.add_argument("--widths", type=_ints("64,128,256,512"), metavar="W1,W2,..",
                   help="base width per stage (a bottleneck stage outputs 4×), e.g. 64,128,256,512")
    r.add_argument("--block", choices=BLOCKS, help="basic (two 3×3 convs) or bottleneck (1×1, 3×3, 1×1; expansion 4)")
    r.add_argument("--shortcut", choices=SHORTCUTS,
                   help="where the shape changes: B = 1×1 conv + BN projection, A = zero-padded identity")
    r.add_argument("--stem-width", type=int, help="channels out of the stem (torchvision: 64)")


# flag dest → field, per family; SHARED apply to both.
SHARED = {"stem": "stem", "in_channels": "in_channels", "num_classes": "num_classes", "input_size": "input_size",
          "memory_efficient": "memory_efficient"}
DENSENET = {"growth_rate": "growth_rate", "blocks": "block_depths", "compression": "compression",
            "bottleneck": "bottleneck", "bn_size": "bn_size", "init_features": "init_features", "drop_rate": "drop_rate"}
RESNET = {"stages": "stage_depths", "widths": "widths", "block": "block", "shortcut": "shortcut",
          "stem_width": "stem_width"}
FAMILY_FLAGS = {"densenet": DENSENET, "resnet": RESNET}
_OVERRIDES = {**SHARED, **DENSENET, **RESNET}  # every field flag (cli/train.py refuses them with --resume)
_HINTS = {"blocks": "--stages", "init_features": "--stem-width", "stages": "--blocks", "stem_width": "--init-features"}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def config_from_args(args: argparse.Namespace, default: DenseNetConfig | None = None,
                     families: tuple[str, ...] | None = None) -> arch.Config:
    """The validated configuration the model flags describe: ``--config``, else ``--preset`` (either
    family), else ``default`` (or the default preset), with the field flags applied on top. A flag
    of the other family is a ConfigError naming both; so is a family not in ``families`` (None: any)."""
    if getattr(args, "config", None):
        base = arch.config_from_file(args.config)
    elif getattr(args, "preset", None) or default is None:
        base = arch.get_preset(getattr(args, "preset", None) or DEFAULT_PRESET)
    else:
        base = default
    family = arch.family_of(base)
    if families is not None and family not in families:
        takes = " or ".join(arch.FAMILY_NAMES[f] for f in families)
        raise ConfigError(f"this command takes a {takes}, but {base.label()} is a {arch.FAMILY_NAMES[family]}.")
    for other, flags in FAMILY_FLAGS.items():
        if other == family:
            continue
        for dest in flags:
            if getattr(args, dest, None) is not None:
                hint = f"; use {_HINTS[dest]}" if dest in _HINTS else ""
                raise ConfigError(f"{_flag(dest)} is a {arch.FAMILY_NAMES[other]} flag, but this configuration "
                                  f"is a {arch.FAMILY_NAMES[family]}{hint}.")
    mapping = {**SHARED, **FAMILY_FLAGS[family]}
    changes = {field: getattr(args, dest) for dest, field in mapping.items() if getattr(args, dest, None) is not None}
    try:
        return base.replace(**changes).validate()
    except TypeError as exc:  # pragma: no cover - replace() only gets known fields
        raise ConfigError(str(exc)) from None
