"""The DenseNet family (Huang et al. 2017; torchvision's layout): config, plan, table, model."""

from __future__ import annotations

from densegui.core.arch import family as F
from densegui.core.arch.fields import shared_fields
from densegui.core.arch.densenet.config import (
    DEFAULT_PRESET,
    LIMITS,
    PRESETS,
    STEMS,
    DenseNetConfig,
    preset_of,
)
from densegui.core.arch.densenet.connectivity import MAX_WINDOW, SPEC_HELP
from densegui.core.arch.densenet.plan import plan
from densegui.core.arch.densenet.table import layer_table

FIELDS = (
    F.Field("growth_rate", "growth rate k", "int", "growth rate k", *LIMITS["growth_rate"], short="-k", metavar="K",
            log=True),
    F.Field("block_depths", "block depths", "depths", "layers per dense block, e.g. 6,12,24,16",
            *LIMITS["block_depth"], flag="blocks", metavar="D1,D2,.."),
    F.Field("compression", "compression θ", "float", "compression θ in (0, 1] at transitions", 0.0, 1.0,
            metavar="THETA"),
    F.Field("bottleneck", "bottleneck (B)", "bool", "1×1 bottleneck conv to bn_size·k channels before each 3×3 conv",
            sweep=False),
    F.Field("bn_size", "bottleneck width", "int", "bottleneck width factor", *LIMITS["bn_size"], log=True),
    F.Field("init_features", "stem channels", "int", "channels out of the stem (default 2k)",
            *LIMITS["init_features"], optional=True, sweep=False),
    F.Field("drop_rate", "dropout", "float", "dropout after each dense layer's 3×3 conv", 0.0, 0.99),
    F.Field("connectivity", "connectivity", "spec", f"which earlier feature maps a dense layer concatenates: {SPEC_HELP}",
            1, MAX_WINDOW, choices=("dense", "window:W", "log"), metavar="SPEC"),
    *shared_fields(STEMS, "imagenet (7×7/2 conv + max pool), cifar (3×3 conv) or, for DenseNets, deep "
                   "(timm's: three 3×3 convs + max pool)"),
    F.Field("memory_efficient", "memory-efficient", "bool",
            "recompute concat+BN+ReLU+first conv in backward (less memory, more time)", run_setting=True,
            sweep=False),
)

FAMILY = F.Family(
    name="densenet", title="DenseNet", config=DenseNetConfig, presets=PRESETS, default_preset=DEFAULT_PRESET,
    fields=FIELDS, plan=plan, table=layer_table, model="densegui.core.arch.densenet.model:build_model",
    preset_of=preset_of, unit="block", layer="layer", depths="block_depths",
    kinds=("stem", "dense convs", "dense BN/ReLU", "concatenation", "transitions", "head"),
    profile=(
        (r"features\.((conv|norm|relu)[0-2]|pool0)", "stem"),  # (the deep stem has three of each)
        (r"features\.denseblock\d+(\.denselayer\d+)?", "concatenation"),  # torch.cat of a layer's inputs, dropout
        (r"features\.denseblock\d+\.denselayer\d+\.conv\d+", "dense convs"),
        (r"features\.denseblock\d+\.denselayer\d+\.(norm|relu)\d+", "dense BN/ReLU"),
        (r"features\.transition\d+", "transitions"),
        (r"features\.norm5|classifier", "head"),
    ),
    capabilities=frozenset({F.MEMORY_EFFICIENT, F.REUSE, F.TRAIN, F.WEIGHTS, F.EXPLORE}),
    color="#1f77b4",
    sweep_axes=(("growth_rate", ""), ("compression", "compression θ at transitions"), ("bn_size", ""),
                ("blocks", "every dense block's depth"), ("drop_rate", "dropout rate"),
                ("input_size", "input image side (pixels)"), ("num_classes", ""),
                ("block{i}", "dense block {i}'s depth")),
    sweep_aliases={"k": "growth_rate", "theta": "compression", "θ": "compression", "depth": "blocks"},
    shape_only="densegui.core.arch.densenet.model:shape_only_ops",
)
